//! Calls written out as segments → the exact assessment they must get.

use chrono::{NaiveDateTime, TimeZone};
use chrono_tz::America::New_York;

use super::*;
use crate::tests::seg;

/// Thursday 5 November 2026, 15:00 in New York.
fn started_at() -> DateTime<Tz> {
    let naive = NaiveDateTime::parse_from_str("2026-11-05 15:00", "%Y-%m-%d %H:%M").unwrap();
    New_York.from_local_datetime(&naive).single().unwrap()
}

fn lasting(ms: i32) -> CallFacts {
    CallFacts {
        duration_ms: Some(ms),
        converted: false,
        conversion_value: None,
    }
}

const PITCH: &str = "Hi, this is Sam with Acme Solar, calling about lowering your electric bill.";

fn hot_buyer() -> Vec<SegmentRecord> {
    vec![
        seg(0.0, 4.0, "agent", PITCH),
        seg(
            4.5,
            9.0,
            "customer",
            "Sure. How much does the system cost per month?",
        ),
        seg(
            9.5,
            14.0,
            "agent",
            "Most customers pay about ninety dollars a month.",
        ),
        seg(14.5, 19.0, "customer", "Okay, and do I qualify if I rent?"),
        seg(19.5, 24.0, "agent", "It's for homeowners."),
        seg(
            25.0,
            30.0,
            "customer",
            "I own it. That sounds good, I'm interested.",
        ),
        seg(30.5, 34.0, "agent", "Great, shall we get you started?"),
        seg(35.0, 38.0, "customer", "Let's do it, sign me up."),
    ]
}

fn warm_callback() -> Vec<SegmentRecord> {
    vec![
        seg(0.0, 4.0, "agent", PITCH),
        seg(4.5, 8.0, "customer", "Okay, how much would it cost me?"),
        seg(8.5, 14.0, "agent", "Plans start at ninety dollars a month."),
        seg(
            14.5,
            21.0,
            "customer",
            "Hmm, that's too expensive for me. Can I cancel the contract anytime?",
        ),
        seg(21.5, 26.0, "agent", "Yes, within thirty days."),
        seg(
            26.5,
            30.0,
            "customer",
            "And do I qualify if my credit score is low?",
        ),
        seg(30.5, 34.0, "agent", "Most homeowners qualify."),
        seg(
            34.5,
            40.0,
            "customer",
            "I need to think about it. Call me back on Friday at ten.",
        ),
    ]
}

fn do_not_call() -> Vec<SegmentRecord> {
    vec![
        seg(0.0, 4.0, "agent", PITCH),
        seg(4.5, 6.0, "customer", "How much is it?"),
        seg(6.5, 9.0, "agent", "Ninety a month."),
        seg(9.5, 11.0, "customer", "Actually, call me back tomorrow."),
        seg(11.5, 13.0, "agent", "Sure, what time works?"),
        seg(
            13.5,
            16.0,
            "customer",
            "No, stop calling me, take me off your list.",
        ),
    ]
}

/// What an assessment is judged on: score, temperature, disposition and the signals' names
/// (with labels) and weights.
type Outcome = (u8, Temperature, Disposition, Vec<(String, i32)>);

fn outcome(a: &LeadAssessment) -> Outcome {
    let signals = a
        .signals
        .iter()
        .map(|s| {
            let name = match &s.label {
                Some(label) => format!("{}:{label}", s.name),
                None => s.name.clone(),
            };
            (name, s.weight)
        })
        .collect();
    (a.score, a.temperature, a.disposition, signals)
}

fn expect(
    score: u8,
    temperature: Temperature,
    disposition: Disposition,
    signals: &[(&str, i32)],
) -> Outcome {
    let signals = signals.iter().map(|&(n, w)| (n.to_owned(), w)).collect();
    (score, temperature, disposition, signals)
}

