//! Calls written out as segments → the exact findings the rules must produce.

use callscript_core::transcripts::SegmentRecord;

use crate::transcript::Transcript;
use crate::{redact, Category, Finding, Rulebook, Severity, SpeakerRole};

/// A segment from `start` to `end` seconds by "agent" (SPEAKER_00, channel 0), "customer"
/// (SPEAKER_01, channel 1) or "?" (not diarized).
pub(crate) fn seg(start: f64, end: f64, who: &str, text: &str) -> SegmentRecord {
    let (speaker, channel, role) = match who {
        "agent" => (Some("SPEAKER_00"), Some(0), Some(SpeakerRole::Agent)),
        "customer" => (Some("SPEAKER_01"), Some(1), Some(SpeakerRole::Customer)),
        "?" => (None, None, None),
        other => panic!("no party {other}"),
    };
    SegmentRecord {
        start_ms: (start * 1000.0).round() as i32,
        end_ms: (end * 1000.0).round() as i32,
        speaker: speaker.map(str::to_owned),
        channel,
        role,
        text: format!(" {text}"),
        avg_logprob: Some(-0.2),
        no_speech_prob: Some(0.01),
    }
}

const DISCLOSURE: &str = "Thank you for calling Acme Solar, this call may be recorded for quality \
                          and training purposes.";

/// The call's opening with the disclosure, then `rest`.
fn call(rest: Vec<SegmentRecord>) -> Vec<SegmentRecord> {
    let mut segments = vec![seg(0.0, 4.0, "agent", DISCLOSURE)];
    segments.extend(rest);
    segments
}

/// (rule, start ms, end ms, speaker, evidence)
type Summary = (String, Option<i32>, Option<i32>, Option<String>, String);

fn summary(findings: &[Finding]) -> Vec<Summary> {
    findings
        .iter()
        .map(|f| {
            (
                f.rule_id.clone(),
                f.start_ms,
                f.end_ms,
                f.speaker.clone(),
                f.evidence.clone(),
            )
        })
        .collect()
}

fn expect(rule: &str, start: i32, end: i32, speaker: Option<&str>, evidence: &str) -> Summary {
    (
        rule.to_owned(),
        Some(start),
        Some(end),
        speaker.map(str::to_owned),
        evidence.to_owned(),
    )
}

const AGENT: Option<&str> = Some("SPEAKER_00");
const CUSTOMER: Option<&str> = Some("SPEAKER_01");
const MISSING_DISCLOSURE: &str = "no \"this call may be recorded\" (or 11 other phrases) by the \
                                  agent in the first 30 s";

