//! `Range: bytes=…` as RFC 9110 §14 reads it, for the recording routes (players seek with it).
//!
//! - One satisfiable range: 206 with that range, its end clamped to the representation.
//! - No satisfiable range (`bytes=99999999-`, `bytes=-0`, or an invalid one such as
//!   `bytes=5-2`, which §14.2 lets a server reject): 416 with `Content-Range: bytes */LEN`.
//! - No header, another unit, or a header that does not parse as a ranges-specifier: the
//!   whole recording, 200 (§14.2: such a header is ignored).
//! - Several ranges: the whole recording, 200. §14.2 lets a server ignore a Range header; a
//!   player asks for one range, and a multipart/byteranges body for the rest would be unused
//!   code. Serving only the first range would lie about what was asked.

use std::ops::RangeInclusive;

/// What to send for a request's Range header against a representation of `total` bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ranged {
    /// The whole representation, 200.
    Whole,
    /// These bytes (inclusive offsets within the representation), 206.
    Part(RangeInclusive<u64>),
    /// 416.
    Unsatisfiable,
}

/// One `range-spec` of a `range-set`.
#[derive(Clone, Copy)]
enum Spec {
    /// `first-` or `first-last`.
    Int { first: u64, last: Option<u64> },
    /// `-suffix`: the last `suffix` bytes.
    Suffix(u64),
}

/// How the value of a Range header (when there is one) applies to `total` bytes.
pub fn ranged(header: Option<&str>, total: u64) -> Ranged {
    let Some(specs) = header.and_then(parse) else {
        return Ranged::Whole;
    };
    let [spec] = specs.as_slice() else {
        return Ranged::Whole;
    };
    let last_byte = total.checked_sub(1);
    let part = match (*spec, last_byte) {
        (_, None) => None,
        (Spec::Int { first, last }, Some(last_byte)) => match last {
            Some(last) if last < first => None,
            _ if first > last_byte => None,
            last => Some(first..=last.map_or(last_byte, |last| last.min(last_byte))),
        },
        (Spec::Suffix(0), _) => None,
        (Spec::Suffix(suffix), Some(last_byte)) => Some(total.saturating_sub(suffix)..=last_byte),
    };
    part.map_or(Ranged::Unsatisfiable, Ranged::Part)
}

/// A `bytes` ranges-specifier's range specs; `None` when the header is not one (another unit,
/// or not its syntax), which means the header is ignored.
fn parse(header: &str) -> Option<Vec<Spec>> {
    let (unit, set) = header.trim().split_once('=')?;
    if !unit.trim_end().eq_ignore_ascii_case("bytes") {
        return None;
    }
    // A list may hold empty elements (RFC 9110 §5.6.1), but at least one range.
    let specs: Vec<Spec> = set
        .split(',')
        .map(str::trim)
        .filter(|spec| !spec.is_empty())
        .map(|spec| {
            let (first, last) = spec.split_once('-')?;
            match (position(first), last) {
                (Some(first), "") => Some(Spec::Int { first, last: None }),
                (Some(first), last) => Some(Spec::Int {
                    first,
                    last: Some(position(last)?),
                }),
                (None, suffix) if first.is_empty() => Some(Spec::Suffix(position(suffix)?)),
                (None, _) => None,
            }
        })
        .collect::<Option<_>>()?;
    (!specs.is_empty()).then_some(specs)
}

/// `1*DIGIT`; a number too large for u64 is past any representation, so it saturates.
fn position(digits: &str) -> Option<u64> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(digits.parse().unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of_1000(header: &str) -> Ranged {
        ranged(Some(header), 1000)
    }

    #[test]
    fn single_ranges_are_served_and_clamped() {
        assert_eq!(of_1000("bytes=0-99"), Ranged::Part(0..=99));
        assert_eq!(of_1000("bytes=500-"), Ranged::Part(500..=999));
        assert_eq!(of_1000("bytes=-100"), Ranged::Part(900..=999));
        assert_eq!(of_1000("bytes=-5000"), Ranged::Part(0..=999));
        assert_eq!(of_1000("bytes=900-5000"), Ranged::Part(900..=999));
        assert_eq!(
            of_1000("bytes=0-99999999999999999999999999"),
            Ranged::Part(0..=999)
        );
        assert_eq!(of_1000("BYTES = 7-7"), Ranged::Part(7..=7));
        assert_eq!(of_1000("bytes=999-999"), Ranged::Part(999..=999));
        assert_eq!(of_1000("bytes=, 0-1 ,"), Ranged::Part(0..=1));
    }

    #[test]
    fn unsatisfiable_and_invalid_ranges_are_416() {
        for header in [
            "bytes=1000-",
            "bytes=99999999-",
            "bytes=99999999999999999999999-",
            "bytes=5-2",
            "bytes=-0",
        ] {
            assert_eq!(of_1000(header), Ranged::Unsatisfiable, "{header}");
        }
        assert_eq!(ranged(Some("bytes=0-1"), 0), Ranged::Unsatisfiable);
        assert_eq!(ranged(Some("bytes=-1"), 0), Ranged::Unsatisfiable);
    }

    #[test]
    fn other_units_bad_syntax_and_several_ranges_are_the_whole() {
        assert_eq!(ranged(None, 1000), Ranged::Whole);
        for header in [
            "items=0-1",
            "bytes=abc",
            "bytes=",
            "bytes=1",
            "bytes=--1",
            "bytes=+1-2",
            "bytes=0x10-",
            "bytes 0-1",
            "bytes=0-1,2-3",
            "bytes=0-1, 99999999-",
        ] {
            assert_eq!(of_1000(header), Ranged::Whole, "{header}");
        }
    }
}
