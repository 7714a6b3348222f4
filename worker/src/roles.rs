//! Which speaker is the agent and which the customer, and how sure that is.
//!
//! A stereo recording's channel map (per campaign or source: LiveKit's dual-channel egress puts
//! the agent on the left) decides outright. Otherwise, and for mono calls, roles are read from
//! what each speaker says: agents greet, give the recording disclosure, say their name and
//! company, ask for details and the card number, offer and ask sales questions
//! ([`AGENT_PHRASES`], or the campaign's own script lines); customers answer, ask prices, object,
//! give their details ([`CUSTOMER_PHRASES`]). A speaker's evidence is how many of their segments
//! say an agent's phrase less how many say a customer's; the agent is the speaker with the most. Phrases are matched on normalized
//! words and tolerate one word of ASR error, so "this call may be recorded" still counts when
//! heard as "this call might be recorded". Opening the call breaks a tie (agents usually speak
//! first), with a confidence that sends the call to review.
//!
//! The confidence is `1 - 1 / (2 (1 + lead))`, `lead` being how much more agent evidence the
//! agent has than the next speaker: 0.5 on a tie (a guess), 0.75 one segment ahead, 0.83 two. One
//! speaker saying both parties' lines is two voices not separated: 0.3.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::transcript::Transcript;
use crate::wer::{align, normalize};

/// A party of the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Agent,
    Customer,
}

/// What agents say: greetings, disclosures, introductions, offers of help, asking for details
/// and payment, sales questions.
pub const AGENT_PHRASES: &[&str] = &[
    "thank you for calling",
    "thanks for calling",
    "this call may be recorded",
    "this call is being recorded",
    "this call is recorded",
    "recorded for quality",
    "for quality and training purposes",
    "my name is",
    "how can i help you",
    "how may i help you",
    "how can i assist you",
    "what can i do for you",
    "i'm calling from",
    "i am calling from",
    "i'm calling about",
    "calling on behalf of",
    "can i have your",
    "may i have your",
    "the card number",
    "your card number",
    "expiration date",
    "expiry date",
    "how would you like to pay",
    "are you interested",
    "do you have a minute",
    "would you like to",
    "our plan",
    "is there anything else i can help",
    "have a great day",
];

/// What customers say: interest, questions about the price, objections, refusals, their own
/// details.
pub const CUSTOMER_PHRASES: &[&str] = &[
    "i'm interested",
    "i'm not interested",
    "not interested",
    "how much",
    "call me back",
    "stop calling",
    "take me off",
    "sign me up",
    // Not "my card number": one word from the agent's "your card number", it made the agent
    // who asks for the card sound like a customer too.
    "my number is",
    "my address is",
    "i'd like to",
    "i want to",
    "who is this",
    "how did you get my number",
    "wrong number",
    "i already have",
    "too expensive",
    "let me think",
];

/// The confidence of roles where one voice says both parties' lines.
const UNSEPARATED_CONFIDENCE: f64 = 0.3;

/// How roles are decided.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RoleOptions {
    /// The agent's channel of a multi-channel recording (the channel map), from 0.
    pub agent_channel: Option<usize>,
    /// Lines of the campaign's agent script, matched on top of [`AGENT_PHRASES`].
    pub script: Vec<String>,
}

/// How many of a speaker's segments say what agents say and what customers say, and when they
/// first spoke.
struct Evidence {
    agent: usize,
    customer: usize,
    first: f64,
    channel: usize,
}

impl Evidence {
    fn lead(&self) -> i64 {
        self.agent as i64 - self.customer as i64
    }
}

