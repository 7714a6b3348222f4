//! Decoding 30 s windows into tokens: greedy and beam search, sampling at higher temperatures
//! with fallback, timestamp rules, suppressed tokens, prompts and language detection, for a
//! batch of windows at once.
//!
//! The rules are faster-whisper's (1.2) over CTranslate2's `generate`, so the same weights give
//! the same tokens:
//!
//! - **Prompt**: `<|startofprev|>` + hotwords + the last 223 previous tokens (when there are any),
//!   then `<|startoftranscript|>` (+ `<|xx|><|transcribe|>` on multilingual models), then
//!   `<|notimestamps|>` when timestamps are off.
//! - **Suppressed**: `config.json`'s `suppress_ids` and the task/start/no-speech tokens always;
//!   `suppress_ids_begin` (blank, `<|endoftext|>`) at the first step (`suppress_blank`).
//! - **Timestamps** (OpenAI's `ApplyTimestampRules`): the first token is a timestamp no later
//!   than 1 s; timestamps come in pairs and never decrease; when the timestamp tokens together
//!   are likelier than any text token, a timestamp is chosen.
//! - **Search**: at temperature 0, beam search (`beam_size` 1 is greedy) ranking finished
//!   hypotheses by summed log-probability over length; above 0, `best_of` independent samples.
//! - **Fallback**: a window whose text compresses more than 2.4× (a repetition loop) or whose
//!   average log-probability is below −1 is decoded again at the next temperature, unless it is
//!   likely silence (no-speech probability above 0.6 with the low log-probability). If every
//!   temperature fails, the best attempt by log-probability wins (among those that did not
//!   loop, when there are any).
//! - **Scores**: avg logprob = summed log-probabilities (`<|endoftext|>` included) / (tokens + 1);
//!   no-speech probability = softmax of the raw logits at `<|startoftranscript|>`, at the
//!   no-speech token.
//!
//! Batching: windows whose prompts have the same length share every step (rows do not see each
//! other, so a window's result does not depend on its batch); finished windows leave the batch.
//! Sampling (the fallback temperatures) draws from a generator of the window's own, seeded from
//! `seed`, the window's features and its prompt ([`window_seed`]): one generator for the whole
//! decoder made a window's sampled text depend on every window decoded before it, so the same
//! file gave different words through `transcribe` and through the worker (whose batches mix
//! calls), exactly where fallback happens most: digits read out, which loop.

use candle_core::{DType, Device, Tensor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::ct2::WhisperConfig;
use crate::kernels::log_softmax_in_place;
use crate::mel::WINDOW_FRAMES;
use crate::model::{DecoderState, Whisper};
use crate::source::LoadedModel;
use crate::tokenizer::{TokenizerError, WhisperTokenizer};

/// Seconds per timestamp token.
pub const SECONDS_PER_TIMESTAMP: f64 = 0.02;

/// The latest first timestamp, in timestamp tokens (1 s, as faster-whisper's
/// `max_initial_timestamp`).
const MAX_INITIAL_TIMESTAMP_INDEX: u32 = 50;

/// How windows are decoded. The defaults are faster-whisper's `transcribe` defaults, except
/// `beam_size` (1: greedy; faster-whisper's default is 5).
#[derive(Debug, Clone, PartialEq)]
pub struct DecodeOptions {
    /// The language code (`"en"`) for multilingual models; `None` detects it per window.
    /// English-only models ignore it.
    pub language: Option<String>,
    /// 1 decodes greedily.
    pub beam_size: usize,
    /// Beam search stops after `beam_size × patience` finished hypotheses.
    pub patience: f64,
    /// Hypotheses sampled per window at temperatures above 0.
    pub best_of: usize,
    /// Tried in order until a result passes the thresholds.
    pub temperatures: Vec<f64>,
    pub compression_ratio_threshold: Option<f64>,
    pub log_prob_threshold: Option<f64>,
    pub no_speech_threshold: Option<f64>,
    /// Segment timestamps (off: `<|notimestamps|>` and one segment per window).
    pub timestamps: bool,
    /// Suppress blank and `<|endoftext|>` as the first token.
    pub suppress_blank: bool,
    /// Words the model should expect (names, products), put before any previous text.
    pub hotwords: Option<String>,
    /// The most tokens decoded per window, `<|endoftext|>` included (the text context bounds it).
    pub max_new_tokens: usize,
    /// Seeds the sampler, so a run can be repeated.
    pub seed: u64,
}

impl Default for DecodeOptions {
    fn default() -> DecodeOptions {
        DecodeOptions {
            language: None,
            beam_size: 1,
            patience: 1.0,
            best_of: 5,
            temperatures: vec![0.0, 0.2, 0.4, 0.6, 0.8, 1.0],
            compression_ratio_threshold: Some(2.4),
            log_prob_threshold: Some(-1.0),
            no_speech_threshold: Some(0.6),
            timestamps: true,
            suppress_blank: true,
            hotwords: None,
            max_new_tokens: 224,
            seed: 0,
        }
    }
}

impl DecodeOptions {
    /// Options that decode exactly once, greedily: no fallback, no thresholds.
    pub fn greedy_once() -> DecodeOptions {
        DecodeOptions {
            temperatures: vec![0.0],
            compression_ratio_threshold: None,
            log_prob_threshold: None,
            no_speech_threshold: None,
            ..DecodeOptions::default()
        }
    }
}

/// One window to decode.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    /// Log-mel `[n_mels, 3000]`, row-major (as [`crate::mel::LogMel::window`] gives it).
    pub mel: Vec<f32>,
    /// Previous text's tokens (or an initial prompt's), the model's context.
    pub previous: Vec<u32>,
}