#[test]
fn the_default_rulebook_on_written_calls() {
    let rulebook = Rulebook::default_rulebook();
    let cases: Vec<(&str, Vec<SegmentRecord>, Vec<Summary>)> = vec![
        (
            "a clean call",
            call(vec![
                seg(4.5, 7.0, "customer", "Hi, I'd like to ask about my bill."),
                seg(7.5, 9.0, "agent", "Sure, can I have your account number?"),
                seg(
                    9.5,
                    11.0,
                    "customer",
                    "It's 4471 2209, no risk there I hope.",
                ),
                seg(11.5, 13.0, "agent", "Thanks. Is there anything else?"),
                seg(13.5, 15.0, "customer", "No, that's all. Thanks, bye."),
            ]),
            vec![],
        ),
        (
            "the disclosure garbled by ASR still counts",
            vec![
                seg(
                    0.0,
                    3.0,
                    "agent",
                    "Hi, this col maybe recorded for quality.",
                ),
                seg(3.5, 5.0, "customer", "Okay."),
            ],
            vec![],
        ),
        (
            "no disclosure",
            vec![
                seg(0.0, 3.0, "agent", "Hi, this is Dana from Acme Solar."),
                seg(3.5, 5.0, "customer", "Okay."),
            ],
            vec![expect(
                "recording-disclosure-missing",
                0,
                30_000,
                None,
                MISSING_DISCLOSURE,
            )],
        ),
        (
            "a disclosure after 30 s, or by the customer, is missing",
            vec![
                seg(0.0, 3.0, "agent", "Hi, this is Dana from Acme Solar."),
                seg(4.0, 8.0, "customer", "Is this call being recorded?"),
                seg(45.0, 48.0, "agent", "Yes, this call is being recorded."),
            ],
            vec![
                expect(
                    "recording-disclosure-missing",
                    0,
                    30_000,
                    None,
                    MISSING_DISCLOSURE,
                ),
                expect("dead-air", 8_000, 45_000, None, "no speech for 37 s"),
            ],
        ),
        (
            "a do-not-call request repeated, garbled or not, by the customer only: one finding",
            call(vec![
                seg(4.5, 6.0, "customer", "Please don't call me again."),
                seg(6.5, 9.0, "agent", "I can put you on our do not call list."),
                seg(
                    9.5,
                    11.0,
                    "customer",
                    "dont call me agin, and take me of your list",
                ),
                seg(12.0, 13.0, "customer", "Stop coling me!"),
            ]),
            vec![expect(
                "do-not-call-request",
                4_500,
                13_000,
                CUSTOMER,
                "don't call me again dont call me agin, and take me of your list Stop coling",
            )],
        ),
        (
            "prohibited claims by the agent, one finding per rule and moment",
            call(vec![
                seg(
                    5.0,
                    9.0,
                    "agent",
                    "You get guaranteed approval, it's 100% guaranteed.",
                ),
                seg(9.5, 11.0, "customer", "So everyone qualifies? No risk?"),
                seg(
                    11.5,
                    14.0,
                    "agent",
                    "Yes, you will definately be aproved. There's no risk.",
                ),
            ]),
            vec![
                expect(
                    "prohibited-claim-approval",
                    5_000,
                    14_000,
                    AGENT,
                    "guaranteed approval, it's 100% guaranteed Yes, you will definately be aproved",
                ),
                expect("prohibited-claim-risk", 11_500, 14_000, AGENT, "no risk"),
            ],
        ),
        (
            "abusive language by the agent, not the customer",
            call(vec![
                seg(4.5, 6.0, "customer", "This is bullshit."),
                seg(6.5, 8.0, "agent", "Oh shut up, you idiot."),
            ]),
            vec![expect(
                "agent-abusive-language",
                6_500,
                8_000,
                AGENT,
                "shut up, you idiot",
            )],
        ),
        (
            "one do-not-call request said three ways across two segments",
            call(vec![
                seg(
                    4.5,
                    7.0,
                    "customer",
                    "Stop calling me. Take me off your list.",
                ),
                seg(7.5, 9.0, "customer", "Do not call me again."),
                seg(30.0, 32.0, "customer", "And again: stop calling me!"),
            ]),
            vec![
                expect(
                    "do-not-call-request",
                    4_500,
                    9_000,
                    CUSTOMER,
                    "Stop calling me. Take me off your list Do not call me again",
                ),
                expect(
                    "do-not-call-request",
                    30_000,
                    32_000,
                    CUSTOMER,
                    "stop calling",
                ),
            ],
        ),
        (
            "a card, the agent asks for part of it again, then for the expiry",
            call(vec![
                seg(
                    5.0,
                    11.0,
                    "customer",
                    "It's four one one one, one one one one, one one one one, one one one one.",
                ),
                seg(11.5, 13.0, "agent", "Sorry, after the first four?"),
                seg(
                    13.5,
                    17.0,
                    "customer",
                    "one one one one, one one one one, one one one one.",
                ),
                seg(17.5, 19.0, "agent", "Thanks. And the expiry date?"),
                seg(19.5, 21.0, "customer", "twelve twenty eight"),
            ]),
            vec![expect(
                "payment-card-spoken",
                5_000,
                11_000,
                CUSTOMER,
                "It's [card ending 1111]",
            )],
        ),
        (
            "a card started, asked again slower, then the expiry and the code",
            call(vec![
                seg(
                    5.0,
                    8.0,
                    "customer",
                    "Sure, it's four five five six, seven three seven five, eight six eight nine",
                ),
                seg(8.5, 10.0, "agent", "Sorry, a bit slower please?"),
                seg(
                    10.5,
                    16.0,
                    "customer",
                    "four five five six, seven three seven five, eight six eight nine, nine \
                     eight five five",
                ),
                seg(16.5, 18.0, "agent", "Thank you. And the expiry date?"),
                seg(
                    18.5,
                    20.0,
                    "customer",
                    "twelve twenty eight, and the code is one one two",
                ),
            ]),
            vec![expect(
                "payment-card-spoken",
                10_500,
                16_000,
                CUSTOMER,
                "[card ending 9855]",
            )],
        ),
        (
            "a card number in words across two segments, the agent's 'mhm' between",
            call(vec![
                seg(
                    20.0,
                    24.0,
                    "customer",
                    "My card number is four one one one one one one one",
                ),
                seg(24.0, 24.5, "agent", "Mhm."),
                seg(25.0, 29.0, "customer", "one one one one one one one one."),
            ]),
            vec![expect(
                "payment-card-spoken",
                20_000,
                29_000,
                CUSTOMER,
                "My card number is [card ending 1111]",
            )],
        ),
        (
            "a card in grouped numerals, and a Luhn-invalid order number",
            call(vec![
                seg(5.0, 9.0, "customer", "Order 1234 5678 1234 5678, paid with"),
                seg(9.0, 12.0, "customer", "5555-5555-5555-4444 yesterday."),
            ]),
            vec![expect(
                "payment-card-spoken",
                9_000,
                12_000,
                CUSTOMER,
                "[card ending 4444]",
            )],
        ),
        (
            "a card read out with a digit lost (Luhn fails) after the agent asks for the card",
            call(vec![
                seg(5.0, 7.0, "agent", "Great. Can I have the card number?"),
                seg(
                    7.5,
                    13.0,
                    "customer",
                    "Four five five six, seven three seven five, eight six eight nine, nine \
                     eight five.",
                ),
            ]),
            vec![expect(
                "payment-card-spoken",
                7_500,
                13_000,
                CUSTOMER,
                "[card ending 9985]",
            )],
        ),
        (
            "card-length numbers that fail Luhn and are said to be something else",
            call(vec![
                seg(
                    5.0,
                    7.0,
                    "agent",
                    "Can I have the card number, or the order number?",
                ),
                seg(
                    7.5,
                    11.0,
                    "customer",
                    "The order number is 5454 5454 5454 5545.",
                ),
                seg(12.0, 14.0, "agent", "And your phone and zip code?"),
                seg(
                    14.5,
                    19.0,
                    "customer",
                    "Six one seven five five five zero one four two, zip zero two one \
                     three nine.",
                ),
            ]),
            vec![],
        ),
        (
            "social security numbers: grouped 3-2-4, or nine digits after the agent asks",
            call(vec![
                seg(5.0, 7.0, "customer", "It's 078-05-1120."),
                seg(8.0, 10.0, "agent", "And your spouse's social?"),
                seg(
                    10.5,
                    14.0,
                    "customer",
                    "one two three, four five, six seven eight nine",
                ),
                seg(15.0, 17.0, "customer", "My phone is 555 123 4567."),
            ]),
            vec![
                expect(
                    "ssn-spoken",
                    5_000,
                    7_000,
                    CUSTOMER,
                    "It's [ssn ending 1120]",
                ),
                expect("ssn-spoken", 10_500, 14_000, CUSTOMER, "[ssn ending 6789]"),
            ],
        ),
    ];
    for (name, segments, expected) in cases {
        // The recording ends with its last words: each case's silences are the ones it writes.
        let findings = rulebook.evaluate(&segments, None);
        assert_eq!(summary(&findings), expected, "{name}");
    }
}

