//! The wire format of the change log.
//!
//! One Kinesis record (and later one archive frame) holds a batch of change records that share a
//! stream partition key, so a crawler writing thousands of partitions to one table costs a handful
//! of Kinesis records instead of thousands.
//!
//! Layout, version 1:
//! ```text
//! b"LKLG" | version: u8 = 1 | flags: u8 = 0 | MessagePack array of ChangeRecord (maps with field names)
//! ```
//! Field names (not positions) are encoded so that fields can be added in later releases without
//! breaking old logs. The golden files in `tests/fixtures/` pin this format: a change log written
//! by this release must decode with every later one.

use thiserror::Error;

use super::record::ChangeRecord;

pub const MAGIC: &[u8; 4] = b"LKLG";
pub const VERSION: u8 = 1;
const HEADER_LEN: usize = 6;

#[derive(Debug, Error)]
pub enum CodecError {
    #[error("not a lakelog change-log frame (bad magic {found:02x?}); was this stream written by another producer?")]
    BadMagic { found: Vec<u8> },
    #[error("change-log frame version {found} is newer than this lakelog understands ({VERSION}); upgrade lakelog")]
    UnsupportedVersion { found: u8 },
    #[error("change-log frame uses flags {found:#04x} that this lakelog does not understand; upgrade lakelog")]
    UnsupportedFlags { found: u8 },
    #[error("change-log frame is truncated ({len} bytes)")]
    Truncated { len: usize },
    #[error("change-log frame body does not decode: {0}")]
    Decode(#[from] rmp_serde::decode::Error),
    #[error("change record does not encode: {0}")]
    Encode(#[from] rmp_serde::encode::Error),
}

/// Encodes a batch of records into one frame.
pub fn encode(records: &[ChangeRecord]) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::with_capacity(HEADER_LEN + records.len() * 256);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.push(0);
    rmp_serde::encode::write_named(&mut out, records)?;
    Ok(out)
}

/// The encoded size of one record inside a frame (without the frame header).
pub fn encoded_len(record: &ChangeRecord) -> Result<usize, CodecError> {
    Ok(rmp_serde::to_vec_named(record)?.len())
}

/// Decodes one frame into its records.
pub fn decode(frame: &[u8]) -> Result<Vec<ChangeRecord>, CodecError> {
    if frame.len() < HEADER_LEN {
        return Err(CodecError::Truncated { len: frame.len() });
    }
    if &frame[..4] != MAGIC {
        return Err(CodecError::BadMagic { found: frame[..4].to_vec() });
    }
    match frame[4] {
        VERSION => {}
        found => return Err(CodecError::UnsupportedVersion { found }),
    }
    if frame[5] != 0 {
        return Err(CodecError::UnsupportedFlags { found: frame[5] });
    }
    Ok(rmp_serde::from_slice(&frame[HEADER_LEN..])?)
}

/// Builds one frame from records encoded one at a time, so a producer can measure each record
/// once and stop before a frame outgrows a Kinesis record. `finish` yields exactly what
/// [`encode`] would for the same records.
#[derive(Debug, Default)]
pub struct FrameBuilder {
    body: Vec<u8>,
    count: u32,
}

impl FrameBuilder {
    /// Encodes one record on its own (to be pushed later with [`FrameBuilder::push_encoded`]).
    pub fn encode_record(record: &ChangeRecord) -> Result<Vec<u8>, CodecError> {
        Ok(rmp_serde::to_vec_named(record)?)
    }

    pub fn push_encoded(&mut self, encoded: &[u8]) {
        self.body.extend_from_slice(encoded);
        self.count += 1;
    }

    pub fn count(&self) -> u32 {
        self.count
    }

    /// Size of the finished frame.
    pub fn frame_len(&self) -> usize {
        HEADER_LEN + 5 + self.body.len()
    }

    pub fn finish(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.frame_len());
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.push(0);
        // Writing to a Vec cannot fail.
        let _ = rmp::encode::write_array_len(&mut out, self.count);
        out.extend_from_slice(&self.body);
        out
    }
}
