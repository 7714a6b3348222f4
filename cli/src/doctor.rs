//! `callscript doctor`: checks what a worker needs, each on its own line, and says what is wrong.
//! It reads and loads but changes nothing (no migration, no object written).

use std::time::Instant;

use anyhow::{Context, Result};
use callscript_core::{maintenance, migrate};
use callscript_worker::device;
use clap::Args;

use crate::commands::{database_url, open_reachable_storage, Settings};
use crate::transcribe::{open_decoder, ModelArgs, SpeakerArgs};

#[derive(Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    speakers: SpeakerArgs,
    /// Skip the speaker encoder (workers run with --no-diarize).
    #[arg(long)]
    no_diarize: bool,
}

/// Prints one check's outcome; returns whether it passed.
fn report(what: &str, outcome: Result<String>) -> bool {
    match outcome {
        Ok(detail) => {
            println!("ok    {what:<9} {detail}");
            true
        }
        Err(e) => {
            println!("FAIL  {what:<9} {e:#}");
            false
        }
    }
}

pub async fn run(settings: &Settings, args: DoctorArgs) -> Result<()> {
    let mut passed = report("database", check_database(settings).await);
    passed &= report("storage", check_storage(settings).await);
    passed &= report(
        "device",
        device::open(&args.model.device)
            .map(|(device, dtype)| {
                let memory = device::memory(&device).map_or(String::new(), |m| {
                    format!(
                        ", {:.1} GiB free of {:.1} GiB",
                        m.free as f64 / GIB,
                        m.total as f64 / GIB
                    )
                });
                format!("{} in {dtype:?}{memory}", device::describe(&device))
            })
            .map_err(Into::into),
    );
    passed &= report(
        "model",
        tokio::task::block_in_place(|| {
            let started = Instant::now();
            let (decoder, _) = open_decoder(
                &args.model.model,
                &args.model.device,
                args.model.decode_options(true),
            )?;
            let dims = &decoder.model().dims;
            Ok(format!(
                "{} loads in {:.1} s ({} mels, {} encoder and {} decoder layers of {}, {})",
                args.model.model,
                started.elapsed().as_secs_f64(),
                dims.n_mels,
                dims.n_audio_layer,
                dims.n_text_layer,
                dims.n_audio_state,
                if dims.is_multilingual() {
                    "multilingual"
                } else {
                    "English only"
                }
            ))
        }),
    );
    if !args.no_diarize {
        passed &= report(
            "speakers",
            args.speakers
                .open_diarizer()
                .map(|_| format!("{} loads", args.speakers.speaker_model.display())),
        );
    }
    if !passed {
        anyhow::bail!("some checks failed");
    }
    Ok(())
}

const GIB: f64 = (1u64 << 30) as f64;

async fn check_database(settings: &Settings) -> Result<String> {
    let url = database_url(settings)?;
    let (client, connection) = callscript_core::db::connect_one(&url).await?;
    tokio::spawn(connection);
    let version: String = client.query_one("SHOW server_version", &[]).await?.get(0);
    migrate::ensure_current(&client)
        .await
        .with_context(|| url.redacted())?;
    let rescuer = if maintenance::scheduled_by_pg_cron(&client).await? {
        "rescuer scheduled by pg_cron"
    } else {
        "no pg_cron schedule: workers run the rescuer"
    };
    Ok(format!(
        "{}: PostgreSQL {version}, schema current ({} migrations), {rescuer}",
        url.redacted(),
        migrate::MIGRATIONS.len()
    ))
}

async fn check_storage(settings: &Settings) -> Result<String> {
    let store = open_reachable_storage(settings).await?;
    Ok(format!("{} is reachable", store.describe()))
}
