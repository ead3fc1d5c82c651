//! The archive's object format: a segment is a run of change records with their stream
//! positions, zstd-compressed, behind a small uncompressed index. Raw segments hold one shard's
//! records in stream order; snapshot parts hold the latest record per key in key order. Both
//! are read by every later release: the format is a contract, pinned by golden files in
//! `tests/fixtures/`.
//!
//! Layout: `LLSG` | format (u8) | index length (u32 LE) | index (MessagePack, named fields) |
//! heads: zstd( head* ), only in snapshot parts | body: zstd( entry* ), each entry a MessagePack
//! array `[sequence, record]` with the record in the change log's own encoding (`model::codec`).
//! The index carries the length and XXH3-64 of each uncompressed block, checked when the block
//! has been read to its end.
//!
//! Must never: decode a segment whose checksum does not match, or guess at a format it does not
//! know (a newer one says so and names the fix).

use std::io::{BufRead, Read};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::model::{ChangeRecord, ObjectKey, Op};
use crate::stream::seqno::SeqNo;

pub const MAGIC: &[u8; 4] = b"LLSG";
/// The format this release writes (and the newest it reads).
pub const FORMAT: u8 = 1;
/// zstd level: 1.4 KB partition records of one table differ in a few fields, and at this level
/// zstd finds those repeats across a whole segment.
pub const LEVEL: i32 = 9;
const PREFIX_LEN: usize = 4 + 1 + 4;

#[derive(Debug, Error)]
pub enum SegmentError {
    #[error("not a lakelog archive segment (starts with {found:?}, expected \"LLSG\")")]
    BadMagic { found: Vec<u8> },
    #[error("archive segment format {found} is newer than this lakelog reads (up to {FORMAT}); upgrade lakelog")]
    NewerFormat { found: u8 },
    #[error("archive segment is truncated ({what})")]
    Truncated { what: &'static str },
    #[error("archive segment body does not match its checksum (stored {stored:016x}, computed {computed:016x}): the object is corrupt")]
    Checksum { stored: u64, computed: u64 },
    #[error("archive segment has no entries")]
    Empty,
    #[error("archive segment: {0}")]
    Decode(String),
    #[error("archive segment: {0}")]
    Encode(String),
}

/// What a segment holds, readable without decompressing it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentIndex {
    /// The shard of a raw segment; empty for a snapshot part.
    pub shard: String,
    pub count: u64,
    /// Stream positions of the first and last entries (raw segments: a contiguous run).
    pub first_sequence: SeqNo,
    pub last_sequence: SeqNo,
    /// Capture times (epoch ms) of the oldest and newest record.
    pub min_captured_at: i64,
    pub max_captured_at: i64,
    /// The smallest and largest key, in [`sort_key`] order.
    pub min_key: ObjectKey,
    pub max_key: ObjectKey,
    /// The heads block (see [`Head`]): its compressed length (0: the segment has none), its
    /// uncompressed length and XXH3-64.
    pub heads_compressed: u64,
    pub heads_bytes: u64,
    pub heads_xxh3: u64,
    /// The body: uncompressed length and XXH3-64.
    pub body_bytes: u64,
    pub body_xxh3: u64,
}

/// One archived record and where it was in the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub sequence: SeqNo,
    pub record: ChangeRecord,
}

/// What rebuilding `run`'s memory needs of a record, without its state: snapshot parts carry
/// these in a block of their own, so a rebuild reads tens of bytes per object, not the object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    pub sequence: SeqNo,
    pub key: ObjectKey,
    pub op: Op,
    pub captured_at: i64,
    pub content_hash: u64,
}

impl Head {
    pub fn of(entry: &Entry) -> Head {
        Head {
            sequence: entry.sequence.clone(),
            key: entry.record.key.clone(),
            op: entry.record.op,
            captured_at: entry.record.captured_at,
            content_hash: entry.record.content_hash,
        }
    }
}

