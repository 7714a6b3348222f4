//! Transcript text → the words rules match on.
//!
//! Whisper writes the same speech many ways: "Don't", "dont" and "do not"; "4111", "four one
//! one one" and "forty one eleven"; "100%" and "one hundred percent". Rules and transcripts
//! both go through [`words`], so a phrase written one way matches speech transcribed another:
//! lower case, punctuation dropped (hyphens and slashes split words), contractions expanded,
//! and number words turned into digits. Each word keeps the byte span of the text it came from,
//! so evidence quotes what was said and redaction replaces exactly the digits.
//!
//! Numbers follow how people say them. Digit words said one by one stay separate numbers
//! ("four one one one" → 4 1 1 1); tens take a following unit ("forty one" → 41); "hundred",
//! "thousand" and "million" scale what came before ("one hundred and five" → 105); "oh" is zero
//! next to other digits ("four oh one" → 4 0 1, but "oh okay" stays words); "double four" is
//! 44. Digit groups written with hyphens or spaces stay separate numbers ("123-45-6789" →
//! 123 45 6789), which is what the social security check reads its grouping from.

use std::ops::Range;

/// One normalized word and where it was said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    /// Lower case letters and digits; a number is its digits.
    pub text: String,
    /// Whether `text` is a number (digits only).
    pub number: bool,
    /// The bytes of the original text it came from (shared by the words of a contraction).
    pub span: Range<usize>,
}

impl AsRef<str> for Word {
    fn as_ref(&self) -> &str {
        &self.text
    }
}

/// The normalized words of `text`, in order.
pub fn words(text: &str) -> Vec<Word> {
    let mut expanded = Vec::new();
    for (piece, span) in pieces(text) {
        for word in expand(&piece) {
            expanded.push((word, span.clone()));
        }
    }
    numbers(expanded)
}

/// The normalized words of `text` without their spans: how a rule's phrase is compared.
pub fn phrase(text: &str) -> Vec<String> {
    words(text).into_iter().map(|w| w.text).collect()
}

const APOSTROPHES: &[char] = &['\'', '\u{2019}', '\u{2018}', '\u{02BC}'];

/// Runs of letters, digits and apostrophes, lower-cased, with their byte spans. A comma between
/// digits ("1,000") stays inside the number; "%" is the word "percent".
fn pieces(text: &str) -> Vec<(String, Range<usize>)> {
    let mut out = Vec::new();
    let mut current: Option<(String, usize, usize)> = None;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let digit_comma = c == ','
            && current
                .as_ref()
                .is_some_and(|(w, _, _)| w.ends_with(|d: char| d.is_ascii_digit()))
            && chars.peek().is_some_and(|&(_, n)| n.is_ascii_digit());
        // Whisper masks some profanity ("f***ing"): the asterisks stay part of the word.
        let masked = c == '*' && current.is_some();
        if c.is_alphanumeric() || APOSTROPHES.contains(&c) || digit_comma || masked {
            let (word, _, end) = current.get_or_insert_with(|| (String::new(), i, i));
            if c.is_alphanumeric() {
                word.extend(c.to_lowercase());
            } else if masked {
                word.push('*');
            } else if !digit_comma {
                word.push('\'');
            }
            *end = i + c.len_utf8();
        } else {
            flush_piece(text, current.take(), &mut out);
            if c == '%' {
                out.push(("percent".to_owned(), i..i + 1));
            }
        }
    }
    flush_piece(text, current, &mut out);
    out
}

fn flush_piece(
    text: &str,
    piece: Option<(String, usize, usize)>,
    out: &mut Vec<(String, Range<usize>)>,
) {
    let Some((word, start, end)) = piece else {
        return;
    };
    let word = word.trim_matches('\'');
    if word.is_empty() {
        return;
    }
    let raw = &text[start..end];
    let lead = raw.len() - raw.trim_start_matches(APOSTROPHES).len();
    let trail = raw.len() - raw.trim_end_matches(APOSTROPHES).len();
    out.push((word.to_owned(), start + lead..end - trail));
}

/// Whole words said or written in more than one way, and what they stand for.
const SPELLINGS: &[(&str, &str)] = &[
    ("can't", "can not"),
    ("cant", "can not"),
    ("cannot", "can not"),
    ("won't", "will not"),
    ("wont", "will not"),
    ("ain't", "is not"),
    ("aint", "is not"),
    ("shan't", "shall not"),
    ("let's", "let us"),
    ("dont", "do not"),
    ("doesnt", "does not"),
    ("didnt", "did not"),
    ("isnt", "is not"),
    ("arent", "are not"),
    ("wasnt", "was not"),
    ("werent", "were not"),
    ("couldnt", "could not"),
    ("wouldnt", "would not"),
    ("shouldnt", "should not"),
    ("havent", "have not"),
    ("hasnt", "has not"),
    ("hadnt", "had not"),
    ("im", "i am"),
    ("ive", "i have"),
    ("youre", "you are"),
    ("youve", "you have"),
    ("youll", "you will"),
    ("theyre", "they are"),
    ("theyve", "they have"),
    ("weve", "we have"),
    ("thats", "that is"),
    ("whats", "what is"),
    ("gonna", "going to"),
    ("wanna", "want to"),
    ("gotta", "got to"),
    ("ok", "okay"),
];

