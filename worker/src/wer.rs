//! Word error rate, for measuring transcription accuracy against reference transcripts.
//!
//! References (`/work/shared/eval/asr.tsv` and the like) and Whisper's output disagree in case
//! and punctuation far more than in words: LibriSpeech is upper case without punctuation,
//! Whisper writes sentences. Counting those differences would measure style, not recognition,
//! so both sides are normalized the same way first, and only as much as that takes: lower case,
//! punctuation gone, nothing spelled out. Numbers stay as written (`10` against `ten` is an
//! error), as the evaluation's anchor figures were measured that way; so do contractions
//! (`don't`, a word of its own), while hyphenated compounds count as their parts, because
//! references and Whisper hyphenate inconsistently (`well-known` / `well known`).
//!
//! Corpus WER is the sum of all files' errors over the sum of their reference words (add
//! [`WordErrors`] together), not the mean of per-file rates, which would weigh a two-word clip
//! like a long utterance.

use std::iter::Sum;
use std::ops::{Add, AddAssign};

/// Words of `text` for comparison: lower case (Unicode), punctuation and symbols removed.
///
/// - An apostrophe (`'`, `’`, `ʼ`) between two letters or digits stays, as `'`: `don't`,
///   `O’Brien` → `o'brien`; elsewhere (`'em`, `students'`) it goes.
/// - `.`, `,` and `:` between two digits stay, so a number is one word: `3.5`, `1,000`, `10:30`.
/// - Every other character that is not a letter, digit or combining mark separates words:
///   hyphens and dashes split (`well-known` → `well known`), as do `/`, `…` and the like.
pub fn normalize(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut words = Vec::new();
    let mut word = String::new();
    for (i, &c) in chars.iter().enumerate() {
        let before = i.checked_sub(1).map(|j| chars[j]);
        let after = chars.get(i + 1).copied();
        if is_word_char(c) {
            word.extend(c.to_lowercase());
        } else if is_apostrophe(c)
            && before.is_some_and(char::is_alphanumeric)
            && after.is_some_and(char::is_alphanumeric)
        {
            word.push('\'');
        } else if matches!(c, '.' | ',' | ':')
            && before.is_some_and(char::is_numeric)
            && after.is_some_and(char::is_numeric)
        {
            word.push(c);
        } else if !word.is_empty() {
            words.push(std::mem::take(&mut word));
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || is_combining_mark(c)
}

fn is_apostrophe(c: char) -> bool {
    matches!(c, '\'' | '\u{2019}' | '\u{02BC}')
}

/// Combining marks of the general-purpose blocks (decomposed accents); the marks of most
/// scripts' own blocks are already alphabetic.
fn is_combining_mark(c: char) -> bool {
    matches!(c,
        '\u{0300}'..='\u{036F}'
        | '\u{1AB0}'..='\u{1AFF}'
        | '\u{1DC0}'..='\u{1DFF}'
        | '\u{20D0}'..='\u{20FF}'
        | '\u{FE20}'..='\u{FE2F}')
}

/// The edits that turn a reference's words into a hypothesis's, and the reference's length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct WordErrors {
    pub substitutions: usize,
    /// Reference words missing from the hypothesis.
    pub deletions: usize,
    /// Hypothesis words not in the reference.
    pub insertions: usize,
    pub reference_words: usize,
}

impl WordErrors {
    /// Substitutions + deletions + insertions.
    pub fn errors(&self) -> usize {
        self.substitutions + self.deletions + self.insertions
    }

    /// Errors per reference word (can exceed 1 with many insertions). With no reference words:
    /// 0 when there are no errors either, else infinity.
    pub fn wer(&self) -> f64 {
        let errors = self.errors();
        if self.reference_words == 0 {
            return if errors == 0 { 0.0 } else { f64::INFINITY };
        }
        errors as f64 / self.reference_words as f64
    }
}

impl Add for WordErrors {
    type Output = WordErrors;

    fn add(mut self, other: WordErrors) -> WordErrors {
        self += other;
        self
    }
}

impl AddAssign for WordErrors {
    fn add_assign(&mut self, other: WordErrors) {
        self.substitutions += other.substitutions;
        self.deletions += other.deletions;
        self.insertions += other.insertions;
        self.reference_words += other.reference_words;
    }
}

impl Sum for WordErrors {
    fn sum<I: Iterator<Item = WordErrors>>(iter: I) -> Self {
        iter.fold(WordErrors::default(), Add::add)
    }
}

impl<'a> Sum<&'a WordErrors> for WordErrors {
    fn sum<I: Iterator<Item = &'a WordErrors>>(iter: I) -> Self {
        iter.copied().sum()
    }
}

