//! A judged call as a lead: how interested the customer is, why, and what to do next.
//!
//! The assessment reads what the customer said (the whole transcript when no segment has a
//! role) with the same normalization and fuzzy matching as the rules, so "I'm intrested" and
//! "call me bak tomorrow" count as what they meant. It is pure: the call's segments, what the
//! vendor reported and when the call started in, the assessment out.
//!
//! The interest score is additive so it can be explained: every contribution is a [`Signal`]
//! and the signals' weights add up to the score before it is clamped to 0–100. A sale (the
//! vendor reports a conversion, or the customer verbally commits) lifts the score to at least
//! [`SALE_FLOOR`]; a do-not-call request cancels everything else to 0. A call where the customer
//! said almost nothing scores nothing but a vendor conversion.

use std::ops::Range;

use callscript_core::transcripts::SegmentRecord;
use chrono::{DateTime, Duration};
use chrono_tz::Tz;
use serde::Serialize;

use crate::followup;
use crate::matcher::{find_all, DEFAULT_FUZZINESS};
use crate::normalize;
use crate::rulebook::DO_NOT_CALL_PHRASES;
use crate::transcript::{NumberKind, Transcript};
use crate::SpeakerRole;

// The scoring model. A customer who talks (40 words: 18), asks about two topics (+16) and wants
// a callback (+20) despite an objection (−10) is warm at 44; any interest without a refusal (a
// question about the offer, a callback, wanting to think it over) is warm at least; only a
// commitment (or the vendor's conversion) is hot: interest alone stops short of it. "Not
// interested" (−40) outweighs anything short of a sale. The temperatures mean what the phone-call
// suite says: hot, the customer commits; warm, interested without committing; cold, not
// interested, a refusal, a do-not-call request, a wrong number, no engagement.

/// A score at least this is hot.
pub const HOT_MIN: u8 = 70;
/// A score at least this (and under [`HOT_MIN`]) is warm; below it, cold.
pub const WARM_MIN: u8 = 40;
/// Fewer customer words than this (and no callback or commitment) is no conversation: a
/// voicemail, a hang-up, "hello? hello?".
pub const MIN_CONVERSATION_WORDS: usize = 5;
/// Staying on the line to talk is itself some interest; talking more, more of it.
const ENGAGEMENT_BASE: i32 = 10;
const ENGAGEMENT_WORDS_PER_POINT: usize = 5;
const ENGAGEMENT_MAX: i32 = 30;
/// Long calls are rarely idle: (at least this long in ms, weight), longest first.
const DURATION_TIERS: &[(i32, i32)] = &[(300_000, 10), (120_000, 5)];
/// Asking how to buy is the strongest spoken signal short of buying; two say it all.
const INTENT_WEIGHT: i32 = 15;
const INTENT_COUNTED: usize = 2;
/// A question about the offer (price, eligibility, coverage, contract, how it works), once per
/// topic: asking the price twice is one interest.
const QUESTION_WEIGHT: i32 = 8;
const QUESTIONS_COUNTED: usize = 3;
/// Asking to be called back keeps the lead open.
const CALLBACK_WEIGHT: i32 = 20;
/// Wanting to think it over or read more is interest too.
const CONSIDERING_WEIGHT: i32 = 10;
/// An objection is a concern to answer, not a refusal: once per kind, a few at most.
const OBJECTION_WEIGHT: i32 = -10;
const OBJECTIONS_COUNTED: usize = 3;
/// A plain refusal.
const NOT_INTERESTED_WEIGHT: i32 = -40;
/// A sale scores at least [`SALE_FLOOR`]: the commitment or conversion signal is worth this, or
/// what lifts the score to the floor if that is more.
const COMMITMENT_WEIGHT: i32 = 30;
const CONVERTED_WEIGHT: i32 = 30;
pub const SALE_FLOOR: i32 = 90;
/// Interest without a refusal (a question about the offer, a callback request, wanting to
/// think it over, "I'm interested") is warm: its first signal lifts the score to at least this.
pub const INTEREST_FLOOR: i32 = WARM_MIN as i32;

/// The most word errors a phrase is found with: less than one whole word, so a long phrase is
/// not found with a word of it replaced or two of its words heard as one other ("i would like
/// to sign up" in "i would like to cancel", "don't ever call me" in "don't tell me"), which the
/// default fuzziness allows from five words on.
const MAX_PHRASE_ERRORS: f64 = 0.8;

/// Words that turn a phrase after them around ("not too expensive", "don't sign me up"), and
/// how many words before the phrase they may stand.
const NEGATIONS: &[&str] = &["not", "never"];
const NEGATION_REACH: usize = 2;

/// The customer wants to know how to buy, or likes what they hear.
const INTENT_PHRASES: &[&str] = &[
    "i am interested",
    "i am very interested",
    "i am really interested",
    "sounds interesting",
    "sounds good",
    "sounds great",
    "that works for me",
    "how do i sign up",
    "how can i sign up",
    "how do i get started",
    "what is the next step",
    "what are the next steps",
    "i want to sign up",
    "i want to get started",
    "i want to go ahead",
    "i would like to sign up",
    "i would like to get started",
    "i would like to go ahead",
    "can you send me",
    "send me the information",
    "send me the details",
];