/// One window's result.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// Text and timestamp tokens, without `<|endoftext|>`.
    pub tokens: Vec<u32>,
    /// The text of the text tokens.
    pub text: String,
    /// The language code the window was decoded in (`"en"` for English-only models).
    pub language: String,
    pub avg_logprob: f64,
    pub no_speech_prob: f64,
    /// Text bytes / zlib-compressed text bytes.
    pub compression_ratio: f64,
    /// The temperature of the attempt kept.
    pub temperature: f64,
    /// Whether decoding ended with `<|endoftext|>` (false: it ran out of tokens).
    pub finished: bool,
}

impl Decoded {
    /// Whether the window holds no speech by faster-whisper's rule: the no-speech probability is
    /// above its threshold and the text is not confident enough to overrule it.
    pub fn is_silence(&self, options: &DecodeOptions) -> bool {
        let Some(threshold) = options.no_speech_threshold else {
            return false;
        };
        let confident = options
            .log_prob_threshold
            .is_some_and(|t| self.avg_logprob > t);
        self.no_speech_prob > threshold && !confident
    }
}

/// A stretch of a window's tokens between two timestamps.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenSegment {
    /// Seconds from the window's start.
    pub start: f64,
    pub end: f64,
    /// Text tokens (and their timestamps).
    pub tokens: Vec<u32>,
}

/// Errors decoding.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    #[error("token id {token} is outside the model's {vocab} tokens")]
    TokenOutOfRange { token: u32, vocab: usize },
    #[error("a window has {got} values, expected {expected} (n_mels × 3000)")]
    WindowSize { got: usize, expected: usize },
    #[error("decoding options: {0}")]
    Options(String),
    #[error("running the model: {0}")]
    Candle(#[from] candle_core::Error),
}

/// Decodes windows with one model and tokenizer.
pub struct Decoder {
    model: Whisper,
    tokenizer: WhisperTokenizer,
    options: DecodeOptions,
    multilingual: bool,
    /// Language token ids, for detection.
    lang_ids: Vec<u32>,
    /// Never chosen.
    suppress: Vec<u32>,
    /// Not chosen first.
    suppress_begin: Vec<u32>,
    hotwords: Vec<u32>,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder")
            .field("options", &self.options)
            .field("multilingual", &self.multilingual)
            .finish_non_exhaustive()
    }
}

/// One hypothesis being decoded or finished.
#[derive(Debug, Clone)]
struct Hypothesis {
    /// Tokens after the prompt, without `<|endoftext|>`.
    tokens: Vec<u32>,
    sum_logprob: f64,
    finished: bool,
}

impl Hypothesis {
    /// Summed log-probability over length (CTranslate2's ranking with length penalty 1).
    fn score(&self) -> f64 {
        self.sum_logprob / self.tokens.len().max(1) as f64
    }
}

/// What one attempt at a window gave.
struct Attempt {
    hypothesis: Hypothesis,
    no_speech_prob: f64,
}

/// An attempt with what the fallback rules judge it by.
struct Scored {
    attempt: Attempt,
    text: String,
    compression_ratio: f64,
    temperature: f64,
}

impl Decoder {
    /// A decoder for `model`; `config` gives the suppressed tokens and languages.
    pub fn new(
        model: Whisper,
        config: &WhisperConfig,
        tokenizer: WhisperTokenizer,
        options: DecodeOptions,
    ) -> Result<Decoder, DecodeError> {
        if options.temperatures.is_empty() || options.temperatures.iter().any(|t| *t < 0.0) {
            return Err(DecodeError::Options(format!(
                "temperatures must be a non-empty list of values ≥ 0, got {:?}",
                options.temperatures
            )));
        }
        if options.beam_size == 0 || options.best_of == 0 || options.patience <= 0.0 {
            return Err(DecodeError::Options(
                "beam size, best of and patience must be positive".to_owned(),
            ));
        }
        let vocab = model.dims.n_vocab;
        let multilingual = model.dims.is_multilingual();
        let mut suppress = config.suppress_ids.clone();
        suppress.extend([
            tokenizer.transcribe,
            tokenizer.translate,
            tokenizer.sot,
            tokenizer.sot_prev,
            tokenizer.sot_lm,
            tokenizer.no_speech,
        ]);
        let suppress_begin = if options.suppress_blank {
            config.suppress_ids_begin.clone()
        } else {
            Vec::new()
        };
        let hotwords = match &options.hotwords {
            Some(words) if !words.trim().is_empty() => {
                let mut tokens = tokenizer.encode(&format!(" {}", words.trim()))?;
                tokens.truncate(model.dims.n_text_ctx / 2 - 1);
                tokens
            }
            _ => Vec::new(),
        };
        for &token in suppress
            .iter()
            .chain(&suppress_begin)
            .chain(&config.lang_ids)
            .chain([&tokenizer.eot, &tokenizer.timestamp_begin()])
        {
            if token as usize >= vocab {
                return Err(DecodeError::TokenOutOfRange { token, vocab });
            }
        }
        if let (true, Some(language)) = (multilingual, &options.language) {
            tokenizer.sot_sequence(true, language)?;
        }
        Ok(Decoder {
            lang_ids: config.lang_ids.clone(),
            model,
            tokenizer,
            options,
            multilingual,
            suppress,
            suppress_begin,
            hotwords,
        })
    }