#[test]
fn written_calls_score_as_expected() {
    use Disposition::*;
    use Temperature::*;
    let converted = CallFacts {
        duration_ms: Some(30_000),
        converted: true,
        conversion_value: Some(125.0),
    };
    let cases: Vec<(&str, Vec<SegmentRecord>, CallFacts, Outcome)> = vec![
        (
            // 16 + 5 + 8 + 8 + 15 + 15 = 67; the commitment adds its 30.
            "a hot buyer: questions, interest, commitment",
            hot_buyer(),
            lasting(200_000),
            expect(
                97,
                Hot,
                Sale,
                &[
                    ("engagement", 16),
                    ("duration", 5),
                    ("question:price", 8),
                    ("question:eligibility", 8),
                    ("intent", 15),
                    ("intent", 15),
                    ("commitment", 30),
                ],
            ),
        ),
        (
            "warm: questions and objections, then a callback request",
            warm_callback(),
            lasting(150_000),
            expect(
                57,
                Warm,
                CallbackRequested,
                &[
                    ("engagement", 18),
                    ("duration", 5),
                    ("question:price", 8),
                    ("objection:price", -10),
                    ("question:contract", 8),
                    ("question:eligibility", 8),
                    ("objection:timing", -10),
                    ("considering", 10),
                    ("callback", 20),
                ],
            ),
        ),
        (
            "a Medicare call: a question each way, two objections, a callback after work",
            vec![
                seg(
                    0.0,
                    5.0,
                    "agent",
                    "Hi, this is Maria from Sunny Health, about Medicare plans.",
                ),
                seg(
                    5.5,
                    8.0,
                    "customer",
                    "Yeah. What's this going to cost me though?",
                ),
                seg(8.5, 15.0, "agent", "Most plans have a zero dollar premium."),
                seg(
                    15.5,
                    22.0,
                    "customer",
                    "Okay. Um, I'm on a fixed income so I can't afford much. Does it cover dental?",
                ),
                seg(22.5, 30.0, "agent", "Yes. Can I get your date of birth?"),
                seg(
                    30.5,
                    36.0,
                    "customer",
                    "I'd rather not give that over the phone. How did you get my number?",
                ),
                seg(36.5, 40.0, "agent", "You filled out a form online."),
                seg(
                    40.5,
                    48.0,
                    "customer",
                    "Oh, right. Look, I'm at work, can you call me after five thirty?",
                ),
            ],
            lasting(50_000),
            // 58 words: 21; 37 in all, the first question lifts it to warm.
            expect(
                40,
                Warm,
                CallbackRequested,
                &[
                    ("engagement", 21),
                    ("question:price", 11),
                    ("objection:price", -10),
                    ("question:coverage", 8),
                    ("objection:trust", -10),
                    ("callback", 20),
                ],
            ),
        ),
        (
            "interested without buying",
            vec![
                seg(0.0, 4.0, "agent", PITCH),
                seg(
                    4.0,
                    9.0,
                    "customer",
                    "That sounds great. How much is the monthly payment?",
                ),
                seg(9.5, 14.0, "agent", "About ninety dollars."),
                seg(
                    15.0,
                    20.0,
                    "customer",
                    "Do I qualify? Can you send me the details by email?",
                ),
            ],
            lasting(60_000),
            // 70, held under hot: no commitment.
            expect(
                69,
                Warm,
                Interested,
                &[
                    ("engagement", 14),
                    ("intent", 15),
                    ("question:price", 8),
                    ("question:eligibility", 8),
                    ("intent", 15),
                    ("considering", 10),
                    ("uncommitted", -1),
                ],
            ),
        ),
        (
            "cold: not interested",
            vec![
                seg(0.0, 4.0, "agent", PITCH),
                seg(4.5, 7.0, "customer", "No thanks, I'm not interested."),
            ],
            lasting(8_000),
            expect(
                0,
                Cold,
                NotInterested,
                &[("engagement", 11), ("not-interested", -40)],
            ),
        ),
        (
            "cold: busy, no interest shown",
            vec![
                seg(0.0, 4.0, "agent", PITCH),
                seg(
                    4.5,
                    9.0,
                    "customer",
                    "Hello? Yes, this is Pat. What is this about? I'm busy right now.",
                ),
            ],
            lasting(10_000),
            expect(
                2,
                Cold,
                NotInterested,
                &[("engagement", 12), ("objection:timing", -10)],
            ),
        ),
        (
            // Three kinds of objection count; the fourth (trust) is listed but not weighed.
            "objections of every kind",
            vec![
                seg(0.0, 4.0, "agent", PITCH),
                seg(
                    4.5,
                    12.0,
                    "customer",
                    "Let me check with my wife. We already have a contract with another \
                     company. Is this a scam?",
                ),
            ],
            lasting(15_000),
            expect(
                0,
                Cold,
                NotInterested,
                &[
                    ("engagement", 13),
                    ("objection:authority", -10),
                    ("objection:need", -10),
                    ("objection:competitor", -10),
                ],
            ),
        ),
        (
            // The request cancels the 13 + 8 + 20 the rest adds up to.
            "do not call overrides everything",
            do_not_call(),
            lasting(17_000),
            expect(
                0,
                Cold,
                DoNotCall,
                &[
                    ("engagement", 13),
                    ("question:price", 8),
                    ("callback", 20),
                    ("do-not-call", -41),
                ],
            ),
        ),
        (
            "a do-not-call request in two words is still one",
            vec![
                seg(0.0, 4.0, "agent", PITCH),
                seg(4.5, 5.5, "customer", "Stop calling!"),
            ],
            lasting(6_000),
            expect(0, Cold, DoNotCall, &[("do-not-call", 0)]),
        ),
        (
            "no conversation: a hello and the agent talking",
            vec![
                seg(0.0, 4.0, "agent", PITCH),
                seg(4.5, 5.5, "customer", "Hello? Hello?"),
                seg(6.0, 30.0, "agent", "Are you there? I can call back later."),
            ],
            lasting(400_000),
            expect(0, Cold, NoConversation, &[]),
        ),
        (
            "two words that say something are a conversation",
            vec![
                seg(0.0, 4.0, "agent", PITCH),
                seg(4.5, 5.5, "customer", "Not interested."),
            ],
            lasting(6_000),
            expect(
                0,
                Cold,
                NotInterested,
                &[("engagement", 10), ("not-interested", -40)],
            ),
        ),
        (
            // 11 + the 79 that lifts the score to the sale floor.
            "the vendor reports a conversion",
            vec![
                seg(0.0, 4.0, "agent", PITCH),
                seg(4.5, 8.0, "customer", "Yes, I already signed up online."),
            ],
            converted.clone(),
            expect(90, Hot, Sale, &[("engagement", 11), ("converted", 79)]),
        ),
        (
            "a conversion with no conversation is still a sale",
            vec![seg(0.0, 20.0, "agent", PITCH)],
            converted.clone(),
            expect(90, Hot, Sale, &[("converted", 90)]),
        ),
        (
            // Without roles everyone's words are read: 14 words.
            "roles unknown: the whole transcript",
            vec![
                seg(0.0, 4.0, "?", "Would you like to hear about solar savings?"),
                seg(4.5, 7.0, "?", "Sure, sounds good, I'm interested."),
            ],
            lasting(7_000),
            expect(
                42,
                Warm,
                Interested,
                &[("engagement", 12), ("intent", 15), ("intent", 15)],
            ),
        ),
    ];
    for (name, segments, facts, expected) in cases {
        let a = assess(&segments, &facts, started_at());
        assert_eq!(outcome(&a), expected, "{name}");
        // The signals explain the score: they add up to it, clamped.
        let sum: i32 = a.signals.iter().map(|s| s.weight).sum();
        assert_eq!(sum.clamp(0, 100), i32::from(a.score), "{name}");
        assert_eq!(a.temperature, Temperature::of(a.score), "{name}");
    }
}