/// The order keys are merged and restored in: a database, then each of its tables, each followed
/// by its partitions — so one database, or one table with its partitions, is one contiguous run.
/// Each name is written with `0x00` escaped (`0x00 0xFF`) and ends with `0x00 0x01`, so the bytes
/// sort like the tuple of names and no name can imitate a separator.
pub fn sort_key(key: &ObjectKey) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    let mut push = |name: &str| {
        for b in name.bytes() {
            out.push(b);
            if b == 0 {
                out.push(0xFF);
            }
        }
        out.extend_from_slice(&[0, 1]);
    };
    push(key.catalog());
    push(key.database());
    if let Some(t) = key.table() {
        push(t);
    }
    match key {
        ObjectKey::Partition { values, .. } => {
            for v in values {
                push(v);
            }
        }
        // After its table's (or database's, or for a catalog-level one the empty database's)
        // names: `0x00 0x02`, which no escaped name or separator starts with, then the key's JSON
        // (its whole identity), so it sorts inside its table's run and never equals another key.
        ObjectKey::LakeFormation { lf, .. } => {
            out.extend_from_slice(&[0, 2]);
            out.extend_from_slice(serde_json::to_string(lf).unwrap_or_default().as_bytes());
        }
        _ => {}
    }
    out
}

/// One block being compressed as it is written, with the length and XXH3-64 of what went in.
struct Compressing {
    encoder: zstd::stream::write::Encoder<'static, Vec<u8>>,
    hasher: xxhash_rust::xxh3::Xxh3,
    bytes: u64,
}

impl Compressing {
    fn new(level: i32) -> Result<Compressing, SegmentError> {
        let encoder =
            zstd::stream::write::Encoder::new(Vec::new(), level).map_err(|e| SegmentError::Encode(e.to_string()))?;
        Ok(Compressing { encoder, hasher: xxhash_rust::xxh3::Xxh3::new(), bytes: 0 })
    }

    fn write(&mut self, item: &[u8]) -> Result<(), SegmentError> {
        use std::io::Write;
        self.hasher.update(item);
        self.bytes += item.len() as u64;
        self.encoder.write_all(item).map_err(|e| SegmentError::Encode(e.to_string()))
    }

    /// The compressed block, its uncompressed length and checksum.
    fn finish(self) -> Result<(Vec<u8>, u64, u64), SegmentError> {
        let digest = self.hasher.digest();
        let compressed = self.encoder.finish().map_err(|e| SegmentError::Encode(e.to_string()))?;
        Ok((compressed, self.bytes, digest))
    }
}

/// A key with its [`sort_key`].
type SortedKey = (Vec<u8>, ObjectKey);

/// A segment built entry by entry, holding only its compressed blocks: a snapshot part of
/// hundreds of thousands of records is never held decoded, nor uncompressed.
pub struct Builder {
    shard: String,
    body: Compressing,
    heads: Option<Compressing>,
    item: Vec<u8>,
    count: u64,
    /// First and last sequence, smallest and largest key (with its sort key), capture times.
    sequences: Option<(SeqNo, SeqNo)>,
    keys: Option<(SortedKey, SortedKey)>,
    captured: (i64, i64),
    /// The capture time of the first entry (raw segments are named by it).
    first_captured: Option<i64>,
}

impl Builder {
    /// A segment of `shard` ("" for a snapshot part), with a heads block when `heads`,
    /// compressed at `level` (`LEVEL` for what is kept; 1 for scratch).
    pub fn new(shard: &str, heads: bool, level: i32) -> Result<Builder, SegmentError> {
        Ok(Builder {
            shard: shard.to_string(),
            body: Compressing::new(level)?,
            heads: if heads { Some(Compressing::new(level)?) } else { None },
            item: Vec::with_capacity(4096),
            count: 0,
            sequences: None,
            keys: None,
            captured: (i64::MAX, i64::MIN),
            first_captured: None,
        })
    }

    pub fn shard(&self) -> &str {
        &self.shard
    }

    /// The first entry's sequence number and capture time.
    pub fn first(&self) -> Option<(&SeqNo, i64)> {
        Some((&self.sequences.as_ref()?.0, self.first_captured?))
    }

