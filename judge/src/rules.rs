//! The rules at work: a rulebook over one call's segments → its findings.
//!
//! Phrase rules read each party's utterances ([`crate::transcript`]) and report where a phrase
//! was found, quoting the words as said; hits of one rule in one moment (one sentence, or
//! sentences less than [`MOMENT_GAP_MS`] apart) are one finding quoting them all, so "shut up,
//! you idiot" or "stop calling me, take me off your list" is one flag. A required phrase that
//! is missing is one finding about the start of the call. Number rules report each card and
//! social security number once. Timing rules (dead air, talk ratio, call length) measure
//! segment times.
//!
//! A rule about one party reads only that party's words when the transcript has roles; a
//! transcript without any (not diarized, roles not assigned) is read whole rather than not at
//! all, so a missing disclosure is not flagged on every such call and a card number is not
//! missed. A talk ratio needs roles and is skipped without them.
//!
//! Findings come out in order of their start time, rules in rulebook order at the same time.

use std::ops::Range;

use callscript_core::transcripts::SegmentRecord;

use crate::matcher::find_all;
use crate::normalize;
use crate::rulebook::{Party, Rule, RuleKind, Rulebook};
use crate::transcript::{NumberKind, Transcript};
use crate::Finding;

/// How many words before a card or social security number its evidence quotes.
const NUMBER_CONTEXT_WORDS: usize = 4;

/// Hits of one rule by one party closer than this belong to the same moment: one request said
/// twice in a breath, one outburst.
pub const MOMENT_GAP_MS: i32 = 5_000;

impl Rulebook {
    /// The findings of every rule on a call's segments as transcribed. `call_duration_ms` is the
    /// recording's length when known; the last segment's end stands in for it otherwise.
    pub fn evaluate(
        &self,
        segments: &[SegmentRecord],
        call_duration_ms: Option<i32>,
    ) -> Vec<Finding> {
        self.evaluate_transcript(&Transcript::new(segments), call_duration_ms)
    }

    /// The findings of every rule on a transcript as read ([`Transcript::read`] for one
    /// stored redacted, with its numbers' findings).
    pub fn evaluate_transcript(
        &self,
        transcript: &Transcript<'_>,
        call_duration_ms: Option<i32>,
    ) -> Vec<Finding> {
        let call_end = call_duration_ms.unwrap_or_else(|| {
            transcript
                .segments
                .iter()
                .map(|s| s.end_ms)
                .max()
                .unwrap_or(0)
        });
        let mut findings = Vec::new();
        for rule in &self.rules {
            check(rule, transcript, call_end, &mut findings);
        }
        findings.sort_by_key(|f| f.start_ms);
        findings
    }
}

