//! The rulebook: QA and compliance rules as TOML, per organization or campaign, versioned.
//!
//! ```toml
//! [rulebook]
//! name = "acme-solar"
//! version = "2026-11-25"
//!
//! [[rules]]
//! id = "recording-disclosure-missing"
//! kind = "required_phrase"
//! category = "compliance"
//! severity = "high"
//! by = "agent"
//! within_seconds = 30
//! phrases = ["this call may be recorded", "this call is being recorded"]
//! ```
//!
//! Every rule has `id` (unique), `kind`, `category` (compliance, quality, fraud), `severity`
//! (info, low, medium, high, critical) and an optional `description`; the rest depends on its
//! kind ([`KINDS`] lists each kind's keys; [`RuleKind`] says what they mean). `by` is
//! "agent", "customer" or "anyone"; `fuzziness` (0 to 0.5) is how many word errors per phrase
//! word a match may have (see [`crate::matcher`]).
//!
//! A rulebook is written by people and changed often, so parsing reports every problem at
//! once, each with its line and column: a TOML syntax error, an unknown key (a typo must not
//! silently disable a check), a missing or duplicate id, an unknown kind, category or severity,
//! a value of the wrong type or out of range.

use std::collections::HashMap;
use std::fmt;

use callscript_core::model::SpeakerRole;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::matcher::DEFAULT_FUZZINESS;
use crate::normalize;
use crate::{Category, Severity};

/// The rulebook that ships with the binary: what a new organization is judged by.
pub const DEFAULT_RULEBOOK: &str = include_str!("default_rulebook.toml");

/// What customers say to revoke consent to be called (TCPA: "in any reasonable manner"); a
/// `do_not_call` rule's `phrases` add to these.
pub const DO_NOT_CALL_PHRASES: &[&str] = &[
    "stop calling",
    "quit calling me",
    "don't call me again",
    "don't call me anymore",
    "don't ever call me",
    "never call me again",
    "don't call this number",
    "do not call list",
    "take me off your list",
    "take me off the list",
    "take my number off",
    "remove me from your list",
    "remove me from the list",
    "remove my number",
    "i don't want any more calls",
    "no more calls",
    "stop contacting me",
    "don't contact me again",
    "unsubscribe me",
    "don't call here again",
    "stop bothering me",
    "lose my number",
    "take me off",
    "off your list",
    "off your calling list",
    "remove me from",
    "put me on your do not call",
];

/// A checked rulebook.
#[derive(Debug, Clone, PartialEq)]
pub struct Rulebook {
    pub name: String,
    pub version: String,
    /// In the order written.
    pub rules: Vec<Rule>,
}

/// Whose words a rule reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Party {
    Agent,
    Customer,
    Anyone,
}

impl Party {
    pub fn as_str(self) -> &'static str {
        match self {
            Party::Agent => "agent",
            Party::Customer => "customer",
            Party::Anyone => "anyone",
        }
    }

    /// The speaker role this party is, `None` for anyone.
    pub fn role(self) -> Option<SpeakerRole> {
        match self {
            Party::Agent => Some(SpeakerRole::Agent),
            Party::Customer => Some(SpeakerRole::Customer),
            Party::Anyone => None,
        }
    }
}

/// One rule of a rulebook.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub id: String,
    pub category: Category,
    pub severity: Severity,
    pub description: Option<String>,
    pub kind: RuleKind,
}

