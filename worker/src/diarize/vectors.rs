//! Vector helpers the clustering shares: unit length, dot products, labels renumbered.

use std::collections::HashMap;

/// `v` scaled to unit length (in f64); the zero vector stays zero.
pub(crate) fn normalized<T: Copy + Into<f64>>(v: &[T]) -> Vec<f64> {
    let norm = v.iter().map(|&x| x.into() * x.into()).sum::<f64>().sqrt();
    if norm > 0.0 {
        v.iter().map(|&x| x.into() / norm).collect()
    } else {
        vec![0.0; v.len()]
    }
}

pub(crate) fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Labels renumbered 0, 1, … in order of first appearance.
pub(crate) fn first_appearance(labels: &[usize]) -> Vec<usize> {
    let mut map: HashMap<usize, usize> = HashMap::new();
    labels
        .iter()
        .map(|&l| {
            let next = map.len();
            *map.entry(l).or_insert(next)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_length_and_first_appearance() {
        assert_eq!(normalized(&[3.0f32, 4.0]), vec![0.6, 0.8]);
        assert_eq!(normalized(&[0.0f32, 0.0]), vec![0.0, 0.0]);
        assert_eq!(dot(&[1.0, 2.0], &[3.0, 4.0]), 11.0);
        assert_eq!(first_appearance(&[5, 5, 2, 7, 2]), vec![0, 0, 1, 2, 1]);
    }
}