fn check(rule: &Rule, t: &Transcript<'_>, call_end: i32, out: &mut Vec<Finding>) {
    match &rule.kind {
        RuleKind::RequiredPhrase {
            phrases,
            by,
            within_seconds,
            fuzziness,
        } => {
            let within_ms = within_seconds.map(milliseconds);
            let said = occurrences(t, phrases, *by, *fuzziness)
                .into_iter()
                .any(|(u, words)| within_ms.is_none_or(|w| i64::from(t.times(u, words).0) <= w));
            if !said {
                let mut evidence = format!("no \"{}\"", phrases[0]);
                if phrases.len() > 1 {
                    let others = phrases.len() - 1;
                    let s = if others == 1 { "" } else { "s" };
                    evidence.push_str(&format!(" (or {others} other phrase{s})"));
                }
                if *by != Party::Anyone {
                    evidence.push_str(&format!(" by the {}", by.as_str()));
                }
                if let Some(w) = within_ms {
                    evidence.push_str(&format!(" in the first {} s", seconds(w)));
                }
                let end = within_ms.map_or(call_end, |w| i32::try_from(w).unwrap_or(i32::MAX));
                out.push(about_call(rule, evidence, end, *by));
            }
        }
        RuleKind::ForbiddenPhrase {
            phrases,
            by,
            fuzziness,
        }
        | RuleKind::DoNotCall {
            phrases,
            by,
            fuzziness,
        }
        | RuleKind::AbusiveLanguage {
            words: phrases,
            by,
            fuzziness,
        } => {
            for (u, words) in moments(t, occurrences(t, phrases, *by, *fuzziness)) {
                out.push(said(rule, t, u, words.clone(), words));
            }
        }
        RuleKind::PaymentCard { by } => numbers(rule, t, NumberKind::PaymentCard, *by, out),
        RuleKind::Ssn { by } => numbers(rule, t, NumberKind::SocialSecurity, *by, out),
        RuleKind::DeadAir { max_seconds } => {
            // Silence counts from the start of the recording to its end, not only between
            // segments: a call that opens on a minute of nothing, trails off into one, or holds
            // no speech at all (an empty transcript of a known length) is dead air too.
            let max_ms = milliseconds(*max_seconds);
            let mut order: Vec<&SegmentRecord> = t.segments.iter().collect();
            order.sort_by_key(|s| s.start_ms);
            let mut silent_since = 0;
            let speech_then_end = order
                .iter()
                .map(|s| (s.start_ms, s.end_ms))
                .chain(std::iter::once((call_end, call_end)));
            for (start_ms, end_ms) in speech_then_end {
                let gap = i64::from(start_ms) - i64::from(silent_since);
                if gap > max_ms {
                    out.push(Finding {
                        start_ms: Some(silent_since),
                        end_ms: Some(start_ms),
                        ..about_call(
                            rule,
                            format!("no speech for {} s", seconds(gap)),
                            0,
                            Party::Anyone,
                        )
                    });
                }
                silent_since = silent_since.max(end_ms);
            }
        }
        RuleKind::TalkRatio { by, min, max } => {
            if !t.roles_known {
                return;
            }
            let duration = |s: &&SegmentRecord| i64::from(s.end_ms - s.start_ms).max(0);
            let total: i64 = t.segments.iter().map(|s| duration(&s)).sum();
            let part: i64 = t
                .segments
                .iter()
                .filter(|s| s.role == by.role())
                .map(|s| duration(&s))
                .sum();
            if total == 0 {
                return;
            }
            let share = part as f64 / total as f64;
            let percent = |x: f64| (x * 100.0).round();
            let limit = match (min, max) {
                (Some(lo), _) if share < *lo => format!("at least {}%", percent(*lo)),
                (_, Some(hi)) if share > *hi => format!("at most {}%", percent(*hi)),
                _ => return,
            };
            let evidence = format!(
                "the {} spoke {}% of the talk time ({limit} expected)",
                by.as_str(),
                percent(share)
            );
            out.push(about_call(rule, evidence, call_end, *by));
        }
        RuleKind::CallTooShort { min_seconds } => {
            let min_ms = milliseconds(*min_seconds);
            if i64::from(call_end) < min_ms {
                let evidence = format!(
                    "the call lasted {} s (at least {} s expected)",
                    seconds(i64::from(call_end)),
                    seconds(min_ms)
                );
                out.push(about_call(rule, evidence, call_end, Party::Anyone));
            }
        }
    }
}

/// Every occurrence of any of `phrases` in `by`'s utterances: (utterance, words), each stretch
/// of words once even when several phrases match it.
fn occurrences(
    t: &Transcript<'_>,
    phrases: &[String],
    by: Party,
    fuzziness: f64,
) -> Vec<(usize, Range<usize>)> {
    let phrases: Vec<Vec<String>> = phrases.iter().map(|p| normalize::phrase(p)).collect();
    let mut out = Vec::new();
    for (u, utterance) in t.utterances.iter().enumerate() {
        if !t.said_by(utterance, by.role()) {
            continue;
        }
        let mut found: Vec<Range<usize>> = Vec::new();
        for phrase in &phrases {
            for words in find_all(phrase, &utterance.words, fuzziness) {
                if !found
                    .iter()
                    .any(|f| f.start < words.end && words.start < f.end)
                {
                    found.push(words);
                }
            }
        }
        found.sort_by_key(|r| r.start);
        out.extend(found.into_iter().map(|words| (u, words)));
    }
    out
}

