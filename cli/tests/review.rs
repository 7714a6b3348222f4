//! `callscript flags list|review`, `calls show` and `org members` as a reviewer runs them,
//! against calls, transcripts and flags written straight into a test database.

use std::process::Command;

use callscript_core::model::{Source, SpeakerRole};
use callscript_core::orgs;
use callscript_core::queue;
use callscript_core::transcripts::SegmentRecord;
use callscript_review::members::{self, Role};
use callscript_testkit::{create_org, downloaded_call, save_transcript, TestDatabase};
use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio_postgres::GenericClient;
use uuid::Uuid;

/// Runs the binary against `db`: (exit status, stdout, stderr).
fn callscript_on(db: &TestDatabase, args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_callscript"))
        .env("DATABASE_URL", &db.url.url)
        .args(args)
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The stdout of a run that must succeed.
fn ok(db: &TestDatabase, args: &[&str]) -> String {
    let (status, stdout, stderr) = callscript_on(db, args);
    assert_eq!(status, 0, "callscript {args:?}: {stderr}");
    stdout
}

/// The stderr of a run that must fail with `status` (1: an error, 2: a usage error).
fn fails(db: &TestDatabase, status: i32, args: &[&str]) -> String {
    let (code, stdout, stderr) = callscript_on(db, args);
    assert_eq!(code, status, "callscript {args:?}: {stdout}{stderr}");
    stderr
}

/// The ids of a JSON page's flags, in order, and its total.
fn page_ids(db: &TestDatabase, args: &[&str]) -> (Vec<Uuid>, i64) {
    let mut args = args.to_vec();
    args.extend(["--format", "json"]);
    let page: Value = serde_json::from_str(&ok(db, &args)).unwrap();
    let ids = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|flag| flag["id"].as_str().unwrap().parse().unwrap())
        .collect();
    (ids, page["total"].as_i64().unwrap())
}

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

fn segment(start_ms: i32, end_ms: i32, role: SpeakerRole, text: &str) -> SegmentRecord {
    let channel = if role == SpeakerRole::Agent { 0 } else { 1 };
    SegmentRecord {
        start_ms,
        end_ms,
        speaker: Some(format!("SPEAKER_{channel:02}")),
        channel: Some(channel),
        role: Some(role),
        text: text.to_owned(),
        avg_logprob: Some(-0.2),
        no_speech_prob: Some(0.01),
    }
}

/// A judged upload call with `segments` as its transcript (and a second of audio after them).
async fn judged_call(
    client: &impl GenericClient,
    org: Uuid,
    campaign: Option<Uuid>,
    external_id: &str,
    started: &str,
    segments: Vec<SegmentRecord>,
) -> Uuid {
    let mut call = downloaded_call(org, external_id, at(started));
    call.campaign_id = campaign;
    call.caller_number = Some("+15550001111".into());
    call.callee_number = Some("+15550002222".into());
    call.duration_ms = segments.last().map(|s| s.end_ms + 1000);
    let call_id = queue::enqueue(client, &call).await.unwrap().call_id;
    client
        .execute(
            "UPDATE core.calls SET state = 'judged' WHERE id = $1",
            &[&call_id],
        )
        .await
        .unwrap();
    save_transcript(client, call_id, org, segments).await;
    call_id
}

/// Where a flag's evidence is: (start, end, speaker, role); `None` for a whole-call finding.
type Place = Option<(i32, i32, &'static str, &'static str)>;

/// An open machine flag on `call`, and the call's `flagged` set as the judge sets it.
async fn flag(
    client: &impl GenericClient,
    call: Uuid,
    rule: &str,
    category: &str,
    severity: &str,
    evidence: &str,
    place: Place,
) -> Uuid {
    let (start, end, speaker, role) = match place {
        Some((start, end, speaker, role)) => (Some(start), Some(end), Some(speaker), Some(role)),
        None => (None, None, None, None),
    };
    let id = client
        .query_one(
            "INSERT INTO core.qa_flags (call_id, org_id, rule_id, rulebook_version, category,
               severity, evidence_text, start_ms, end_ms, speaker, role)
             SELECT id, org_id, $2, 'default@1', $3::text::core.flag_category,
               $4::text::core.flag_severity, $5, $6, $7, $8, $9::text::core.speaker_role
             FROM core.calls WHERE id = $1
             RETURNING id",
            &[
                &call, &rule, &category, &severity, &evidence, &start, &end, &speaker, &role,
            ],
        )
        .await
        .unwrap()
        .get(0);
    callscript_core::flags::refresh_flagged(client, call)
        .await
        .unwrap();
    id
}