    /// A decoder for a loaded model, in `dtype` on `device`.
    pub fn from_loaded(
        loaded: &LoadedModel,
        dtype: DType,
        device: &Device,
        options: DecodeOptions,
    ) -> Result<Decoder, DecodeError> {
        let tokenizer = WhisperTokenizer::open(&loaded.tokenizer_dir)?;
        let model = Whisper::new(loaded.dims, &loaded.tensors, dtype, device)?;
        Decoder::new(model, &loaded.config, tokenizer, options)
    }

    pub fn tokenizer(&self) -> &WhisperTokenizer {
        &self.tokenizer
    }

    pub fn options(&self) -> &DecodeOptions {
        &self.options
    }

    pub fn model(&self) -> &Whisper {
        &self.model
    }

    /// Decode `windows` as a batch; one result per window, in order.
    pub fn decode(&self, windows: &[Window]) -> Result<Vec<Decoded>, DecodeError> {
        if windows.is_empty() {
            return Ok(Vec::new());
        }
        let features = self.encode(windows)?;
        let languages = self.languages(&features)?;
        let prompts: Vec<Vec<u32>> = windows
            .iter()
            .zip(&languages)
            .map(|(window, language)| self.prompt(&window.previous, language))
            .collect::<Result<_, _>>()?;

        let mut kept: Vec<Option<Scored>> = (0..windows.len()).map(|_| None).collect();
        let mut failed: Vec<Vec<Scored>> = (0..windows.len()).map(|_| Vec::new()).collect();
        let mut pending: Vec<usize> = (0..windows.len()).collect();
        let mut samplers: Vec<Option<StdRng>> = (0..windows.len()).map(|_| None).collect();
        let temperatures = self.options.temperatures.clone();
        for &temperature in &temperatures {
            if pending.is_empty() {
                break;
            }
            if temperature > 0.0 {
                for &w in &pending {
                    samplers[w].get_or_insert_with(|| {
                        StdRng::seed_from_u64(window_seed(self.options.seed, &windows[w]))
                    });
                }
            }
            let attempts =
                self.attempt(&features, &prompts, &pending, temperature, &mut samplers)?;
            let mut still = Vec::new();
            for (w, attempt) in pending.iter().copied().zip(attempts) {
                let text = self.tokenizer.decode(&attempt.hypothesis.tokens)?;
                let scored = Scored {
                    compression_ratio: compression_ratio(&text),
                    attempt,
                    text,
                    temperature,
                };
                if self.needs_fallback(&scored) {
                    failed[w].push(scored);
                    still.push(w);
                } else {
                    kept[w] = Some(scored);
                }
            }
            pending = still;
        }
        for w in pending {
            // Every temperature failed: the likeliest attempt that did not loop, else the
            // likeliest of all.
            let threshold = self
                .options
                .compression_ratio_threshold
                .unwrap_or(f64::INFINITY);
            let attempts = std::mem::take(&mut failed[w]);
            let below = attempts.iter().any(|a| a.compression_ratio <= threshold);
            let best = attempts
                .into_iter()
                .filter(|a| !below || a.compression_ratio <= threshold)
                .max_by(|a, b| {
                    avg_logprob(&a.attempt.hypothesis)
                        .total_cmp(&avg_logprob(&b.attempt.hypothesis))
                })
                .expect("every temperature made an attempt");
            kept[w] = Some(best);
        }

        Ok(kept
            .into_iter()
            .zip(languages)
            .map(|(kept, language)| {
                let scored = kept.expect("every window has a result");
                let hypothesis = scored.attempt.hypothesis;
                Decoded {
                    compression_ratio: scored.compression_ratio,
                    avg_logprob: avg_logprob(&hypothesis),
                    language: self.language_code(language),
                    no_speech_prob: scored.attempt.no_speech_prob,
                    finished: hypothesis.finished,
                    tokens: hypothesis.tokens,
                    temperature: scored.temperature,
                    text: scored.text,
                }
            })
            .collect())
    }

    /// Split a window's tokens into timestamped segments (faster-whisper's rule), returning them
    /// and how far the window's content was consumed, in seconds: to the last closing timestamp,
    /// or all of `content_seconds` when the text ran to the end of the window.
    pub fn segments(&self, tokens: &[u32], content_seconds: f64) -> (Vec<TokenSegment>, f64) {
        split_segments(tokens, self.tokenizer.timestamp_begin(), content_seconds)
    }