/// `hits` (in utterance and word order) with those of one utterance less than
/// [`MOMENT_GAP_MS`] apart joined: from the first one's first word to the last one's last.
fn moments(t: &Transcript<'_>, hits: Vec<(usize, Range<usize>)>) -> Vec<(usize, Range<usize>)> {
    let mut out: Vec<(usize, Range<usize>)> = Vec::new();
    for (u, words) in hits {
        if let Some((last_u, last)) = out.last_mut() {
            let (_, last_end) = t.times(*last_u, last.clone());
            let (start, _) = t.times(u, words.clone());
            if *last_u == u && start - last_end < MOMENT_GAP_MS {
                last.end = last.end.max(words.end);
                continue;
            }
        }
        out.push((u, words));
    }
    out
}

/// A finding for each card or social security number said by `by`, quoting its label and the
/// words before it in its segment.
fn numbers(rule: &Rule, t: &Transcript<'_>, kind: NumberKind, by: Party, out: &mut Vec<Finding>) {
    // (last four digits, end) of each number flagged: the same number read again a moment
    // later (the rest of a card after the agent's "sorry, after the first four?") is one finding.
    let mut flagged: Vec<(&str, i32)> = Vec::new();
    for number in t.sensitive.iter().filter(|s| s.kind == kind) {
        let utterance = &t.utterances[number.utterance];
        if !t.said_by(utterance, by.role()) {
            continue;
        }
        let (start_ms, end_ms) = t.times(number.utterance, number.words.clone());
        if flagged
            .iter()
            .any(|&(last4, end)| last4 == number.last4 && start_ms - end < MOMENT_GAP_MS)
        {
            continue;
        }
        flagged.push((&number.last4, end_ms));
        let segment = utterance.words[number.words.start].segment;
        let mut from = number.words.start;
        while from > 0
            && number.words.start - from < NUMBER_CONTEXT_WORDS
            && utterance.words[from - 1].segment == segment
        {
            from -= 1;
        }
        let quoted = from..number.words.end;
        out.push(said(
            rule,
            t,
            number.utterance,
            quoted,
            number.words.clone(),
        ));
    }
}

/// A finding about words of an utterance: `quoted` as evidence, timed by `timed`.
fn said(
    rule: &Rule,
    t: &Transcript<'_>,
    utterance: usize,
    quoted: Range<usize>,
    timed: Range<usize>,
) -> Finding {
    let (start, end) = t.times(utterance, timed);
    let u = &t.utterances[utterance];
    Finding {
        rule_id: rule.id.clone(),
        category: rule.category,
        severity: rule.severity,
        evidence: t.evidence(utterance, quoted),
        start_ms: Some(start),
        end_ms: Some(end),
        speaker: u.speaker.clone(),
        // Who said it is a guess when the roles are uncertain: no role rather than a wrong one.
        role: u.role.filter(|_| !t.roles_uncertain),
    }
}

/// A finding about the call from its start to `end_ms`, about `party`'s part when not anyone.
fn about_call(rule: &Rule, evidence: String, end_ms: i32, party: Party) -> Finding {
    Finding {
        rule_id: rule.id.clone(),
        category: rule.category,
        severity: rule.severity,
        evidence,
        start_ms: Some(0),
        end_ms: Some(end_ms),
        speaker: None,
        role: party.role(),
    }
}

fn milliseconds(seconds: f64) -> i64 {
    (seconds * 1000.0).round() as i64
}

/// Milliseconds as seconds for people: "30", "12.5".
fn seconds(ms: i64) -> String {
    if ms % 1000 == 0 {
        (ms / 1000).to_string()
    } else {
        format!("{:.1}", ms as f64 / 1000.0)
    }
}
