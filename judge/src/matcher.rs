//! Fuzzy phrase search over normalized words.
//!
//! ASR garbles words in ways a compliance check must survive: a word misheard ("this col may be
//! recorded"), two words heard as one ("maybe recorded") or one as two, a word dropped or an
//! extra one inserted, a misspelling ("agin"). A phrase is found where its words align with a
//! stretch of the transcript at a total cost within the rule's budget: `fuzziness` × the
//! phrase's word count. Costs are counted in words:
//!
//! - a word heard exactly costs 0; a misheard word costs the share of its letters that differ
//!   (edit distance over the longer word: "col"/"call" 0.5, "agin"/"again" 0.2), and 1 when
//!   more than half differ; a word that sounds alike ([`crate::phonetic`]: "sine"/"sign",
//!   "right"/"write") costs at most [`SOUNDS_ALIKE_COST`];
//! - two phrase words heard as one transcript word, or one as two, cost what the joined words
//!   differ by when that is one letter at most ("may be"/"maybe" 0), else a word;
//! - a missing or an extra word costs 1;
//! - numbers match only exactly: "10 percent" is not "100 percent".
//!
//! The search is the word-level form of approximate string matching (Sellers): the match may
//! start and end anywhere in the transcript, and each occurrence is reported once.

use std::ops::Range;

use crate::phonetic::sound_alike;

/// The fuzziness rules use unless they set their own: one misheard word in five, or half a
/// word of a two-word phrase.
pub const DEFAULT_FUZZINESS: f64 = 0.2;

/// What hearing a word that sounds like the one said costs at most: a quarter of a word, so a
/// phrase of two words survives one ("sine up") within the default fuzziness.
pub const SOUNDS_ALIKE_COST: f64 = 0.25;

const EPSILON: f64 = 1e-9;

/// Every non-overlapping occurrence of `phrase` in `words` (as word index ranges, in order)
/// within `fuzziness` × the phrase's length of word errors.
pub fn find_all<W: AsRef<str>>(
    phrase: &[String],
    words: &[W],
    fuzziness: f64,
) -> Vec<Range<usize>> {
    let m = phrase.len();
    let n = words.len();
    if m == 0 || n == 0 {
        return Vec::new();
    }
    let budget = fuzziness * m as f64 + EPSILON;
    let width = n + 1;
    let at = |i: usize, j: usize| i * width + j;
    // cost[i][j]: the cheapest alignment of the first i phrase words ending at transcript word
    // j; start[i][j]: where that alignment starts in the transcript.
    let mut cost = vec![0.0f64; (m + 1) * width];
    let mut start = vec![0usize; (m + 1) * width];
    for j in 0..=n {
        start[at(0, j)] = j;
    }
    for i in 1..=m {
        cost[at(i, 0)] = i as f64;
    }
    let p: Vec<Vec<char>> = phrase.iter().map(|w| w.chars().collect()).collect();
    let w: Vec<Vec<char>> = words.iter().map(|w| w.as_ref().chars().collect()).collect();
    // Costs above the budget never come back within it, so a step from a cell already over
    // budget is not worth measuring: only row 1 compares every word, later rows few.
    let over = |c: f64| c > budget;
    for i in 1..=m {
        for j in 1..=n {
            let diagonal = cost[at(i - 1, j - 1)];
            let substitution = if over(diagonal) {
                1.0
            } else {
                word_cost(&p[i - 1], &w[j - 1])
            };
            let mut best = (diagonal + substitution, start[at(i - 1, j - 1)]);
            let mut consider = |c: f64, s: usize| {
                if c < best.0 - EPSILON {
                    best = (c, s);
                }
            };
            consider(cost[at(i - 1, j)] + 1.0, start[at(i - 1, j)]);
            consider(cost[at(i, j - 1)] + 1.0, start[at(i, j - 1)]);
            if i >= 2 && !over(cost[at(i - 2, j - 1)]) {
                consider(
                    cost[at(i - 2, j - 1)] + merge_cost(&[&p[i - 2], &p[i - 1]], &[&w[j - 1]]),
                    start[at(i - 2, j - 1)],
                );
            }
            if j >= 2 && !over(cost[at(i - 1, j - 2)]) {
                consider(
                    cost[at(i - 1, j - 2)] + merge_cost(&[&p[i - 1]], &[&w[j - 2], &w[j - 1]]),
                    start[at(i - 1, j - 2)],
                );
            }
            cost[at(i, j)] = best.0;
            start[at(i, j)] = best.1;
        }
    }
    // Each run of ends within budget is one occurrence, ending where it is cheapest.
    let mut found = Vec::new();
    let mut taken = 0;
    let mut j = 1;
    while j <= n {
        if cost[at(m, j)] > budget {
            j += 1;
            continue;
        }
        let mut best = j;
        while j < n && cost[at(m, j + 1)] <= budget {
            j += 1;
            if cost[at(m, j)] < cost[at(m, best)] - EPSILON {
                best = j;
            }
        }
        let from = start[at(m, best)];
        if from >= taken && from < best {
            found.push(from..best);
            taken = best;
        }
        j += 1;
    }
    found
}