/// The customer agrees to buy or sign up, or asks to proceed now (on top of the
/// [`COMMIT_LEADS`] × [`COMMIT_ACTIONS`] phrases and a card number the customer reads out).
const COMMITMENT_PHRASES: &[&str] = &[
    "sign me up",
    "count me in",
    "let us do it",
    "let us do this",
    "let us go ahead",
    "let us get started",
    "let us get it started",
    "i will take it",
    "i will take that",
    "i will take the",
    "i will go for it",
    "you have got a deal",
    "it is a deal",
    "place the order",
    "put in the order",
    "go ahead and order",
    "put it on my card",
    "charge my card",
    "charge it to my",
    "pay with my card",
    "pay with my",
    "here is my card",
    "use my card",
    "set it up",
];

/// How a customer says they will buy, with any of [`COMMIT_ACTIONS`] after it: "like to" +
/// "order". Said as one phrase, so the matcher's tolerance covers the whole; without the
/// subject, which ASR drops or garbles ("i like to buy" for "i'd like to buy"), and a negation
/// just before turns it around ("i don't want to buy").
const COMMIT_LEADS: &[&str] = &[
    "want to",
    "like to",
    "love to",
    "i will",
    "we will",
    "going to",
    "ready to",
    "decided to",
];
const COMMIT_ACTIONS: &[&str] = &[
    "buy",
    "purchase",
    "order",
    "sign up",
    "enroll",
    "join",
    "subscribe",
    "renew",
    "upgrade",
    "switch",
    "go ahead",
    "proceed",
    "get started",
    "book",
    "pay",
];

/// The customer wants time to decide or more to read: interested, not committed.
const CONSIDERING_PHRASES: &[&str] = &[
    "think about it",
    "think it over",
    "let me think",
    "i will think",
    "get back to you",
    "look it over",
    "look at it",
    "compare",
    "more quotes",
    "not ready to decide",
    "decide later",
    "send me",
    "email me",
    "mail me",
];

/// Signal names the scoring looks for.
const NOT_INTERESTED: &str = "not-interested";
const COMMITMENT: &str = "commitment";
const CONSIDERING: &str = "considering";
const UNCOMMITTED: &str = "uncommitted";
const DO_NOT_CALL: &str = "do-not-call";

/// A plain refusal (an objection labelled [`NOT_INTERESTED`]).
const NOT_INTERESTED_PHRASES: &[&str] = &[
    "not interested",
    "wrong number",
    "no thanks",
    "not really interested",
    "not for me",
    "i will pass",
    "i am going to pass",
    "do not want it",
    "do not want that",
    "do not want any",
];

/// Objections by kind; the first kind listed claims words two kinds share.
const OBJECTIONS: &[(&str, &[&str])] = &[
    (
        "price",
        &[
            "too expensive",
            "too much money",
            "costs too much",
            "that is too much",
            "can not afford",
            "out of my budget",
            "over my budget",
            "not in my budget",
            "too pricey",
            "a lot of money",
            "too high",
            "cheaper",
            "fixed income",
        ],
    ),
    (
        "timing",
        &[
            "not a good time",
            "bad time",
            "not right now",
            "i am busy",
            "maybe later",
            "maybe next year",
            "think about it",
            "not ready",
            "need some time",
            "need more time",
        ],
    ),
    (
        "need",
        &[
            "do not need",
            "no need",
            "already have",
            "i am all set",
            "we are all set",
            "happy with what i have",
            "not looking for",
        ],
    ),
    (
        "trust",
        &[
            "scam",
            "too good to be true",
            "do not trust",
            "how did you get my number",
            "never heard of you",
            "is this legit",
            "is this legitimate",
            "sounds fishy",
            "sounds shady",
            "rather not give",
            "not comfortable giving",
        ],
    ),
    (
        "authority",
        &[
            "not my decision",
            "not the decision maker",
            "i do not make the decisions",
        ],
    ),
    (
        "competitor",
        &[
            "another company",
            "another provider",
            "other company",
            "already with",
            "going with someone else",
            "better deal",
            "better offer",
            "switched to",
        ],
    ),
];

/// Authority objections are asking someone else first: any of these with any of
/// [`AUTHORITY_WHO`] ("check with my wife").
const AUTHORITY_ASK: &[&str] = &[
    "ask",
    "check with",
    "talk to",
    "talk with",
    "speak to",
    "speak with",
    "run it by",
    "discuss it with",
];
const AUTHORITY_WHO: &[&str] = &[
    "my wife",
    "my husband",
    "my spouse",
    "my partner",
    "my boss",
    "my manager",
    "the owner",
];

