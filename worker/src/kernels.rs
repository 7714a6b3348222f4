//! CPU kernels for the three places where Candle's generic CPU ops cost Whisper most.
//!
//! Measured on the encoder of tiny.en (one 30 s window, 2 cores), Candle's generic path spends
//! most of its time outside the matrix products: `softmax` over the 6 × 1500 × 1500 attention
//! scores takes 37 ms per layer (a scalar `exp` per element), batched `q·kᵀ` with 64-wide heads
//! 26 ms (the head loop runs one multi-threaded gemm after another, each too small to keep both
//! cores busy), and the erf GELU 8 ms. So:
//!
//! - [`attention`] computes `softmax(q·kᵀ·scale)·v` per (batch row, head, block of queries) in
//!   one rayon task: two single-threaded gemm calls on a block of queries,
//!   with a vectorised softmax in between. Queries, keys and values are read in place through
//!   their strides, so the fused q/k/v projection is never copied into per-head tensors.
//! - [`gelu_erf`] applies the exact (erf) GELU, which Whisper and CTranslate2 use, with a
//!   vectorised erf, in parallel.
//! - [`log_softmax_in_place`] serves the decoder's per-row logit work.
//!
//! The math is written as plain loops over slices that LLVM vectorises, and runs
//! compiled for AVX-512 or AVX2+FMA when the CPU has them (`multiversion!`, detected at run time), so one
//! binary is fast on every x86-64 machine. Approximations: `exp` to about 2 ulp (Cephes' degree-6
//! polynomial), erf to 1.5e-7 absolute (Abramowitz & Stegun 7.1.26).
//!
//! The kernels take f32 CPU tensors only; [`crate::model`] uses Candle's generic ops for other
//! devices and dtypes (CUDA has fused softmax kernels of its own), and the tests check both paths
//! give the same numbers.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Queries per attention task: fewer blocks re-pack each head's keys less often. Measured on
/// tiny.en's encoder attention (6 heads × 1500 positions, 2 cores): 50 ms per layer at 32,
/// 46 at 64, 43 at 128, 40 at 256.
const QUERY_BLOCK: usize = 256;