/// The errors of `hypothesis` against `reference`, both [`normalize`]d, by a minimum edit
/// (Levenshtein) alignment of their words.
///
/// Where several alignments have the fewest errors, each cell of the table keeps, among its
/// cheapest predecessors, a match or substitution over a deletion over an insertion; that
/// decides the split between kinds, never the total (nor so the WER).
pub fn word_errors(reference: &str, hypothesis: &str) -> WordErrors {
    align(&normalize(reference), &normalize(hypothesis))
}

/// Edit counts of one cell of the alignment table.
#[derive(Clone, Copy, Default)]
struct Cell {
    substitutions: usize,
    deletions: usize,
    insertions: usize,
}

impl Cell {
    fn total(self) -> usize {
        self.substitutions + self.deletions + self.insertions
    }
}

/// [`word_errors`] of words already [`normalize`]d: Levenshtein over words, one table row at a
/// time (memory linear in the hypothesis, so whole calls of thousands of words align without a
/// quadratic table).
pub fn align(reference: &[String], hypothesis: &[String]) -> WordErrors {
    // row[j]: the edits turning reference[..i] into hypothesis[..j].
    let mut row: Vec<Cell> = (0..=hypothesis.len())
        .map(|j| Cell {
            insertions: j,
            ..Cell::default()
        })
        .collect();
    for (i, r) in reference.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = Cell {
            deletions: i + 1,
            ..Cell::default()
        };
        for (j, h) in hypothesis.iter().enumerate() {
            let mut best = diagonal;
            if r != h {
                best.substitutions += 1;
            }
            let mut deletion = row[j + 1];
            deletion.deletions += 1;
            if deletion.total() < best.total() {
                best = deletion;
            }
            let mut insertion = row[j];
            insertion.insertions += 1;
            if insertion.total() < best.total() {
                best = insertion;
            }
            diagonal = row[j + 1];
            row[j + 1] = best;
        }
    }
    let last = row[hypothesis.len()];
    WordErrors {
        substitutions: last.substitutions,
        deletions: last.deletions,
        insertions: last.insertions,
        reference_words: reference.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        normalize(text)
    }

    fn errors(s: usize, d: usize, i: usize, n: usize) -> WordErrors {
        WordErrors {
            substitutions: s,
            deletions: d,
            insertions: i,
            reference_words: n,
        }
    }

    #[test]
    fn normalize_case_and_punctuation() {
        assert_eq!(
            words("And so, my fellow Americans: ask not!"),
            ["and", "so", "my", "fellow", "americans", "ask", "not"]
        );
        assert_eq!(
            words("HE HOPED THERE WOULD BE STEW"),
            ["he", "hoped", "there", "would", "be", "stew"]
        );
        assert_eq!(words("  \t\n "), Vec::<String>::new());
        assert_eq!(words("?!..."), Vec::<String>::new());
        assert_eq!(words("Philip Steels, etc."), ["philip", "steels", "etc"]);
        assert_eq!(
            words("(quoted) \"words\" [here]"),
            ["quoted", "words", "here"]
        );
    }

    #[test]
    fn normalize_apostrophes() {
        assert_eq!(words("Don't"), ["don't"]);
        assert_eq!(words("I’ll O’Brien"), ["i'll", "o'brien"]);
        assert_eq!(words("God bless 'em"), ["god", "bless", "em"]);
        assert_eq!(words("the students' books"), ["the", "students", "books"]);
        assert_eq!(words("'quoted'"), ["quoted"]);
        assert_eq!(words("rock 'n' roll"), ["rock", "n", "roll"]);
    }

    #[test]
    fn normalize_hyphens_and_dashes_split() {
        assert_eq!(words("well-known"), ["well", "known"]);
        assert_eq!(
            words("cold-hearted—and then"),
            ["cold", "hearted", "and", "then"]
        );
        assert_eq!(words("him/her…yes"), ["him", "her", "yes"]);
    }

    #[test]
    fn normalize_keeps_numbers_as_written() {
        assert_eq!(
            words("Go forward 10 meters."),
            ["go", "forward", "10", "meters"]
        );
        assert_eq!(
            words("$1,000.50 at 10:30, 3.5%"),
            ["1,000.50", "at", "10:30", "3.5"]
        );
        assert_eq!(words("1, 2, 3."), ["1", "2", "3"]);
        assert_eq!(words("ten"), ["ten"]);
    }

    #[test]
    fn normalize_unicode() {
        assert_eq!(words("ÉCOLE Straße ĞÜŞ"), ["école", "straße", "ğüş"]);
        // Decomposed accent (e + U+0301) stays in its word.
        assert_eq!(words("Cafe\u{301}!"), ["cafe\u{301}"]);
        assert_eq!(words("Привет, мир"), ["привет", "мир"]);
        assert_eq!(words("日本語です。"), ["日本語です"]);
    }

    #[test]
    fn identical_after_normalization() {
        let e = word_errors(
            "And so my fellow Americans, ask not what your country can do for you.",
            " and so, my fellow Americans; ASK NOT what your country can do for you",
        );
        assert_eq!(e, errors(0, 0, 0, 14));
        assert_eq!(e.wer(), 0.0);
    }

    #[test]
    fn one_of_each_kind() {
        // the cat sat on the mat → the bat sat the mat down
        let e = word_errors("the cat sat on the mat", "the bat sat the mat down");
        assert_eq!(e, errors(1, 1, 1, 6));
        assert_eq!(e.errors(), 3);
        assert!((e.wer() - 0.5).abs() < 1e-12);
    }

    #[test]
    fn substitution_preferred_to_deletion_plus_insertion() {
        assert_eq!(
            word_errors("ten of clubs", "10 of clubs"),
            errors(1, 0, 0, 3)
        );
    }

    #[test]
    fn all_deleted_or_all_inserted() {
        assert_eq!(word_errors("four queen of clubs", ""), errors(0, 4, 0, 4));
        assert_eq!(word_errors("four queen of clubs", "").wer(), 1.0);
        let e = word_errors("five", "five five five");
        assert_eq!(e, errors(0, 0, 2, 1));
        assert_eq!(e.wer(), 2.0);
    }

    #[test]
    fn empty_reference() {
        assert_eq!(word_errors("", ""), errors(0, 0, 0, 0));
        assert_eq!(word_errors("", "").wer(), 0.0);
        assert_eq!(word_errors("...", "uh huh"), errors(0, 0, 2, 0));
        assert_eq!(word_errors("", "uh").wer(), f64::INFINITY);
    }

    #[test]
    fn hyphen_and_split_compound_match() {
        assert_eq!(
            word_errors(
                "a well-known cold hearted man",
                "A well known, cold-hearted man."
            ),
            errors(0, 0, 0, 6)
        );
    }

    #[test]
    fn shifted_words() {
        // Reference words shifted by one: one deletion at the front, one insertion at the end.
        assert_eq!(word_errors("a b c d e", "b c d e f"), errors(0, 1, 1, 5));
        // Reversed: 4 edits (the middle word matches).
        assert_eq!(word_errors("a b c d e", "e d c b a").errors(), 4);
    }

    #[test]
    fn corpus_wer_sums_errors_not_rates() {
        let files = [
            word_errors("go forward ten meters", "go forward 10 meters"), // 1 / 4
            word_errors("five five", "five"),                             // 1 / 2
            word_errors(
                "he might even have been made amiable himself",
                "he might even have been made amiable himself",
            ), // 0 / 8
        ];
        let total: WordErrors = files.iter().sum();
        assert_eq!(total, errors(1, 1, 0, 14));
        assert!((total.wer() - 2.0 / 14.0).abs() < 1e-12);
        let mean_of_rates = files.iter().map(WordErrors::wer).sum::<f64>() / 3.0;
        assert!((mean_of_rates - 0.25).abs() < 1e-12);

        let owned: WordErrors = files.into_iter().sum();
        assert_eq!(owned, total);
        let mut acc = WordErrors::default();
        for file in files {
            acc += file;
        }
        assert_eq!(acc, total);
        assert_eq!(files[0] + files[1], errors(1, 1, 0, 6));
    }

    #[test]
    fn long_inputs_align_in_linear_memory() {
        let reference: Vec<String> = (0..3000).map(|i| format!("w{i}")).collect();
        let mut hypothesis = reference.clone();
        hypothesis.remove(1500);
        hypothesis[10] = "x".to_owned();
        hypothesis.push("extra".to_owned());
        let e = word_errors(&reference.join(" "), &hypothesis.join(" "));
        assert_eq!(e, errors(1, 1, 1, 3000));
    }
}
