//! Loopback servers standing in for the third-party APIs the tests cannot reach (Ringba,
//! LiveKit, an OpenAI-compatible LLM server, Twilio's Messages API). They replay payloads of the vendors' documented
//! shapes, kept in one place: `fixtures/vendors/<vendor>/`, read through [`fixture`].

pub mod livekit;
pub mod openai;
pub mod ringba;
pub mod twilio;

use std::net::SocketAddr;
use std::path::PathBuf;

use tokio::net::TcpListener;

/// The text of `fixtures/vendors/<relative>`.
pub fn fixture(relative: &str) -> String {
    let path = fixtures_dir().join(relative);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("vendor fixture {}: {e}", path.display()))
}

/// `fixtures/vendors/<relative>` parsed as JSON.
pub fn json_fixture(relative: &str) -> serde_json::Value {
    serde_json::from_str(&fixture(relative))
        .unwrap_or_else(|e| panic!("vendor fixture {relative} is not JSON: {e}"))
}

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/vendors")
}

/// A loopback HTTP server for one test; stops when dropped.
pub struct LoopbackServer {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl LoopbackServer {
    /// Serves `router` on a free loopback port.
    pub async fn start(router: axum::Router) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local address");
        let task = tokio::spawn(async move {
            axum::serve(listener, router)
                .await
                .expect("loopback server");
        });
        Self { addr, task }
    }

    /// `http://127.0.0.1:PORT` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for LoopbackServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
