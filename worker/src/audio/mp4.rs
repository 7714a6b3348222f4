//! Encoder priming and padding of MP4/M4A audio, which symphonia's MP4 reader does not apply.
//!
//! An AAC encoder emits one frame of start-up (priming: 1024 samples from ffmpeg, 2112 from
//! Apple's encoders) before the first real sample, and pads the last frame. Decoded as is, the
//! audio runs late by that much, so word timestamps would too. The file says what to keep in the
//! track's edit list (`elst`, what ffmpeg writes and reads), or, in iTunes files, in the
//! `iTunSMPB` tag; this module reads whichever is there, and [`super::decode`] drops the rest.

/// The part of a track's decoded samples that is the recording, in the track's media timescale
/// (for audio, normally its sample rate).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct MediaTrim {
    /// Decoded samples to drop at the start (encoder priming).
    pub start: u64,
    /// Where the recording ends, counted from the first decoded sample; `None` when the file does
    /// not say (then nothing is dropped at the end).
    pub end: Option<u64>,
    /// Units per second of `start` and `end`.
    pub timescale: u32,
}

impl MediaTrim {
    /// `start` and `end` in frames at `sample_rate`.
    pub fn frames_at(&self, sample_rate: u32) -> (u64, Option<u64>) {
        let scale = |value: u64| {
            (u128::from(value) * u128::from(sample_rate) / u128::from(self.timescale.max(1)))
                .try_into()
                .unwrap_or(u64::MAX)
        };
        (scale(self.start), self.end.map(scale))
    }

    /// The length of the recording once trimmed, when the end is known.
    pub fn seconds(&self) -> Option<f64> {
        self.end
            .map(|end| end.saturating_sub(self.start) as f64 / f64::from(self.timescale.max(1)))
    }
}

/// What the MP4 file says about the priming and padding of track `track_id` (the `tkhd` track
/// id, which symphonia uses as its track id); `None` when it says nothing usable.
///
/// Only a single edit, possibly after empty ones, is understood: that is what encoders write for
/// priming. Anything else (several edits, a rate other than 1) is left alone rather than guessed.
pub(super) fn encoder_trim(bytes: &[u8], track_id: u32) -> Option<MediaTrim> {
    let moov = boxes(bytes).find(|(kind, _)| kind == b"moov")?.1;
    let movie_timescale = boxes(moov)
        .find(|(kind, _)| kind == b"mvhd")
        .and_then(|(_, mvhd)| timescale_and_duration(mvhd))
        .map(|(timescale, _)| timescale)?;
    let trak = boxes(moov)
        .filter(|(kind, _)| kind == b"trak")
        .map(|(_, trak)| trak)
        .find(|trak| {
            boxes(trak)
                .find(|(kind, _)| kind == b"tkhd")
                .and_then(|(_, tkhd)| tkhd_track_id(tkhd))
                == Some(track_id)
        })?;
    let (media_timescale, media_duration) = child(trak, b"mdia")
        .and_then(|mdia| child(mdia, b"mdhd"))
        .and_then(timescale_and_duration)?;
    if media_timescale == 0 {
        return None;
    }
    // An unknown duration is stored as 0 (fragmented files) or all ones.
    let media_duration = Some(media_duration).filter(|duration| {
        *duration != 0 && *duration != u64::MAX && *duration != u64::from(u32::MAX)
    });

    let from_edit_list = child(trak, b"edts")
        .and_then(|edts| child(edts, b"elst"))
        .and_then(edit_list)
        .and_then(|edits| {
            let mut media_edits = edits.iter().skip_while(|edit| edit.media_time == -1);
            let edit = media_edits.next()?;
            if media_edits.next().is_some() || edit.rate != 1 || edit.media_time < 0 {
                return None;
            }
            let start = u64::try_from(edit.media_time).ok()?;
            // The edit's length is in the movie's timescale, often milliseconds, so it may miss
            // the end by up to one of those; the media's own length, when that close, is exact.
            let edit_end = (edit.duration != 0 && movie_timescale != 0).then(|| {
                let length = (u128::from(edit.duration) * u128::from(media_timescale)
                    + u128::from(movie_timescale) / 2)
                    / u128::from(movie_timescale);
                start.saturating_add(u64::try_from(length).unwrap_or(u64::MAX))
            });
            let movie_tick = u64::from(media_timescale.div_ceil(movie_timescale.max(1)));
            let end = match (edit_end, media_duration) {
                (Some(edit_end), Some(media_end)) if edit_end.abs_diff(media_end) <= movie_tick => {
                    Some(media_end)
                }
                (Some(edit_end), Some(media_end)) => Some(edit_end.min(media_end)),
                (edit_end, media_end) => edit_end.or(media_end),
            };
            Some(MediaTrim {
                start,
                end,
                timescale: media_timescale,
            })
        });
    from_edit_list
        .or_else(|| {
            itunes_smpb(moov).map(|(priming, length)| MediaTrim {
                start: priming,
                end: Some(priming.saturating_add(length)),
                timescale: media_timescale,
            })
        })
        .filter(|trim| trim.start > 0 || trim.end.is_some())
}