#[test]
fn silence_before_the_first_words_after_the_last_and_in_an_empty_call_is_dead_air() {
    let rulebook = Rulebook::default_rulebook();
    let dead_air = |segments: &[SegmentRecord], duration_ms: Option<i32>| -> Vec<Summary> {
        summary(&rulebook.evaluate(segments, duration_ms))
            .into_iter()
            .filter(|(rule, ..)| rule == "dead-air")
            .collect()
    };
    let an_hour = 3_600_000;
    assert_eq!(
        dead_air(&[], Some(an_hour)),
        vec![expect("dead-air", 0, an_hour, None, "no speech for 3600 s")],
        "a recording with no speech at all"
    );
    assert_eq!(dead_air(&[], None), vec![], "no speech and no known length");
    let late_and_trailing = call(vec![seg(50.0, 52.0, "customer", "Hello? Anyone there?")]);
    assert_eq!(
        dead_air(&late_and_trailing, Some(100_000)),
        vec![
            expect("dead-air", 4_000, 50_000, None, "no speech for 46 s"),
            expect("dead-air", 52_000, 100_000, None, "no speech for 48 s"),
        ],
    );
    let opens_silent = vec![seg(40.0, 44.0, "agent", DISCLOSURE)];
    assert_eq!(
        dead_air(&opens_silent, Some(45_000)),
        vec![expect("dead-air", 0, 40_000, None, "no speech for 40 s")],
    );
    assert_eq!(
        dead_air(&call(vec![]), Some(30_000)),
        vec![],
        "26 s is not dead air"
    );
}

