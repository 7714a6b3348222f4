//! Organizations (tenants) and their campaigns.

use tokio_postgres::GenericClient;
use uuid::Uuid;

use crate::db::DbError;
use crate::model::Source;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Organization {
    pub id: Uuid,
    pub slug: String,
    pub name: String,
    pub timezone: String,
}

#[derive(Debug, thiserror::Error)]
pub enum OrgError {
    #[error("no organization with slug {0:?} (create it with `callscript org create {0}`)")]
    UnknownSlug(String),
    #[error("invalid organization slug {0:?}: use 1 to 63 lower-case letters, digits and '-', starting with a letter or digit")]
    InvalidSlug(String),
    #[error(
        "unknown time zone {0:?}: use an IANA name such as America/New_York, Europe/London or UTC"
    )]
    InvalidTimezone(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<tokio_postgres::Error> for OrgError {
    fn from(e: tokio_postgres::Error) -> Self {
        OrgError::Db(e.into())
    }
}

fn valid_slug(slug: &str) -> bool {
    let mut chars = slug.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && slug.len() <= 63
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn from_row(row: &tokio_postgres::Row) -> Organization {
    Organization {
        id: row.get("id"),
        slug: row.get("slug"),
        name: row.get("name"),
        timezone: row.get("timezone"),
    }
}

/// Creates the organization, or returns the existing one with that slug (`created` says which).
pub async fn ensure(
    client: &impl GenericClient,
    slug: &str,
    name: &str,
    timezone: &str,
) -> Result<(Organization, bool), OrgError> {
    if !valid_slug(slug) {
        return Err(OrgError::InvalidSlug(slug.to_owned()));
    }
    check_timezone(client, timezone).await?;
    let inserted = client
        .query_opt(
            "INSERT INTO core.organizations (slug, name, timezone) VALUES ($1, $2, $3)
             ON CONFLICT (slug) DO NOTHING
             RETURNING id, slug, name, timezone",
            &[&slug, &name, &timezone],
        )
        .await?;
    match inserted {
        Some(row) => Ok((from_row(&row), true)),
        None => Ok((by_slug(client, slug).await?, false)),
    }
}

/// Follow-up times and daily reports are read in the organization's zone: it must be one
/// Postgres (and the IANA database the judge reads) knows.
async fn check_timezone(client: &impl GenericClient, timezone: &str) -> Result<(), OrgError> {
    let known: bool = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = $1)",
            &[&timezone],
        )
        .await?
        .get(0);
    if known {
        Ok(())
    } else {
        Err(OrgError::InvalidTimezone(timezone.to_owned()))
    }
}

/// Changes the organization's name and/or time zone.
pub async fn update(
    client: &impl GenericClient,
    slug: &str,
    name: Option<&str>,
    timezone: Option<&str>,
) -> Result<Organization, OrgError> {
    if let Some(timezone) = timezone {
        check_timezone(client, timezone).await?;
    }
    client
        .query_opt(
            "UPDATE core.organizations
             SET name = COALESCE($2, name), timezone = COALESCE($3, timezone)
             WHERE slug = $1
             RETURNING id, slug, name, timezone",
            &[&slug, &name, &timezone],
        )
        .await?
        .map(|row| from_row(&row))
        .ok_or_else(|| OrgError::UnknownSlug(slug.to_owned()))
}

pub async fn by_slug(client: &impl GenericClient, slug: &str) -> Result<Organization, OrgError> {
    client
        .query_opt(
            "SELECT id, slug, name, timezone FROM core.organizations WHERE slug = $1",
            &[&slug],
        )
        .await?
        .map(|row| from_row(&row))
        .ok_or_else(|| OrgError::UnknownSlug(slug.to_owned()))
}

pub async fn list(client: &impl GenericClient) -> Result<Vec<Organization>, OrgError> {
    Ok(client
        .query(
            "SELECT id, slug, name, timezone FROM core.organizations ORDER BY slug",
            &[],
        )
        .await?
        .iter()
        .map(from_row)
        .collect())
}

/// The campaign `(org, source, external_id)`, created with `name` if it does not exist yet.
pub async fn ensure_campaign(
    client: &impl GenericClient,
    org_id: Uuid,
    source: Source,
    external_id: &str,
    name: &str,
) -> Result<Uuid, OrgError> {
    let row = client
        .query_one(
            "WITH inserted AS (
               INSERT INTO core.campaigns (org_id, source, external_id, name)
               VALUES ($1, $2::text::core.call_source, $3, $4)
               ON CONFLICT (org_id, source, external_id) DO NOTHING
               RETURNING id)
             SELECT id FROM inserted
             UNION ALL
             SELECT id FROM core.campaigns
             WHERE org_id = $1 AND source = $2::text::core.call_source AND external_id = $3
             LIMIT 1",
            &[&org_id, &source.as_str(), &external_id, &name],
        )
        .await?;
    Ok(row.get(0))
}

#[cfg(test)]
mod tests {
    #[test]
    fn slugs() {
        for good in ["acme", "a", "acme-2", "9lives"] {
            assert!(super::valid_slug(good), "{good}");
        }
        for bad in ["", "-acme", "Acme", "ac me", "acme_2", &"a".repeat(64)] {
            assert!(!super::valid_slug(bad), "{bad}");
        }
    }
}
