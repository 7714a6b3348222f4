//! Greedy decoding of 30 s windows with Candle's Whisper, without timestamps.
//!
//! The loop is candle-examples' whisper decoder (`decoder.forward` over the whole token
//! sequence, cross-attention keys and values cached after the first step, `final_linear` on the
//! last position); the prompt and token rules are faster-whisper's with CTranslate2's
//! `generate`:
//!
//! - prompt: `<|startoftranscript|>` (English-only models) or `<|startoftranscript|><|xx|>
//!   <|transcribe|>` (multilingual models), then `<|notimestamps|>`;
//! - `config.json`'s `suppress_ids` plus the task, start and no-speech tokens
//!   (faster-whisper's `get_suppressed_tokens`) are never chosen; `suppress_ids_begin` (space
//!   and `<|endoftext|>`) not as the first token (`suppress_blank`);
//! - at most 224 new tokens (half the text context, as CTranslate2 bounds `max_length`),
//!   stopping at `<|endoftext|>`; timestamp tokens are not suppressed, as CTranslate2 applies
//!   no timestamp rules after `<|notimestamps|>`;
//! - avg logprob: the log-softmax (after suppression) of every chosen token, `<|endoftext|>`
//!   included, summed and divided by the text tokens + 1 (faster-whisper's `avg_logprob`);
//! - no-speech probability: the softmax of the raw logits at the `<|startoftranscript|>`
//!   position, taken at the no-speech token (CTranslate2's `return_no_speech_prob`).
//!
//! Windows decode as a batch: every row gets one token per step; a row that has ended is fed
//! `<|endoftext|>` until all have (rows do not see each other, so the result of a window does not
//! depend on its batch).

use std::path::Path;

use candle_core::{DType, Device, IndexOp, Tensor, D};
use candle_transformers::models::whisper::model::Whisper;

use crate::ct2::{Ct2Error, Ct2Whisper, WhisperConfig};
use crate::tokenizer::{TokenizerError, WhisperTokenizer};
use crate::whisper::{encoder_input, load_ct2, WhisperLoadError};

/// The most tokens decoded for one window (the text context's 448 halved).
pub const MAX_NEW_TOKENS: usize = 224;

/// Where `<|startoftranscript|>` stands in the prompt (no previous-text prompt here).
const SOT_INDEX: usize = 0;

/// How windows are decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeOptions {
    /// The language code of multilingual models' prompt (`"en"` → `<|en|>`); English-only
    /// models have no language token and ignore it.
    pub language: String,
    /// The most tokens decoded per window, `<|endoftext|>` included; at least 1 is decoded
    /// (the no-speech probability comes from the first step), and the text context bounds it.
    pub max_new_tokens: usize,
    /// Whether `suppress_ids_begin` are suppressed at the first step (faster-whisper's
    /// `suppress_blank`, on by default).
    pub suppress_blank: bool,
}

impl Default for DecodeOptions {
    fn default() -> DecodeOptions {
        DecodeOptions {
            language: "en".to_owned(),
            max_new_tokens: MAX_NEW_TOKENS,
            suppress_blank: true,
        }
    }
}

/// One window's transcript.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// The text of `tokens` (with Whisper's leading space).
    pub text: String,
    /// The chosen tokens after the prompt, without `<|endoftext|>`.
    pub tokens: Vec<u32>,
    /// Summed log-probabilities of the chosen tokens divided by `tokens.len() + 1`.
    pub avg_logprob: f64,
    /// Probability of the no-speech token at the `<|startoftranscript|>` position.
    pub no_speech_prob: f64,
    /// Whether decoding ended with `<|endoftext|>` (false: it ran out of tokens).
    pub finished: bool,
}

