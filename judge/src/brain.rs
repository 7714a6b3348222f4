//! The judge's optional LLM brain: an OpenAI-compatible chat endpoint (llama.cpp's
//! `llama-server`, vLLM, OpenAI) asked for a call's summary, the customer's objections and the
//! next best action.
//!
//! The rule engine stays the judge: flags, scores and follow-ups are its own, and the brain only
//! adds words. Its answer must be one JSON object fitting [`schema`], which is shown to the
//! model in the system prompt and is the same value the answer is checked against, so what is
//! asked for and what is accepted cannot drift apart. For servers that constrain decoding it is
//! also sent as `response_format` `json_schema` ([`decoding_schema`]: without the string
//! length limits, which OpenAI's strict mode refuses). A late answer, an HTTP error, text that is not JSON or JSON outside the
//! schema is a [`BrainOutcome::Fallback`]: the call keeps the rule engine's summary and is
//! judged as without a brain. Tokens the server reports are accounted for either way: they were
//! spent.
//!
//! The transcript sent is the stored one, card numbers already redacted, cut to
//! [`BrainConfig::max_transcript_chars`]. The API key is a [`Secret`]: it is sent in the
//! `Authorization` header and appears in no error.

use std::sync::LazyLock;
use std::time::Duration;

use callscript_core::credentials::Secret;
use callscript_core::model::{Lane, SpeakerRole};
use callscript_core::transcripts::SegmentRecord;
use callscript_core::usage::UsageRecord;
use callscript_ingest::http::{body_excerpt, client, describe_error};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::crm::clock;
use crate::lead::LeadAssessment;
use crate::Finding;

/// What the brain is told to do. The JSON shape is spelled out besides being sent as the
/// response format: a server that ignores `response_format` can still be asked well.
const SYSTEM_PROMPT: &str = "You review recorded sales calls for a call center. You get the \
transcript of one call (lines of `[m:ss] ROLE: text`; card numbers are masked) and what a rule \
engine found in it. Answer with one JSON object and nothing else:
- summary: what the customer wanted and how the call ended, in one to three plain sentences.
- objections: each concern the customer raised against buying, in a few words (an empty list \
when there were none).
- next_best_action: what sales should do next: `action`, the one choice that fits best, and \
`detail`, what exactly to do (empty when the action says it all). Use do_not_contact when the \
customer asked not to be called again, close when they agreed to buy, none when nothing is \
left to do.
Say only what the transcript supports. The JSON Schema the answer must fit:";

/// The name the schema is sent under (`response_format.json_schema.name`).
const SCHEMA_NAME: &str = "call_review";

/// How sales should follow a call up, as the brain sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NextAction {
    CallBack,
    SendQuote,
    ScheduleAppointment,
    Nurture,
    Close,
    Escalate,
    DoNotContact,
    None,
}

impl NextAction {
    pub const ALL: &'static [NextAction] = &[
        NextAction::CallBack,
        NextAction::SendQuote,
        NextAction::ScheduleAppointment,
        NextAction::Nurture,
        NextAction::Close,
        NextAction::Escalate,
        NextAction::DoNotContact,
        NextAction::None,
    ];

    /// As serialized (a test checks they agree).
    pub fn as_str(self) -> &'static str {
        match self {
            NextAction::CallBack => "call_back",
            NextAction::SendQuote => "send_quote",
            NextAction::ScheduleAppointment => "schedule_appointment",
            NextAction::Nurture => "nurture",
            NextAction::Close => "close",
            NextAction::Escalate => "escalate",
            NextAction::DoNotContact => "do_not_contact",
            NextAction::None => "none",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NextBestAction {
    pub action: NextAction,
    pub detail: String,
}

/// The brain's answer about one call, once it fitted [`schema`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallReview {
    pub summary: String,
    pub objections: Vec<String>,
    pub next_best_action: NextBestAction,
}

impl CallReview {
    /// As stored in `crm.lead_communications.brain`: the review and the model that wrote it.
    pub fn stored(&self, model: &str) -> Value {
        let mut stored = serde_json::to_value(self).expect("a review serializes");
        stored["model"] = json!(model);
        stored
    }
}