async fn flagged(client: &impl GenericClient, call: Uuid) -> Option<bool> {
    client
        .query_one("SELECT flagged FROM core.calls WHERE id = $1", &[&call])
        .await
        .unwrap()
        .get(0)
}

/// Org a: call a1 (campaign Sales, 2026-11-05) with three flags, one of them of the whole
/// call, and call a2 (no campaign, 2026-11-03) with one; org b: one flag on 2026-11-05.
struct Seeded {
    a1: Uuid,
    a2: Uuid,
    /// a1's card number, high, in its second segment; the evidence holds a comma and quotes.
    card: Uuid,
    /// a1's missing disclosure, critical, of the whole call.
    disclosure: Uuid,
    /// a1's pricing, low, in its third segment.
    pricing: Uuid,
    /// a2's card number, medium.
    card_a2: Uuid,
    /// b's card number, high.
    card_b: Uuid,
}

async fn seed(db: &TestDatabase) -> Seeded {
    let client = db.client().await;
    let a = create_org(&**client, "a").await;
    let b = create_org(&**client, "b").await;
    let sales = orgs::ensure_campaign(&**client, a, Source::Upload, "camp-1", "Sales")
        .await
        .unwrap();
    let a1 = judged_call(
        &**client,
        a,
        Some(sales),
        "a-1",
        "2026-11-05T14:00:00Z",
        vec![
            segment(
                0,
                4000,
                SpeakerRole::Agent,
                "Thanks for calling Acme, this is Dana.",
            ),
            segment(
                4000,
                9500,
                SpeakerRole::Customer,
                "My card is 4111, can you \"charge\" it?",
            ),
            segment(
                9500,
                15000,
                SpeakerRole::Agent,
                "Sure, the total is 40 dollars.",
            ),
        ],
    )
    .await;
    let a2 = judged_call(
        &**client,
        a,
        None,
        "a-2",
        "2026-11-03T09:00:00Z",
        vec![segment(0, 3000, SpeakerRole::Customer, "Card 5500 0000.")],
    )
    .await;
    let b1 = judged_call(
        &**client,
        b,
        None,
        "b-1",
        "2026-11-05T10:00:00Z",
        vec![segment(0, 3000, SpeakerRole::Customer, "Card 4000 1234.")],
    )
    .await;
    let customer = |start, end| Some((start, end, "SPEAKER_01", "customer"));
    let card = flag(
        &**client,
        a1,
        "card-number",
        "compliance",
        "high",
        "card is 4111, \"charge\"",
        customer(5000, 6200),
    )
    .await;
    let disclosure = flag(
        &**client,
        a1,
        "missing-disclosure",
        "compliance",
        "critical",
        "no recording disclosure",
        None,
    )
    .await;
    let pricing = flag(
        &**client,
        a1,
        "pricing",
        "quality",
        "low",
        "the total is 40 dollars",
        Some((10_000, 14_000, "SPEAKER_00", "agent")),
    )
    .await;
    let card_a2 = flag(
        &**client,
        a2,
        "card-number",
        "compliance",
        "medium",
        "Card 5500",
        customer(0, 1500),
    )
    .await;
    let card_b = flag(
        &**client,
        b1,
        "card-number",
        "compliance",
        "high",
        "Card 4000",
        customer(0, 1500),
    )
    .await;
    Seeded {
        a1,
        a2,
        card,
        disclosure,
        pricing,
        card_a2,
        card_b,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flags_list_narrows_by_every_filter() {
    let db = TestDatabase::new(2).await;
    let s = seed(&db).await;

    // Newest call first; within a call, whole-call findings first, then by time.
    let org_a = vec![s.disclosure, s.card, s.pricing, s.card_a2];
    assert_eq!(page_ids(&db, &["flags", "list", "--org", "a"]), (org_a, 4));
    assert_eq!(
        page_ids(&db, &["flags", "list", "--org", "b"]),
        (vec![s.card_b], 1)
    );
    assert_eq!(page_ids(&db, &["flags", "list"]).1, 5);

    let a = ["flags", "list", "--org", "a"];
    let with = |extra: &[&str]| page_ids(&db, &[&a[..], extra].concat());
    assert_eq!(
        with(&["--severity", "high"]),
        (vec![s.disclosure, s.card], 2)
    );
    assert_eq!(
        with(&["--rule", "card-number"]),
        (vec![s.card, s.card_a2], 2)
    );
    assert_eq!(
        with(&["--campaign", "Sales"]),
        (vec![s.disclosure, s.card, s.pricing], 3)
    );
    assert_eq!(with(&["--campaign", "camp-1"]).1, 3);
    assert_eq!(with(&["--status", "open"]).1, 4);
    assert_eq!(with(&["--status", "dismissed"]), (vec![], 0));
    // A date is a whole day: --to 2026-11-03 includes that day.
    assert_eq!(
        with(&["--from", "2026-11-03", "--to", "2026-11-03"]),
        (vec![s.card_a2], 1)
    );
    assert_eq!(with(&["--from", "2026-11-05"]).1, 3);
    assert_eq!(
        with(&["--to", "2026-11-05T13:59:59Z"]),
        (vec![s.card_a2], 1)
    );
    assert_eq!(
        page_ids(
            &db,
            &[
                "flags",
                "list",
                "--rule",
                "card-number",
                "--severity",
                "high"
            ]
        ),
        (vec![s.card, s.card_b], 2)
    );

    let stderr = fails(&db, 2, &["flags", "list", "--severity", "urgent"]);
    assert!(stderr.contains("urgent"), "{stderr}");
    assert!(stderr.contains("critical"), "the accepted values: {stderr}");
    let stderr = fails(&db, 2, &["flags", "list", "--from", "yesterday"]);
    assert!(stderr.contains("\"yesterday\" is not a date"), "{stderr}");
    let stderr = fails(
        &db,
        1,
        &[
            "flags",
            "list",
            "--from",
            "2026-11-05",
            "--to",
            "2026-11-04",
        ],
    );
    assert!(stderr.contains("is not after --from"), "{stderr}");
    let stderr = fails(&db, 1, &["flags", "list", "--org", "nope"]);
    assert!(stderr.contains("nope"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flags_list_as_an_aligned_table_and_as_csv() {
    let db = TestDatabase::new(2).await;
    let s = seed(&db).await;

    let table = ok(&db, &["flags", "list", "--org", "a", "--limit", "2"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 4, "{table}");
    assert!(
        lines[0].starts_with("when              org  campaign  rule"),
        "{table}"
    );
    assert_eq!(lines[3], "2 of 4 flags (next: --offset 2)");
    // Every column starts where its header does: the flag ids line up under "flag".
    let flag_column = lines[0].find("flag").unwrap();
    assert_eq!(lines[1].find(&s.disclosure.to_string()), Some(flag_column));
    assert_eq!(lines[2].find(&s.card.to_string()), Some(flag_column));
    assert!(
        lines[1].starts_with(
            "2026-11-05 14:00  a    Sales     missing-disclosure  critical  open    -"
        ),
        "{table}"
    );
    assert!(lines[2].contains("  0:05  SPEAKER_01 (customer)  card is 4111, \"charge\""));
    let last = ok(&db, &["flags", "list", "--org", "a", "--offset", "2"]);
    assert!(last.ends_with("\n2 of 4 flags\n"), "the last page: {last}");
    let stderr = fails(&db, 2, &["flags", "list", "--limit", "0"]);
    assert!(stderr.contains("--limit"), "{stderr}");

    let csv = ok(
        &db,
        &[
            "flags",
            "list",
            "--org",
            "a",
            "--rule",
            "card-number",
            "--format",
            "csv",
        ],
    );
    // Each row ends in its flag's creation time (the database's clock), checked apart.
    let (rows, created) = csv_without_last_field(&csv);
    assert_eq!(
        rows,
        format!(
            "id,call_id,org_slug,campaign,call_started_at,caller_number,rule_id,\
             rulebook_version,category,severity,evidence,start_ms,end_ms,speaker,role,\
             review_status,reviewer,reviewed_at,note\r\n\
             {},{},a,Sales,2026-11-05T14:00:00Z,+15550001111,card-number,default@1,compliance,\
             high,\"card is 4111, \"\"charge\"\"\",5000,6200,SPEAKER_01,customer,open,,,\r\n\
             {},{},a,,2026-11-03T09:00:00Z,+15550001111,card-number,default@1,compliance,\
             medium,Card 5500,0,1500,SPEAKER_01,customer,open,,,\r\n",
            s.card, s.a1, s.card_a2, s.a2
        )
    );
    assert_eq!(created[0], "created_at");
    for at in &created[1..] {
        assert!(
            at.ends_with('Z') && at.parse::<DateTime<Utc>>().is_ok(),
            "{at}"
        );
    }
}

/// The CSV with each record's last field cut off, and those last fields in order.
fn csv_without_last_field(csv: &str) -> (String, Vec<String>) {
    let mut rows = String::new();
    let mut last = Vec::new();
    for record in csv.split_terminator("\r\n") {
        let (rest, field) = record.rsplit_once(',').unwrap();
        rows.push_str(&format!("{rest}\r\n"));
        last.push(field.to_owned());
    }
    (rows, last)
}

/// RFC 4180 records: quoted fields may hold commas, doubled quotes and line breaks.
fn parse_csv(csv: &str) -> Vec<Vec<String>> {
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = csv.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => record.push(std::mem::take(&mut field)),
            (false, '\r') if chars.peek() == Some(&'\n') => {
                chars.next();
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
            }
            (false, c) => field.push(c),
        }
    }
    records
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_and_json_exports_have_the_same_fields_and_values() {
    let db = TestDatabase::new(2).await;
    let s = seed(&db).await;
    let client = db.client().await;
    let org = orgs::by_slug(&**client, "a").await.unwrap();
    members::add(&**client, org.id, "rev@a.example", None, Role::Reviewer)
        .await
        .unwrap();
    // A reviewed flag, so every time field (reviewed_at too) has a value to compare.
    ok(
        &db,
        &[
            "flags",
            "review",
            &s.card.to_string(),
            "--confirm",
            "--note",
            "heard, twice",
            "--as",
            "rev@a.example",
            "--org",
            "a",
        ],
    );
    let list = ["flags", "list", "--org", "a", "--format"];
    let csv = parse_csv(&ok(&db, &[&list[..], &["csv"]].concat()));
    let json: Value = serde_json::from_str(&ok(&db, &[&list[..], &["json"]].concat())).unwrap();
    let items = json["items"].as_array().unwrap();
    let (header, rows) = csv.split_first().unwrap();
    assert_eq!(rows.len(), items.len());
    let mut keys: Vec<&String> = items[0].as_object().unwrap().keys().collect();
    let mut columns: Vec<&String> = header.iter().collect();
    keys.sort();
    columns.sort();
    assert_eq!(columns, keys, "CSV header and JSON keys");
    for (row, item) in rows.iter().zip(items) {
        for (column, cell) in header.iter().zip(row) {
            let expected = match &item[column] {
                Value::Null => String::new(),
                Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            assert_eq!(cell, &expected, "{column} of flag {}", item["id"]);
        }
        for time in ["call_started_at", "created_at"] {
            let at = item[time].as_str().unwrap();
            assert!(at.ends_with('Z'), "{time}: {at}");
        }
    }
    let reviewed = items.iter().find(|item| item["id"] == s.card.to_string());
    assert!(reviewed.unwrap()["reviewed_at"]
        .as_str()
        .is_some_and(|at| at.ends_with('Z')));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flags_review_records_the_decision_and_keeps_flagged_in_step() {
    let db = TestDatabase::new(2).await;
    let s = seed(&db).await;
    let client = db.client().await;
    ok(
        &db,
        &[
            "org",
            "members",
            "add",
            "a",
            "rev@a.example",
            "--role",
            "reviewer",
        ],
    );
    let card = s.card.to_string();

    let stdout = ok(
        &db,
        &[
            "flags",
            "review",
            &card,
            "--confirm",
            "--note",
            "ok",
            "--as",
            "rev@a.example",
            "--org",
            "a",
        ],
    );
    assert_eq!(
        stdout,
        format!("flag {card} (card-number of a): confirmed by rev@a.example\n")
    );
    let page: Value = serde_json::from_str(&ok(
        &db,
        &[
            "flags",
            "list",
            "--org",
            "a",
            "--status",
            "confirmed",
            "--format",
            "json",
        ],
    ))
    .unwrap();
    assert_eq!(page["total"], 1);
    assert_eq!(page["items"][0]["id"], card.as_str());
    assert_eq!(page["items"][0]["reviewer"], "rev@a.example");
    assert_eq!(page["items"][0]["note"], "ok");
    assert_eq!(flagged(&**client, s.a1).await, Some(true));

    // A call stays flagged until every one of its flags is dismissed.
    for id in [s.card, s.disclosure] {
        let stdout = ok(&db, &["flags", "review", &id.to_string(), "--dismiss"]);
        assert!(stdout.ends_with("): dismissed\n"), "{stdout}");
        assert_eq!(flagged(&**client, s.a1).await, Some(true));
    }
    ok(
        &db,
        &["flags", "review", &s.pricing.to_string(), "--dismiss"],
    );
    assert_eq!(flagged(&**client, s.a1).await, Some(false));
    assert_eq!(flagged(&**client, s.a2).await, Some(true));
    assert_eq!(
        page_ids(
            &db,
            &["flags", "list", "--org", "a", "--status", "dismissed"]
        )
        .1,
        3
    );
    // The note given when confirming is kept when dismissing without one.
    let page: Value = serde_json::from_str(&ok(
        &db,
        &[
            "flags",
            "list",
            "--rule",
            "card-number",
            "--status",
            "dismissed",
            "--format",
            "json",
        ],
    ))
    .unwrap();
    assert_eq!(page["items"][0]["note"], "ok");

    let a2_card = s.card_a2.to_string();
    let stderr = fails(
        &db,
        2,
        &["flags", "review", &a2_card, "--confirm", "--dismiss"],
    );
    assert!(stderr.contains("cannot be used with"), "{stderr}");
    let stderr = fails(&db, 2, &["flags", "review", &a2_card]);
    assert!(stderr.contains("--confirm"), "{stderr}");
    let stderr = fails(
        &db,
        2,
        &[
            "flags",
            "review",
            &a2_card,
            "--confirm",
            "--as",
            "rev@a.example",
        ],
    );
    assert!(stderr.contains("--org"), "--as needs --org: {stderr}");
    let unknown = Uuid::new_v4();
    let stderr = fails(
        &db,
        1,
        &["flags", "review", &unknown.to_string(), "--confirm"],
    );
    assert_eq!(stderr, format!("error: no flag {unknown}\n"));
    let stderr = fails(
        &db,
        1,
        &[
            "flags",
            "review",
            &a2_card,
            "--confirm",
            "--as",
            "nobody@a.example",
            "--org",
            "a",
        ],
    );
    assert!(stderr.contains("nobody@a.example"), "{stderr}");
    let stderr = fails(
        &db,
        1,
        &[
            "flags",
            "review",
            &s.card_b.to_string(),
            "--confirm",
            "--as",
            "rev@a.example",
            "--org",
            "a",
        ],
    );
    assert!(
        stderr.contains("belongs to organization b, not a"),
        "{stderr}"
    );
    // Nothing failed halfway: a2's flag is still open and its call flagged.
    assert_eq!(
        page_ids(&db, &["flags", "list", "--org", "a", "--status", "open"]),
        (vec![s.card_a2], 1)
    );
    assert_eq!(flagged(&**client, s.a2).await, Some(true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_show_prints_the_labelled_transcript_with_flags() {
    let db = TestDatabase::new(2).await;
    let s = seed(&db).await;

    let text = ok(&db, &["calls", "show", &s.a1.to_string()]);
    assert_eq!(
        text,
        format!(
            "call      {a1}\n\
             org       a\n\
             source    upload (external id a-1)\n\
             state     judged\n\
             campaign  Sales\n\
             started   2026-11-05 14:00:00 UTC\n\
             duration  0:16\n\
             parties   +15550001111 → +15550002222\n\
             object    test/a-1.wav\n\
             flagged   yes\n\
             \n\
             Transcript (whisper-tiny.en):\n  \
             [0:00–0:04] SPEAKER_00 (agent): Thanks for calling Acme, this is Dana.\n\
             ! [0:04–0:09] SPEAKER_01 (customer): My card is 4111, can you \"charge\" it?\n    \
             ⚑ card-number (high, open): card is 4111, \"charge\"  [{card}]\n\
             ! [0:09–0:15] SPEAKER_00 (agent): Sure, the total is 40 dollars.\n    \
             ⚑ pricing (low, open): the total is 40 dollars  [{pricing}]\n\
             \n\
             Flags:\n    \
             ⚑ missing-disclosure (critical, open): no recording disclosure  [{disclosure}]\n",
            a1 = s.a1,
            card = s.card,
            pricing = s.pricing,
            disclosure = s.disclosure,
        )
    );

    let view: Value = serde_json::from_str(&ok(
        &db,
        &["calls", "show", &s.a1.to_string(), "--format", "json"],
    ))
    .unwrap();
    assert_eq!(view["id"], s.a1.to_string());
    assert_eq!(view["segments"].as_array().unwrap().len(), 3);
    assert_eq!(view["segments"][1]["speaker"], "SPEAKER_01");
    assert_eq!(view["segments"][1]["flag_ids"], serde_json::json!([s.card]));
    assert_eq!(view["flags"].as_array().unwrap().len(), 3);
    assert_eq!(view["flagged"], true);

    let unknown = Uuid::new_v4();
    let stderr = fails(&db, 1, &["calls", "show", &unknown.to_string()]);
    assert_eq!(stderr, format!("error: no call {unknown}\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn org_members_and_their_api_tokens() {
    let db = TestDatabase::new(2).await;
    let client = db.client().await;
    create_org(&**client, "a").await;

    let stdout = ok(
        &db,
        &[
            "org",
            "members",
            "add",
            "a",
            "Rev@A.example",
            "--role",
            "reviewer",
            "--name",
            "Rita",
        ],
    );
    assert!(
        stdout.starts_with("rev@a.example is a reviewer of a ("),
        "{stdout}"
    );
    let stdout = ok(&db, &["org", "members", "add", "a", "view@a.example"]);
    assert!(
        stdout.starts_with("view@a.example is a viewer of a ("),
        "{stdout}"
    );
    let listed = ok(&db, &["org", "members", "list", "a"]);
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 2, "{listed}");
    assert!(lines[0].starts_with("rev@a.example"), "{listed}");
    assert!(lines[0].contains(" reviewer "), "{listed}");
    assert!(lines[0].ends_with(" Rita"), "{listed}");
    assert!(lines[1].starts_with("view@a.example"), "{listed}");
    assert!(lines[1].contains(" viewer "), "{listed}");

    let (status, first, stderr) =
        callscript_on(&db, &["org", "members", "token", "a", "rev@a.example"]);
    assert_eq!(status, 0, "{stderr}");
    let first = first.strip_suffix('\n').unwrap();
    assert!(first.starts_with("cs_") && !first.contains('\n'), "{first}");
    assert!(
        stderr.contains("replaces the member's previous token"),
        "{stderr}"
    );
    assert!(!stderr.contains(first), "the token only on stdout");
    let member = members::authenticate(&**client, first)
        .await
        .unwrap()
        .expect("the token authenticates");
    assert_eq!(
        (member.email.as_str(), member.role),
        ("rev@a.example", Role::Reviewer)
    );

    let second = ok(&db, &["org", "members", "token", "a", "rev@a.example"]);
    let second = second.trim_end();
    assert_ne!(first, second);
    assert_eq!(members::authenticate(&**client, first).await.unwrap(), None);
    assert_eq!(
        members::authenticate(&**client, second).await.unwrap(),
        Some(member)
    );

    let stderr = fails(
        &db,
        1,
        &["org", "members", "token", "a", "nobody@a.example"],
    );
    assert!(stderr.contains("nobody@a.example"), "{stderr}");
    let stderr = fails(&db, 1, &["org", "members", "add", "a", "not-an-email"]);
    assert!(stderr.contains("invalid email"), "{stderr}");
    let stderr = fails(
        &db,
        2,
        &[
            "org",
            "members",
            "add",
            "a",
            "x@a.example",
            "--role",
            "owner",
        ],
    );
    assert!(
        stderr.contains("owner") && stderr.contains("reviewer"),
        "{stderr}"
    );
}
