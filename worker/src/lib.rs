//! The worker's building blocks.
//!
//! - [`audio`]: any supported recording → 16 kHz f32 samples, one buffer per channel.
//! - [`ct2`]: reading CTranslate2 Whisper model folders (`model.bin`) directly.

pub mod audio;
pub mod ct2;
