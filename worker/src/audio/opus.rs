//! Ogg/Opus (RFC 7845), decoded with libopus: LiveKit's audio-only egress writes it, and symphonia
//! has no Opus decoder.
//!
//! Opus always decodes at 48 kHz, and those planes go through the same [`ChannelSink`] as every
//! other codec. The timing is the Ogg mapping's, applied exactly: the first `pre_skip` decoded
//! samples are the encoder's start-up and are dropped (else every word would be late by them),
//! the last page's granule position says where the recording ends (dropping the encoder's
//! padding), and libopus applies the header's output gain. A granule position that leaps ahead
//! (a live recorder that lost packets) becomes silence, so later speech keeps its time and the
//! two channels stay aligned; a page that is missing, damaged or cut off is an error instead of a
//! quietly shorter recording.

use std::borrow::Cow;

use opus2::{Channels, Decoder};

use super::ogg::{self, PacketAssembler, Page, PageError};
use super::resample::ChannelSink;
use super::{finish, AudioError, AudioLimits, DecodedAudio, FrameWindow};

/// The rate libopus decodes at here (and the unit of Ogg/Opus granule positions).
const OPUS_RATE: u32 = 48_000;

/// The longest Opus packet: 120 ms at 48 kHz.
const MAX_PACKET_FRAMES: usize = 5_760;

const HEAD_MAGIC: &[u8] = b"OpusHead";
const TAGS_MAGIC: &[u8] = b"OpusTags";

/// The serial number of the Opus stream, when `bytes` are an Ogg file that has one.
pub(super) fn find_stream(bytes: &[u8]) -> Option<u32> {
    ogg::find_stream(bytes, HEAD_MAGIC)
}

/// Decodes Opus stream `serial` (from [`find_stream`]) into 16 kHz channels.
pub(super) fn decode(
    bytes: &[u8],
    serial: u32,
    limits: &AudioLimits,
) -> Result<DecodedAudio, AudioError> {
    let mut stream = OpusStream::new(bytes, serial, limits);
    let mut offset = 0;
    loop {
        if offset == bytes.len() {
            // The writer stopped before the page that ends the stream.
            return Err(stream.truncated());
        }
        let page = ogg::read_page(bytes, offset).map_err(|error| match error {
            PageError::Truncated => stream.truncated(),
            PageError::Invalid(reason) => stream.corrupt(reason),
        })?;
        offset += page.len();
        if page.serial == serial && stream.read_page(&page)? {
            break;
        }
    }
    // Another stream after this one ended would be a chained file: more audio, with its own
    // headers, that this reader would silently leave out.
    while let Ok(page) = ogg::read_page(bytes, offset) {
        if page.is_first() {
            return Err(stream
                .corrupt("another Ogg stream follows the Opus stream (chained file)".to_owned()));
        }
        offset += page.len();
    }
    let duration_seconds = stream.emitted_seconds();
    finish(stream.sink, duration_seconds)
}

/// The identification header's fields that decoding needs.
struct OpusHead {
    channels: usize,
    pre_skip: u64,
    /// Q7.8 dB, as libopus's `OPUS_SET_GAIN` takes it.
    output_gain: i16,
}

impl OpusHead {
    fn parse(packet: &[u8]) -> Result<Self, AudioError> {
        let corrupt = |reason: String| AudioError::Corrupt {
            position_seconds: None,
            reason,
        };
        if packet.len() < 19 {
            return Err(corrupt(format!(
                "the Opus identification header is {} bytes, shorter than 19",
                packet.len()
            )));
        }
        let version = packet[8];
        // The upper four bits change only with incompatible revisions of the mapping.
        if version >> 4 != 0 {
            return Err(AudioError::UnsupportedCodec {
                reason: format!("Ogg Opus mapping version {version}"),
            });
        }
        let channels = packet[9];
        let family = packet[18];
        match (family, channels) {
            (0, 1 | 2) => {}
            (0, _) => {
                return Err(corrupt(format!(
                    "the Opus header states {channels} channels, but channel mapping family 0 \
                     allows only 1 or 2"
                )))
            }
            _ => {
                return Err(AudioError::UnsupportedCodec {
                    reason: format!(
                        "Opus channel mapping family {family} ({channels} channels in several \
                         streams); only mono and stereo (family 0) are supported"
                    ),
                })
            }
        }
        Ok(Self {
            channels: usize::from(channels),
            pre_skip: u64::from(u16::from_le_bytes([packet[10], packet[11]])),
            output_gain: i16::from_le_bytes([packet[16], packet[17]]),
        })
    }
}

