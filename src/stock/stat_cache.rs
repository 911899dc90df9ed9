//! The stat cache: (device, inode, size, mtime, ctime) of a stock file →
//! BLAKE3 of its content, so an unchanged file is never read again.
//!
//! It is derivable: a missing, truncated or corrupt cache is ignored and
//! rebuilt, and it never changes a result. A file whose ctime is not safely
//! older than the scan that hashed it is not cached (the same-timestamp race:
//! a write within the clock's granularity would keep the old stamps).
//! Format: a magic line, fixed-size little-endian records, then a BLAKE3 of
//! everything before it.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::Result;
use crate::sys::fs::Dir;

const MAGIC: &[u8; 8] = b"SVCDUC1\n";
const CACHE_FILE: &str = "stat-cache.bin";
const RECORD: usize = 8 * 6 + 4 * 2 + 32;

/// What identifies a file's content without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Fingerprint {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime: (i64, u32),
    pub ctime: (i64, u32),
}

impl Fingerprint {
    pub(crate) fn of(st: &rustix::fs::Stat) -> Fingerprint {
        #[allow(clippy::unnecessary_cast)]
        Fingerprint {
            dev: st.st_dev as u64,
            ino: st.st_ino as u64,
            size: st.st_size as u64,
            mtime: (st.st_mtime as i64, st.st_mtime_nsec as u32),
            ctime: (st.st_ctime as i64, st.st_ctime_nsec as u32),
        }
    }
}

/// The cache as loaded: the file's records, sorted by (device, inode) and
/// searched in place (a hash map of 100,000 entries would cost twice the
/// memory), plus what this run learnt.
#[derive(Debug, Default)]
pub(crate) struct StatCache {
    /// Fixed-size records, sorted by (dev, ino).
    records: Vec<u8>,
    /// One bit per record: looked up and still valid in this run.
    seen: Vec<AtomicU64>,
    /// Hashes computed in this run, to be merged in on save.
    added: Vec<(Fingerprint, [u8; 32])>,
    /// Started empty on purpose (`--rehash`): saved even with nothing
    /// added, so that the file on disk is replaced.
    rebuilt: bool,
    /// Let go of after a save ([`StatCache::let_go`]): the file holds
    /// exactly what this cache would write, and [`StatCache::reloaded`]
    /// reads it back.
    in_file: bool,
}

fn decode_record(r: &[u8]) -> (Fingerprint, [u8; 32]) {
    let u64_at = |i: usize| u64::from_le_bytes(r[i..i + 8].try_into().unwrap_or_default());
    let u32_at = |i: usize| u32::from_le_bytes(r[i..i + 4].try_into().unwrap_or_default());
    let fp = Fingerprint {
        dev: u64_at(0),
        ino: u64_at(8),
        size: u64_at(16),
        mtime: (u64_at(24) as i64, u32_at(48)),
        ctime: (u64_at(32) as i64, u32_at(52)),
    };
    let mut hash = [0u8; 32];
    hash.copy_from_slice(&r[56..88]);
    (fp, hash)
}

fn encode_record(out: &mut Vec<u8>, fp: &Fingerprint, hash: &[u8; 32]) {
    out.extend_from_slice(&fp.dev.to_le_bytes());
    out.extend_from_slice(&fp.ino.to_le_bytes());
    out.extend_from_slice(&fp.size.to_le_bytes());
    out.extend_from_slice(&(fp.mtime.0 as u64).to_le_bytes());
    out.extend_from_slice(&(fp.ctime.0 as u64).to_le_bytes());
    out.extend_from_slice(&0u64.to_le_bytes()); // reserved
    out.extend_from_slice(&fp.mtime.1.to_le_bytes());
    out.extend_from_slice(&fp.ctime.1.to_le_bytes());
    out.extend_from_slice(hash);
}

fn key_of(r: &[u8]) -> (u64, u64) {
    let u64_at = |i: usize| u64::from_le_bytes(r[i..i + 8].try_into().unwrap_or_default());
    (u64_at(0), u64_at(8))
}

impl StatCache {
    /// Loads the cache from `<state>/cache/`; any problem gives an empty cache.
    pub(crate) fn load(cache_dir: Option<&Dir>) -> StatCache {
        let Some(dir) = cache_dir else {
            return StatCache::default();
        };
        let Ok(file) = dir.open_file(CACHE_FILE) else {
            return StatCache::default();
        };
        let mut bytes = Vec::new();
        if std::io::Read::read_to_end(&mut &file, &mut bytes).is_err() {
            return StatCache::default();
        }
        StatCache::decode(bytes).unwrap_or_default()
    }

