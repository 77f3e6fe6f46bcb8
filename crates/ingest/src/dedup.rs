//! De-duplication keys on disk: the one state of an ingest that grows with
//! the rows (16 bytes each), so it is spilled to hash-partitioned bucket
//! files as the merger sees rows and read back one bucket at a time. Memory
//! stays at the write buffers, a bucket and a bit per row at any file size
//! (a 22M-row file is about 5 MiB a bucket).

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::IngestError;
use crate::history::{self, JoinCounts};
use crate::rules::NO_VOTER_ID;
use crate::write;

/// Bucket files: a power of two, so that a bucket is the top bits of a hash.
pub(crate) const BUCKETS: usize = 64;
/// Bytes of one encoded [`Entry`].
const ENTRY_BYTES: usize = 16;

/// One row's de-duplication key: its packed voter id, its registration
/// rank, and its index among the accepted rows. Never written outside the
/// ingest's temporary folder, which is removed when the ingest ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Entry {
    pub id: u64,
    pub rank: i32,
    pub row: u32,
}

impl Entry {
    fn encode(&self) -> [u8; ENTRY_BYTES] {
        let mut b = [0u8; ENTRY_BYTES];
        b[..8].copy_from_slice(&self.id.to_le_bytes());
        b[8..12].copy_from_slice(&self.rank.to_le_bytes());
        b[12..].copy_from_slice(&self.row.to_le_bytes());
        b
    }

    fn decode(b: &[u8]) -> Entry {
        Entry {
            id: u64::from_le_bytes(b[..8].try_into().expect("8 bytes")),
            rank: i32::from_le_bytes(b[8..12].try_into().expect("4 bytes")),
            row: u32::from_le_bytes(b[12..16].try_into().expect("4 bytes")),
        }
    }
}

/// History lines to join while de-duplicating (see
/// [`Keys::dropped_and_joined`]).
pub(crate) struct Join<'a> {
    /// The history bucket files, one per key bucket, same hash.
    pub buckets: &'a [PathBuf],
    /// The configured elections.
    pub elections: &'a [layout::Election],
    /// One cell per (accepted row, election), row-major.
    pub votes: &'a [std::sync::atomic::AtomicU8],
}

/// The bucket files being written.
pub(crate) struct Keys {
    buckets: Vec<(PathBuf, BufWriter<File>)>,
}

impl Keys {
    /// Creates the (owner-only) bucket files in `dir`.
    pub fn create(dir: &Path) -> Result<Keys, IngestError> {
        let buckets = (0..BUCKETS)
            .map(|i| {
                let path = dir.join(format!("keys.{i:02}.spill"));
                let file = write::private_file()
                    .read(true)
                    .open(&path)
                    .map_err(|e| IngestError::io(&path, e))?;
                Ok((path, BufWriter::with_capacity(32 << 10, file)))
            })
            .collect::<Result<_, IngestError>>()?;
        Ok(Keys { buckets })
    }

    /// Adds one row's key. A row without a voter id is never grouped with
    /// another, so it is not stored at all.
    pub fn push(&mut self, e: Entry) -> Result<(), IngestError> {
        if e.id == NO_VOTER_ID {
            return Ok(());
        }
        let (path, w) = &mut self.buckets[bucket_of(e.id)];
        w.write_all(&e.encode())
            .map_err(|err| IngestError::io(path, err))
    }

    /// Marks every row that loses to a duplicate, bucket by bucket, and
    /// removes the bucket files. Returns a bitmap over the `rows` accepted
    /// rows: within a voter id the latest registration date wins, and on a
    /// tie the later row.
    pub fn dropped(self, rows: u64) -> Result<Vec<u64>, IngestError> {
        Ok(self.dropped_and_joined(rows, None)?.0)
    }

