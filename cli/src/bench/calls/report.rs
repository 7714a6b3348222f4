//! The figures of a `bench calls` run: the table it prints (one column per mix and split), the
//! per-rule table, the pipeline's speed, each call's misses for `--verbose`, and the JSON.

use std::fmt::Write as _;

use serde_json::{json, Value};

use super::lanes::Timing;
use super::manifest::{Mix, Split};
use super::score::{CallScore, RuleCounts, Summary, COLLAR};

/// One mix's run: how long it took and its calls' scores.
pub struct MixReport {
    pub mix: Mix,
    pub timing: Timing,
    pub calls: Vec<CallScore>,
}

pub struct Report {
    pub suite: String,
    pub seed: u64,
    pub generator: String,
    pub timezone: String,
    pub model: String,
    pub device: String,
    pub threads: usize,
    /// `name@version`.
    pub rulebook: String,
    pub rule_ids: Vec<String>,
    pub peak_memory_bytes: Option<u64>,
    pub mixes: Vec<MixReport>,
}

/// Width of a figure column.
const COLUMN: usize = 16;
/// Width of the row names.
const NAME: usize = 28;

fn share(part: usize, whole: usize) -> String {
    if whole == 0 {
        return "-".to_owned();
    }
    format!("{part}/{whole} {:.0}%", part as f64 / whole as f64 * 100.0)
}

fn rate(value: Option<f64>) -> String {
    value.map_or("-".to_owned(), |v| format!("{v:.2}"))
}

fn percent(value: f64) -> String {
    format!("{:.1}%", value * 100.0)
}

/// `precision/recall (expected)` of one rule.
fn rule_cell(counts: &RuleCounts) -> String {
    if counts.expected == 0 && counts.raised == 0 {
        return "-".to_owned();
    }
    format!(
        "{}/{} ({})",
        rate(counts.precision()),
        rate(counts.recall()),
        counts.expected
    )
}

impl Report {
    /// Each mix's calls of each split, summed: the table's columns.
    fn columns(&self) -> Vec<(Mix, Split, Summary)> {
        self.mixes
            .iter()
            .flat_map(|m| {
                Split::ALL.into_iter().map(move |split| {
                    let calls = m.calls.iter().filter(move |c| c.split == split);
                    (m.mix, split, Summary::of(&self.rule_ids, calls))
                })
            })
            .collect()
    }

