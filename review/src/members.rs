//! An organization's members and their API tokens.
//!
//! A token is 32 random bytes, shown once as `cs_` + base64url; only its SHA-256 is stored
//! (`core.organization_members.api_token_sha256`), so a database dump holds no usable token.
//! A fast hash is enough here: unlike a password, a random 256-bit token cannot be guessed from
//! its hash by trying likely values. Issuing a new token replaces the member's old one.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio_postgres::GenericClient;
use uuid::Uuid;

use crate::ReviewError;

const TOKEN_PREFIX: &str = "cs_";

/// What a member may do.
pub use callscript_core::model::MemberRole as Role;

/// Reviewing flags and uploading recordings (which starts paid work) need more than a viewer.
pub fn can_review(role: Role) -> bool {
    matches!(role, Role::Admin | Role::Reviewer)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Member {
    pub id: Uuid,
    pub org_id: Uuid,
    pub email: String,
    pub display_name: Option<String>,
    pub role: Role,
}

fn member_from_row(row: &tokio_postgres::Row) -> Result<Member, ReviewError> {
    Ok(Member {
        id: row.get("id"),
        org_id: row.get("org_id"),
        email: row.get("email"),
        display_name: row.get("display_name"),
        role: row.get::<_, &str>("role").parse()?,
    })
}

const MEMBER_COLUMNS: &str = "id, org_id, email, display_name, role::text AS role";

/// Adds `email` to the organization with `role`, or changes the role of the member it is.
pub async fn add(
    client: &impl GenericClient,
    org_id: Uuid,
    email: &str,
    display_name: Option<&str>,
    role: Role,
) -> Result<Member, ReviewError> {
    let email = email.trim();
    if !email.contains('@') || email.len() > 254 || email.contains(char::is_whitespace) {
        return Err(ReviewError::InvalidEmail(email.to_owned()));
    }
    let row = client
        .query_one(
            &format!(
                "INSERT INTO core.organization_members (org_id, email, display_name, role)
                 VALUES ($1, lower($2), $3, $4::text::core.member_role)
                 ON CONFLICT (org_id, email) DO UPDATE SET
                   role = EXCLUDED.role,
                   display_name = COALESCE(EXCLUDED.display_name,
                                           core.organization_members.display_name)
                 RETURNING {MEMBER_COLUMNS}"
            ),
            &[&org_id, &email, &display_name, &role.as_str()],
        )
        .await?;
    member_from_row(&row)
}

pub async fn list(client: &impl GenericClient, org_id: Uuid) -> Result<Vec<Member>, ReviewError> {
    client
        .query(
            &format!(
                "SELECT {MEMBER_COLUMNS} FROM core.organization_members
                 WHERE org_id = $1 ORDER BY email"
            ),
            &[&org_id],
        )
        .await?
        .iter()
        .map(member_from_row)
        .collect()
}

pub async fn by_email(
    client: &impl GenericClient,
    org_id: Uuid,
    email: &str,
) -> Result<Member, ReviewError> {
    let row = client
        .query_opt(
            &format!(
                "SELECT {MEMBER_COLUMNS} FROM core.organization_members
                 WHERE org_id = $1 AND email = lower($2)"
            ),
            &[&org_id, &email.trim()],
        )
        .await?
        .ok_or_else(|| ReviewError::UnknownMember {
            email: email.to_owned(),
        })?;
    member_from_row(&row)
}

fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Issues a new API token for the member (replacing any earlier one) and returns it: the only
/// time it is seen.
pub async fn issue_token(
    client: &impl GenericClient,
    member_id: Uuid,
) -> Result<String, ReviewError> {
    let token = format!(
        "{TOKEN_PREFIX}{}",
        URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
    );
    client
        .execute(
            "UPDATE core.organization_members SET api_token_sha256 = $2 WHERE id = $1",
            &[&member_id, &token_hash(&token)],
        )
        .await?;
    Ok(token)
}

/// The member a token belongs to, `None` for an unknown or malformed token. Runs before the
/// request's organization is known, so with the connecting role (which crosses orgs), never
/// inside [`crate::scope::enter`].
pub async fn authenticate(
    client: &impl GenericClient,
    token: &str,
) -> Result<Option<Member>, ReviewError> {
    let token = token.trim();
    if !token.starts_with(TOKEN_PREFIX) || token.len() > 128 {
        return Ok(None);
    }
    client
        .query_opt(
            &format!(
                "SELECT {MEMBER_COLUMNS} FROM core.organization_members
                 WHERE api_token_sha256 = $1"
            ),
            &[&token_hash(token)],
        )
        .await?
        .as_ref()
        .map(member_from_row)
        .transpose()
}