/// Errors loading a decoder or decoding.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error(transparent)]
    Ct2(#[from] Ct2Error),
    #[error(transparent)]
    Load(#[from] WhisperLoadError),
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    #[error("token id {token} is outside the model's {vocab} tokens")]
    TokenOutOfRange { token: u32, vocab: usize },
    #[error("decoding: {0}")]
    Candle(#[from] candle_core::Error),
}

/// Greedy decoding with one model, tokenizer and prompt.
pub struct GreedyDecoder {
    model: Whisper,
    tokenizer: WhisperTokenizer,
    prompt: Vec<u32>,
    /// `[vocab]` f32: `-inf` at the tokens never chosen, 0 elsewhere.
    suppress: Tensor,
    /// `suppress` plus the tokens not chosen first.
    suppress_first: Tensor,
    max_new_tokens: usize,
    dtype: DType,
    device: Device,
}

impl std::fmt::Debug for GreedyDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GreedyDecoder")
            .field("prompt", &self.prompt)
            .field("max_new_tokens", &self.max_new_tokens)
            .field("dtype", &self.dtype)
            .field("device", &self.device)
            .finish_non_exhaustive()
    }
}

impl GreedyDecoder {
    /// Load a CTranslate2 model folder (`model.bin`, `config.json`, `tokenizer.json`) in
    /// `dtype` on `device`.
    pub fn open(
        dir: &Path,
        dtype: DType,
        device: &Device,
        options: &DecodeOptions,
    ) -> Result<GreedyDecoder, DecodeError> {
        let ct2 = Ct2Whisper::open(dir)?;
        let model = load_ct2(&ct2, dtype, device)?;
        let tokenizer = WhisperTokenizer::open(dir)?;
        GreedyDecoder::new(
            model,
            dtype,
            device,
            &ct2.config,
            ct2.dims.is_multilingual(),
            tokenizer,
            options,
        )
    }

    /// A decoder over a model loaded in `dtype` on `device`; `config` gives the suppressed
    /// tokens, `multilingual` whether the prompt carries language and task tokens.
    pub fn new(
        model: Whisper,
        dtype: DType,
        device: &Device,
        config: &WhisperConfig,
        multilingual: bool,
        tokenizer: WhisperTokenizer,
        options: &DecodeOptions,
    ) -> Result<GreedyDecoder, DecodeError> {
        let vocab = model.config.vocab_size;
        let mut prompt = tokenizer.sot_sequence(multilingual, &options.language)?;
        prompt.push(tokenizer.no_timestamps);

        let mut suppressed = config.suppress_ids.clone();
        suppressed.extend([
            tokenizer.transcribe,
            tokenizer.translate,
            tokenizer.sot,
            tokenizer.sot_prev,
            tokenizer.sot_lm,
            tokenizer.no_speech,
        ]);
        let mut suppressed_first = suppressed.clone();
        if options.suppress_blank {
            suppressed_first.extend(&config.suppress_ids_begin);
        }
        for &token in prompt
            .iter()
            .chain(&suppressed_first)
            .chain([&tokenizer.eot])
        {
            if token as usize >= vocab {
                return Err(DecodeError::TokenOutOfRange { token, vocab });
            }
        }
        let mask = |ids: &[u32]| {
            let mut mask = vec![0f32; vocab];
            for &id in ids {
                mask[id as usize] = f32::NEG_INFINITY;
            }
            Tensor::from_vec(mask, vocab, device)
        };
        // Room for the prompt and the new tokens in the decoder's positions.
        let room = (model.config.max_target_positions + 1).saturating_sub(prompt.len());
        Ok(GreedyDecoder {
            suppress: mask(&suppressed)?,
            suppress_first: mask(&suppressed_first)?,
            max_new_tokens: options.max_new_tokens.max(1).min(room),
            dtype,
            prompt,
            tokenizer,
            model,
            device: device.clone(),
        })
    }

