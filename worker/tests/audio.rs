//! `audio::decode` against real recordings in every supported format.
//!
//! The fixtures are 16 kHz WAV; the other formats and rates are made from them with ffmpeg
//! (Debian package `ffmpeg`) in a temporary directory, so the tests exercise the same encoders
//! that produce real uploads. Synthetic signals (sines, silence) are written as WAV here. Where a
//! test needs a file ffmpeg does not write (an Opus output gain, an iTunes `iTunSMPB` tag, a lost
//! Ogg page), it edits one that ffmpeg wrote.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use callscript_testkit::wav_bytes;
use callscript_worker::audio::{
    decode, is_silent, AudioError, AudioLimits, DecodedAudio, TARGET_SAMPLE_RATE,
};
use common::{audio_fixture, ffmpeg, ffmpeg_decode_16k_mono, read};

mod common;

const MONO_FIXTURE: &str = "goforward.wav";
const MONO_SECONDS: f64 = 2.786;
const STEREO_FIXTURE: &str = "faster_whisper_stereo_diarization.wav";
const STEREO_SECONDS: f64 = 5.0;

/// Runs ffmpeg on the file `input` with the output options `args`, writing `output_name` in
/// `dir`; returns what it wrote.
fn ffmpeg_bytes(dir: &Path, input: &Path, args: &[&str], output_name: &str) -> Vec<u8> {
    read(&ffmpeg(
        dir,
        &[OsStr::new("-i"), input.as_os_str()],
        args,
        output_name,
    ))
}

/// The stereo fixture as 44.1 kHz 16-bit PCM: the source every encoded format starts from.
fn stereo_44k(dir: &Path) -> PathBuf {
    let fixture = audio_fixture(STEREO_FIXTURE);
    ffmpeg(
        dir,
        &[OsStr::new("-i"), fixture.as_os_str()],
        &["-ar", "44100", "-c:a", "pcm_s16le"],
        "stereo_44k.wav",
    )
}

fn sine_wav(sample_rate: u32, frequency: f64, seconds: f64) -> Vec<u8> {
    let frames = (f64::from(sample_rate) * seconds) as usize;
    let samples: Vec<i16> = (0..frames)
        .map(|n| {
            let phase = 2.0 * std::f64::consts::PI * frequency * n as f64 / f64::from(sample_rate);
            (phase.sin() * 0.5 * f64::from(i16::MAX)) as i16
        })
        .collect();
    wav_bytes(sample_rate, 1, &samples)
}

fn decode_ok(bytes: &[u8], hint: &str) -> DecodedAudio {
    decode(bytes, Some(hint), &AudioLimits::default())
        .unwrap_or_else(|error| panic!("decoding {hint}: {error}"))
}

fn rms(samples: &[f32]) -> f64 {
    let sum: f64 = samples.iter().map(|s| f64::from(*s).powi(2)).sum();
    (sum / samples.len().max(1) as f64).sqrt()
}