    /// As [`Keys::dropped`], and joins the history lines of `join`'s bucket
    /// files (bucket `i` beside bucket `i`: equal ids share a bucket) to the
    /// kept voters, filling `join.votes`.
    pub fn dropped_and_joined(
        self,
        rows: u64,
        join: Option<Join<'_>>,
    ) -> Result<(Vec<u64>, JoinCounts), IngestError> {
        let mut files = Vec::with_capacity(self.buckets.len());
        for (path, w) in self.buckets {
            let file = w
                .into_inner()
                .map_err(|e| IngestError::io(&path, e.into_error()))?;
            files.push((path, file));
        }
        // One bucket per core at a time (rayon's pool): memory stays a few buckets.
        let results: Vec<(Vec<u32>, JoinCounts)> = files
            .into_par_iter()
            .enumerate()
            .map(|(i, (path, file))| {
                let mut entries = read_bucket(&path, file)?;
                std::fs::remove_file(&path).map_err(|e| IngestError::io(&path, e))?;
                let lost = losers(&mut entries);
                let Some(join) = &join else {
                    return Ok((lost, JoinCounts::default()));
                };
                // Sorted by (id, rank, row): the last of each id is kept.
                let winners: Vec<(u64, i32, u32)> = entries
                    .chunk_by(|a, b| a.id == b.id)
                    .map(|g| {
                        let e = g[g.len() - 1];
                        (e.id, e.rank, e.row)
                    })
                    .collect();
                let mut lines = history::read_bucket(&join.buckets[i])?;
                let counts = history::join_bucket(&mut lines, &winners, join.elections, join.votes);
                Ok((lost, counts))
            })
            .collect::<Result<_, IngestError>>()?;
        let mut dropped = vec![0u64; (rows as usize).div_ceil(64).max(1)];
        let mut counts = JoinCounts::default();
        for (lost, c) in results {
            counts += c;
            for row in lost {
                dropped[(row / 64) as usize] |= 1 << (row % 64);
            }
        }
        Ok((dropped, counts))
    }
}

/// The bucket of an id. Packed ids are not uniform in their top bits; a
/// multiplicative hash spreads them. Equal ids land in the same bucket.
pub(crate) fn bucket_of(id: u64) -> usize {
    (id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58) as usize % BUCKETS
}

fn read_bucket(path: &Path, mut file: File) -> Result<Vec<Entry>, IngestError> {
    let io = |e| IngestError::io(path, e);
    let len = file.seek(std::io::SeekFrom::End(0)).map_err(io)? as usize;
    file.rewind().map_err(io)?;
    let mut bytes = Vec::with_capacity(len);
    BufReader::new(file).read_to_end(&mut bytes).map_err(io)?;
    Ok(bytes.chunks_exact(ENTRY_BYTES).map(Entry::decode).collect())
}

/// The rows of `entries` that lose to another row of the same id.
fn losers(entries: &mut [Entry]) -> Vec<u32> {
    entries.sort_unstable();
    let mut out = Vec::new();
    for group in entries.chunk_by(|a, b| a.id == b.id) {
        // Sorted by (rank, row): the last entry is the latest date, latest row.
        out.extend(group[..group.len() - 1].iter().map(|e| e.row));
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    const OLDEST: i32 = crate::rules::OLDEST;

    /// The bitmap of rows that lose, through the bucket files.
    pub(crate) fn dedup(entries: &[Entry], rows: u64) -> Vec<u64> {
        let dir = tempfile::tempdir().unwrap();
        let mut keys = Keys::create(dir.path()).unwrap();
        for e in entries {
            keys.push(*e).unwrap();
        }
        let dropped = keys.dropped(rows).unwrap();
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "bucket files removed"
        );
        dropped
    }

    proptest! {
        /// De-duplication keeps, for every id, exactly the row with the
        /// latest date, the later row on a tie, and drops every other row;
        /// a row without an id is never dropped.
        #[test]
        fn dedup_keeps_latest_then_last(rows in proptest::collection::vec((prop_oneof![0u64..20, Just(NO_VOTER_ID), Just(u64::MAX - 1)], prop_oneof![Just(OLDEST), 19000101i32..19000110]), 0..300)) {
            let entries: Vec<Entry> = rows.iter().enumerate().map(|(i, &(id, rank))| Entry { id, rank, row: i as u32 }).collect();
            let dropped = dedup(&entries, rows.len() as u64);
            let kept = |i: usize| dropped[i / 64] & (1 << (i % 64)) == 0;
            for (i, &(id, rank)) in rows.iter().enumerate() {
                let beaten = id != NO_VOTER_ID && rows.iter().enumerate().any(|(j, &(id2, rank2))| j != i && id2 == id && (rank2 > rank || (rank2 == rank && j > i)));
                prop_assert_eq!(kept(i), !beaten, "row {} id {} rank {}", i, id, rank);
            }
        }
    }

    #[test]
    fn entries_round_trip_and_spread_over_buckets() {
        let e = Entry {
            id: u64::MAX - 7,
            rank: OLDEST,
            row: u32::MAX,
        };
        assert_eq!(Entry::decode(&e.encode()), e);
        // Sequential NC-style ids fill every bucket.
        let mut seen = [0u32; BUCKETS];
        for id in 0..10_000u64 {
            seen[bucket_of(crate::rules::pack_id(format!("AA{id}").as_bytes()))] += 1;
        }
        assert!(seen.iter().all(|&n| n > 50), "{seen:?}");
    }
}