/// What hearing `said` for `expected` costs, from 0 (the same word) to 1 (another word).
fn word_cost(expected: &[char], said: &[char]) -> f64 {
    if expected == said {
        return 0.0;
    }
    let numeric = |w: &[char]| w.iter().all(char::is_ascii_digit);
    if numeric(expected) || numeric(said) {
        return 1.0;
    }
    let longer = expected.len().max(said.len());
    // More than half the letters differ by length alone: another word, unless it sounds alike.
    if 2 * expected.len().abs_diff(said.len()) > longer {
        return if sound_alike(expected, said) {
            SOUNDS_ALIKE_COST
        } else {
            1.0
        };
    }
    let distance = levenshtein(expected, said);
    let spelled = if 2 * distance > longer {
        1.0
    } else {
        distance as f64 / longer as f64
    };
    if sound_alike(expected, said) {
        spelled.min(SOUNDS_ALIKE_COST)
    } else {
        spelled
    }
}

/// What hearing two words as one (or one as two) costs: what the joined words differ by, when
/// that is at most one letter ("may be"/"maybe", "any more"/"anymore"). Otherwise it is no
/// merge but a word lost and a word misheard, two errors: at one, "don't ever call me" would be
/// found in "don't sign me up" ("ever call" heard as "sign").
fn merge_cost(expected: &[&[char]], said: &[&[char]]) -> f64 {
    const NOT_A_MERGE: f64 = 2.0;
    let length = |parts: &[&[char]]| parts.iter().map(|p| p.len()).sum::<usize>();
    let (a, b) = (length(expected), length(said));
    if a.abs_diff(b) > 1 {
        return NOT_A_MERGE;
    }
    let (mut x, mut y) = ([' '; LONGEST_WORD], [' '; LONGEST_WORD]);
    let (Some(expected), Some(said)) = (joined(expected, &mut x), joined(said, &mut y)) else {
        return NOT_A_MERGE;
    };
    match levenshtein(expected, said) {
        0 => 0.0,
        1 => 1.0 / a.max(b) as f64,
        _ => NOT_A_MERGE,
    }
}

/// Words longer than this are compared as wholly different (no spoken word is).
const LONGEST_WORD: usize = 48;

/// `parts` one after another in `buffer`, if they fit.
fn joined<'b>(parts: &[&[char]], buffer: &'b mut [char; LONGEST_WORD]) -> Option<&'b [char]> {
    let mut len = 0;
    for part in parts {
        buffer.get_mut(len..len + part.len())?.copy_from_slice(part);
        len += part.len();
    }
    Some(&buffer[..len])
}

