//! Ringba's call-log API: `POST /{account}/calllogs` (a time window, paged) and
//! `POST /{account}/calllogs/detail` (specific calls), with `Authorization: Token …`.
//!
//! Every request first takes a token from the account's bucket for its API family. 429 and
//! 5xx answers and transport errors are retried with exponential backoff (or the server's
//! `Retry-After`); a 429 also empties the bucket, because Ringba counts requests we cannot
//! see (people loading its UI). 401 and 403 are not retried: they need a person.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use callscript_core::credentials::{Credential, Secret};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

use super::bucket::{TokenBucket, CALL_DETAILS, REPORTING};
use super::RingbaError;
use crate::http::{body_excerpt, describe_error};

/// Ringba's API base URL, used when a credential names none.
pub const DEFAULT_ENDPOINT: &str = "https://api.ringba.com/v2";

/// The most records Ringba returns per call-log page.
pub const MAX_PAGE_SIZE: u32 = 1000;

/// How often and how patiently a request is retried.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Tries in all, the first included.
    pub attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 8,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(60),
        }
    }
}

/// One page of a call-log report.
#[derive(Debug, Clone)]
pub struct CallLogPage {
    /// Records in the whole window, not only this page.
    pub total_count: u64,
    pub records: Vec<Value>,
}

/// A client for one Ringba account.
pub struct RingbaClient {
    http: reqwest::Client,
    base_url: String,
    account_id: String,
    token: Secret,
    reporting: Mutex<TokenBucket>,
    details: Mutex<TokenBucket>,
    retry: RetryPolicy,
}

impl RingbaClient {
    pub fn new(
        http: reqwest::Client,
        endpoint: Option<&str>,
        account_id: &str,
        token: Secret,
    ) -> Self {
        let now = Instant::now();
        Self {
            http,
            base_url: endpoint
                .unwrap_or(DEFAULT_ENDPOINT)
                .trim_end_matches('/')
                .to_owned(),
            account_id: account_id.to_owned(),
            token,
            reporting: Mutex::new(TokenBucket::within(&REPORTING, now)),
            details: Mutex::new(TokenBucket::within(&CALL_DETAILS, now)),
            retry: RetryPolicy::default(),
        }
    }