    pub fn last(&self) -> Option<&SeqNo> {
        self.sequences.as_ref().map(|(_, last)| last)
    }

    /// Uncompressed bytes written so far (what a segment size limit counts).
    pub fn bytes(&self) -> u64 {
        self.body.bytes + self.heads.as_ref().map_or(0, |h| h.bytes)
    }

    /// Entries added so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn push(&mut self, e: &Entry) -> Result<(), SegmentError> {
        self.item.clear();
        rmp_serde::encode::write_named(&mut self.item, &(e.sequence.as_str(), &e.record))
            .map_err(|err| SegmentError::Encode(format!("record for {}: {err}", e.record.key)))?;
        self.body.write(&self.item)?;
        if let Some(heads) = &mut self.heads {
            self.item.clear();
            rmp_serde::encode::write_named(&mut self.item, &Head::of(e))
                .map_err(|err| SegmentError::Encode(format!("head of {}: {err}", e.record.key)))?;
            heads.write(&self.item)?;
        }
        self.count += 1;
        self.first_captured.get_or_insert(e.record.captured_at);
        match &mut self.sequences {
            Some((_, last)) => *last = e.sequence.clone(),
            None => self.sequences = Some((e.sequence.clone(), e.sequence.clone())),
        }
        self.captured = (self.captured.0.min(e.record.captured_at), self.captured.1.max(e.record.captured_at));
        let sk = sort_key(&e.record.key);
        match &mut self.keys {
            Some((min, _)) if sk < min.0 => *min = (sk, e.record.key.clone()),
            Some((_, max)) if sk > max.0 => *max = (sk, e.record.key.clone()),
            Some(_) => {}
            None => self.keys = Some(((sk.clone(), e.record.key.clone()), (sk, e.record.key.clone()))),
        }
        Ok(())
    }

    /// The segment's bytes and its index (at least one entry must have been pushed).
    pub fn finish(self) -> Result<(Vec<u8>, SegmentIndex), SegmentError> {
        let (Some((first, last)), Some(((_, min_key), (_, max_key)))) = (self.sequences, self.keys) else {
            return Err(SegmentError::Empty);
        };
        let (heads_compressed, heads_bytes, heads_xxh3) = match self.heads {
            Some(h) => h.finish()?,
            None => (Vec::new(), 0, xxhash_rust::xxh3::xxh3_64(&[])),
        };
        let (body_compressed, body_bytes, body_xxh3) = self.body.finish()?;
        let index = SegmentIndex {
            shard: self.shard,
            count: self.count,
            first_sequence: first,
            last_sequence: last,
            min_captured_at: self.captured.0,
            max_captured_at: self.captured.1,
            min_key,
            max_key,
            heads_compressed: heads_compressed.len() as u64,
            heads_bytes,
            heads_xxh3,
            body_bytes,
            body_xxh3,
        };
        let index_bytes = rmp_serde::to_vec_named(&index).map_err(|e| SegmentError::Encode(e.to_string()))?;
        let mut out =
            Vec::with_capacity(PREFIX_LEN + index_bytes.len() + heads_compressed.len() + body_compressed.len());
        out.extend_from_slice(MAGIC);
        out.push(FORMAT);
        out.extend_from_slice(&(index_bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(&index_bytes);
        out.extend_from_slice(&heads_compressed);
        out.extend_from_slice(&body_compressed);
        Ok((out, index))
    }
}

/// Encodes entries (at least one) into a segment of `shard` ("" for a snapshot part), with a
/// heads block when `heads`, compressed at `level`.
pub fn encode(
    shard: &str,
    entries: &[Entry],
    heads: bool,
    level: i32,
) -> Result<(Vec<u8>, SegmentIndex), SegmentError> {
    let mut builder = Builder::new(shard, heads, level)?;
    for e in entries {
        builder.push(e)?;
    }
    builder.finish()
}

/// The index, and where the blocks after it start.
fn split(bytes: &[u8]) -> Result<(SegmentIndex, usize), SegmentError> {
    if bytes.len() >= 4 && &bytes[..4] != MAGIC {
        return Err(SegmentError::BadMagic { found: bytes[..4].to_vec() });
    }
    if bytes.len() < PREFIX_LEN {
        return Err(SegmentError::Truncated { what: "header" });
    }
    if bytes[4] > FORMAT || bytes[4] == 0 {
        return Err(SegmentError::NewerFormat { found: bytes[4] });
    }
    let len = u32::from_le_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]) as usize;
    let end =
        PREFIX_LEN.checked_add(len).filter(|e| *e <= bytes.len()).ok_or(SegmentError::Truncated { what: "index" })?;
    let index: SegmentIndex =
        rmp_serde::from_slice(&bytes[PREFIX_LEN..end]).map_err(|e| SegmentError::Decode(format!("index: {e}")))?;
    Ok((index, end))
}