/// Defines `fn $name` that runs its body compiled for the widest vector instructions this CPU
/// has (AVX-512, else AVX2+FMA, else the baseline), detected at run time.
macro_rules! multiversion {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),*) $(-> $ret:ty)? $body:block) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn body($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx2,fma")]
                fn avx512($($arg: $ty),*) $(-> $ret)? {
                    body($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                fn avx2($($arg: $ty),*) $(-> $ret)? {
                    body($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU has every feature `avx512` is compiled for.
                    return unsafe { avx512($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: as above.
                    return unsafe { avx2($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}

/// Lanes of the running max and sum: independent accumulators are what lets LLVM vectorise a
/// floating-point reduction without reassociating (which it may not do on its own).
const LANES: usize = 16;

#[inline(always)]
fn max(values: &[f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; LANES];
    let chunks = values.chunks_exact(LANES);
    let rest = chunks.remainder();
    for chunk in chunks {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            *lane = lane.max(v);
        }
    }
    rest.iter()
        .chain(&lanes)
        .copied()
        .fold(f32::NEG_INFINITY, f32::max)
}

/// `values[i] ← e^(values[i] − shift)`, returning their sum.
#[inline(always)]
fn exp_shifted_in_place(values: &mut [f32], shift: f32) -> f32 {
    let mut lanes = [0f32; LANES];
    let mut chunks = values.chunks_exact_mut(LANES);
    for chunk in &mut chunks {
        for (lane, v) in lanes.iter_mut().zip(chunk.iter_mut()) {
            *v = exp(*v - shift);
            *lane += *v;
        }
    }
    let mut sum: f32 = lanes.iter().sum();
    for v in chunks.into_remainder() {
        *v = exp(*v - shift);
        sum += *v;
    }
    sum
}

/// `Σ e^(values[i] − shift)`.
#[inline(always)]
fn exp_shifted_sum(values: &[f32], shift: f32) -> f32 {
    let mut lanes = [0f32; LANES];
    let chunks = values.chunks_exact(LANES);
    let rest = chunks.remainder();
    for chunk in chunks {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            *lane += exp(v - shift);
        }
    }
    lanes.iter().sum::<f32>() + rest.iter().map(|&v| exp(v - shift)).sum::<f32>()
}

/// `e^x`: Cody–Waite range reduction to `|r| ≤ ln 2 / 2` and Cephes' `expf` polynomial. Inputs
/// below −87.3 (and −∞) give 2⁻¹²⁶ ≈ 1e-38 rather than 0, which no sum here notices.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let x = x.clamp(-87.336_55, 88.0);
    let n = (x * LOG2E + 0.5).floor();
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 5.0e-1;
    let e = p * r * r + r + 1.0;
    e * f32::from_bits(((n as i32 + 127) << 23) as u32)
}

/// erf(x) to 1.5e-7 (Abramowitz & Stegun 7.1.26).
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = ((((1.061_405_4 * t - 1.453_152_1) * t + 1.421_413_8) * t - 0.284_496_74) * t
        + 0.254_829_6)
        * t;
    let y = 1.0 - poly * exp(-a * a);
    y.copysign(x)
}

/// The exact GELU, `x · Φ(x)`.
#[inline(always)]
fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// `row ← softmax(row)`.
#[inline(always)]
fn softmax_row(row: &mut [f32]) {
    let scale = 1.0 / exp_shifted_in_place(row, max(row));
    for value in row.iter_mut() {
        *value *= scale;
    }
}

multiversion! {
    /// `row ← log_softmax(row)`; entries of −∞ stay −∞.
    pub fn log_softmax_in_place(row: &mut [f32]) {
        let max = max(row);
        let shift = max + exp_shifted_sum(row, max).ln();
        for value in row.iter_mut() {
            *value -= shift;
        }
    }
}

multiversion! {
    /// Each row of `scores` (`width` wide) ← softmax of its first `visible(row)` entries, the
    /// rest ← 0.
    fn masked_softmax_rows(scores: &mut [f32], width: usize, first_visible: usize, causal: bool) {
        for (i, row) in scores.chunks_exact_mut(width).enumerate() {
            let visible = if causal { (first_visible + i).min(width) } else { width };
            let (seen, hidden) = row.split_at_mut(visible);
            softmax_row(seen);
            hidden.fill(0.0);
        }
    }
}

multiversion! {
    /// `values[i] ← gelu(values[i])`.
    fn gelu_in_place(values: &mut [f32]) {
        for value in values.iter_mut() {
            *value = gelu(*value);
        }
    }
}

struct GeluErf;

impl CustomOp1 for GeluErf {
    fn name(&self) -> &'static str {
        "callscript-gelu-erf"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(data) = storage else {
            candle_core::bail!("{}: f32 only, got {:?}", self.name(), storage.dtype());
        };
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("{}: the input must be contiguous", self.name());
        };
        let mut out = data[start..end].to_vec();
        out.par_chunks_mut(16 * 1024).for_each(gelu_in_place);
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }
}

/// The exact (erf) GELU of an f32 CPU tensor.
pub fn gelu_erf(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1_no_bwd(&GeluErf)
}

/// `softmax(q·kᵀ·scale)·v` with queries `[batch, tq, heads, head_dim]`, keys and values
/// `[batch, tk, heads, head_dim]` (any strides, the last dimension dense); `causal` lets query
/// `i` see keys up to `i + tk − tq` (the cached keys plus its own position). Returns
/// `[batch, tq, heads · head_dim]`.
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, scale: f32, causal: bool) -> Result<Tensor> {
    q.apply_op3_no_bwd(k, v, &Attention { scale, causal })
}

struct Attention {
    scale: f32,
    causal: bool,
}

/// A raw output pointer shared by tasks that write disjoint elements.
#[derive(Clone, Copy)]
struct SharedOut(*mut f32);

impl SharedOut {
    /// The pointer (a method, so closures capture the `Sync` wrapper, not the raw field).
    fn get(self) -> *mut f32 {
        self.0
    }
}
// SAFETY: every task writes its own (batch row, head, query block) elements only.
unsafe impl Send for SharedOut {}
unsafe impl Sync for SharedOut {}

/// Dimensions and strides of a `[batch, t, heads, head_dim]` operand.
struct Operand<'a> {
    data: &'a [f32],
    dims: [usize; 4],
    stride: [usize; 3],
}

impl<'a> Operand<'a> {
    fn new(name: &str, storage: &'a CpuStorage, layout: &Layout) -> Result<Operand<'a>> {
        let CpuStorage::F32(data) = storage else {
            candle_core::bail!("attention: {name} must be f32, got {:?}", storage.dtype());
        };
        let (b, t, h, d) = layout.shape().dims4()?;
        let stride = layout.stride();
        if stride[3] != 1 && d > 1 {
            candle_core::bail!("attention: {name}'s last dimension must be dense");
        }
        Ok(Operand {
            data: &data[layout.start_offset()..],
            dims: [b, t, h, d],
            stride: [stride[0], stride[1], stride[2]],
        })
    }

    /// Pointer to element `[b, t, h, 0]`.
    fn at(&self, b: usize, t: usize, h: usize) -> *const f32 {
        let offset = b * self.stride[0] + t * self.stride[1] + h * self.stride[2];
        self.data[offset..].as_ptr()
    }
}

impl CustomOp3 for Attention {
    fn name(&self) -> &'static str {
        "callscript-attention"
    }

