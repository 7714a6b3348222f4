//! The judge's LLM brain against the real Postgres and a loopback OpenAI-compatible server: an
//! answer becomes the call's summary, objections and next best action with its tokens and cost
//! in `core.usage`; a late, failed, non-JSON or out-of-schema answer leaves the call judged as
//! without a brain; with no brain nothing is sent; slow answers do not cost leases.

mod common;

use std::time::Duration;

use callscript_core::credentials::Secret;
use callscript_core::model::{Lane, SpeakerRole};
use callscript_core::queue;
use callscript_core::transcripts::SegmentRecord;
use callscript_judge::brain::{self, Brain, BrainConfig, Prices};
use callscript_judge::lane::{JudgeConfig, JudgeLane};
use callscript_judge::lead::{assess, CallFacts};
use callscript_testkit::vendors::openai::{review_content, FakeOpenAi, Reply};
use callscript_testkit::{create_org, TestDatabase};
use chrono::Utc;
use common::{interested_opening, lane, segment, transcribed_call, DISCLOSURE};
use serde_json::{json, Value};
use tokio_postgres::GenericClient;
use uuid::Uuid;

use SpeakerRole::{Agent, Customer};

const MODEL: &str = "qwen2.5-7b-instruct";
const API_KEY: &str = "sk-test-0123456789";

/// A lane asking `fake` (key set, $0.50 and $1.50 per million tokens), answers due within
/// `timeout`.
fn lane_with_brain(db: &TestDatabase, fake: &FakeOpenAi, timeout: Duration) -> JudgeLane {
    let config = BrainConfig {
        api_key: Some(Secret::new(API_KEY)),
        timeout,
        prices: Prices {
            input_usd_per_mtok: 0.5,
            output_usd_per_mtok: 1.5,
        },
        ..BrainConfig::new(fake.base_url(), MODEL)
    };
    JudgeLane {
        brain: Some(Brain::new(config).unwrap()),
        ..lane(db)
    }
}

/// A buyer who reads out a card number: hot, flagged, redacted.
fn buyer() -> Vec<SegmentRecord> {
    let mut segments = interested_opening();
    segments.extend([
        segment(
            15.0,
            19.0,
            Customer,
            "That sounds good. Sign me up. My card number is four one one one one one one one",
        ),
        segment(
            19.5,
            23.0,
            Customer,
            "one one one one one one one one, expiry next May.",
        ),
    ]);
    segments
}

/// A customer who mentions `word` (the fake server's cue) and a price worry.
fn ordinary(word: &str) -> Vec<SegmentRecord> {
    vec![
        segment(0.0, 4.0, Agent, DISCLOSURE),
        segment(
            5.0,
            10.0,
            Customer,
            &format!("We have a {word} garden. It's a bit too expensive for us right now."),
        ),
        segment(11.0, 13.0, Agent, "I understand. Thanks for your time."),
    ]
}

/// The rule engine's summary of `segments` for a call started now (in UTC, the test org's
/// time zone), as the lane computes it.
fn rule_summary(segments: &[SegmentRecord]) -> String {
    let facts = CallFacts {
        duration_ms: segments.last().map(|s| s.end_ms + 1000),
        ..CallFacts::default()
    };
    assess(segments, &facts, Utc::now().with_timezone(&chrono_tz::UTC)).summary
}