/// The index, and where the heads block starts, checking the heads block is all there.
fn split_whole(bytes: &[u8]) -> Result<(SegmentIndex, usize), SegmentError> {
    let (index, end) = split(bytes)?;
    if (bytes.len() - end) < index.heads_compressed as usize {
        return Err(SegmentError::Truncated { what: "heads" });
    }
    Ok((index, end))
}

/// The index alone (no decompression).
pub fn read_index(bytes: &[u8]) -> Result<SegmentIndex, SegmentError> {
    split(bytes).map(|(index, _)| index)
}

/// Decompressed bytes are read ahead in chunks this large: an item is decoded from memory, not
/// from one decompression call (and one checksum update) per MessagePack field.
const READ_AHEAD: usize = 32 << 10;

/// A decompressing stream that hashes and counts what it yields.
struct Hashed<R: BufRead> {
    decoder: zstd::stream::read::Decoder<'static, R>,
    hasher: xxhash_rust::xxh3::Xxh3,
    read_bytes: u64,
}

impl<R: BufRead> Read for Hashed<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.decoder.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.read_bytes += n as u64;
        Ok(n)
    }
}

/// One compressed block, read item by item; its length and checksum are checked once the
/// last item has been read (a corrupt block fails there at the latest, never silently).
///
/// Items are decoded from a window of decompressed bytes holding at least the whole item (its
/// extent found by [`item_len`] first), so strings are borrowed from the window rather than
/// copied through a reader one `read` at a time (most of a restore's decoding time before).
struct Block<R: BufRead> {
    input: Hashed<R>,
    window: Vec<u8>,
    /// Where the next item starts in `window`.
    start: usize,
    expect_bytes: u64,
    expect_xxh3: u64,
    left: u64,
    failed: bool,
}

impl<R: BufRead> Block<R> {
    fn new(compressed: R, count: u64, bytes: u64, xxh3: u64) -> Result<Block<R>, SegmentError> {
        let decoder =
            zstd::stream::read::Decoder::with_buffer(compressed).map_err(|e| SegmentError::Decode(e.to_string()))?;
        let input = Hashed { decoder, hasher: xxhash_rust::xxh3::Xxh3::new(), read_bytes: 0 };
        Ok(Block {
            input,
            window: Vec::with_capacity(READ_AHEAD),
            start: 0,
            expect_bytes: bytes,
            expect_xxh3: xxh3,
            left: count,
            failed: false,
        })
    }

    /// Decompressed bytes consumed by the items read so far (not those read ahead).
    fn consumed(&self) -> u64 {
        self.input.read_bytes - (self.window.len() - self.start) as u64
    }