/// The JSON Schema an answer must fit: sent with every request and checked on every answer.
/// Lengths count characters (Unicode scalar values), as JSON Schema does.
pub fn schema() -> &'static Value {
    static SCHEMA: LazyLock<Value> = LazyLock::new(|| {
        let actions: Vec<&str> = NextAction::ALL.iter().map(|a| a.as_str()).collect();
        json!({
            "type": "object",
            "properties": {
                "summary": {"type": "string", "minLength": 1, "maxLength": 1200},
                "objections": {
                    "type": "array",
                    "maxItems": 10,
                    "items": {"type": "string", "minLength": 1, "maxLength": 200},
                },
                "next_best_action": {
                    "type": "object",
                    "properties": {
                        "action": {"type": "string", "enum": actions},
                        "detail": {"type": "string", "maxLength": 300},
                    },
                    "required": ["action", "detail"],
                    "additionalProperties": false,
                },
            },
            "required": ["summary", "objections", "next_best_action"],
            "additionalProperties": false,
        })
    });
    &SCHEMA
}

/// [`schema`] as sent in `response_format` for constrained decoding: without `minLength` and
/// `maxLength`, which OpenAI's strict mode does not support (a schema using them is refused,
/// and every call would fall back). The limits still reach the model in the system prompt and
/// every answer is checked against them.
pub fn decoding_schema() -> &'static Value {
    static SCHEMA: LazyLock<Value> = LazyLock::new(|| without_string_lengths(schema().clone()));
    &SCHEMA
}

fn without_string_lengths(mut schema: Value) -> Value {
    if let Value::Object(object) = &mut schema {
        object.remove("minLength");
        object.remove("maxLength");
        for child in object.values_mut() {
            *child = without_string_lengths(child.take());
        }
    }
    schema
}

/// Where an answer left the schema: the field (`next_best_action.action`, `objections[2]`) and
/// how.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {problem}")]
pub struct SchemaViolation {
    pub path: String,
    pub problem: String,
}

/// Checks `value` against `schema`, which may use only the keywords [`schema`] uses; the first
/// violation found is returned.
fn check(schema: &Value, value: &Value, path: &str) -> Result<(), SchemaViolation> {
    let field = |name: &str| {
        if path.is_empty() {
            name.to_owned()
        } else {
            format!("{path}.{name}")
        }
    };
    let violation_at = |path: String, problem: String| SchemaViolation { path, problem };
    let violation = |problem: String| {
        let here = if path.is_empty() { "the answer" } else { path };
        violation_at(here.to_owned(), problem)
    };
    let limit = |keyword: &str| schema[keyword].as_u64().map(|n| n as usize);
    match schema["type"].as_str() {
        Some("object") => {
            let Value::Object(object) = value else {
                return Err(violation(format!("{}, not an object", kind(value))));
            };
            let properties = schema["properties"]
                .as_object()
                .expect("object schemas list properties");
            for required in schema["required"].as_array().into_iter().flatten() {
                let name = required.as_str().expect("required names are strings");
                if !object.contains_key(name) {
                    return Err(violation_at(field(name), "missing".to_owned()));
                }
            }
            for (name, item) in object {
                match properties.get(name) {
                    Some(property) => check(property, item, &field(name))?,
                    // Every object of the schema is closed (`additionalProperties: false`).
                    None => {
                        return Err(violation_at(
                            field(name),
                            "not in the schema, which allows no other fields".to_owned(),
                        ))
                    }
                }
            }
        }
        Some("array") => {
            let Value::Array(items) = value else {
                return Err(violation(format!("{}, not an array", kind(value))));
            };
            if let Some(max) = limit("maxItems").filter(|max| items.len() > *max) {
                return Err(violation(format!("{} items, at most {max}", items.len())));
            }
            for (i, item) in items.iter().enumerate() {
                check(&schema["items"], item, &format!("{path}[{i}]"))?;
            }
        }
        Some("string") => {
            let Value::String(text) = value else {
                return Err(violation(format!("{}, not a string", kind(value))));
            };
            if let Some(allowed) = schema["enum"].as_array() {
                if !allowed.iter().any(|a| a == value) {
                    let names: Vec<&str> = allowed.iter().filter_map(Value::as_str).collect();
                    return Err(violation(format!(
                        "{text:?} is not one of {}",
                        names.join(", ")
                    )));
                }
            }
            let length = text.chars().count();
            if let Some(min) = limit("minLength").filter(|min| length < *min) {
                return Err(violation(format!("{length} characters, at least {min}")));
            }
            if let Some(max) = limit("maxLength").filter(|max| length > *max) {
                return Err(violation(format!("{length} characters, at most {max}")));
            }
        }
        other => unreachable!("the schema's type {other:?} is not checked"),
    }
    Ok(())
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// An answer's content as a review, or the first way it leaves the schema.
pub fn parse_review(content: &str) -> Result<CallReview, FallbackReason> {
    let value: Value = serde_json::from_str(content).map_err(|e| FallbackReason::NotJson {
        error: e.to_string(),
        excerpt: body_excerpt(content),
    })?;
    check(schema(), &value, "")?;
    // The schema admits exactly what `CallReview` reads (a test checks), so this holds.
    Ok(serde_json::from_value(value).expect("an answer that fits the schema is a review"))
}

/// Tokens a request spent, as the server reported them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenUsage {
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
}

