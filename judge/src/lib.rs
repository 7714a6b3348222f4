//! The judge's rule engine: a transcript and a rulebook in, QA findings out.
//!
//! - [`rulebook`]: the TOML rulebook (per organization or campaign, versioned), parsed and
//!   checked with every problem reported at its line and column; [`DEFAULT_RULEBOOK`] ships
//!   compiled in.
//! - [`normalize`]: transcript text → the words rules see (lower case, no punctuation,
//!   contractions expanded, number words as digits), each knowing where it was said.
//! - [`matcher`]: fuzzy phrase search over those words, so ASR errors ("this col maybe
//!   recorded") do not hide what was said; [`phonetic`]: which words sound alike ("sine up").
//! - [`transcript`]: the segments as parties' utterances, and the card and social security
//!   numbers spoken in them.
//! - `rules`: each rule kind's check ([`Rulebook::evaluate`]), producing [`Finding`]s with
//!   their evidence.
//! - `redact`: card and social security numbers out of stored transcript text ([`redact`]),
//!   each kept as a [`pii::PiiFinding`] pointing at its label.
//! - [`pii`]: those findings stored apart from the text (`core.pii_findings`), read back when a
//!   call is judged again.
//!
//! - [`lane`] and [`flags`]: the judge lane around the engine: transcribed calls claimed,
//!   judged, redacted and flagged in one fenced transaction; machine flags replaced on
//!   re-judging, reviewed ones kept.
//! - [`rulebook_store`]: rulebooks stored per organization, versioned, and which one judges a
//!   call (campaign, organization, compiled-in).
//! - [`lead`]: a judged call as a lead: interest score and its signals, objections, summary.
//! - [`followup`]: a spoken callback request ("call me back Friday at ten") as a local time.
//! - [`crm`]: a judged call's lead, communication, follow-ups and conversions in the `crm`
//!   tables.
//! - [`report`]: the managers' daily summary.
//! - [`eval`]: the engine measured on telephone calls with known answers.
//! - [`brain`]: the optional LLM (an OpenAI-compatible endpoint) asked for a call's summary,
//!   objections and next best action, its answer checked against one JSON Schema.
//!
//! The engine is pure: no database, no network, no environment, no printing; only `lane`,
//! `flags`, `pii`, `rulebook_store`, `crm` and `report` touch Postgres, and only `brain` the
//! network.

pub mod brain;
pub mod crm;
pub mod eval;
pub mod flags;
pub mod followup;
pub mod lane;
pub mod lead;
pub mod matcher;
pub mod normalize;
pub mod phonetic;
pub mod pii;
mod redact;
pub mod report;
pub mod rulebook;
pub mod rulebook_store;
mod rules;
pub mod transcript;

pub use callscript_core::model::{Category, Severity, SpeakerRole};
pub use redact::{redact, Redaction};
pub use rulebook::{Issue, Party, Rule, RuleKind, Rulebook, RulebookError, DEFAULT_RULEBOOK};

/// One rule's hit on one call: what a `core.qa_flags` row holds besides the call and reviews.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub rule_id: String,
    pub category: Category,
    pub severity: Severity,
    /// The words as said (card and social security numbers cut to their last four digits),
    /// or for what is missing or measured, what it was ("no \"…\" by the agent in the first
    /// 30 s", "no speech for 42 s").
    pub evidence: String,
    /// Times of the segments holding the evidence (segments carry no word times), or of the
    /// stretch of the call a missing phrase or a measure is about.
    pub start_ms: Option<i32>,
    pub end_ms: Option<i32>,
    /// The speaker who said it; `None` for findings about the call as a whole.
    pub speaker: Option<String>,
    pub role: Option<SpeakerRole>,
}

#[cfg(test)]
mod tests;