/// Normalised correlation of two signals over their common length (1.0 = same waveform).
fn correlation(a: &[f32], b: &[f32]) -> f64 {
    let n = a.len().min(b.len());
    let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for (x, y) in a[..n].iter().zip(&b[..n]) {
        let (x, y) = (f64::from(*x), f64::from(*y));
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    ab / (aa * bb).sqrt().max(f64::MIN_POSITIVE)
}

/// The highest correlation of `late` shifted back by 0..=`max_lag` samples against `reference`.
fn best_correlation(late: &[f32], reference: &[f32], max_lag: usize) -> f64 {
    (0..=max_lag.min(late.len()))
        .map(|lag| correlation(&late[lag..], reference))
        .fold(f64::MIN, f64::max)
}

fn assert_duration(
    audio: &DecodedAudio,
    expected_seconds: f64,
    tolerance_seconds: f64,
    what: &str,
) {
    assert!(
        (audio.duration_seconds - expected_seconds).abs() <= tolerance_seconds,
        "{what}: duration {} s, expected {expected_seconds} s ± {tolerance_seconds}",
        audio.duration_seconds
    );
    let seconds_at_16k = audio.frames() as f64 / f64::from(TARGET_SAMPLE_RATE);
    assert!(
        (seconds_at_16k - expected_seconds).abs() <= tolerance_seconds,
        "{what}: {} frames at 16 kHz = {seconds_at_16k} s, expected {expected_seconds} s",
        audio.frames()
    );
    for channel in &audio.channels {
        assert_eq!(
            channel.len(),
            audio.frames(),
            "{what}: channel lengths differ"
        );
    }
}

/// Checks a decoded stereo recording against the 16 kHz original, channel by channel: right
/// length, and the same waveform (so the channels are neither swapped nor shifted in time).
///
/// `max_lag` is how many 16 kHz samples the decoded audio may run late (encoder priming that the
/// decoder does not trim).
fn assert_matches_stereo_original(
    audio: &DecodedAudio,
    min_correlation: f64,
    max_lag: usize,
    what: &str,
) {
    let original = decode_ok(&read(&audio_fixture(STEREO_FIXTURE)), "wav");
    assert_eq!(audio.channels.len(), 2, "{what}: channel count");
    for (index, (decoded, reference)) in audio.channels.iter().zip(&original.channels).enumerate() {
        let same = best_correlation(decoded, reference, max_lag);
        let other = best_correlation(decoded, &original.channels[1 - index], max_lag);
        assert!(
            same >= min_correlation && same > other,
            "{what}: channel {index} correlates {same:.3} with its original (other channel \
             {other:.3}), expected ≥ {min_correlation}"
        );
    }
}

#[test]
fn sixteen_khz_wav_passes_through_untouched() {
    let bytes = read(&audio_fixture(MONO_FIXTURE));
    let audio = decode_ok(&bytes, "wav");
    assert_eq!(audio.source_sample_rate, 16_000);
    assert_eq!(audio.channels.len(), 1);
    assert_duration(&audio, MONO_SECONDS, 0.001, "goforward.wav");
    // The samples are the file's 16-bit PCM, bit for bit, scaled to [-1, 1).
    let pcm = &bytes[bytes.len() - audio.frames() * 2..];
    for (n, pair) in pcm.chunks_exact(2).enumerate().step_by(97) {
        let expected = f32::from(i16::from_le_bytes([pair[0], pair[1]])) / 32768.0;
        assert_eq!(audio.channels[0][n], expected, "sample {n}");
    }

    let stereo = decode_ok(&read(&audio_fixture(STEREO_FIXTURE)), "wav");
    assert_eq!(stereo.channels.len(), 2);
    assert_duration(&stereo, STEREO_SECONDS, 0.001, "stereo fixture");
    assert!(correlation(&stereo.channels[0], &stereo.channels[1]) < 0.9);
}

#[test]
fn pcm_44k_stereo_is_resampled_to_two_16k_channels() {
    let dir = tempfile::tempdir().unwrap();
    let audio = decode_ok(&read(&stereo_44k(dir.path())), "wav");
    assert_eq!(audio.source_sample_rate, 44_100);
    assert_duration(&audio, STEREO_SECONDS, 0.02, "44.1 kHz PCM");
    assert_matches_stereo_original(&audio, 0.99, 0, "44.1 kHz PCM");
}

#[test]
fn mu_law_and_a_law_wav_decode() {
    let dir = tempfile::tempdir().unwrap();
    let source = stereo_44k(dir.path());
    for (codec, name) in [("pcm_mulaw", "mulaw.wav"), ("pcm_alaw", "alaw.wav")] {
        let bytes = ffmpeg_bytes(dir.path(), &source, &["-c:a", codec], name);
        let audio = decode_ok(&bytes, "wav");
        assert_duration(&audio, STEREO_SECONDS, 0.02, name);
        assert_matches_stereo_original(&audio, 0.98, 0, name);
    }
}

#[test]
fn telephone_8khz_mu_law_is_upsampled_to_16khz() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = ffmpeg_bytes(
        dir.path(),
        &audio_fixture(MONO_FIXTURE),
        &["-ar", "8000", "-c:a", "pcm_mulaw"],
        "telephone.wav",
    );
    let audio = decode_ok(&bytes, "wav");
    assert_eq!(audio.source_sample_rate, 8_000);
    assert_eq!(audio.channels.len(), 1);
    assert_duration(&audio, MONO_SECONDS, 0.02, "8 kHz μ-law");
    // Telephone band only, but still the same speech, in time with the original.
    let original = decode_ok(&read(&audio_fixture(MONO_FIXTURE)), "wav");
    let same = correlation(&audio.channels[0], &original.channels[0]);
    assert!(
        same > 0.9,
        "8 kHz μ-law correlates {same:.3} with the original"
    );
}

#[test]
fn lossless_and_lossy_formats_decode() {
    let dir = tempfile::tempdir().unwrap();
    let source = stereo_44k(dir.path());
    // (extension, ffmpeg options, duration tolerance, minimum correlation, allowed lag)
    let cases: [(&str, &[&str], f64, f64, usize); 4] = [
        ("flac", &["-c:a", "flac"], 0.02, 0.99, 0),
        ("mp3", &["-c:a", "libmp3lame", "-b:a", "128k"], 0.03, 0.9, 0),
        // Ogg files that are not Opus stay with symphonia.
        ("ogg", &["-c:a", "libvorbis", "-q:a", "4"], 0.03, 0.9, 0),
        // AAC's encoder priming and padding are trimmed as the MP4 edit list says.
        ("m4a", &["-c:a", "aac", "-b:a", "128k"], 0.001, 0.9, 0),
    ];
    for (extension, args, tolerance, min_correlation, max_lag) in cases {
        let bytes = ffmpeg_bytes(dir.path(), &source, args, &format!("stereo.{extension}"));
        let audio = decode_ok(&bytes, extension);
        assert_eq!(audio.source_sample_rate, 44_100, "{extension}");
        assert_duration(&audio, STEREO_SECONDS, tolerance, extension);
        assert_matches_stereo_original(&audio, min_correlation, max_lag, extension);
    }
}

