//! What a recording's headers say (length, channels, sample rate), read without decoding it:
//! the vault checks that a download is audio it can use and records its facts before any GPU
//! time is spent on it.

use std::io::Cursor;

use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, TrackType};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;

/// A recording's facts; each is `None` when its container does not state it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AudioFacts {
    pub duration_ms: Option<i32>,
    pub channels: Option<i16>,
    pub sample_rate: Option<i32>,
}

/// Reads the container's header; an error says why the bytes are not usable audio.
pub fn probe(bytes: &[u8], extension: Option<&str>) -> Result<AudioFacts, String> {
    let source = MediaSourceStream::new(Box::new(Cursor::new(bytes.to_vec())), Default::default());
    let mut hint = Hint::new();
    if let Some(extension) = extension {
        hint.with_extension(extension);
    }
    let format = symphonia::default::get_probe()
        .probe(
            &hint,
            source,
            FormatOptions::default(),
            MetadataOptions::default(),
        )
        .map_err(|e| format!("unreadable container: {e}"))?;
    let track = format
        .default_track(TrackType::Audio)
        .ok_or("the file has no audio track")?;
    let audio = track.codec_params.as_ref().and_then(|p| p.audio());
    let sample_rate = audio.and_then(|a| a.sample_rate).filter(|rate| *rate > 0);
    let channels = audio
        .and_then(|a| a.channels.as_ref())
        .map(|c| c.count())
        .filter(|count| *count > 0);
    let seconds = match (track.num_frames, sample_rate) {
        (Some(frames), Some(rate)) => Some(frames as f64 / f64::from(rate)),
        _ => track
            .time_base
            .zip(track.duration)
            .and_then(|(base, duration)| base.calc_duration(duration))
            .map(|time| time.as_secs_f64()),
    };
    Ok(AudioFacts {
        duration_ms: seconds.map(|s| (s * 1000.0).round().min(f64::from(i32::MAX)) as i32),
        channels: channels.and_then(|c| i16::try_from(c).ok()),
        sample_rate: sample_rate.and_then(|r| i32::try_from(r).ok()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use callscript_testkit::wav_bytes;

    #[test]
    fn reads_length_channels_and_rate() {
        let three_seconds_stereo = wav_bytes(8000, 2, &vec![0; 3 * 8000 * 2]);
        let facts = probe(&three_seconds_stereo, Some("wav")).unwrap();
        assert_eq!(
            facts,
            AudioFacts {
                duration_ms: Some(3000),
                channels: Some(2),
                sample_rate: Some(8000),
            }
        );
    }

    #[test]
    fn names_what_is_wrong() {
        let error = probe(b"<html>Access denied</html>", None).unwrap_err();
        assert!(error.contains("unreadable"), "{error}");
    }
}
