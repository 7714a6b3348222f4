//! Reconcile: ListEgress on each org's LiveKit project, every complete egress recorded.
//!
//! This is what catches the `egress_ended` webhooks LiveKit dropped or could not deliver.
//! ListEgress only reaches back as far as LiveKit keeps ended egresses (a self-hosted server
//! deletes them 24 hours after they end), so it runs on a timer well inside that window.
//! One org's failure (a credential that does not open, a project that refuses the key) is
//! reported and the next org is reconciled all the same.

use std::collections::HashSet;
use std::fmt;
use std::time::Duration;

use callscript_core::credentials::{self, Credential};
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::egress::EgressInfo;
use super::token::{self, Claims};
use super::{LiveKitError, LiveKitIngest, CREDENTIAL_KIND};
use crate::http::{body_excerpt, describe_error};

/// How long a ListEgress access token is valid.
const ACCESS_TOKEN_VALIDITY: Duration = Duration::from_secs(10 * 60);

/// At most this many pages per org and pass: a server that keeps answering with new page
/// tokens is reported instead of followed forever.
const MAX_PAGES: usize = 1000;

/// What one reconcile pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Organizations whose egresses were listed (fully or until an error).
    pub orgs_checked: usize,
    /// Egresses ListEgress returned, in any state.
    pub egresses_seen: usize,
    /// Complete egresses that were not calls yet and are now.
    pub newly_recorded: usize,
    /// One line per problem, naming the org and what failed.
    pub errors: Vec<String>,
}

impl fmt::Display for ReconcileReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} organization(s) checked, {} egress(es) seen, {} newly recorded, {} error(s)",
            self.orgs_checked,
            self.egresses_seen,
            self.newly_recorded,
            self.errors.len()
        )
    }
}

/// A `livekit.ListEgressResponse`, items left as JSON so one unreadable item is reported alone.
#[derive(Deserialize)]
struct ListEgressResponse {
    #[serde(default)]
    items: Option<Vec<Value>>,
    #[serde(default, alias = "next_page_token", rename = "nextPageToken")]
    next_page_token: Option<TokenPagination>,
}

/// A `livekit.TokenPagination`.
#[derive(Deserialize)]
struct TokenPagination {
    #[serde(default)]
    token: String,
}

impl LiveKitIngest {
    /// Lists the egresses of every org's LiveKit project (or of `org` alone) and records each
    /// complete one that is not a call yet.
    pub async fn reconcile(&self, org: Option<Uuid>) -> ReconcileReport {
        let mut report = ReconcileReport::default();
        let loaded = match self.pool.get().await {
            Ok(client) => credentials::load_kind(&**client, &self.key, CREDENTIAL_KIND, org)
                .await
                .map_err(LiveKitError::from),
            Err(e) => Err(e.into()),
        };
        let entries = match loaded {
            Ok(entries) => entries,
            Err(e) => {
                report
                    .errors
                    .push(format!("loading the livekit credentials: {e}"));
                return report;
            }
        };
        let mut orgs = HashSet::new();
        for entry in entries {
            match entry {
                Ok(credential) => {
                    orgs.insert(credential.org_id);
                    if let Err(e) = self.reconcile_credential(&credential, &mut report).await {
                        report
                            .errors
                            .push(format!("organization {}: {e}", credential.org_id));
                    }
                }
                Err(e) => report.errors.push(e.to_string()),
            }
        }
        report.orgs_checked = orgs.len();
        for error in &report.errors {
            tracing::warn!("livekit reconcile: {error}");
        }
        report
    }

    /// Pages through one project's egresses; an item that fails to record is reported and the
    /// rest go on, an API failure ends this credential's pass.
    async fn reconcile_credential(
        &self,
        credential: &Credential,
        report: &mut ReconcileReport,
    ) -> Result<(), LiveKitError> {
        let incomplete = |missing| LiveKitError::IncompleteCredential {
            org_id: credential.org_id,
            label: credential.label.clone(),
            missing,
        };
        let api_key = credential
            .public_id
            .as_deref()
            .filter(|key| !key.is_empty())
            .ok_or_else(|| incomplete("API key"))?;
        let endpoint = credential
            .endpoint
            .as_deref()
            .ok_or_else(|| incomplete("endpoint"))?;
        let url = format!(
            "{}/twirp/livekit.Egress/ListEgress",
            endpoint.trim_end_matches('/')
        );
        let mut page_token = String::new();
        for _ in 0..MAX_PAGES {
            let now = chrono::Utc::now().timestamp();
            let bearer = token::sign(
                &Claims::egress_access(api_key, now, ACCESS_TOKEN_VALIDITY),
                credential.secret.expose(),
            );
            let request = if page_token.is_empty() {
                json!({})
            } else {
                json!({"pageToken": {"token": page_token}})
            };
            let page = self.list_egress(&url, &bearer, &request).await?;
            let items = page.items.unwrap_or_default();
            report.egresses_seen += items.len();
            for item in items {
                if let Err(e) = self.record_item(credential, &url, item, report).await {
                    report
                        .errors
                        .push(format!("organization {}: {e}", credential.org_id));
                }
            }
            let next = page.next_page_token.map(|t| t.token).unwrap_or_default();
            if next.is_empty() {
                return Ok(());
            }
            if next == page_token {
                return Err(LiveKitError::BadResponse {
                    url,
                    reason: format!("the next page token {next:?} repeats the one sent"),
                });
            }
            page_token = next;
        }
        Err(LiveKitError::BadResponse {
            url,
            reason: format!("still more pages after {MAX_PAGES}"),
        })
    }

    async fn record_item(
        &self,
        credential: &Credential,
        url: &str,
        item: Value,
        report: &mut ReconcileReport,
    ) -> Result<(), LiveKitError> {
        let egress: EgressInfo =
            serde_json::from_value(item).map_err(|e| LiveKitError::BadResponse {
                url: url.to_owned(),
                reason: format!("an egress item: {e}"),
            })?;
        if !egress.is_complete() || egress.file().is_none() {
            return Ok(());
        }
        let recorded = self.record(credential.org_id, &egress).await?;
        if recorded.inserted {
            tracing::info!(
                egress_id = %egress.egress_id, call_id = %recorded.call_id,
                org_id = %credential.org_id, state = %recorded.state,
                "livekit egress recorded by reconcile (its webhook never arrived)"
            );
            report.newly_recorded += 1;
        }
        Ok(())
    }

    async fn list_egress(
        &self,
        url: &str,
        bearer: &str,
        request: &Value,
    ) -> Result<ListEgressResponse, LiveKitError> {
        let http_error = |e: reqwest::Error| LiveKitError::Http {
            url: url.to_owned(),
            reason: describe_error(&e.without_url()),
        };
        let response = self
            .http
            .post(url)
            .bearer_auth(bearer)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(request.to_string())
            .send()
            .await
            .map_err(http_error)?;
        let status = response.status();
        let body = response.bytes().await.map_err(http_error)?;
        if !status.is_success() {
            // Twirp errors are {"code": ..., "msg": ...}; show them, shortened.
            let text = String::from_utf8_lossy(&body);
            return Err(LiveKitError::HttpStatus {
                url: url.to_owned(),
                status: status.as_u16(),
                body: body_excerpt(&text),
            });
        }
        serde_json::from_slice(&body).map_err(|e| LiveKitError::BadResponse {
            url: url.to_owned(),
            reason: e.to_string(),
        })
    }
}
