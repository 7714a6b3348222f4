//! The worker's building blocks.
//!
//! - [`audio`]: any supported recording → 16 kHz f32 samples, one buffer per channel.
//! - [`ct2`]: reading CTranslate2 Whisper model folders (`model.bin`) directly.
//! - [`mel`]: Whisper's log-mel spectrogram, as faster-whisper computes it.
//! - [`source`]: `--model` (CTranslate2 or Hugging Face folder, hub id in the cache) loaded.
//! - [`whisper`]: CTranslate2 variable names mapped to Hugging Face's, one naming for all formats.
//! - [`tokenizer`]: Whisper's `tokenizer.json`, token ids to text, special tokens by name.
//! - [`model`]: Whisper's network (our own: exact GELU, stored positions, cached decoder steps).
//! - [`kernels`]: vectorised CPU attention, softmax and GELU for the model.
//! - [`decode`]: windows → tokens: greedy/beam search, timestamps, fallback, batched.
//! - [`lane`]: the transcription lane: claim batches from the queue, transcribe, store, fenced.
//! - [`transcribe`]: recordings → transcripts: VAD chunks from many files decoded in batches.
//! - [`diarize`]: speakers of mono calls: RTTM, DER, embedding clustering (NME-SC), turns.
//! - [`batching`]: windows per forward pass from the device's free memory.
//! - [`device`]: `--device cpu|cuda[:N]` and the dtype used there.
//! - [`crosstalk`]: a channel's speech without the other party's bleed into its microphone.
//! - [`silero`]: Silero VAD v6 in Candle: speech probabilities every 32 ms, silero's speech regions.
//! - [`speaker`]: speaker embeddings (resemblyzer's GE2E encoder, from its legacy `.pt` file).
//! - [`campplus`]: speaker-verification embeddings (3D-Speaker's CAM++, from its state dict).
//! - [`fbank`]: Kaldi's log-mel filterbank features (CAM++'s input).
//! - [`segmentation`]: who of up to three voices talks in each 17 ms of a 10 s chunk, overlaps
//!   included (pyannote segmentation-3.0).
//! - [`vad`]: speech regions of a channel (noise and silence rejected), merged into ≤ 30 s chunks.
//! - [`roles`]: which speaker is the agent (channel map, agent phrases, campaign script).
//! - [`transcript`]: the transcription result per channel; text, JSON, SRT and WebVTT.
//! - [`wer`]: text normalization and word error rate against references.

pub mod audio;
pub mod batching;
pub mod campplus;
pub mod crosstalk;
pub mod ct2;
pub mod decode;
pub mod device;
pub mod diarize;
pub mod fbank;
pub mod kernels;
pub mod lane;
pub mod mel;
pub mod model;
pub mod roles;
pub mod segmentation;
pub mod silero;
pub mod source;
pub mod speaker;
pub mod tokenizer;
pub mod transcribe;
pub mod transcript;
pub mod vad;
pub mod wer;
pub mod whisper;