/// USD per million tokens; local servers cost nothing per token (the default).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Prices {
    pub input_usd_per_mtok: f64,
    pub output_usd_per_mtok: f64,
}

impl Prices {
    pub fn cost_usd(&self, usage: &TokenUsage) -> f64 {
        (usage.prompt_tokens as f64 * self.input_usd_per_mtok
            + usage.completion_tokens as f64 * self.output_usd_per_mtok)
            / 1_000_000.0
    }
}

/// Why the rule engine's summary stands for a call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FallbackReason {
    #[error("no answer within {} s", .0.as_secs_f64())]
    Timeout(Duration),
    #[error("the request failed: {0}")]
    Transport(String),
    #[error("HTTP {status}: {excerpt}")]
    Status { status: u16, excerpt: String },
    #[error("the response is not an OpenAI chat completion ({problem}): {excerpt}")]
    NotACompletion { problem: String, excerpt: String },
    #[error("the answer is not JSON ({error}): {excerpt}")]
    NotJson { error: String, excerpt: String },
    #[error("the answer does not fit the schema: {0}")]
    Schema(#[from] SchemaViolation),
}

/// What asking about one call came to. `usage` is what the server reported, if it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrainOutcome {
    Answered {
        review: CallReview,
        usage: Option<TokenUsage>,
    },
    Fallback {
        reason: FallbackReason,
        usage: Option<TokenUsage>,
    },
}

impl BrainOutcome {
    pub fn review(&self) -> Option<&CallReview> {
        match self {
            BrainOutcome::Answered { review, .. } => Some(review),
            BrainOutcome::Fallback { .. } => None,
        }
    }

    pub fn usage(&self) -> Option<&TokenUsage> {
        match self {
            BrainOutcome::Answered { usage, .. } | BrainOutcome::Fallback { usage, .. } => {
                usage.as_ref()
            }
        }
    }
}

/// Where and how to ask. [`BrainConfig::new`] gives the defaults for the rest.
#[derive(Debug, Clone)]
pub struct BrainConfig {
    /// The API root the `/chat/completions` path is added to, e.g. `http://127.0.0.1:8080/v1`.
    pub base_url: String,
    /// The model name sent in each request (llama.cpp's server accepts any).
    pub model: String,
    /// Sent as `Authorization: Bearer …` when set.
    pub api_key: Option<Secret>,
    /// How long one request may take in all.
    pub timeout: Duration,
    pub prices: Prices,
    /// The transcript is cut to this many characters (the start of the call is kept).
    pub max_transcript_chars: usize,
}

impl BrainConfig {
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);
    /// About 6 000 tokens of English: with the prompt and the answer, within an 8k context.
    pub const DEFAULT_MAX_TRANSCRIPT_CHARS: usize = 24_000;

    /// `model` at `base_url`, without a key, free, with the default timeout and cut.
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            model: model.into(),
            api_key: None,
            timeout: Self::DEFAULT_TIMEOUT,
            prices: Prices::default(),
            max_transcript_chars: Self::DEFAULT_MAX_TRANSCRIPT_CHARS,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BrainConfigError {
    #[error("the LLM base URL {url:?} is not an http(s) URL: {reason}")]
    BaseUrl { url: String, reason: String },
    #[error(
        "the LLM base URL holds a password: give the API key as the key setting instead, so it \
         is never printed"
    )]
    PasswordInUrl,
    #[error("the LLM model name is empty")]
    EmptyModel,
    #[error("the LLM request timeout is zero")]
    ZeroTimeout,
    #[error(
        "the LLM {which} price {value} is not a non-negative number of USD per million tokens"
    )]
    Price { which: &'static str, value: String },
    #[error("the most transcript characters sent to the LLM is zero")]
    ZeroTranscript,
}