    /// The prompt every window starts from.
    pub fn prompt(&self) -> &[u32] {
        &self.prompt
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &WhisperTokenizer {
        &self.tokenizer
    }

    /// Decode 30 s log-mel windows (each row-major `[n_mels, 3000]`, as
    /// [`crate::mel::LogMel::window`] gives them) as one batch; one result per window.
    pub fn decode_windows(&mut self, windows: &[Vec<f32>]) -> Result<Vec<Decoded>, DecodeError> {
        if windows.is_empty() {
            return Ok(Vec::new());
        }
        let features = self.encode(windows)?;
        self.decode_features(&features)
    }

    /// The encoder's output `[batch, 1500, width]` for a non-empty batch of windows.
    pub fn encode(&mut self, windows: &[Vec<f32>]) -> Result<Tensor, DecodeError> {
        let input = encoder_input(
            windows,
            self.model.config.num_mel_bins,
            self.dtype,
            &self.device,
        )?;
        Ok(self.model.encoder.forward(&input, true)?)
    }

    /// Decode the encoder's output `[batch, 1500, width]`; one result per row.
    pub fn decode_features(&mut self, features: &Tensor) -> Result<Vec<Decoded>, DecodeError> {
        let batch = features.dim(0)?;
        let eot = self.tokenizer.eot;
        let mut rows: Vec<Vec<u32>> = vec![self.prompt.clone(); batch];
        let mut generated: Vec<Vec<u32>> = vec![Vec::new(); batch];
        let mut sum_logprob = vec![0f64; batch];
        let mut finished = vec![false; batch];
        let mut no_speech_prob = vec![0f64; batch];

        for step in 0..self.max_new_tokens {
            let len = rows[0].len();
            let flat: Vec<u32> = rows.iter().flatten().copied().collect();
            let input = Tensor::from_vec(flat, (batch, len), &self.device)?;
            let hidden = self.model.decoder.forward(&input, features, step == 0)?;

            if step == 0 {
                let at_sot = hidden.i((.., SOT_INDEX..SOT_INDEX + 1))?;
                let logits = self.logits(&at_sot)?;
                let probs = candle_nn::ops::softmax_last_dim(&logits)?;
                let probs: Vec<f32> = probs
                    .i((.., self.tokenizer.no_speech as usize))?
                    .to_vec1()?;
                no_speech_prob = probs.into_iter().map(f64::from).collect();
            }

            let logits = self.logits(&hidden.i((.., len - 1..len))?)?;
            let mask = if step == 0 {
                &self.suppress_first
            } else {
                &self.suppress
            };
            let logprobs = candle_nn::ops::log_softmax(&logits.broadcast_add(mask)?, D::Minus1)?;
            let next = logprobs.argmax_keepdim(D::Minus1)?;
            let chosen: Vec<f32> = logprobs.gather(&next, D::Minus1)?.squeeze(1)?.to_vec1()?;
            let next: Vec<u32> = next.squeeze(1)?.to_vec1()?;

            for b in 0..batch {
                if finished[b] {
                    rows[b].push(eot);
                    continue;
                }
                sum_logprob[b] += f64::from(chosen[b]);
                rows[b].push(next[b]);
                if next[b] == eot {
                    finished[b] = true;
                } else {
                    generated[b].push(next[b]);
                }
            }
            if finished.iter().all(|&f| f) {
                break;
            }
        }

        generated
            .into_iter()
            .enumerate()
            .map(|(b, tokens)| {
                Ok(Decoded {
                    text: self.tokenizer.decode(&tokens)?,
                    avg_logprob: sum_logprob[b] / (tokens.len() + 1) as f64,
                    no_speech_prob: no_speech_prob[b],
                    finished: finished[b],
                    tokens,
                })
            })
            .collect()
    }

    /// `[batch, 1, width]` decoder states → `[batch, vocab]` f32 logits.
    fn logits(&self, hidden: &Tensor) -> candle_core::Result<Tensor> {
        self.model
            .decoder
            .final_linear(hidden)?
            .squeeze(1)?
            .to_dtype(DType::F32)
    }
}