/// One Opus logical stream being read page by page.
///
/// Positions count 48 kHz frames as the decoder produces them from the first audio packet on,
/// pre-skip and inserted silence included, so that `origin + position` is a granule position.
struct OpusStream<'a> {
    bytes: &'a [u8],
    serial: u32,
    limits: &'a AudioLimits,
    assembler: PacketAssembler,
    next_sequence: Option<u32>,
    stage: Stage,
    /// Made from the identification header.
    decoder: Option<Decoder>,
    /// The granule position of the first decoded frame (0 unless the recording began mid-stream).
    origin: Option<u64>,
    /// Frames decoded or inserted so far.
    position: u64,
    window: FrameWindow,
    /// Frames kept so far (after trimming): the recording's length up to here.
    emitted: u64,
    /// The length the last page states, once the first audio page has given the origin.
    stated_seconds: Option<f64>,
    sink: Option<ChannelSink>,
    /// Interleaved decoder output.
    pcm: Vec<f32>,
    planes: Vec<Vec<f32>>,
}

#[derive(Clone, Copy)]
enum Stage {
    /// Waiting for the identification header.
    Head,
    /// Waiting for the comment header.
    Tags,
    Audio,
}

impl<'a> OpusStream<'a> {
    fn new(bytes: &'a [u8], serial: u32, limits: &'a AudioLimits) -> Self {
        Self {
            bytes,
            serial,
            limits,
            assembler: PacketAssembler::default(),
            next_sequence: None,
            stage: Stage::Head,
            decoder: None,
            origin: None,
            position: 0,
            window: FrameWindow::default(),
            emitted: 0,
            stated_seconds: None,
            sink: None,
            pcm: Vec::new(),
            planes: Vec::new(),
        }
    }

    fn emitted_seconds(&self) -> f64 {
        self.emitted as f64 / f64::from(OPUS_RATE)
    }

    fn corrupt(&self, reason: String) -> AudioError {
        AudioError::Corrupt {
            position_seconds: Some(self.emitted_seconds()),
            reason,
        }
    }

    fn truncated(&self) -> AudioError {
        AudioError::Truncated {
            decoded_seconds: self.emitted_seconds(),
            expected_seconds: self.stated_seconds,
        }
    }

    /// Reads one page of this stream; `true` once the stream has ended.
    fn read_page(&mut self, page: &Page<'a>) -> Result<bool, AudioError> {
        if let Some(expected) = self.next_sequence {
            if page.sequence != expected {
                return Err(self.corrupt(format!(
                    "{} Ogg pages are missing before byte {}",
                    page.sequence.wrapping_sub(expected),
                    page.offset
                )));
            }
        }
        self.next_sequence = Some(page.sequence.wrapping_add(1));

        let mut packets: Vec<Cow<'a, [u8]>> = Vec::new();
        self.assembler
            .push(page, &mut packets)
            .map_err(|reason| self.corrupt(reason))?;
        let mut packets = packets.as_slice();
        while let Some((packet, rest)) = packets.split_first() {
            match self.stage {
                Stage::Head => self.read_head(packet)?,
                Stage::Tags => {
                    if !packet.starts_with(TAGS_MAGIC) {
                        return Err(self.corrupt(
                            "the Opus comment header is missing after the identification header"
                                .to_owned(),
                        ));
                    }
                    self.stage = Stage::Audio;
                }
                Stage::Audio => break,
            }
            packets = rest;
        }
        if !packets.is_empty() {
            self.read_audio_page(page, packets)?;
        }
        Ok(page.is_last())
    }

    fn read_head(&mut self, packet: &[u8]) -> Result<(), AudioError> {
        if !packet.starts_with(HEAD_MAGIC) {
            return Err(self.corrupt("the Opus identification header is missing".to_owned()));
        }
        let head = OpusHead::parse(packet)?;
        let channels = if head.channels == 1 {
            Channels::Mono
        } else {
            Channels::Stereo
        };
        let libopus_error = |error: opus2::Error| AudioError::Corrupt {
            position_seconds: None,
            reason: format!("libopus: {error}"),
        };
        let mut decoder = Decoder::new(OPUS_RATE, channels).map_err(libopus_error)?;
        decoder
            .set_gain(i32::from(head.output_gain))
            .map_err(libopus_error)?;
        self.window = FrameWindow::new(head.pre_skip, None);
        self.pcm = vec![0.0; MAX_PACKET_FRAMES * head.channels];
        self.planes = vec![Vec::with_capacity(MAX_PACKET_FRAMES); head.channels];
        self.decoder = Some(decoder);
        self.stage = Stage::Tags;
        Ok(())
    }