/// How a question starts when Whisper left off its question mark; said after any of
/// [`QUESTION_LEAD_INS`].
const QUESTION_OPENERS: &[&str] = &[
    "what",
    "how",
    "which",
    "when is",
    "when can",
    "when will",
    "when do",
    "when does",
    "where is",
    "where do",
    "who is",
    "who are",
    "why is",
    "why do",
    "is it",
    "is there",
    "is this",
    "is that",
    "are there",
    "are you",
    "do you",
    "do i",
    "does it",
    "does this",
    "can i",
    "can you",
    "could you",
    "could i",
    "will it",
    "will i",
    "would it",
    "would i",
    "should i",
    "i was wondering",
    "i want to know",
    "i wanted to know",
    "tell me",
];
const QUESTION_LEAD_INS: &[&str] = &[
    "so", "and", "but", "okay", "well", "um", "uh", "oh", "yeah", "also", "then", "alright",
];

const OTHER_QUESTION: &str = "other";

/// What a question is about, by the words in it; the first topic listed wins ("how much does
/// it cost to cancel" is about price).
const QUESTION_TOPICS: &[(&str, &[&str])] = &[
    (
        "price",
        &[
            "how much",
            "cost",
            "costs",
            "price",
            "prices",
            "pricing",
            "fee",
            "fees",
            "charge",
            "charges",
            "pay",
            "payment",
            "payments",
            "monthly",
            "expensive",
            "afford",
            "rate",
            "rates",
            "discount",
        ],
    ),
    (
        "eligibility",
        &[
            "qualify",
            "qualifies",
            "eligible",
            "eligibility",
            "requirements",
            "approved",
            "approval",
            "credit score",
            "credit check",
        ],
    ),
    (
        "coverage",
        &[
            "cover", "covers", "covered", "coverage", "include", "includes", "included", "benefits",
        ],
    ),
    (
        "contract",
        &[
            "contract",
            "cancel",
            "cancellation",
            "locked in",
            "lock in",
            "terms",
            "trial",
        ],
    ),
    (
        "how-it-works",
        &[
            "how does it work",
            "how does this work",
            "how does that work",
            "how it works",
            "what happens",
            "process",
            "how long",
            "install",
            "installation",
            "set up",
            "setup",
        ],
    ),
];

/// Words of the customer's mood; a negation before one turns it around ("not happy").
const POSITIVE_WORDS: &[&str] = &[
    "great",
    "perfect",
    "awesome",
    "excellent",
    "wonderful",
    "fantastic",
    "amazing",
    "love",
    "glad",
    "happy",
    "appreciate",
    "helpful",
    "sounds good",
];
const NEGATIVE_WORDS: &[&str] = &[
    "annoyed",
    "annoying",
    "scam",
    "ridiculous",
    "terrible",
    "awful",
    "horrible",
    "angry",
    "frustrated",
    "upset",
    "hate",
    "rude",
    "worst",
    "waste of time",
    "sick of",
    "fed up",
    "leave me alone",
];

/// What the call's source reports about it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallFacts {
    /// The recording's length; the last segment's end stands in when unknown.
    pub duration_ms: Option<i32>,
    /// The vendor (Ringba) says the call converted.
    pub converted: bool,
    pub conversion_value: Option<f64>,
}

/// One call's lead assessment.
#[derive(Debug, Clone, PartialEq)]
pub struct LeadAssessment {
    /// Interest, 0–100: the signals' weights added up and clamped.
    pub score: u8,
    pub temperature: Temperature,
    /// Every contribution to the score: the call as a whole first (engagement, duration), then
    /// what was said in the order it was said, then the vendor's conversion.
    pub signals: Vec<Signal>,
    /// What the customer objected to, in order; labels "price", "timing", "need", "trust",
    /// "authority" (must ask a spouse or boss), "competitor", "not-interested".
    pub objections: Vec<Mention>,
    /// What the customer asked, in order; labels "price", "eligibility", "coverage",
    /// "contract", "how-it-works", "other".
    pub questions: Vec<Mention>,
    pub sentiment: Sentiment,
    pub disposition: Disposition,
    /// One to three plain sentences built from what was found.
    pub summary: String,
    /// The customer's (last) callback request; never with a do-not-call request.
    pub follow_up: Option<FollowUp>,
    /// The customer verbally agreed to buy ("sign me up"): the first time.
    pub commitment: Option<Mention>,
    /// The customer asked not to be called again: the first time.
    pub do_not_call: Option<Mention>,
}

/// One contribution to the score (stored as jsonb in `score_signals`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Signal {
    /// "engagement", "duration", "intent", "question", "objection", "not-interested",
    /// "considering", "callback", "commitment", "uncommitted" (interest without a commitment
    /// held under hot), "converted" or "do-not-call".
    pub name: String,
    pub weight: i32,
    /// A question's topic or an objection's kind.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// The words as said, or what was measured ("85 customer words").
    pub evidence: Option<String>,
    /// When it was said; `None` for the call as a whole.
    pub start_ms: Option<i32>,
}

