//! Payment-card numbers out of transcript text.
//!
//! PCI DSS allows no stored card number in the clear, and a transcript is stored. A card
//! number said aloud ("four one one one …", "4111 1111 1111 1111", split across segments
//! where Whisper cut the sentence) becomes "[card ending 1111]" where it starts and "[card
//! continued]" in each later segment it runs into; the words around it stay as they were. The
//! numbers are those the `payment_card` rule flags (13–19 digits, Luhn-valid), found by
//! [`crate::transcript`], so an order number that fails the checksum is left alone.
//!
//! The judge evaluates the rulebook first (the card rule needs the digits; its evidence is
//! already cut to the last four) and redacts the stored transcript after.

use callscript_core::transcripts::SegmentRecord;

use crate::transcript::{NumberKind, Transcript};

/// Replaces every payment-card number in `segments` by "[card ending NNNN]"; returns how many
/// card numbers were replaced.
pub fn redact_payment_cards(segments: &mut [SegmentRecord]) -> usize {
    let (count, mut replacements) = {
        let transcript = Transcript::new(segments);
        let count = transcript
            .sensitive
            .iter()
            .filter(|s| s.kind == NumberKind::PaymentCard)
            .count();
        (count, transcript.card_replacements())
    };
    // Last bytes first, so earlier ranges of the same segment stay valid.
    replacements.sort_by_key(|(segment, bytes, _)| std::cmp::Reverse((*segment, bytes.start)));
    for (segment, bytes, label) in replacements {
        segments[segment].text.replace_range(bytes, &label);
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(redact_payment_cards(&mut segments), 3);
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
        // Nothing left to redact the second time.
        assert_eq!(redact_payment_cards(&mut segments), 0);
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
        assert_eq!(redact_payment_cards(&mut segments), 0);
        assert_eq!(segments, before);
    }
}