    fn read_audio_page(
        &mut self,
        page: &Page<'a>,
        packets: &[Cow<'a, [u8]>],
    ) -> Result<(), AudioError> {
        let mut page_frames = 0u64;
        for packet in packets.iter().filter(|packet| !packet.is_empty()) {
            let frames = opus2::packet::get_nb_samples(packet, OPUS_RATE).map_err(|error| {
                self.corrupt(format!(
                    "invalid Opus packet in the page at byte {}: {error}",
                    page.offset
                ))
            })?;
            page_frames += frames as u64;
        }
        let granule = page.granule().ok_or_else(|| {
            self.corrupt(format!(
                "the Ogg page at byte {} ends packets but has no granule position",
                page.offset
            ))
        })?;
        let origin = match self.origin {
            Some(origin) => origin,
            None => self.start(page, granule, page_frames)?,
        };
        // Where the page's packets end, as the granule position counts and as decoded.
        let stated_end = granule.checked_sub(origin).ok_or_else(|| {
            self.corrupt(format!(
                "the granule position of the Ogg page at byte {} is before the stream's start",
                page.offset
            ))
        })?;
        let decoded_end = self.position + page_frames;
        if stated_end > decoded_end {
            self.insert_silence(stated_end - decoded_end)?;
        } else if stated_end < decoded_end && !page.is_last() {
            // Only the last page may end before its packets do (dropping the encoder's padding).
            return Err(self.corrupt(format!(
                "the granule position of the Ogg page at byte {} is {} samples short of its \
                 packets",
                page.offset,
                decoded_end - stated_end
            )));
        }
        if page.is_last() {
            self.window.set_end(stated_end);
        }
        for packet in packets.iter().filter(|packet| !packet.is_empty()) {
            self.decode_packet(packet)?;
        }
        Ok(())
    }

    /// Takes the stream's origin from its first audio page, and checks the length that its last
    /// page states against the limit before anything is decoded.
    fn start(
        &mut self,
        page: &Page<'a>,
        granule: u64,
        page_frames: u64,
    ) -> Result<u64, AudioError> {
        let origin = match granule.checked_sub(page_frames) {
            Some(origin) => origin,
            // A stream of one page may end before its packets do: that is end trimming.
            None if page.is_last() => 0,
            None => {
                return Err(self.corrupt(format!(
                    "the first audio page's granule position ({granule}) is smaller than its \
                     {page_frames} samples"
                )))
            }
        };
        self.origin = Some(origin);
        let stated_frames = ogg::last_page(self.bytes, self.serial)
            .filter(Page::is_last)
            .and_then(|last| last.granule())
            .map(|end| {
                end.saturating_sub(origin)
                    .saturating_sub(self.window.start())
            });
        self.stated_seconds = stated_frames.map(|frames| frames as f64 / f64::from(OPUS_RATE));
        if let Some(seconds) = self.stated_seconds {
            if seconds > self.limits.max_duration_seconds {
                return Err(AudioError::TooLong {
                    seconds,
                    limit_seconds: self.limits.max_duration_seconds,
                });
            }
        }
        let channels = self.planes.len();
        let limit_frames = (self.limits.max_duration_seconds * f64::from(OPUS_RATE)) as u64;
        self.sink = Some(ChannelSink::new(
            OPUS_RATE,
            channels,
            stated_frames.map(|frames| frames.min(limit_frames)),
        )?);
        Ok(origin)
    }

    fn decode_packet(&mut self, packet: &[u8]) -> Result<(), AudioError> {
        let decoder = self
            .decoder
            .as_mut()
            .expect("audio packets are decoded only after the identification header");
        let frames = decoder
            .decode_float(packet, &mut self.pcm, false)
            .map_err(|error| AudioError::Corrupt {
                position_seconds: Some(self.emitted as f64 / f64::from(OPUS_RATE)),
                reason: format!("libopus cannot decode an Opus packet: {error}"),
            })?;
        self.emit(frames)
    }

    /// Adds `frames` of silence where the granule positions say time passed without packets.
    fn insert_silence(&mut self, frames: u64) -> Result<(), AudioError> {
        // Checked before anything is allocated: the gap's size comes from the file.
        self.check_duration(self.emitted.saturating_add(frames))?;
        let mut left = frames;
        while left > 0 {
            let chunk = left.min(MAX_PACKET_FRAMES as u64) as usize;
            self.pcm[..chunk * self.planes.len()].fill(0.0);
            self.emit(chunk)?;
            left -= chunk as u64;
        }
        Ok(())
    }

    /// Passes the kept part of the first `frames` interleaved frames in `pcm` to the sink.
    fn emit(&mut self, frames: usize) -> Result<(), AudioError> {
        self.position += frames as u64;
        let kept = self.window.take(frames);
        if kept.is_empty() {
            return Ok(());
        }
        let channels = self.planes.len();
        for (channel, plane) in self.planes.iter_mut().enumerate() {
            plane.clear();
            plane.extend(
                self.pcm[kept.start * channels..kept.end * channels]
                    .iter()
                    .skip(channel)
                    .step_by(channels),
            );
        }
        self.emitted += kept.len() as u64;
        self.check_duration(self.emitted)?;
        let sink = self
            .sink
            .as_mut()
            .expect("the sink exists once the first audio page is read");
        sink.push(&self.planes)
    }

    fn check_duration(&self, frames: u64) -> Result<(), AudioError> {
        let seconds = frames as f64 / f64::from(OPUS_RATE);
        if seconds > self.limits.max_duration_seconds {
            return Err(AudioError::TooLong {
                seconds,
                limit_seconds: self.limits.max_duration_seconds,
            });
        }
        Ok(())
    }
}
