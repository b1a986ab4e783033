//! Byte- and bit-level pieces shared by the binary codecs: LEB128 varints,
//! zigzag, a bounds-checked reader, and bit streams.

use crate::error::{Error, Result};

/// Appends `value` as an unsigned LEB128 varint (1 to 10 bytes).
pub(crate) fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Maps signed to unsigned so small magnitudes stay small: 0, -1, 1, -2 → 0, 1, 2, 3.
pub(crate) fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

/// The inverse of [`zigzag`].
pub(crate) fn unzigzag(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

/// Bits needed to write `value` (0 for 0).
pub(crate) fn bit_width(value: u64) -> u32 {
    u64::BITS - value.leading_zeros()
}

/// A cursor over untrusted bytes: every read is bounds-checked and fails with
/// [`Error::CorruptBatch`] naming the codec and the offset.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    position: usize,
    codec: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8], codec: &'static str) -> Self {
        Reader {
            bytes,
            position: 0,
            codec,
        }
    }

    pub(crate) fn error(&self, reason: impl std::fmt::Display) -> Error {
        Error::CorruptBatch {
            codec: self.codec,
            reason: format!("at byte {}: {reason}", self.position),
        }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len() - self.position
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    pub(crate) fn u8(&mut self) -> Result<u8> {
        let byte = *self
            .bytes
            .get(self.position)
            .ok_or_else(|| self.error("unexpected end of input"))?;
        self.position += 1;
        Ok(byte)
    }

    pub(crate) fn take(&mut self, length: usize) -> Result<&'a [u8]> {
        if length > self.remaining() {
            return Err(self.error(format!(
                "{length} bytes declared, {} left",
                self.remaining()
            )));
        }
        let slice = &self.bytes[self.position..self.position + length];
        self.position += length;
        Ok(slice)
    }

    pub(crate) fn varint(&mut self) -> Result<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.u8()?;
            let bits = u64::from(byte & 0x7f);
            if shift == 63 && bits > 1 {
                return Err(self.error("varint overflows 64 bits"));
            }
            value |= bits << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(self.error("varint longer than 10 bytes"))
    }

    /// A count or index that must not exceed `max` (which the caller derives from
    /// the limits or from what was already read, never from the count itself).
    pub(crate) fn count(&mut self, max: usize, what: &str) -> Result<usize> {
        let value = self.varint()?;
        usize::try_from(value)
            .ok()
            .filter(|&value| value <= max)
            .ok_or_else(|| self.error(format!("{what} {value} exceeds {max}")))
    }

    pub(crate) fn str(&mut self, length: usize) -> Result<&'a str> {
        let bytes = self.take(length)?;
        std::str::from_utf8(bytes).map_err(|error| self.error(error))
    }
}

/// Writes bits least-significant first into bytes.
#[derive(Debug, Default)]
pub(crate) struct BitWriter {
    pub(crate) bytes: Vec<u8>,
    accumulator: u64,
    filled: u32,
}

impl BitWriter {
    /// Appends the low `bits` bits of `value` (`bits` ≤ 64).
    pub(crate) fn write(&mut self, value: u64, bits: u32) {
        if bits == 0 {
            return;
        }
        let value = if bits == 64 {
            value
        } else {
            value & ((1u64 << bits) - 1)
        };
        self.accumulator |= value.checked_shl(self.filled).unwrap_or(0);
        let total = self.filled + bits;
        if total >= 64 {
            self.bytes
                .extend_from_slice(&self.accumulator.to_le_bytes());
            // The bits of `value` that did not fit in the accumulator.
            self.accumulator = value.checked_shr(64 - self.filled).unwrap_or(0);
            self.filled = total - 64;
        } else {
            self.filled = total;
        }
    }

    /// Flushes the partial byte(s) and returns the bytes.
    pub(crate) fn finish(mut self) -> Vec<u8> {
        let tail = self.filled.div_ceil(8) as usize;
        self.bytes
            .extend_from_slice(&self.accumulator.to_le_bytes()[..tail]);
        self.bytes
    }
}

/// Reads bits written by [`BitWriter`]; reading past the end is an error.
#[derive(Debug)]
pub(crate) struct BitReader<'a> {
    bytes: &'a [u8],
    bit: usize,
}