    /// Encoder states for the windows.
    fn encode(&self, windows: &[Window]) -> Result<Tensor, DecodeError> {
        let n_mels = self.model.dims.n_mels;
        let expected = n_mels * WINDOW_FRAMES;
        let mut data = Vec::with_capacity(windows.len() * expected);
        for window in windows {
            if window.mel.len() != expected {
                return Err(DecodeError::WindowSize {
                    got: window.mel.len(),
                    expected,
                });
            }
            data.extend_from_slice(&window.mel);
        }
        let mel = Tensor::from_vec(
            data,
            (windows.len(), n_mels, WINDOW_FRAMES),
            self.model.device(),
        )?;
        Ok(self.model.encode(&mel)?)
    }

    /// Each window's language token (`None` on English-only models): the option's, or the
    /// likeliest language token after `<|startoftranscript|>`.
    fn languages(&self, features: &Tensor) -> Result<Vec<Option<u32>>, DecodeError> {
        let windows = features.dim(0)?;
        if !self.multilingual {
            return Ok(vec![None; windows]);
        }
        if let Some(language) = &self.options.language {
            let token = self.tokenizer.sot_sequence(true, language)?[1];
            return Ok(vec![Some(token); windows]);
        }
        let mut state = self.model.start(features, 1)?;
        let logits = self
            .model
            .step(&mut state, &vec![self.tokenizer.sot; windows], 1)?;
        let logits: Vec<Vec<f32>> = logits.to_vec2()?;
        Ok(logits
            .iter()
            .map(|row| {
                self.lang_ids
                    .iter()
                    .copied()
                    .max_by(|a, b| row[*a as usize].total_cmp(&row[*b as usize]))
            })
            .collect())
    }

    fn language_code(&self, token: Option<u32>) -> String {
        token
            .and_then(|t| self.tokenizer.token(t))
            .map(|t| t.trim_start_matches("<|").trim_end_matches("|>").to_owned())
            .unwrap_or_else(|| "en".to_owned())
    }

    fn prompt(&self, previous: &[u32], language: &Option<u32>) -> Result<Vec<u32>, DecodeError> {
        let t = &self.tokenizer;
        let mut prompt = Vec::new();
        if !previous.is_empty() || !self.hotwords.is_empty() {
            prompt.push(t.sot_prev);
            prompt.extend(&self.hotwords);
            let keep = self.model.dims.n_text_ctx / 2 - 1;
            prompt.extend(&previous[previous.len().saturating_sub(keep)..]);
        }
        prompt.push(t.sot);
        if let Some(language) = language {
            prompt.extend([*language, t.transcribe]);
        }
        if !self.options.timestamps {
            prompt.push(t.no_timestamps);
        }
        Ok(prompt)
    }

    fn needs_fallback(&self, scored: &Scored) -> bool {
        let o = &self.options;
        let attempt = &scored.attempt;
        let avg = avg_logprob(&attempt.hypothesis);
        let loops = o
            .compression_ratio_threshold
            .is_some_and(|t| scored.compression_ratio > t);
        let unlikely = o.log_prob_threshold.is_some_and(|t| avg < t);
        let silent = unlikely
            && o.no_speech_threshold
                .is_some_and(|t| attempt.no_speech_prob > t);
        (loops || unlikely) && !silent
    }

    /// One attempt at `windows` (indices into `features` and `prompts`) at `temperature`,
    /// batched by prompt length.
    fn attempt(
        &self,
        features: &Tensor,
        prompts: &[Vec<u32>],
        windows: &[usize],
        temperature: f64,
        samplers: &mut [Option<StdRng>],
    ) -> Result<Vec<Attempt>, DecodeError> {
        let mut results: Vec<Option<Attempt>> = (0..windows.len()).map(|_| None).collect();
        let mut lengths: Vec<usize> = windows.iter().map(|&w| prompts[w].len()).collect();
        lengths.sort_unstable();
        lengths.dedup();
        for length in lengths {
            let group: Vec<usize> = (0..windows.len())
                .filter(|&i| prompts[windows[i]].len() == length)
                .collect();
            let index: Vec<u32> = group.iter().map(|&i| windows[i] as u32).collect();
            let index = Tensor::from_vec(index, group.len(), features.device())?;
            let group_features = features.index_select(&index, 0)?;
            let group_prompts: Vec<&[u32]> = group
                .iter()
                .map(|&i| prompts[windows[i]].as_slice())
                .collect();
            let mut group_samplers: Vec<Option<StdRng>> =
                group.iter().map(|&i| samplers[windows[i]].take()).collect();
            let attempts = self.search(
                &group_features,
                &group_prompts,
                temperature,
                &mut group_samplers,
            )?;
            for (&i, sampler) in group.iter().zip(group_samplers) {
                samplers[windows[i]] = sampler;
            }
            for (i, attempt) in group.into_iter().zip(attempts) {
                results[i] = Some(attempt);
            }
        }
        Ok(results
            .into_iter()
            .map(|r| r.expect("every window is in a group"))
            .collect())
    }