    /// Reads at least `more` bytes past the window's end (fewer at the end of the block); false
    /// when the block has no more.
    fn refill(&mut self, more: usize) -> std::io::Result<bool> {
        self.window.drain(..self.start);
        self.start = 0;
        let have = self.window.len();
        let want = have + more.max(READ_AHEAD);
        self.window.resize(want, 0);
        let mut end = have;
        while end < have + more {
            match self.input.read(&mut self.window[end..]) {
                Ok(0) => break,
                Ok(n) => end += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.window.truncate(end);
                    return Err(e);
                }
            }
        }
        self.window.truncate(end);
        Ok(end > have)
    }

    fn next_item<T: serde::de::DeserializeOwned>(&mut self) -> Option<Result<T, SegmentError>> {
        if self.failed {
            return None;
        }
        if self.left == 0 {
            self.failed = true; // done either way
            let mut rest = Vec::new();
            if let Err(e) = self.input.read_to_end(&mut rest) {
                return Some(Err(SegmentError::Decode(e.to_string())));
            }
            let computed = self.input.hasher.digest();
            if self.input.read_bytes != self.expect_bytes || computed != self.expect_xxh3 {
                return Some(Err(SegmentError::Checksum { stored: self.expect_xxh3, computed }));
            }
            return None;
        }
        let fail = |this: &mut Self, message: String| {
            this.failed = true;
            Some(Err(SegmentError::Decode(message)))
        };
        let len = loop {
            match item_len(&self.window[self.start..]) {
                Ok(len) => break len,
                // A length past what the block declares is damage: fail before reading it all.
                Err(Some(need)) if need as u64 <= self.expect_bytes.saturating_sub(self.consumed()) => {
                    let more = need - (self.window.len() - self.start);
                    match self.refill(more) {
                        Ok(true) => {}
                        Ok(false) => return fail(self, "the block ends inside an item".into()),
                        Err(e) => return fail(self, e.to_string()),
                    }
                }
                Err(_) => return fail(self, "an item is not MessagePack or overruns its block".into()),
            }
        };
        let item = &self.window[self.start..self.start + len];
        match rmp_serde::from_slice::<T>(item) {
            Ok(item) => {
                self.start += len;
                self.left -= 1;
                Some(Ok(item))
            }
            Err(e) => fail(self, e.to_string()),
        }
    }
}

/// The length of the MessagePack value at the start of `b`, or `Err(Some(n))` when `b` ends
/// before it does (it needs at least `n` bytes), `Err(None)` when it is not MessagePack.
fn item_len(b: &[u8]) -> Result<usize, Option<usize>> {
    let (mut pos, mut pending) = (0usize, 1usize);
    // A big-endian length of `n` bytes at `pos`.
    let len_at = |pos: usize, n: usize| -> Result<usize, Option<usize>> {
        let bytes = b.get(pos..pos + n).ok_or(Some(pos + n))?;
        Ok(bytes.iter().fold(0usize, |acc, x| (acc << 8) | usize::from(*x)))
    };
    while pending > 0 {
        pending -= 1;
        let marker = *b.get(pos).ok_or(Some(pos + 1 + pending))?;
        pos += 1;
        match marker {
            0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => {}
            0x80..=0x8f => pending += 2 * usize::from(marker & 0x0f),
            0x90..=0x9f => pending += usize::from(marker & 0x0f),
            0xa0..=0xbf => pos += usize::from(marker & 0x1f),
            0xc1 => return Err(None),
            // bin and str: a 1-, 2- or 4-byte length, then the bytes
            0xc4 | 0xd9 => pos += 1 + len_at(pos, 1)?,
            0xc5 | 0xda => pos += 2 + len_at(pos, 2)?,
            0xc6 | 0xdb => pos += 4 + len_at(pos, 4)?,
            // ext: a length, a type byte, the bytes
            0xc7 => pos += 2 + len_at(pos, 1)?,
            0xc8 => pos += 3 + len_at(pos, 2)?,
            0xc9 => pos += 5 + len_at(pos, 4)?,
            0xca => pos += 4,
            0xcb => pos += 8,
            0xcc | 0xd0 => pos += 1,
            0xcd | 0xd1 => pos += 2,
            0xce | 0xd2 => pos += 4,
            0xcf | 0xd3 => pos += 8,
            // fixext 1, 2, 4, 8, 16: a type byte, the bytes
            0xd4 => pos += 2,
            0xd5 => pos += 3,
            0xd6 => pos += 5,
            0xd7 => pos += 9,
            0xd8 => pos += 17,
            0xdc => (pending, pos) = (pending + len_at(pos, 2)?, pos + 2),
            0xdd => (pending, pos) = (pending + len_at(pos, 4)?, pos + 4),
            0xde => (pending, pos) = (pending + 2 * len_at(pos, 2)?, pos + 2),
            0xdf => (pending, pos) = (pending + 2 * len_at(pos, 4)?, pos + 4),
        }
        if pos > b.len() {
            return Err(Some(pos + pending));
        }
    }
    Ok(pos)
}

