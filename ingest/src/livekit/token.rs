//! LiveKit's HS256 JWTs, both ways: the access token our ListEgress calls present, and the
//! token in a webhook's `Authorization` header that proves LiveKit sent the body.
//!
//! LiveKit signs both the same way (`livekit/protocol` `auth/accesstoken.go`): HS256 under the
//! API secret, `iss` the API key, `nbf`/`exp` in seconds. A webhook's token adds `sha256`, the
//! standard-base64 SHA-256 of the body (`webhook/url_notifier.go`), valid for 5 minutes. Only
//! HS256 is accepted: a token naming any other algorithm (`none` above all) is refused before its
//! signature is looked at.

use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// How far our clock may be from LiveKit's (go-jose's default leeway, which LiveKit's own
/// verifier uses).
pub const CLOCK_SKEW_SECS: i64 = 60;

/// How long LiveKit's webhook tokens are valid.
pub const WEBHOOK_VALIDITY: Duration = Duration::from_secs(5 * 60);

/// The grants of a LiveKit token that matter here.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VideoGrant {
    /// Allows the egress API (ListEgress among it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub room_record: bool,
}

/// A LiveKit token's claims; other claims in a token are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The API key.
    #[serde(default)]
    pub iss: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    /// A webhook body's SHA-256, standard base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video: Option<VideoGrant>,
}

impl Claims {
    /// An access token's claims for the egress API (`video.roomRecord`), valid from `now`
    /// (Unix seconds) for `valid_for`.
    pub fn egress_access(api_key: &str, now: i64, valid_for: Duration) -> Self {
        Self {
            iss: api_key.to_owned(),
            sub: "callscript".to_owned(),
            nbf: Some(now),
            exp: Some(now + valid_for.as_secs() as i64),
            sha256: None,
            video: Some(VideoGrant { room_record: true }),
        }
    }

    /// The claims LiveKit signs a webhook `body` with at `now`.
    pub fn webhook(api_key: &str, body: &[u8], now: i64) -> Self {
        Self {
            iss: api_key.to_owned(),
            sub: String::new(),
            nbf: Some(now),
            exp: Some(now + WEBHOOK_VALIDITY.as_secs() as i64),
            sha256: Some(body_sha256(body)),
            video: None,
        }
    }

    /// Whether the `sha256` claim is the SHA-256 of `body` as LiveKit encodes it (standard
    /// base64; some client libraries once compared hex, which never matches the server).
    pub fn signs_body(&self, body: &[u8]) -> bool {
        self.sha256.as_deref() == Some(body_sha256(body).as_str())
    }
}

/// The standard-base64 SHA-256 of a webhook body, as its token's `sha256` claim carries it.
pub fn body_sha256(body: &[u8]) -> String {
    STANDARD.encode(Sha256::digest(body))
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("not a JWT: {0}")]
    Malformed(&'static str),
    #[error("token algorithm {0:?} is not HS256")]
    Algorithm(String),
    #[error("token signature does not match the API secret")]
    Signature,
    #[error("token has no expiry")]
    NoExpiry,
    #[error("token expired at {exp} (now {now})")]
    Expired { exp: i64, now: i64 },
    #[error("token is not valid before {nbf} (now {now})")]
    NotYetValid { nbf: i64, now: i64 },
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    typ: Option<String>,
}

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &str, signing_input: &str) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes any key size");
    mac.update(signing_input.as_bytes());
    mac
}

/// `claims` as an HS256 JWT signed with `secret`.
pub fn sign(claims: &Claims, secret: &str) -> String {
    let header = Header {
        alg: "HS256".to_owned(),
        typ: Some("JWT".to_owned()),
    };
    let signing_input = format!("{}.{}", encode_part(&header), encode_part(claims));
    let signature = URL_SAFE_NO_PAD.encode(mac(secret, &signing_input).finalize().into_bytes());
    format!("{signing_input}.{signature}")
}

fn encode_part(value: &impl Serialize) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).expect("plain structs serialize"))
}

/// The three parts of a compact JWT.
fn split(token: &str) -> Result<(&str, &str, &str), TokenError> {
    let mut parts = token.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(header), Some(payload), Some(signature), None) => Ok((header, payload, signature)),
        _ => Err(TokenError::Malformed("expected three dot-separated parts")),
    }
}

fn decode_part<T: serde::de::DeserializeOwned>(
    part: &str,
    what: &'static str,
) -> Result<T, TokenError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| TokenError::Malformed(what))?;
    serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed(what))
}

/// The claims of a token whose signature is not checked yet: which API key (`iss`) signed it
/// says whose secret to check it with.
pub fn unverified_claims(token: &str) -> Result<Claims, TokenError> {
    let (_, payload, _) = split(token)?;
    decode_part(payload, "the payload is not base64url JSON claims")
}

