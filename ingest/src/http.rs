//! The one HTTP client setup the ingest lanes share (vendor APIs and recording downloads).

use std::time::Duration;

/// How long a vendor API request or a recording download may take at most, by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// A client with rustls, a connect timeout, a total timeout and our user agent. Redirects are
/// followed (recording URLs often redirect to a CDN).
pub fn client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .user_agent(concat!("callscript/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(10).min(timeout))
        .timeout(timeout)
        .build()
        .expect("the TLS backend is compiled in")
}

/// A reqwest error with its causes (reqwest's own message leaves them out, and they are what
/// says "connection refused" or "certificate expired"); "timed out" for a timeout. The URL is
/// left out: callers name it, with any signed query cut off.
pub fn describe_error(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "timed out".to_owned();
    }
    let mut message = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

/// The start of a response body, for error messages (an API's error text is useful; a whole
/// HTML page is not).
pub fn body_excerpt(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(300) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}