/// Something the customer said (stored as jsonb in `objections` and `questions`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Mention {
    pub label: String,
    /// The words as said, card and social security numbers cut to their last four digits.
    pub text: String,
    pub start_ms: i32,
    pub end_ms: i32,
}

/// When the customer asked to be called back.
#[derive(Debug, Clone, PartialEq)]
pub struct FollowUp {
    /// In the timezone the call's start was given in.
    pub due: DateTime<Tz>,
    /// The request as said ("call me back tomorrow at ten").
    pub source_text: String,
    pub start_ms: i32,
    /// Whether the customer said a time (or a delay); `false`: a default was picked (10:00, the
    /// next business day, the middle of the part of the day said).
    pub explicit_time: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Temperature {
    Hot,
    Warm,
    Cold,
}

impl Temperature {
    pub fn of(score: u8) -> Temperature {
        if score >= HOT_MIN {
            Temperature::Hot
        } else if score >= WARM_MIN {
            Temperature::Warm
        } else {
            Temperature::Cold
        }
    }

    /// As `crm.lead_temperature`.
    pub fn as_str(self) -> &'static str {
        match self {
            Temperature::Hot => "hot",
            Temperature::Warm => "warm",
            Temperature::Cold => "cold",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sentiment {
    Positive,
    Neutral,
    Negative,
}

impl Sentiment {
    pub fn as_str(self) -> &'static str {
        match self {
            Sentiment::Positive => "positive",
            Sentiment::Neutral => "neutral",
            Sentiment::Negative => "negative",
        }
    }
}

/// How the call ended for the lead, the first that applies in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Disposition {
    /// The customer asked not to be called again.
    DoNotCall,
    /// The vendor reports a conversion or the customer committed.
    Sale,
    /// The customer said (next to) nothing.
    NoConversation,
    /// The customer asked to be called back.
    CallbackRequested,
    /// The customer said they were not interested, or showed too little interest to be warm
    /// without saying anything like "I'm interested".
    NotInterested,
    Interested,
}

impl Disposition {
    pub fn as_str(self) -> &'static str {
        match self {
            Disposition::DoNotCall => "do-not-call",
            Disposition::Sale => "sale",
            Disposition::NoConversation => "no-conversation",
            Disposition::CallbackRequested => "callback-requested",
            Disposition::NotInterested => "not-interested",
            Disposition::Interested => "interested",
        }
    }
}

/// The lead assessment of a call's segments; `started_at` is when the call started, in the
/// organization's timezone (callback times are read and returned in it).
pub fn assess(
    segments: &[SegmentRecord],
    facts: &CallFacts,
    started_at: DateTime<Tz>,
) -> LeadAssessment {
    let t = Transcript::new(segments);
    let heard = Heard::read(&t, started_at);
    let duration_ms = facts
        .duration_ms
        .unwrap_or_else(|| segments.iter().map(|s| s.end_ms).max().unwrap_or(0));
    let mut spoken = heard.spoken_signals();
    // No conversation: too few words, and nothing in them that counts for or against interest.
    let conversation = heard.word_count >= MIN_CONVERSATION_WORDS
        || spoken.iter().any(|(_, s)| s.name != DO_NOT_CALL);
    if !conversation {
        spoken.retain(|(_, s)| s.name == DO_NOT_CALL);
    }
    spoken.sort_by_key(|&(at, _)| at);

    let mut signals = Vec::new();
    if conversation {
        signals.extend(heard.call_signals(duration_ms));
    }
    signals.extend(spoken.into_iter().map(|(_, s)| s));
    // The signals weighed by the others, now in place with no weight yet: a sale lifts the score
    // to the floor, a do-not-call request cancels it.
    let total = |signals: &[Signal]| signals.iter().map(|s| s.weight).sum::<i32>();
    let refused = signals.iter().any(|s| s.name == NOT_INTERESTED);
    if !refused {
        if let Some(i) = signals
            .iter()
            .position(|s| INTEREST.contains(&s.name.as_str()))
        {
            signals[i].weight = signals[i]
                .weight
                .max(INTEREST_FLOOR - total(&signals) + signals[i].weight);
        }
    }
    if let Some(i) = signals.iter().position(|s| s.name == COMMITMENT) {
        signals[i].weight = COMMITMENT_WEIGHT.max(SALE_FLOOR - total(&signals));
    }
    if !facts.converted && !signals.iter().any(|s| s.name == COMMITMENT) {
        let over = total(&signals) - (i32::from(HOT_MIN) - 1);
        if over > 0 {
            signals.push(Signal {
                name: UNCOMMITTED.to_owned(),
                weight: -over,
                label: None,
                evidence: Some("no commitment: warm at most".to_owned()),
                start_ms: None,
            });
        }
    }
    if facts.converted {
        let evidence = match facts.conversion_value {
            Some(value) => format!("the vendor reports a conversion worth {value:.2}"),
            None => "the vendor reports a conversion".to_owned(),
        };
        signals.push(Signal {
            name: "converted".to_owned(),
            weight: CONVERTED_WEIGHT.max(SALE_FLOOR - total(&signals)),
            label: None,
            evidence: Some(evidence),
            start_ms: None,
        });
    }
    if let Some(i) = signals.iter().position(|s| s.name == DO_NOT_CALL) {
        signals[i].weight = -total(&signals).max(0);
    }
    let score = u8::try_from(total(&signals).clamp(0, 100)).expect("clamped to 0..=100");
    let temperature = Temperature::of(score);

    let do_not_call = heard.do_not_call.map(|(_, m)| m);
    let commitment = heard.commitment.map(|(_, m)| m);
    let intent = !heard.intents.is_empty();
    let not_interested = heard
        .objections
        .iter()
        .any(|(_, m)| m.label == NOT_INTERESTED);
    let disposition = if do_not_call.is_some() {
        Disposition::DoNotCall
    } else if commitment.is_some() || facts.converted {
        Disposition::Sale
    } else if !conversation {
        Disposition::NoConversation
    } else if heard.callback.is_some() {
        Disposition::CallbackRequested
    } else if not_interested {
        Disposition::NotInterested
    } else if intent || temperature != Temperature::Cold {
        Disposition::Interested
    } else {
        Disposition::NotInterested
    };
    let sentiment = if do_not_call.is_some() || heard.negative > heard.positive {
        Sentiment::Negative
    } else if heard.positive > heard.negative {
        Sentiment::Positive
    } else {
        Sentiment::Neutral
    };
    // Never schedule a call to someone who asked not to be called.
    let follow_up = heard
        .callback
        .filter(|_| do_not_call.is_none())
        .map(|(_, f)| f);
    let objections: Vec<Mention> = heard.objections.into_iter().map(|(_, m)| m).collect();
    let questions: Vec<Mention> = heard.questions.into_iter().map(|(_, m)| m).collect();
    let summary = Summary {
        word_count: heard.word_count,
        conversation,
        do_not_call: do_not_call.is_some(),
        intent,
        committed: commitment.is_some(),
        questions: &questions,
        objections: &objections,
        follow_up: follow_up.as_ref(),
        facts,
    }
    .write();
    LeadAssessment {
        score,
        temperature,
        signals,
        objections,
        questions,
        sentiment,
        disposition,
        summary,
        follow_up,
        commitment,
        do_not_call,
    }
}