/// Counts the zero crossings from negative to positive: one per period of a pure tone.
fn rising_zero_crossings(samples: &[f32]) -> usize {
    samples
        .windows(2)
        .filter(|pair| pair[0] < 0.0 && pair[1] >= 0.0)
        .count()
}

#[test]
fn resampled_sine_keeps_its_frequency() {
    for source_rate in [44_100, 48_000, 22_050, 8_000] {
        let audio = decode_ok(&sine_wav(source_rate, 1000.0, 2.0), "wav");
        assert_duration(&audio, 2.0, 0.001, "sine");
        // Skip the edges, where the band-limited filter rings against the cut.
        let steady = &audio.channels[0][1600..audio.frames() - 1600];
        let seconds = steady.len() as f64 / 16_000.0;
        let frequency = rising_zero_crossings(steady) as f64 / seconds;
        assert!(
            (frequency - 1000.0).abs() <= 2.0,
            "{source_rate} Hz: measured {frequency} Hz"
        );
        let level = rms(steady);
        assert!(
            (level - 0.5 / 2f64.sqrt()).abs() < 0.01,
            "{source_rate} Hz: RMS {level}, expected the source's 0.354"
        );
    }
}

#[test]
fn tones_above_8khz_are_filtered_out_not_aliased() {
    // A 12 kHz tone at 44.1 kHz cannot exist at 16 kHz; a resampler without an anti-aliasing
    // filter would fold it down to 4 kHz, right into the speech band. Mix it with a 1 kHz tone
    // (which must survive) so the file is not silent.
    let rate = 44_100;
    let frames = rate as usize * 2;
    let samples: Vec<i16> = (0..frames)
        .map(|n| {
            let t = n as f64 / f64::from(rate);
            let tone = |hz: f64| (2.0 * std::f64::consts::PI * hz * t).sin();
            ((0.4 * tone(12_000.0) + 0.1 * tone(1_000.0)) * f64::from(i16::MAX)) as i16
        })
        .collect();
    let audio = decode_ok(&wav_bytes(rate, 1, &samples), "wav");
    let steady = &audio.channels[0][1600..audio.frames() - 1600];
    // What is left is the 1 kHz tone alone (RMS 0.1/√2 ≈ 0.0707): the 12 kHz tone (0.283) and
    // any alias of it are gone.
    let level = rms(steady);
    assert!(
        (level - 0.1 / 2f64.sqrt()).abs() < 0.005,
        "RMS {level}: high tone leaked or aliased"
    );
    assert!(
        (rising_zero_crossings(steady) as f64 / (steady.len() as f64 / 16_000.0) - 1000.0).abs()
            <= 2.0
    );
}

#[test]
fn empty_input_is_its_own_error() {
    let error = decode(&[], Some("wav"), &AudioLimits::default()).unwrap_err();
    assert!(matches!(error, AudioError::Empty), "{error:?}");
    assert!(error.to_string().contains("empty"), "{error}");
}

#[test]
fn non_audio_is_rejected_as_not_audio() {
    for (bytes, hint) in [
        (
            b"hello, this is a text file, not a recording\n".repeat(50),
            Some("wav"),
        ),
        (b"%PDF-1.7\n".repeat(100), None),
        (vec![0u8; 4096], Some("mp3")),
    ] {
        let error = decode(&bytes, hint, &AudioLimits::default()).unwrap_err();
        assert!(matches!(error, AudioError::NotAudio { .. }), "{error:?}");
        assert!(
            error.to_string().starts_with("not a supported audio file"),
            "{error}"
        );
    }
}

#[test]
fn truncated_wav_is_reported_as_truncated() {
    // The header still claims 2.786 s of data; only the first half is there.
    let bytes = read(&audio_fixture(MONO_FIXTURE));
    let error = decode(
        &bytes[..bytes.len() / 2],
        Some("wav"),
        &AudioLimits::default(),
    )
    .unwrap_err();
    let AudioError::Truncated {
        decoded_seconds,
        expected_seconds,
    } = error
    else {
        panic!("expected Truncated, got {error:?}");
    };
    assert!(decoded_seconds < MONO_SECONDS / 2.0, "{decoded_seconds}");
    assert_eq!(expected_seconds.map(|s| (s * 1000.0).round()), Some(2786.0));
    assert!(error_text(&bytes[..bytes.len() / 2]).contains("2.79 s its header states"));

    // A header cut off before its end is truncated too, not "not audio".
    let error = decode(&bytes[..30], Some("wav"), &AudioLimits::default()).unwrap_err();
    assert!(matches!(error, AudioError::Truncated { .. }), "{error:?}");
}

fn error_text(bytes: &[u8]) -> String {
    decode(bytes, Some("wav"), &AudioLimits::default())
        .unwrap_err()
        .to_string()
}

#[test]
fn truncated_flac_is_reported_as_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = ffmpeg_bytes(
        dir.path(),
        &audio_fixture(STEREO_FIXTURE),
        &["-c:a", "flac"],
        "cut.flac",
    );
    let error = decode(
        &bytes[..bytes.len() / 2],
        Some("flac"),
        &AudioLimits::default(),
    )
    .unwrap_err();
    assert!(matches!(error, AudioError::Truncated { .. }), "{error:?}");
}

