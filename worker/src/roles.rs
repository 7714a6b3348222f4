//! Which speaker is the agent and which the customer.
//!
//! A stereo recording's channel map (per campaign or source: LiveKit's dual-channel egress puts
//! the agent on the left) decides outright. Otherwise, and for mono calls, the agent is the
//! speaker who says what agents say: the greeting, the recording disclosure, their name and
//! company, the offer of help ([`AGENT_PHRASES`], or the campaign's own script lines). Phrases
//! are matched on normalized words and tolerate one word of ASR error, so "this call may be
//! recorded" still counts when heard as "this call might be recorded". Opening the call breaks a
//! tie: agents usually speak first on outbound and inbound calls alike.

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

/// What agents say in most calls: greetings, disclosures, introductions, offers of help.
pub const AGENT_PHRASES: &[&str] = &[
    "thank you for calling",
    "thanks for calling",
    "this call may be recorded",
    "this call is being recorded",
    "recorded for quality",
    "for quality and training purposes",
    "my name is",
    "how can i help you",
    "how may i help you",
    "how can i assist you",
    "i'm calling from",
    "i am calling from",
    "calling on behalf of",
    "is there anything else i can help",
];

/// How roles are decided.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RoleOptions {
    /// The agent's channel of a multi-channel recording (the channel map), from 0.
    pub agent_channel: Option<usize>,
    /// Lines of the campaign's agent script, matched on top of [`AGENT_PHRASES`].
    pub script: Vec<String>,
}

/// Each speaker of `transcript` (segments' `speaker`) with its role; empty when the transcript
/// was not diarized.
pub fn assign_roles(transcript: &Transcript, options: &RoleOptions) -> BTreeMap<String, Role> {
    let mut speakers: BTreeMap<String, (usize, f64, usize)> = BTreeMap::new();
    let phrases: Vec<Vec<String>> = AGENT_PHRASES
        .iter()
        .map(|p| p.to_string())
        .chain(options.script.iter().cloned())
        .map(|p| normalize(&p))
        .filter(|words| !words.is_empty())
        .collect();
    for channel in &transcript.channels {
        for segment in &channel.segments {
            let Some(speaker) = &segment.speaker else {
                continue;
            };
            let entry =
                speakers
                    .entry(speaker.clone())
                    .or_insert((0, f64::INFINITY, channel.channel));
            let words = normalize(&segment.text);
            entry.0 += phrases
                .iter()
                .filter(|p| contains_phrase(&words, p))
                .count();
            entry.1 = entry.1.min(segment.start);
        }
    }
    let agent = match options.agent_channel {
        Some(channel) if transcript.channels.len() > 1 => speakers
            .iter()
            .find(|(_, &(_, _, c))| c == channel)
            .map(|(speaker, _)| speaker.clone()),
        _ => speakers
            .iter()
            .max_by(|a, b| {
                // Most agent phrases, then the earliest to speak.
                (a.1 .0)
                    .cmp(&b.1 .0)
                    .then_with(|| b.1 .1.total_cmp(&a.1 .1))
            })
            .map(|(speaker, _)| speaker.clone()),
    };
    speakers
        .into_keys()
        .map(|speaker| {
            let role = if Some(&speaker) == agent.as_ref() {
                Role::Agent
            } else {
                Role::Customer
            };
            (speaker, role)
        })
        .collect()
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
        let roles = assign_roles(&transcript, &RoleOptions::default());
        assert_eq!(roles["SPEAKER_00"], Role::Agent);
        assert_eq!(roles["SPEAKER_01"], Role::Customer);
    }

    #[test]
    fn asr_errors_in_a_phrase_still_count_and_ties_go_to_who_spoke_first() {
        // "this call might be recorded": one word off.
        let transcript = mono(vec![
            segment(0.0, " Good morning.", "SPEAKER_01"),
            segment(2.0, " This call might be recorded.", "SPEAKER_00"),
        ]);
        let roles = assign_roles(&transcript, &RoleOptions::default());
        assert_eq!(roles["SPEAKER_00"], Role::Agent);
        // No phrase from anyone: the first to speak.
        let transcript = mono(vec![
            segment(0.5, " Yes.", "SPEAKER_01"),
            segment(0.0, " Hello there.", "SPEAKER_00"),
        ]);
        let roles = assign_roles(&transcript, &RoleOptions::default());
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
        let by_map = assign_roles(
            &transcript,
            &RoleOptions {
                agent_channel: Some(1),
                ..RoleOptions::default()
            },
        );
        assert_eq!(by_map["SPEAKER_01"], Role::Agent);
        assert_eq!(by_map["SPEAKER_00"], Role::Customer);

        let transcript = mono(vec![
            segment(0.0, " Hello?", "SPEAKER_00"),
            segment(1.0, " Are you the homeowner at this address?", "SPEAKER_01"),
        ]);
        let by_script = assign_roles(
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
        assert!(assign_roles(&transcript, &RoleOptions::default()).is_empty());
    }
}
