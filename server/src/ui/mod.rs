//! The server-rendered review UI: HTML pages over the same review functions as the JSON API,
//! with no JavaScript build (one inline script seeks the audio player).
//!
//! | route | |
//! |---|---|
//! | `GET /login`, `POST /login` | the token form; a good token becomes the session cookie |
//! | `POST /logout` | clears the cookie |
//! | `GET /` | queue health: calls by state, throughput, oldest waiting, open flags |
//! | `GET /flags?campaign&rule&severity&status&from&to&limit&offset` | flags with filters |
//! | `GET /calls/{id}` | the call: facts, player, speaker-coloured transcript, flags |
//! | `GET /calls/{id}/audio` | the recording for the player (byte ranges) |
//! | `POST /flags/{id}/review` (form: `decision`, `note`) | confirm or dismiss, back to the call |
//!
//! The session is the member's API token in an HttpOnly, SameSite=Strict cookie: scripts cannot
//! read it and other sites' forms cannot send it, so the review POST needs no CSRF token. A page
//! without a valid session redirects to `/login` (303).

mod html;
mod views;

use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::header::SET_COOKIE;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use callscript_review::flags;
use callscript_review::health::queue_health;
use serde::Deserialize;

use crate::api::{audio_response, call_id, flag_id, load_call, parse_decision, review, FlagQuery};
use crate::auth::{member_of, Authenticated, SESSION_COOKIE};
use crate::{in_org, ApiError, AppState};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/", get(health))
        .route("/flags", get(flag_list))
        .route("/flags/{id}/review", post(review_flag))
        .route("/calls/{id}", get(call))
        .route("/calls/{id}/audio", get(audio))
}

/// A signed-in member, for pages: no session means a redirect to the sign-in form rather than
/// the API's JSON 401.
struct Session(Authenticated);

impl FromRequestParts<AppState> for Session {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, PageError> {
        Ok(Session(
            Authenticated::from_request_parts(parts, state).await?,
        ))
    }
}

/// A failure shown as an HTML page with the API error's status and message.
struct PageError(ApiError);

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> Self {
        PageError(e)
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        match self.0 {
            ApiError::Unauthorized => Redirect::to("/login").into_response(),
            // The player's answer: the API's, with its `Content-Range: bytes */LEN`.
            e @ ApiError::RangeNotSatisfiable { .. } => e.into_response(),
            e => {
                e.log();
                let status = e.status();
                (status, Html(views::error(status, &e.to_string()))).into_response()
            }
        }
    }
}

/// The session cookie's attributes: sent back only to this site's own requests, never to scripts.
const COOKIE_ATTRIBUTES: &str = "HttpOnly; SameSite=Strict; Path=/";

fn set_cookie(value: &str) -> Result<HeaderValue, ApiError> {
    HeaderValue::from_str(value).map_err(|e| ApiError::Internal(e.to_string()))
}

async fn login_form() -> Html<String> {
    Html(views::login(None))
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    #[serde(default)]
    token: String,
}

async fn login(
    State(state): State<AppState>,
    Form(form): Form<LoginForm>,
) -> Result<Response, PageError> {
    let token = form.token.trim();
    if member_of(&state, Some(token)).await?.is_none() {
        let page = views::login(Some("That token is not valid. Check it and try again."));
        return Ok((StatusCode::UNAUTHORIZED, Html(page)).into_response());
    }
    let cookie = set_cookie(&format!("{SESSION_COOKIE}={token}; {COOKIE_ATTRIBUTES}"))?;
    Ok(([(SET_COOKIE, cookie)], Redirect::to("/")).into_response())
}

async fn logout() -> Result<Response, PageError> {
    let cookie = set_cookie(&format!(
        "{SESSION_COOKIE}=; Max-Age=0; {COOKIE_ATTRIBUTES}"
    ))?;
    Ok(([(SET_COOKIE, cookie)], Redirect::to("/login")).into_response())
}

async fn health(
    State(state): State<AppState>,
    Session(Authenticated(member)): Session,
) -> Result<Html<String>, PageError> {
    let org = member.org_id;
    let health = in_org(&state.pool, org, |tx| {
        Box::pin(async move { Ok(queue_health(tx, Some(org)).await?) })
    })
    .await?;
    Ok(Html(views::health(&member, &health)))
}

async fn flag_list(
    State(state): State<AppState>,
    Session(Authenticated(member)): Session,
    query: Result<Query<FlagQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    // Only a hand-edited link gets here (a parameter given twice): a page, not text.
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    // A filter the review crate cannot read (a bad date, an unknown severity) is shown above
    // the form it came from, so the reviewer can correct it.
    let (filter, page) = match query.filter(member.org_id) {
        Ok(asked) => asked,
        Err(e @ ApiError::BadRequest(_)) => {
            let html = views::flags(&member, &query, Err(&e.to_string()));
            return Ok((StatusCode::BAD_REQUEST, Html(html)).into_response());
        }
        Err(e) => return Err(e.into()),
    };
    let page = in_org(&state.pool, member.org_id, |tx| {
        Box::pin(async move { Ok(flags::list(tx, &filter, page).await?) })
    })
    .await?;
    Ok(Html(views::flags(&member, &query, Ok(&page))).into_response())
}

async fn call(
    State(state): State<AppState>,
    Session(Authenticated(member)): Session,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let call = load_call(&state, &member, call_id(&id)?).await?;
    Ok(Html(views::call(&member, &call)).into_response())
}

async fn audio(
    State(state): State<AppState>,
    Session(Authenticated(member)): Session,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    Ok(audio_response(&state, &member, call_id(&id)?, &headers).await?)
}

#[derive(Debug, Deserialize)]
struct ReviewForm {
    /// Missing reads as empty, so it gets the API's "expected confirm or dismiss" message.
    #[serde(default)]
    decision: String,
    note: Option<String>,
}

async fn review_flag(
    State(state): State<AppState>,
    Session(session): Session,
    Path(id): Path<String>,
    Form(form): Form<ReviewForm>,
) -> Result<Response, PageError> {
    session.reviewer()?;
    let flag_id = flag_id(&id)?;
    let decision = parse_decision(&form.decision)?;
    let flag = review(&state, &session, flag_id, decision, form.note).await?;
    Ok(Redirect::to(&format!("/calls/{}#flag-{}", flag.call_id, flag.id)).into_response())
}
