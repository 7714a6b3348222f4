//! `core.usage`: what each lane spent on each call (audio seconds, device seconds, LLM tokens,
//! cost), so an organization's cost per hour of audio can be reported. Rows are written in the transaction of
//! the work they account for: work whose commit was lost (a crash, a lost lease) leaves none.

use tokio_postgres::GenericClient;
use uuid::Uuid;

use crate::db::DbError;
use crate::model::Lane;

#[derive(Debug, Clone, PartialEq)]
pub struct UsageRecord {
    pub org_id: Uuid,
    pub call_id: Option<Uuid>,
    pub lane: Lane,
    pub model: Option<String>,
    pub audio_seconds: f64,
    pub gpu_seconds: f64,
    pub cpu_seconds: f64,
    /// Tokens an LLM request spent (the judge's brain); 0 for the other lanes.
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cost_usd: f64,
}

pub async fn record(client: &impl GenericClient, usage: &UsageRecord) -> Result<(), DbError> {
    client
        .execute(
            "INSERT INTO core.usage
               (org_id, call_id, lane, model, audio_seconds, gpu_seconds, cpu_seconds,
                prompt_tokens, completion_tokens, cost_usd)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, round($10::float8::numeric, 6))",
            &[
                &usage.org_id,
                &usage.call_id,
                &usage.lane.as_str(),
                &usage.model,
                &usage.audio_seconds,
                &usage.gpu_seconds,
                &usage.cpu_seconds,
                &usage.prompt_tokens,
                &usage.completion_tokens,
                &usage.cost_usd,
            ],
        )
        .await?;
    Ok(())
}