#[test]
fn corrupt_data_in_the_middle_is_reported_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = ffmpeg_bytes(
        dir.path(),
        &audio_fixture(STEREO_FIXTURE),
        &["-c:a", "flac"],
        "bad.flac",
    );
    let middle = bytes.len() / 2;
    let mut state = 0x9e37_79b9_u32;
    for byte in &mut bytes[middle..middle + 2000] {
        *byte = next_random(&mut state) as u8;
    }
    let error = decode(&bytes, Some("flac"), &AudioLimits::default()).unwrap_err();
    let AudioError::Corrupt {
        position_seconds, ..
    } = &error
    else {
        panic!("expected Corrupt, got {error:?}");
    };
    let position = position_seconds.expect("position known");
    assert!(position > 1.0 && position < 4.0, "position {position}");
    assert!(
        error.to_string().starts_with("corrupt audio at "),
        "{error}"
    );
}

#[test]
fn silence_decodes_as_silence() {
    // A call nobody spoke in is a call: its audio decodes, and only the transcriber finds that
    // there is nothing in it.
    let silence = wav_bytes(16_000, 2, &vec![0; 32_000]);
    let audio = decode(&silence, Some("wav"), &AudioLimits::default()).unwrap();
    assert_eq!((audio.channels.len(), audio.frames()), (2, 16_000));
    assert!((audio.duration_seconds - 1.0).abs() < 1e-9, "{audio:?}");
    assert!(audio.channels.iter().all(|channel| is_silent(channel)));

    // One least-significant bit of dither (3e-5) is still silence.
    let dither: Vec<i16> = (0..32_000)
        .map(|n| if n % 2 == 0 { 1 } else { -1 })
        .collect();
    let audio = decode(
        &wav_bytes(44_100, 1, &dither),
        Some("wav"),
        &AudioLimits::default(),
    )
    .unwrap();
    assert!(is_silent(&audio.channels[0]));
    // The quietest speech a call carries (−60 dBFS) is not.
    assert!(!is_silent(&[0.0, 1e-3, 0.0]));
}

#[test]
fn a_wav_without_samples_has_no_samples() {
    let error = decode(
        &wav_bytes(16_000, 1, &[]),
        Some("wav"),
        &AudioLimits::default(),
    )
    .unwrap_err();
    assert!(matches!(error, AudioError::NoSamples), "{error:?}");
}