    fn decode(mut bytes: Vec<u8>) -> Option<StatCache> {
        let body_len = bytes.len().checked_sub(32)?;
        let (body, sum) = bytes.split_at(body_len);
        if blake3::hash(body).as_bytes() != sum || !body.starts_with(MAGIC) {
            return None;
        }
        if (body.len() - MAGIC.len()) % RECORD != 0 {
            return None;
        }
        bytes.truncate(body_len);
        bytes.drain(..MAGIC.len());
        let records = bytes;
        // A cache this tool wrote is sorted; anything else is not trusted.
        let sorted = records
            .chunks_exact(RECORD)
            .zip(records.chunks_exact(RECORD).skip(1))
            .all(|(a, b)| key_of(a) < key_of(b));
        if !sorted {
            return None;
        }
        let count = records.len() / RECORD;
        Some(StatCache {
            seen: (0..count.div_ceil(64)).map(|_| AtomicU64::new(0)).collect(),
            records,
            added: Vec::new(),
            rebuilt: false,
            in_file: false,
        })
    }

    /// An empty cache that replaces the one on disk when saved (`--rehash`):
    /// every file is read, and no old record survives.
    pub(crate) fn rebuilt() -> StatCache {
        StatCache {
            rebuilt: true,
            ..StatCache::default()
        }
    }

    /// Lets go of the records once [`StatCache::save`] wrote them: a commit
    /// needs them again only to drop stale ones
    /// ([`StatCache::reloaded`]), and at 100,000 services they hold 62 MiB
    /// (docs/performance.md#100000-services-memory-after-this-change).
    pub(crate) fn let_go(&mut self) {
        *self = StatCache {
            in_file: true,
            ..StatCache::default()
        };
    }

    /// This cache, or, when it was let go of, the one its save wrote, read
    /// back from `cache_dir` with every record kept on the next save.
    pub(crate) fn reloaded(self, cache_dir: Option<&Dir>) -> StatCache {
        if !self.in_file {
            return self;
        }
        let mut cache = StatCache::load(cache_dir);
        for bits in &mut cache.seen {
            *bits.get_mut() = u64::MAX;
        }
        cache
    }

    /// Drops the records of `stale` files (a fresh hash disagreed with the
    /// cached one): the next save leaves them out, so the next scan reads
    /// those files again (docs/security.md#a-stale-stat-cache).
    pub(crate) fn forget(&mut self, stale: &[Fingerprint]) {
        for fp in stale {
            if let Some(i) = self.index_of(fp.dev, fp.ino) {
                self.seen[i / 64].fetch_and(!(1 << (i % 64)), Ordering::Relaxed);
            }
            self.added
                .retain(|(a, _)| (a.dev, a.ino) != (fp.dev, fp.ino));
        }
        self.rebuilt = true;
    }

