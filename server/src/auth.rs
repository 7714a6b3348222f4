//! Who is asking.
//!
//! API clients send their member token as `Authorization: Bearer cs_…`; the UI keeps the same
//! token in an HttpOnly, SameSite=Strict cookie set at login, so a page request authenticates
//! exactly like an API call. The token is looked up by its SHA-256 with the server's own role
//! (the organization is not known yet); everything after runs in that member's organization.

use axum::extract::FromRequestParts;
use axum::http::header::{AUTHORIZATION, COOKIE};
use axum::http::request::Parts;
use callscript_review::members::{self, Member};

use crate::{ApiError, AppState};

/// The UI's session cookie: the member's API token.
pub const SESSION_COOKIE: &str = "callscript_token";

/// A request from a known member.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Member);

impl Authenticated {
    /// Refuses members who may not review (viewers).
    pub fn reviewer(&self) -> Result<&Member, ApiError> {
        if members::can_review(self.0.role) {
            Ok(&self.0)
        } else {
            Err(ApiError::Forbidden(format!(
                "a {} may not review flags or upload recordings",
                self.0.role
            )))
        }
    }
}

/// The token a request carries: the bearer header first, else the session cookie.
pub fn request_token(parts: &Parts) -> Option<String> {
    let bearer = parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_owned());
    bearer.or_else(|| {
        parts
            .headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == SESSION_COOKIE)
            .map(|(_, value)| value.to_owned())
    })
}

/// The member a token belongs to, `None` for no or an unknown token.
pub async fn member_of(state: &AppState, token: Option<&str>) -> Result<Option<Member>, ApiError> {
    let Some(token) = token else {
        return Ok(None);
    };
    let client = state.pool.get().await?;
    Ok(members::authenticate(&**client, token).await?)
}

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        member_of(state, request_token(parts).as_deref())
            .await?
            .map(Authenticated)
            .ok_or(ApiError::Unauthorized)
    }
}