/// Edit distance in characters; on the stack, since it runs for most word pairs of a call.
fn levenshtein(a: &[char], b: &[char]) -> usize {
    if a.len() >= LONGEST_WORD || b.len() >= LONGEST_WORD {
        return a.len().max(b.len());
    }
    let mut previous = [0usize; LONGEST_WORD];
    let mut current = [0usize; LONGEST_WORD];
    for (j, cell) in previous.iter_mut().enumerate().take(b.len() + 1) {
        *cell = j;
    }
    for (i, ca) in a.iter().enumerate() {
        current[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::phrase;

    fn occurrences(needle: &str, haystack: &str, fuzziness: f64) -> Vec<Vec<String>> {
        let words = phrase(haystack);
        find_all(&phrase(needle), &words, fuzziness)
            .into_iter()
            .map(|r| words[r].to_vec())
            .collect()
    }

    #[test]
    fn asr_errors_within_budget_still_match() {
        let disclosure = "this call may be recorded for quality";
        for heard in [
            "hi this call may be recorded for quality purposes",
            "hi, this call maybe recorded for quality.",
            "this col may be recorded for quality",
            "this call may be, uh, recorded for quality",
            "this call might be recorded for quality",
            "this call may be recorded for qualty",
        ] {
            assert_eq!(
                occurrences(disclosure, heard, DEFAULT_FUZZINESS).len(),
                1,
                "{heard:?}"
            );
        }
        assert_eq!(
            occurrences(
                "don't call me again",
                "dont call me agin okay",
                DEFAULT_FUZZINESS
            ),
            [["do", "not", "call", "me", "agin"]]
        );
    }

    #[test]
    fn other_words_and_numbers_do_not_match() {
        for (needle, heard) in [
            (
                "this call may be recorded for quality",
                "this call is about your quality plan",
            ),
            ("no risk", "there is low risk"),
            ("100 percent guaranteed", "10 percent guaranteed"),
            ("guaranteed approval", "approval"),
            ("stop calling", "stop"),
            // Two phrase words heard as one unrelated word are two errors, not one.
            ("don't ever call me", "don't sign me up"),
            ("don't ever call me", "don't tell me anything"),
        ] {
            assert!(
                occurrences(needle, heard, DEFAULT_FUZZINESS).is_empty(),
                "{needle:?} in {heard:?}"
            );
        }
        // Without fuzziness only the exact words count.
        assert!(occurrences("stop calling", "stop colling", 0.0).is_empty());
        assert_eq!(occurrences("stop calling", "stop calling", 0.0).len(), 1);
    }

    #[test]
    fn each_occurrence_is_found_once_with_its_exact_words() {
        let found = occurrences(
            "guaranteed approval",
            "it is guaranteed approval, yes guarantied approval for everyone",
            DEFAULT_FUZZINESS,
        );
        assert_eq!(
            found,
            [["guaranteed", "approval"], ["guarantied", "approval"]]
        );
        assert_eq!(
            occurrences(
                "one hundred percent guaranteed",
                "it's 100% guaranteed",
                0.0
            ),
            [["100", "percent", "guaranteed"]]
        );
    }

    #[test]
    fn word_costs() {
        let chars = |w: &str| w.chars().collect::<Vec<char>>();
        let cost = |a: &str, b: &str| word_cost(&chars(a), &chars(b));
        assert_eq!(cost("call", "call"), 0.0);
        assert_eq!(cost("call", "col"), SOUNDS_ALIKE_COST);
        assert_eq!(cost("again", "agin"), 0.2);
        assert_eq!(cost("no", "low"), 1.0);
        assert_eq!(cost("41", "4"), 1.0);
        assert_eq!(cost("sign", "sine"), SOUNDS_ALIKE_COST);
        assert_eq!(cost("write", "right"), SOUNDS_ALIKE_COST);
        let (may, be, maybe) = (chars("may"), chars("be"), chars("maybe"));
        assert_eq!(merge_cost(&[&may, &be], &[&maybe]), 0.0);
        // Not a merge: "no" lost and "risk" kept is the cheaper path (one word).
        assert_eq!(
            merge_cost(&[&chars("no"), &chars("risk")], &[&chars("risk")]),
            2.0
        );
        assert_eq!(levenshtein(&['a', 'b'], &[]), 2);
    }
}