/// Each speaker of `transcript` (segments' `speaker`) with its role, and the confidence of that
/// (0–1; 1 from the channel map); empty and `None` when the transcript was not diarized.
pub fn assign_roles(
    transcript: &Transcript,
    options: &RoleOptions,
) -> (BTreeMap<String, Role>, Option<f64>) {
    let phrases = |listed: &[&str], extra: &[String]| -> Vec<Vec<String>> {
        listed
            .iter()
            .map(|p| p.to_string())
            .chain(extra.iter().cloned())
            .map(|p| normalize(&p))
            .filter(|words| !words.is_empty())
            .collect()
    };
    let agent_phrases = phrases(AGENT_PHRASES, &options.script);
    let customer_phrases = phrases(CUSTOMER_PHRASES, &[]);
    let mut speakers: BTreeMap<String, Evidence> = BTreeMap::new();
    for channel in &transcript.channels {
        for segment in &channel.segments {
            let Some(speaker) = &segment.speaker else {
                continue;
            };
            let evidence = speakers.entry(speaker.clone()).or_insert(Evidence {
                agent: 0,
                customer: 0,
                first: f64::INFINITY,
                channel: channel.channel,
            });
            let words = normalize(&segment.text);
            let said = |list: &[Vec<String>]| list.iter().any(|p| contains_phrase(&words, p));
            evidence.agent += usize::from(said(&agent_phrases));
            evidence.customer += usize::from(said(&customer_phrases));
            evidence.first = evidence.first.min(segment.start);
        }
    }
    let mapped = match options.agent_channel {
        Some(channel) if transcript.channels.len() > 1 => Some(
            speakers
                .iter()
                .find(|(_, e)| e.channel == channel)
                .map(|(speaker, _)| speaker.clone()),
        ),
        _ => None,
    };
    let (agent, confidence) = match mapped {
        Some(agent) => (agent, Some(1.0)),
        None => {
            // Most agent evidence, then the earliest to speak.
            let mut ranked: Vec<(&String, &Evidence)> = speakers.iter().collect();
            ranked.sort_by(|a, b| {
                b.1.lead()
                    .cmp(&a.1.lead())
                    .then_with(|| a.1.first.total_cmp(&b.1.first))
            });
            let confidence = match ranked.as_slice() {
                [] => None,
                [(_, only)] if only.agent > 0 && only.customer > 0 => Some(UNSEPARATED_CONFIDENCE),
                [(_, only)] => Some(from_lead(only.agent as i64)),
                [(_, first), (_, second), ..] => Some(from_lead(first.lead() - second.lead())),
            };
            (ranked.first().map(|(s, _)| (*s).clone()), confidence)
        }
    };
    let roles = speakers
        .into_keys()
        .map(|speaker| {
            let role = if Some(&speaker) == agent.as_ref() {
                Role::Agent
            } else {
                Role::Customer
            };
            (speaker, role)
        })
        .collect();
    (roles, confidence)
}

/// The confidence of a role decided by `lead` phrases of evidence.
fn from_lead(lead: i64) -> f64 {
    1.0 - 1.0 / (2.0 * (1.0 + lead.max(0) as f64))
}