    /// A client for a stored `ringba` credential: its public id is the account id.
    pub fn from_credential(
        http: reqwest::Client,
        credential: &Credential,
    ) -> Result<Self, RingbaError> {
        let account = credential
            .public_id
            .as_deref()
            .filter(|id| !id.trim().is_empty())
            .ok_or_else(|| RingbaError::NoAccount {
                org_id: credential.org_id,
                label: credential.label.clone(),
            })?;
        Ok(Self::new(
            http,
            credential.endpoint.as_deref(),
            account,
            credential.secret.clone(),
        ))
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    pub fn account_id(&self) -> &str {
        &self.account_id
    }

    /// Calls that started within `[start, end]`, `size` from `offset`, newest first.
    pub async fn call_log_page(
        &self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        offset: u64,
        size: u32,
    ) -> Result<CallLogPage, RingbaError> {
        let body = json!({
            "reportStart": start.to_rfc3339_opts(SecondsFormat::Millis, true),
            "reportEnd": end.to_rfc3339_opts(SecondsFormat::Millis, true),
            "orderByColumns": [{"column": "callDt", "direction": "desc"}],
            "offset": offset,
            "size": size.min(MAX_PAGE_SIZE),
        });
        let (url, response) = self.post(&self.reporting, "calllogs", &body).await?;
        let report = &response["report"];
        let records = report["records"]
            .as_array()
            .ok_or_else(|| RingbaError::Malformed {
                url: url.clone(),
                reason: "no report.records array".into(),
            })?
            .clone();
        let total_count = report["totalCount"]
            .as_u64()
            .unwrap_or(offset + records.len() as u64);
        Ok(CallLogPage {
            total_count,
            records,
        })
    }

    /// The current records of specific calls (at most 100 ids per request).
    pub async fn call_details(&self, ids: &[String]) -> Result<Vec<Value>, RingbaError> {
        let body = json!({ "InboundCallIds": ids });
        let (url, response) = self.post(&self.details, "calllogs/detail", &body).await?;
        response["report"]["records"]
            .as_array()
            .cloned()
            .ok_or_else(|| RingbaError::Malformed {
                url,
                reason: "no report.records array".into(),
            })
    }

    async fn post(
        &self,
        bucket: &Mutex<TokenBucket>,
        path: &str,
        body: &Value,
    ) -> Result<(String, Value), RingbaError> {
        let url = format!("{}/{}/{path}", self.base_url, self.account_id);
        let mut last_failure = String::new();
        for attempt in 1..=self.retry.attempts {
            acquire(bucket).await;
            let sent = self
                .http
                .post(&url)
                .header("Authorization", format!("Token {}", self.token.expose()))
                .header("Content-Type", "application/json")
                .body(body.to_string())
                .send()
                .await;
            let response = match sent {
                Ok(response) => response,
                Err(e) => {
                    last_failure = describe_error(&e);
                    self.back_off(attempt, None).await;
                    continue;
                }
            };
            let status = response.status();
            if status.is_success() {
                let text = response.text().await.map_err(|e| RingbaError::Malformed {
                    url: url.clone(),
                    reason: describe_error(&e),
                })?;
                let value: Value =
                    serde_json::from_str(&text).map_err(|e| RingbaError::Malformed {
                        url: url.clone(),
                        reason: format!("not JSON ({e}): {}", body_excerpt(&text)),
                    })?;
                if value["isSuccessful"] == json!(false) {
                    return Err(RingbaError::Rejected {
                        url,
                        status: status.as_u16(),
                        body: body_excerpt(&text),
                    });
                }
                return Ok((url, value));
            }
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let text = response.text().await.unwrap_or_default();
            match status.as_u16() {
                401 => {
                    return Err(RingbaError::Unauthorized {
                        account: self.account_id.clone(),
                    })
                }
                403 => {
                    return Err(RingbaError::Forbidden {
                        account: self.account_id.clone(),
                        body: body_excerpt(&text),
                    })
                }
                429 => {
                    bucket.lock().expect("bucket").drain(Instant::now());
                    last_failure = format!("HTTP 429 (rate limited): {}", body_excerpt(&text));
                    self.back_off(attempt, retry_after).await;
                }
                code if code >= 500 => {
                    last_failure = format!("HTTP {code}: {}", body_excerpt(&text));
                    self.back_off(attempt, retry_after).await;
                }
                code => {
                    return Err(RingbaError::Rejected {
                        url,
                        status: code,
                        body: body_excerpt(&text),
                    })
                }
            }
        }
        Err(RingbaError::Unavailable {
            url,
            attempts: self.retry.attempts,
            last: last_failure,
        })
    }

    /// Sleeps before the next try: the server's `Retry-After` when given, else exponential
    /// backoff with jitter. Nothing after the last try.
    async fn back_off(&self, attempt: u32, retry_after: Option<Duration>) {
        if attempt >= self.retry.attempts {
            return;
        }
        let exponential = self
            .retry
            .base_delay
            .saturating_mul(1 << (attempt - 1).min(16));
        let jitter = rand::random_range(0.8..1.2);
        let delay = retry_after
            .unwrap_or(exponential.mul_f64(jitter))
            .min(self.retry.max_delay);
        tokio::time::sleep(delay).await;
    }
}

/// Waits for a token from `bucket`.
async fn acquire(bucket: &Mutex<TokenBucket>) {
    loop {
        let wait = match bucket.lock().expect("bucket").take(Instant::now()) {
            Ok(()) => return,
            Err(wait) => wait,
        };
        tokio::time::sleep(wait).await;
    }
}