    /// Beam search (temperature 0) or sampling for windows with prompts of one length; sampling
    /// draws from each window's own generator in `samplers`.
    fn search(
        &self,
        features: &Tensor,
        prompts: &[&[u32]],
        temperature: f64,
        samplers: &mut [Option<StdRng>],
    ) -> Result<Vec<Attempt>, DecodeError> {
        let sampling = temperature > 0.0;
        let width = if sampling {
            self.options.best_of
        } else {
            self.options.beam_size
        };
        let windows = prompts.len();
        let prompt_len = prompts[0].len();
        let sot_index = prompts[0]
            .iter()
            .position(|&t| t == self.tokenizer.sot)
            .expect("every prompt has <|startoftranscript|>");
        let room = self.model.dims.n_text_ctx.saturating_sub(prompt_len);
        let max_new = self.options.max_new_tokens.clamp(1, room.max(1));
        let max_finished = ((width as f64 * self.options.patience).round() as usize).max(1);
        let eot = self.tokenizer.eot;

        let mut state: DecoderState = self.model.start(features, width)?;
        let mut live: Vec<usize> = (0..windows).collect();
        let mut beams: Vec<Vec<Hypothesis>> = (0..windows)
            .map(|_| {
                vec![
                    Hypothesis {
                        tokens: Vec::new(),
                        sum_logprob: 0.0,
                        finished: false,
                    };
                    width
                ]
            })
            .collect();
        let mut finished: Vec<Vec<Hypothesis>> = vec![Vec::new(); windows];
        let mut no_speech = vec![0f64; windows];
        let mut feed: Vec<u32> = prompts
            .iter()
            .flat_map(|p| std::iter::repeat_n(*p, width).flatten().copied())
            .collect();
        let mut n = prompt_len;
        let vocab = self.model.dims.n_vocab;

        for step in 0..max_new {
            let logits = if step == 0 {
                let (last, at_sot) = self
                    .model
                    .step_with_logits_at(&mut state, &feed, n, sot_index)?;
                let at_sot: Vec<f32> = at_sot.flatten_all()?.to_vec1()?;
                for (slot, &w) in live.iter().enumerate() {
                    let row = &at_sot[slot * width * vocab..(slot * width + 1) * vocab];
                    no_speech[w] = no_speech_probability(row, self.tokenizer.no_speech);
                }
                last
            } else {
                self.model.step(&mut state, &feed, n)?
            };
            let mut logits: Vec<f32> = logits.flatten_all()?.to_vec1()?;
            let last_step = step + 1 == max_new;

            let mut next_live = Vec::new();
            let mut next_slots = Vec::new();
            let mut next_rows = Vec::new();
            let mut next_feed = Vec::new();
            for (slot, &w) in live.iter().enumerate() {
                let rows = &mut logits[slot * width * vocab..(slot + 1) * width * vocab];
                let sources = if sampling {
                    let sampler = samplers[w]
                        .as_mut()
                        .expect("a sampled window has its generator");
                    self.sample_step(rows, &mut beams[w], temperature, vocab, sampler)
                } else {
                    self.beam_step(
                        rows,
                        &mut beams[w],
                        &mut finished[w],
                        step == 0,
                        vocab,
                        max_finished,
                    )
                };
                let done = if sampling {
                    beams[w].iter().all(|h| h.finished)
                } else {
                    finished[w].len() >= max_finished
                };
                if done || last_step {
                    continue;
                }
                next_live.push(w);
                next_slots.push(slot);
                next_rows.extend(sources.iter().map(|&j| slot * width + j));
                next_feed.extend(beams[w].iter().map(|h| {
                    if h.finished {
                        eot
                    } else {
                        *h.tokens.last().unwrap_or(&eot)
                    }
                }));
            }
            if next_live.is_empty() {
                break;
            }
            state.select(&next_slots, &next_rows)?;
            live = next_live;
            feed = next_feed;
            n = 1;
        }

        Ok((0..windows)
            .map(|w| {
                // Sampled rows all count; beam search falls back to its live beams only when
                // nothing finished within the token budget.
                let mut candidates = std::mem::take(&mut finished[w]);
                if sampling || candidates.is_empty() {
                    candidates.append(&mut beams[w]);
                }
                let hypothesis = candidates
                    .into_iter()
                    .max_by(|a, b| a.score().total_cmp(&b.score()))
                    .expect("a window has hypotheses");
                Attempt {
                    hypothesis,
                    no_speech_prob: no_speech[w],
                }
            })
            .collect())
    }