#[test]
fn files_over_the_byte_limit_are_rejected_before_decoding() {
    let bytes = read(&audio_fixture(MONO_FIXTURE));
    let limits = AudioLimits {
        max_bytes: 1000,
        ..AudioLimits::default()
    };
    let error = decode(&bytes, Some("wav"), &limits).unwrap_err();
    assert!(
        matches!(
            error,
            AudioError::TooLarge {
                limit_bytes: 1000,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("over the limit of 1000 bytes"),
        "{error}"
    );
    // The size is checked first: even garbage gets TooLarge, not NotAudio.
    let error = decode(&[7u8; 2000], None, &limits).unwrap_err();
    assert!(matches!(error, AudioError::TooLarge { .. }), "{error:?}");
}

#[test]
fn recordings_over_the_duration_limit_are_rejected() {
    let limits = AudioLimits {
        max_duration_seconds: 1.0,
        ..AudioLimits::default()
    };
    // The WAV header states 2.786 s: rejected before decoding.
    let error = decode(&read(&audio_fixture(MONO_FIXTURE)), Some("wav"), &limits).unwrap_err();
    let AudioError::TooLong {
        seconds,
        limit_seconds,
    } = error
    else {
        panic!("expected TooLong, got {error:?}");
    };
    assert!((seconds - MONO_SECONDS).abs() < 0.001, "{seconds}");
    assert_eq!(limit_seconds, 1.0);

    // An ADTS AAC stream has no header; symphonia estimates its length from the frames, so this
    // is rejected before decoding too.
    let dir = tempfile::tempdir().unwrap();
    let bytes = ffmpeg_bytes(
        dir.path(),
        &audio_fixture(STEREO_FIXTURE),
        &["-c:a", "aac"],
        "stream.aac",
    );
    let error = decode(&bytes, Some("aac"), &limits).unwrap_err();
    assert!(matches!(error, AudioError::TooLong { .. }), "{error:?}");
    assert!(
        error.to_string().contains("over the limit of 1 s"),
        "{error}"
    );
    assert!(decode_ok(&bytes, "aac").duration_seconds > 4.9);
}

fn next_random(state: &mut u32) -> u32 {
    // xorshift32: deterministic, so a failure reproduces.
    *state ^= *state << 13;
    *state ^= *state >> 17;
    *state ^= *state << 5;
    *state
}

#[test]
fn no_input_makes_decode_panic() {
    // decode() catches panics as a safety net, so count them through the panic hook to see
    // whether the net was ever needed on this thread.
    let panics = Arc::new(AtomicUsize::new(0));
    let this_thread = std::thread::current().id();
    let previous_hook = std::panic::take_hook();
    let counter = Arc::clone(&panics);
    std::panic::set_hook(Box::new(move |info| {
        if std::thread::current().id() == this_thread {
            counter.fetch_add(1, Ordering::SeqCst);
        }
        previous_hook(info);
    }));

    let dir = tempfile::tempdir().unwrap();
    let source = audio_fixture(MONO_FIXTURE);
    let mut samples = vec![
        ("wav", read(&source)),
        ("wav", read(&audio_fixture(STEREO_FIXTURE))),
    ];
    for (extension, args) in [
        ("flac", &["-c:a", "flac"][..]),
        ("mp3", &["-c:a", "libmp3lame"][..]),
        ("ogg", &["-c:a", "libvorbis"][..]),
        ("m4a", &["-c:a", "aac"][..]),
        ("aac", &["-c:a", "aac"][..]),
        ("opus", &["-c:a", "libopus"][..]),
    ] {
        samples.push((
            extension,
            ffmpeg_bytes(dir.path(), &source, args, &format!("fuzz.{extension}")),
        ));
    }

    let limits = AudioLimits::default();
    let mut state = 0x1234_5678_u32;
    let mut inputs = 0;
    for (extension, bytes) in &samples {
        // Every prefix length class: inside the header, just past it, mid-stream.
        for step in 1..=40 {
            let cut = bytes.len() * step / 41;
            let _ = decode(&bytes[..cut], Some(extension), &limits);
            inputs += 1;
        }
        for _ in 0..40 {
            let mut mutated = bytes.clone();
            for _ in 0..8 {
                let index = next_random(&mut state) as usize % mutated.len();
                mutated[index] = next_random(&mut state) as u8;
            }
            let _ = decode(&mutated, Some(extension), &limits);
            inputs += 1;
        }
    }
    for round in 0..200 {
        let len = (next_random(&mut state) as usize % 5000) + 1;
        let mut bytes: Vec<u8> = (0..len).map(|_| next_random(&mut state) as u8).collect();
        // Give half of them a real magic number so the format readers get past the probe.
        let magic: &[u8] = match round % 8 {
            0 => b"RIFF\x00\x10\x00\x00WAVEfmt ",
            1 => b"fLaC",
            2 => b"OggS",
            3 => b"ID3\x03\x00",
            _ => b"",
        };
        bytes.splice(0..magic.len().min(len), magic.iter().copied());
        let _ = decode(&bytes, None, &limits);
        inputs += 1;
    }

    let _ = std::panic::take_hook();
    assert_eq!(
        panics.load(Ordering::SeqCst),
        0,
        "decoding panicked (caught by the safety net) on some of {inputs} inputs"
    );
}

// ---------------------------------------------------------------------------------------------
// Ogg/Opus (libopus) and AAC priming
// ---------------------------------------------------------------------------------------------

/// The shift of `decoded` against `reference` (positive: `decoded` runs late) that correlates
/// best, searched over ±`max_lag` samples.
fn best_lag(decoded: &[f32], reference: &[f32], max_lag: usize) -> isize {
    let max_lag = max_lag as isize;
    (-max_lag..=max_lag)
        .map(|lag| {
            let value = if lag >= 0 {
                correlation(&decoded[lag as usize..], reference)
            } else {
                correlation(decoded, &reference[lag.unsigned_abs()..])
            };
            (lag, value)
        })
        .fold((0, f64::MIN), |best, (lag, value)| {
            if value > best.1 {
                (lag, value)
            } else {
                best
            }
        })
        .0
}

/// The pages of an Ogg file as (offset, length).
fn ogg_pages(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut pages = Vec::new();
    let mut offset = 0;
    while offset + 27 <= bytes.len() {
        assert_eq!(&bytes[offset..offset + 4], b"OggS", "page at byte {offset}");
        let segments = usize::from(bytes[offset + 26]);
        let body: usize = bytes[offset + 27..offset + 27 + segments]
            .iter()
            .map(|&len| usize::from(len))
            .sum();
        let len = 27 + segments + body;
        pages.push((offset, len));
        offset += len;
    }
    pages
}

/// Recomputes the checksum of the Ogg page at `offset` after the test edited it.
fn refresh_ogg_checksum(bytes: &mut [u8], (offset, len): (usize, usize)) {
    bytes[offset + 22..offset + 26].fill(0);
    let crc = bytes[offset..offset + len].iter().fold(0u32, |crc, &byte| {
        let mut crc = crc ^ (u32::from(byte) << 24);
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04c1_1db7
            } else {
                crc << 1
            };
        }
        crc
    });
    bytes[offset + 22..offset + 26].copy_from_slice(&crc.to_le_bytes());
}

fn opus_file(dir: &Path, fixture: &str, extra_args: &[&str], name: &str) -> (PathBuf, Vec<u8>) {
    let mut args = vec!["-c:a", "libopus"];
    args.extend_from_slice(extra_args);
    let bytes = ffmpeg_bytes(dir, &audio_fixture(fixture), &args, name);
    (dir.join(name), bytes)
}

