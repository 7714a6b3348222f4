//! Ogg pages (RFC 3533), read strictly.
//!
//! symphonia's Ogg reader skips a page whose checksum fails and carries on, which is right for a
//! player but hides a hole in a recording: the Opus path reads the pages itself so that a bad
//! checksum, a missing page or a page cut off at the end each become their own error.

use std::borrow::Cow;

const CAPTURE_PATTERN: &[u8; 4] = b"OggS";
const HEADER_LEN: usize = 27;
const FLAG_CONTINUED: u8 = 0x01;
const FLAG_FIRST: u8 = 0x02;
const FLAG_LAST: u8 = 0x04;
/// The granule position of a page on which no packet ends.
const NO_GRANULE: u64 = u64::MAX;
/// The largest possible page: a full header, 255 lacing values and 255 × 255 body bytes.
const MAX_PAGE_LEN: usize = HEADER_LEN + 255 + 255 * 255;

/// One Ogg page, borrowed from the file.
#[derive(Clone, Copy)]
pub(super) struct Page<'a> {
    /// Where the page starts in the file.
    pub offset: usize,
    flags: u8,
    granule: u64,
    pub serial: u32,
    pub sequence: u32,
    lacing: &'a [u8],
    body: &'a [u8],
}

impl<'a> Page<'a> {
    /// Whether the page's first packet began on an earlier page.
    pub fn is_continued(&self) -> bool {
        self.flags & FLAG_CONTINUED != 0
    }

    /// Whether this is the first page of its logical stream (BOS).
    pub fn is_first(&self) -> bool {
        self.flags & FLAG_FIRST != 0
    }

    /// Whether this is the last page of its logical stream (EOS).
    pub fn is_last(&self) -> bool {
        self.flags & FLAG_LAST != 0
    }

    /// The codec's position at the end of the last packet that ends on this page; `None` when no
    /// packet ends here.
    pub fn granule(&self) -> Option<u64> {
        (self.granule != NO_GRANULE).then_some(self.granule)
    }

    /// The page's length in the file, header included.
    pub fn len(&self) -> usize {
        HEADER_LEN + self.lacing.len() + self.body.len()
    }
}

/// Why no page could be read at an offset.
pub(super) enum PageError {
    /// The file ends inside the page.
    Truncated,
    /// The bytes there are not a valid page.
    Invalid(String),
}

/// Reads the page that starts at `offset`, checksum included.
pub(super) fn read_page(bytes: &[u8], offset: usize) -> Result<Page<'_>, PageError> {
    let page = read_page_unchecked(bytes, offset)?;
    let end = offset + page.len();
    let stored = u32::from_le_bytes([
        bytes[offset + 22],
        bytes[offset + 23],
        bytes[offset + 24],
        bytes[offset + 25],
    ]);
    let computed = ogg_crc(&[
        &bytes[offset..offset + 22],
        &[0; 4],
        &bytes[offset + 26..end],
    ]);
    if stored != computed {
        return Err(PageError::Invalid(format!(
            "the Ogg page at byte {offset} fails its checksum"
        )));
    }
    Ok(page)
}

/// Reads the page that starts at `offset` without verifying its checksum.
fn read_page_unchecked(bytes: &[u8], offset: usize) -> Result<Page<'_>, PageError> {
    let rest = bytes.get(offset..).unwrap_or_default();
    let prefix = rest.len().min(CAPTURE_PATTERN.len());
    if rest[..prefix] != CAPTURE_PATTERN[..prefix] {
        return Err(PageError::Invalid(format!("no Ogg page at byte {offset}")));
    }
    if rest.len() < HEADER_LEN {
        return Err(PageError::Truncated);
    }
    if rest[4] != 0 {
        return Err(PageError::Invalid(format!(
            "the Ogg page at byte {offset} has unknown version {}",
            rest[4]
        )));
    }
    let le_u32 =
        |at: usize| u32::from_le_bytes([rest[at], rest[at + 1], rest[at + 2], rest[at + 3]]);
    let segments = usize::from(rest[26]);
    let lacing = rest
        .get(HEADER_LEN..HEADER_LEN + segments)
        .ok_or(PageError::Truncated)?;
    let body_len: usize = lacing.iter().map(|&len| usize::from(len)).sum();
    let body_start = HEADER_LEN + segments;
    let body = rest
        .get(body_start..body_start + body_len)
        .ok_or(PageError::Truncated)?;
    Ok(Page {
        offset,
        flags: rest[5],
        granule: u64::from_le_bytes(rest[6..14].try_into().expect("8 bytes")),
        serial: le_u32(14),
        sequence: le_u32(18),
        lacing,
        body,
    })
}