/// Where something was said, to put what was said in one segment in order: the segment's start,
/// then the word's place in its utterance.
type Key = (i32, usize);

/// Mentions of one kind less than a moment ([`crate::rules::MOMENT_GAP_MS`]) apart are one: "No
/// thanks, I'm not interested" is one objection, as one finding is one flag. `mentions` are in
/// time order.
fn one_per_moment(mentions: Vec<(Key, Mention)>) -> Vec<(Key, Mention)> {
    let mut kept: Vec<(Key, Mention)> = Vec::new();
    for (key, mention) in mentions {
        let repeat = kept.iter().any(|(_, earlier)| {
            earlier.label == mention.label
                && mention.start_ms - earlier.end_ms < crate::rules::MOMENT_GAP_MS
        });
        if !repeat {
            kept.push((key, mention));
        }
    }
    kept
}

/// What the customer said that the assessment reads, each with its [`Key`], in order.
struct Heard {
    word_count: usize,
    /// Whether the words are the customer's alone (roles known) or everyone's.
    customer_only: bool,
    intents: Vec<(Key, Mention)>,
    questions: Vec<(Key, Mention)>,
    objections: Vec<(Key, Mention)>,
    callback: Option<(Key, FollowUp)>,
    considering: Vec<(Key, Mention)>,
    commitment: Option<(Key, Mention)>,
    do_not_call: Option<(Key, Mention)>,
    positive: usize,
    negative: usize,
}

impl Heard {
    fn read(t: &Transcript<'_>, started_at: DateTime<Tz>) -> Heard {
        let customer: Vec<usize> = (0..t.utterances.len())
            .filter(|&u| t.said_by(&t.utterances[u], Some(SpeakerRole::Customer)))
            .collect();
        let find = |phrases: &[Phrase], negatable: bool| -> Vec<(Key, Mention)> {
            let mut out: Vec<(Key, Mention)> = customer
                .iter()
                .flat_map(|&u| {
                    hits(phrases, &t.utterances[u].words, negatable)
                        .into_iter()
                        .map(move |(phrase, words)| mention(t, u, words, phrase.label))
                })
                .collect();
            out.sort_by_key(|&(at, _)| at);
            out
        };
        let labelled = |label: &'static str, texts: &[&str]| -> Vec<Phrase> {
            texts.iter().map(|text| Phrase::new(label, text)).collect()
        };

