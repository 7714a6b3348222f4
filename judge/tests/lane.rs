//! The judge lane against the real Postgres: transcribed calls become judged with their flags
//! and evidence, card and social security numbers leave the stored transcript, and re-judging
//! keeps what reviewers did and every number's flag.

mod common;

use callscript_core::model::SpeakerRole;
use callscript_core::queue;
use callscript_core::transcripts;
use callscript_judge::report;
use callscript_judge::rulebook_store::{self, Added, Scope};
use callscript_judge::Rulebook;
use callscript_testkit::{create_org, TestDatabase};
use chrono::TimeZone;
use common::{lane, segment, transcribed_call};
use tokio_postgres::GenericClient;
use uuid::Uuid;

async fn flags(
    client: &impl GenericClient,
    call: Uuid,
) -> Vec<(String, String, Option<i32>, String)> {
    client
        .query(
            "SELECT rule_id, review_status::text, start_ms, evidence_text FROM core.qa_flags
             WHERE call_id = $1 ORDER BY rule_id, start_ms",
            &[&call],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect()
}

fn rule_ids(flags: &[(String, String, Option<i32>, String)]) -> Vec<&str> {
    flags.iter().map(|f| f.0.as_str()).collect()
}

#[tokio::test]
async fn flags_with_evidence_redaction_and_a_clean_call() {
    let db = TestDatabase::new(4).await;
    let client = db.client().await;
    let org = create_org(&**client, "acme").await;
    use SpeakerRole::{Agent, Customer};
    let bad = transcribed_call(
        &**client,
        org,
        "bad",
        vec![
            segment(
                0.0,
                4.0,
                Agent,
                "Hi, this is Sam from Acme Insurance, how are you today?",
            ),
            segment(
                5.0,
                9.0,
                Customer,
                "Fine. My card number is four one one one one one one one",
            ),
            segment(
                9.5,
                13.0,
                Customer,
                "one one one one one one one one, expiry next May.",
            ),
            segment(
                14.0,
                18.0,
                Agent,
                "Great, and with us you get guaranteed approval.",
            ),
            segment(
                19.0,
                23.0,
                Customer,
                "Actually, please put me on your do not call list.",
            ),
        ],
    )
    .await;
    let clean = transcribed_call(
        &**client,
        org,
        "clean",
        vec![
            segment(
                0.0,
                5.0,
                Agent,
                "Hello, this call may be recorded for quality and training.",
            ),
            segment(6.0, 9.0, Customer, "Sure, I would like a quote for my car."),
        ],
    )
    .await;

    let report = lane(&db).run_batch().await.unwrap().unwrap();
    assert_eq!(
        (report.judged, report.flagged, report.redacted),
        (2, 1, 1),
        "{report:?}"
    );
    let stored = flags(&**client, bad).await;
    assert_eq!(
        rule_ids(&stored),
        [
            "do-not-call-request",
            "payment-card-spoken",
            "prohibited-claim-approval",
            "recording-disclosure-missing",
        ],
        "{stored:?}"
    );
    let card = &stored[1];
    assert_eq!(card.2, Some(5_000));
    assert!(card.3.contains("1111"), "{card:?}");
    assert!(
        !card.3.contains("4111"),
        "evidence keeps only the last 4: {card:?}"
    );
    let claim = &stored[2];
    assert_eq!(claim.2, Some(14_000));
    assert!(claim.3.contains("guaranteed approval"), "{claim:?}");
    assert!(flags(&**client, clean).await.is_empty());

    // The stored transcript no longer holds the card number, in segments or text.
    let transcript = transcripts::load(&**client, bad).await.unwrap().unwrap();
    let all = format!(
        "{} {}",
        transcript.text,
        transcript
            .segments
            .iter()
            .map(|s| s.text.as_str())
            .collect::<String>()
    );
    assert!(!all.contains("four one one one one one"), "{all}");
    assert!(all.contains("1111"), "{all}");
    let states = client
        .query(
            "SELECT external_id, state::text, flagged FROM core.calls ORDER BY external_id",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(states[0].get::<_, &str>(1), "judged");
    assert_eq!(states[0].get::<_, Option<bool>>(2), Some(true));
    assert_eq!(states[1].get::<_, Option<bool>>(2), Some(false));
}

#[tokio::test]
async fn rejudging_replaces_machine_flags_and_keeps_reviews() {
    let db = TestDatabase::new(4).await;
    let client = db.client().await;
    let org = create_org(&**client, "acme").await;
    let call = transcribed_call(
        &**client,
        org,
        "call",
        vec![
            segment(
                0.0,
                4.0,
                SpeakerRole::Agent,
                "Hi, it's Sam. There is no risk at all.",
            ),
            segment(5.0, 9.0, SpeakerRole::Customer, "Stop calling me."),
        ],
    )
    .await;
    lane(&db).run_batch().await.unwrap().unwrap();
    let first = flags(&**client, call).await;
    assert_eq!(
        rule_ids(&first),
        [
            "do-not-call-request",
            "prohibited-claim-risk",
            "recording-disclosure-missing"
        ]
    );
    // A reviewer dismisses the disclosure flag with a note.
    client
        .execute(
            "UPDATE core.qa_flags SET review_status = 'dismissed', note = 'disclosed by IVR'
             WHERE call_id = $1 AND rule_id = 'recording-disclosure-missing'",
            &[&call],
        )
        .await
        .unwrap();

    // A new rulebook version without the risk rule; the call is judged again.
    let text = callscript_judge::DEFAULT_RULEBOOK.replace(
        "id = \"prohibited-claim-risk\"",
        "id = \"prohibited-claim-risk-v2\"",
    );
    let text = text.replacen("version = ", "version = \"2\"\n# was: ", 1);
    let rulebook = Rulebook::parse(&text).unwrap();
    assert_eq!(rulebook.reference(), "default@2");
    // Stored for the organization and applied by name: its latest version judges.
    let added = rulebook_store::add(&**client, org, &text).await.unwrap();
    assert_eq!(
        added,
        Added::Stored {
            reference: "default@2".into()
        }
    );
    rulebook_store::apply(&**client, org, Scope::Organization, Some("default"))
        .await
        .unwrap();
    let sent = queue::redo(&**client, callscript_core::model::Lane::Judge, Some(org))
        .await
        .unwrap();
    assert_eq!(sent, 1);
    lane(&db).run_batch().await.unwrap().unwrap();
    let second = flags(&**client, call).await;
    assert_eq!(
        rule_ids(&second),
        [
            "do-not-call-request",
            "prohibited-claim-risk-v2",
            "recording-disclosure-missing"
        ],
        "the old machine flag is gone, the reviewed one kept once: {second:?}"
    );
    let reviewed = &second[2];
    assert_eq!(reviewed.1, "dismissed");
    let note: String = client
        .query_one(
            "SELECT note FROM core.qa_flags WHERE call_id = $1 AND rule_id = $2",
            &[&call, &"recording-disclosure-missing"],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(note, "disclosed by IVR");
    // Idempotent: judging again with the same rulebook changes nothing.
    queue::redo(&**client, callscript_core::model::Lane::Judge, Some(org))
        .await
        .unwrap();
    lane(&db).run_batch().await.unwrap().unwrap();
    assert_eq!(flags(&**client, call).await.len(), 3);
    let versions: Vec<String> = client
        .query(
            "SELECT DISTINCT rulebook_version FROM core.qa_flags WHERE call_id = $1
             AND review_status = 'open' ORDER BY 1",
            &[&call],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(versions, ["default@2"]);
}

#[tokio::test]
async fn each_call_is_judged_by_its_campaigns_or_its_organizations_rulebook() {
    let db = TestDatabase::new(4).await;
    let client = db.client().await;
    let org = create_org(&**client, "acme").await;
    let strict = "[rulebook]\nname = \"strict\"\nversion = \"1\"\n\n[[rules]]\nid = \"no-hello\"\n\
                  kind = \"forbidden_phrase\"\ncategory = \"quality\"\nseverity = \"low\"\n\
                  phrases = [\"hello\"]\n";
    let lenient = strict
        .replace("name = \"strict\"", "name = \"lenient\"")
        .replace("id = \"no-hello\"", "id = \"no-goodbye\"")
        .replace("[\"hello\"]", "[\"goodbye\"]");
    for text in [strict, lenient.as_str()] {
        rulebook_store::add(&**client, org, text).await.unwrap();
    }
    // The same file again changes nothing; other rules under a stored version are refused.
    assert_eq!(
        rulebook_store::add(&**client, org, strict).await.unwrap(),
        Added::Unchanged {
            reference: "strict@1".into()
        }
    );
    let changed = strict.replace("low", "high");
    let error = rulebook_store::add(&**client, org, &changed)
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("strict@1 is already stored"), "{error}");
    let error = rulebook_store::apply(&**client, org, Scope::Organization, Some("strict@9"))
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("no rulebook strict@9"), "{error}");

    let campaign = callscript_core::orgs::ensure_campaign(
        &**client,
        org,
        callscript_core::model::Source::Upload,
        "spring",
        "Spring sale",
    )
    .await
    .unwrap();
    rulebook_store::apply(&**client, org, Scope::Organization, Some("strict"))
        .await
        .unwrap();
    rulebook_store::apply(
        &**client,
        org,
        Scope::Campaign("Spring sale"),
        Some("lenient@1"),
    )
    .await
    .unwrap();
    let said = || {
        vec![segment(
            0.0,
            3.0,
            SpeakerRole::Agent,
            "Hello there, and goodbye.",
        )]
    };
    let plain = transcribed_call(&**client, org, "plain", said()).await;
    let in_campaign = transcribed_call(&**client, org, "in-campaign", said()).await;
    client
        .execute(
            "UPDATE core.calls SET campaign_id = $2 WHERE id = $1",
            &[&in_campaign, &campaign],
        )
        .await
        .unwrap();
    lane(&db).run_batch().await.unwrap().unwrap();
    assert_eq!(rule_ids(&flags(&**client, plain).await), ["no-hello"]);
    assert_eq!(
        rule_ids(&flags(&**client, in_campaign).await),
        ["no-goodbye"]
    );

    let listed = rulebook_store::list(&**client, org).await.unwrap();
    let applied: Vec<(String, Vec<String>)> = listed
        .iter()
        .map(|r| (format!("{}@{}", r.name, r.version), r.applied_to.clone()))
        .collect();
    assert_eq!(
        applied,
        [
            (
                "lenient@1".to_owned(),
                vec!["campaign Spring sale".to_owned()]
            ),
            ("strict@1".to_owned(), vec!["organization".to_owned()]),
        ]
    );
}

/// The call's flags as the judge wrote them: (rule, start, end, evidence).
async fn machine_flags(
    client: &impl GenericClient,
    call: Uuid,
) -> Vec<(String, Option<i32>, Option<i32>, String)> {
    client
        .query(
            "SELECT rule_id, start_ms, end_ms, evidence_text FROM core.qa_flags
             WHERE call_id = $1 ORDER BY start_ms, rule_id",
            &[&call],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect()
}

/// Everything stored about `call` that could hold a number said on it: transcript, segments,
/// flag evidence, number findings, the CRM copy and summary.
async fn stored_text(client: &impl GenericClient, call: Uuid) -> String {
    client
        .query_one(
            "SELECT concat_ws(' | ',
                 (SELECT text FROM core.transcripts WHERE call_id = $1),
                 (SELECT string_agg(text, ' ') FROM core.transcript_segments WHERE call_id = $1),
                 (SELECT string_agg(evidence_text, ' ') FROM core.qa_flags WHERE call_id = $1),
                 (SELECT string_agg(p::text, ' ') FROM core.pii_findings p WHERE call_id = $1),
                 (SELECT concat_ws(' ', transcript, summary) FROM crm.lead_communications
                  WHERE call_id = $1))",
            &[&call],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn judging_again_keeps_card_and_ssn_flags_and_both_are_redacted() {
    let db = TestDatabase::new(4).await;
    let client = db.client().await;
    let org = create_org(&**client, "acme").await;
    use SpeakerRole::{Agent, Customer};
    let call = transcribed_call(
        &**client,
        org,
        "pays",
        vec![
            segment(0.0, 4.0, Agent, common::DISCLOSURE),
            segment(
                5.0,
                9.0,
                Customer,
                "My card number is four one one one one one one one",
            ),
            segment(9.0, 9.5, Agent, "Mhm."),
            segment(10.0, 14.0, Customer, "one one one one one one one one."),
            segment(14.5, 16.0, Agent, "And the expiry date?"),
            segment(16.5, 18.0, Customer, "twelve twenty eight"),
            segment(19.0, 21.0, Agent, "And your social security number?"),
            segment(21.5, 24.0, Customer, "It's 078-05-1120."),
        ],
    )
    .await;
    let first = lane(&db).run_batch().await.unwrap().unwrap();
    assert_eq!((first.flagged, first.redacted), (1, 2), "{first:?}");
    let expected = vec![
        (
            "payment-card-spoken".to_owned(),
            Some(5_000),
            Some(14_000),
            "My card number is [card ending 1111]".to_owned(),
        ),
        (
            "ssn-spoken".to_owned(),
            Some(21_500),
            Some(24_000),
            "It's [ssn ending 1120]".to_owned(),
        ),
    ];
    assert_eq!(machine_flags(&**client, call).await, expected);
    let stored = stored_text(&**client, call).await;
    assert!(stored.contains("[ssn ending 1120]"), "{stored}");
    for clear in [
        "078-05-1120",
        "05-1120",
        "four one one one",
        "one one one one one",
    ] {
        assert!(!stored.contains(clear), "{clear:?} is stored: {stored}");
    }
    let findings: Vec<(String, String, String)> = client
        .query(
            "SELECT kind::text, last_four, detected_by FROM core.pii_findings
             WHERE call_id = $1 ORDER BY first_segment",
            &[&call],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let finding = |kind: &str, last_four: &str| (kind.into(), last_four.into(), "judge".into());
    assert_eq!(findings, [finding("card", "1111"), finding("ssn", "1120")]);

    // Judged again (`judge --again`): the same flags from the stored findings, nothing new to
    // redact, the call still flagged.
    queue::redo(&**client, callscript_core::model::Lane::Judge, Some(org))
        .await
        .unwrap();
    let again = lane(&db).run_batch().await.unwrap().unwrap();
    assert_eq!((again.flagged, again.redacted), (1, 0), "{again:?}");
    assert_eq!(machine_flags(&**client, call).await, expected);
    assert_eq!(stored_text(&**client, call).await, stored);
    let flagged: Option<bool> = client
        .query_one("SELECT flagged FROM core.calls WHERE id = $1", &[&call])
        .await
        .unwrap()
        .get(0);
    assert_eq!(flagged, Some(true));

    // Transcribed again, the call's old findings go with the segments they pointed into.
    callscript_testkit::save_transcript(
        &**client,
        call,
        org,
        vec![segment(0.0, 4.0, Agent, common::DISCLOSURE)],
    )
    .await;
    let left: i64 = client
        .query_one(
            "SELECT count(*) FROM core.pii_findings WHERE call_id = $1",
            &[&call],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
}

#[tokio::test]
async fn one_request_one_outburst_one_card_are_one_flag_each_and_the_report_counts_them() {
    let db = TestDatabase::new(4).await;
    let client = db.client().await;
    let org = create_org(&**client, "acme").await;
    use SpeakerRole::{Agent, Customer};
    let started = chrono::Utc.with_ymd_and_hms(2026, 11, 5, 15, 0, 0).unwrap();
    let said = |text: &str| {
        let mut segments = vec![segment(0.0, 4.0, Agent, common::DISCLOSURE)];
        segments.extend(text.split(" | ").enumerate().map(|(i, text)| {
            let start = 5.0 + 3.0 * i as f64;
            let role = if text.starts_with("AGENT ") {
                Agent
            } else {
                Customer
            };
            segment(start, start + 2.5, role, text.trim_start_matches("AGENT "))
        }));
        segments
    };
    let calls = [
        (
            "dnc",
            "Stop calling me, take me off your list, do not call me again.",
        ),
        (
            "abuse",
            "I have a question. | AGENT Oh shut up, you stupid idiot.",
        ),
        (
            "card",
            "four one one one, one one one one, one one one one, one one one one | \
             AGENT Sorry, after the first four? | one one one one, one one one one, one one one \
             one | AGENT And the expiry date? | twelve twenty eight",
        ),
    ];
    for (id, text) in calls {
        common::transcribed(
            &**client,
            callscript_testkit::downloaded_call(org, id, started),
            said(text),
        )
        .await;
    }
    let report = lane(&db).run_batch().await.unwrap().unwrap();
    let flags: Vec<(String, String, String)> = client
        .query(
            "SELECT c.external_id, f.rule_id, f.evidence_text
             FROM core.qa_flags f JOIN core.calls c ON c.id = f.call_id ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        (report.flagged, report.flags),
        (3, 3),
        "{report:?} {flags:?}"
    );
    let flag = |call: &str, rule: &str, evidence: &str| {
        (call.to_owned(), rule.to_owned(), evidence.to_owned())
    };
    assert_eq!(
        flags,
        [
            flag(
                "abuse",
                "agent-abusive-language",
                "shut up, you stupid idiot"
            ),
            flag("card", "payment-card-spoken", "[card ending 1111]"),
            flag(
                "dnc",
                "do-not-call-request",
                "Stop calling me, take me off your list, do not call me again"
            ),
        ]
    );

    // A second call with a card: the report counts flags (one per finding) and calls.
    common::transcribed(
        &**client,
        callscript_testkit::downloaded_call(org, "card-2", started),
        said("It's 5555 5555 5555 4444."),
    )
    .await;
    lane(&db).run_batch().await.unwrap().unwrap();
    let day = chrono::NaiveDate::from_ymd_opt(2026, 11, 5).unwrap();
    let daily = report::daily(&**client, org, day, started).await.unwrap();
    let counts: Vec<(&str, i64, i64, i64)> = daily
        .flags_by_rule
        .iter()
        .map(|r| (r.rule_id.as_str(), r.flags, r.calls, r.open))
        .collect();
    assert_eq!(
        counts,
        [
            ("payment-card-spoken", 2, 2, 2),
            ("agent-abusive-language", 1, 1, 1),
            ("do-not-call-request", 1, 1, 1),
        ]
    );
    let text = daily.to_text();
    assert!(
        text.contains("flags by rule (one flag per finding):"),
        "{text}"
    );
    assert!(text.contains("2 flags on 2 calls (2 open)"), "{text}");
    assert!(text.contains("1 flag on 1 call (1 open)"), "{text}");
    let json = serde_json::to_value(&daily).unwrap();
    assert_eq!(json["flags_by_rule"][0]["flags"], 2);
    assert_eq!(json["flags_by_rule"][0]["calls"], 2);
}

#[tokio::test]
async fn a_call_whose_roles_are_a_guess_is_marked_for_review_and_its_request_still_counts() {
    let db = TestDatabase::new(4).await;
    let client = db.client().await;
    let org = create_org(&**client, "acme").await;
    use SpeakerRole::{Agent, Customer};
    // A mono call whose speakers the worker could not tell apart: the customer's request came
    // out as the agent's.
    let mixed_up = || {
        vec![
            segment(0.0, 4.0, Customer, common::DISCLOSURE),
            segment(5.0, 8.0, Agent, "Stop calling me, take me off your list."),
        ]
    };
    let unsure = transcribed_call(&**client, org, "unsure", mixed_up()).await;
    let sure = transcribed_call(&**client, org, "sure", mixed_up()).await;
    for (call, confidence) in [(unsure, 0.5f32), (sure, 0.9)] {
        client
            .execute(
                "UPDATE core.transcripts SET role_confidence = $2 WHERE call_id = $1",
                &[&call, &confidence],
            )
            .await
            .unwrap();
    }
    lane(&db).run_batch().await.unwrap().unwrap();
    let unsure_flags = flags(&**client, unsure).await;
    assert_eq!(
        rule_ids(&unsure_flags),
        ["do-not-call-request", "speaker-roles-uncertain"]
    );
    assert_eq!(
        unsure_flags[1].3,
        "speaker roles assigned with confidence 0.50: who said what needs review; rules about \
         one party read every party"
    );
    let role: Option<String> = client
        .query_one(
            "SELECT role::text FROM core.qa_flags WHERE call_id = $1 AND rule_id = $2",
            &[&unsure, &"do-not-call-request"],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(role, None);
    // Trusted roles: the "customer" gave no disclosure and the "agent" asked to stop; no review.
    assert_eq!(
        rule_ids(&flags(&**client, sure).await),
        ["recording-disclosure-missing"]
    );
}