    fn cpu_fwd(
        &self,
        q: &CpuStorage,
        q_layout: &Layout,
        k: &CpuStorage,
        k_layout: &Layout,
        v: &CpuStorage,
        v_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let q = Operand::new("queries", q, q_layout)?;
        let k = Operand::new("keys", k, k_layout)?;
        let v = Operand::new("values", v, v_layout)?;
        let [batch, tq, heads, head_dim] = q.dims;
        let tk = k.dims[1];
        if k.dims != v.dims || k.dims[0] != batch || k.dims[2] != heads || k.dims[3] != head_dim {
            candle_core::bail!(
                "attention: queries {:?}, keys {:?} and values {:?} do not fit",
                q.dims,
                k.dims,
                v.dims
            );
        }
        if self.causal && tq > tk {
            candle_core::bail!("attention: {tq} causal queries over {tk} keys");
        }
        let width = heads * head_dim;
        let mut out = vec![0f32; batch * tq * width];
        let shared = SharedOut(out.as_mut_ptr());
        let blocks = tq.div_ceil(QUERY_BLOCK);
        (0..batch * heads * blocks).into_par_iter().for_each_init(
            Vec::new,
            |scores: &mut Vec<f32>, task| {
                let (b, h, block) = (
                    task / (heads * blocks),
                    task / blocks % heads,
                    task % blocks,
                );
                let first = block * QUERY_BLOCK;
                let rows = QUERY_BLOCK.min(tq - first);
                scores.clear();
                scores.resize(rows * tk, 0.0);
                // SAFETY: the gemm calls stay inside the operands (their shapes and strides come
                // from Candle's layouts) and inside `scores`; this task alone writes rows
                // `first..first + rows` of head `h` of batch row `b` of `out`.
                unsafe {
                    gemm::gemm(
                        rows,
                        tk,
                        head_dim,
                        scores.as_mut_ptr(),
                        1,
                        tk as isize,
                        false,
                        q.at(b, first, h),
                        1,
                        q.stride[1] as isize,
                        k.at(b, 0, h),
                        k.stride[1] as isize,
                        1,
                        0.0,
                        self.scale,
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
                    );
                }
                masked_softmax_rows(scores, tk, first + 1 + (tk - tq), self.causal);
                unsafe {
                    gemm::gemm(
                        rows,
                        head_dim,
                        tk,
                        shared.get().add((b * tq + first) * width + h * head_dim),
                        1,
                        width as isize,
                        false,
                        scores.as_ptr(),
                        1,
                        tk as isize,
                        v.at(b, 0, h),
                        1,
                        v.stride[1] as isize,
                        0.0,
                        1.0,
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
                    );
                }
            },
        );
        Ok((CpuStorage::F32(out), Shape::from((batch, tq, width))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_and_erf_are_accurate() {
        for i in -2000..=2000 {
            let x = i as f32 / 25.0;
            let (got, want) = (exp(x), x.exp());
            assert!(
                (got - want).abs() <= want * 3e-7,
                "exp({x}) = {got}, want {want}"
            );
        }
        assert!(exp(f32::NEG_INFINITY) < 1e-37);
        for i in -500..=500 {
            let x = f64::from(i) / 100.0;
            let want = libm_erf(x);
            assert!(
                (f64::from(erf(x as f32)) - want).abs() < 3e-7,
                "erf({x}) = {}, want {want}",
                erf(x as f32)
            );
        }
    }

    /// erf by its Taylor series (converges fast enough for |x| ≤ 5 in f64) or 1 beyond.
    fn libm_erf(x: f64) -> f64 {
        if x.abs() > 5.0 {
            return x.signum();
        }
        let (mut term, mut sum, mut n) = (x, x, 0.0);
        while term.abs() > 1e-17 * sum.abs().max(1e-300) || n < 5.0 {
            n += 1.0;
            term *= -x * x / n;
            sum += term / (2.0 * n + 1.0);
            if n > 400.0 {
                break;
            }
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    }

    #[test]
    fn softmaxes_match_their_definitions() {
        let mut row: Vec<f32> = (0..1000).map(|i| ((i * 37) % 101) as f32 / 7.0).collect();
        let max = row.iter().copied().fold(f32::MIN, f32::max);
        let sum: f64 = row.iter().map(|&v| f64::from(v - max).exp()).sum();
        let want: Vec<f64> = row
            .iter()
            .map(|&v| f64::from(v - max).exp() / sum)
            .collect();
        let mut log_row = row.clone();
        // One row, no mask: the attention kernel's softmax.
        let width = row.len();
        masked_softmax_rows(&mut row, width, 0, false);
        log_softmax_in_place(&mut log_row);
        for ((p, lp), w) in row.iter().zip(&log_row).zip(&want) {
            assert!((f64::from(*p) - w).abs() < 1e-6 * w.max(1e-3));
            assert!((f64::from(*lp) - w.ln()).abs() < 1e-5);
        }
    }
}