        let mut objection_phrases = labelled(NOT_INTERESTED, NOT_INTERESTED_PHRASES);
        for (label, texts) in OBJECTIONS {
            objection_phrases.extend(labelled(label, texts));
        }
        for ask in AUTHORITY_ASK {
            for who in AUTHORITY_WHO {
                objection_phrases.push(Phrase::new("authority", &format!("{ask} {who}")));
            }
        }

        let mut positive = 0;
        let mut negative = 0;
        for (phrases, good) in [
            (labelled("positive", POSITIVE_WORDS), true),
            (labelled("negative", NEGATIVE_WORDS), false),
        ] {
            for &u in &customer {
                let words = &t.utterances[u].words;
                for (_, found) in hits(&phrases, words, false) {
                    if good != negated(words, found.start) {
                        positive += 1;
                    } else {
                        negative += 1;
                    }
                }
            }
        }

        let callback = customer
            .iter()
            .flat_map(|&u| {
                let words = &t.utterances[u].words;
                let spoken_at = |k: usize| {
                    let start_ms = t.segments[words[k].segment].start_ms;
                    started_at + Duration::milliseconds(i64::from(start_ms))
                };
                followup::requests(words, spoken_at)
                    .into_iter()
                    .map(move |request| {
                        let (start_ms, _) = t.times(u, request.words.clone());
                        let key = (start_ms, request.words.start);
                        let follow_up = FollowUp {
                            due: request.due,
                            source_text: t.evidence(u, request.words),
                            start_ms,
                            explicit_time: request.explicit_time,
                        };
                        (key, follow_up)
                    })
            })
            .max_by_key(|&(at, _)| at);

        Heard {
            word_count: customer.iter().map(|&u| t.utterances[u].words.len()).sum(),
            customer_only: t.roles_known,
            intents: find(&labelled("intent", INTENT_PHRASES), true),
            questions: questions(t, &customer),
            objections: one_per_moment(find(&objection_phrases, true)),
            callback,
            considering: find(&labelled(CONSIDERING, CONSIDERING_PHRASES), true),
            commitment: find(&commitments(), true)
                .into_iter()
                .chain(card_read_out(t, &customer))
                .min_by_key(|&(at, _)| at),
            do_not_call: find(&labelled(DO_NOT_CALL, DO_NOT_CALL_PHRASES), false)
                .into_iter()
                .next(),
            positive,
            negative,
        }
    }

    /// Engagement and duration: the call as a whole.
    fn call_signals(&self, duration_ms: i32) -> Vec<Signal> {
        let whose = if self.customer_only { "customer " } else { "" };
        let engagement = ENGAGEMENT_BASE
            + i32::try_from(self.word_count / ENGAGEMENT_WORDS_PER_POINT).unwrap_or(i32::MAX);
        let mut out = vec![Signal {
            name: "engagement".to_owned(),
            weight: engagement.min(ENGAGEMENT_MAX),
            label: None,
            evidence: Some(format!("{} {whose}words", self.word_count)),
            start_ms: None,
        }];
        if let Some(&(_, weight)) = DURATION_TIERS.iter().find(|(ms, _)| duration_ms >= *ms) {
            out.push(Signal {
                name: "duration".to_owned(),
                weight,
                label: None,
                evidence: Some(format!(
                    "the call lasted {} min {} s",
                    duration_ms / 60_000,
                    duration_ms % 60_000 / 1000
                )),
                start_ms: None,
            });
        }
        out
    }

    /// The signals of what was said, in no particular order; a commitment and a do-not-call
    /// request with no weight yet (they weigh what the rest adds up to).
    fn spoken_signals(&self) -> Vec<(Key, Signal)> {
        let signal =
            |name: &str, weight: i32, label: Option<&str>, &(at, ref m): &(Key, Mention)| {
                let signal = Signal {
                    name: name.to_owned(),
                    weight,
                    label: label.map(str::to_owned),
                    evidence: Some(m.text.clone()),
                    start_ms: Some(m.start_ms),
                };
                (at, signal)
            };
        let mut out: Vec<(Key, Signal)> = self
            .intents
            .iter()
            .take(INTENT_COUNTED)
            .map(|m| signal("intent", INTENT_WEIGHT, None, m))
            .collect();
        let topical = self
            .questions
            .iter()
            .filter(|(_, q)| q.label != OTHER_QUESTION);
        out.extend(
            first_per_label(topical)
                .take(QUESTIONS_COUNTED)
                .map(|m| signal("question", QUESTION_WEIGHT, Some(&m.1.label), m)),
        );
        let (refusals, objections): (Vec<_>, Vec<_>) = self
            .objections
            .iter()
            .partition(|(_, m)| m.label == NOT_INTERESTED);
        out.extend(
            first_per_label(objections.into_iter())
                .take(OBJECTIONS_COUNTED)
                .map(|m| signal("objection", OBJECTION_WEIGHT, Some(&m.1.label), m)),
        );
        out.extend(
            refusals
                .first()
                .map(|m| signal(NOT_INTERESTED, NOT_INTERESTED_WEIGHT, None, m)),
        );
        out.extend(
            self.considering
                .first()
                .map(|m| signal(CONSIDERING, CONSIDERING_WEIGHT, None, m)),
        );
        out.extend(self.callback.as_ref().map(|(at, f)| {
            let signal = Signal {
                name: "callback".to_owned(),
                weight: CALLBACK_WEIGHT,
                label: None,
                evidence: Some(f.source_text.clone()),
                start_ms: Some(f.start_ms),
            };
            (*at, signal)
        }));
        out.extend(
            self.commitment
                .as_ref()
                .map(|m| signal(COMMITMENT, 0, None, m)),
        );
        out.extend(
            self.do_not_call
                .as_ref()
                .map(|m| signal(DO_NOT_CALL, 0, None, m)),
        );
        out
    }
}