/// A configured endpoint, ready to ask.
#[derive(Debug, Clone)]
pub struct Brain {
    config: BrainConfig,
    /// `{base_url}/chat/completions`.
    endpoint: String,
    http: reqwest::Client,
}

/// What the brain is told about a call.
#[derive(Debug, Clone, Copy)]
pub struct CallContext<'a> {
    /// The segments as stored: card numbers already redacted.
    pub segments: &'a [SegmentRecord],
    pub findings: &'a [Finding],
    pub assessment: &'a LeadAssessment,
}

impl Brain {
    /// Checks `config`; nothing is sent until a call is reviewed.
    pub fn new(config: BrainConfig) -> Result<Self, BrainConfigError> {
        let base = config.base_url.trim().trim_end_matches('/');
        let url = url::Url::parse(base).map_err(|e| BrainConfigError::BaseUrl {
            url: base.to_owned(),
            reason: e.to_string(),
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(BrainConfigError::BaseUrl {
                url: base.to_owned(),
                reason: format!("the scheme is {:?}", url.scheme()),
            });
        }
        if url.password().is_some() {
            return Err(BrainConfigError::PasswordInUrl);
        }
        if config.model.trim().is_empty() {
            return Err(BrainConfigError::EmptyModel);
        }
        if config.timeout.is_zero() {
            return Err(BrainConfigError::ZeroTimeout);
        }
        for (which, value) in [
            ("input", config.prices.input_usd_per_mtok),
            ("output", config.prices.output_usd_per_mtok),
        ] {
            if !(value.is_finite() && value >= 0.0) {
                return Err(BrainConfigError::Price {
                    which,
                    value: value.to_string(),
                });
            }
        }
        if config.max_transcript_chars == 0 {
            return Err(BrainConfigError::ZeroTranscript);
        }
        Ok(Self {
            endpoint: format!("{base}/chat/completions"),
            http: client(config.timeout),
            config,
        })
    }

    /// The URL requests go to (no secret in it).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn model(&self) -> &str {
        &self.config.model
    }

    /// The `core.usage` row of one request about `call_id`.
    pub fn usage_record(&self, org_id: Uuid, call_id: Uuid, tokens: &TokenUsage) -> UsageRecord {
        UsageRecord {
            org_id,
            call_id: Some(call_id),
            lane: Lane::Judge,
            model: Some(self.config.model.clone()),
            audio_seconds: 0.0,
            gpu_seconds: 0.0,
            cpu_seconds: 0.0,
            prompt_tokens: tokens.prompt_tokens,
            completion_tokens: tokens.completion_tokens,
            cost_usd: self.config.prices.cost_usd(tokens),
        }
    }

    /// The chat completion request about `call`.
    pub fn request_body(&self, call: &CallContext<'_>) -> Value {
        let system = format!("{SYSTEM_PROMPT}\n{}", schema());
        json!({
            "model": self.config.model,
            "temperature": 0,
            "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": self.user_message(call)},
            ],
            "response_format": {
                "type": "json_schema",
                "json_schema": {
                    "name": SCHEMA_NAME,
                    "strict": true,
                    "schema": decoding_schema(),
                },
            },
        })
    }

    /// Asks about one call. Never fails: whatever goes wrong is a fallback with its reason.
    pub async fn review(&self, call: CallContext<'_>) -> BrainOutcome {
        let mut request = self
            .http
            .post(&self.endpoint)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(self.request_body(&call).to_string());
        if let Some(key) = &self.config.api_key {
            request = request.bearer_auth(key.expose());
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) => return self.failed_request(&e),
        };
        let status = response.status();
        match response.text().await {
            Ok(body) => read_completion(status.as_u16(), &body),
            Err(e) => self.failed_request(&e),
        }
    }

    fn failed_request(&self, e: &reqwest::Error) -> BrainOutcome {
        let reason = if e.is_timeout() {
            FallbackReason::Timeout(self.config.timeout)
        } else {
            FallbackReason::Transport(describe_error(e))
        };
        BrainOutcome::Fallback {
            reason,
            usage: None,
        }
    }

    /// The transcript (cut to the limit) and what the rule engine made of the call.
    fn user_message(&self, call: &CallContext<'_>) -> String {
        let lines: Vec<String> = call.segments.iter().map(transcript_line).collect();
        let transcript = cut(&lines.join("\n"), self.config.max_transcript_chars);
        let findings: Vec<String> = call
            .findings
            .iter()
            .map(|f| {
                let at = f
                    .start_ms
                    .map(|ms| format!(" at {}", clock(ms)))
                    .unwrap_or_default();
                format!(
                    "- {} ({} {}){at}: {}",
                    f.rule_id, f.severity, f.category, f.evidence
                )
            })
            .collect();
        format!(
            "Transcript:\n{transcript}\n\nRule engine findings:\n{}\n\nLead assessment by the \
             rule engine:\n{}",
            if findings.is_empty() {
                "(none)".to_owned()
            } else {
                findings.join("\n")
            },
            lead_facts(call.assessment),
        )
    }
}