/// What a rule checks.
#[derive(Debug, Clone, PartialEq)]
pub enum RuleKind {
    /// One of `phrases` must be said by `by` (within the first `within_seconds` of the call
    /// when set); one finding when none is.
    RequiredPhrase {
        phrases: Vec<String>,
        by: Party,
        within_seconds: Option<f64>,
        fuzziness: f64,
    },
    /// A finding for each time one of `phrases` is said by `by`.
    ForbiddenPhrase {
        phrases: Vec<String>,
        by: Party,
        fuzziness: f64,
    },
    /// A request to stop calling, by `by` (the customer unless set): [`DO_NOT_CALL_PHRASES`]
    /// and the rule's own `phrases`.
    DoNotCall {
        phrases: Vec<String>,
        by: Party,
        fuzziness: f64,
    },
    /// A payment-card number said by `by`: 13–19 digits, Luhn-valid, in numerals or words.
    PaymentCard { by: Party },
    /// A social security number said by `by`: nine digits grouped 3-2-4, or nine digits after
    /// "social security"/"SSN".
    Ssn { by: Party },
    /// A finding for each of `words` (words or short phrases) said by `by`; exact words unless
    /// `fuzziness` is set.
    AbusiveLanguage {
        words: Vec<String>,
        by: Party,
        fuzziness: f64,
    },
    /// A gap between consecutive segments longer than `max_seconds`.
    DeadAir { max_seconds: f64 },
    /// `by`'s share of the talk time (segment durations) below `min` or above `max`.
    TalkRatio {
        by: Party,
        min: Option<f64>,
        max: Option<f64>,
    },
    /// A call shorter than `min_seconds`.
    CallTooShort { min_seconds: f64 },
}

impl RuleKind {
    /// Its `kind` in TOML.
    pub fn name(&self) -> &'static str {
        match self {
            RuleKind::RequiredPhrase { .. } => "required_phrase",
            RuleKind::ForbiddenPhrase { .. } => "forbidden_phrase",
            RuleKind::DoNotCall { .. } => "do_not_call",
            RuleKind::PaymentCard { .. } => "payment_card",
            RuleKind::Ssn { .. } => "ssn",
            RuleKind::AbusiveLanguage { .. } => "abusive_language",
            RuleKind::DeadAir { .. } => "dead_air",
            RuleKind::TalkRatio { .. } => "talk_ratio",
            RuleKind::CallTooShort { .. } => "call_too_short",
        }
    }
}

/// The keys every rule has.
pub const COMMON_KEYS: &[&str] = &["id", "kind", "category", "severity", "description"];

/// Each kind and the keys of its own.
pub const KINDS: &[(&str, &[&str])] = &[
    (
        "required_phrase",
        &["phrases", "by", "within_seconds", "fuzziness"],
    ),
    ("forbidden_phrase", &["phrases", "by", "fuzziness"]),
    ("do_not_call", &["phrases", "by", "fuzziness"]),
    ("payment_card", &["by"]),
    ("ssn", &["by"]),
    ("abusive_language", &["words", "by", "fuzziness"]),
    ("dead_air", &["max_seconds"]),
    ("talk_ratio", &["by", "min", "max"]),
    ("call_too_short", &["min_seconds"]),
];

/// A problem in a rulebook, where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// From 1.
    pub line: usize,
    /// From 1, in characters.
    pub column: usize,
    pub message: String,
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}, column {}: {}",
            self.line, self.column, self.message
        )
    }
}

/// Every problem of a rulebook that does not parse, in the order of the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RulebookError {
    pub issues: Vec<Issue>,
}

impl fmt::Display for RulebookError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, issue) in self.issues.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{issue}")?;
        }
        Ok(())
    }
}

impl std::error::Error for RulebookError {}

impl Rulebook {
    /// Parses and checks a rulebook; every problem is reported with its line and column.
    pub fn parse(text: &str) -> Result<Rulebook, RulebookError> {
        let mut parser = Parser {
            line_starts: std::iter::once(0)
                .chain(text.match_indices('\n').map(|(i, _)| i + 1))
                .collect(),
            text,
            issues: Vec::new(),
        };
        let (root, errors) = DeTable::parse_recoverable(text);
        if !errors.is_empty() {
            for error in errors {
                let at = error.span().map_or(0, |span| span.start);
                parser.issue(at, error.message().trim().to_owned());
            }
            return Err(parser.finish());
        }
        let rulebook = parser.rulebook(root.get_ref());
        match rulebook {
            Some(rulebook) if parser.issues.is_empty() => Ok(rulebook),
            _ => Err(parser.finish()),
        }
    }

