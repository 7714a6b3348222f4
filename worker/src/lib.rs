//! The worker's building blocks.
//!
//! - [`audio`]: any supported recording → 16 kHz f32 samples, one buffer per channel.
//! - [`ct2`]: reading CTranslate2 Whisper model folders (`model.bin`) directly.
//! - [`mel`]: Whisper's log-mel spectrogram, as faster-whisper computes it.
//! - [`whisper`]: Candle's Whisper model built from a CTranslate2 folder's weights.

pub mod audio;
pub mod ct2;
pub mod mel;
pub mod whisper;