/// `[m:ss] ROLE: text`; a segment without a known role goes by its speaker label.
fn transcript_line(segment: &SegmentRecord) -> String {
    let who = match segment.role {
        Some(role @ (SpeakerRole::Agent | SpeakerRole::Customer)) => role.as_str().to_uppercase(),
        _ => segment
            .speaker
            .clone()
            .unwrap_or_else(|| "SPEAKER".to_owned()),
    };
    format!(
        "[{}] {who}: {}",
        clock(segment.start_ms),
        segment.text.trim()
    )
}

/// `text` cut to at most `max` characters (plus a note saying so), at a line end when there
/// is one: the start of a call says who called and why.
fn cut(text: &str, max: usize) -> String {
    let Some((limit, _)) = text.char_indices().nth(max) else {
        return text.to_owned();
    };
    let end = text[..limit].rfind('\n').unwrap_or(limit);
    format!(
        "{}\n[… the rest of the call, {} characters, is left out]",
        &text[..end],
        text[end..].trim_start_matches('\n').chars().count()
    )
}

/// The rule engine's view of the lead, one fact a line.
fn lead_facts(assessment: &LeadAssessment) -> String {
    let mentions = |mentions: &[crate::lead::Mention]| {
        mentions
            .iter()
            .map(|m| format!("{} ({:?})", m.label, m.text))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut facts = vec![format!(
        "- interest {}/100 ({}), sentiment {}, disposition {}",
        assessment.score,
        assessment.temperature.as_str(),
        assessment.sentiment.as_str(),
        assessment.disposition.as_str()
    )];
    if !assessment.objections.is_empty() {
        facts.push(format!(
            "- objections: {}",
            mentions(&assessment.objections)
        ));
    }
    if !assessment.questions.is_empty() {
        facts.push(format!("- questions: {}", mentions(&assessment.questions)));
    }
    if let Some(callback) = &assessment.follow_up {
        facts.push(format!(
            "- callback asked for ({:?}), due {}",
            callback.source_text,
            callback.due.format("%a %Y-%m-%d %H:%M %Z")
        ));
    }
    if let Some(commitment) = &assessment.commitment {
        facts.push(format!("- agreed to buy: {:?}", commitment.text));
    }
    if let Some(request) = &assessment.do_not_call {
        facts.push(format!(
            "- asked not to be called again: {:?}",
            request.text
        ));
    }
    facts.push(format!("- rule summary: {}", assessment.summary));
    facts.join("\n")
}

/// A chat completion response (status and body) as an outcome.
fn read_completion(status: u16, body: &str) -> BrainOutcome {
    let json: Option<Value> = serde_json::from_str(body).ok();
    let usage = json
        .as_ref()
        .and_then(|json| reported_usage(&json["usage"]));
    let fallback = |reason| BrainOutcome::Fallback { reason, usage };
    if !(200..300).contains(&status) {
        return fallback(FallbackReason::Status {
            status,
            excerpt: body_excerpt(body),
        });
    }
    let not_a_completion = |problem: &str| {
        fallback(FallbackReason::NotACompletion {
            problem: problem.to_owned(),
            excerpt: body_excerpt(body),
        })
    };
    let Some(json) = json else {
        return not_a_completion("not JSON");
    };
    let Some(content) = json["choices"][0]["message"]["content"].as_str() else {
        return not_a_completion("no choices[0].message.content");
    };
    match parse_review(content) {
        Ok(review) => BrainOutcome::Answered { review, usage },
        Err(reason) => fallback(reason),
    }
}

/// `usage.prompt_tokens` and `usage.completion_tokens`, when the server sent either.
fn reported_usage(usage: &Value) -> Option<TokenUsage> {
    let tokens = |name: &str| usage[name].as_i64().filter(|n| *n >= 0);
    let (prompt, completion) = (tokens("prompt_tokens"), tokens("completion_tokens"));
    (prompt.is_some() || completion.is_some()).then(|| TokenUsage {
        prompt_tokens: prompt.unwrap_or(0),
        completion_tokens: completion.unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> Value {
        json!({
            "summary": "The customer asked for a quote on car insurance and wants a call back.",
            "objections": ["too expensive", "needs to ask her husband"],
            "next_best_action": {"action": "call_back", "detail": "Call Friday at ten."},
        })
    }

    fn violation(answer: Value) -> SchemaViolation {
        match parse_review(&answer.to_string()) {
            Err(FallbackReason::Schema(violation)) => violation,
            other => panic!("expected a schema violation, got {other:?}"),
        }
    }

    #[test]
    fn a_valid_answer_is_a_review_and_a_review_fits_the_schema() {
        let review = parse_review(&valid().to_string()).unwrap();
        assert_eq!(review.next_best_action.action, NextAction::CallBack);
        assert_eq!(review.objections.len(), 2);
        // What `CallReview` writes is what the schema admits: the two cannot drift apart.
        check(schema(), &serde_json::to_value(&review).unwrap(), "").unwrap();
        let stored = review.stored("local");
        assert_eq!(stored["model"], "local");
        assert_eq!(stored["next_best_action"]["action"], "call_back");
    }

    #[test]
    fn every_next_action_is_in_the_schema_as_it_serializes() {
        let listed = &schema()["properties"]["next_best_action"]["properties"]["action"]["enum"];
        let serialized: Vec<Value> = NextAction::ALL
            .iter()
            .map(|a| serde_json::to_value(a).unwrap())
            .collect();
        assert_eq!(listed, &json!(serialized));
        for action in NextAction::ALL {
            assert_eq!(serde_json::to_value(action).unwrap(), action.as_str());
        }
    }

    #[test]
    fn each_violation_names_its_field() {
        let mut missing = valid();
        missing.as_object_mut().unwrap().remove("summary");
        assert_eq!(violation(missing).to_string(), "summary: missing");

        let mut nested_missing = valid();
        nested_missing["next_best_action"]
            .as_object_mut()
            .unwrap()
            .remove("detail");
        assert_eq!(
            violation(nested_missing).to_string(),
            "next_best_action.detail: missing"
        );

        let mut extra = valid();
        extra["mood"] = json!("happy");
        assert_eq!(
            violation(extra).to_string(),
            "mood: not in the schema, which allows no other fields"
        );

        let mut empty = valid();
        empty["summary"] = json!("");
        assert_eq!(
            violation(empty).to_string(),
            "summary: 0 characters, at least 1"
        );

        let mut long = valid();
        long["summary"] = json!("é".repeat(1201));
        assert_eq!(
            violation(long).to_string(),
            "summary: 1201 characters, at most 1200"
        );

        let mut not_a_list = valid();
        not_a_list["objections"] = json!("price");
        assert_eq!(
            violation(not_a_list).to_string(),
            "objections: a string, not an array"
        );

        let mut many = valid();
        many["objections"] = json!(vec!["price"; 11]);
        assert_eq!(
            violation(many).to_string(),
            "objections: 11 items, at most 10"
        );

        let mut bad_item = valid();
        bad_item["objections"] = json!(["price", 3]);
        assert_eq!(
            violation(bad_item).to_string(),
            "objections[1]: a number, not a string"
        );

        let mut long_item = valid();
        long_item["objections"] = json!(["x".repeat(201)]);
        assert_eq!(violation(long_item).path, "objections[0]");

        let mut wrong_enum = valid();
        wrong_enum["next_best_action"]["action"] = json!("call_later");
        let wrong = violation(wrong_enum);
        assert_eq!(wrong.path, "next_best_action.action");
        assert!(
            wrong
                .problem
                .starts_with("\"call_later\" is not one of call_back, send_quote,"),
            "{wrong}"
        );

        let mut long_detail = valid();
        long_detail["next_best_action"]["detail"] = json!("x".repeat(301));
        assert_eq!(
            violation(long_detail).to_string(),
            "next_best_action.detail: 301 characters, at most 300"
        );

        let mut extra_nested = valid();
        extra_nested["next_best_action"]["when"] = json!("Friday");
        assert_eq!(violation(extra_nested).path, "next_best_action.when");

        assert_eq!(
            violation(json!(["a list"])).to_string(),
            "the answer: an array, not an object"
        );
    }

    #[test]
    fn text_that_is_not_json_is_told_apart() {
        let reason = parse_review("Sure! Here is the summary: the customer …").unwrap_err();
        assert!(
            matches!(reason, FallbackReason::NotJson { .. }),
            "{reason:?}"
        );
        assert!(
            reason.to_string().starts_with("the answer is not JSON"),
            "{reason}"
        );
    }

    #[test]
    fn cost_is_tokens_times_price_per_million() {
        let prices = Prices {
            input_usd_per_mtok: 0.5,
            output_usd_per_mtok: 1.5,
        };
        let usage = TokenUsage {
            prompt_tokens: 1000,
            completion_tokens: 200,
        };
        assert!((prices.cost_usd(&usage) - 0.0008).abs() < 1e-12);
        assert_eq!(Prices::default().cost_usd(&usage), 0.0);
    }

    #[test]
    fn completions_are_read_with_their_usage() {
        let answer = json!({
            "choices": [{"message": {"role": "assistant", "content": valid().to_string()}}],
            "usage": {"prompt_tokens": 1000, "completion_tokens": 200, "total_tokens": 1200},
        });
        let outcome = read_completion(200, &answer.to_string());
        assert!(outcome.review().is_some(), "{outcome:?}");
        assert_eq!(
            outcome.usage(),
            Some(&TokenUsage {
                prompt_tokens: 1000,
                completion_tokens: 200
            })
        );

        let error = read_completion(500, r#"{"error": {"message": "out of memory"}}"#);
        assert_eq!(error.usage(), None);
        match error {
            BrainOutcome::Fallback { reason, .. } => assert_eq!(
                reason.to_string(),
                r#"HTTP 500: {"error": {"message": "out of memory"}}"#
            ),
            other => panic!("{other:?}"),
        }

        let empty = read_completion(200, r#"{"choices": []}"#);
        assert!(
            matches!(
                &empty,
                BrainOutcome::Fallback {
                    reason: FallbackReason::NotACompletion { .. },
                    usage: None
                }
            ),
            "{empty:?}"
        );
    }

    #[test]
    fn long_transcripts_are_cut_at_a_line_end() {
        let text = "[0:00] AGENT: hello there\n[0:02] CUSTOMER: hi";
        assert_eq!(cut(text, 100), text);
        assert_eq!(
            cut(text, 30),
            "[0:00] AGENT: hello there\n[… the rest of the call, 19 characters, is left out]"
        );
        // One line longer than the limit is cut inside it.
        assert!(cut(&"x".repeat(50), 10).starts_with(&format!("{}\n[…", "x".repeat(10))));
    }

    #[test]
    fn configuration_is_checked() {
        let ok = |config: BrainConfig| Brain::new(config);
        let brain = ok(BrainConfig::new("http://127.0.0.1:8080/v1/", "local")).unwrap();
        assert_eq!(
            brain.endpoint(),
            "http://127.0.0.1:8080/v1/chat/completions"
        );
        assert!(matches!(
            ok(BrainConfig::new("127.0.0.1:8080", "local")),
            Err(BrainConfigError::BaseUrl { .. })
        ));
        assert_eq!(
            ok(BrainConfig::new(
                "https://user:hunter2@llm.example.com/v1",
                "m"
            ))
            .unwrap_err(),
            BrainConfigError::PasswordInUrl
        );
        assert_eq!(
            ok(BrainConfig::new("http://localhost/v1", " ")).unwrap_err(),
            BrainConfigError::EmptyModel
        );
        let mut negative = BrainConfig::new("http://localhost/v1", "m");
        negative.prices.output_usd_per_mtok = -1.0;
        assert!(matches!(
            ok(negative),
            Err(BrainConfigError::Price {
                which: "output",
                ..
            })
        ));
    }
}
