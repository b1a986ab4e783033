//! The frame format shared by segment files and the state log.
//!
//! ```text
//! file   = header frame*
//! header = magic[8] zero[8] crc32c(magic ‖ zero)[4]                      (20 bytes)
//! frame  = len:u32 crc:u32 seq:u64 kind:u8 body[len]                     (17 + len bytes)
//! crc    = crc32c(body ‖ len ‖ seq ‖ kind)
//! ```
//!
//! All integers are little-endian. The checksum covers the length, so a damaged
//! length is caught like a damaged body; it is computed body first so a frame's
//! body can be checksummed before its sequence number is known (outside the
//! queue's lock).

use crate::record::Timestamp;

/// Bytes before a frame's body.
pub(crate) const FRAME_HEADER: usize = 17;
/// Bytes of a file header.
pub(crate) const FILE_HEADER: usize = 20;

pub(crate) const SEGMENT_MAGIC: [u8; 8] = *b"EPQSEG01";
pub(crate) const STATE_MAGIC: [u8; 8] = *b"EPQSTA01";

/// What a frame holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Segment: an enqueued entry; `seq` is its id.
    Entry = 1,
    /// Segment: every frame before this one was written by one group commit that
    /// completed; `seq` is the last entry id it covers. Damage before the last
    /// commit frame of a segment hit acknowledged data; damage after it is a torn
    /// write that was never acknowledged.
    Commit = 2,
    /// State: ids `seq..=to` left the queue (acked, dropped, expired, purged, lost).
    Removed = 16,
    /// State: entry `seq` failed `attempts` times and waits until `retry_at`.
    Attempt = 17,
    /// State: entry `seq` is dead-lettered after `attempts` attempts.
    Dead = 18,
    /// State: no id below `seq` is ever given out again.
    NextId = 19,
}

impl Kind {
    fn from_byte(byte: u8) -> Option<Kind> {
        Some(match byte {
            1 => Kind::Entry,
            2 => Kind::Commit,
            16 => Kind::Removed,
            17 => Kind::Attempt,
            18 => Kind::Dead,
            19 => Kind::NextId,
            _ => return None,
        })
    }
}

/// A file header for `magic`.
pub(crate) fn file_header(magic: [u8; 8]) -> [u8; FILE_HEADER] {
    let mut header = [0u8; FILE_HEADER];
    header[..8].copy_from_slice(&magic);
    let crc = crc32c::crc32c(&header[..16]);
    header[16..].copy_from_slice(&crc.to_le_bytes());
    header
}

/// Whether `bytes` start with an intact header for `magic`.
pub(crate) fn header_ok(bytes: &[u8], magic: [u8; 8]) -> bool {
    bytes.len() >= FILE_HEADER && bytes[..FILE_HEADER] == file_header(magic)
}

/// The checksum of a frame, from its body's checksum.
fn frame_crc(body_crc: u32, len: u32, seq: u64, kind: Kind) -> u32 {
    let mut tail = [0u8; 13];
    tail[..4].copy_from_slice(&len.to_le_bytes());
    tail[4..12].copy_from_slice(&seq.to_le_bytes());
    tail[12] = kind as u8;
    crc32c::crc32c_append(body_crc, &tail)
}

/// Appends a frame to `out`. `body_crc` is `crc32c(body)`, computed by the caller
/// (possibly earlier, outside a lock).
pub(crate) fn put_frame(out: &mut Vec<u8>, seq: u64, kind: Kind, body: &[u8], body_crc: u32) {
    let len = u32::try_from(body.len()).expect("frame bodies are bounded below 4 GiB");
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&frame_crc(body_crc, len, seq, kind).to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.push(kind as u8);
    out.extend_from_slice(body);
}

/// Appends a frame whose body is small enough to checksum here.
pub(crate) fn put_small_frame(out: &mut Vec<u8>, seq: u64, kind: Kind, body: &[u8]) {
    put_frame(out, seq, kind, body, crc32c::crc32c(body));
}

/// An intact frame found in a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Frame {
    /// Where the frame starts in the file.
    pub offset: u64,
    /// Header plus body.
    pub total: u32,
    pub seq: u64,
    pub kind: Kind,
}

impl Frame {
    pub fn end(&self) -> u64 {
        self.offset + u64::from(self.total)
    }

    pub fn body<'a>(&self, file: &'a [u8]) -> &'a [u8] {
        let start = self.offset as usize + FRAME_HEADER;
        &file[start..self.end() as usize]
    }
}

