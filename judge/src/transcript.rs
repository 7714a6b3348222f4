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
//! the same words the number rules flag. A number is one party's continuous speech: the other
//! party taking a turn ("and the expiry date?") ends it, their "mhm" does not, so an expiry or a
//! CVV said after the agent asks for it is never read as more digits of the card.
//!
//! A transcript already redacted is read with its stored findings ([`Transcript::read`]): each
//! label stands for the number it replaced, exactly as the number stood in the clear text, so
//! the rules flag it the same way; only words outside the labels are searched for new numbers.

use std::collections::HashMap;
use std::ops::Range;

use callscript_core::model::SpeakerRole;
use callscript_core::transcripts::SegmentRecord;

use crate::normalize::{self, Word};
use crate::pii::PiiFinding;

/// The role confidence (0–1, from the worker's role assignment) from which roles are trusted;
/// a call under it is marked for review and its roles read as unknown.
pub const ROLES_CERTAIN_FROM: f32 = 0.6;

/// A party's segments closer than this are one utterance.
pub const JOIN_GAP_MS: i32 = 10_000;

/// Words that may sit between the digit groups of one spoken number.
const FILLERS: &[&str] = &["uh", "um", "er", "ah", "eh", "hmm", "mm", "dash"];

/// How many digits a card number (13 to 19) may come out as with digits heard twice or lost
/// ("ten" for "one, zero", a group of four dropped).
const CARD_LENGTHS_HEARD: std::ops::RangeInclusive<usize> = 11..=20;

/// Words that say the digits after them are a card's.
const CARD_CUES: &[&str] = &[
    "card",
    "visa",
    "mastercard",
    "amex",
    "american",
    "discover",
    "credit",
    "debit",
];

/// Words that say the digits after them are some other number's.
const OTHER_NUMBER_CUES: &[&str] = &[
    "phone",
    "cell",
    "mobile",
    "zip",
    "postal",
    "order",
    "account",
    "confirmation",
    "tracking",
    "reference",
    "policy",
    "member",
    "routing",
    "address",
    "extension",
    "invoice",
    "claim",
    "case",
    "ticket",
];

/// How long after a cue a number is read by it.
const CARD_CUE_MS: i32 = 30_000;

/// How long after "social security" (said by either party) a nine-digit number counts as one.
const SSN_CUE_MS: i32 = 30_000;

/// What a party says while the other one talks without taking the turn: between two digit
/// groups it does not end a number.
const BACKCHANNEL: &[&str] = &[
    "mhm", "mm", "hmm", "hm", "uh", "huh", "um", "ah", "oh", "okay", "yeah", "yes", "yep", "right",
    "sure", "alright", "got", "it", "go", "ahead",
];

/// Who said a segment: its speaker, channel and role.
type Party<'s> = (Option<&'s str>, Option<i16>, Option<SpeakerRole>);

fn party(segment: &SegmentRecord) -> Party<'_> {
    (segment.speaker.as_deref(), segment.channel, segment.role)
}

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

impl NumberKind {
    /// Its name in `core.pii_kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            NumberKind::PaymentCard => "card",
            NumberKind::SocialSecurity => "ssn",
        }
    }

    pub fn parse(name: &str) -> Option<NumberKind> {
        match name {
            "card" => Some(NumberKind::PaymentCard),
            "ssn" => Some(NumberKind::SocialSecurity),
            _ => None,
        }
    }
}

/// A card or social security number: the words it was said in (digits and the fillers between
/// them, or its label where the text is redacted) and its last four digits.
#[derive(Debug, Clone)]
pub struct Sensitive {
    pub kind: NumberKind,
    pub utterance: usize,
    pub words: Range<usize>,
    pub last4: String,
    /// The stored finding it is (an index into [`Transcript::read`]'s `stored`): the text holds
    /// its label, not its digits.
    pub stored: Option<usize>,
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
    /// Whether the roles were assigned with too little confidence to trust
    /// ([`Transcript::with_role_confidence`]): read as if unknown, so a rule about one party
    /// (a do-not-call request by the customer) still fires, its finding with no role.
    pub roles_uncertain: bool,
    /// In order of utterance and first word.
    pub sensitive: Vec<Sensitive>,
    /// Each segment's utterance and the index of its first word there.
    placed: Vec<(usize, usize)>,
}