#[test]
fn unclamped_scores_are_their_signals_sum() {
    for (segments, facts) in [
        (hot_buyer(), lasting(200_000)),
        (warm_callback(), lasting(150_000)),
    ] {
        let a = assess(&segments, &facts, started_at());
        assert!(a.score > 0 && a.score < 100, "{}", a.score);
        let sum: i32 = a.signals.iter().map(|s| s.weight).sum();
        assert_eq!(sum, i32::from(a.score));
    }
}

#[test]
fn the_warm_call_in_full() {
    let a = assess(&warm_callback(), &lasting(150_000), started_at());
    assert_eq!(
        a.summary,
        "Customer asked about price, contract and eligibility; objected on price and timing. \
         Asked to be called back on Fri 6 Nov at 10:00."
    );
    let follow_up = a.follow_up.expect("a callback");
    assert_eq!(
        follow_up.due.format("%Y-%m-%d %H:%M %:z").to_string(),
        "2026-11-06 10:00 -05:00"
    );
    assert_eq!(follow_up.source_text, "Call me back on Friday at ten");
    assert_eq!(follow_up.start_ms, 34_500);
    assert!(follow_up.explicit_time);
    let mentions = |ms: &[Mention]| -> Vec<(String, String, i32, i32)> {
        ms.iter()
            .map(|m| (m.label.clone(), m.text.clone(), m.start_ms, m.end_ms))
            .collect()
    };
    let m = |label: &str, text: &str, start: i32, end: i32| {
        (label.to_owned(), text.to_owned(), start, end)
    };
    assert_eq!(
        mentions(&a.questions),
        [
            m("price", "Okay, how much would it cost me", 4_500, 8_000),
            m(
                "contract",
                "Can I cancel the contract anytime",
                14_500,
                21_000
            ),
            m(
                "eligibility",
                "And do I qualify if my credit score is low",
                26_500,
                30_000
            ),
        ]
    );
    assert_eq!(
        mentions(&a.objections),
        [
            m("price", "too expensive", 14_500, 21_000),
            m("timing", "think about it", 34_500, 40_000),
        ]
    );
    assert_eq!(a.sentiment, Sentiment::Neutral);
    assert_eq!(a.commitment, None);
    assert_eq!(a.do_not_call, None);
    assert_eq!(
        (
            a.temperature.as_str(),
            a.disposition.as_str(),
            a.sentiment.as_str()
        ),
        ("warm", "callback-requested", "neutral")
    );
}