/// Signals of interest that lift a call to warm ([`INTEREST_FLOOR`]); a question only when
/// about the offer (only those are signals).
const INTEREST: &[&str] = &["intent", "question", "callback", CONSIDERING];

/// Every way [`COMMITMENT_PHRASES`], [`COMMIT_LEADS`] and [`COMMIT_ACTIONS`] say a commitment.
fn commitments() -> Vec<Phrase> {
    let mut phrases: Vec<Phrase> = COMMITMENT_PHRASES
        .iter()
        .map(|text| Phrase::new(COMMITMENT, text))
        .collect();
    for lead in COMMIT_LEADS {
        for action in COMMIT_ACTIONS {
            phrases.push(Phrase::new(COMMITMENT, &format!("{lead} {action}")));
        }
    }
    phrases
}

/// A card number read out by the customer (anyone, roles unknown): payment details given.
fn card_read_out(t: &Transcript<'_>, customer: &[usize]) -> Option<(Key, Mention)> {
    t.sensitive
        .iter()
        .find(|s| s.kind == NumberKind::PaymentCard && customer.contains(&s.utterance))
        .map(|s| mention(t, s.utterance, s.words.clone(), COMMITMENT))
}

/// The first mention of each label, in order.
fn first_per_label<'m>(
    mentions: impl Iterator<Item = &'m (Key, Mention)>,
) -> impl Iterator<Item = &'m (Key, Mention)> {
    let mut seen: Vec<&str> = Vec::new();
    mentions.filter(move |(_, m)| {
        let new = !seen.contains(&m.label.as_str());
        if new {
            seen.push(&m.label);
        }
        new
    })
}

fn mention(
    t: &Transcript<'_>,
    utterance: usize,
    words: Range<usize>,
    label: &str,
) -> (Key, Mention) {
    let (start_ms, end_ms) = t.times(utterance, words.clone());
    let key = (start_ms, words.start);
    let mention = Mention {
        label: label.to_owned(),
        text: t.evidence(utterance, words),
        start_ms,
        end_ms,
    };
    (key, mention)
}

/// The questions in `utterances`: sentences ending in "?" or opening like a question, labelled
/// by topic.
fn questions(t: &Transcript<'_>, utterances: &[usize]) -> Vec<(Key, Mention)> {
    let topics: Vec<Vec<Phrase>> = QUESTION_TOPICS
        .iter()
        .map(|(label, texts)| texts.iter().map(|text| Phrase::new(label, text)).collect())
        .collect();
    let openers: Vec<Vec<String>> = QUESTION_OPENERS
        .iter()
        .map(|o| normalize::phrase(o))
        .collect();
    let mut out = Vec::new();
    for &u in utterances {
        let words = &t.utterances[u].words;
        for (sentence, question_mark) in sentences(t, u) {
            let spoken = &words[sentence.clone()];
            let opening = spoken
                .iter()
                .position(|w| !QUESTION_LEAD_INS.contains(&w.as_ref()))
                .unwrap_or(spoken.len());
            let opens_question = openers.iter().any(|opener| {
                spoken[opening..]
                    .iter()
                    .map(|w| w.as_ref())
                    .take(opener.len())
                    .eq(opener.iter().map(String::as_str))
            });
            if !(question_mark || opens_question) {
                continue;
            }
            let label = topics
                .iter()
                .find(|topic| !hits(topic, spoken, false).is_empty())
                .map_or(OTHER_QUESTION, |topic| topic[0].label);
            out.push(mention(t, u, sentence, label));
        }
    }
    out.sort_by_key(|&(at, _)| at);
    out
}

/// The sentences of an utterance (word ranges), each with whether it ends in a question mark:
/// punctuation between words (or after a segment's last word) ends one.
fn sentences(t: &Transcript<'_>, u: usize) -> Vec<(Range<usize>, bool)> {
    let words = &t.utterances[u].words;
    let mut out = Vec::new();
    let mut start = 0;
    for (k, w) in words.iter().enumerate() {
        let text = &t.segments[w.segment].text;
        let until = match words.get(k + 1) {
            Some(next) if next.segment == w.segment => next.word.span.start,
            _ => text.len(),
        };
        // The words of a contraction share their span: nothing between them.
        let between = text.get(w.word.span.end..until).unwrap_or("");
        if between.contains(['.', '?', '!']) || k + 1 == words.len() {
            out.push((start..k + 1, between.contains('?')));
            start = k + 1;
        }
    }
    out
}

