//! A loopback OpenAI-compatible chat server (what llama.cpp's `llama-server` and vLLM serve):
//! `POST /v1/chat/completions`. It records every request (body and `Authorization` header) and
//! answers each by a script: the fixture's completion (a valid call review), other content,
//! an error status, or the completion after a delay. Scripts are keyed by words in the user
//! message (a call's transcript), so calls asked about at once each get their own answer.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::{json_fixture, LoopbackServer};

/// How one request is answered.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// A completion whose assistant message is this text, with the usage.
    Content(String),
    /// This status with an OpenAI error body and no usage.
    Status(u16),
    /// The fixture's completion, after this long (past the client's timeout).
    Delayed(Duration),
}

impl Reply {
    /// A completion whose content is `answer` as JSON text.
    pub fn json(answer: &Value) -> Reply {
        Reply::Content(answer.to_string())
    }
}

/// The fixture completion's content: a valid call review, as JSON text.
pub fn review_content() -> String {
    completion_fixture()["choices"][0]["message"]["content"]
        .as_str()
        .expect("the fixture's content is text")
        .to_owned()
}

fn completion_fixture() -> Value {
    json_fixture("openai/chat-completion.json")
}

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct SeenRequest {
    pub body: Value,
    /// The `Authorization` header as sent.
    pub authorization: Option<String>,
}

impl SeenRequest {
    /// The content of the message with this role (`system`, `user`).
    pub fn message(&self, role: &str) -> &str {
        self.body["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|m| m["role"] == role)
            .and_then(|m| m["content"].as_str())
            .unwrap_or_default()
    }
}

struct Script {
    /// (words in the user message, reply), the first match answers.
    replies: Vec<(String, Reply)>,
    prompt_tokens: i64,
    completion_tokens: i64,
    requests: Vec<SeenRequest>,
}

/// The fake server; stops when dropped.
pub struct FakeOpenAi {
    script: Arc<Mutex<Script>>,
    server: LoopbackServer,
}

impl FakeOpenAi {
    /// Answers every request with the fixture's completion (1000 prompt and 200 completion
    /// tokens) until scripted otherwise.
    pub async fn start() -> Self {
        let usage = &completion_fixture()["usage"];
        let script = Arc::new(Mutex::new(Script {
            replies: Vec::new(),
            prompt_tokens: usage["prompt_tokens"].as_i64().expect("fixture usage"),
            completion_tokens: usage["completion_tokens"].as_i64().expect("fixture usage"),
            requests: Vec::new(),
        }));
        let router = Router::new()
            .route("/v1/chat/completions", post(chat_completions))
            .with_state(script.clone());
        Self {
            script,
            server: LoopbackServer::start(router).await,
        }
    }

    /// The API root, as `CALLSCRIPT_LLM_BASE_URL` names it.
    pub fn base_url(&self) -> String {
        self.server.url("/v1")
    }

    /// Answers requests whose user message contains `words` with `reply`.
    pub fn reply_when(&self, words: &str, reply: Reply) {
        self.lock().replies.push((words.to_owned(), reply));
    }

    /// The usage reported with completions from now on.
    pub fn set_usage(&self, prompt_tokens: i64, completion_tokens: i64) {
        let mut script = self.lock();
        script.prompt_tokens = prompt_tokens;
        script.completion_tokens = completion_tokens;
    }

    pub fn requests(&self) -> Vec<SeenRequest> {
        self.lock().requests.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Script> {
        self.script.lock().expect("fake OpenAI state")
    }
}

async fn chat_completions(
    State(script): State<Arc<Mutex<Script>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if !(body["model"].is_string() && body["messages"].is_array()) {
        return error(
            StatusCode::BAD_REQUEST,
            "a chat completion needs model and messages",
        );
    }
    let seen = SeenRequest {
        body: body.clone(),
        authorization: headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    };
    let (reply, usage) = {
        let mut script = script.lock().expect("fake OpenAI state");
        let user = seen.message("user");
        let reply = script
            .replies
            .iter()
            .find(|(words, _)| user.contains(words.as_str()))
            .map(|(_, reply)| reply.clone());
        script.requests.push(seen);
        (reply, (script.prompt_tokens, script.completion_tokens))
    };
    let content = match reply {
        None => review_content(),
        Some(Reply::Content(content)) => content,
        Some(Reply::Status(status)) => {
            let status = StatusCode::from_u16(status).expect("a scripted HTTP status");
            return (status, Json(json_fixture("openai/error.json"))).into_response();
        }
        Some(Reply::Delayed(delay)) => {
            tokio::time::sleep(delay).await;
            review_content()
        }
    };
    let mut completion = completion_fixture();
    completion["model"] = body["model"].clone();
    completion["choices"][0]["message"]["content"] = json!(content);
    let (prompt_tokens, completion_tokens) = usage;
    completion["usage"]["prompt_tokens"] = json!(prompt_tokens);
    completion["usage"]["completion_tokens"] = json!(completion_tokens);
    completion["usage"]["total_tokens"] = json!(prompt_tokens + completion_tokens);
    Json(completion).into_response()
}

fn error(status: StatusCode, message: &str) -> Response {
    let mut body = json_fixture("openai/error.json");
    body["error"]["message"] = json!(message);
    body["error"]["type"] = json!("invalid_request_error");
    (status, Json(body)).into_response()
}