#[test]
fn summaries_and_mentions_of_other_calls() {
    let hot = assess(&hot_buyer(), &lasting(200_000), started_at());
    assert_eq!(
        hot.summary,
        "Customer asked about price and eligibility; agreed to buy."
    );
    assert_eq!(
        hot.commitment.map(|m| (m.text, m.start_ms)),
        Some(("Let's do it".to_owned(), 35_000))
    );
    assert_eq!(hot.sentiment, Sentiment::Positive);
    assert_eq!(hot.follow_up, None);

    let dnc = assess(&do_not_call(), &lasting(17_000), started_at());
    assert_eq!(dnc.summary, "Customer asked not to be called again.");
    assert_eq!(
        dnc.do_not_call.map(|m| (m.text, m.start_ms)),
        Some(("stop calling".to_owned(), 13_500))
    );
    // The callback asked for before it is not scheduled.
    assert_eq!(dnc.follow_up, None);
    assert_eq!(dnc.sentiment, Sentiment::Negative);

    let nothing = assess(
        &[seg(0.0, 2.0, "customer", "Hello? Hello?")],
        &lasting(2_000),
        started_at(),
    );
    assert_eq!(
        nothing.summary,
        "No conversation: the customer said 2 words."
    );
    assert_eq!(nothing.questions.len(), 2);

    let converted = assess(
        &[seg(
            0.0,
            2.0,
            "customer",
            "Yes, I already signed up online.",
        )],
        &CallFacts {
            duration_ms: None,
            converted: true,
            conversion_value: Some(125.0),
        },
        started_at(),
    );
    assert_eq!(
        converted.summary,
        "Customer showed no clear interest or objection. The vendor reports a conversion worth \
         125.00."
    );

    let later = assess(
        &[seg(
            0.0,
            3.0,
            "customer",
            "I'm driving, can you call me later?",
        )],
        &lasting(3_000),
        started_at(),
    );
    assert_eq!(
        later.summary,
        "Customer showed no clear interest or objection. Asked to be called back; no time \
         given, set for Fri 6 Nov at 10:00."
    );
}

#[test]
fn asr_garbled_calls_score_as_their_clean_versions() {
    let call = |customer: [&str; 2]| {
        vec![
            seg(0.0, 4.0, "agent", PITCH),
            seg(4.5, 9.0, "customer", customer[0]),
            seg(9.5, 13.0, "agent", "Plans start at ninety dollars a month."),
            seg(13.5, 18.0, "customer", customer[1]),
        ]
    };
    let clean = call([
        "I'm interested, that sounds good. How much does it cost?",
        "That's too expensive right now. Call me back tomorrow at ten.",
    ]);
    let garbled = call([
        "I'm intrested, that sound good. How much does it cost?",
        "That's to expensive right now. Call me bak tomorow at ten.",
    ]);
    let facts = lasting(20_000);
    let (clean, garbled) = (
        assess(&clean, &facts, started_at()),
        assess(&garbled, &facts, started_at()),
    );
    assert_eq!(outcome(&garbled), outcome(&clean));
    assert_eq!(
        outcome(&clean),
        expect(
            62,
            Temperature::Warm,
            Disposition::CallbackRequested,
            &[
                ("engagement", 14),
                ("intent", 15),
                ("intent", 15),
                ("question:price", 8),
                ("objection:price", -10),
                ("callback", 20),
            ],
        )
    );
    assert_eq!(
        garbled.follow_up.map(|f| (f.due, f.explicit_time)),
        clean.follow_up.map(|f| (f.due, f.explicit_time))
    );
}

