//! Prints how the judge does on the telephone calls of `judge/eval/garbled.json` (or the file
//! given), per reading (stereo, mono with parties separated, mono undiarized) and split (tune,
//! holdout): `cargo run -p callscript-judge --example phone_eval [FILE]`.

use callscript_judge::eval::{read_calls, score};
use callscript_judge::Rulebook;
use chrono::{NaiveDateTime, TimeZone};
use chrono_tz::America::New_York;

fn main() -> Result<(), String> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/eval/garbled.json").to_owned());
    let json = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    let rulebook = Rulebook::default_rulebook();
    let naive = NaiveDateTime::parse_from_str("2026-11-05 15:00", "%Y-%m-%d %H:%M")
        .map_err(|e| e.to_string())?;
    let started_at = New_York
        .from_local_datetime(&naive)
        .single()
        .ok_or("no such time")?;
    for reading in ["stereo", "mono", "mono_undiarized"] {
        let calls = read_calls(&json, reading)?;
        for split in ["tune", "holdout"] {
            let part: Vec<_> = calls.iter().filter(|c| c.split == split).collect();
            print!("{reading} {split}: {}", score(&part, &rulebook, started_at));
        }
    }
    Ok(())
}
