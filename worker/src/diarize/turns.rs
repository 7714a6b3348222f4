//! Speaker turns: frame-level speaker activity → turns ([`frame_turns`]), and the speaker of a
//! transcript segment ([`speaker_for`]).

use super::{speaker_name, Turn};

/// Speaker turns from frame-level activity: `active[frame][label]` says whether speaker `label`
/// talks in frame `frame`, which covers `offset + frame × step` to `offset + (frame + 1) ×
/// step` seconds. Each run of one speaker's active frames is a turn; a gap of at most
/// `fill_gap` seconds between two of its turns is filled (pyannote's `min_duration_off`).
/// Speakers may overlap. Turns are sorted by start (then label) and named by
/// [`speaker_name`].
pub fn frame_turns(active: &[Vec<bool>], step: f64, offset: f64, fill_gap: f64) -> Vec<Turn> {
    let speakers = active.iter().map(Vec::len).max().unwrap_or(0);
    let mut pieces: Vec<(f64, f64, usize)> = Vec::new();
    for label in 0..speakers {
        let mut run: Option<usize> = None;
        let mut own: Vec<(f64, f64)> = Vec::new();
        for frame in 0..=active.len() {
            let on = active
                .get(frame)
                .is_some_and(|row| row.get(label).copied().unwrap_or(false));
            match (on, run) {
                (true, None) => run = Some(frame),
                (false, Some(first)) => {
                    let start = offset + first as f64 * step;
                    let end = offset + frame as f64 * step;
                    match own.last_mut() {
                        Some(last) if start - last.1 <= fill_gap => last.1 = end,
                        _ => own.push((start, end)),
                    }
                    run = None;
                }
                _ => {}
            }
        }
        pieces.extend(own.into_iter().map(|(s, e)| (s, e, label)));
    }
    pieces.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.2.cmp(&b.2)));
    pieces
        .into_iter()
        .map(|(s, e, l)| Turn::new(s, e, speaker_name(l)))
        .collect()
}

/// The speaker of `turns` overlapping `segment` (start, end) the longest; `None` when none
/// overlaps it. Ties go to the speaker whose turn comes first.
pub fn speaker_for(segment: (f64, f64), turns: &[Turn]) -> Option<String> {
    let mut totals: Vec<(&str, f64)> = Vec::new();
    for turn in turns {
        let overlap = segment.1.min(turn.end) - segment.0.max(turn.start);
        if overlap > 0.0 {
            match totals.iter_mut().find(|(s, _)| *s == turn.speaker) {
                Some((_, total)) => *total += overlap,
                None => totals.push((&turn.speaker, overlap)),
            }
        }
    }
    totals
        .into_iter()
        .fold(None::<(&str, f64)>, |best, (s, t)| match best {
            Some((_, b)) if b >= t => best,
            _ => Some((s, t)),
        })
        .map(|(s, _)| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(start: f64, end: f64, speaker: &str) -> Turn {
        Turn::new(start, end, speaker)
    }

    #[test]
    fn frame_runs_become_turns_with_overlap_kept_and_short_gaps_filled() {
        let row = |a: bool, b: bool| vec![a, b];
        let active = vec![
            row(true, false),
            row(true, false),
            row(true, true),
            row(false, true),
            row(true, false),
            row(false, false),
            row(false, false),
            row(true, false),
        ];
        assert_eq!(
            frame_turns(&active, 1.0, 0.5, 0.0),
            vec![
                t(0.5, 3.5, "SPEAKER_00"),
                t(2.5, 4.5, "SPEAKER_01"),
                t(4.5, 5.5, "SPEAKER_00"),
                t(7.5, 8.5, "SPEAKER_00"),
            ]
        );
        // A one-frame gap is filled at 1 s, a two-frame one is not.
        assert_eq!(
            frame_turns(&active, 1.0, 0.0, 1.0),
            vec![
                t(0.0, 5.0, "SPEAKER_00"),
                t(2.0, 4.0, "SPEAKER_01"),
                t(7.0, 8.0, "SPEAKER_00"),
            ]
        );
        assert!(frame_turns(&[], 1.0, 0.0, 0.0).is_empty());
        let silent: [Vec<bool>; 4] = std::array::from_fn(|_| vec![false; 3]);
        assert!(frame_turns(&silent, 1.0, 0.0, 0.0).is_empty());
    }

    #[test]
    fn speaker_for_takes_the_longest_overlap() {
        let turns = vec![
            t(0.0, 2.0, "A"),
            t(2.0, 3.0, "B"),
            t(3.0, 4.0, "A"),
            t(4.0, 6.5, "B"),
        ];
        assert_eq!(speaker_for((1.5, 3.5), &turns).as_deref(), Some("A"));
        assert_eq!(speaker_for((2.0, 5.0), &turns).as_deref(), Some("B"));
        // A tie goes to the speaker whose turn comes first.
        assert_eq!(speaker_for((1.5, 2.5), &turns).as_deref(), Some("A"));
        assert_eq!(speaker_for((7.0, 8.0), &turns), None);
    }
}
