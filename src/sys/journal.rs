//! Whether an ext2/3/4 file system keeps a new symlink with an fsync of its
//! directory: only when it has a jbd2 journal (the directory fsync commits
//! the transaction that created the symlink) and is not mounted
//! `data=writeback` (a long symlink's target block is then not ordered
//! before the commit). ext2, ext3 and ext4 share one `statfs` magic, so this
//! asks the kernel's own reports: `/sys/dev/block/<major>:<minor>/uevent`
//! names the device, `/proc/fs/jbd2/<device>-8` exists for an internal
//! journal, `/proc/fs/ext4/<device>/options` lists the data mode
//! (docs/durability.md#the-switch-and-symlinks). Reads only; anything it
//! cannot read answers "no", which costs a syncfs, never durability.

use std::path::Path;

/// The `statfs` magic of ext2, ext3 and ext4.
pub(crate) const EXT_MAGIC: i64 = 0xEF53;

/// Whether the ext2/3/4 file system on device `dev` (`st_dev`) has an
/// internal jbd2 journal and orders data (`data=ordered` or `journal`).
pub(crate) fn ext_journal_keeps_symlinks(dev: u64) -> bool {
    let (major, minor) = (rustix::fs::major(dev), rustix::fs::minor(dev));
    let Ok(uevent) = fs_err::read_to_string(format!("/sys/dev/block/{major}:{minor}/uevent"))
    else {
        return false;
    };
    let Some(name) = uevent.lines().find_map(|l| l.strip_prefix("DEVNAME=")) else {
        return false;
    };
    // jbd2 names an internal journal after its device and inode 8.
    if name.contains('/') || !Path::new(&format!("/proc/fs/jbd2/{name}-8")).exists() {
        return false;
    }
    match fs_err::read_to_string(format!("/proc/fs/ext4/{name}/options")) {
        Ok(options) => !options.lines().any(|l| l.trim() == "data=writeback"),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_that_is_not_there_has_no_journal() {
        assert!(!ext_journal_keeps_symlinks(rustix::fs::makedev(4095, 4095)));
    }
}
