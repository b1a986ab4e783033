//! Record ids: the seed's random UUIDv4, and edgepipe's deterministic sequence ids.
//!
//! A sequence id names a record by *where it came from*: the source (a device or
//! collector), the source's epoch (a generation number it bumps whenever its
//! sequence counter restarts, e.g. a boot counter) and a sequence number. The same
//! reading always gets the same id, which is what lets the cloud side store each
//! record once however many times a batch is retried.
//!
//! Text form: `{source}:{epoch}:{sequence}` with decimal numbers, e.g.
//! `dev-0042:3:118`. It is read back by splitting at the last two colons, so a
//! source may itself contain colons. A UUID never contains a colon, so the two
//! forms cannot be confused.

use std::fmt;

use crate::error::{Error, Result};

/// A new random (version 4) UUID in the seed's text form, e.g.
/// `6f1c1d5e-8f7a-4d2b-9a53-0c3e2b1d4f6a`.
pub fn uuid_v4() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A deterministic record id: (source, epoch, sequence).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SequenceId {
    /// The producing source, usually the device or gateway id.
    pub source: String,
    /// Generation of the source's counter; bumped when `sequence` restarts.
    pub epoch: u64,
    /// Position of the record in the source's stream within the epoch.
    pub sequence: u64,
}

impl SequenceId {
    /// Builds an id.
    pub fn new(source: impl Into<String>, epoch: u64, sequence: u64) -> Self {
        SequenceId {
            source: source.into(),
            epoch,
            sequence,
        }
    }

    /// Reads the text form `{source}:{epoch}:{sequence}`.
    pub fn parse(text: &str) -> Result<Self> {
        let invalid = |reason| Error::InvalidRecordId {
            id: text.to_owned(),
            reason,
        };
        let mut parts = text.rsplitn(3, ':');
        let sequence = parts.next().ok_or_else(|| invalid("empty id"))?;
        let epoch = parts
            .next()
            .ok_or_else(|| invalid("expected `source:epoch:sequence`"))?;
        let source = parts
            .next()
            .ok_or_else(|| invalid("expected `source:epoch:sequence`"))?;
        if source.is_empty() {
            return Err(invalid("the source is empty"));
        }
        let number = |digits: &str| {
            // `u64::from_str` accepts a leading '+', which would give one id two spellings.
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            if digits.len() > 1 && digits.starts_with('0') {
                return None;
            }
            digits.parse::<u64>().ok()
        };
        Ok(SequenceId {
            source: source.to_owned(),
            epoch: number(epoch).ok_or_else(|| invalid("the epoch is not a decimal u64"))?,
            sequence: number(sequence)
                .ok_or_else(|| invalid("the sequence is not a decimal u64"))?,
        })
    }
}

impl fmt::Display for SequenceId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "{}:{}:{}",
            self.source, self.epoch, self.sequence
        )
    }
}

/// Hands out consecutive [`SequenceId`]s for one source.
#[derive(Clone, Debug)]
pub struct SequenceIdGenerator {
    source: String,
    epoch: u64,
    next_sequence: u64,
}

impl SequenceIdGenerator {
    /// Starts at `first_sequence` within `epoch`. A restarted process should
    /// either resume its persisted sequence or use a new epoch.
    pub fn new(source: impl Into<String>, epoch: u64, first_sequence: u64) -> Self {
        SequenceIdGenerator {
            source: source.into(),
            epoch,
            next_sequence: first_sequence,
        }
    }

    /// The sequence number the next id will carry.
    pub fn next_sequence(&self) -> u64 {
        self.next_sequence
    }

    /// The next id, as text.
    pub fn next_id(&mut self) -> String {
        let id = format!("{}:{}:{}", self.source, self.epoch, self.next_sequence);
        self.next_sequence += 1;
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_v4_has_the_seed_text_form() {
        let id = uuid_v4();
        assert_eq!(id.len(), 36);
        assert_eq!(id.as_bytes()[14], b'4');
        assert!(SequenceId::parse(&id).is_err());
        assert_ne!(uuid_v4(), id);
    }

    #[test]
    fn sequence_ids_round_trip_even_with_colons_in_the_source() {
        for id in [
            SequenceId::new("dev-0042", 3, 118),
            SequenceId::new("site:a:gw-1", 0, u64::MAX),
        ] {
            assert_eq!(SequenceId::parse(&id.to_string()).unwrap(), id);
        }
        let mut generator = SequenceIdGenerator::new("gw", 7, 41);
        assert_eq!(generator.next_id(), "gw:7:41");
        assert_eq!(generator.next_id(), "gw:7:42");
        assert_eq!(generator.next_sequence(), 43);
    }

    #[test]
    fn malformed_sequence_ids_are_refused() {
        for bad in [
            "", "dev", "dev:1", ":1:2", "dev:x:2", "dev:1:+2", "dev:01:2", "dev:1:",
        ] {
            assert!(SequenceId::parse(bad).is_err(), "{bad:?}");
        }
    }
}