/// The call's communication: summary and brain.
async fn communication(client: &impl GenericClient, call: Uuid) -> (String, Option<Value>) {
    let row = client
        .query_one(
            "SELECT summary, brain FROM crm.lead_communications WHERE call_id = $1",
            &[&call],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

async fn flag_rules(client: &impl GenericClient, call: Uuid) -> Vec<String> {
    client
        .query(
            "SELECT rule_id FROM core.qa_flags WHERE call_id = $1 ORDER BY rule_id",
            &[&call],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

/// The call's usage rows: (lane, model, prompt tokens, completion tokens, cost as text).
async fn usage(
    client: &impl GenericClient,
    call: Uuid,
) -> Vec<(String, Option<String>, i64, i64, String)> {
    client
        .query(
            "SELECT lane, model, prompt_tokens, completion_tokens, cost_usd::text
             FROM core.usage WHERE call_id = $1",
            &[&call],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
        .collect()
}

#[tokio::test]
async fn an_answer_is_the_calls_summary_objections_and_next_action_with_its_cost() {
    let db = TestDatabase::new(4).await;
    let client = db.client().await;
    let org = create_org(&**client, "acme").await;
    // Sales hear of leads turning hot (the secret is only needed to deliver).
    client
        .execute(
            "INSERT INTO core.notification_channels (org_id, name, kind, event_kinds)
             VALUES ($1, 'sales', 'webhook', '{hot_lead}')",
            &[&org],
        )
        .await
        .unwrap();
    let call = transcribed_call(&**client, org, "buyer", buyer()).await;
    let fake = FakeOpenAi::start().await;

    let judge = lane_with_brain(&db, &fake, Duration::from_secs(10));
    let report = judge.run_batch().await.unwrap().unwrap();
    assert_eq!(
        (report.judged, report.brain_answers, report.brain_fallbacks),
        (1, 1, 0),
        "{report:?}"
    );
    assert_eq!((report.redacted, report.hot), (1, 1), "{report:?}");

    let answer: Value = serde_json::from_str(&review_content()).unwrap();
    let (summary, stored) = communication(&**client, call).await;
    assert_eq!(summary, answer["summary"].as_str().unwrap());
    let stored = stored.expect("the brain's review is stored");
    assert_eq!(stored["model"], MODEL);
    assert_eq!(stored["objections"], answer["objections"]);
    assert_eq!(stored["next_best_action"], answer["next_best_action"]);
    assert_eq!(stored["next_best_action"]["action"], "call_back");
    // The rule engine still judges: flags and the lead are its own.
    assert!(
        flag_rules(&**client, call)
            .await
            .contains(&"payment-card-spoken".to_owned()),
        "flags as without a brain"
    );

    // 1000 prompt tokens at $0.50 and 200 completion tokens at $1.50 per million.
    assert_eq!(
        usage(&**client, call).await,
        [(
            "judge".to_owned(),
            Some(MODEL.to_owned()),
            1000,
            200,
            "0.000800".to_owned()
        )]
    );

    // The hot-lead alert carries the LLM's summary.
    let alert: Value = client
        .query_one(
            "SELECT payload FROM core.notifications WHERE event_kind = 'hot_lead'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(alert["summary"], answer["summary"]);

    // What was sent: the model, the schema, the key, the transcript redacted.
    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(
        request.authorization.as_deref(),
        Some(format!("Bearer {API_KEY}").as_str())
    );
    assert_eq!(request.body["model"], MODEL);
    assert_eq!(request.body["temperature"], 0);
    let format = &request.body["response_format"];
    assert_eq!(format["type"], "json_schema");
    assert_eq!(format["json_schema"]["name"], "call_review");
    assert_eq!(format["json_schema"]["strict"], true);
    // The schema minus the string lengths OpenAI's strict mode refuses; the system prompt has
    // them, and the answer was checked against them.
    let sent = &format["json_schema"]["schema"];
    assert_eq!(sent, brain::decoding_schema());
    let sent_text = sent.to_string();
    assert!(!sent_text.contains("minLength") && !sent_text.contains("maxLength"));
    assert_eq!(sent["properties"]["objections"]["maxItems"], 10);
    assert_eq!(
        sent["properties"]["next_best_action"]["properties"]["action"]["enum"],
        brain::schema()["properties"]["next_best_action"]["properties"]["action"]["enum"]
    );
    assert!(request.message("system").contains("\"maxLength\":1200"));
    let user = request.message("user");
    assert!(
        user.contains("[0:05] CUSTOMER: Yes I'm interested. How much does the installation cost?"),
        "{user}"
    );
    assert!(user.contains("[card ending 1111]"), "{user}");
    assert!(!user.contains("four one one one"), "{user}");
    assert!(!user.contains("4111"), "{user}");
    assert!(user.contains("payment-card-spoken"), "the findings: {user}");
    assert!(request.message("system").contains("next_best_action"));
}

#[tokio::test]
async fn bad_answers_leave_the_call_judged_as_without_a_brain() {
    let db = TestDatabase::new(4).await;
    let client = db.client().await;
    let org = create_org(&**client, "acme").await;
    let fake = FakeOpenAi::start().await;
    let mut wrong_action: Value = serde_json::from_str(&review_content()).unwrap();
    wrong_action["next_best_action"]["action"] = json!("call_later");
    let mut missing_field: Value = serde_json::from_str(&review_content()).unwrap();
    missing_field.as_object_mut().unwrap().remove("objections");
    // (the call's cue word, the server's answer, tokens reported)
    let cases = [
        (
            "marigold",
            Reply::Content("Sure! The customer wants a quote.".into()),
            true,
        ),
        ("tulip", Reply::json(&wrong_action), true),
        ("daisy", Reply::json(&missing_field), true),
        ("orchid", Reply::Status(500), false),
        ("lily", Reply::Delayed(Duration::from_secs(4)), false),
    ];
    let mut calls = Vec::new();
    for (word, reply, _) in &cases {
        fake.reply_when(word, reply.clone());
        calls.push(transcribed_call(&**client, org, word, ordinary(word)).await);
    }

    let judge = lane_with_brain(&db, &fake, Duration::from_secs(1));
    let report = judge.run_batch().await.unwrap().unwrap();
    assert_eq!(
        (report.judged, report.failed, report.brain_answers),
        (5, 0, 0),
        "{report:?}"
    );
    assert_eq!(report.brain_fallbacks, 5, "{report:?}");
    assert_eq!(fake.requests().len(), 5);

    let mut with_fallbacks = Vec::new();
    for ((word, _, tokens_reported), call) in cases.iter().zip(&calls) {
        let (summary, stored) = communication(&**client, *call).await;
        assert_eq!(summary, rule_summary(&ordinary(word)), "{word}");
        assert_eq!(stored, None, "{word}");
        let expected_usage = if *tokens_reported { 1 } else { 0 };
        let rows = usage(&**client, *call).await;
        assert_eq!(rows.len(), expected_usage, "{word}: {rows:?}");
        if let Some(row) = rows.first() {
            assert_eq!((row.2, row.3, row.4.as_str()), (1000, 200, "0.000800"));
        }
        with_fallbacks.push((summary, flag_rules(&**client, *call).await));
    }

    // Judged again without a brain: the same summaries and flags.
    queue::redo(&**client, Lane::Judge, Some(org))
        .await
        .unwrap();
    let again = lane(&db).run_batch().await.unwrap().unwrap();
    assert_eq!(again.judged, 5);
    let mut without_brain = Vec::new();
    for call in &calls {
        let (summary, _) = communication(&**client, *call).await;
        without_brain.push((summary, flag_rules(&**client, *call).await));
    }
    assert_eq!(with_fallbacks, without_brain);
}

#[tokio::test]
async fn without_a_brain_nothing_is_sent_and_the_rule_summary_stands() {
    let db = TestDatabase::new(4).await;
    let client = db.client().await;
    let org = create_org(&**client, "acme").await;
    let fake = FakeOpenAi::start().await;
    let call = transcribed_call(&**client, org, "buyer", buyer()).await;

    let report = lane(&db).run_batch().await.unwrap().unwrap();
    assert_eq!(report.judged, 1);
    assert_eq!((report.brain_answers, report.brain_fallbacks), (0, 0));
    assert!(fake.requests().is_empty());
    let (summary, stored) = communication(&**client, call).await;
    assert_eq!(summary, rule_summary(&buyer()));
    assert_eq!(stored, None);
    assert!(usage(&**client, call).await.is_empty());
}

#[tokio::test]
async fn leases_are_renewed_while_the_brain_answers() {
    let db = TestDatabase::new(4).await;
    let client = db.client().await;
    let org = create_org(&**client, "acme").await;
    let fake = FakeOpenAi::start().await;
    fake.reply_when("slowpoke", Reply::Delayed(Duration::from_secs(3)));
    transcribed_call(&**client, org, "quick", ordinary("sunflower")).await;
    transcribed_call(&**client, org, "slow", ordinary("slowpoke")).await;

    // Leases of 1.5 s, an answer after 3 s, and the rescuer running all along: only renewed
    // leases survive.
    let judge = JudgeLane {
        config: JudgeConfig {
            lease_for: Duration::from_millis(1500),
            ..JudgeConfig::default()
        },
        ..lane_with_brain(&db, &fake, Duration::from_secs(10))
    };
    let rescuer = async {
        let client = db.client().await;
        loop {
            client
                .execute("SELECT core.rescue_expired_leases()", &[])
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let report = tokio::select! {
        report = judge.run_batch() => report.unwrap().unwrap(),
        _ = rescuer => unreachable!("the rescuer runs until the batch is done"),
    };
    assert_eq!(
        (report.judged, report.lost, report.brain_answers),
        (2, 0, 2),
        "{report:?}"
    );
}