/// What the summary is written from.
struct Summary<'a> {
    word_count: usize,
    conversation: bool,
    do_not_call: bool,
    intent: bool,
    committed: bool,
    questions: &'a [Mention],
    objections: &'a [Mention],
    follow_up: Option<&'a FollowUp>,
    facts: &'a CallFacts,
}

impl Summary<'_> {
    /// What the customer asked, wanted and objected to; the callback; the vendor's conversion.
    fn write(&self) -> String {
        let mut sentences = Vec::new();
        if self.do_not_call {
            sentences.push("Customer asked not to be called again.".to_owned());
        } else if !self.conversation {
            let s = if self.word_count == 1 { "" } else { "s" };
            sentences.push(format!(
                "No conversation: the customer said {} word{s}.",
                self.word_count
            ));
        } else {
            sentences.push(format!("Customer {}.", self.clauses().join("; ")));
            if let Some(f) = self.follow_up {
                let when = f.due.format("%a %-d %b at %H:%M");
                sentences.push(if f.explicit_time {
                    format!("Asked to be called back on {when}.")
                } else {
                    format!("Asked to be called back; no time given, set for {when}.")
                });
            }
        }
        if self.facts.converted {
            sentences.push(match self.facts.conversion_value {
                Some(value) => format!("The vendor reports a conversion worth {value:.2}."),
                None => "The vendor reports a conversion.".to_owned(),
            });
        }
        sentences.join(" ")
    }

    fn clauses(&self) -> Vec<String> {
        // Each label once, in the order first said, as words ("how it works").
        let labels = |mentions: &[Mention], skip: &str| -> Vec<String> {
            let mut out: Vec<String> = Vec::new();
            for m in mentions.iter().filter(|m| m.label != skip) {
                let label = m.label.replace('-', " ");
                if !out.contains(&label) {
                    out.push(label);
                }
            }
            out
        };
        let mut clauses = Vec::new();
        let asked = labels(self.questions, OTHER_QUESTION);
        if !asked.is_empty() {
            clauses.push(format!("asked about {}", and_list(&asked)));
        }
        if self.intent && !self.committed {
            clauses.push("showed interest".to_owned());
        }
        let objected = labels(self.objections, NOT_INTERESTED);
        if !objected.is_empty() {
            clauses.push(format!("objected on {}", and_list(&objected)));
        }
        if self.objections.iter().any(|m| m.label == NOT_INTERESTED) {
            clauses.push("said they were not interested".to_owned());
        }
        if self.committed {
            clauses.push("agreed to buy".to_owned());
        }
        if clauses.is_empty() {
            clauses.push("showed no clear interest or objection".to_owned());
        }
        clauses
    }
}

/// "a", "a and b", "a, b and c".
fn and_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// A phrase as the matcher reads it, and what finding it means.
pub(crate) struct Phrase {
    pub label: &'static str,
    words: Vec<String>,
    fuzziness: f64,
}

impl Phrase {
    pub(crate) fn new(label: &'static str, text: &str) -> Phrase {
        let words = normalize::phrase(text);
        // A lone word has no room for a misheard letter that is not another word ("rate" is a
        // letter from "great"); in a phrase the other words vouch for it, up to a budget of less
        // than one whole word.
        let fuzziness = if words.len() > 1 {
            DEFAULT_FUZZINESS.min(MAX_PHRASE_ERRORS / words.len() as f64)
        } else {
            0.0
        };
        Phrase {
            label,
            words,
            fuzziness,
        }
    }
}

/// Where `phrases` are said in `words`, in order, each stretch of words once (the phrase listed
/// first claims it); with `negatable`, not where a negation comes just before ("not too
/// expensive").
pub(crate) fn hits<'p, W: AsRef<str>>(
    phrases: &'p [Phrase],
    words: &[W],
    negatable: bool,
) -> Vec<(&'p Phrase, Range<usize>)> {
    let mut found: Vec<(&Phrase, Range<usize>)> = Vec::new();
    for phrase in phrases {
        for range in find_all(&phrase.words, words, phrase.fuzziness) {
            let taken = found
                .iter()
                .any(|(_, f)| f.start < range.end && range.start < f.end);
            let turned = negatable && negated(words, range.start);
            if !taken && !turned {
                found.push((phrase, range));
            }
        }
    }
    found.sort_by_key(|(_, r)| r.start);
    found
}

/// Whether a negation stands just before `words[start]`.
fn negated<W: AsRef<str>>(words: &[W], start: usize) -> bool {
    words[start.saturating_sub(NEGATION_REACH)..start]
        .iter()
        .any(|w| NEGATIONS.contains(&w.as_ref()))
}

#[cfg(test)]
mod tests;
