//! What this instance last wrote or read of the Table store, so the report path needs no read
//! round trip: device records with their ETags (used to route reports, see
//! `TableStore::routing_records`) and each rollout head's ETag and commit number. Every write
//! stays conditional on the ETag it was read at, so a stale record or head can only make a
//! commit fail its version check; the commit's rollout is then forgotten and the retry reads
//! the store. (Routes are kept by the device index itself, see `index`.)

use rollout_core::DeviceRecord;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

/// Most device records kept (about 200 bytes each); past it the cache starts over.
const MAX_RECORDS: usize = 100_000;

/// A device record and the ETag it was written or read at.
pub(super) type CachedRecord = (DeviceRecord, String);

/// The instance's cache of the store (one per [`super::TableStore`], shared by its clones).
#[derive(Default)]
pub(super) struct Cache {
    records: Mutex<Records>,
    heads: Mutex<HashMap<String, Head>>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cache")
    }
}

/// A rollout head as last committed here: its ETag and commit number.
#[derive(Clone)]
pub(super) struct Head {
    pub etag: String,
    pub seq: u64,
}

/// Device records by rollout, then device.
#[derive(Default)]
struct Records {
    by_rollout: HashMap<String, HashMap<String, CachedRecord>>,
    len: usize,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Cache {
    /// The cached records of `devices` in `rollout`, and the devices not cached.
    pub fn records(
        &self,
        rollout: &str,
        devices: &[String],
    ) -> (Vec<(String, CachedRecord)>, Vec<String>) {
        let records = lock(&self.records);
        let cached = records.by_rollout.get(rollout);
        let (mut hits, mut misses) = (Vec::new(), Vec::new());
        for device in devices {
            match cached.and_then(|c| c.get(device)) {
                Some(record) => hits.push((device.clone(), record.clone())),
                None => misses.push(device.clone()),
            }
        }
        (hits, misses)
    }

    /// Remembers records just read or written.
    pub fn put_records(
        &self,
        rollout: &str,
        written: impl IntoIterator<Item = (String, CachedRecord)>,
    ) {
        let mut records = lock(&self.records);
        if records.len >= MAX_RECORDS {
            *records = Records::default();
        }
        let Records { by_rollout, len } = &mut *records;
        let cached = by_rollout.entry(rollout.to_string()).or_default();
        for (device, record) in written {
            if cached.insert(device, record).is_none() {
                *len += 1;
            }
        }
    }

    /// Forgets everything of a rollout (a commit of it lost a version check).
    pub fn forget_rollout(&self, rollout: &str) {
        let mut records = lock(&self.records);
        if let Some(dropped) = records.by_rollout.remove(rollout) {
            records.len -= dropped.len();
        }
        lock(&self.heads).remove(rollout);
    }

    /// The head of `rollout` as last committed here.
    pub fn head(&self, rollout: &str) -> Option<Head> {
        lock(&self.heads).get(rollout).cloned()
    }

    /// Remembers a head just committed.
    pub fn put_head(&self, rollout: &str, head: Head) {
        lock(&self.heads).insert(rollout.to_string(), head);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(version: u64) -> CachedRecord {
        let mut record = DeviceRecord::new(0);
        record.version = version;
        (record, format!("etag-{version}"))
    }

    #[test]
    fn records_are_kept_per_rollout_and_forgotten_with_it() {
        let cache = Cache::default();
        cache.put_records(
            "r1",
            [("a".to_string(), record(1)), ("b".to_string(), record(2))],
        );
        cache.put_records("r2", [("a".to_string(), record(7))]);
        cache.put_head(
            "r1",
            Head {
                etag: "h".into(),
                seq: 3,
            },
        );
        let (hits, misses) = cache.records("r1", &["a".into(), "c".into()]);
        assert_eq!(hits, vec![("a".to_string(), record(1))]);
        assert_eq!(misses, vec!["c".to_string()]);
        cache.forget_rollout("r1");
        assert_eq!(cache.records("r1", &["a".into()]).1, vec!["a".to_string()]);
        assert!(cache.head("r1").is_none());
        assert_eq!(cache.records("r2", &["a".into()]).0[0].1, record(7));
        assert_eq!(lock(&cache.records).len, 1);
    }
}