    /// One beam-search step for a window's rows (`width` × vocab logits): the new beams replace
    /// `beams`, hypotheses ending with `<|endoftext|>` join `finished`; returns for each new
    /// beam the row it continues.
    #[allow(clippy::too_many_arguments)]
    fn beam_step(
        &self,
        rows: &mut [f32],
        beams: &mut Vec<Hypothesis>,
        finished: &mut Vec<Hypothesis>,
        first: bool,
        vocab: usize,
        max_finished: usize,
    ) -> Vec<usize> {
        let width = beams.len();
        // (score, source row, token, token logprob)
        let mut candidates: Vec<(f64, usize, u32, f32)> = Vec::new();
        // At the first step every row holds the same prompt: expand one.
        let expanded = if first { 1 } else { width };
        for (j, row) in rows.chunks_exact_mut(vocab).enumerate().take(expanded) {
            self.apply_rules(row, &beams[j].tokens);
            log_softmax_in_place(row);
            for (token, logprob) in top_k(row, width + 1) {
                candidates.push((beams[j].sum_logprob + f64::from(logprob), j, token, logprob));
            }
        }
        candidates.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut next = Vec::with_capacity(width);
        let mut sources = Vec::with_capacity(width);
        for (score, j, token, _) in candidates {
            if token == self.tokenizer.eot {
                if finished.len() < max_finished {
                    finished.push(Hypothesis {
                        tokens: beams[j].tokens.clone(),
                        sum_logprob: score,
                        finished: true,
                    });
                }
            } else if next.len() < width {
                let mut tokens = beams[j].tokens.clone();
                tokens.push(token);
                next.push(Hypothesis {
                    tokens,
                    sum_logprob: score,
                    finished: false,
                });
                sources.push(j);
            }
            // Candidates ranked below the last new beam are not considered (OpenAI's and
            // CTranslate2's rule): an ending less likely than every kept beam is dropped.
            if next.len() == width {
                break;
            }
        }
        // Fewer candidates than beams (all but a few tokens suppressed): repeat the best.
        while next.len() < width {
            next.push(next.first().cloned().unwrap_or_else(|| beams[0].clone()));
            sources.push(sources.first().copied().unwrap_or(0));
        }
        *beams = next;
        sources
    }

    /// One sampling step: each unfinished row draws its next token from
    /// softmax(logits / temperature). Rows keep their place.
    fn sample_step(
        &self,
        rows: &mut [f32],
        beams: &mut [Hypothesis],
        temperature: f64,
        vocab: usize,
        sampler: &mut StdRng,
    ) -> Vec<usize> {
        let eot = self.tokenizer.eot;
        for (j, row) in rows.chunks_exact_mut(vocab).enumerate() {
            let hypothesis = &mut beams[j];
            if hypothesis.finished {
                continue;
            }
            self.apply_rules(row, &hypothesis.tokens);
            let inverse = (1.0 / temperature) as f32;
            for value in row.iter_mut() {
                *value *= inverse;
            }
            log_softmax_in_place(row);
            let token = sample(row, sampler.random::<f64>());
            hypothesis.sum_logprob += f64::from(row[token as usize]);
            if token == eot {
                hypothesis.finished = true;
            } else {
                hypothesis.tokens.push(token);
            }
        }
        (0..beams.len()).collect()
    }

    /// Suppressed tokens and timestamp rules on one row of logits, given the tokens generated so
    /// far after the prompt.
    fn apply_rules(&self, logits: &mut [f32], generated: &[u32]) {
        for &token in &self.suppress {
            logits[token as usize] = f32::NEG_INFINITY;
        }
        if generated.is_empty() {
            for &token in &self.suppress_begin {
                logits[token as usize] = f32::NEG_INFINITY;
            }
        }
        if self.options.timestamps {
            apply_timestamp_rules(
                logits,
                generated,
                self.tokenizer.eot,
                self.tokenizer.no_timestamps,
                self.tokenizer.timestamp_begin(),
            );
        }
    }
}

/// OpenAI's `ApplyTimestampRules` on one row of logits.
pub fn apply_timestamp_rules(
    logits: &mut [f32],
    generated: &[u32],
    eot: u32,
    no_timestamps: u32,
    timestamp_begin: u32,
) {
    let begin = timestamp_begin as usize;
    logits[no_timestamps as usize] = f32::NEG_INFINITY;
    let is_timestamp = |t: &u32| *t >= timestamp_begin;
    let last_was_timestamp = generated.last().is_some_and(is_timestamp);
    let penultimate_was_timestamp =
        generated.len() < 2 || is_timestamp(&generated[generated.len() - 2]);
    if last_was_timestamp {
        if penultimate_was_timestamp {
            // A pair closed: text (or the end) must follow.
            logits[begin..].fill(f32::NEG_INFINITY);
        } else {
            // A timestamp after text must be followed by another or the end, not by text.
            logits[..eot as usize].fill(f32::NEG_INFINITY);
        }
    }
    if let Some(&last) = generated.iter().rev().find(|t| is_timestamp(t)) {
        // Timestamps never decrease; after text they must move forward.
        let lowest = if last_was_timestamp && !penultimate_was_timestamp {
            last
        } else {
            last + 1
        };
        let lowest = (lowest as usize).min(logits.len());
        logits[begin..lowest].fill(f32::NEG_INFINITY);
    }
    if generated.is_empty() {
        logits[..begin].fill(f32::NEG_INFINITY);
        let last_allowed = begin + MAX_INITIAL_TIMESTAMP_INDEX as usize;
        if last_allowed + 1 < logits.len() {
            logits[last_allowed + 1..].fill(f32::NEG_INFINITY);
        }
    }
    // If the timestamps together are likelier than any single text token, take a timestamp.
    let timestamp_mass = log_sum_exp(&logits[begin..]);
    let best_text = logits[..begin]
        .iter()
        .copied()
        .fold(f32::NEG_INFINITY, f32::max);
    if timestamp_mass > best_text {
        logits[..begin].fill(f32::NEG_INFINITY);
    }
}

