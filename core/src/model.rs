//! Domain types shared by every lane: where a call came from, where it is in the pipeline, and
//! which lane moves it on.

use std::fmt;
use std::str::FromStr;

/// An enum that is stored in Postgres as a `core.*` enum and printed as its snake_case label.
macro_rules! labelled_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $label:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $label),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        // Stored, printed and serialized as the same label.
        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownLabel;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($label => Ok($name::$variant),)+
                    _ => Err(UnknownLabel {
                        kind: stringify!($name),
                        value: s.to_owned(),
                        expected: &[$($label),+],
                    }),
                }
            }
        }
    };
}

/// A label that names no variant, e.g. a state from a newer schema or a typo on the command line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {value:?} (expected one of: {})", expected.join(", "))]
pub struct UnknownLabel {
    pub kind: &'static str,
    pub value: String,
    pub expected: &'static [&'static str],
}

labelled_enum! {
    /// Where a call is in the pipeline (`core.call_state`).
    CallState {
        /// Known, audio not yet vaulted.
        Pending => "pending",
        /// Leased by the vault lane.
        Downloading => "downloading",
        /// Audio in storage, waiting for transcription.
        Downloaded => "downloaded",
        /// Leased by a worker.
        Transcribing => "transcribing",
        /// Transcript stored, waiting for the judge.
        Transcribed => "transcribed",
        /// Leased by the judge lane.
        Judging => "judging",
        /// Done: flags and scores written.
        Judged => "judged",
        /// Dead letter: attempts spent, `last_error` kept, re-queueable.
        Failed => "failed",
        /// Nothing to process (no recording).
        Skipped => "skipped",
    }
}

labelled_enum! {
    /// Where a call came from (`core.call_source`).
    Source {
        Ringba => "ringba",
        Livekit => "livekit",
        Upload => "upload",
    }
}

labelled_enum! {
    /// A lane claims calls in its ready state, leases them, and moves them to its done state.
    Lane {
        Vault => "vault",
        Transcribe => "transcribe",
        Judge => "judge",
    }
}

labelled_enum! {
    /// A speaker's part in a call (`core.speaker_role`).
    SpeakerRole {
        Agent => "agent",
        Customer => "customer",
        Unknown => "unknown",
    }
}

labelled_enum! {
    /// What a QA flag is about (`core.flag_category`).
    Category {
        Compliance => "compliance",
        Quality => "quality",
        Fraud => "fraud",
    }
}

labelled_enum! {
    /// How bad a QA flag is (`core.flag_severity`), ordered from `Info` to `Critical`.
    Severity {
        Info => "info",
        Low => "low",
        Medium => "medium",
        High => "high",
        Critical => "critical",
    }
}

labelled_enum! {
    /// Where a reviewer left a QA flag (`core.review_status`).
    ReviewStatus {
        Open => "open",
        Confirmed => "confirmed",
        Dismissed => "dismissed",
    }
}

labelled_enum! {
    /// What an organization's member may do (`core.member_role`).
    MemberRole {
        /// Reviews, and manages members.
        Admin => "admin",
        /// Confirms and dismisses flags.
        Reviewer => "reviewer",
        /// Reads only.
        Viewer => "viewer",
    }
}

impl Lane {
    /// The state this lane claims from.
    pub fn ready_state(self) -> CallState {
        match self {
            Lane::Vault => CallState::Pending,
            Lane::Transcribe => CallState::Downloaded,
            Lane::Judge => CallState::Transcribed,
        }
    }

    /// The state a call holds while this lane has it leased.
    pub fn leased_state(self) -> CallState {
        match self {
            Lane::Vault => CallState::Downloading,
            Lane::Transcribe => CallState::Transcribing,
            Lane::Judge => CallState::Judging,
        }
    }

    /// The state this lane moves a call to when it succeeds.
    pub fn done_state(self) -> CallState {
        match self {
            Lane::Vault => CallState::Downloaded,
            Lane::Transcribe => CallState::Transcribed,
            Lane::Judge => CallState::Judged,
        }
    }
}

impl CallState {
    /// States a lane claims from.
    pub fn is_ready(self) -> bool {
        Lane::ALL.iter().any(|lane| lane.ready_state() == self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_round_trip() {
        for state in CallState::ALL {
            assert_eq!(state.as_str().parse::<CallState>(), Ok(*state));
        }
        for source in Source::ALL {
            assert_eq!(source.as_str().parse::<Source>(), Ok(*source));
        }
    }

    #[test]
    fn unknown_label_names_the_choices() {
        let err = "queued".parse::<CallState>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown CallState \"queued\" (expected one of: pending, downloading, downloaded, \
             transcribing, transcribed, judging, judged, failed, skipped)"
        );
    }

    #[test]
    fn lanes_chain_into_each_other() {
        assert_eq!(Lane::Vault.done_state(), Lane::Transcribe.ready_state());
        assert_eq!(Lane::Transcribe.done_state(), Lane::Judge.ready_state());
        let ready: Vec<_> = CallState::ALL.iter().filter(|s| s.is_ready()).collect();
        assert_eq!(
            ready,
            [
                &CallState::Pending,
                &CallState::Downloaded,
                &CallState::Transcribed
            ]
        );
    }
}
