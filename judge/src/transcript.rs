//! A transcript as the rules read it: each party's utterances as one run of normalized words,
//! and the payment-card and social security numbers spoken in them.
//!
//! Whisper cuts segments at pauses and at its 30 s windows, often mid-sentence and mid-number
//! ("my card is four one one one one one one one" | "one one one one one one one one"). A
//! party's segments less than [`JOIN_GAP_MS`] apart are therefore read as one utterance, even
//! when the other party's "mhm" falls between them on the other channel: phrases and numbers
//! are found across the cut. A party is a segment's speaker, channel and role together.
//!
//! Sensitive numbers are found once here, so every piece of evidence, whichever rule quotes it,
//! shows a card or social security number only as its last four digits, and redaction replaces
//! the same words the payment-card rule flagged.

use std::collections::HashMap;
use std::ops::Range;

use callscript_core::model::SpeakerRole;
use callscript_core::transcripts::SegmentRecord;

use crate::normalize::{self, Word};

/// A party's segments closer than this are one utterance.
pub const JOIN_GAP_MS: i32 = 10_000;

/// Words that may sit between the digit groups of one spoken number.
const FILLERS: &[&str] = &["uh", "um", "er", "ah", "eh", "hmm", "mm", "dash"];

/// How long after "social security" (said by either party) a nine-digit number counts as one.
const SSN_CUE_MS: i32 = 30_000;

/// Who said a segment: its speaker, channel and role.
type Party<'s> = (Option<&'s str>, Option<i16>, Option<SpeakerRole>);

/// One segment's share of a stretch of words: its bytes, and the sensitive numbers in them
/// with what replaces each.
struct Piece {
    segment: usize,
    bytes: Range<usize>,
    masks: Vec<(Range<usize>, String)>,
}

/// A normalized word and the segment it was said in.
#[derive(Debug, Clone)]
pub struct Spoken {
    pub word: Word,
    pub segment: usize,
}

impl AsRef<str> for Spoken {
    fn as_ref(&self) -> &str {
        &self.word.text
    }
}

/// One party's consecutive segments and their words.
#[derive(Debug, Clone)]
pub struct Utterance {
    pub speaker: Option<String>,
    pub role: Option<SpeakerRole>,
    pub words: Vec<Spoken>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumberKind {
    PaymentCard,
    SocialSecurity,
}

/// A card or social security number: the words it was said in (digits and the fillers between
/// them) and its last four digits.
#[derive(Debug, Clone)]
pub struct Sensitive {
    pub kind: NumberKind,
    pub utterance: usize,
    pub words: Range<usize>,
    pub last4: String,
}

impl Sensitive {
    /// What stands in its place where it starts.
    pub fn label(&self) -> String {
        match self.kind {
            NumberKind::PaymentCard => format!("[card ending {}]", self.last4),
            NumberKind::SocialSecurity => format!("[ssn ending {}]", self.last4),
        }
    }

    /// What stands in its place in later segments it runs into.
    pub fn continued(&self) -> &'static str {
        match self.kind {
            NumberKind::PaymentCard => "[card continued]",
            NumberKind::SocialSecurity => "[ssn continued]",
        }
    }
}

/// The segments of one call read for the rules.
pub struct Transcript<'a> {
    pub segments: &'a [SegmentRecord],
    /// In order of their first segment's start.
    pub utterances: Vec<Utterance>,
    /// Whether any segment is attributed to the agent or the customer; without roles a rule
    /// about one party reads every party.
    pub roles_known: bool,
    pub sensitive: Vec<Sensitive>,
}

