//! RTTM files: [`parse_rttm`] reads the `SPEAKER` records of NIST's Rich Transcription Time
//! Marked format (`SPEAKER file 1 start duration <NA> <NA> speaker <NA> <NA>`); other record
//! types and `;;` comments are skipped, a malformed `SPEAKER` line is an error naming its line
//! number. [`write_rttm`] writes the same records, times in milliseconds.

use std::fmt::Write as _;

use super::Turn;

/// A `SPEAKER` line of an RTTM file that cannot be read.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("RTTM line {line}: {reason}: {text:?}")]
pub struct RttmError {
    /// 1-based line number.
    pub line: usize,
    pub reason: String,
    /// The line as written.
    pub text: String,
}

/// The `SPEAKER` records of an RTTM file, in file order. Empty lines, `;;` / `#` comments and
/// other record types (`SPKR-INFO`, `LEXEME`, …) are skipped.
pub fn parse_rttm(text: &str) -> Result<Vec<Turn>, RttmError> {
    let mut turns = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with(";;") || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields[0] != "SPEAKER" {
            continue;
        }
        let error = |reason: String| RttmError {
            line: index + 1,
            reason,
            text: raw.to_string(),
        };
        if fields.len() < 8 {
            return Err(error(format!(
                "a SPEAKER record has at least 8 fields (type file channel start duration \
                 ortho subtype speaker), this one {}",
                fields.len()
            )));
        }
        let number = |i: usize, what: &str| -> Result<f64, RttmError> {
            match fields[i].parse::<f64>() {
                Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
                _ => Err(error(format!(
                    "field {} ({what}) must be a non-negative number of seconds, not {:?}",
                    i + 1,
                    fields[i]
                ))),
            }
        };
        let start = number(3, "start")?;
        let duration = number(4, "duration")?;
        turns.push(Turn {
            start,
            end: start + duration,
            speaker: fields[7].to_string(),
        });
    }
    Ok(turns)
}

/// RTTM `SPEAKER` records for `turns` (times to the millisecond, channel 1). Whitespace in
/// `file_id` or a speaker name, which would shift the fields, becomes `_`.
pub fn write_rttm(file_id: &str, turns: &[Turn]) -> String {
    let clean = |s: &str| -> String {
        let s: String = s
            .chars()
            .map(|c| if c.is_whitespace() { '_' } else { c })
            .collect();
        if s.is_empty() {
            "<NA>".to_string()
        } else {
            s
        }
    };
    let file_id = clean(file_id);
    let mut out = String::new();
    for turn in turns {
        let _ = writeln!(
            out,
            "SPEAKER {file_id} 1 {:.3} {:.3} <NA> <NA> {} <NA> <NA>",
            turn.start,
            turn.duration(),
            clean(&turn.speaker)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(start: f64, end: f64, speaker: &str) -> Turn {
        Turn::new(start, end, speaker)
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn rttm_round_trip() {
        let text = ";; comment\n\
            SPEAKER call 1 1.700 2.200 <NA> <NA> speaker1 <NA> <NA>\n\
            SPKR-INFO call 1 <NA> <NA> <NA> unknown speaker1 <NA>\n\
            \n\
            SPEAKER call 1 6.2 4.9 <NA> <NA> speaker2 <NA>\n";
        let turns = parse_rttm(text).unwrap();
        assert_eq!(turns.len(), 2);
        assert_eq!(turns[0].speaker, "speaker1");
        assert!(close(turns[0].start, 1.7) && close(turns[0].end, 3.9));
        assert!(close(turns[1].end, 11.1));
        let written = write_rttm("call", &turns);
        assert_eq!(
            written,
            "SPEAKER call 1 1.700 2.200 <NA> <NA> speaker1 <NA> <NA>\n\
             SPEAKER call 1 6.200 4.900 <NA> <NA> speaker2 <NA> <NA>\n"
        );
        assert_eq!(parse_rttm(&written).unwrap().len(), 2);
        assert!(write_rttm("my call", &[t(0.0, 1.0, "a b")]).starts_with("SPEAKER my_call 1 "));
    }

    #[test]
    fn rttm_errors_name_the_line() {
        let err =
            parse_rttm("SPEAKER f 1 0 1 <NA> <NA> a\nSPEAKER f 1 x 1 <NA> <NA> b\n").unwrap_err();
        assert_eq!(err.line, 2);
        assert!(
            err.to_string().starts_with("RTTM line 2: field 4 (start)"),
            "{err}"
        );
        let err = parse_rttm("\nSPEAKER f 1 0 1\n").unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.reason.contains("8 fields"), "{err}");
        let err = parse_rttm("SPEAKER f 1 0 -1 <NA> <NA> a\n").unwrap_err();
        assert!(err.reason.contains("duration"), "{err}");
    }
}