/// Words whose "'s" is "is" rather than a possessive.
const IS_CONTRACTIONS: &[&str] = &[
    "it", "that", "what", "there", "here", "he", "she", "who", "where", "how",
];

/// One piece → its words: contractions expanded, other apostrophes dropped.
fn expand(piece: &str) -> Vec<String> {
    if let Some((_, to)) = SPELLINGS.iter().find(|(from, _)| *from == piece) {
        return to.split(' ').map(str::to_owned).collect();
    }
    let pair = |base: &str, second: &str| vec![base.replace('\'', ""), second.to_owned()];
    if let Some(base) = piece.strip_suffix("n't") {
        return pair(base, "not");
    }
    for (suffix, full) in [
        ("'m", "am"),
        ("'re", "are"),
        ("'ve", "have"),
        ("'ll", "will"),
        ("'d", "would"),
    ] {
        if let Some(base) = piece.strip_suffix(suffix) {
            return pair(base, full);
        }
    }
    if let Some(base) = piece.strip_suffix("'s") {
        if IS_CONTRACTIONS.contains(&base) {
            return pair(base, "is");
        }
    }
    vec![piece.replace('\'', "")]
}

/// A number word's part in a spoken number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    /// 0–9.
    Digit(u64),
    /// 10–19.
    Teen(u64),
    /// 20, 30, … 90.
    Tens(u64),
    Hundred,
    /// Thousand, million.
    Scale(u64),
}

