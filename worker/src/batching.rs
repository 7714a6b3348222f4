//! How many 30 s windows go through the model together, from the memory the device has free
//! once the weights are loaded.
//!
//! The estimate counts what a window holds at the peak of a forward pass: the encoder's
//! residual stream, q/k/v, MLP hidden state and convolution output (10 activations of
//! `n_audio_ctx × d_model`), its attention scores (`heads × ctx²`, which Candle's attention on
//! the GPU materializes), the decoder's cross-attention keys and values for every layer (kept
//! for the whole decode), the self-attention cache of every beam, and f32 logits per beam. It is
//! then doubled for the allocator's slack and temporaries, and only part of the free memory is
//! spent, leaving room for the audio and for other processes.

use candle_core::DType;

use crate::ct2::WhisperDims;

/// The share of free memory batches may use.
const USABLE_SHARE: f64 = 0.6;

/// Bytes one window needs at the peak of a forward pass (with slack).
pub fn bytes_per_window(dims: &WhisperDims, dtype: DType, beam_size: usize) -> u64 {
    let element = dtype.size_in_bytes() as u64;
    let beams = beam_size.max(1) as u64;
    let audio_ctx = dims.n_audio_ctx as u64;
    let text_ctx = dims.n_text_ctx as u64;
    let encoder_activations = 10 * audio_ctx * dims.n_audio_state as u64 * element;
    let encoder_scores = dims.n_audio_head as u64 * audio_ctx * audio_ctx * element;
    let cross_cache = 2 * dims.n_text_layer as u64 * audio_ctx * dims.n_text_state as u64 * element;
    let self_cache =
        2 * dims.n_text_layer as u64 * text_ctx * dims.n_text_state as u64 * element * beams;
    let logits = beams * dims.n_vocab as u64 * 4;
    2 * (encoder_activations + encoder_scores + cross_cache + self_cache + logits)
}

/// Windows per batch that fit in `free_bytes`, between 1 and `cap`.
pub fn windows_per_batch(
    dims: &WhisperDims,
    dtype: DType,
    beam_size: usize,
    free_bytes: u64,
    cap: usize,
) -> usize {
    let usable = (free_bytes as f64 * USABLE_SHARE) as u64;
    let fit = usable / bytes_per_window(dims, dtype, beam_size).max(1);
    (fit as usize).clamp(1, cap.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dims(layers: usize, state: usize, heads: usize, mels: usize) -> WhisperDims {
        WhisperDims {
            n_mels: mels,
            n_audio_ctx: 1500,
            n_audio_state: state,
            n_audio_head: heads,
            n_audio_layer: layers,
            n_text_ctx: 448,
            n_text_state: state,
            n_text_head: heads,
            n_text_layer: layers,
            n_vocab: 51866,
        }
    }

    const GIB: u64 = 1 << 30;

    #[test]
    fn large_models_get_fewer_windows_than_small_ones() {
        let tiny = dims(4, 384, 6, 80);
        let large = dims(32, 1280, 20, 128);
        // large-v3 in f16: about 0.9 GB a window with slack.
        let per_window = bytes_per_window(&large, DType::F16, 1);
        assert!(
            (800 << 20..1200 << 20).contains(&per_window),
            "{per_window}"
        );
        let on_h100 = windows_per_batch(&large, DType::F16, 1, 75 * GIB, 256);
        assert!((40..=60).contains(&on_h100), "{on_h100}");
        assert!(windows_per_batch(&tiny, DType::F16, 1, 75 * GIB, 256) > on_h100);
        // Beams multiply the decoder's cache.
        assert!(bytes_per_window(&large, DType::F16, 5) > per_window);
    }

    #[test]
    fn the_batch_stays_between_one_and_the_cap() {
        let large = dims(32, 1280, 20, 128);
        assert_eq!(windows_per_batch(&large, DType::F32, 1, 1 << 20, 64), 1);
        assert_eq!(windows_per_batch(&large, DType::F16, 1, 1 << 50, 64), 64);
    }
}
