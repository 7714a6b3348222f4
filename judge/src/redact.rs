//! Card and social security numbers out of transcript text.
//!
//! PCI DSS allows no stored card number in the clear, and a transcript is stored; neither is a
//! social security number kept. A number said aloud ("four one one one …", "4111 1111 1111
//! 1111", split across segments where Whisper cut the sentence) becomes "[card ending 1111]"
//! ("[ssn ending 6789]") where it starts and "[card continued]" in each later segment it runs
//! into; the words around it stay as they were. The numbers are those the number rules flag
//! (a card: 13–19 digits, Luhn-valid), found by [`crate::transcript`], so an order number that
//! fails the checksum is left alone.
//!
//! Redaction returns every number as a [`PiiFinding`] pointing at its label in the redacted
//! text: the judge stores them with the text and evaluates the rules on both, so judging the
//! call again (which reads the stored findings) flags the same numbers the same way.

use std::ops::Range;

use callscript_core::transcripts::SegmentRecord;

use crate::normalize;
use crate::pii::PiiFinding;
use crate::transcript::Transcript;

/// What [`redact`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redaction {
    /// Every number in the segments, `stored` and new, where its label now stands.
    pub findings: Vec<PiiFinding>,
    /// How many numbers were found now and replaced by their labels.
    pub redacted: usize,
}

/// Replaces every card and social security number of `segments` not among `stored` (findings
/// already redacted in them) by its label; new findings are marked `detected_by`.
pub fn redact(
    segments: &mut [SegmentRecord],
    stored: &[PiiFinding],
    detected_by: &str,
) -> Redaction {
    let (mut findings, labels, redacted) = {
        let t = Transcript::read(segments, stored);
        let redacted = t.sensitive.iter().filter(|s| s.stored.is_none()).count();
        if redacted == 0 {
            return Redaction {
                findings: stored.to_vec(),
                redacted,
            };
        }
        let mut findings = Vec::new();
        let mut labels = Vec::new();
        for (number, s) in t.sensitive.iter().enumerate() {
            let (start_ms, end_ms) = t.times(s.utterance, s.words.clone());
            let utterance = &t.utterances[s.utterance];
            findings.push(PiiFinding {
                kind: s.kind,
                first_segment: 0,
                first_word: 0,
                last_segment: 0,
                end_word: 0,
                start_ms,
                end_ms,
                speaker: utterance.speaker.clone(),
                role: utterance.role,
                last_four: s.last4.clone(),
                detected_by: s
                    .stored
                    .map_or(detected_by, |i| stored[i].detected_by.as_str())
                    .to_owned(),
            });
            labels.extend(
                t.labels(s)
                    .into_iter()
                    .map(|(segment, bytes, label)| Label {
                        number,
                        segment,
                        bytes,
                        label,
                    }),
            );
        }
        (findings, labels, redacted)
    };
    // Each number's labels in segment order: it starts at the first and ends with the last.
    let mut placed: Vec<Vec<(usize, Range<usize>)>> = vec![Vec::new(); findings.len()];
    for (number, segment, words) in relabel(segments, labels) {
        placed[number].push((segment, words));
    }
    for (finding, placed) in findings.iter_mut().zip(placed) {
        if let (Some((first, words)), Some((last, end))) = (placed.first(), placed.last()) {
            (finding.first_segment, finding.first_word) = (*first, words.start);
            (finding.last_segment, finding.end_word) = (*last, end.end);
        }
    }
    Redaction { findings, redacted }
}

/// One segment's share of a number: its bytes there and what stands in their place.
struct Label {
    number: usize,
    segment: usize,
    bytes: Range<usize>,
    label: String,
}

