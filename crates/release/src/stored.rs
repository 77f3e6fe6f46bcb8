//! Stored releases held in memory, so a repeated query is answered without
//! the ledger.
//!
//! A committed release never changes (the ledger's tables are append-only)
//! and the ledger's lookup of a key always returns the same release once it
//! has returned one (the first of its key, or the analyst's own). So what the
//! ledger once answered for a lookup can be kept and served again; a miss
//! goes to the ledger, which is the authority (another process may have
//! released the query since).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use privacy::{Sharing, StoredRelease};

/// Bytes of release rows kept in memory at most; the oldest entries go
/// first. A county × age band answer is about 40 kB.
pub const MAX_BYTES: usize = 256 << 20;

/// `(dataset, release key, analyst or "" when shared)`.
type Lookup = (String, String, String);

/// Stored releases by the lookup that found them.
#[derive(Debug, Default)]
pub struct StoredReleases {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    by_lookup: HashMap<Lookup, Arc<StoredRelease>>,
    order: VecDeque<Lookup>,
    bytes: usize,
}

fn lookup(dataset: &str, key: &str, sharing: Sharing<'_>) -> Lookup {
    let who = match sharing {
        Sharing::Everyone => "",
        Sharing::OwnOnly(analyst) => analyst,
    };
    (dataset.to_owned(), key.to_owned(), who.to_owned())
}

impl StoredReleases {
    /// The release the ledger once returned for this lookup, if kept.
    pub fn get(
        &self,
        dataset: &str,
        key: &str,
        sharing: Sharing<'_>,
    ) -> Option<Arc<StoredRelease>> {
        self.lock()
            .by_lookup
            .get(&lookup(dataset, key, sharing))
            .cloned()
    }

    /// Keeps what the ledger returned for this lookup, and returns the kept
    /// copy (the one already kept, if any).
    pub fn put(&self, sharing: Sharing<'_>, release: &StoredRelease) -> Arc<StoredRelease> {
        let key = lookup(&release.dataset, &release.query_key, sharing);
        let size = release.rows_json.len() + release.query_json.len();
        let mut inner = self.lock();
        if let Some(kept) = inner.by_lookup.get(&key) {
            return kept.clone();
        }
        while inner.bytes + size > MAX_BYTES {
            let Some(oldest) = inner.order.pop_front() else {
                break;
            };
            if let Some(gone) = inner.by_lookup.remove(&oldest) {
                inner.bytes -= gone.rows_json.len() + gone.query_json.len();
            }
        }
        inner.bytes += size;
        inner.order.push_back(key.clone());
        let kept = Arc::new(release.clone());
        inner.by_lookup.insert(key, kept.clone());
        kept
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Plain maps: a panic elsewhere cannot leave them half-written.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}
