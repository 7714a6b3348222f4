//! Eigen-decomposition of small symmetric matrices (the graph Laplacians of
//! [`super::spectral`]): Householder reduction to tridiagonal form and the implicit QL
//! algorithm, as EISPACK's `tred2` and `tql2` (and JAMA) do them; O(n³), no dependencies.

/// Eigenvalues (ascending) of the symmetric row-major `n×n` matrix `a`, and with `vectors` the
/// eigenvectors as columns of a row-major matrix (`v[row * n + column]`, column `c` belongs to
/// eigenvalue `c`). Householder reduction to tridiagonal form and the implicit QL algorithm
/// (EISPACK `tred2` and `tql2`, as in JAMA).
pub(crate) fn symmetric_eigen(a: Vec<f64>, n: usize, vectors: bool) -> (Vec<f64>, Vec<f64>) {
    let mut v = a;
    let mut d = vec![0.0f64; n];
    let mut e = vec![0.0f64; n];
    if n == 0 {
        return (d, v);
    }
    let idx = |r: usize, c: usize| r * n + c;

    // tred2: Householder tridiagonalization.
    for j in 0..n {
        d[j] = v[idx(n - 1, j)];
    }
    for i in (1..n).rev() {
        let mut scale = 0.0;
        let mut h = 0.0;
        for &dk in &d[..i] {
            scale += dk.abs();
        }
        if scale == 0.0 {
            e[i] = d[i - 1];
            for j in 0..i {
                d[j] = v[idx(i - 1, j)];
                v[idx(i, j)] = 0.0;
                v[idx(j, i)] = 0.0;
            }
        } else {
            for dk in &mut d[..i] {
                *dk /= scale;
                h += *dk * *dk;
            }
            let mut f = d[i - 1];
            let mut g = h.sqrt();
            if f > 0.0 {
                g = -g;
            }
            e[i] = scale * g;
            h -= f * g;
            d[i - 1] = f - g;
            for ej in &mut e[..i] {
                *ej = 0.0;
            }
            for j in 0..i {
                f = d[j];
                v[idx(j, i)] = f;
                g = e[j] + v[idx(j, j)] * f;
                for k in j + 1..i {
                    g += v[idx(k, j)] * d[k];
                    e[k] += v[idx(k, j)] * f;
                }
                e[j] = g;
            }
            f = 0.0;
            for j in 0..i {
                e[j] /= h;
                f += e[j] * d[j];
            }
            let hh = f / (h + h);
            for j in 0..i {
                e[j] -= hh * d[j];
            }
            for j in 0..i {
                f = d[j];
                g = e[j];
                for k in j..i {
                    v[idx(k, j)] -= f * e[k] + g * d[k];
                }
                d[j] = v[idx(i - 1, j)];
                v[idx(i, j)] = 0.0;
            }
        }
        d[i] = h;
    }
    // Accumulate the transformations.
    for i in 0..n - 1 {
        v[idx(n - 1, i)] = v[idx(i, i)];
        v[idx(i, i)] = 1.0;
        let h = d[i + 1];
        if h != 0.0 && vectors {
            for k in 0..=i {
                d[k] = v[idx(k, i + 1)] / h;
            }
            for j in 0..=i {
                let mut g = 0.0;
                for k in 0..=i {
                    g += v[idx(k, i + 1)] * v[idx(k, j)];
                }
                for k in 0..=i {
                    v[idx(k, j)] -= g * d[k];
                }
            }
        }
        for k in 0..=i {
            v[idx(k, i + 1)] = 0.0;
        }
    }
    for j in 0..n {
        d[j] = v[idx(n - 1, j)];
        v[idx(n - 1, j)] = 0.0;
    }
    v[idx(n - 1, n - 1)] = 1.0;
    e[0] = 0.0;

    // tql2: implicit QL on the tridiagonal matrix.
    for i in 1..n {
        e[i - 1] = e[i];
    }
    e[n - 1] = 0.0;
    let mut f = 0.0f64;
    let mut tst1 = 0.0f64;
    let eps = f64::EPSILON;
    for l in 0..n {
        tst1 = tst1.max(d[l].abs() + e[l].abs());
        let mut m = l;
        while m < n {
            if e[m].abs() <= eps * tst1 {
                break;
            }
            m += 1;
        }
        if m > l {
            let mut iterations = 0;
            loop {
                iterations += 1;
                let mut g = d[l];
                let mut p = (d[l + 1] - g) / (2.0 * e[l]);
                let mut r = p.hypot(1.0);
                if p < 0.0 {
                    r = -r;
                }
                d[l] = e[l] / (p + r);
                d[l + 1] = e[l] * (p + r);
                let dl1 = d[l + 1];
                let mut h = g - d[l];
                for di in &mut d[l + 2..n] {
                    *di -= h;
                }
                f += h;
                p = d[m];
                let mut c = 1.0;
                let mut c2 = c;
                let mut c3 = c;
                let el1 = e[l + 1];
                let mut s = 0.0;
                let mut s2 = 0.0;
                for i in (l..m).rev() {
                    c3 = c2;
                    c2 = c;
                    s2 = s;
                    g = c * e[i];
                    h = c * p;
                    r = p.hypot(e[i]);
                    e[i + 1] = s * r;
                    s = e[i] / r;
                    c = p / r;
                    p = c * d[i] - s * g;
                    d[i + 1] = h + s * (c * g + s * d[i]);
                    if vectors {
                        for k in 0..n {
                            h = v[idx(k, i + 1)];
                            v[idx(k, i + 1)] = s * v[idx(k, i)] + c * h;
                            v[idx(k, i)] = c * v[idx(k, i)] - s * h;
                        }
                    }
                }
                p = -s * s2 * c3 * el1 * e[l] / dl1;
                e[l] = s * p;
                d[l] = c * p;
                if e[l].abs() <= eps * tst1 || iterations >= 60 {
                    break;
                }
            }
        }
        d[l] += f;
        e[l] = 0.0;
    }

    // Sort ascending, columns along.
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| d[a].total_cmp(&d[b]));
    let values: Vec<f64> = order.iter().map(|&i| d[i]).collect();
    if !vectors {
        return (values, Vec::new());
    }
    let mut sorted = vec![0.0f64; n * n];
    for (c, &src) in order.iter().enumerate() {
        for r in 0..n {
            sorted[idx(r, c)] = v[idx(r, src)];
        }
    }
    (values, sorted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diarize::test_rng::SplitMix;

    #[test]
    fn symmetric_eigen_decomposes() {
        let mut rng = SplitMix(7);
        for n in [1, 2, 5, 40] {
            let mut a = vec![0.0; n * n];
            for i in 0..n {
                for j in i..n {
                    let x = rng.gaussian();
                    a[i * n + j] = x;
                    a[j * n + i] = x;
                }
            }
            let (values, vectors) = symmetric_eigen(a.clone(), n, true);
            let (only, _) = symmetric_eigen(a.clone(), n, false);
            assert!(values.windows(2).all(|w| w[0] <= w[1]));
            for (x, y) in values.iter().zip(&only) {
                assert!((x - y).abs() < 1e-9);
            }
            for c in 0..n {
                for r in 0..n {
                    let av: f64 = (0..n).map(|k| a[r * n + k] * vectors[k * n + c]).sum();
                    assert!((av - values[c] * vectors[r * n + c]).abs() < 1e-9, "n {n}");
                }
                let norm: f64 = (0..n).map(|r| vectors[r * n + c].powi(2)).sum();
                assert!((norm - 1.0).abs() < 1e-9);
            }
        }
        // A diagonal matrix and one with a repeated eigenvalue.
        let (values, _) =
            symmetric_eigen(vec![3.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 2.0], 3, true);
        assert_eq!(values, vec![1.0, 2.0, 3.0]);
        let (values, _) = symmetric_eigen(vec![1.0; 9], 3, false);
        assert!(
            values[0].abs() < 1e-12 && values[1].abs() < 1e-12 && (values[2] - 3.0).abs() < 1e-12
        );
    }
}