/// Streams a segment's entries in order, decompressing as it goes, from memory or from a file.
pub struct Reader<R: BufRead> {
    index: SegmentIndex,
    body: Block<R>,
}

impl<'a> Reader<&'a [u8]> {
    pub fn new(bytes: &'a [u8]) -> Result<Reader<&'a [u8]>, SegmentError> {
        let (index, start) = split_whole(bytes)?;
        let body = &bytes[start + index.heads_compressed as usize..];
        let body = Block::new(body, index.count, index.body_bytes, index.body_xxh3)?;
        Ok(Reader { index, body })
    }
}

impl Reader<std::io::BufReader<std::fs::File>> {
    /// A segment in a local file (merge scratch, downloaded snapshot parts), read as it streams.
    pub fn open(path: &std::path::Path) -> Result<Self, SegmentError> {
        use std::io::{Seek, SeekFrom};
        let io = |e: std::io::Error| SegmentError::Decode(format!("{}: {e}", path.display()));
        let mut file = std::fs::File::open(path).map_err(io)?;
        let mut prefix = vec![0u8; PREFIX_LEN];
        file.read_exact(&mut prefix).map_err(|_| SegmentError::Truncated { what: "header" })?;
        let len = u32::from_le_bytes([prefix[5], prefix[6], prefix[7], prefix[8]]) as usize;
        prefix.resize(PREFIX_LEN + len, 0);
        file.read_exact(&mut prefix[PREFIX_LEN..]).map_err(|_| SegmentError::Truncated { what: "index" })?;
        let (index, start) = split(&prefix)?;
        file.seek(SeekFrom::Start((start + index.heads_compressed as usize) as u64)).map_err(io)?;
        let body = Block::new(std::io::BufReader::new(file), index.count, index.body_bytes, index.body_xxh3)?;
        Ok(Reader { index, body })
    }
}

impl<R: BufRead> Reader<R> {
    pub fn index(&self) -> &SegmentIndex {
        &self.index
    }

    /// Uncompressed bytes read so far (the size of the entries read, for memory budgets).
    pub fn bytes_read(&self) -> u64 {
        self.body.consumed()
    }
}

impl<R: BufRead> Iterator for Reader<R> {
    type Item = Result<Entry, SegmentError>;

    fn next(&mut self) -> Option<Self::Item> {
        let item = self.body.next_item::<(String, ChangeRecord)>()?;
        Some(item.and_then(|(seq, record)| match SeqNo::parse(&seq) {
            Some(sequence) => Ok(Entry { sequence, record }),
            None => Err(SegmentError::Decode(format!("bad sequence number {seq:?}"))),
        }))
    }
}

/// Streams a segment's heads: from its heads block when it has one, else from its entries.
pub struct Heads<'a>(HeadSource<'a>);

enum HeadSource<'a> {
    Block(Box<Block<&'a [u8]>>),
    Entries(Box<Reader<&'a [u8]>>),
}

impl<'a> Heads<'a> {
    pub fn new(bytes: &'a [u8]) -> Result<Heads<'a>, SegmentError> {
        let (index, start) = split_whole(bytes)?;
        if index.heads_compressed == 0 {
            return Ok(Heads(HeadSource::Entries(Box::new(Reader::new(bytes)?))));
        }
        let block = &bytes[start..start + index.heads_compressed as usize];
        Ok(Heads(HeadSource::Block(Box::new(Block::new(block, index.count, index.heads_bytes, index.heads_xxh3)?))))
    }
}

impl Iterator for Heads<'_> {
    type Item = Result<Head, SegmentError>;

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.0 {
            HeadSource::Block(b) => b.next_item::<Head>(),
            HeadSource::Entries(r) => r.next().map(|e| e.map(|e| Head::of(&e))),
        }
    }
}

