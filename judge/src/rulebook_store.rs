//! Rulebooks stored per organization (`core.rulebooks`), and which one judges a call.
//!
//! A call is judged by its campaign's rulebook, else its organization's, else the one compiled
//! into the binary. A reference is "name" (the latest version stored under that name) or
//! "name@version". Stored versions never change: flags name the version that raised them, so
//! storing different text under a stored version is refused; storing the same text again is a
//! no-op, so `rules add` can run from a deploy script.

use callscript_core::db::DbError;
use callscript_core::storage::sha256_hex;
use chrono::{DateTime, Utc};
use tokio_postgres::GenericClient;
use uuid::Uuid;

use crate::{Rulebook, RulebookError};

#[derive(Debug, thiserror::Error)]
pub enum RulebookStoreError {
    #[error("the rulebook is not valid:\n{0}")]
    Invalid(#[from] RulebookError),
    #[error(
        "rulebook {reference} is already stored with different rules; a stored version never \
         changes (flags name it): give the new rules a new `version`"
    )]
    VersionTaken { reference: String },
    #[error(
        "no rulebook {reference} stored for this organization (store it with `callscript rules \
         add FILE --org …`; `callscript rules list --org …` shows what is stored)"
    )]
    Unknown { reference: String },
    #[error("no campaign {campaign:?} in this organization")]
    UnknownCampaign { campaign: String },
    #[error("{count} campaigns of this organization are called {campaign:?}: name it by its source's id")]
    AmbiguousCampaign { campaign: String, count: usize },
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<tokio_postgres::Error> for RulebookStoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        RulebookStoreError::Db(e.into())
    }
}

/// What [`add`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Added {
    Stored {
        reference: String,
    },
    /// The same text was already stored under that version.
    Unchanged {
        reference: String,
    },
}

/// Checks `text` and stores it as its `[rulebook]` name and version for `org_id`.
pub async fn add(
    client: &impl GenericClient,
    org_id: Uuid,
    text: &str,
) -> Result<Added, RulebookStoreError> {
    let rulebook = Rulebook::parse(text)?;
    let reference = rulebook.reference();
    let sha256 = sha256_hex(text.as_bytes());
    let inserted = client
        .execute(
            "INSERT INTO core.rulebooks (org_id, name, version, body, sha256)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (org_id, name, version) DO NOTHING",
            &[&org_id, &rulebook.name, &rulebook.version, &text, &sha256],
        )
        .await?;
    if inserted == 1 {
        return Ok(Added::Stored { reference });
    }
    let stored: String = client
        .query_one(
            "SELECT sha256 FROM core.rulebooks WHERE org_id = $1 AND name = $2 AND version = $3",
            &[&org_id, &rulebook.name, &rulebook.version],
        )
        .await?
        .get(0);
    if stored == sha256 {
        Ok(Added::Unchanged { reference })
    } else {
        Err(RulebookStoreError::VersionTaken { reference })
    }
}

/// One stored rulebook version, and where it is applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRulebook {
    pub name: String,
    pub version: String,
    pub sha256: String,
    pub rules: usize,
    pub created_at: DateTime<Utc>,
    /// "organization" and/or "campaign NAME" for each reference that resolves to this version.
    pub applied_to: Vec<String>,
}

/// The organization's stored rulebooks, newest first within a name.
pub async fn list(
    client: &impl GenericClient,
    org_id: Uuid,
) -> Result<Vec<StoredRulebook>, RulebookStoreError> {
    let rows = client
        .query(
            "SELECT name, version, sha256, body, created_at FROM core.rulebooks
             WHERE org_id = $1 ORDER BY name, created_at DESC",
            &[&org_id],
        )
        .await?;
    let users = client
        .query(
            "SELECT 'organization' AS who, rulebook FROM core.organizations
             WHERE id = $1 AND rulebook IS NOT NULL
             UNION ALL
             SELECT 'campaign ' || name, rulebook FROM core.campaigns
             WHERE org_id = $1 AND rulebook IS NOT NULL
             ORDER BY 1",
            &[&org_id],
        )
        .await?;
    let mut out: Vec<StoredRulebook> = Vec::with_capacity(rows.len());
    for row in rows {
        let name: String = row.get("name");
        let version: String = row.get("version");
        let body: String = row.get("body");
        // Rows are newest first within a name: the first of a name is its latest.
        let latest = out.last().is_none_or(|previous| previous.name != name);
        let applied_to = users
            .iter()
            .filter(|user| {
                let (user_name, user_version) = split_reference(user.get("rulebook"));
                user_name == name && user_version.map_or(latest, |v| v == version)
            })
            .map(|user| user.get("who"))
            .collect();
        out.push(StoredRulebook {
            rules: Rulebook::parse(&body).map_or(0, |r| r.rules.len()),
            name,
            version,
            sha256: row.get("sha256"),
            created_at: row.get("created_at"),
            applied_to,
        });
    }
    Ok(out)
}

