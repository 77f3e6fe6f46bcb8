//! A parse worker's job: one chunk's lines through the layout's rules, into
//! encoded rows, de-duplication keys, rejects and side counts.

use std::sync::Arc;

use crate::reader::Chunk;
use crate::rules::{DedupKey, NullYear, RejectReason, RowOutcome, Rules, UnknownCode};
use crate::write::{self, ROW_BYTES};

/// What one chunk gave.
pub(crate) struct ChunkOut {
    pub seq: u64,
    pub rules: Arc<Rules>,
    pub file: usize,
    pub bytes: usize,
    pub lines: u64,
    /// Encoded rows, `ROW_BYTES` each.
    pub rows: Vec<u8>,
    pub keys: Vec<DedupKey>,
    pub rejects: Vec<(u64, RejectReason)>,
    pub unknown: Vec<(u32, UnknownCode)>,
    pub birth_nulls: [u64; 4],
    pub reg_nulls: [u64; 4],
    /// In-file history cells not in the method table, over accepted lines.
    pub unknown_votes: u64,
}

/// Applies the rules to every line of `chunk`.
pub(crate) fn parse_chunk(chunk: Chunk, outcome: &mut RowOutcome) -> ChunkOut {
    let mut out = ChunkOut {
        seq: chunk.seq,
        file: chunk.file,
        bytes: chunk.range.len(),
        rows: Vec::with_capacity(chunk.range.len() / 40 * ROW_BYTES),
        rules: chunk.rules.clone(),
        lines: 0,
        keys: Vec::new(),
        rejects: Vec::new(),
        unknown: Vec::new(),
        birth_nulls: [0; 4],
        reg_nulls: [0; 4],
        unknown_votes: 0,
    };
    let data = &chunk.bytes[chunk.range.clone()];
    let mut start = 0usize;
    let mut encoded = [0u8; ROW_BYTES];
    while start < data.len() {
        let end = memchr::memchr(b'\n', &data[start..]).map_or(data.len(), |i| start + i);
        let mut line = &data[start..end];
        if let [rest @ .., b'\r'] = line {
            line = rest;
        }
        match chunk.rules.apply(line, outcome) {
            Ok((row, key)) => {
                let index = out.keys.len() as u32;
                write::encode(&row, &mut encoded);
                out.rows.extend_from_slice(&encoded);
                out.keys.push(key);
                for u in outcome.unknown.drain(..) {
                    out.unknown.push((index, u));
                }
                if let Some(why) = outcome.birth_null {
                    out.birth_nulls[null_index(why)] += 1;
                }
                out.unknown_votes += u64::from(outcome.unknown_votes);
                if let Some(why) = outcome.reg_null {
                    out.reg_nulls[null_index(why)] += 1;
                }
            }
            // The line number within the chunk; the merger, which sees the
            // chunks in order, adds where the chunk starts in its file.
            Err(reason) => out.rejects.push((out.lines, reason)),
        }
        out.lines += 1;
        start = end + 1;
    }
    out
}

fn null_index(why: NullYear) -> usize {
    match why {
        NullYear::Blank => 0,
        NullYear::SentinelOrMask => 1,
        NullYear::Unparseable => 2,
        NullYear::OutOfRange => 3,
    }
}