/// The intact frame at `offset` of `bytes`, if there is one.
pub(crate) fn frame_at(bytes: &[u8], offset: usize) -> Option<Frame> {
    let header = bytes.get(offset..offset.checked_add(FRAME_HEADER)?)?;
    let len = u32::from_le_bytes(header[..4].try_into().ok()?);
    let crc = u32::from_le_bytes(header[4..8].try_into().ok()?);
    let seq = u64::from_le_bytes(header[8..16].try_into().ok()?);
    let kind = Kind::from_byte(header[16])?;
    let body_start = offset + FRAME_HEADER;
    let body = bytes.get(body_start..body_start.checked_add(len as usize)?)?;
    if frame_crc(crc32c::crc32c(body), len, seq, kind) != crc {
        return None;
    }
    Some(Frame {
        offset: offset as u64,
        total: u32::try_from(FRAME_HEADER + len as usize).ok()?,
        seq,
        kind,
    })
}

/// A run of bytes that holds no intact frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Damage {
    pub offset: u64,
    pub len: u64,
}

/// Every intact frame from `start` on, and the damaged runs between them. After
/// damage, scanning resumes at the next offset that holds an intact frame, so
/// one bad byte costs only the frame it is in.
pub(crate) fn scan(bytes: &[u8], start: usize) -> (Vec<Frame>, Vec<Damage>) {
    let mut frames = Vec::new();
    let mut damage = Vec::new();
    let mut offset = start;
    while offset < bytes.len() {
        if let Some(frame) = frame_at(bytes, offset) {
            offset = frame.end() as usize;
            frames.push(frame);
            continue;
        }
        let resume = (offset + 1..bytes.len()).find(|&at| frame_at(bytes, at).is_some());
        let end = resume.unwrap_or(bytes.len());
        damage.push(Damage {
            offset: offset as u64,
            len: (end - offset) as u64,
        });
        offset = end;
    }
    (frames, damage)
}

/// The body of an entry frame, split into its parts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct EntryBody<'a> {
    pub source_id: &'a str,
    pub batch_id: &'a str,
    pub created_at: Timestamp,
    pub payload: &'a [u8],
}

/// The body of an entry frame: `source_len:u32 source batch_len:u32 batch created_at_nanos:i64 payload`.
pub(crate) fn entry_body(
    source_id: &str,
    batch_id: &str,
    created_at: Timestamp,
    payload: &[u8],
) -> Vec<u8> {
    let mut body = Vec::with_capacity(16 + source_id.len() + batch_id.len() + payload.len());
    body.extend_from_slice(&(source_id.len() as u32).to_le_bytes());
    body.extend_from_slice(source_id.as_bytes());
    body.extend_from_slice(&(batch_id.len() as u32).to_le_bytes());
    body.extend_from_slice(batch_id.as_bytes());
    body.extend_from_slice(&created_at.unix_nanos().to_le_bytes());
    body.extend_from_slice(payload);
    body
}

/// Reads an entry body back; `None` if it is not one (a checksum collision).
pub(crate) fn parse_entry_body(body: &[u8]) -> Option<EntryBody<'_>> {
    let (source_id, rest) = take_str(body)?;
    let (batch_id, rest) = take_str(rest)?;
    let nanos = i64::from_le_bytes(rest.get(..8)?.try_into().ok()?);
    Some(EntryBody {
        source_id,
        batch_id,
        created_at: Timestamp::from_unix_nanos(nanos),
        payload: &rest[8..],
    })
}

fn take_str(bytes: &[u8]) -> Option<(&str, &[u8])> {
    let len = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    let text = std::str::from_utf8(bytes.get(4..4 + len)?).ok()?;
    Some((text, &bytes[4 + len..]))
}

pub(crate) fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

pub(crate) fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_round_trips_and_any_flipped_byte_is_caught() {
        let mut file = Vec::new();
        let body = entry_body("gw", "b1", Timestamp::from_unix_nanos(5), b"payload");
        put_small_frame(&mut file, 42, Kind::Entry, &body);
        let frame = frame_at(&file, 0).unwrap();
        assert_eq!(
            (frame.seq, frame.kind, frame.end()),
            (42, Kind::Entry, file.len() as u64)
        );
        let parsed = parse_entry_body(frame.body(&file)).unwrap();
        assert_eq!(parsed.payload, b"payload");
        assert_eq!(parsed.created_at.unix_nanos(), 5);
        for at in 0..file.len() {
            let mut bad = file.clone();
            bad[at] ^= 0x10;
            assert_eq!(frame_at(&bad, 0), None, "flip at {at}");
        }
    }

    #[test]
    fn scanning_resumes_after_damage() {
        let mut file = Vec::new();
        for seq in 1..=3 {
            put_small_frame(&mut file, seq, Kind::Entry, b"abc");
        }
        file[FRAME_HEADER + 3 + 2] ^= 1; // second frame's crc
        let (frames, damage) = scan(&file, 0);
        assert_eq!(frames.iter().map(|f| f.seq).collect::<Vec<_>>(), [1, 3]);
        assert_eq!(
            damage,
            [Damage {
                offset: 20,
                len: 20
            }]
        );
    }
}