    /// The rulebook compiled into the binary ([`DEFAULT_RULEBOOK`]).
    pub fn default_rulebook() -> Rulebook {
        Rulebook::parse(DEFAULT_RULEBOOK).expect("the default rulebook is valid (tested)")
    }

    /// "name@version": which rulebook judged a call, as stored with its flags.
    pub fn reference(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }
}

/// What a rulebook's name and version may be: they are joined as "name@version" in references
/// and stored under a matching check in `core.rulebooks`.
fn valid_label(label: &str) -> bool {
    (1..=64).contains(&label.len())
        && label
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}

type Value<'i> = Spanned<DeValue<'i>>;

struct Parser<'t> {
    text: &'t str,
    line_starts: Vec<usize>,
    issues: Vec<Issue>,
}

impl Parser<'_> {
    fn issue(&mut self, at: usize, message: String) {
        let line = self.line_of(at);
        let line_start = self.line_starts[line - 1];
        let column = self.text[line_start..]
            .char_indices()
            .take_while(|(i, _)| line_start + i < at)
            .count()
            + 1;
        self.issues.push(Issue {
            line,
            column,
            message,
        });
    }

    fn finish(mut self) -> RulebookError {
        self.issues.sort_by_key(|i| (i.line, i.column));
        RulebookError {
            issues: self.issues,
        }
    }

    fn rulebook(&mut self, root: &DeTable<'_>) -> Option<Rulebook> {
        let mut header = None;
        let mut rules = Vec::new();
        for (key, value) in root.iter() {
            match key.get_ref().as_ref() {
                "rulebook" => header = self.header(value),
                "rules" => rules = self.rules(value),
                other => self.issue(
                    key.span().start,
                    format!("unknown key `{other}` (expected `rulebook` or `rules`)"),
                ),
            }
        }
        if !root.iter().any(|(key, _)| key.get_ref() == "rulebook") {
            self.issue(
                0,
                "missing the [rulebook] table (with `name` and `version`)".to_owned(),
            );
        }
        let (name, version) = header?;
        Some(Rulebook {
            name,
            version,
            rules,
        })
    }

    fn header(&mut self, value: &Value<'_>) -> Option<(String, String)> {
        let table = self.table(value, "rulebook")?;
        self.unknown_keys(table, &["name", "version", "description"], "[rulebook]");
        let name = self.required(table, value, "name", "[rulebook]", |p, v| {
            let name = p.string(v, "name")?;
            let valid = valid_label(&name);
            if !valid {
                p.issue(
                    v.span().start,
                    "`name` must be 1 to 64 letters, digits, '.', '_' or '-'".to_owned(),
                );
            }
            valid.then_some(name)
        });
        let version = self.required(table, value, "version", "[rulebook]", |p, v| {
            let version = match v.get_ref() {
                DeValue::Integer(i) => Some(i.as_str().to_owned()),
                _ => p.string(v, "version"),
            }?;
            let valid = valid_label(&version);
            if !valid {
                p.issue(
                    v.span().start,
                    "`version` must be 1 to 64 letters, digits, '.', '_' or '-'".to_owned(),
                );
            }
            valid.then_some(version)
        });
        if let Some(description) = field(table, "description") {
            self.string(description, "description");
        }
        Some((name?, version?))
    }

    fn rules(&mut self, value: &Value<'_>) -> Vec<Rule> {
        let DeValue::Array(items) = value.get_ref() else {
            self.issue(
                value.span().start,
                "`rules` must be an array of tables ([[rules]])".to_owned(),
            );
            return Vec::new();
        };
        let mut rules = Vec::new();
        let mut seen: HashMap<String, usize> = HashMap::new();
        for item in items.iter() {
            let Some(table) = self.table(item, "each of `rules`") else {
                continue;
            };
            if let Some((id_value, id)) =
                field(table, "id").and_then(|v| v.get_ref().as_str().map(|id| (v, id.to_owned())))
            {
                let line = self.line_of(id_value.span().start);
                if let Some(first) = seen.insert(id.clone(), line) {
                    self.issue(
                        id_value.span().start,
                        format!("duplicate rule id `{id}` (first at line {first})"),
                    );
                    seen.insert(id, first);
                }
            }
            rules.extend(self.rule(table, item));
        }
        rules
    }

    fn line_of(&self, at: usize) -> usize {
        self.line_starts.partition_point(|&start| start <= at)
    }

    fn rule(&mut self, table: &DeTable<'_>, value: &Value<'_>) -> Option<Rule> {
        let id = self.required(table, value, "id", "rule", |p, v| {
            let id = p.string(v, "id")?;
            if id.trim().is_empty() {
                p.issue(v.span().start, "`id` must not be empty".to_owned());
                return None;
            }
            Some(id)
        });
        let what = match &id {
            Some(id) => format!("rule `{id}`"),
            None => "rule".to_owned(),
        };
        let kind = self.required(table, value, "kind", &what, |p, v| {
            let kind = p.string(v, "kind")?;
            match KINDS.iter().find(|(name, _)| *name == kind) {
                Some(&(name, keys)) => Some((name, keys)),
                None => {
                    let names: Vec<&str> = KINDS.iter().map(|(name, _)| *name).collect();
                    p.issue(
                        v.span().start,
                        format!(
                            "unknown kind `{kind}` (expected one of: {})",
                            names.join(", ")
                        ),
                    );
                    None
                }
            }
        });
        match kind {
            Some((name, keys)) => {
                let allowed: Vec<&str> = COMMON_KEYS.iter().chain(keys).copied().collect();
                self.unknown_keys(table, &allowed, &format!("a `{name}` rule"));
            }
            None => {
                let allowed: Vec<&str> = COMMON_KEYS
                    .iter()
                    .chain(KINDS.iter().flat_map(|(_, keys)| keys.iter()))
                    .copied()
                    .collect();
                self.unknown_keys(table, &allowed, "a rule");
            }
        }
        let category = self.required(table, value, "category", &what, |p, v| {
            p.choice(v, "category", Category::ALL, |c| c.as_str())
        });
        let severity = self.required(table, value, "severity", &what, |p, v| {
            p.choice(v, "severity", Severity::ALL, |s| s.as_str())
        });
        let description = field(table, "description").and_then(|v| self.string(v, "description"));
        let kind = self.kind(table, value, kind?.0, &what);
        Some(Rule {
            id: id?,
            category: category?,
            severity: severity?,
            description,
            kind: kind?,
        })
    }

    fn kind(
        &mut self,
        table: &DeTable<'_>,
        value: &Value<'_>,
        kind: &str,
        what: &str,
    ) -> Option<RuleKind> {
        let by = |p: &mut Self, default: Party| match field(table, "by") {
            Some(v) => p.choice(
                v,
                "by",
                &[Party::Agent, Party::Customer, Party::Anyone],
                |p| p.as_str(),
            ),
            None => Some(default),
        };
        let fuzziness = |p: &mut Self, default: f64| match field(table, "fuzziness") {
            Some(v) => p.number(v, "fuzziness", 0.0, 0.5, true),
            None => Some(default),
        };
        let seconds = |p: &mut Self, key: &str| {
            p.required(table, value, key, what, |p, v| {
                p.number(v, key, 0.0, f64::MAX, false)
            })
        };
        let phrases =
            |p: &mut Self, key: &str| p.required(table, value, key, what, |p, v| p.phrases(v, key));
        // Every key is read before any `?`, so all of a rule's problems are reported.
        Some(match kind {
            "required_phrase" => {
                let within_seconds = match field(table, "within_seconds") {
                    Some(v) => self
                        .number(v, "within_seconds", 0.0, f64::MAX, false)
                        .map(Some),
                    None => Some(None),
                };
                let (phrases, by, fuzziness) = (
                    phrases(self, "phrases"),
                    by(self, Party::Anyone),
                    fuzziness(self, DEFAULT_FUZZINESS),
                );
                RuleKind::RequiredPhrase {
                    phrases: phrases?,
                    by: by?,
                    within_seconds: within_seconds?,
                    fuzziness: fuzziness?,
                }
            }
            "forbidden_phrase" => {
                let (phrases, by, fuzziness) = (
                    phrases(self, "phrases"),
                    by(self, Party::Anyone),
                    fuzziness(self, DEFAULT_FUZZINESS),
                );
                RuleKind::ForbiddenPhrase {
                    phrases: phrases?,
                    by: by?,
                    fuzziness: fuzziness?,
                }
            }
            "do_not_call" => {
                let extra = match field(table, "phrases") {
                    Some(v) => self.phrases(v, "phrases"),
                    None => Some(Vec::new()),
                };
                let (by, fuzziness) = (
                    by(self, Party::Customer),
                    fuzziness(self, DEFAULT_FUZZINESS),
                );
                RuleKind::DoNotCall {
                    phrases: DO_NOT_CALL_PHRASES
                        .iter()
                        .map(|p| p.to_string())
                        .chain(extra?)
                        .collect(),
                    by: by?,
                    fuzziness: fuzziness?,
                }
            }
            "payment_card" => RuleKind::PaymentCard {
                by: by(self, Party::Anyone)?,
            },
            "ssn" => RuleKind::Ssn {
                by: by(self, Party::Anyone)?,
            },
            "abusive_language" => {
                let (words, by, fuzziness) = (
                    phrases(self, "words"),
                    by(self, Party::Anyone),
                    fuzziness(self, 0.0),
                );
                RuleKind::AbusiveLanguage {
                    words: words?,
                    by: by?,
                    fuzziness: fuzziness?,
                }
            }
            "dead_air" => RuleKind::DeadAir {
                max_seconds: seconds(self, "max_seconds")?,
            },
            "talk_ratio" => {
                let by = self.required(table, value, "by", what, |p, v| {
                    p.choice(v, "by", &[Party::Agent, Party::Customer], |p| p.as_str())
                });
                let share = |p: &mut Self, key: &str| match field(table, key) {
                    Some(v) => p.number(v, key, 0.0, 1.0, true).map(Some),
                    None => Some(None),
                };
                let (min, max) = (share(self, "min"), share(self, "max"));
                let (min, max) = (min?, max?);
                match (min, max) {
                    (None, None) => {
                        self.issue(
                            value.span().start,
                            format!("{what}: a `talk_ratio` rule needs `min`, `max` or both"),
                        );
                        return None;
                    }
                    (Some(lo), Some(hi)) if lo > hi => {
                        let at = field(table, "min").map_or(value.span().start, |v| v.span().start);
                        self.issue(at, format!("`min` ({lo}) is above `max` ({hi})"));
                        return None;
                    }
                    _ => {}
                }
                RuleKind::TalkRatio { by: by?, min, max }
            }
            "call_too_short" => RuleKind::CallTooShort {
                min_seconds: seconds(self, "min_seconds")?,
            },
            _ => unreachable!("kinds come from KINDS"),
        })
    }

    /// The value of a key the table must have; a missing one is reported at the table.
    fn required<T>(
        &mut self,
        table: &DeTable<'_>,
        at: &Value<'_>,
        key: &str,
        what: &str,
        read: impl FnOnce(&mut Self, &Value<'_>) -> Option<T>,
    ) -> Option<T> {
        match field(table, key) {
            Some(v) => read(self, v),
            None => {
                self.issue(at.span().start, format!("{what} is missing `{key}`"));
                None
            }
        }
    }

    fn unknown_keys(&mut self, table: &DeTable<'_>, allowed: &[&str], what: &str) {
        for (key, _) in table.iter() {
            let name: &str = key.get_ref();
            if !allowed.contains(&name) {
                self.issue(
                    key.span().start,
                    format!(
                        "unknown key `{name}` for {what} (expected one of: {})",
                        allowed.join(", ")
                    ),
                );
            }
        }
    }

    fn table<'v, 'i>(&mut self, value: &'v Value<'i>, what: &str) -> Option<&'v DeTable<'i>> {
        let table = value.get_ref().as_table();
        if table.is_none() {
            self.issue(value.span().start, format!("{what} must be a table"));
        }
        table
    }

    fn string(&mut self, value: &Value<'_>, key: &str) -> Option<String> {
        let s = value.get_ref().as_str().map(str::to_owned);
        if s.is_none() {
            self.issue(
                value.span().start,
                format!(
                    "`{key}` must be a string, not {}",
                    value.get_ref().type_str()
                ),
            );
        }
        s
    }

    fn choice<T: Copy>(
        &mut self,
        value: &Value<'_>,
        key: &str,
        options: &[T],
        label: impl Fn(T) -> &'static str,
    ) -> Option<T> {
        let s = self.string(value, key)?;
        let found = options.iter().copied().find(|&o| label(o) == s);
        if found.is_none() {
            let labels: Vec<String> = options
                .iter()
                .map(|&o| format!("\"{}\"", label(o)))
                .collect();
            self.issue(
                value.span().start,
                format!("`{key}` is \"{s}\"; expected one of: {}", labels.join(", ")),
            );
        }
        found
    }

    /// A number in `min..=max` (`min` itself allowed when `inclusive`).
    fn number(
        &mut self,
        value: &Value<'_>,
        key: &str,
        min: f64,
        max: f64,
        inclusive: bool,
    ) -> Option<f64> {
        let n = match value.get_ref() {
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
                .ok()
                .map(|n| n as f64),
            DeValue::Float(f) => f.as_str().parse::<f64>().ok(),
            other => {
                self.issue(
                    value.span().start,
                    format!("`{key}` must be a number, not {}", other.type_str()),
                );
                return None;
            }
        };
        let in_range =
            |n: f64| n.is_finite() && n <= max && if inclusive { n >= min } else { n > min };
        match n {
            Some(n) if in_range(n) => Some(n),
            _ => {
                let range = match (inclusive, max == f64::MAX) {
                    (_, true) => format!("above {min}"),
                    (true, false) => format!("from {min} to {max}"),
                    (false, false) => format!("above {min} and at most {max}"),
                };
                self.issue(
                    value.span().start,
                    format!("`{key}` must be a number {range}"),
                );
                None
            }
        }
    }

    /// A non-empty array of phrases, each with at least one word.
    fn phrases(&mut self, value: &Value<'_>, key: &str) -> Option<Vec<String>> {
        let Some(items) = value.get_ref().as_array() else {
            self.issue(
                value.span().start,
                format!("`{key}` must be an array of strings"),
            );
            return None;
        };
        if items.is_empty() {
            self.issue(value.span().start, format!("`{key}` is empty"));
            return None;
        }
        let mut phrases = Vec::new();
        let mut ok = true;
        for item in items.iter() {
            match self.string(item, key) {
                Some(p) if normalize::phrase(&p).is_empty() => {
                    self.issue(item.span().start, format!("\"{p}\" has no words"));
                    ok = false;
                }
                Some(p) => phrases.push(p),
                None => ok = false,
            }
        }
        ok.then_some(phrases)
    }
}

/// The value of `key` in `table`.
fn field<'t, 'i>(table: &'t DeTable<'i>, key: &str) -> Option<&'t Value<'i>> {
    table
        .iter()
        .find(|(k, _)| k.get_ref() == key)
        .map(|(_, v)| v)
}