#[test]
fn negations_turn_phrases_around() {
    let a = assess(
        &[seg(
            0.0,
            5.0,
            "customer",
            "It's not too expensive, but don't sign me up yet.",
        )],
        &lasting(5_000),
        started_at(),
    );
    assert_eq!(a.objections, []);
    assert_eq!(a.commitment, None);
    assert_eq!(a.do_not_call, None);
    assert_eq!(
        outcome(&a),
        expect(
            12,
            Temperature::Cold,
            Disposition::NotInterested,
            &[("engagement", 12)]
        )
    );
}

#[test]
fn card_numbers_are_masked_in_what_is_quoted() {
    let a = assess(
        &[seg(
            0.0,
            8.0,
            "customer",
            "Can I pay with card 4111 1111 1111 1111?",
        )],
        &lasting(8_000),
        started_at(),
    );
    assert_eq!(
        a.questions
            .iter()
            .map(|q| (q.label.as_str(), q.text.as_str()))
            .collect::<Vec<_>>(),
        [("price", "Can I pay with card [card ending 1111]")]
    );
}

#[test]
fn signals_serialize_as_stored() {
    let a = assess(&warm_callback(), &lasting(150_000), started_at());
    assert_eq!(
        serde_json::to_value(&a.signals[..3]).unwrap(),
        serde_json::json!([
            {"name": "engagement", "weight": 18, "evidence": "43 customer words", "start_ms": null},
            {"name": "duration", "weight": 5, "evidence": "the call lasted 2 min 30 s",
             "start_ms": null},
            {"name": "question", "weight": 8, "label": "price",
             "evidence": "Okay, how much would it cost me", "start_ms": 4500},
        ])
    );
    assert_eq!(
        serde_json::to_value(&a.objections[0]).unwrap(),
        serde_json::json!({"label": "price", "text": "too expensive", "start_ms": 14500,
                           "end_ms": 21000})
    );
}

#[test]
fn a_phrase_with_a_whole_word_wrong_is_another_phrase() {
    let said = |text: &str| {
        let a = assess(
            &[seg(0.0, 5.0, "customer", text)],
            &lasting(5_000),
            started_at(),
        );
        (
            a.signals.into_iter().map(|s| s.name).collect::<Vec<_>>(),
            a.do_not_call.is_some(),
        )
    };
    let engaged = || vec!["engagement".to_owned()];
    // "I would like to sign up" with "sign up" heard as one other word; "don't ever call me"
    // with "ever call" as "tell".
    assert_eq!(said("I would like to cancel my order."), (engaged(), false));
    assert_eq!(said("Please don't tell me anything."), (engaged(), false));
    // Misheard words still count.
    assert_eq!(
        said("I would like to sine up today."),
        (
            vec![
                "engagement".to_owned(),
                "intent".to_owned(),
                "commitment".to_owned()
            ],
            false
        )
    );
    assert_eq!(
        said("Please dont call me agin, okay?"),
        (
            vec!["engagement".to_owned(), "do-not-call".to_owned()],
            true
        )
    );
}

#[test]
fn what_the_customer_means_sets_the_temperature_however_it_is_said() {
    let temperature = |customer: &str| {
        let segments = vec![
            seg(0.0, 4.0, "agent", PITCH),
            seg(4.5, 10.0, "customer", customer),
            seg(10.5, 12.0, "agent", "Alright."),
        ];
        assess(&segments, &lasting(12_000), started_at()).temperature
    };
    use Temperature::*;
    for (said, expected) in [
        // Commits: buys, orders, asks to proceed, gives the card.
        ("Yes, I'd like to buy the home battery package.", Hot),
        ("Okay, I want to order it today.", Hot),
        ("Perfect, go ahead and place the order.", Hot),
        ("Fine, I'll take the premium plan.", Hot),
        ("Okay, I'm ready to get started today.", Hot),
        ("Sure, my card is 4111 1111 1111 1111.", Hot),
        // Interested without committing: a question, time to think, a callback, information.
        ("Okay. How much would it cost per month?", Warm),
        (
            "Hmm, let me think about it and talk to my husband first.",
            Warm,
        ),
        ("I'm at work, can you call me back tomorrow at three?", Warm),
        ("Can you send me the details by email?", Warm),
        // Not interested, a wrong number, no engagement, a do-not-call request.
        ("I'm not interested, thanks.", Cold),
        ("You have the wrong number, there's no Robert here.", Cold),
        ("Hello?", Cold),
        ("How much is it? Actually no, stop calling me.", Cold),
        ("No, I don't want to buy anything.", Cold),
    ] {
        assert_eq!(temperature(said), expected, "{said:?}");
    }
}