/// Every entry of a segment (for segments known to be small; stream large ones with [`Reader`]).
pub fn decode(bytes: &[u8]) -> Result<(SegmentIndex, Vec<Entry>), SegmentError> {
    let reader = Reader::new(bytes)?;
    let index = reader.index().clone();
    let entries = reader.collect::<Result<Vec<_>, _>>()?;
    Ok((index, entries))
}

/// The entries of a segment after `sequence` (what a write that found part of its records already
/// archived still has to write).
pub fn entries_after(bytes: &[u8], sequence: &SeqNo) -> Result<Vec<Entry>, SegmentError> {
    let mut out = Vec::new();
    for e in Reader::new(bytes)? {
        let e = e?;
        if e.sequence > *sequence {
            out.push(e);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Cause, CauseKind, Origin};

    pub(crate) fn delete(db: &str, table: &str, at: i64) -> ChangeRecord {
        let key = ObjectKey::Table { catalog: "1".into(), database: db.into(), table: table.into() };
        ChangeRecord::delete(key, &Origin::default(), Cause { kind: CauseKind::Event, event_id: None }, at)
    }

    /// Every MessagePack form, at each size boundary of its length: `item_len` finds where the
    /// value ends, and every shorter prefix asks for more bytes than it has.
    #[test]
    fn item_len_finds_the_extent_of_every_messagepack_form() {
        let mut values = vec![
            rmp_serde::to_vec(&()).unwrap(),
            rmp_serde::to_vec(&true).unwrap(),
            rmp_serde::to_vec(&1.5f32).unwrap(),
            rmp_serde::to_vec(&-1.5f64).unwrap(),
        ];
        for n in [0i64, 127, 128, 255, 256, 65_535, 65_536, 1 << 33, -1, -33, -129, -32_769, -(1 << 33)] {
            values.push(rmp_serde::to_vec(&n).unwrap());
        }
        values.push(rmp_serde::to_vec(&u64::MAX).unwrap());
        for len in [0usize, 31, 32, 255, 256, 65_535, 65_536] {
            values.push(rmp_serde::to_vec(&"x".repeat(len)).unwrap());
            values.push(rmp_serde::to_vec(&vec![1u8; len]).unwrap()); // an array of fixints
            let mut bin = Vec::new();
            rmp::encode::write_bin(&mut bin, &vec![7u8; len]).unwrap();
            values.push(bin);
            let map: std::collections::BTreeMap<String, u8> =
                (0..len.min(70_000)).map(|i| (i.to_string(), 1)).collect();
            values.push(rmp_serde::to_vec(&map).unwrap());
        }
        for len in [1u32, 2, 4, 8, 16, 3, 300, 70_000] {
            let mut ext = Vec::new();
            rmp::encode::write_ext_meta(&mut ext, len, 5).unwrap();
            ext.extend(std::iter::repeat_n(0u8, len as usize));
            values.push(ext);
        }
        values.push(rmp_serde::to_vec_named(&entries(3).pop().unwrap().record).unwrap());
        for v in &values {
            assert_eq!(item_len(v), Ok(v.len()), "{:02x?}", &v[..v.len().min(8)]);
            let mut followed = v.clone();
            followed.extend_from_slice(&[0xc0, 0xc0]);
            assert_eq!(item_len(&followed), Ok(v.len()));
            for cut in [0, 1, v.len() / 2, v.len() - 1].into_iter().filter(|cut| *cut < v.len()) {
                assert!(matches!(item_len(&v[..cut]), Err(Some(n)) if n > cut), "cut {cut} of {}", v.len());
            }
        }
        assert_eq!(item_len(&[0xc1]), Err(None));
    }

    fn entries(n: u64) -> Vec<Entry> {
        (0..n)
            .map(|i| Entry {
                sequence: SeqNo::parse(&format!("{}", 1000 + i)).unwrap(),
                record: delete("db", &format!("t{i:03}"), 10 + i as i64),
            })
            .collect()
    }

    #[test]
    fn round_trips_with_its_index() {
        let (bytes, index) = encode("shardId-000000000001", &entries(50), false, LEVEL).unwrap();
        assert_eq!(read_index(&bytes).unwrap(), index);
        let (back_index, back) = decode(&bytes).unwrap();
        assert_eq!((back_index, back), (index.clone(), entries(50)));
        assert_eq!((index.count, index.min_captured_at, index.max_captured_at), (50, 10, 59));
        assert_eq!(index.min_key.table(), Some("t000"));
        assert_eq!(index.max_key.table(), Some("t049"));
        let heads = Heads::new(&bytes).unwrap().collect::<Result<Vec<_>, _>>().unwrap();
        assert_eq!(heads, entries(50).iter().map(Head::of).collect::<Vec<_>>(), "derived from the entries");
        let (with_heads, _) = encode("", &entries(50), true, LEVEL).unwrap();
        let heads = Heads::new(&with_heads).unwrap().collect::<Result<Vec<_>, _>>().unwrap();
        assert_eq!(heads, entries(50).iter().map(Head::of).collect::<Vec<_>>(), "read from the heads block");
        assert_eq!(decode(&with_heads).unwrap().1, entries(50));
    }

    /// The merge budgets by the bytes each entry was read as: read-ahead must not show in them.
    #[test]
    fn bytes_read_counts_the_entries_read_not_what_was_read_ahead() {
        let many = entries(2_000);
        let (bytes, index) = encode("s", &many, false, LEVEL).unwrap();
        assert!(index.body_bytes > READ_AHEAD as u64 * 2, "the body spans several read-aheads");
        let mut reader = Reader::new(&bytes).unwrap();
        let (mut before, mut sizes) = (0, Vec::new());
        while let Some(e) = reader.next() {
            let e = e.unwrap();
            let encoded = rmp_serde::to_vec_named(&(e.sequence.as_str(), &e.record)).unwrap().len() as u64;
            sizes.push((reader.bytes_read() - before, encoded));
            before = reader.bytes_read();
        }
        assert_eq!(sizes.len(), 2_000);
        assert!(sizes.iter().all(|(read, encoded)| read == encoded), "each entry counts its own bytes");
        assert_eq!(before, index.body_bytes);
    }

    #[test]
    fn corruption_truncation_and_newer_formats_are_named() {
        let (bytes, _) = encode("s", &entries(20), true, LEVEL).unwrap();
        let mut flipped = bytes.clone();
        let last = flipped.len() - 3;
        flipped[last] ^= 0x40;
        assert!(decode(&flipped).is_err(), "a flipped body byte must not decode silently");
        assert!(decode(&bytes[..bytes.len() - 10]).is_err());
        let mut newer = bytes.clone();
        newer[4] = FORMAT + 1;
        assert!(decode(&newer).unwrap_err().to_string().contains("upgrade lakelog"));
        assert!(matches!(decode(b"JSON{}{}{}{}"), Err(SegmentError::BadMagic { .. })));
        assert!(matches!(encode("s", &[], false, 1), Err(SegmentError::Empty)));
    }

    #[test]
    fn sort_keys_group_a_database_then_each_table_with_its_partitions() {
        let db = |d: &str| ObjectKey::Database { catalog: "1".into(), database: d.into() };
        let t = |d: &str, t: &str| ObjectKey::Table { catalog: "1".into(), database: d.into(), table: t.into() };
        let p = |d: &str, t: &str, v: &[&str]| ObjectKey::Partition {
            catalog: "1".into(),
            database: d.into(),
            table: t.into(),
            values: v.iter().map(|s| s.to_string()).collect(),
        };
        let ordered = [
            db("a"),
            t("a", "x"),
            p("a", "x", &["1"]),
            p("a", "x", &["1", "z"]),
            p("a", "x", &["2"]),
            t("a", "x\u{0}y"),
            t("a", "xy"),
            db("a\u{0}"),
            db("ab"),
            t("ab", ""),
        ];
        for w in ordered.windows(2) {
            assert!(sort_key(&w[0]) < sort_key(&w[1]), "{} < {}", w[0], w[1]);
        }
    }
}