impl<'a> Transcript<'a> {
    /// `segments` as transcribed: every sensitive number is found in their words.
    pub fn new(segments: &'a [SegmentRecord]) -> Transcript<'a> {
        Transcript::read(segments, &[])
    }

    /// `segments` as stored, with the findings already redacted in them (`stored`): those are
    /// read from their labels, and new numbers are looked for in the other words only.
    pub fn read(segments: &'a [SegmentRecord], stored: &[PiiFinding]) -> Transcript<'a> {
        let mut placed = vec![(0, 0); segments.len()];
        let mut order: Vec<usize> = (0..segments.len()).collect();
        order.sort_by_key(|&i| (segments[i].start_ms, i));
        let mut utterances: Vec<Utterance> = Vec::new();
        let mut ends: Vec<i32> = Vec::new();
        let mut open: HashMap<Party<'_>, usize> = HashMap::new();
        for i in order {
            let segment = &segments[i];
            let who = party(segment);
            let index = match open.get(&who) {
                Some(&u) if segment.start_ms - ends[u] <= JOIN_GAP_MS => u,
                _ => {
                    utterances.push(Utterance {
                        speaker: segment.speaker.clone(),
                        role: segment.role,
                        words: Vec::new(),
                    });
                    ends.push(segment.end_ms);
                    open.insert(who, utterances.len() - 1);
                    utterances.len() - 1
                }
            };
            ends[index] = ends[index].max(segment.end_ms);
            placed[i] = (index, utterances[index].words.len());
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
            roles_uncertain: false,
            sensitive: Vec::new(),
            placed,
        };
        let mut sensitive: Vec<Sensitive> = stored
            .iter()
            .enumerate()
            .filter_map(|(index, finding)| transcript.place(index, finding))
            .collect();
        sensitive.extend(transcript.find_sensitive(&sensitive));
        sensitive.sort_by_key(|s| (s.utterance, s.words.start));
        transcript.sensitive = sensitive;
        transcript
    }

    /// Stored finding number `index` as the words of its label; `None` when the text has no
    /// such words (nothing to quote or time).
    fn place(&self, index: usize, finding: &PiiFinding) -> Option<Sensitive> {
        let &(utterance, first) = self.placed.get(finding.first_segment)?;
        let words = &self.utterances[utterance].words;
        let in_segment = |segment: usize| {
            let (u, from) = self.placed[segment];
            let to = from
                + words[from..]
                    .iter()
                    .take_while(|w| w.segment == segment)
                    .count();
            (u == utterance).then_some(from..to)
        };
        let start_segment = in_segment(finding.first_segment)?;
        let start = (first + finding.first_word).min(start_segment.end);
        // Its last segment is a later one of the same party; if not (the segments were read
        // otherwise), the label stands in its first segment alone.
        let end = self
            .placed
            .get(finding.last_segment)
            .and_then(|_| in_segment(finding.last_segment))
            .map_or(start_segment.end, |last| {
                (last.start + finding.end_word).min(last.end)
            });
        (start < end).then(|| Sensitive {
            kind: finding.kind,
            utterance,
            words: start..end,
            last4: finding.last_four.clone(),
            stored: Some(index),
        })
    }

    /// The transcript with the confidence its roles were assigned with (`None`: from a channel
    /// map, or none assigned): below [`ROLES_CERTAIN_FROM`] the roles are uncertain.
    pub fn with_role_confidence(mut self, confidence: Option<f32>) -> Transcript<'a> {
        self.roles_uncertain = confidence.is_some_and(|c| c < ROLES_CERTAIN_FROM);
        self
    }

    /// Whether `utterance` was said by `role` (any party when `role` is `None` or roles are
    /// unknown or uncertain).
    pub fn said_by(&self, utterance: &Utterance, role: Option<SpeakerRole>) -> bool {
        match role {
            Some(role) if self.roles_known && !self.roles_uncertain => utterance.role == Some(role),
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

    /// Where `number` stands, segment by segment: (segment, bytes, its label there), the label
    /// where it starts and its continuation after. A redacted number's bytes are its label's.
    pub fn labels(&self, number: &Sensitive) -> Vec<(usize, Range<usize>, String)> {
        self.pieces(number.utterance, number.words.clone(), false)
            .into_iter()
            .flat_map(|piece| {
                let segment = piece.segment;
                piece
                    .masks
                    .into_iter()
                    .map(move |(bytes, label)| (segment, bytes, label))
            })
            .collect()
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
                        let mut covered = bytes(from..to);
                        if s.stored.is_some() {
                            covered = bracketed(&self.segments[segment].text, covered);
                        }
                        (covered, label)
                    })
                })
                .collect::<Vec<_>>();
            // A label's brackets are outside its words.
            let mut covered = bytes(k..e);
            for (mask, _) in &masks {
                covered = covered.start.min(mask.start)..covered.end.max(mask.end);
            }
            out.push(Piece {
                segment,
                bytes: covered,
                masks,
            });
            k = e;
        }
        out
    }

    /// The numbers said in words outside `taken` (labels of numbers already found).
    fn find_sensitive(&self, taken: &[Sensitive]) -> Vec<Sensitive> {
        let cues = self.ssn_cues();
        let mut found = Vec::new();
        for (u, utterance) in self.utterances.iter().enumerate() {
            let taken: Vec<&Range<usize>> = taken
                .iter()
                .filter(|s| s.utterance == u)
                .map(|s| &s.words)
                .collect();
            for run in self.digit_runs(u, &taken) {
                let mut cards = cards_in(&utterance.words, &run);
                if cards.is_empty() && self.misheard_card(u, &run) {
                    cards.push(run[0]..run[run.len() - 1] + 1);
                }
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
                            stored: None,
                        });
                    }
                }
                found.extend(cards.into_iter().map(|words| Sensitive {
                    kind: NumberKind::PaymentCard,
                    utterance: u,
                    last4: last_digits(&utterance.words[words.clone()]),
                    words,
                    stored: None,
                }));
            }
        }
        found
    }

    /// Runs of number words of utterance `u` (as indices), allowing fillers between them; a
    /// word of `taken` or the other party taking the turn ends a run.
    fn digit_runs(&self, u: usize, taken: &[&Range<usize>]) -> Vec<Vec<usize>> {
        let words = &self.utterances[u].words;
        let mut runs = Vec::new();
        let mut run: Vec<usize> = Vec::new();
        for (k, spoken) in words.iter().enumerate() {
            let ends_run = taken.iter().any(|t| t.contains(&k))
                || run
                    .last()
                    .is_some_and(|&last| self.turn_between(words[last].segment, spoken.segment))
                || !(spoken.word.number || FILLERS.contains(&spoken.as_ref()));
            if ends_run && !run.is_empty() {
                runs.push(std::mem::take(&mut run));
            }
            if spoken.word.number && !taken.iter().any(|t| t.contains(&k)) {
                run.push(k);
            }
        }
        runs.extend((!run.is_empty()).then_some(run));
        runs
    }

    /// Whether another party took the turn between segment `a` and a later segment `b` of the
    /// same party: began a segment in between that is more than a backchannel ("mhm", "okay").
    fn turn_between(&self, a: usize, b: usize) -> bool {
        let (from, to) = (&self.segments[a], &self.segments[b]);
        a != b
            && self.segments.iter().any(|s| {
                party(s) != party(from)
                    && (from.start_ms..to.start_ms).contains(&s.start_ms)
                    && !normalize::words(&s.text)
                        .iter()
                        .all(|w| BACKCHANNEL.contains(&w.text.as_str()))
            })
    }

    /// Whether `run` (number words of utterance `u`) is a card number the transcript got a digit
    /// or two wrong: about a card's length ([`CARD_LENGTHS_HEARD`]) and the last cue before it,
    /// in its utterance or in what anyone said in the [`CARD_CUE_MS`] before, is about a card
    /// ("the card number?", "my visa is"), not another number ("my phone is", "order number").
    /// The Luhn check is evidence, not a gate: a digit heard twice fails it.
    fn misheard_card(&self, u: usize, run: &[usize]) -> bool {
        let words = &self.utterances[u].words;
        let digits: usize = run.iter().map(|&k| words[k].as_ref().len()).sum();
        if !CARD_LENGTHS_HEARD.contains(&digits) {
            return false;
        }
        let first = &self.segments[words[run[0]].segment];
        let cue_of = |word: &str| {
            if CARD_CUES.contains(&word) {
                Some(true)
            } else if OTHER_NUMBER_CUES.contains(&word) {
                Some(false)
            } else {
                None
            }
        };
        // The nearest cue before the number in its own utterance decides.
        if let Some(card) = words[..run[0]]
            .iter()
            .rev()
            .find_map(|w| cue_of(w.as_ref()))
        {
            return card;
        }
        // Else the last cue said before it by anyone, not long before. A card already found
        // there (its redaction label) is no cue: digits after it are that card continued.
        let mut earlier: Vec<&SegmentRecord> = self
            .segments
            .iter()
            .filter(|s| s.start_ms < first.start_ms && first.start_ms - s.start_ms <= CARD_CUE_MS)
            .collect();
        earlier.sort_by_key(|s| s.start_ms);
        earlier
            .iter()
            .rev()
            .find_map(|s| {
                if s.text.contains("[card ") {
                    return Some(false);
                }
                normalize::words(&s.text)
                    .iter()
                    .rev()
                    .find_map(|w| cue_of(&w.text))
            })
            .unwrap_or(false)
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

/// `bytes` of `text` widened by the brackets around them, if any: a label's words are inside its
/// brackets.
fn bracketed(text: &str, bytes: Range<usize>) -> Range<usize> {
    let start = bytes.start - usize::from(text[..bytes.start].ends_with('['));
    let end = bytes.end + usize::from(text[bytes.end..].starts_with(']'));
    start..end
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
