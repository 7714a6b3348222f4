//! The review UI against the real Postgres: its pages over plain HTTP (sessions, roles, another
//! organization's data), and a reviewer's whole round in headless Chromium driven through
//! WebDriver (sign in, queue health, filter flags, open the call, seek the player, confirm).
//!
//! The browser test needs Debian's `chromium` and `chromium-driver` (`scripts/test` installs
//! them); without them it fails and says so rather than passing unseen.

mod common;

use std::future::Future;
use std::net::TcpListener as StdListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use callscript_core::storage::{LocalDirStore, ObjectStore};
use callscript_review::members::{self, Role};
use callscript_server::{router, AppState};
use callscript_testkit::{create_org, TestDatabase};
use common::{judged_call, DNC_RULE};
use fantoccini::{ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use reqwest::header::{COOKIE, LOCATION, RANGE, SET_COOKIE};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tempfile::TempDir;
use uuid::Uuid;

const CHROMIUM: &str = "/usr/bin/chromium";
const INSTALL_HINT: &str = "install them with `apt-get install -y chromium chromium-driver` \
                            (scripts/test installs them)";

/// Where the do-not-call flag's evidence starts, in seconds.
const DNC_SECOND: f64 = 4.0;

/// A served UI over a fresh database: org A with a judged call, its transcript, recording and
/// two flags, and org B with a call and flag of its own that A's members must never see.
struct Fixture {
    db: TestDatabase,
    _objects: TempDir,
    base: String,
    call_a: Uuid,
    /// Org A's flags in the order said: the approval claim (0:00) and the do-not-call (0:04).
    flags_a: [Uuid; 2],
    call_b: Uuid,
    flag_b: Uuid,
    reviewer: members::Member,
    reviewer_token: String,
    viewer_token: String,
}

impl Fixture {
    async fn start() -> Fixture {
        let db = TestDatabase::new(4).await;
        let objects = tempfile::tempdir().unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(LocalDirStore::new(objects.path()));
        let client = db.client().await;
        let org_a = create_org(&**client, "org-a").await;
        let org_b = create_org(&**client, "org-b").await;
        let (call_a, flags_a) = judged_call(&**client, store.as_ref(), org_a, "call-a").await;
        let (call_b, flags_b) = judged_call(&**client, store.as_ref(), org_b, "call-b").await;
        let reviewer = members::add(&**client, org_a, "rev@a.example", None, Role::Reviewer)
            .await
            .unwrap();
        let reviewer_token = members::issue_token(&**client, reviewer.id).await.unwrap();
        let viewer = members::add(&**client, org_a, "view@a.example", None, Role::Viewer)
            .await
            .unwrap();
        let viewer_token = members::issue_token(&**client, viewer.id).await.unwrap();
        drop(client);

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let app = router(AppState {
            pool: db.pool.clone(),
            store,
            max_upload_bytes: 1 << 20,
        });
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Fixture {
            db,
            _objects: objects,
            base,
            call_a,
            flags_a,
            call_b,
            flag_b: flags_b[1],
            reviewer,
            reviewer_token,
            viewer_token,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The flag's review status and reviewer, read with the server's role (all orgs).
    async fn review_of(&self, flag: Uuid) -> (String, Option<Uuid>) {
        let row = self
            .db
            .client()
            .await
            .query_one(
                "SELECT review_status::text, reviewer_id FROM core.qa_flags WHERE id = $1",
                &[&flag],
            )
            .await
            .unwrap();
        (row.get(0), row.get(1))
    }
}

/// A plain HTTP client that shows redirects instead of following them.
struct Pages {
    http: reqwest::Client,
}

impl Pages {
    fn new() -> Pages {
        Pages {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        }
    }

    async fn get(&self, url: &str, token: Option<&str>) -> reqwest::Response {
        let mut request = self.http.get(url);
        if let Some(token) = token {
            request = request.header(COOKIE, format!("callscript_token={token}"));
        }
        request.send().await.unwrap()
    }

    async fn post(
        &self,
        url: &str,
        token: Option<&str>,
        form: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut request = self.http.post(url).form(form);
        if let Some(token) = token {
            request = request.header(COOKIE, format!("callscript_token={token}"));
        }
        request.send().await.unwrap()
    }
}

fn location(response: &reqwest::Response) -> &str {
    response
        .headers()
        .get(LOCATION)
        .map(|v| v.to_str().unwrap())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_need_a_session_and_show_only_the_members_organization() {
    let f = Fixture::start().await;
    let pages = Pages::new();
    let [approval, dnc] = f.flags_a;

    // No session, or a token nobody holds: every page sends the browser to the sign-in form.
    for path in ["/", "/flags", &format!("/calls/{}", f.call_a)] {
        let response = pages.get(&f.url(path), None).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{path}");
        assert_eq!(location(&response), "/login", "{path}");
    }
    let response = pages.get(&f.url("/"), Some("cs_nobody")).await;
    assert_eq!(
        (response.status(), location(&response)),
        (StatusCode::SEE_OTHER, "/login")
    );
    let response = pages
        .post(
            &f.url(&format!("/flags/{dnc}/review")),
            None,
            &[("decision", "confirm")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);

    // Signing in: a wrong token is refused on the form; a good one becomes the cookie.
    let response = pages
        .post(&f.url("/login"), None, &[("token", "cs_wrong")])
        .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let html = response.text().await.unwrap();
    assert!(
        html.contains("form id=\"login\"") && html.contains("not valid"),
        "{html}"
    );
    let response = pages
        .post(
            &f.url("/login"),
            None,
            &[("token", &format!(" {} ", f.reviewer_token))],
        )
        .await;
    assert_eq!(
        (response.status(), location(&response)),
        (StatusCode::SEE_OTHER, "/")
    );
    assert_eq!(
        response.headers()[SET_COOKIE],
        format!(
            "callscript_token={}; HttpOnly; SameSite=Strict; Path=/",
            f.reviewer_token
        )
    );
    let response = pages.post(&f.url("/logout"), None, &[]).await;
    assert_eq!(location(&response), "/login");
    assert!(response.headers()[SET_COOKIE]
        .to_str()
        .unwrap()
        .starts_with("callscript_token=; Max-Age=0;"));

    // The reviewer's pages hold their org's flags only; transcript markup shows as text.
    let token = Some(f.reviewer_token.as_str());
    let response = pages.get(&f.url("/"), token).await;
    assert_eq!(response.status(), StatusCode::OK);
    let html = response.text().await.unwrap();
    assert!(html.contains("<tr class=\"state-judged\"><td>judged</td><td class=\"count\">1</td>"));
    assert!(html.contains("<dd id=\"open-flags\"><a href=\"/flags?status=open\">2</a>"));
    let html = pages
        .get(&f.url("/flags"), token)
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains(&approval.to_string()) && html.contains(&dnc.to_string()));
    assert!(!html.contains(&f.flag_b.to_string()) && !html.contains(&f.call_b.to_string()));
    let response = pages
        .get(&f.url("/flags?severity=dire&rule=x%22y"), token)
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let html = response.text().await.unwrap();
    assert!(html.contains("dire"), "{html}");
    assert!(
        html.contains("value=\"x&quot;y\""),
        "the form keeps the filter, escaped"
    );
    // A page size that is not a number is named above the form, like any bad filter.
    let response = pages.get(&f.url("/flags?limit=ten"), token).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let html = response.text().await.unwrap();
    assert!(
        html.contains("limit: &quot;ten&quot; is not a whole number")
            && html.contains("id=\"filters\""),
        "{html}"
    );
    let html = pages
        .get(&f.url(&format!("/calls/{}", f.call_a)), token)
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("Stop calling me &lt;b&gt;now&lt;/b&gt;."));
    assert!(!html.contains("<b>now</b>"));
    assert!(html.contains("class=\"confirm\""));

    // Another org's call, its recording and its flag are not there at all.
    for path in [
        format!("/calls/{}", f.call_b),
        format!("/calls/{}/audio", f.call_b),
        "/calls/not-a-call".to_owned(),
    ] {
        let response = pages.get(&f.url(&path), token).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        assert!(response
            .text()
            .await
            .unwrap()
            .contains("<h1>Not Found</h1>"));
    }
    let response = pages
        .post(
            &f.url(&format!("/flags/{}/review", f.flag_b)),
            token,
            &[("decision", "confirm")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(f.review_of(f.flag_b).await, ("open".to_owned(), None));

    // The player's recording, a byte range at a time.
    let response = pages
        .http
        .get(f.url(&format!("/calls/{}/audio", f.call_a)))
        .header(COOKIE, format!("callscript_token={}", f.reviewer_token))
        .header(RANGE, "bytes=0-11")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
    let head = response.bytes().await.unwrap();
    assert_eq!((head.len(), &head[..4]), (12, &b"RIFF"[..]));

    // A review form post lands back on the flag; a bad decision is a 400 page.
    let response = pages
        .post(
            &f.url(&format!("/flags/{approval}/review")),
            token,
            &[("decision", "dismiss"), ("note", "said in jest")],
        )
        .await;
    assert_eq!(
        (response.status(), location(&response)),
        (
            StatusCode::SEE_OTHER,
            format!("/calls/{}#flag-{approval}", f.call_a).as_str()
        )
    );
    assert_eq!(
        f.review_of(approval).await,
        ("dismissed".to_owned(), Some(f.reviewer.id))
    );
    let response = pages
        .post(
            &f.url(&format!("/flags/{dnc}/review")),
            token,
            &[("decision", "maybe")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    // A viewer reads the call but gets no buttons, and a hand-made post is refused.
    let viewer = Some(f.viewer_token.as_str());
    let html = pages
        .get(&f.url(&format!("/calls/{}", f.call_a)), viewer)
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains(&format!("id=\"flag-{dnc}\"")));
    assert!(!html.contains("class=\"confirm\"") && !html.contains("<form class=\"review\""));
    let response = pages
        .post(
            &f.url(&format!("/flags/{dnc}/review")),
            viewer,
            &[("decision", "confirm")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(response.text().await.unwrap().contains("may not review"));
    assert_eq!(f.review_of(dnc).await, ("open".to_owned(), None));
}

/// `name` in a directory of `PATH`.
fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
}

/// chromedriver on a loopback port, stopped (with the browser it started) when dropped, also
/// when the test fails half-way.
struct ChromeDriver {
    child: Child,
    url: String,
}

impl ChromeDriver {
    async fn start() -> ChromeDriver {
        assert!(
            Path::new(CHROMIUM).is_file(),
            "the browser test needs Chromium at {CHROMIUM}: {INSTALL_HINT}"
        );
        let driver = on_path("chromedriver")
            .unwrap_or_else(|| panic!("the browser test needs chromedriver: {INSTALL_HINT}"));
        // A port the system just handed out; chromedriver binds it right after.
        let port = StdListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group, so dropping it stops the browser processes too.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("start chromedriver: {e}: {INSTALL_HINT}"));
        let chromedriver = ChromeDriver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let status = format!("{}/status", chromedriver.url);
        eventually("chromedriver to listen", || {
            let status = status.clone();
            async move {
                let ready = reqwest::get(&status)
                    .await
                    .ok()?
                    .json::<Value>()
                    .await
                    .ok()?;
                (ready["value"]["ready"] == json!(true)).then_some(())
            }
        })
        .await;
        chromedriver
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn css(selector: &str) -> Locator<'_> {
    Locator::Css(selector)
}

/// Polls `probe` until it gives a value; fails the test after 20 seconds.
async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reviewer_confirms_a_flag_in_headless_chromium() {
    let f = Fixture::start().await;
    let [approval, dnc] = f.flags_a;
    let chromedriver = ChromeDriver::start().await;
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1280,1000",
                     // Nothing plays to a speaker here; let play() run without asking.
                     "--autoplay-policy=no-user-gesture-required"],
        }),
    );
    let browser = ClientBuilder::new(HttpConnector::new())
        .capabilities(capabilities)
        .connect(&chromedriver.url)
        .await
        .unwrap_or_else(|e| panic!("start headless Chromium through chromedriver: {e}"));
    let path = || {
        let browser = browser.clone();
        async move { browser.current_url().await.unwrap().path().to_owned() }
    };

    // Signed out: the queue page sends us to the sign-in form.
    browser.goto(&f.url("/")).await.unwrap();
    assert_eq!(path().await, "/login");
    browser
        .find(css("input#token"))
        .await
        .unwrap()
        .send_keys(&f.reviewer_token)
        .await
        .unwrap();
    browser
        .find(css("form#login button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();

    // Queue health.
    let states = browser
        .wait()
        .for_element(css("table#states"))
        .await
        .unwrap();
    assert_eq!(path().await, "/");
    let judged = states.find(css("tr.state-judged td.count")).await.unwrap();
    assert_eq!(judged.text().await.unwrap(), "1");
    let open = browser.find(css("#open-flags")).await.unwrap();
    assert_eq!(open.text().await.unwrap(), "2");

    // Flags, filtered by rule with the form: org B's flag of the same rule never shows.
    browser
        .find(css("nav a[href='/flags']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .wait()
        .for_element(css("form#filters #filter-rule"))
        .await
        .unwrap()
        .send_keys(DNC_RULE)
        .await
        .unwrap();
    browser
        .find(css("form#filters #filter-severity"))
        .await
        .unwrap()
        .select_by_value("high")
        .await
        .unwrap();
    browser
        .find(css("form#filters button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let query = eventually("the filtered flags page", || {
        let browser = browser.clone();
        async move {
            let url = browser.current_url().await.ok()?;
            url.query()
                .filter(|q| q.contains(DNC_RULE))
                .map(str::to_owned)
        }
    })
    .await;
    assert!(query.contains("severity=high"), "{query}");
    let rows = browser.find_all(css("table#flags tbody tr")).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows[0].attr("id").await.unwrap(),
        Some(format!("row-{dnc}"))
    );
    let status = rows[0].find(css(".flag-status")).await.unwrap();
    assert_eq!(status.text().await.unwrap(), "open");
    assert!(!browser
        .source()
        .await
        .unwrap()
        .contains(&f.flag_b.to_string()));

    // The call page: speaker-coloured transcript rows, the flagged one highlighted.
    rows[0]
        .find(css("a.call-link"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .wait()
        .for_element(css("table#transcript"))
        .await
        .unwrap();
    assert_eq!(path().await, format!("/calls/{}", f.call_a));
    let segments = browser
        .find_all(css("#transcript tr.segment"))
        .await
        .unwrap();
    let mut seen = Vec::new();
    for segment in &segments {
        let class = segment.attr("class").await.unwrap().unwrap_or_default();
        let speaker = segment.find(css(".speaker")).await.unwrap();
        let text = segment.find(css(".text")).await.unwrap();
        seen.push((
            class,
            speaker.text().await.unwrap(),
            text.text().await.unwrap(),
        ));
    }
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert_eq!(seen[0].0, "segment speaker-0 role-agent flagged");
    assert_eq!(seen[0].1, "SPEAKER_00");
    assert_eq!(seen[1].0, "segment speaker-1 role-customer flagged");
    assert_eq!(seen[1].1, "SPEAKER_01");
    assert_eq!(seen[2].0, "segment speaker-0 role-agent");
    assert!(
        seen[1].2.starts_with("Stop calling me <b>now</b>."),
        "markup in a transcript shows as text: {:?}",
        seen[1].2
    );
    let colours = browser
        .execute(
            "return Array.from(document.querySelectorAll('#transcript tr.segment .speaker'))
               .map(e => getComputedStyle(e).color);",
            vec![],
        )
        .await
        .unwrap();
    assert_ne!(
        colours[0], colours[1],
        "speakers differ in colour: {colours}"
    );

    // "Play from 0:04" seeks the player to the flag's second once the metadata is in.
    let duration = eventually("the recording's metadata", || {
        let browser = browser.clone();
        async move {
            let state = browser
                .execute(
                    "const p = document.getElementById('player');
                     return p.readyState >= 1 ? p.duration : null;",
                    vec![],
                )
                .await
                .unwrap();
            state.as_f64()
        }
    })
    .await;
    assert!((duration - 12.0).abs() < 0.1, "duration {duration}");
    let flag = browser.find(css(&format!("li#flag-{dnc}"))).await.unwrap();
    let play = flag.find(css("button.play-from")).await.unwrap();
    assert_eq!(play.text().await.unwrap(), "Play from 0:04");
    play.click().await.unwrap();
    let at = browser
        .execute(
            "return document.getElementById('player').currentTime;",
            vec![],
        )
        .await
        .unwrap()
        .as_f64()
        .unwrap();
    assert!(
        (DNC_SECOND..DNC_SECOND + 2.0).contains(&at),
        "the player is at {at} s, not the flag's second"
    );

    // Confirm: back on the call, the flag says so, and so does the database.
    flag.find(css("button.confirm"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let status = eventually("the confirmed flag", || {
        let browser = browser.clone();
        async move {
            let status = browser
                .find(css(&format!("li#flag-{dnc} .flag-status")))
                .await
                .ok()?
                .text()
                .await
                .ok()?;
            (status != "open").then_some(status)
        }
    })
    .await;
    assert_eq!(status, "confirmed");
    let url = browser.current_url().await.unwrap();
    assert_eq!(
        (url.path(), url.fragment()),
        (
            format!("/calls/{}", f.call_a).as_str(),
            Some(format!("flag-{dnc}").as_str())
        )
    );
    assert_eq!(
        f.review_of(dnc).await,
        ("confirmed".to_owned(), Some(f.reviewer.id))
    );
    assert_eq!(f.review_of(approval).await, ("open".to_owned(), None));

    // Another org's call is not found, in the browser too.
    browser
        .goto(&f.url(&format!("/calls/{}", f.call_b)))
        .await
        .unwrap();
    let heading = browser.find(css("h1")).await.unwrap();
    assert_eq!(heading.text().await.unwrap(), "Not Found");

    browser.close().await.unwrap();
    drop(chromedriver);
}