#[test]
fn ogg_opus_is_trimmed_to_the_recording_and_lines_up_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let original = decode_ok(&read(&audio_fixture(MONO_FIXTURE)), "wav");
    // 20 ms packets (libopus's default), and 2.5 ms and 60 ms ones: the pre-skip (312 or 120
    // samples) and the end trimming fall at different places within packets.
    for frame_ms in ["20", "2.5", "60"] {
        let name = format!("mono_{frame_ms}ms.ogg");
        let (path, bytes) = opus_file(
            dir.path(),
            MONO_FIXTURE,
            &["-frame_duration", frame_ms],
            &name,
        );
        let audio = decode_ok(&bytes, "ogg");
        assert_eq!(audio.source_sample_rate, 48_000, "{name}");
        assert_eq!(audio.channels.len(), 1, "{name}");
        // Exactly the source's 44 580 samples: neither the pre-skip nor the padding is left in.
        assert_eq!(audio.frames(), original.frames(), "{name}");
        assert!(
            (audio.duration_seconds - original.duration_seconds).abs() < 1e-9,
            "{name}: {} s, source {} s",
            audio.duration_seconds,
            original.duration_seconds
        );
        let decoded = &audio.channels[0];
        let lag = best_lag(decoded, &original.channels[0], 400);
        assert_eq!(lag, 0, "{name}: runs {lag} samples late against the source");
        let same = correlation(decoded, &original.channels[0]);
        assert!(same > 0.95, "{name}: correlates {same:.3} with the source");
        // ffmpeg's own Opus decoder puts every sample at the same place.
        let reference = ffmpeg_decode_16k_mono(&path);
        let lag = best_lag(decoded, &reference, 400);
        assert_eq!(lag, 0, "{name}: runs {lag} samples late against ffmpeg");
        assert_eq!(
            decoded.len(),
            reference.len(),
            "{name}: length against ffmpeg"
        );
    }
}

#[test]
fn ogg_opus_stereo_keeps_each_party_on_its_channel() {
    let dir = tempfile::tempdir().unwrap();
    let (_, bytes) = opus_file(dir.path(), STEREO_FIXTURE, &[], "stereo.ogg");
    let audio = decode_ok(&bytes, "opus");
    assert_duration(&audio, STEREO_SECONDS, 1e-9, "stereo Opus");
    assert_matches_stereo_original(&audio, 0.95, 0, "stereo Opus");
    let original = decode_ok(&read(&audio_fixture(STEREO_FIXTURE)), "wav");
    for (index, (decoded, reference)) in audio.channels.iter().zip(&original.channels).enumerate() {
        let lag = best_lag(decoded, reference, 400);
        assert_eq!(lag, 0, "channel {index} runs {lag} samples late");
    }
}

#[test]
fn ogg_opus_output_gain_is_applied() {
    let dir = tempfile::tempdir().unwrap();
    let (_, bytes) = opus_file(dir.path(), MONO_FIXTURE, &[], "gain.ogg");
    let plain = decode_ok(&bytes, "ogg");
    // ffmpeg writes a gain of 0; set −6.02 dB (Q7.8: −1541), half the amplitude.
    let mut quieter = bytes.clone();
    let head = ogg_pages(&bytes)[0];
    let gain_at = head.0 + 28 + 16;
    assert_eq!(&quieter[head.0 + 28..head.0 + 36], b"OpusHead");
    quieter[gain_at..gain_at + 2].copy_from_slice(&(-1541i16).to_le_bytes());
    refresh_ogg_checksum(&mut quieter, head);
    let halved = decode_ok(&quieter, "ogg");
    let ratio = rms(&halved.channels[0]) / rms(&plain.channels[0]);
    assert!((ratio - 0.5).abs() < 0.005, "output gain scaled by {ratio}");
}

