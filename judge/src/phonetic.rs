//! How a word sounds, roughly: a key that words heard for one another share ("sign"/"sine",
//! "write"/"right", "there"/"their", "cell"/"sell", "fone"/"phone").
//!
//! ASR on telephone audio writes a real word that sounds like the one said, often one whose
//! letters differ more than a misspelling's. The key is a consonant skeleton in the manner of
//! Metaphone: letters that spell one sound become that sound ("ph" f, "ck" and hard "c" k, soft
//! "c" s, "th" one sound, silent "k"/"w"/"g" before "n"/"r", "gh" silent), vowels after the
//! first letter and "h", "w", "y" after it are dropped, and a sound said twice is said once.
//! Keys shorter than two sounds say too little ("by", "be" and "buy" are all "b"), so such words
//! never sound alike by key.

/// Whether `a` and `b` (lower-case words) sound alike: the same key of two sounds or more.
/// Numbers and other non-letter words never do.
pub fn sound_alike(a: &[char], b: &[char]) -> bool {
    match (key(a), key(b)) {
        (Some(x), Some(y)) => x.len() >= 2 && x == y,
        _ => false,
    }
}

/// The sound key of a lower-case word; `None` when it is not all letters.
fn key(word: &[char]) -> Option<Vec<char>> {
    if word.is_empty() || !word.iter().all(char::is_ascii_lowercase) {
        return None;
    }
    let vowel = |c: char| "aeiou".contains(c);
    let at = |i: usize| word.get(i).copied();
    let mut out: Vec<char> = Vec::with_capacity(word.len());
    let mut i = 0;
    // Silent first letters: "knee", "gnaw", "pneumonia", "write", "psalm"; "wh" is "w".
    if matches!(
        (at(0), at(1)),
        (Some('k' | 'g' | 'p'), Some('n')) | (Some('w'), Some('r')) | (Some('p'), Some('s'))
    ) {
        i = 1;
    }
    let push = |c: char, out: &mut Vec<char>| {
        if out.last() != Some(&c) {
            out.push(c);
        }
    };
    while let Some(c) = at(i) {
        let next = at(i + 1);
        let first = out.is_empty() && i <= 1;
        let (sound, skip) = match c {
            _ if vowel(c) => (first.then_some('a'), 1),
            'h' | 'w' | 'y' => (first.then_some(c), 1),
            'c' if next == Some('h') => (Some('x'), 2),
            'c' if next == Some('k') => (Some('k'), 2),
            'c' if matches!(next, Some('e' | 'i' | 'y')) => (Some('s'), 1),
            'c' | 'q' => (Some('k'), 1),
            'p' if next == Some('h') => (Some('f'), 2),
            's' if next == Some('h') => (Some('x'), 2),
            't' if next == Some('h') => (Some('0'), 2),
            'g' if next == Some('h') => (first.then_some('g'), 2),
            'g' if next == Some('n') => (None, 1),
            'd' if next == Some('g') => (Some('j'), 2),
            'x' => (Some('s'), 1),
            'z' => (Some('s'), 1),
            _ => (Some(c), 1),
        };
        if let Some(sound) = sound {
            push(sound, &mut out);
        }
        i += skip;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alike(a: &str, b: &str) -> bool {
        let chars = |w: &str| w.chars().collect::<Vec<char>>();
        sound_alike(&chars(a), &chars(b))
    }

    #[test]
    fn words_heard_for_one_another_sound_alike() {
        for (a, b) in [
            ("sign", "sine"),
            ("write", "right"),
            ("there", "their"),
            ("cell", "sell"),
            ("phone", "fone"),
            ("card", "kard"),
            ("number", "numbr"),
            ("knight", "night"),
            ("interested", "intrested"),
        ] {
            assert!(alike(a, b), "{a} {b}");
        }
    }

    #[test]
    fn other_words_short_keys_and_numbers_do_not() {
        for (a, b) in [
            ("buy", "by"),
            ("sign", "sing"),
            ("call", "cancel"),
            ("order", "other"),
            ("4111", "4111"),
            ("visa", "vista"),
        ] {
            assert!(!alike(a, b), "{a} {b}");
        }
    }
}