/// The serial number of the first stream whose first packet starts with `magic`, if `bytes` are
/// an Ogg file with one. Checksums are not verified here: a damaged file must still be recognised,
/// to be reported as damaged by the reader that understands it.
pub(super) fn find_stream(bytes: &[u8], magic: &[u8]) -> Option<u32> {
    let mut offset = 0;
    // Every stream's first page comes before any other page (RFC 3533, section 4).
    while let Ok(page) = read_page_unchecked(bytes, offset) {
        if !page.is_first() {
            break;
        }
        if page.body.starts_with(magic) {
            return Some(page.serial);
        }
        offset += page.len();
    }
    None
}

/// The last valid page of stream `serial`, found by scanning back from the end of the file, as
/// long as it lies within the file's last `MAX_PAGE_LEN × 2` bytes (other streams' pages or
/// trailing junk may follow it).
pub(super) fn last_page(bytes: &[u8], serial: u32) -> Option<Page<'_>> {
    let lowest = bytes.len().saturating_sub(2 * MAX_PAGE_LEN);
    let mut end = bytes.len();
    while end > lowest {
        let start = bytes[lowest..end]
            .windows(CAPTURE_PATTERN.len())
            .rposition(|window| window == CAPTURE_PATTERN)?
            + lowest;
        if let Ok(page) = read_page(bytes, start) {
            if page.serial == serial {
                return Some(page);
            }
        }
        end = start + CAPTURE_PATTERN.len() - 1;
    }
    None
}

/// Joins the segments of one logical stream's pages into packets.
#[derive(Default)]
pub(super) struct PacketAssembler {
    /// The start of a packet that continues on the next page.
    partial: Option<Vec<u8>>,
}

impl PacketAssembler {
    /// Adds the packets that end on `page` to `packets` (borrowed when the packet lies within the
    /// page, which is almost always).
    pub fn push<'a>(
        &mut self,
        page: &Page<'a>,
        packets: &mut Vec<Cow<'a, [u8]>>,
    ) -> Result<(), String> {
        if page.is_continued() != self.partial.is_some() {
            return Err(format!(
                "the Ogg page at byte {} {} a packet that the page before it {}",
                page.offset,
                if page.is_continued() {
                    "continues"
                } else {
                    "does not continue"
                },
                if page.is_continued() {
                    "did not begin"
                } else {
                    "began"
                }
            ));
        }
        let mut start = 0;
        let mut end = 0;
        for &len in page.lacing {
            end += usize::from(len);
            // A lacing value below 255 ends the packet.
            if len < 255 {
                let data = &page.body[start..end];
                packets.push(match self.partial.take() {
                    Some(mut partial) => {
                        partial.extend_from_slice(data);
                        Cow::Owned(partial)
                    }
                    None => Cow::Borrowed(data),
                });
                start = end;
            }
        }
        // Segments after the last packet's end (the last lacing value is 255) begin a packet
        // that the next page continues.
        if start < end {
            self.partial
                .get_or_insert_with(Vec::new)
                .extend_from_slice(&page.body[start..end]);
        }
        Ok(())
    }
}

/// The Ogg checksum: CRC-32 with polynomial 0x04c11db7, unreflected, initial value and final
/// XOR zero (not the zlib CRC).
fn ogg_crc(parts: &[&[u8]]) -> u32 {
    parts
        .iter()
        .flat_map(|part| part.iter())
        .fold(0, |crc, &byte| {
            (crc << 8) ^ CRC_TABLE[usize::from((crc >> 24) as u8 ^ byte)]
        })
}

const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut index = 0;
    while index < 256 {
        let mut remainder = (index as u32) << 24;
        let mut bit = 0;
        while bit < 8 {
            remainder = if remainder & 0x8000_0000 != 0 {
                (remainder << 1) ^ 0x04c1_1db7
            } else {
                remainder << 1
            };
            bit += 1;
        }
        table[index] = remainder;
        index += 1;
    }
    table
};