#[test]
fn ogg_opus_with_more_than_two_channels_is_an_unsupported_codec() {
    // Six channels need channel mapping family 1 (several Opus streams in one): not supported.
    let dir = tempfile::tempdir().unwrap();
    let (_, bytes) = opus_file(dir.path(), MONO_FIXTURE, &["-ac", "6"], "surround.ogg");
    let error = decode(&bytes, Some("ogg"), &AudioLimits::default()).unwrap_err();
    assert!(
        matches!(error, AudioError::UnsupportedCodec { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("channel mapping family 1") && message.contains("6 channels"),
        "{message}"
    );
}

#[test]
fn truncated_ogg_opus_is_reported_as_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let (_, bytes) = opus_file(dir.path(), STEREO_FIXTURE, &[], "cut.ogg");
    let last_page = ogg_pages(&bytes).last().unwrap().0;
    // Cut inside a page, and cut cleanly before the last page (a recorder that died before it
    // finished the file): the stream never ends, so both are truncated.
    for cut in [bytes.len() / 2, last_page] {
        let error = decode(&bytes[..cut], Some("ogg"), &AudioLimits::default()).unwrap_err();
        let AudioError::Truncated {
            decoded_seconds, ..
        } = error
        else {
            panic!("cut at {cut}: expected Truncated, got {error:?}");
        };
        assert!(
            decoded_seconds > 1.0 && decoded_seconds < STEREO_SECONDS,
            "cut at {cut}: {decoded_seconds} s decoded"
        );
    }
    // Cut inside the identification header's page.
    let error = decode(&bytes[..40], Some("ogg"), &AudioLimits::default()).unwrap_err();
    assert!(matches!(error, AudioError::Truncated { .. }), "{error:?}");
}

fn corrupt_position(error: &AudioError) -> f64 {
    let AudioError::Corrupt {
        position_seconds, ..
    } = error
    else {
        panic!("expected Corrupt, got {error:?}");
    };
    assert!(
        error.to_string().starts_with("corrupt audio at "),
        "{error}"
    );
    position_seconds.expect("position known")
}

#[test]
fn damaged_or_missing_ogg_opus_pages_are_corrupt_with_their_position() {
    let dir = tempfile::tempdir().unwrap();
    let (_, bytes) = opus_file(dir.path(), STEREO_FIXTURE, &[], "bad.ogg");
    let pages = ogg_pages(&bytes);
    // Two header pages, then one page per second of audio.
    let third_second = pages[4];

    // Damaged bytes: the page fails its checksum.
    let mut damaged = bytes.clone();
    let mut state = 0x9e37_79b9_u32;
    for byte in &mut damaged[third_second.0 + 100..third_second.0 + 300] {
        *byte = next_random(&mut state) as u8;
    }
    let error = decode(&damaged, Some("ogg"), &AudioLimits::default()).unwrap_err();
    let position = corrupt_position(&error);
    assert!((1.9..=2.1).contains(&position), "position {position}");
    assert!(error.to_string().contains("checksum"), "{error}");

    // A page left out: its sequence number is missing.
    let mut holed = bytes.clone();
    holed.drain(third_second.0..third_second.0 + third_second.1);
    let error = decode(&holed, Some("ogg"), &AudioLimits::default()).unwrap_err();
    let position = corrupt_position(&error);
    assert!((1.9..=2.1).contains(&position), "position {position}");
    assert!(error.to_string().contains("missing"), "{error}");

    // A packet libopus cannot parse, in a page with a valid checksum: code 3 (several frames)
    // with a frame count of 0.
    let mut invalid = bytes.clone();
    let (offset, len) = third_second;
    assert_eq!(invalid[offset + 5] & 1, 0, "page continues a packet");
    let body = offset + 27 + usize::from(invalid[offset + 26]);
    invalid[body] |= 0b11;
    invalid[body + 1] = 0;
    refresh_ogg_checksum(&mut invalid, (offset, len));
    let error = decode(&invalid, Some("ogg"), &AudioLimits::default()).unwrap_err();
    let position = corrupt_position(&error);
    assert!((1.9..=2.1).contains(&position), "position {position}");
    assert!(error.to_string().contains("Opus packet"), "{error}");
}

#[test]
fn ogg_opus_over_the_duration_limit_is_rejected_from_its_last_page() {
    let dir = tempfile::tempdir().unwrap();
    let (_, bytes) = opus_file(dir.path(), MONO_FIXTURE, &[], "long.ogg");
    let limits = AudioLimits {
        max_duration_seconds: 1.0,
        ..AudioLimits::default()
    };
    let error = decode(&bytes, Some("ogg"), &limits).unwrap_err();
    let AudioError::TooLong { seconds, .. } = error else {
        panic!("expected TooLong, got {error:?}");
    };
    // The length the last page states (all of it, not the 1 s decoded before giving up).
    assert!(
        (seconds - 44_580.0 / 16_000.0).abs() < 1e-9,
        "{seconds} s stated"
    );
}

#[test]
fn silent_ogg_opus_decodes_as_silence() {
    let dir = tempfile::tempdir().unwrap();
    let silence = dir.path().join("silence.wav");
    std::fs::write(&silence, wav_bytes(16_000, 2, &vec![0; 64_000])).unwrap();
    let bytes = ffmpeg_bytes(dir.path(), &silence, &["-c:a", "libopus"], "silence.ogg");
    let audio = decode(&bytes, Some("ogg"), &AudioLimits::default()).unwrap();
    assert!((audio.duration_seconds - 2.0).abs() < 0.01, "{audio:?}");
    assert!(audio.channels.iter().all(|channel| is_silent(channel)));
}

/// The offset of the top-level `moov` box of an MP4 file.
fn moov_offset(bytes: &[u8]) -> usize {
    let mut offset = 0;
    loop {
        let size = u32::from_be_bytes(bytes[offset..offset + 4].try_into().unwrap()) as usize;
        if &bytes[offset + 4..offset + 8] == b"moov" {
            return offset;
        }
        assert!(size >= 8, "box at {offset}");
        offset += size;
    }
}

fn mp4_box(kind: &[u8; 4], contents: &[u8]) -> Vec<u8> {
    let mut bytes = u32::try_from(contents.len() + 8)
        .unwrap()
        .to_be_bytes()
        .to_vec();
    bytes.extend_from_slice(kind);
    bytes.extend_from_slice(contents);
    bytes
}

/// `bytes` (an ffmpeg M4A, `moov` last) with the edit list hidden and an iTunes `iTunSMPB` tag
/// added instead, as Apple's encoders write priming.
fn with_itunes_smpb_instead_of_edit_list(bytes: &[u8], smpb: &str) -> Vec<u8> {
    let moov = moov_offset(bytes);
    let moov_size = u32::from_be_bytes(bytes[moov..moov + 4].try_into().unwrap()) as usize;
    assert_eq!(moov + moov_size, bytes.len(), "moov is the last box");
    let mut edited = bytes.to_vec();
    // Renaming keeps every size and offset valid.
    for (from, to) in [(b"edts", b"free"), (b"udta", b"skip")] {
        let at = moov
            + edited[moov..]
                .windows(4)
                .position(|window| window == from)
                .unwrap_or_else(|| panic!("{}", String::from_utf8_lossy(from)));
        edited[at..at + 4].copy_from_slice(to);
    }
    let mut mean = vec![0; 4];
    mean.extend_from_slice(b"com.apple.iTunes");
    let mut name = vec![0; 4];
    name.extend_from_slice(b"iTunSMPB");
    let mut data = vec![0, 0, 0, 1, 0, 0, 0, 0];
    data.extend_from_slice(smpb.as_bytes());
    let item = [
        mp4_box(b"mean", &mean),
        mp4_box(b"name", &name),
        mp4_box(b"data", &data),
    ]
    .concat();
    let mut meta = vec![0; 4];
    meta.extend(mp4_box(b"hdlr", &[0; 25]));
    meta.extend(mp4_box(b"ilst", &mp4_box(b"----", &item)));
    let udta = mp4_box(b"udta", &mp4_box(b"meta", &meta));
    edited.extend_from_slice(&udta);
    let new_size = u32::try_from(moov_size + udta.len()).unwrap();
    edited[moov..moov + 4].copy_from_slice(&new_size.to_be_bytes());
    edited
}

#[test]
fn m4a_priming_and_padding_are_trimmed_in_line_with_ffmpeg() {
    let dir = tempfile::tempdir().unwrap();
    let original = decode_ok(&read(&audio_fixture(MONO_FIXTURE)), "wav");
    // 16 kHz AAC (no resampling), and 44.1 kHz (resampled by the shared path).
    for (rate, name) in [("16000", "mono_16k.m4a"), ("44100", "mono_44k.m4a")] {
        let bytes = ffmpeg_bytes(
            dir.path(),
            &audio_fixture(MONO_FIXTURE),
            &["-ar", rate, "-c:a", "aac", "-b:a", "128k"],
            name,
        );
        let audio = decode_ok(&bytes, "m4a");
        let decoded = &audio.channels[0];
        // ffmpeg drops the 1024 priming samples its edit list states (but keeps the padding).
        let reference = ffmpeg_decode_16k_mono(&dir.path().join(name));
        let lag = best_lag(decoded, &reference, 2_400);
        assert!(
            lag.abs() <= 1,
            "{name}: runs {lag} samples late against ffmpeg"
        );
        let lag = best_lag(decoded, &original.channels[0], 2_400);
        assert!(
            lag.abs() <= 1,
            "{name}: runs {lag} samples late against the source"
        );
        // The padding is gone too: the source's length, to the sample at 16 kHz.
        let frames_off = decoded.len().abs_diff(original.frames());
        assert!(
            frames_off <= 1,
            "{name}: {} frames, source {}",
            decoded.len(),
            original.frames()
        );
        assert_duration(&audio, original.duration_seconds, 0.0001, name);
    }
}

#[test]
fn m4a_priming_from_an_itunes_smpb_tag_is_trimmed() {
    let dir = tempfile::tempdir().unwrap();
    let original = decode_ok(&read(&audio_fixture(MONO_FIXTURE)), "wav");
    let bytes = ffmpeg_bytes(
        dir.path(),
        &audio_fixture(MONO_FIXTURE),
        &["-c:a", "aac", "-b:a", "128k"],
        "itunes.m4a",
    );
    // Priming 0x400 (1024), padding, original length 0xAE24 (44 580) samples.
    let edited = with_itunes_smpb_instead_of_edit_list(
        &bytes,
        " 00000000 00000400 000001DC 000000000000AE24 00000000 00000000",
    );
    let audio = decode_ok(&edited, "m4a");
    assert_eq!(audio.frames(), original.frames());
    let lag = best_lag(&audio.channels[0], &original.channels[0], 2_400);
    assert_eq!(lag, 0, "runs {lag} samples late against the source");

    // Without either, the priming would stay in: proof that the tag is what was used.
    let mut neither = edited.clone();
    let at = neither.windows(8).position(|w| w == b"iTunSMPB").unwrap();
    neither[at..at + 8].copy_from_slice(b"iTunNORM");
    let untrimmed = decode_ok(&neither, "m4a");
    let lag = best_lag(&untrimmed.channels[0], &original.channels[0], 2_400);
    assert_eq!(lag, 1024, "untrimmed AAC runs {lag} samples late");
}