    /// The index of the record for `(dev, ino)`, if any.
    fn index_of(&self, dev: u64, ino: u64) -> Option<usize> {
        let (mut lo, mut hi) = (0, self.count());
        while lo < hi {
            let mid = (lo + hi) / 2;
            let rec = &self.records[mid * RECORD..(mid + 1) * RECORD];
            match key_of(rec).cmp(&(dev, ino)) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(mid),
            }
        }
        None
    }

    fn count(&self) -> usize {
        self.records.len() / RECORD
    }

    /// The cached hash of a file, if its fingerprint is unchanged. Safe to
    /// call from many threads at once.
    pub(crate) fn lookup(&self, fp: &Fingerprint) -> Option<[u8; 32]> {
        let i = self.index_of(fp.dev, fp.ino)?;
        let (cached, hash) = decode_record(&self.records[i * RECORD..(i + 1) * RECORD]);
        if cached != *fp {
            return None;
        }
        self.seen[i / 64].fetch_or(1 << (i % 64), Ordering::Relaxed);
        Some(hash)
    }

    /// Records a freshly computed hash, unless the file changed too recently
    /// to trust its timestamps (`scan_start` is when hashing began, seconds).
    pub(crate) fn insert(&mut self, fp: Fingerprint, hash: [u8; 32], scan_start: i64) {
        if Self::trusted(&fp, scan_start) {
            self.added.push((fp, hash));
        }
    }

    fn is_seen(&self, i: usize) -> bool {
        self.seen[i / 64].load(Ordering::Relaxed) & (1 << (i % 64)) != 0
    }

    /// Takes the hashes a scan's walks computed (already kept to files
    /// whose timestamps can be trusted, [`StatCache::trusted`]), without a
    /// copy when this run added none before.
    pub(crate) fn learn(&mut self, mut learnt: Vec<(Fingerprint, [u8; 32])>) {
        if self.added.is_empty() {
            self.added = learnt;
        } else {
            self.added.append(&mut learnt);
        }
    }

    /// Whether a hash computed for `fp` may be cached: not when the file
    /// changed too recently to trust its timestamps (`scan_start` is when
    /// hashing began, seconds; the same-timestamp race).
    pub(crate) fn trusted(fp: &Fingerprint, scan_start: i64) -> bool {
        fp.ctime.0 < scan_start - 1 && fp.mtime.0 < scan_start - 1
    }

    /// Records not looked up in this run belong to files that vanished or
    /// changed; they are dropped on save, so the cache tracks the stock.
    fn dirty(&self) -> bool {
        self.rebuilt || !self.added.is_empty() || (0..self.count()).any(|i| !self.is_seen(i))
    }

    /// Streams the cache: the seen records merged with the added ones, in
    /// (dev, ino) order, then the checksum — without building the result
    /// in memory (it is ~7 MB for 76,000 files).
    fn write_to(&self, w: &mut impl std::io::Write) -> std::io::Result<()> {
        let mut hasher = blake3::Hasher::new();
        let mut put = |bytes: &[u8]| -> std::io::Result<()> {
            hasher.update(bytes);
            w.write_all(bytes)
        };
        put(MAGIC)?;
        // Sorted by index, not by copying the records: at 100,000 services
        // they are 62 MiB, and a sorted copy doubled them at the peak
        // (docs/performance.md#first-commit-memory-at-100000-services).
        let key = |i: usize| (self.added[i].0.dev, self.added[i].0.ino);
        let mut order: Vec<usize> = (0..self.added.len()).collect();
        // The last hash computed for a file wins: first of its key below.
        order.sort_unstable_by_key(|&i| (key(i), std::cmp::Reverse(i)));
        order.dedup_by_key(|i| key(*i));
        let mut added = order.into_iter().map(|i| self.added[i]).peekable();
        let mut record = Vec::with_capacity(RECORD);
        for (i, r) in self.records.chunks_exact(RECORD).enumerate() {
            if !self.is_seen(i) {
                continue;
            }
            let key = key_of(r);
            while let Some((fp, hash)) = added.next_if(|(fp, _)| (fp.dev, fp.ino) <= key) {
                record.clear();
                encode_record(&mut record, &fp, &hash);
                put(&record)?;
            }
            // A file re-hashed in this run was not seen (its fingerprint
            // changed), so seen records and added ones never share a key.
            put(r)?;
        }
        for (fp, hash) in added {
            record.clear();
            encode_record(&mut record, &fp, &hash);
            put(&record)?;
        }
        let sum = hasher.finalize();
        w.write_all(sum.as_bytes())
    }

    /// Writes the cache if it changed. Best effort: a failure only costs speed.
    pub(crate) fn save(&self, cache_dir: &Dir) -> Result<()> {
        if !self.dirty() {
            return Ok(());
        }
        // Not fsynced: a cache lost in a crash is rebuilt; a torn one fails
        // its checksum and is ignored.
        let tmp = format!(".tmp-{CACHE_FILE}");
        cache_dir.remove_if_exists(&tmp)?;
        let file = cache_dir.create_file(&tmp, 0o600)?;
        let mut out = std::io::BufWriter::with_capacity(64 << 10, file);
        self.write_to(&mut out)
            .and_then(|()| std::io::Write::flush(&mut out))
            .map_err(|e| crate::error::Error::create("write", cache_dir.join(&tmp), e))?;
        drop(out);
        cache_dir.rename(&tmp, cache_dir, CACHE_FILE)
    }

    /// Entries the cache held when loaded.
    pub(crate) fn len(&self) -> usize {
        self.count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl StatCache {
        /// The bytes `save` would write.
        fn encode(&self) -> Vec<u8> {
            let mut out = Vec::new();
            self.write_to(&mut out).unwrap();
            out
        }
    }

    fn fp(ino: u64) -> Fingerprint {
        Fingerprint {
            dev: 1,
            ino,
            size: 10,
            mtime: (100, 5),
            ctime: (100, 6),
        }
    }

    #[test]
    fn round_trips_and_rejects_corruption() {
        let mut c = StatCache::default();
        c.insert(fp(2), [8; 32], 1_000);
        c.insert(fp(1), [7; 32], 1_000);
        let bytes = c.encode();
        let back = StatCache::decode(bytes.clone()).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back.lookup(&fp(1)), Some([7; 32]));
        assert_eq!(back.lookup(&fp(2)), Some([8; 32]));
        assert_eq!(back.lookup(&fp(3)), None);
        let mut changed = fp(1);
        changed.ctime.1 += 1;
        assert_eq!(back.lookup(&changed), None);
        let mut bad = bytes.clone();
        bad[10] ^= 1;
        assert!(StatCache::decode(bad).is_none());
        assert!(StatCache::decode(bytes[..bytes.len() - 1].to_vec()).is_none());
    }

    #[test]
    fn save_keeps_what_was_seen_and_what_was_added() {
        let mut c = StatCache::default();
        c.insert(fp(1), [7; 32], 1_000);
        c.insert(fp(2), [8; 32], 1_000);
        let mut next = StatCache::decode(c.encode()).unwrap();
        // File 1 is seen unchanged; file 2 vanished; file 3 is new.
        assert!(next.lookup(&fp(1)).is_some());
        next.insert(fp(3), [9; 32], 1_000);
        assert!(next.dirty());
        let last = StatCache::decode(next.encode()).unwrap();
        assert_eq!(last.len(), 2);
        assert_eq!(last.lookup(&fp(1)), Some([7; 32]));
        assert_eq!(last.lookup(&fp(2)), None);
        assert_eq!(last.lookup(&fp(3)), Some([9; 32]));
        // Everything seen, nothing added: nothing to write.
        assert!(!last.dirty());
    }

    fn sample() -> Vec<u8> {
        let mut c = StatCache::default();
        for ino in 1..5 {
            c.insert(fp(ino), [ino as u8; 32], 1_000);
        }
        c.encode()
    }

    fn resigned(bytes: &[u8]) -> Vec<u8> {
        let body = &bytes[..bytes.len().saturating_sub(32)];
        let mut out = body.to_vec();
        out.extend_from_slice(blake3::hash(body).as_bytes());
        out
    }

    proptest::proptest! {
        #![proptest_config(crate::test_support::mutate::config())]
        /// A damaged cache never panics; it decodes or is dropped (and
        /// `load` then starts from an empty cache).
        #[test]
        fn damaged_cache_decodes_or_is_dropped(bytes in crate::test_support::mutate::damaged(vec![sample()])) {
            let _ = StatCache::decode(bytes.clone()).unwrap_or_default();
        }

        /// The same with the checksum fixed up, so the record parser sees the damage.
        #[test]
        fn damaged_but_resigned_cache_decodes_or_is_dropped(bytes in crate::test_support::mutate::damaged(vec![sample()])) {
            if let Some(c) = StatCache::decode(resigned(&bytes)) {
                proptest::prop_assert!(c.len() <= bytes.len() / RECORD);
                // Searching and re-encoding a decoded cache never panics.
                let _ = c.lookup(&fp(2));
                let _ = c.encode();
            }
        }
    }

    #[test]
    fn resigning_the_sample_keeps_it_valid() {
        assert_eq!(StatCache::decode(resigned(&sample())).unwrap().len(), 4);
    }

    #[test]
    fn a_cache_let_go_after_its_save_reads_back_what_it_saved() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Dir::open(tmp.path()).unwrap();
        let mut c = StatCache::default();
        c.insert(fp(1), [7; 32], 1_000);
        c.insert(fp(2), [8; 32], 1_000);
        c.save(&dir).unwrap();
        c.let_go();
        assert_eq!(c.len(), 0);
        // A stale record found later is dropped from what was saved; the
        // other records stay.
        let mut back = c.reloaded(Some(&dir));
        back.forget(&[fp(2)]);
        back.save(&dir).unwrap();
        let last = StatCache::load(Some(&dir));
        assert_eq!(last.len(), 1);
        assert_eq!(last.lookup(&fp(1)), Some([7; 32]));
        assert_eq!(last.lookup(&fp(2)), None);
    }

    #[test]
    fn recent_files_are_not_cached() {
        let mut c = StatCache::default();
        c.insert(fp(1), [7; 32], 100);
        assert!(c.added.is_empty());
    }
}