#[test]
fn findings_carry_the_rules_category_severity_and_role() {
    let rulebook = Rulebook::default_rulebook();
    let segments = vec![
        seg(0.0, 3.0, "agent", "Hi, it's Dana."),
        seg(4.0, 9.0, "customer", "Card: 4111 1111 1111 1111."),
    ];
    let findings = rulebook.evaluate(&segments, None);
    let fields: Vec<_> = findings
        .iter()
        .map(|f| (f.rule_id.as_str(), f.category, f.severity, f.role))
        .collect();
    assert_eq!(
        fields,
        [
            (
                "recording-disclosure-missing",
                Category::Compliance,
                Severity::High,
                Some(SpeakerRole::Agent)
            ),
            (
                "payment-card-spoken",
                Category::Compliance,
                Severity::Critical,
                Some(SpeakerRole::Customer)
            ),
        ]
    );
    assert_eq!(findings[1].evidence, "Card: [card ending 1111]");
}

#[test]
fn redaction_keeps_the_last_four_across_segments() {
    let mut segments = call(vec![
        seg(
            20.0,
            24.0,
            "customer",
            "My card number is four one one one one one one one",
        ),
        seg(24.0, 24.5, "agent", "Mhm."),
        seg(
            25.0,
            29.0,
            "customer",
            "one one one one one one one one. Order 1234 5678 1234 5678.",
        ),
    ]);
    assert_eq!(redact(&mut segments, &[], "judge").redacted, 1);
    let texts: Vec<&str> = segments.iter().map(|s| s.text.as_str()).collect();
    assert_eq!(texts[0].trim(), DISCLOSURE);
    assert_eq!(
        texts[1..],
        [
            " My card number is [card ending 1111]",
            " Mhm.",
            " [card continued]. Order 1234 5678 1234 5678.",
        ]
    );
    // The redacted transcript flags no card any more.
    let rulebook = Rulebook::default_rulebook();
    assert!(rulebook.evaluate(&segments, None).is_empty());
}

#[test]
fn timing_rules_and_parties() {
    let rulebook = Rulebook::parse(
        r#"
[rulebook]
name = "timing"
version = "2026-11-25"

[[rules]]
id = "talks-too-much"
kind = "talk_ratio"
category = "quality"
severity = "low"
by = "agent"
max = 0.7

[[rules]]
id = "too-short"
kind = "call_too_short"
category = "quality"
severity = "info"
min_seconds = 60

[[rules]]
id = "silence"
kind = "dead_air"
category = "quality"
severity = "low"
max_seconds = 5.5

[[rules]]
id = "greeting"
kind = "required_phrase"
category = "quality"
severity = "low"
phrases = ["thank you for calling"]
fuzziness = 0
"#,
    )
    .unwrap();
    let segments = vec![
        seg(
            0.0,
            8.0,
            "agent",
            "Thank you for calling, let me tell you all about it.",
        ),
        seg(8.0, 9.0, "customer", "Okay."),
        seg(15.0, 16.0, "agent", "So."),
    ];
    assert_eq!(
        summary(&rulebook.evaluate(&segments, Some(20_000))),
        [
            expect(
                "talks-too-much",
                0,
                20_000,
                None,
                "the agent spoke 90% of the talk time (at most 70% expected)"
            ),
            expect(
                "too-short",
                0,
                20_000,
                None,
                "the call lasted 20 s (at least 60 s expected)"
            ),
            expect("silence", 9_000, 15_000, None, "no speech for 6 s"),
        ]
    );
    // A talk ratio needs roles; without them phrase rules read everyone.
    let undiarized: Vec<SegmentRecord> = vec![
        seg(0.0, 2.0, "?", "thank you for calling"),
        seg(2.5, 70.0, "?", "sure"),
    ];
    assert!(rulebook.evaluate(&undiarized, None).is_empty());
    // No fuzziness: one misheard word and the greeting is missing.
    let garbled = vec![seg(0.0, 61.0, "?", "thank you for coling")];
    assert_eq!(
        summary(&rulebook.evaluate(&garbled, None)),
        [expect(
            "greeting",
            0,
            61_000,
            None,
            "no \"thank you for calling\""
        )]
    );
}

#[test]
fn the_default_rulebook_parses_and_its_reference_is_stable() {
    let rulebook = Rulebook::default_rulebook();
    assert_eq!(rulebook.reference(), "default@1");
    let ids: Vec<&str> = rulebook.rules.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "recording-disclosure-missing",
            "do-not-call-request",
            "payment-card-spoken",
            "ssn-spoken",
            "agent-abusive-language",
            "prohibited-claim-approval",
            "prohibited-claim-risk",
            "dead-air",
        ]
    );
    assert_eq!(Rulebook::parse(crate::DEFAULT_RULEBOOK), Ok(rulebook));
}