/// The seed of a window's sampler: FNV-1a over `seed`, the window's log-mel features and its
/// prompt, so equal windows sample equally wherever and with whatever they are decoded.
fn window_seed(seed: u64, window: &Window) -> u64 {
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let bytes = seed
        .to_le_bytes()
        .into_iter()
        .chain(window.mel.iter().flat_map(|v| v.to_bits().to_le_bytes()))
        .chain(window.previous.iter().flat_map(|t| t.to_le_bytes()));
    bytes.fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(PRIME)
    })
}

fn log_sum_exp(values: &[f32]) -> f32 {
    let max = values.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        return max;
    }
    max + values.iter().map(|v| (v - max).exp()).sum::<f32>().ln()
}

/// The `k` largest entries of `row` as (token, value), largest first.
fn top_k(row: &[f32], k: usize) -> Vec<(u32, f32)> {
    let mut top: Vec<(u32, f32)> = Vec::with_capacity(k + 1);
    for (token, &value) in row.iter().enumerate() {
        if value == f32::NEG_INFINITY || (top.len() == k && value <= top[k - 1].1) {
            continue;
        }
        let at = top.partition_point(|&(_, v)| v >= value);
        top.insert(at, (token as u32, value));
        top.truncate(k);
    }
    top
}

/// The token whose cumulative probability first passes `uniform` (in [0, 1)), from a row of
/// log-probabilities.
fn sample(logprobs: &[f32], uniform: f64) -> u32 {
    let mut cumulative = 0.0;
    let mut last = 0;
    for (token, &logprob) in logprobs.iter().enumerate() {
        if logprob == f32::NEG_INFINITY {
            continue;
        }
        last = token;
        cumulative += f64::from(logprob).exp();
        if cumulative > uniform {
            return token as u32;
        }
    }
    last as u32
}

fn no_speech_probability(logits: &[f32], no_speech: u32) -> f64 {
    let mut row = logits.to_vec();
    log_softmax_in_place(&mut row);
    f64::from(row[no_speech as usize]).exp()
}

/// faster-whisper's avg logprob: the summed log-probabilities (`<|endoftext|>` included) over
/// the tokens + 1.
fn avg_logprob(hypothesis: &Hypothesis) -> f64 {
    hypothesis.sum_logprob / (hypothesis.tokens.len() + 1) as f64
}

/// Text bytes over zlib-compressed text bytes (level 6, as Python's `zlib.compress`): high when
/// the text repeats itself.
pub fn compression_ratio(text: &str) -> f64 {
    if text.is_empty() {
        return 0.0;
    }
    let compressed = miniz_oxide::deflate::compress_to_vec_zlib(text.as_bytes(), 6);
    text.len() as f64 / compressed.len() as f64
}