impl<'a> BitReader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        BitReader { bytes, bit: 0 }
    }

    pub(crate) fn read(&mut self, bits: u32) -> Option<u64> {
        if bits == 0 {
            return Some(0);
        }
        let end = self.bit.checked_add(bits as usize)?;
        if end > self.bytes.len() * 8 {
            return None;
        }
        let mut value = 0u64;
        let mut done = 0u32;
        while done < bits {
            let byte = self.bytes[self.bit / 8];
            let offset = (self.bit % 8) as u32;
            let take = (8 - offset).min(bits - done);
            let chunk = (u64::from(byte) >> offset) & ((1u64 << take) - 1);
            value |= chunk << done;
            done += take;
            self.bit += take as usize;
        }
        Some(value)
    }
}

/// Values per bit-packed block.
pub(crate) const BLOCK: usize = 128;

/// Appends `values` bit-packed: blocks of up to [`BLOCK`] values, each a width
/// byte (0–64) then `ceil(len * width / 8)` bytes, least-significant bit first.
/// The count is not written; the reader knows it from context.
pub(crate) fn put_packed(out: &mut Vec<u8>, values: &[u64]) {
    for block in values.chunks(BLOCK) {
        put_block(out, block);
    }
}

/// [`put_packed`] of the values an iterator yields, without collecting them.
pub(crate) fn put_packed_iter(out: &mut Vec<u8>, mut values: impl Iterator<Item = u64>) {
    let mut block = [0u64; BLOCK];
    loop {
        let mut filled = 0;
        for (slot, value) in block.iter_mut().zip(&mut values) {
            *slot = value;
            filled += 1;
        }
        if filled > 0 {
            put_block(out, &block[..filled]);
        }
        if filled < BLOCK {
            return;
        }
    }
}

/// The bytes [`put_packed`] would write for `values`.
pub(crate) fn packed_size(values: impl Iterator<Item = u64>) -> usize {
    let block_size = |count: usize, bits: u64| 1 + (count * bit_width(bits) as usize).div_ceil(8);
    let (mut size, mut count, mut bits) = (0, 0, 0u64);
    for value in values {
        // The widest value of a block sets its width: the width of their OR.
        bits |= value;
        count += 1;
        if count == BLOCK {
            size += block_size(count, bits);
            (count, bits) = (0, 0);
        }
    }
    if count > 0 {
        size += block_size(count, bits);
    }
    size
}

fn put_block(out: &mut Vec<u8>, block: &[u64]) {
    let width = bit_width(block.iter().fold(0, |bits, &value| bits | value));
    out.push(width as u8);
    if width == 0 {
        return;
    }
    let mut bits = BitWriter {
        bytes: std::mem::take(out),
        ..BitWriter::default()
    };
    for &value in block {
        bits.write(value, width);
    }
    *out = bits.finish();
}

/// Reads `count` values written by [`put_packed`], appending them to `values`.
pub(crate) fn get_packed(
    reader: &mut Reader<'_>,
    count: usize,
    values: &mut Vec<u64>,
) -> Result<()> {
    let mut left = count;
    while left > 0 {
        let length = left.min(BLOCK);
        let width = u32::from(reader.u8()?);
        if width > 64 {
            return Err(reader.error(format!("bit width {width} exceeds 64")));
        }
        let bytes = reader.take((length * width as usize).div_ceil(8))?;
        let mut bits = BitReader::new(bytes);
        for _ in 0..length {
            values.push(bits.read(width).unwrap_or(0));
        }
        left -= length;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_zigzag_round_trip_at_the_edges() {
        for value in [0, 1, 127, 128, 300, u64::MAX / 2, u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, value);
            assert_eq!(Reader::new(&out, "t").varint().unwrap(), value);
        }
        for value in [0, -1, 1, i64::MIN, i64::MAX] {
            assert_eq!(unzigzag(zigzag(value)), value);
        }
        assert!(Reader::new(&[0xff; 11], "t").varint().is_err());
        assert!(
            Reader::new(
                &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02],
                "t"
            )
            .varint()
            .is_err()
        );
    }

    #[test]
    fn packed_blocks_round_trip_every_width() {
        let values: Vec<u64> = (0..1000u64)
            .map(|i| {
                if i % 7 == 0 {
                    u64::MAX >> (i % 64)
                } else {
                    i % 5
                }
            })
            .collect();
        let mut out = Vec::new();
        put_packed(&mut out, &values);
        let mut reader = Reader::new(&out, "t");
        let mut back = Vec::new();
        get_packed(&mut reader, values.len(), &mut back).unwrap();
        assert_eq!(back, values);
        assert!(reader.is_empty());
        let zeros = vec![0u64; 256];
        let mut out = Vec::new();
        put_packed(&mut out, &zeros);
        assert_eq!(out, [0, 0], "a block of zeros costs one byte");
    }
}