#[test]
fn rulebook_problems_are_reported_with_their_lines() {
    let text = r#"[rulebook]
name = "acme"
version = "3"

[[rules]]
kind = "forbidden_phrase"
category = "compliance"
severity = "high"
phrases = ["no risk"]

[[rules]]
id = "a"
kind = "sentiment"
category = "quality"
severity = "high"

[[rules]]
id = "a"
kind = "dead_air"
category = "quality"
severity = "urgent"
max_seconds = 10

[[rules]]
id = "b"
kind = "dead_air"
category = "quality"
severity = "low"
max_secs = 10
"#;
    let error = Rulebook::parse(text).unwrap_err();
    let lines: Vec<(usize, usize)> = error.issues.iter().map(|i| (i.line, i.column)).collect();
    assert_eq!(
        lines,
        [(5, 1), (13, 8), (18, 6), (21, 12), (24, 1), (29, 1)],
        "{error}"
    );
    assert_eq!(
        error.to_string(),
        "line 5, column 1: rule is missing `id`\n\
         line 13, column 8: unknown kind `sentiment` (expected one of: required_phrase, \
         forbidden_phrase, do_not_call, payment_card, ssn, abusive_language, dead_air, \
         talk_ratio, call_too_short)\n\
         line 18, column 6: duplicate rule id `a` (first at line 12)\n\
         line 21, column 12: `severity` is \"urgent\"; expected one of: \"info\", \"low\", \
         \"medium\", \"high\", \"critical\"\n\
         line 24, column 1: rule `b` is missing `max_seconds`\n\
         line 29, column 1: unknown key `max_secs` for a `dead_air` rule (expected one of: id, \
         kind, category, severity, description, max_seconds)"
    );
}

#[test]
fn more_rulebook_problems() {
    let cases: &[(&str, &[usize])] = &[
        // A TOML syntax error.
        ("[rulebook]\nname = \"x\nversion = \"1\"\n", &[2]),
        // No [rulebook] table; an unknown top-level key.
        ("rule = 1\n", &[1, 1]),
        // Wrong types and ranges, an unknown `by`, an empty phrase list.
        (
            "[rulebook]\nname = \"x\"\nversion = 1\n\n[[rules]]\nid = \"r\"\nkind = \"required_phrase\"\n\
             category = \"compliance\"\nseverity = \"high\"\nphrases = []\nby = \"bot\"\n\
             within_seconds = -3\nfuzziness = 0.9\n",
            &[10, 11, 12, 13],
        ),
        // A talk ratio for anyone, with min above max; punctuation alone is no phrase.
        (
            "[rulebook]\nname = \"x\"\nversion = \"1\"\n[[rules]]\nid = \"t\"\nkind = \"talk_ratio\"\n\
             category = \"quality\"\nseverity = \"low\"\nby = \"anyone\"\nmin = 0.8\nmax = 0.2\n\
             [[rules]]\nid = \"f\"\nkind = \"forbidden_phrase\"\ncategory = \"fraud\"\n\
             severity = \"low\"\nphrases = [\"...\"]\n",
            &[9, 10, 17],
        ),
    ];
    for (text, lines) in cases {
        let error = Rulebook::parse(text).unwrap_err();
        let found: Vec<usize> = error.issues.iter().map(|i| i.line).collect();
        assert_eq!(&found, lines, "{text}\n{error}");
    }
}

#[test]
fn a_do_not_call_request_fires_when_the_roles_are_uncertain() {
    // Diarization mixed the parties up: the customer's request came out as the agent's.
    let segments = call(vec![seg(
        5.0,
        8.0,
        "agent",
        "Stop calling me, take me off your list.",
    )]);
    let rulebook = Rulebook::default_rulebook();
    let rules = |confidence: Option<f32>| -> Vec<(String, Option<SpeakerRole>)> {
        let transcript = Transcript::new(&segments).with_role_confidence(confidence);
        rulebook
            .evaluate_transcript(&transcript, None)
            .into_iter()
            .map(|f| (f.rule_id, f.role))
            .collect()
    };
    // Sure of the roles (or roles from a channel map): the agent asked, no request.
    assert_eq!(rules(Some(0.9)), []);
    assert_eq!(rules(None), []);
    // Unsure: the request counts, with no role, the speaker kept.
    assert_eq!(rules(Some(0.5)), [("do-not-call-request".to_owned(), None)]);
    let transcript = Transcript::new(&segments).with_role_confidence(Some(0.5));
    let findings = rulebook.evaluate_transcript(&transcript, None);
    assert_eq!(findings[0].speaker.as_deref(), AGENT);
}