/// "name@version" → (name, Some(version)); "name" → (name, None).
fn split_reference(reference: &str) -> (&str, Option<&str>) {
    match reference.split_once('@') {
        Some((name, version)) => (name, Some(version)),
        None => (reference, None),
    }
}

/// Where a rulebook reference is applied.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    Organization,
    /// A campaign by its source's id or its name.
    Campaign(&'a str),
}

/// Applies `reference` (or the compiled-in default with `None`) to the organization's calls or
/// one campaign's. The reference must resolve to a stored rulebook now; a name without version
/// follows the versions stored under it later.
pub async fn apply(
    client: &impl GenericClient,
    org_id: Uuid,
    scope: Scope<'_>,
    reference: Option<&str>,
) -> Result<(), RulebookStoreError> {
    if let Some(reference) = reference {
        load(client, org_id, reference).await?;
    }
    match scope {
        Scope::Organization => {
            client
                .execute(
                    "UPDATE core.organizations SET rulebook = $2 WHERE id = $1",
                    &[&org_id, &reference],
                )
                .await?;
        }
        Scope::Campaign(campaign) => {
            let ids: Vec<Uuid> = client
                .query(
                    "SELECT id FROM core.campaigns
                     WHERE org_id = $1 AND (external_id = $2 OR name = $2)",
                    &[&org_id, &campaign],
                )
                .await?
                .iter()
                .map(|row| row.get(0))
                .collect();
            match ids.as_slice() {
                [id] => {
                    client
                        .execute(
                            "UPDATE core.campaigns SET rulebook = $2 WHERE id = $1",
                            &[id, &reference],
                        )
                        .await?;
                }
                [] => {
                    return Err(RulebookStoreError::UnknownCampaign {
                        campaign: campaign.to_owned(),
                    })
                }
                _ => {
                    return Err(RulebookStoreError::AmbiguousCampaign {
                        campaign: campaign.to_owned(),
                        count: ids.len(),
                    })
                }
            }
        }
    }
    Ok(())
}

/// The stored rulebook `reference` names for `org_id`.
pub async fn load(
    client: &impl GenericClient,
    org_id: Uuid,
    reference: &str,
) -> Result<Rulebook, RulebookStoreError> {
    let (name, version) = split_reference(reference);
    let body: String = client
        .query_opt(
            "SELECT body FROM core.rulebooks
             WHERE org_id = $1 AND name = $2 AND ($3::text IS NULL OR version = $3)
             ORDER BY created_at DESC LIMIT 1",
            &[&org_id, &name, &version],
        )
        .await?
        .ok_or_else(|| RulebookStoreError::Unknown {
            reference: reference.to_owned(),
        })?
        .get(0);
    Ok(Rulebook::parse(&body)?)
}

/// The rulebook that judges a call of `org_id` in `campaign_id`: the campaign's, else the
/// organization's, else the compiled-in default.
pub async fn for_call(
    client: &impl GenericClient,
    org_id: Uuid,
    campaign_id: Option<Uuid>,
) -> Result<Rulebook, RulebookStoreError> {
    let reference: Option<String> = client
        .query_one(
            "SELECT COALESCE(
               (SELECT rulebook FROM core.campaigns WHERE id = $2 AND org_id = $1),
               (SELECT rulebook FROM core.organizations WHERE id = $1))",
            &[&org_id, &campaign_id],
        )
        .await?
        .get(0);
    match reference {
        Some(reference) => load(client, org_id, &reference).await,
        None => Ok(Rulebook::default_rulebook()),
    }
}