/// Writes each label in place of its bytes; returns where each label's words are in the new
/// text, in segment order: (number, segment, words).
fn relabel(
    segments: &mut [SegmentRecord],
    mut labels: Vec<Label>,
) -> Vec<(usize, usize, Range<usize>)> {
    labels.sort_by_key(|l| (l.segment, l.bytes.start));
    let mut out = Vec::new();
    for labels in labels.chunk_by(|a, b| a.segment == b.segment) {
        let segment = labels[0].segment;
        let old = &segments[segment].text;
        let mut text = String::with_capacity(old.len());
        let mut placed = Vec::new();
        let mut at = 0;
        for label in labels {
            text.push_str(&old[at..label.bytes.start]);
            placed.push((label.number, text.len()..text.len() + label.label.len()));
            text.push_str(&label.label);
            at = label.bytes.end;
        }
        text.push_str(&old[at..]);
        let words = normalize::words(&text);
        out.extend(placed.into_iter().map(|(number, bytes)| {
            let inside: Vec<usize> = (0..words.len())
                .filter(|&k| words[k].span.start < bytes.end && bytes.start < words[k].span.end)
                .collect();
            let first = inside.first().copied().unwrap_or_default();
            (
                number,
                segment,
                first..inside.last().map_or(first, |k| k + 1),
            )
        }));
        segments[segment].text = text;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transcript::NumberKind;

    fn segment(start_ms: i32, speaker: &str, text: &str) -> SegmentRecord {
        SegmentRecord {
            start_ms,
            end_ms: start_ms + 2_000,
            speaker: Some(speaker.to_owned()),
            channel: None,
            role: None,
            text: text.to_owned(),
            avg_logprob: None,
            no_speech_prob: None,
        }
    }

    fn texts(segments: &[SegmentRecord]) -> Vec<&str> {
        segments.iter().map(|s| s.text.as_str()).collect()
    }

    #[test]
    fn spoken_and_written_cards_keep_their_last_four_only() {
        let mut segments = vec![
            segment(0, "A", " My card is four one one one one one one one"),
            segment(1_000, "B", " Mhm."),
            segment(
                2_500,
                "A",
                " one one one one one one one one, expiry twelve twenty six.",
            ),
            segment(6_000, "A", " The other one is 5555-5555-5555-4444."),
            segment(
                9_000,
                "A",
                " Or 378282246310005 and order 1234567812345678.",
            ),
        ];
        let first = redact(&mut segments, &[], "judge");
        assert_eq!(first.redacted, 3);
        assert_eq!(
            texts(&segments),
            [
                " My card is [card ending 1111]",
                " Mhm.",
                " [card continued], expiry twelve twenty six.",
                " The other one is [card ending 4444].",
                " Or [card ending 0005] and order 1234567812345678.",
            ]
        );
        // Each finding points at its label's words: "card ending 1111" … "card continued".
        let spans: Vec<_> = first
            .findings
            .iter()
            .map(|f| {
                let at = (f.first_segment, f.first_word, f.last_segment, f.end_word);
                (at, f.last_four.as_str(), f.start_ms, f.end_ms)
            })
            .collect();
        assert_eq!(
            spans,
            [
                ((0, 3, 2, 2), "1111", 0, 4_500),
                ((3, 4, 3, 7), "4444", 6_000, 8_000),
                ((4, 1, 4, 4), "0005", 9_000, 11_000),
            ]
        );
        // Read with its findings, the redacted text has nothing new to redact.
        let before = segments.clone();
        let again = redact(&mut segments, &first.findings, "judge");
        assert_eq!(again, first_without_new(&first));
        assert_eq!(segments, before);
    }

    /// `redaction` as a later run finds it: the same findings, nothing redacted now.
    fn first_without_new(redaction: &Redaction) -> Redaction {
        Redaction {
            findings: redaction.findings.clone(),
            redacted: 0,
        }
    }

    #[test]
    fn a_number_found_later_moves_the_stored_labels_after_it() {
        // The card was redacted and stored before; the social security number before it was
        // left in the clear (as the judge did before it redacted them).
        let mut segments = vec![segment(
            0,
            "A",
            " My social is zero seven eight zero five one one two zero, card [card ending 1111].",
        )];
        let card = PiiFinding {
            kind: NumberKind::PaymentCard,
            first_segment: 0,
            first_word: 13,
            last_segment: 0,
            end_word: 16,
            start_ms: 0,
            end_ms: 2_000,
            speaker: Some("A".into()),
            role: None,
            last_four: "1111".into(),
            detected_by: "judge".into(),
        };
        let both = redact(&mut segments, std::slice::from_ref(&card), "worker");
        assert_eq!(both.redacted, 1);
        assert_eq!(
            texts(&segments),
            [" My social is [ssn ending 1120], card [card ending 1111]."]
        );
        let ssn = PiiFinding {
            kind: NumberKind::SocialSecurity,
            first_word: 3,
            end_word: 6,
            last_four: "1120".into(),
            detected_by: "worker".into(),
            ..card.clone()
        };
        // The card's label moved six words closer to the start.
        let card = PiiFinding {
            first_word: 7,
            end_word: 10,
            ..card
        };
        assert_eq!(both.findings, [ssn, card]);
    }

    #[test]
    fn other_speakers_and_long_pauses_break_a_number() {
        // Eight digits each from two speakers, and from one speaker a minute apart: no card.
        let mut segments = vec![
            segment(0, "A", "four one one one one one one one"),
            segment(2_500, "B", "one one one one one one one one"),
            segment(60_000, "A", "one one one one one one one one"),
        ];
        let before = segments.clone();
        assert_eq!(redact(&mut segments, &[], "judge").redacted, 0);
        assert_eq!(segments, before);
    }
}