struct Edit {
    /// In the movie's timescale.
    duration: u64,
    /// In the media's timescale; -1 for an empty edit.
    media_time: i64,
    rate: i16,
}

/// The boxes in `data`, as (type, contents) pairs; stops at the first malformed size.
fn boxes(data: &[u8]) -> impl Iterator<Item = ([u8; 4], &[u8])> {
    let mut rest = data;
    std::iter::from_fn(move || {
        let size = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?);
        let kind: [u8; 4] = rest.get(4..8)?.try_into().ok()?;
        let (header, total) = match size {
            0 => (8, rest.len()),
            1 => {
                let size = u64::from_be_bytes(rest.get(8..16)?.try_into().ok()?);
                (16, usize::try_from(size).ok()?)
            }
            size => (8, usize::try_from(size).ok()?),
        };
        let contents = rest.get(header..total)?;
        rest = &rest[total..];
        Some((kind, contents))
    })
}

fn child<'a>(data: &'a [u8], kind: &[u8; 4]) -> Option<&'a [u8]> {
    boxes(data)
        .find(|(found, _)| found == kind)
        .map(|(_, contents)| contents)
}

fn be_u32(data: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(data.get(at..at + 4)?.try_into().ok()?))
}

fn be_u64(data: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(data.get(at..at + 8)?.try_into().ok()?))
}

/// The timescale and duration of an `mvhd` or `mdhd` box (same layout up to there).
fn timescale_and_duration(contents: &[u8]) -> Option<(u32, u64)> {
    match contents.first()? {
        0 => Some((be_u32(contents, 12)?, u64::from(be_u32(contents, 16)?))),
        1 => Some((be_u32(contents, 20)?, be_u64(contents, 24)?)),
        _ => None,
    }
}

fn tkhd_track_id(contents: &[u8]) -> Option<u32> {
    match contents.first()? {
        0 => be_u32(contents, 12),
        1 => be_u32(contents, 20),
        _ => None,
    }
}

fn edit_list(contents: &[u8]) -> Option<Vec<Edit>> {
    let version = *contents.first()?;
    let count = be_u32(contents, 4)? as usize;
    let entry_len = match version {
        0 => 12,
        1 => 20,
        _ => return None,
    };
    let entries = contents.get(8..8 + count.checked_mul(entry_len)?)?;
    Some(
        entries
            .chunks_exact(entry_len)
            .filter_map(|entry| {
                let (duration, media_time, rate_at) = match version {
                    0 => (
                        u64::from(be_u32(entry, 0)?),
                        i64::from(be_u32(entry, 4)? as i32),
                        8,
                    ),
                    _ => (be_u64(entry, 0)?, be_u64(entry, 8)? as i64, 16),
                };
                let rate = i16::from_be_bytes(entry.get(rate_at..rate_at + 2)?.try_into().ok()?);
                Some(Edit {
                    duration,
                    media_time,
                    rate,
                })
            })
            .collect(),
    )
}

/// The priming and the original length in samples from the `iTunSMPB` tag
/// (`moov/udta/meta/ilst/----`), whose value is hexadecimal fields: reserved, priming, padding,
/// original length.
fn itunes_smpb(moov: &[u8]) -> Option<(u64, u64)> {
    let meta = child(child(moov, b"udta")?, b"meta")?;
    // `meta` is a full box (4 bytes of version and flags) in MP4, a plain one in QuickTime.
    let meta = if meta.get(4..8) == Some(b"hdlr".as_slice()) {
        meta
    } else {
        meta.get(4..)?
    };
    boxes(child(meta, b"ilst")?)
        .filter(|(kind, _)| kind == b"----")
        .find_map(|(_, item)| {
            let name = child(item, b"name")?.get(4..)?;
            if name != b"iTunSMPB" {
                return None;
            }
            // `data`: 4 bytes of type, 4 of locale, then the text.
            let text = std::str::from_utf8(child(item, b"data")?.get(8..)?).ok()?;
            let fields: Vec<u64> = text
                .split_whitespace()
                .map(|field| u64::from_str_radix(field, 16))
                .collect::<Result<_, _>>()
                .ok()?;
            match fields[..] {
                [_, priming, _, length, ..] if length > 0 => Some((priming, length)),
                _ => None,
            }
        })
}
