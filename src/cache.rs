//! The stat cache: (device, inode, size, mtime, ctime) of a stock file →
//! BLAKE3 of its content, so an unchanged file is never read again.
//!
//! It is derivable: a missing, truncated or corrupt cache is ignored and
//! rebuilt, and it never changes a result. A file whose ctime is not safely
//! older than the scan that hashed it is not cached (the same-timestamp race:
//! a write within the clock's granularity would keep the old stamps).
//! Format: a magic line, fixed-size little-endian records, then a BLAKE3 of
//! everything before it.

use std::collections::HashMap;

use crate::error::Result;
use crate::fsops::Dir;

const MAGIC: &[u8; 8] = b"SVCDUC1\n";
const CACHE_FILE: &str = "stat-cache.bin";
const RECORD: usize = 8 * 6 + 4 * 2 + 32;

/// What identifies a file's content without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime: (i64, u32),
    pub ctime: (i64, u32),
}

impl Fingerprint {
    pub fn of(st: &rustix::fs::Stat) -> Fingerprint {
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

#[derive(Debug, Default)]
pub struct StatCache {
    map: HashMap<(u64, u64), (Fingerprint, [u8; 32])>,
    dirty: bool,
}

impl StatCache {
    /// Loads the cache from `<state>/cache/`; any problem gives an empty cache.
    pub fn load(cache_dir: Option<&Dir>) -> StatCache {
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
        StatCache::decode(&bytes).unwrap_or_default()
    }

    fn decode(bytes: &[u8]) -> Option<StatCache> {
        let body_len = bytes.len().checked_sub(32)?;
        let (body, sum) = bytes.split_at(body_len);
        if blake3::hash(body).as_bytes() != sum || !body.starts_with(MAGIC) {
            return None;
        }
        let records = &body[MAGIC.len()..];
        if records.len() % RECORD != 0 {
            return None;
        }
        let mut map = HashMap::with_capacity(records.len() / RECORD);
        for r in records.chunks_exact(RECORD) {
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
            let _ = u64_at(40); // reserved
            map.insert((fp.dev, fp.ino), (fp, hash));
        }
        Some(StatCache { map, dirty: false })
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(MAGIC.len() + self.map.len() * RECORD + 32);
        out.extend_from_slice(MAGIC);
        for (fp, hash) in self.map.values() {
            out.extend_from_slice(&fp.dev.to_le_bytes());
            out.extend_from_slice(&fp.ino.to_le_bytes());
            out.extend_from_slice(&fp.size.to_le_bytes());
            out.extend_from_slice(&(fp.mtime.0 as u64).to_le_bytes());
            out.extend_from_slice(&(fp.ctime.0 as u64).to_le_bytes());
            out.extend_from_slice(&0u64.to_le_bytes());
            out.extend_from_slice(&fp.mtime.1.to_le_bytes());
            out.extend_from_slice(&fp.ctime.1.to_le_bytes());
            out.extend_from_slice(hash);
        }
        let sum = blake3::hash(&out);
        out.extend_from_slice(sum.as_bytes());
        out
    }

    /// The cached hash of a file, if its fingerprint is unchanged.
    pub fn lookup(&self, fp: &Fingerprint) -> Option<[u8; 32]> {
        self.map
            .get(&(fp.dev, fp.ino))
            .filter(|(cached, _)| cached == fp)
            .map(|(_, h)| *h)
    }

    /// Records a freshly computed hash, unless the file changed too recently
    /// to trust its timestamps (`scan_start` is when hashing began, seconds).
    pub fn insert(&mut self, fp: Fingerprint, hash: [u8; 32], scan_start: i64) {
        if fp.ctime.0 >= scan_start - 1 || fp.mtime.0 >= scan_start - 1 {
            return;
        }
        self.map.insert((fp.dev, fp.ino), (fp, hash));
        self.dirty = true;
    }

    /// Drops entries of files not seen in this scan, so the cache tracks the stock.
    pub fn retain_seen(&mut self, seen: &std::collections::HashSet<(u64, u64)>) {
        let before = self.map.len();
        self.map.retain(|k, _| seen.contains(k));
        self.dirty |= self.map.len() != before;
    }

    /// Writes the cache if it changed. Best effort: a failure only costs speed.
    pub fn save(&self, cache_dir: &Dir) -> Result<()> {
        if !self.dirty {
            return Ok(());
        }
        // Not fsynced: a cache lost in a crash is rebuilt; a torn one fails
        // its checksum and is ignored.
        let tmp = format!(".tmp-{CACHE_FILE}");
        cache_dir.remove_if_exists(&tmp)?;
        let mut file = cache_dir.create_file(&tmp, 0o600)?;
        std::io::Write::write_all(&mut file, &self.encode())
            .map_err(|e| crate::error::Error::create("write", cache_dir.join(&tmp), e))?;
        drop(file);
        cache_dir.rename(&tmp, cache_dir, CACHE_FILE)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        c.insert(fp(1), [7; 32], 1_000);
        c.insert(fp(2), [8; 32], 1_000);
        let bytes = c.encode();
        let back = StatCache::decode(&bytes).unwrap();
        assert_eq!(back.lookup(&fp(1)), Some([7; 32]));
        let mut changed = fp(1);
        changed.ctime.1 += 1;
        assert_eq!(back.lookup(&changed), None);
        let mut bad = bytes.clone();
        bad[10] ^= 1;
        assert!(StatCache::decode(&bad).is_none());
        assert!(StatCache::decode(&bytes[..bytes.len() - 1]).is_none());
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
        #![proptest_config(crate::mutate::config())]
        /// A damaged cache never panics; it decodes or is dropped (and
        /// `load` then starts from an empty cache).
        #[test]
        fn damaged_cache_decodes_or_is_dropped(bytes in crate::mutate::damaged(vec![sample()])) {
            let _ = StatCache::decode(&bytes).unwrap_or_default();
        }

        /// The same with the checksum fixed up, so the record parser sees the damage.
        #[test]
        fn damaged_but_resigned_cache_decodes_or_is_dropped(bytes in crate::mutate::damaged(vec![sample()])) {
            if let Some(c) = StatCache::decode(&resigned(&bytes)) {
                proptest::prop_assert!(c.len() <= bytes.len() / RECORD);
            }
        }
    }

    #[test]
    fn resigning_the_sample_keeps_it_valid() {
        assert_eq!(StatCache::decode(&resigned(&sample())).unwrap().len(), 4);
    }

    #[test]
    fn recent_files_are_not_cached() {
        let mut c = StatCache::default();
        c.insert(fp(1), [7; 32], 100);
        assert!(c.is_empty());
    }
}
