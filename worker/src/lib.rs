//! The worker's building blocks.
//!
//! - [`audio`]: any supported recording → 16 kHz f32 samples, one buffer per channel.
//! - [`ct2`]: reading CTranslate2 Whisper model folders (`model.bin`) directly.
//! - [`mel`]: Whisper's log-mel spectrogram, as faster-whisper computes it.
//! - [`whisper`]: Candle's Whisper model built from a CTranslate2 folder's weights.
//! - [`tokenizer`]: Whisper's `tokenizer.json`, token ids to text, special tokens by name.
//! - [`decode`]: greedy decoding of 30 s windows (no timestamps), batched.

pub mod audio;
pub mod ct2;
pub mod decode;
pub mod mel;
pub mod tokenizer;
pub mod whisper;
