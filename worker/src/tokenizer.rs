//! Whisper's tokenizer: `tokenizer.json` of a model folder (read with the `tokenizers` crate) for
//! turning token ids into text, and the special tokens the decoder's prompt and rules need,
//! looked up by their strings (their ids differ between English-only and multilingual models).

use std::path::{Path, PathBuf};

use tokenizers::Tokenizer;

/// `<|startoftranscript|>`: the first token of every prompt.
pub const SOT: &str = "<|startoftranscript|>";
/// `<|endoftext|>`: the end of a transcript; ids below it are text.
pub const EOT: &str = "<|endoftext|>";
/// `<|transcribe|>`: the task token of multilingual models.
pub const TRANSCRIBE: &str = "<|transcribe|>";
/// `<|translate|>`: the other task token (never generated here).
pub const TRANSLATE: &str = "<|translate|>";
/// `<|startofprev|>`: starts a prompt of previous text (never generated).
pub const SOT_PREV: &str = "<|startofprev|>";
/// `<|startoflm|>`: never generated.
pub const SOT_LM: &str = "<|startoflm|>";
/// `<|notimestamps|>`: decode text without timestamp tokens.
pub const NO_TIMESTAMPS: &str = "<|notimestamps|>";
/// The no-speech token: `<|nospeech|>` in newer vocabularies, `<|nocaptions|>` in older ones
/// (tiny.en and base use the latter), looked up in this order as CTranslate2 does.
pub const NO_SPEECH: [&str; 2] = ["<|nospeech|>", "<|nocaptions|>"];

/// Errors reading a tokenizer or preparing a prompt.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error("{path}: {detail}")]
    Read { path: PathBuf, detail: String },
    #[error("the tokenizer has no {token} token")]
    MissingToken { token: String },
    #[error("the model has no language token for {language:?}")]
    UnknownLanguage { language: String },
    #[error("decoding token ids to text: {0}")]
    Decode(String),
    #[error("encoding text to token ids: {0}")]
    Encode(String),
}

/// A Whisper `tokenizer.json` with the ids of its special tokens.
#[derive(Clone)]
pub struct WhisperTokenizer {
    tokenizer: Tokenizer,
    /// `<|startoftranscript|>`.
    pub sot: u32,
    /// `<|endoftext|>`.
    pub eot: u32,
    /// `<|transcribe|>`.
    pub transcribe: u32,
    /// `<|translate|>`.
    pub translate: u32,
    /// `<|startofprev|>`.
    pub sot_prev: u32,
    /// `<|startoflm|>`.
    pub sot_lm: u32,
    /// `<|notimestamps|>`.
    pub no_timestamps: u32,
    /// `<|nospeech|>` or `<|nocaptions|>`.
    pub no_speech: u32,
}

impl std::fmt::Debug for WhisperTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WhisperTokenizer")
            .field("sot", &self.sot)
            .field("eot", &self.eot)
            .field("no_timestamps", &self.no_timestamps)
            .field("no_speech", &self.no_speech)
            .finish_non_exhaustive()
    }
}

impl WhisperTokenizer {
    /// Read `dir/tokenizer.json`.
    pub fn open(dir: &Path) -> Result<WhisperTokenizer, TokenizerError> {
        let path = dir.join("tokenizer.json");
        let bytes = std::fs::read(&path).map_err(|e| TokenizerError::Read {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        let tokenizer = Tokenizer::from_bytes(&bytes).map_err(|e| TokenizerError::Read {
            path,
            detail: e.to_string(),
        })?;
        WhisperTokenizer::new(tokenizer)
    }

    /// Wrap a loaded tokenizer; fails when one of Whisper's special tokens is missing.
    pub fn new(tokenizer: Tokenizer) -> Result<WhisperTokenizer, TokenizerError> {
        let id = |token: &str| {
            tokenizer
                .token_to_id(token)
                .ok_or_else(|| TokenizerError::MissingToken {
                    token: token.to_owned(),
                })
        };
        let no_speech = NO_SPEECH
            .iter()
            .find_map(|token| tokenizer.token_to_id(token))
            .ok_or_else(|| TokenizerError::MissingToken {
                token: NO_SPEECH.join(" or "),
            })?;
        Ok(WhisperTokenizer {
            sot: id(SOT)?,
            eot: id(EOT)?,
            transcribe: id(TRANSCRIBE)?,
            translate: id(TRANSLATE)?,
            sot_prev: id(SOT_PREV)?,
            sot_lm: id(SOT_LM)?,
            no_timestamps: id(NO_TIMESTAMPS)?,
            no_speech,
            tokenizer,
        })
    }

    /// The id of a token given by its string, such as `"<|en|>"`.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.tokenizer.token_to_id(token)
    }

    /// The start-of-transcript sequence: `<|startoftranscript|>` alone for English-only
    /// models, followed by `<|language|>` and `<|transcribe|>` for multilingual ones
    /// (faster-whisper's `Tokenizer.sot_sequence`). `language` is a code such as `"en"`.
    pub fn sot_sequence(
        &self,
        multilingual: bool,
        language: &str,
    ) -> Result<Vec<u32>, TokenizerError> {
        if !multilingual {
            return Ok(vec![self.sot]);
        }
        let language_token = self.token_id(&format!("<|{language}|>")).ok_or_else(|| {
            TokenizerError::UnknownLanguage {
                language: language.to_owned(),
            }
        })?;
        Ok(vec![self.sot, language_token, self.transcribe])
    }

    /// The first timestamp token, `<|0.00|>` (the one after `<|notimestamps|>`); each next id
    /// is 20 ms later.
    pub fn timestamp_begin(&self) -> u32 {
        self.no_timestamps + 1
    }

    /// The token ids of `text`, without special tokens.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, TokenizerError> {
        let encoding = self
            .tokenizer
            .encode(text, false)
            .map_err(|e| TokenizerError::Encode(e.to_string()))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// The string of token `id`, such as `"<|en|>"`.
    pub fn token(&self, id: u32) -> Option<String> {
        self.tokenizer.id_to_token(id)
    }

    /// The text of `tokens`: ids from `<|endoftext|>` up (special and timestamp tokens) are
    /// left out, as faster-whisper's `Tokenizer.decode` does.
    pub fn decode(&self, tokens: &[u32]) -> Result<String, TokenizerError> {
        let text: Vec<u32> = tokens.iter().copied().filter(|&t| t < self.eot).collect();
        self.tokenizer
            .decode(&text, false)
            .map_err(|e| TokenizerError::Decode(e.to_string()))
    }
}