fn number_word(word: &str) -> Option<Part> {
    const DIGITS: [&str; 10] = [
        "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    ];
    const TEENS: [&str; 10] = [
        "ten",
        "eleven",
        "twelve",
        "thirteen",
        "fourteen",
        "fifteen",
        "sixteen",
        "seventeen",
        "eighteen",
        "nineteen",
    ];
    const TENS: [&str; 8] = [
        "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
    ];
    let position = |list: &[&str]| list.iter().position(|w| *w == word).map(|p| p as u64);
    if let Some(d) = position(&DIGITS) {
        return Some(Part::Digit(d));
    }
    if let Some(t) = position(&TEENS) {
        return Some(Part::Teen(10 + t));
    }
    if let Some(t) = position(&TENS) {
        return Some(Part::Tens(20 + 10 * t));
    }
    match word {
        "hundred" => Some(Part::Hundred),
        "thousand" => Some(Part::Scale(1_000)),
        "million" => Some(Part::Scale(1_000_000)),
        _ => None,
    }
}

fn is_numeral(word: &str) -> bool {
    !word.is_empty() && word.bytes().all(|b| b.is_ascii_digit())
}

/// The single digit a word stands for, for "double four".
fn single_digit(word: &str) -> Option<String> {
    match number_word(word) {
        Some(Part::Digit(d)) => Some(d.to_string()),
        _ if word == "oh" || word == "o" => Some("0".to_owned()),
        _ if word.len() == 1 && is_numeral(word) => Some(word.to_owned()),
        _ => None,
    }
}

/// A spoken number being read.
struct Spoken {
    total: u64,
    current: u64,
    last: Part,
    span: Range<usize>,
}

impl Spoken {
    fn start(part: Part, span: Range<usize>) -> Spoken {
        let (total, current) = match part {
            Part::Digit(v) | Part::Teen(v) | Part::Tens(v) => (0, v),
            Part::Hundred => (0, 100),
            Part::Scale(s) => (s, 0),
        };
        Spoken {
            total,
            current,
            last: part,
            span,
        }
    }

    /// Whether `part` continues this number ("forty" + "one") rather than starting the next
    /// ("four" + "one").
    fn takes(&self, part: Part) -> bool {
        let after_scale = matches!(self.last, Part::Hundred | Part::Scale(_));
        match part {
            Part::Digit(0) => false,
            Part::Digit(_) => after_scale || matches!(self.last, Part::Tens(_)),
            Part::Teen(_) | Part::Tens(_) => after_scale,
            Part::Hundred => !after_scale && (1..100).contains(&self.current),
            Part::Scale(s) => self.current > 0 && !matches!(self.last, Part::Scale(t) if t <= s),
        }
    }

    fn add(&mut self, part: Part, span: &Range<usize>) {
        match part {
            Part::Digit(v) | Part::Teen(v) | Part::Tens(v) => self.current += v,
            Part::Hundred => self.current *= 100,
            Part::Scale(s) => {
                self.total = self.total.saturating_add(self.current.saturating_mul(s));
                self.current = 0;
            }
        }
        self.last = part;
        self.span.end = span.end;
    }

    fn word(self) -> Word {
        Word {
            text: self.total.saturating_add(self.current).to_string(),
            number: true,
            span: self.span,
        }
    }
}

/// Number words → numbers; other words pass through.
fn numbers(words: Vec<(String, Range<usize>)>) -> Vec<Word> {
    let mut out: Vec<Word> = Vec::with_capacity(words.len());
    let mut spoken: Option<Spoken> = None;
    let next_is_number = |i: usize| {
        words
            .get(i + 1)
            .is_some_and(|(w, _)| is_numeral(w) || number_word(w).is_some())
    };
    let mut i = 0;
    while i < words.len() {
        let (word, span) = &words[i];
        i += 1;
        if is_numeral(word) {
            out.extend(spoken.take().map(Spoken::word));
            out.push(Word {
                text: word.clone(),
                number: true,
                span: span.clone(),
            });
            continue;
        }
        let times = match word.as_str() {
            "double" => 2,
            "triple" => 3,
            _ => 0,
        };
        if times > 0 {
            if let Some((next, next_span)) = words.get(i) {
                if let Some(digit) = single_digit(next) {
                    out.extend(spoken.take().map(Spoken::word));
                    out.push(Word {
                        text: digit.repeat(times),
                        number: true,
                        span: span.start..next_span.end,
                    });
                    i += 1;
                    continue;
                }
            }
        }
        let in_digits =
            spoken.is_some() || out.last().is_some_and(|w| w.number) || next_is_number(i - 1);
        let part = match word.as_str() {
            "oh" | "o" if in_digits => Some(Part::Digit(0)),
            _ => number_word(word),
        };
        if word == "and" {
            // "one hundred and five": "and" joins a scale word to what follows it.
            let joins = |next: Option<Part>| {
                matches!(next, Some(Part::Digit(1..) | Part::Teen(_) | Part::Tens(_)))
            };
            if let Some(s) = &spoken {
                if matches!(s.last, Part::Hundred | Part::Scale(_))
                    && joins(words.get(i).and_then(|(w, _)| number_word(w)))
                {
                    continue;
                }
            }
        }
        match (part, spoken.as_mut()) {
            (Some(part), Some(s)) if s.takes(part) => s.add(part, span),
            (Some(part), _) => {
                out.extend(spoken.take().map(Spoken::word));
                spoken = Some(Spoken::start(part, span.clone()));
            }
            (None, _) => {
                out.extend(spoken.take().map(Spoken::word));
                out.push(Word {
                    text: word.clone(),
                    number: false,
                    span: span.clone(),
                });
            }
        }
    }
    out.extend(spoken.map(Spoken::word));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(text: &str) -> Vec<String> {
        phrase(text)
    }

    #[test]
    fn case_punctuation_and_contractions() {
        assert_eq!(
            texts("Don't call me again!  I'm DONE, it's over."),
            ["do", "not", "call", "me", "again", "i", "am", "done", "it", "is", "over"]
        );
        assert_eq!(
            texts("dont call me agin"),
            ["do", "not", "call", "me", "agin"]
        );
        assert_eq!(
            texts("the customer’s do-not-call list"),
            ["the", "customers", "do", "not", "call", "list"]
        );
        assert_eq!(texts("100% guaranteed"), ["100", "percent", "guaranteed"]);
        assert_eq!(texts("f***ing *** ok"), ["f***ing", "okay"]);
        assert_eq!(texts("... — ''"), Vec::<String>::new());
    }

    #[test]
    fn number_words_become_digits_as_people_say_them() {
        let cases: &[(&str, &[&str])] = &[
            ("four one one one", &["4", "1", "1", "1"]),
            ("forty one eleven", &["41", "11"]),
            ("4111", &["4111"]),
            ("4111-1111", &["4111", "1111"]),
            ("four oh one", &["4", "0", "1"]),
            ("oh okay", &["oh", "okay"]),
            ("oh four", &["0", "4"]),
            ("one hundred percent", &["100", "percent"]),
            ("one hundred and five dollars", &["105", "dollars"]),
            (
                "rock and roll one and two",
                &["rock", "and", "roll", "1", "and", "2"],
            ),
            ("twenty twenty five", &["20", "25"]),
            ("nineteen eighty", &["19", "80"]),
            ("two thousand three hundred twelve", &["2312"]),
            ("a hundred", &["a", "100"]),
            ("double four seven", &["44", "7"]),
            ("1,000 and 2,500", &["1000", "and", "2500"]),
            ("ten four", &["10", "4"]),
            ("zero zero", &["0", "0"]),
        ];
        for (text, expected) in cases {
            assert_eq!(texts(text), *expected, "{text:?}");
        }
    }

    #[test]
    fn spans_point_at_the_words_as_written() {
        let text = " Well, forty-one 'eleven', don’t.";
        let words = words(text);
        let spans: Vec<(&str, &str)> = words
            .iter()
            .map(|w| (w.text.as_str(), &text[w.span.clone()]))
            .collect();
        assert_eq!(
            spans,
            [
                ("well", "Well"),
                ("41", "forty-one"),
                ("11", "eleven"),
                ("do", "don’t"),
                ("not", "don’t"),
            ]
        );
    }
}
