//! Stretches of time as a sorted union, for the scores that ask how much of one set of
//! stretches another covers (roles over reference speech).

/// A sorted union of disjoint `(start, end)` stretches, in seconds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Intervals(Vec<(f64, f64)>);

impl Intervals {
    /// The union of `spans` (empty and reversed ones dropped, touching ones joined).
    pub fn union(spans: impl IntoIterator<Item = (f64, f64)>) -> Self {
        let mut spans: Vec<(f64, f64)> = spans.into_iter().filter(|(s, e)| e > s).collect();
        spans.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut merged: Vec<(f64, f64)> = Vec::with_capacity(spans.len());
        for (start, end) in spans {
            match merged.last_mut() {
                Some(last) if start <= last.1 => last.1 = last.1.max(end),
                _ => merged.push((start, end)),
            }
        }
        Intervals(merged)
    }

    /// Seconds covered by both.
    pub fn overlap_seconds(&self, other: &Intervals) -> f64 {
        let (mut i, mut j, mut total) = (0, 0, 0.0);
        while i < self.0.len() && j < other.0.len() {
            let (a, b) = (self.0[i], other.0[j]);
            total += (a.1.min(b.1) - a.0.max(b.0)).max(0.0);
            if a.1 < b.1 {
                i += 1;
            } else {
                j += 1;
            }
        }
        total
    }

    pub fn contains(&self, t: f64) -> bool {
        let i = self.0.partition_point(|&(_, end)| end <= t);
        i < self.0.len() && self.0[i].0 <= t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn union_overlap_and_membership() {
        let a = Intervals::union([(5.0, 6.0), (0.0, 2.0), (1.0, 3.0), (4.0, 4.0), (7.0, 6.5)]);
        assert_eq!(a, Intervals(vec![(0.0, 3.0), (5.0, 6.0)]));
        assert_eq!(a.overlap_seconds(&a), 4.0);
        let b = Intervals::union([(2.5, 5.5), (5.75, 10.0)]);
        assert_eq!(a.overlap_seconds(&b), 0.5 + 0.5 + 0.25);
        assert_eq!(b.overlap_seconds(&a), 1.25);
        assert_eq!(a.overlap_seconds(&Intervals::default()), 0.0);
        assert!(a.contains(0.0) && a.contains(2.9) && a.contains(5.5));
        assert!(!a.contains(3.0) && !a.contains(4.0) && !a.contains(6.0) && !a.contains(-1.0));
    }
}