/// The claims of `token` if it is HS256, signed with `secret`, and valid at `now` (Unix
/// seconds, with [`CLOCK_SKEW_SECS`] either way).
pub fn verify(token: &str, secret: &str, now: i64) -> Result<Claims, TokenError> {
    let (header_part, payload, signature) = split(token)?;
    let header: Header = decode_part(header_part, "the header is not base64url JSON")?;
    if header.alg != "HS256" {
        return Err(TokenError::Algorithm(header.alg));
    }
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| TokenError::Malformed("the signature is not base64url"))?;
    let signing_input = &token[..header_part.len() + 1 + payload.len()];
    mac(secret, signing_input)
        .verify_slice(&signature)
        .map_err(|_| TokenError::Signature)?;
    let claims: Claims = decode_part(payload, "the payload is not base64url JSON claims")?;
    let exp = claims.exp.ok_or(TokenError::NoExpiry)?;
    if now - CLOCK_SKEW_SECS > exp {
        return Err(TokenError::Expired { exp, now });
    }
    if let Some(nbf) = claims.nbf {
        if now + CLOCK_SKEW_SECS < nbf {
            return Err(TokenError::NotYetValid { nbf, now });
        }
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_732_550_413;

    #[test]
    fn signed_tokens_verify_with_their_secret_only() {
        let claims = Claims::egress_access("APIkey", NOW, Duration::from_secs(600));
        let token = sign(&claims, "secret");
        assert_eq!(verify(&token, "secret", NOW + 30), Ok(claims.clone()));
        assert_eq!(unverified_claims(&token).unwrap().iss, "APIkey");
        assert_eq!(verify(&token, "other", NOW), Err(TokenError::Signature));
        // The grant is spelled as LiveKit spells it.
        let payload = token.split('.').nth(1).unwrap();
        let json: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        assert_eq!(json["video"], serde_json::json!({"roomRecord": true}));
        assert_eq!(json["iss"], "APIkey");
        assert_eq!(json["exp"], NOW + 600);
    }

    #[test]
    fn tampered_tokens_are_refused() {
        let token = sign(&Claims::webhook("APIkey", b"{}", NOW), "secret");
        let (header, _, signature) = split(&token).unwrap();
        let forged_claims = Claims::webhook("APIkey", b"{\"other\":1}", NOW);
        let forged = format!("{header}.{}.{signature}", encode_part(&forged_claims));
        assert_eq!(verify(&forged, "secret", NOW), Err(TokenError::Signature));
        assert!(matches!(
            verify("a.b", "secret", NOW),
            Err(TokenError::Malformed(_))
        ));
        assert!(matches!(
            verify(&format!("{token}.x"), "secret", NOW),
            Err(TokenError::Malformed(_))
        ));
    }

    #[test]
    fn only_hs256_is_accepted() {
        let claims = Claims::webhook("APIkey", b"{}", NOW);
        let payload = encode_part(&claims);
        let unsigned = format!(
            "{}.{payload}.",
            encode_part(&serde_json::json!({"alg": "none"}))
        );
        assert_eq!(
            verify(&unsigned, "secret", NOW),
            Err(TokenError::Algorithm("none".into()))
        );
        // An HS512 token signed with the right secret is still refused.
        let input = format!(
            "{}.{payload}",
            encode_part(&serde_json::json!({"alg": "HS512"}))
        );
        let signature = URL_SAFE_NO_PAD.encode(mac("secret", &input).finalize().into_bytes());
        assert_eq!(
            verify(&format!("{input}.{signature}"), "secret", NOW),
            Err(TokenError::Algorithm("HS512".into()))
        );
    }

    #[test]
    fn validity_allows_a_minute_of_skew() {
        let token = sign(&Claims::webhook("APIkey", b"{}", NOW), "secret");
        let exp = NOW + 300;
        assert!(verify(&token, "secret", exp + CLOCK_SKEW_SECS).is_ok());
        assert_eq!(
            verify(&token, "secret", exp + CLOCK_SKEW_SECS + 1),
            Err(TokenError::Expired {
                exp,
                now: exp + CLOCK_SKEW_SECS + 1
            })
        );
        assert!(verify(&token, "secret", NOW - CLOCK_SKEW_SECS).is_ok());
        assert_eq!(
            verify(&token, "secret", NOW - CLOCK_SKEW_SECS - 1),
            Err(TokenError::NotYetValid {
                nbf: NOW,
                now: NOW - CLOCK_SKEW_SECS - 1
            })
        );
        let forever = Claims {
            exp: None,
            ..Claims::webhook("APIkey", b"{}", NOW)
        };
        assert_eq!(
            verify(&sign(&forever, "secret"), "secret", NOW),
            Err(TokenError::NoExpiry)
        );
    }

    #[test]
    fn the_body_hash_is_standard_base64_not_hex() {
        let body = br#"{"event":"egress_ended"}"#;
        let claims = Claims::webhook("APIkey", body, NOW);
        assert!(claims.signs_body(body));
        assert!(!claims.signs_body(b"{}"));
        // Base64 with padding and '+' or '/' where they occur, never URL-safe or hex.
        assert_eq!(
            body_sha256(b"abc"),
            "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="
        );
        let hex = Claims {
            sha256: Some(callscript_core::storage::sha256_hex(body)),
            ..claims
        };
        assert!(!hex.signs_body(body));
    }
}