/// Whether `phrase` occurs in `words` within one word edit (a word misheard, dropped or
/// inserted), for phrases of three words or more; shorter phrases must match exactly.
fn contains_phrase(words: &[String], phrase: &[String]) -> bool {
    let allowed = usize::from(phrase.len() >= 3);
    let shortest = phrase.len().saturating_sub(allowed).max(1);
    (shortest..=phrase.len() + allowed)
        .filter(|&len| len <= words.len())
        .any(|len| {
            words
                .windows(len)
                .any(|window| align(phrase, window).errors() <= allowed)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transcript::{ChannelTranscript, Segment};

    fn segment(start: f64, text: &str, speaker: &str) -> Segment {
        Segment {
            start,
            end: start + 1.0,
            text: text.to_owned(),
            tokens: Vec::new(),
            avg_logprob: -0.2,
            no_speech_prob: 0.01,
            compression_ratio: 1.2,
            temperature: 0.0,
            speaker: Some(speaker.to_owned()),
        }
    }

    fn mono(segments: Vec<Segment>) -> Transcript {
        Transcript {
            roles: BTreeMap::new(),
            role_confidence: None,
            source: "call.wav".to_owned(),
            duration: 60.0,
            channels: vec![ChannelTranscript {
                channel: 0,
                language: "en".to_owned(),
                segments,
            }],
        }
    }

    #[test]
    fn the_speaker_of_the_greeting_and_disclosure_is_the_agent() {
        // The customer speaks first ("Hello?"), the agent answers with the script.
        let transcript = mono(vec![
            segment(0.0, " Hello?", "SPEAKER_01"),
            segment(
                1.0,
                " Hi, my name is Dana, I'm calling from Acme Solar.",
                "SPEAKER_00",
            ),
            segment(4.0, " This call may be recorded for quality.", "SPEAKER_00"),
            segment(6.0, " Okay, what is this about?", "SPEAKER_01"),
        ]);
        let (roles, confidence) = assign_roles(&transcript, &RoleOptions::default());
        assert_eq!(roles["SPEAKER_00"], Role::Agent);
        assert_eq!(roles["SPEAKER_01"], Role::Customer);
        // Two agent segments against none: sure.
        assert_eq!(confidence, Some(1.0 - 1.0 / 6.0));
    }

    #[test]
    fn the_one_who_asks_for_the_card_is_the_agent_even_when_the_customer_opens() {
        let transcript = mono(vec![
            segment(0.0, " Hi, I want to buy the premium plan.", "SPEAKER_01"),
            segment(2.0, " Sure. Can I have your card number?", "SPEAKER_00"),
            segment(4.0, " It's four one one one.", "SPEAKER_01"),
        ]);
        let (roles, confidence) = assign_roles(&transcript, &RoleOptions::default());
        assert_eq!(roles["SPEAKER_00"], Role::Agent);
        assert_eq!(roles["SPEAKER_01"], Role::Customer);
        // Ahead by at least one segment of evidence: sure enough that nobody needs to review it.
        assert!(confidence.is_some_and(|c| c >= 0.75), "{confidence:?}");
    }

    #[test]
    fn a_guess_or_one_voice_saying_both_parts_has_low_confidence() {
        // No phrase from anyone: the first to speak, a guess.
        let transcript = mono(vec![
            segment(0.5, " Yes.", "SPEAKER_01"),
            segment(0.0, " Hello there.", "SPEAKER_00"),
        ]);
        let (roles, confidence) = assign_roles(&transcript, &RoleOptions::default());
        assert_eq!(roles["SPEAKER_00"], Role::Agent);
        assert_eq!(confidence, Some(0.5));
        // Diarization found one speaker, who gives the disclosure and asks how much it costs.
        let transcript = mono(vec![
            segment(0.0, " This call may be recorded.", "SPEAKER_00"),
            segment(2.0, " How much is it?", "SPEAKER_00"),
        ]);
        let (_, confidence) = assign_roles(&transcript, &RoleOptions::default());
        assert_eq!(confidence, Some(UNSEPARATED_CONFIDENCE));
    }

    #[test]
    fn asr_errors_in_a_phrase_still_count() {
        // "this call might be recorded": one word off.
        let transcript = mono(vec![
            segment(0.0, " Good morning.", "SPEAKER_01"),
            segment(2.0, " This call might be recorded.", "SPEAKER_00"),
        ]);
        let (roles, _) = assign_roles(&transcript, &RoleOptions::default());
        assert_eq!(roles["SPEAKER_00"], Role::Agent);
    }

    #[test]
    fn the_channel_map_and_the_campaign_script_override() {
        let mut transcript = mono(vec![segment(0.0, " Thanks for calling.", "SPEAKER_00")]);
        transcript.channels.push(ChannelTranscript {
            channel: 1,
            language: "en".to_owned(),
            segments: vec![segment(1.0, " Hi.", "SPEAKER_01")],
        });
        let (by_map, confidence) = assign_roles(
            &transcript,
            &RoleOptions {
                agent_channel: Some(1),
                ..RoleOptions::default()
            },
        );
        assert_eq!(by_map["SPEAKER_01"], Role::Agent);
        assert_eq!(by_map["SPEAKER_00"], Role::Customer);
        assert_eq!(confidence, Some(1.0));

        let transcript = mono(vec![
            segment(0.0, " Hello?", "SPEAKER_00"),
            segment(1.0, " Are you the homeowner at this address?", "SPEAKER_01"),
        ]);
        let (by_script, _) = assign_roles(
            &transcript,
            &RoleOptions {
                script: vec!["are you the homeowner".to_owned()],
                ..RoleOptions::default()
            },
        );
        assert_eq!(by_script["SPEAKER_01"], Role::Agent);
    }

    #[test]
    fn undiarized_transcripts_have_no_roles() {
        let mut transcript = mono(vec![segment(0.0, " Thanks for calling.", "x")]);
        transcript.channels[0].segments[0].speaker = None;
        assert_eq!(
            assign_roles(&transcript, &RoleOptions::default()),
            (BTreeMap::new(), None)
        );
    }
}