    pub fn render(&self) -> String {
        let columns = self.columns();
        let mut out = String::new();
        let (tune, holdout) = self.mixes.first().map_or((0, 0), |m| {
            let tune = m.calls.iter().filter(|c| c.split == Split::Tune).count();
            (tune, m.calls.len() - tune)
        });
        let _ = writeln!(
            out,
            "phone-call suite {} (seed {}, {}): {} calls ({tune} tune, {holdout} holdout), \
             time zone {}",
            self.suite,
            self.seed,
            self.generator,
            tune + holdout,
            self.timezone
        );
        let _ = writeln!(
            out,
            "model {} on {}, {} threads; rulebook {}; enqueue → worker (diarizing) → judge",
            self.model, self.device, self.threads, self.rulebook
        );
        let header = |out: &mut String, first: &str| {
            let _ = write!(out, "\n{first:<NAME$}");
            for (mix, split, _) in &columns {
                let _ = write!(
                    out,
                    "{:>COLUMN$}",
                    format!("{} {}", mix.as_str(), split.as_str())
                );
            }
            out.push('\n');
        };
        // A split without calls (a slice of the suite) has no figures.
        let row = |out: &mut String, name: &str, cell: &dyn Fn(&Summary) -> String| {
            let _ = write!(out, "{name:<NAME$}");
            for (_, _, summary) in &columns {
                let text = if summary.calls == 0 {
                    "-".to_owned()
                } else {
                    cell(summary)
                };
                let _ = write!(out, "{text:>COLUMN$}");
            }
            out.push('\n');
        };
        header(&mut out, "");
        row(&mut out, "calls judged", &|s| share(s.judged, s.calls));
        row(&mut out, "flags precision", &|s| {
            format!(
                "{} ({}/{})",
                rate(s.flags.precision()),
                s.flags.correct,
                s.flags.raised
            )
        });
        row(&mut out, "flags recall", &|s| {
            format!(
                "{} ({}/{})",
                rate(s.flags.recall()),
                s.flags.correct,
                s.flags.expected
            )
        });
        row(&mut out, "temperature right", &|s| {
            share(s.temperature_right, s.calls)
        });
        row(&mut out, "hot calls hot", &|s| {
            share(s.hot_calls_hot, s.hot_calls)
        });
        row(&mut out, "callback right (all calls)", &|s| {
            share(s.callback_right, s.calls)
        });
        row(&mut out, "callbacks asked, right", &|s| {
            share(s.callbacks_expected_right, s.callbacks_expected)
        });
        row(&mut out, "callbacks not asked for", &|s| {
            s.callbacks_unasked.to_string()
        });
        row(&mut out, "DER collar 0", &|s| percent(s.der.der()));
        row(&mut out, &format!("DER collar {COLLAR} s"), &|s| {
            percent(s.der_collar.der())
        });
        row(&mut out, "speaker count right", &|s| {
            share(s.speaker_count_right, s.calls)
        });
        row(&mut out, "roles right (speech time)", &|s| {
            s.role_time_percent()
                .map_or("-".to_owned(), |p| format!("{p:.1}%"))
        });
        row(&mut out, "roles right (calls)", &|s| {
            share(s.roles_right, s.calls)
        });
        row(&mut out, "WER", &|s| percent(s.words.wer()));
        row(&mut out, "words in non-speech", &|s| {
            s.words_in_non_speech.to_string()
        });

        header(&mut out, "rule: precision/recall (n)");
        let mut rules: Vec<&String> = columns
            .iter()
            .flat_map(|(_, _, s)| s.rules.keys())
            .collect();
        rules.sort();
        rules.dedup();
        for rule in rules {
            row(&mut out, rule, &|s| {
                s.rules.get(rule).map_or("-".to_owned(), rule_cell)
            });
        }

        let _ = writeln!(
            out,
            "\n{:<8} {:>6} {:>9} {:>8} {:>12} {:>10} {:>10} {:>9} {:>9}",
            "pipeline",
            "calls",
            "audio s",
            "wall s",
            "audio/wall",
            "enqueue s",
            "worker s",
            "model s",
            "judge s"
        );
        for m in &self.mixes {
            let t = &m.timing;
            let _ = writeln!(
                out,
                "{:<8} {:>6} {:>9.1} {:>8.1} {:>11.2}x {:>10.2} {:>10.1} {:>9.1} {:>9.2}",
                m.mix.as_str(),
                m.calls.len(),
                t.audio_seconds,
                t.wall_seconds(),
                t.speed(),
                t.enqueue_seconds,
                t.worker_seconds,
                t.model_seconds,
                t.judge_seconds
            );
        }
        let _ = writeln!(
            out,
            "(wall: first enqueue to the judge idle, model loading not counted; model s: the \
             worker's time in the model, transcribing and diarizing)"
        );
        if let Some(bytes) = self.peak_memory_bytes {
            let _ = writeln!(
                out,
                "peak memory of the whole run (VmHWM): {:.0} MiB",
                bytes as f64 / (1 << 20) as f64
            );
        }
        out
    }

    /// Each call with something wrong, and what.
    pub fn render_misses(&self) -> String {
        let mut out = String::from("\nmisses:\n");
        let mut any = false;
        for m in &self.mixes {
            for call in &m.calls {
                let misses = call.misses();
                if misses.is_empty() {
                    continue;
                }
                any = true;
                let _ = writeln!(
                    out,
                    "  {} {} ({}, {}): {}",
                    call.id,
                    call.mix.as_str(),
                    call.split.as_str(),
                    call.scenario,
                    misses.join("; ")
                );
            }
        }
        if !any {
            out.push_str("  (none)\n");
        }
        out
    }

    pub fn to_json(&self) -> Value {
        let mut mixes = serde_json::Map::new();
        for m in &self.mixes {
            let mut entry = json!({
                "timing": m.timing,
                "wall_seconds": m.timing.wall_seconds(),
                "audio_seconds_per_wall_second": m.timing.speed(),
            });
            for split in Split::ALL {
                let summary =
                    Summary::of(&self.rule_ids, m.calls.iter().filter(|c| c.split == split));
                entry[split.as_str()] = json!({
                    "figures": summary.figures(),
                    "counts": summary,
                });
            }
            mixes.insert(m.mix.as_str().to_owned(), entry);
        }
        json!({
            "suite": self.suite,
            "seed": self.seed,
            "generator": self.generator,
            "timezone": self.timezone,
            "model": self.model,
            "device": self.device,
            "threads": self.threads,
            "rulebook": self.rulebook,
            "collar": COLLAR,
            "peak_memory_bytes": self.peak_memory_bytes,
            "mixes": mixes,
            "calls": self.mixes.iter().flat_map(|m| &m.calls).collect::<Vec<_>>(),
        })
    }
}