/// faster-whisper's segment split of one window's tokens (see [`Decoder::segments`]).
pub fn split_segments(
    tokens: &[u32],
    timestamp_begin: u32,
    content_seconds: f64,
) -> (Vec<TokenSegment>, f64) {
    let is_timestamp = |t: u32| t >= timestamp_begin;
    let time = |t: u32| f64::from(t - timestamp_begin) * SECONDS_PER_TIMESTAMP;
    let single_timestamp_ending = tokens.len() >= 2
        && !is_timestamp(tokens[tokens.len() - 2])
        && is_timestamp(tokens[tokens.len() - 1]);
    let mut consecutive: Vec<usize> = (1..tokens.len())
        .filter(|&i| is_timestamp(tokens[i]) && is_timestamp(tokens[i - 1]))
        .collect();
    if !consecutive.is_empty() {
        if single_timestamp_ending {
            consecutive.push(tokens.len());
        }
        let mut segments = Vec::new();
        let mut last = 0;
        for &current in &consecutive {
            let slice = &tokens[last..current];
            if let (Some(&first), Some(&end)) = (slice.first(), slice.last()) {
                if is_timestamp(first) && is_timestamp(end) {
                    segments.push(TokenSegment {
                        start: time(first),
                        end: time(end),
                        tokens: slice.to_vec(),
                    });
                }
            }
            last = current;
        }
        let consumed = if single_timestamp_ending {
            content_seconds
        } else {
            time(tokens[last - 1])
        };
        return (segments, consumed);
    }
    let mut end = content_seconds;
    if let Some(&last) = tokens.iter().rev().find(|&&t| is_timestamp(t)) {
        if last != timestamp_begin {
            end = time(last);
        }
    }
    let start = tokens
        .first()
        .filter(|&&t| is_timestamp(t))
        .map_or(0.0, |&t| time(t));
    let segments = if tokens.iter().any(|&t| !is_timestamp(t)) {
        vec![TokenSegment {
            start,
            end,
            tokens: tokens.to_vec(),
        }]
    } else {
        Vec::new()
    };
    (segments, content_seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EOT: u32 = 10;
    const NO_TIMESTAMPS: u32 = 12;
    const BEGIN: u32 = 13;
    const VOCAB: usize = 13 + 100;

    fn allowed(generated: &[u32], logits: &[f32]) -> Vec<usize> {
        let mut row = logits.to_vec();
        apply_timestamp_rules(&mut row, generated, EOT, NO_TIMESTAMPS, BEGIN);
        (0..VOCAB).filter(|&i| row[i] > f32::NEG_INFINITY).collect()
    }

    #[test]
    fn the_first_token_is_an_early_timestamp() {
        let logits = vec![0.0; VOCAB];
        let ok = allowed(&[], &logits);
        assert_eq!(ok.first(), Some(&(BEGIN as usize)));
        assert_eq!(
            ok.last(),
            Some(&((BEGIN + MAX_INITIAL_TIMESTAMP_INDEX) as usize))
        );
    }

    #[test]
    fn timestamps_pair_up_and_never_go_back() {
        // Text and the end favoured, so the probability-mass rule does not force timestamps.
        let mut logits = vec![0.0; VOCAB];
        logits[..=EOT as usize].fill(10.0);
        // After the opening <|0.20|>: text, not another timestamp.
        let ok = allowed(&[BEGIN + 10], &logits);
        assert!(ok.contains(&3));
        assert!(ok.iter().all(|&t| t < BEGIN as usize));
        // After text: the closing timestamp lies later than the opening one.
        let ok = allowed(&[BEGIN + 10, 3], &logits);
        assert!(!ok.contains(&(BEGIN as usize + 10)));
        assert!(ok.contains(&(BEGIN as usize + 11)));
        // After text then a timestamp: another timestamp or the end, never text.
        let ok = allowed(&[BEGIN, 3, BEGIN + 20], &logits);
        assert!(!ok.contains(&3));
        assert!(ok.contains(&(EOT as usize)));
        assert!(ok.contains(&(BEGIN as usize + 20)));
        // After a closed pair: text or the end only, and later timestamps only afterwards.
        let ok = allowed(&[BEGIN, 3, BEGIN + 20, BEGIN + 20], &logits);
        assert!(ok.iter().all(|&t| t < BEGIN as usize));
        let ok = allowed(&[BEGIN, 3, BEGIN + 20, BEGIN + 20, 4], &logits);
        assert!(!ok.contains(&(BEGIN as usize + 20)));
        assert!(ok.contains(&(BEGIN as usize + 21)));
        // <|notimestamps|> is never chosen.
        assert!(!ok.contains(&(NO_TIMESTAMPS as usize)));
    }

    #[test]
    fn likely_timestamps_win_over_any_single_text_token() {
        let mut logits = vec![0.0; VOCAB];
        logits[..EOT as usize].fill(1.0);
        // 100 timestamps at 0 outweigh a text token at 1 (log 100 ≈ 4.6 > 1).
        let ok = allowed(&[BEGIN, 3], &logits);
        assert!(ok.iter().all(|&t| t >= BEGIN as usize));
    }

    #[test]
    fn segments_split_at_consecutive_timestamps() {
        let t = |s: f64| BEGIN + (s / SECONDS_PER_TIMESTAMP).round() as u32;
        let tokens = [
            t(0.0),
            1,
            2,
            t(1.5),
            t(1.5),
            3,
            t(2.5),
            t(2.6),
            4,
            5,
            t(4.0),
        ];
        let (segments, consumed) = split_segments(&tokens, BEGIN, 10.0);
        assert_eq!(segments.len(), 3);
        assert_eq!((segments[0].start, segments[0].end), (0.0, 1.5));
        assert_eq!(segments[1].tokens, [t(1.5), 3, t(2.5)]);
        assert_eq!((segments[2].start, segments[2].end), (2.6, 4.0));
        // The text ran to the end of the window: all of it is consumed.
        assert_eq!(consumed, 10.0);

        // Ending on a pair: consumed up to the last timestamp, where the next window starts.
        let (segments, consumed) = split_segments(&tokens[..5], BEGIN, 10.0);
        assert_eq!(segments.len(), 1);
        assert!((consumed - 1.5).abs() < 1e-9);

        // No pair: one segment up to the last timestamp.
        let (segments, consumed) = split_segments(&[t(0.5), 1, 2, t(3.0)], BEGIN, 10.0);
        assert_eq!(segments.len(), 1);
        assert_eq!((segments[0].start, segments[0].end), (0.5, 3.0));
        assert_eq!(consumed, 10.0);
        // Nothing but timestamps: no segment.
        assert!(split_segments(&[t(0.0)], BEGIN, 10.0).0.is_empty());
    }

    #[test]
    fn top_k_and_sampling() {
        let row = [0.1, 5.0, f32::NEG_INFINITY, 3.0, 4.0];
        assert_eq!(top_k(&row, 3), vec![(1, 5.0), (4, 4.0), (3, 3.0)]);
        let logprobs = [0.5f32.ln(), f32::NEG_INFINITY, 0.25f32.ln(), 0.25f32.ln()];
        assert_eq!(sample(&logprobs, 0.1), 0);
        assert_eq!(sample(&logprobs, 0.6), 2);
        assert_eq!(sample(&logprobs, 0.9), 3);
    }

    #[test]
    fn repetitive_text_compresses_well() {
        let normal = compression_ratio("Thank you for calling, how can I help you today?");
        let looped = compression_ratio(&"I'm sorry. ".repeat(30));
        assert!(normal < 1.5, "{normal}");
        assert!(looped > 2.4, "{looped}");
    }
}