impl<'a> Transcript<'a> {
    pub fn new(segments: &'a [SegmentRecord]) -> Transcript<'a> {
        let mut order: Vec<usize> = (0..segments.len()).collect();
        order.sort_by_key(|&i| (segments[i].start_ms, i));
        let mut utterances: Vec<Utterance> = Vec::new();
        let mut ends: Vec<i32> = Vec::new();
        let mut open: HashMap<Party<'_>, usize> = HashMap::new();
        for i in order {
            let segment = &segments[i];
            let party = (segment.speaker.as_deref(), segment.channel, segment.role);
            let index = match open.get(&party) {
                Some(&u) if segment.start_ms - ends[u] <= JOIN_GAP_MS => u,
                _ => {
                    utterances.push(Utterance {
                        speaker: segment.speaker.clone(),
                        role: segment.role,
                        words: Vec::new(),
                    });
                    ends.push(segment.end_ms);
                    open.insert(party, utterances.len() - 1);
                    utterances.len() - 1
                }
            };
            ends[index] = ends[index].max(segment.end_ms);
            utterances[index].words.extend(
                normalize::words(&segment.text)
                    .into_iter()
                    .map(|word| Spoken { word, segment: i }),
            );
        }
        let roles_known = segments
            .iter()
            .any(|s| matches!(s.role, Some(SpeakerRole::Agent | SpeakerRole::Customer)));
        let mut transcript = Transcript {
            segments,
            utterances,
            roles_known,
            sensitive: Vec::new(),
        };
        transcript.sensitive = transcript.find_sensitive();
        transcript
    }

    /// Whether `utterance` was said by `role` (any party when `role` is `None` or roles are
    /// unknown).
    pub fn said_by(&self, utterance: &Utterance, role: Option<SpeakerRole>) -> bool {
        match role {
            Some(role) if self.roles_known => utterance.role == Some(role),
            _ => true,
        }
    }

    /// When `words` of `utterance` were said: the first one's segment start to the latest end of
    /// their segments.
    pub fn times(&self, utterance: usize, words: Range<usize>) -> (i32, i32) {
        let spoken = &self.utterances[utterance].words[words];
        let start = self.segments[spoken[0].segment].start_ms;
        let end = spoken
            .iter()
            .map(|w| self.segments[w.segment].end_ms)
            .max()
            .unwrap_or(start);
        (start, end)
    }

    /// `words` of `utterance` as written in the segments (pieces of different segments joined
    /// by a space), with sensitive numbers replaced by their labels. A number that runs on into
    /// later segments shows once, where it starts.
    pub fn evidence(&self, utterance: usize, words: Range<usize>) -> String {
        self.pieces(utterance, words, true)
            .into_iter()
            .map(|piece| {
                splice(
                    &self.segments[piece.segment].text,
                    piece.bytes,
                    &piece.masks,
                )
                .trim()
                .to_owned()
            })
            .filter(|piece| !piece.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// What redaction replaces: (segment, bytes, label) for every piece of every payment card.
    pub fn card_replacements(&self) -> Vec<(usize, Range<usize>, String)> {
        let mut out = Vec::new();
        for card in self
            .sensitive
            .iter()
            .filter(|s| s.kind == NumberKind::PaymentCard)
        {
            for piece in self.pieces(card.utterance, card.words.clone(), false) {
                let segment = piece.segment;
                out.extend(
                    piece
                        .masks
                        .into_iter()
                        .map(|(bytes, label)| (segment, bytes, label)),
                );
            }
        }
        out
    }

    /// `words` split by segment, each piece with the sensitive numbers within it. With `once`,
    /// a number that starts within `words` is labelled where it starts and its continuations
    /// in later segments are left out.
    fn pieces(&self, utterance: usize, words: Range<usize>, once: bool) -> Vec<Piece> {
        let spoken = &self.utterances[utterance].words;
        let bytes = |r: Range<usize>| {
            let start = spoken[r.start].word.span.start;
            let end = spoken[r.clone()]
                .iter()
                .map(|w| w.word.span.end)
                .max()
                .unwrap_or(start);
            start..end
        };
        let mut out = Vec::new();
        let mut k = words.start;
        while k < words.end {
            let segment = spoken[k].segment;
            let mut e = k;
            while e < words.end && spoken[e].segment == segment {
                e += 1;
            }
            let masks = self
                .sensitive
                .iter()
                .filter(|s| s.utterance == utterance)
                .filter_map(|s| {
                    let from = s.words.start.max(k);
                    let to = s.words.end.min(e);
                    (from < to).then(|| {
                        let label = if from == s.words.start {
                            s.label()
                        } else if once && s.words.start >= words.start {
                            String::new()
                        } else {
                            s.continued().to_owned()
                        };
                        (bytes(from..to), label)
                    })
                })
                .collect();
            out.push(Piece {
                segment,
                bytes: bytes(k..e),
                masks,
            });
            k = e;
        }
        out
    }

    fn find_sensitive(&self) -> Vec<Sensitive> {
        let cues = self.ssn_cues();
        let mut found = Vec::new();
        for (u, utterance) in self.utterances.iter().enumerate() {
            for run in digit_runs(&utterance.words) {
                let cards = cards_in(&utterance.words, &run);
                let is_card = |w: &usize| cards.iter().any(|c| c.contains(w));
                // A social security number is the whole run, or what of it one segment holds
                // (two numbers said in turn run together across the cut).
                let mut candidates: Vec<&[usize]> = run
                    .chunk_by(|&a, &b| utterance.words[a].segment == utterance.words[b].segment)
                    .collect();
                if candidates.len() > 1 {
                    candidates.push(&run);
                }
                for candidate in candidates {
                    if candidate.iter().any(is_card) {
                        continue;
                    }
                    if let Some(last4) = self.ssn_in(u, candidate, &cues) {
                        found.push(Sensitive {
                            kind: NumberKind::SocialSecurity,
                            utterance: u,
                            words: candidate[0]..candidate[candidate.len() - 1] + 1,
                            last4,
                        });
                    }
                }
                found.extend(cards.into_iter().map(|words| Sensitive {
                    kind: NumberKind::PaymentCard,
                    utterance: u,
                    last4: last_digits(&utterance.words[words.clone()]),
                    words,
                }));
            }
        }
        found
    }

    /// Where "social security" or "ssn" was said: (utterance, word, segment).
    fn ssn_cues(&self) -> Vec<(usize, usize, usize)> {
        let mut cues = Vec::new();
        for (u, utterance) in self.utterances.iter().enumerate() {
            let text: Vec<&str> = utterance.words.iter().map(|w| w.as_ref()).collect();
            for (k, word) in text.iter().enumerate() {
                if matches!(*word, "social" | "ssn") || text[k..].starts_with(&["s", "s", "n"]) {
                    cues.push((u, k, utterance.words[k].segment));
                }
            }
        }
        cues
    }

    /// The last four digits of the social security number `run` is, if it is one: nine digits
    /// grouped 3-2-4, or nine digits after a cue, with a valid area, group and serial.
    fn ssn_in(&self, u: usize, run: &[usize], cues: &[(usize, usize, usize)]) -> Option<String> {
        let words = &self.utterances[u].words;
        let digits: String = run.iter().map(|&w| words[w].as_ref()).collect();
        if digits.len() != 9 {
            return None;
        }
        let grouped = run.len() == 3 && run.iter().map(|&w| words[w].as_ref().len()).eq([3, 2, 4]);
        let first = &words[run[0]];
        let at = &self.segments[first.segment];
        let cued = cues.iter().any(|&(cu, ck, cs)| {
            let cue = &self.segments[cs];
            if cs == first.segment {
                cu == u && ck < run[0]
            } else {
                cue.start_ms <= at.start_ms && at.start_ms - cue.end_ms <= SSN_CUE_MS
            }
        });
        let valid = !matches!(&digits[..3], "000" | "666")
            && !digits.starts_with('9')
            && &digits[3..5] != "00"
            && &digits[5..] != "0000";
        ((grouped || cued) && valid).then(|| digits[5..].to_owned())
    }
}

/// Runs of number words (as indices), allowing fillers between them.
fn digit_runs(words: &[Spoken]) -> Vec<Vec<usize>> {
    let mut runs = Vec::new();
    let mut run: Vec<usize> = Vec::new();
    for (k, spoken) in words.iter().enumerate() {
        if spoken.word.number {
            run.push(k);
        } else if !run.is_empty() && !FILLERS.contains(&spoken.as_ref()) {
            runs.push(std::mem::take(&mut run));
        }
    }
    runs.extend((!run.is_empty()).then_some(run));
    runs
}

/// The card numbers in a run of numbers (as word ranges): 13 to 19 digits passing the Luhn
/// check, starting at the earliest word that starts one, preferring 16 digits, then 15, then
/// the longest.
fn cards_in(words: &[Spoken], run: &[usize]) -> Vec<Range<usize>> {
    let mut cards = Vec::new();
    let mut a = 0;
    while a < run.len() {
        let mut digits = String::new();
        let mut best: Option<(usize, usize)> = None; // (rank, last index in run)
        for (b, &w) in run.iter().enumerate().skip(a) {
            digits.push_str(words[w].as_ref());
            if digits.len() > 19 {
                break;
            }
            if digits.len() >= 13 && luhn(&digits) {
                let rank = match digits.len() {
                    16 => 0,
                    15 => 1,
                    len => 2 + (19 - len),
                };
                if best.is_none_or(|(r, _)| rank < r) {
                    best = Some((rank, b));
                }
            }
        }
        match best {
            Some((_, b)) => {
                cards.push(run[a]..run[b] + 1);
                a = b + 1;
            }
            None => a += 1,
        }
    }
    cards
}

/// The last four digits of the numbers among `words`.
fn last_digits(words: &[Spoken]) -> String {
    let digits: String = words
        .iter()
        .filter(|w| w.word.number)
        .map(|w| w.as_ref())
        .collect();
    digits[digits.len().saturating_sub(4)..].to_owned()
}

/// The Luhn checksum of a card number's digits.
pub fn luhn(digits: &str) -> bool {
    let mut sum = 0;
    for (i, b) in digits.bytes().rev().enumerate() {
        let mut d = u32::from(b - b'0');
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    sum % 10 == 0
}

/// `text[bytes]` with each of `masks` (ranges inside `bytes`) replaced by its label.
pub fn splice(text: &str, bytes: Range<usize>, masks: &[(Range<usize>, String)]) -> String {
    let mut out = String::new();
    let mut at = bytes.start;
    let mut masks: Vec<&(Range<usize>, String)> = masks.iter().collect();
    masks.sort_by_key(|(r, _)| r.start);
    for (range, label) in masks {
        out.push_str(&text[at..range.start]);
        out.push_str(label);
        at = range.end;
    }
    out.push_str(&text[at..bytes.end]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_checks() {
        assert!(luhn("4111111111111111"));
        assert!(luhn("378282246310005"));
        assert!(!luhn("4111111111111112"));
        assert!(!luhn("1234567812345678"));
    }
}
