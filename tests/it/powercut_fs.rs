//! A power-cut file system for the tests (docs/durability.md#the-power-cut-model):
//! an in-memory FUSE file system, served by a thread of the test process
//! (fuser), that records what has been made durable and, at a chosen
//! mutating operation, cuts the power — that operation and every later one
//! fail with EIO, and the durable image is all that a remount shows.
//!
//! What is durable (the strict model):
//! - a file's data and attributes: as of its last fsync/fdatasync, or the
//!   last syncfs; a file never synced is empty, with the mode it was
//!   created with;
//! - a directory's entries (creates, mkdirs, symlinks, links, renames,
//!   unlinks): as of its last fsync, or the last syncfs. A rename is two
//!   entry changes: the new name is durable after an fsync of the
//!   destination, the removal of the old one after an fsync of the source
//!   (a file may come back under both names). A directory never has two
//!   names: where the strict rule would leave it under two, the name in the
//!   directory fsynced last wins (what a journaled rename gives);
//! - a symlink's target: with its directory entry — or, with
//!   [`Model::symlinks_need_syncfs`] (ext2, ext4 without a journal), only
//!   after a syncfs: before that, its entry is lost.
//!
//! A test build of the tool (`--features failpoints`) accepts its state
//! directory on FUSE; a release build refuses it (exit 77).
//! FUSE does not forward syncfs to its server, so a test build of the tool
//! reads the marker xattr [`SYNCFS_MARKER`] after each successful syncfs
//! (src/sys/failpoint.rs); the model takes that read as the syncfs.
//! Entry and attribute caching is off (TTL 0) and files are opened with
//! direct I/O, so every operation reaches the model.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};

/// Must match `SYNCFS_MARKER` in src/sys/failpoint.rs.
pub const SYNCFS_MARKER: &str = "user.svcdir-update.syncfs";

const ROOT: u64 = 1;
const TTL: Duration = Duration::ZERO;
const ENODATA: i32 = 61;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Content {
    File(Vec<u8>),
    Dir(BTreeMap<OsString, u64>),
    Symlink(OsString),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta {
    pub perm: u32,
    pub uid: u32,
    pub gid: u32,
}

#[derive(Clone, Debug)]
struct Node {
    content: Content,
    meta: Meta,
    /// The attributes it was created with: durable with its entry.
    born: Meta,
    mtime: SystemTime,
    /// Content, attributes and the snapshot's sequence number as of the
    /// last fsync or syncfs; `None` if never synced.
    durable: Option<(Content, Meta, u64)>,
}

impl Node {
    fn new(content: Content, meta: Meta) -> Node {
        Node {
            content,
            meta,
            born: meta,
            mtime: SystemTime::now(),
            durable: None,
        }
    }

    /// What survives a power cut of this inode itself.
    fn durable_content(&self) -> Content {
        match (&self.durable, &self.content) {
            (Some((c, _, _)), _) => c.clone(),
            (None, Content::File(_)) => Content::File(Vec::new()),
            (None, Content::Dir(_)) => Content::Dir(BTreeMap::new()),
            (None, Content::Symlink(t)) => Content::Symlink(t.clone()),
        }
    }
}

/// The file system's state and its durable shadow.
#[derive(Debug)]
pub struct Model {
    nodes: HashMap<u64, Node>,
    next_ino: u64,
    seq: u64,
    /// Mutating operations seen since the last [`Model::arm`].
    pub ops: u64,
    cut_at: Option<u64>,
    /// The operation the power was cut at, once it was.
    pub cut: Option<String>,
    /// ext2 / ext4-without-journal: a new symlink is durable only after a
    /// syncfs (a directory fsync writes the entry, not the inode).
    pub symlinks_need_syncfs: bool,
    /// Every mutating operation, when recording (to name the cut points).
    pub trace: Option<Vec<String>>,
}

type Res<T> = Result<T, Errno>;

impl Model {
    /// An empty, durable file system whose root is owned by root, 0755.
    pub fn new() -> Model {
        let meta = Meta {
            perm: 0o755,
            uid: 0,
            gid: 0,
        };
        let mut root = Node::new(Content::Dir(BTreeMap::new()), meta);
        root.durable = Some((root.content.clone(), meta, 0));
        Model {
            nodes: HashMap::from([(ROOT, root)]),
            next_ino: ROOT + 1,
            seq: 1,
            ops: 0,
            cut_at: None,
            cut: None,
            symlinks_need_syncfs: false,
            trace: None,
        }
    }

    /// Counts operations from zero; cuts the power before the `at`-th
    /// mutating one (1-based), or never.
    pub fn arm(&mut self, at: Option<u64>) {
        self.ops = 0;
        self.cut_at = at;
        self.cut = None;
    }

    /// Counts a mutating operation; the power is cut before it when its
    /// number is the armed one. After a cut, nothing succeeds.
    fn mutate(&mut self, what: impl FnOnce(&Model) -> String) -> Res<()> {
        if self.cut.is_some() {
            return Err(Errno::EIO);
        }
        self.ops += 1;
        if Some(self.ops) == self.cut_at {
            self.cut = Some(what(self));
            return Err(Errno::EIO);
        }
        if self.trace.is_some() {
            let line = what(self);
            self.trace.get_or_insert_default().push(line);
        }
        Ok(())
    }

    fn alive(&self) -> Res<()> {
        if self.cut.is_some() {
            Err(Errno::EIO)
        } else {
            Ok(())
        }
    }

    fn node(&self, ino: u64) -> Res<&Node> {
        self.nodes.get(&ino).ok_or(Errno::ENOENT)
    }

    fn node_mut(&mut self, ino: u64) -> Res<&mut Node> {
        self.nodes.get_mut(&ino).ok_or(Errno::ENOENT)
    }

    fn entries(&self, dir: u64) -> Res<&BTreeMap<OsString, u64>> {
        match &self.node(dir)?.content {
            Content::Dir(e) => Ok(e),
            _ => Err(Errno::ENOTDIR),
        }
    }

    fn entries_mut(&mut self, dir: u64) -> Res<&mut BTreeMap<OsString, u64>> {
        let node = self.node_mut(dir)?;
        node.mtime = SystemTime::now();
        match &mut node.content {
            Content::Dir(e) => Ok(e),
            _ => Err(Errno::ENOTDIR),
        }
    }

    pub fn lookup(&self, parent: u64, name: &OsStr) -> Res<u64> {
        self.alive()?;
        self.entries(parent)?
            .get(name)
            .copied()
            .ok_or(Errno::ENOENT)
    }

    fn add(&mut self, parent: u64, name: &OsStr, content: Content, meta: Meta) -> Res<u64> {
        if self.entries(parent)?.contains_key(name) {
            return Err(Errno::EEXIST);
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        self.nodes.insert(ino, Node::new(content, meta));
        self.entries_mut(parent)?.insert(name.to_owned(), ino);
        Ok(ino)
    }

    pub fn mkdir(&mut self, parent: u64, name: &OsStr, meta: Meta) -> Res<u64> {
        self.mutate(|_| format!("mkdir {}", name.to_string_lossy()))?;
        self.add(parent, name, Content::Dir(BTreeMap::new()), meta)
    }

    pub fn create(&mut self, parent: u64, name: &OsStr, meta: Meta) -> Res<u64> {
        self.mutate(|_| format!("create {}", name.to_string_lossy()))?;
        self.add(parent, name, Content::File(Vec::new()), meta)
    }

    pub fn symlink(&mut self, parent: u64, name: &OsStr, target: &Path, meta: Meta) -> Res<u64> {
        self.mutate(|_| format!("symlink {}", name.to_string_lossy()))?;
        let target = target.as_os_str().to_owned();
        self.add(parent, name, Content::Symlink(target), meta)
    }

    pub fn link(&mut self, ino: u64, parent: u64, name: &OsStr) -> Res<()> {
        self.mutate(|_| format!("link {}", name.to_string_lossy()))?;
        if matches!(self.node(ino)?.content, Content::Dir(_)) {
            return Err(Errno::EPERM);
        }
        if self.entries(parent)?.contains_key(name) {
            return Err(Errno::EEXIST);
        }
        self.entries_mut(parent)?.insert(name.to_owned(), ino);
        Ok(())
    }

    pub fn unlink(&mut self, parent: u64, name: &OsStr) -> Res<()> {
        self.mutate(|_| format!("unlink {}", name.to_string_lossy()))?;
        let ino = self.lookup(parent, name)?;
        if matches!(self.node(ino)?.content, Content::Dir(_)) {
            return Err(Errno::EISDIR);
        }
        self.entries_mut(parent)?.remove(name);
        Ok(())
    }

    pub fn rmdir(&mut self, parent: u64, name: &OsStr) -> Res<()> {
        self.mutate(|_| format!("rmdir {}", name.to_string_lossy()))?;
        let ino = self.lookup(parent, name)?;
        if !self.entries(ino)?.is_empty() {
            return Err(Errno::ENOTEMPTY);
        }
        self.entries_mut(parent)?.remove(name);
        Ok(())
    }

    pub fn rename(
        &mut self,
        parent: u64,
        name: &OsStr,
        to: u64,
        to_name: &OsStr,
        noreplace: bool,
    ) -> Res<()> {
        self.mutate(|_| {
            format!(
                "rename {} -> {}",
                name.to_string_lossy(),
                to_name.to_string_lossy()
            )
        })?;
        let ino = self.lookup(parent, name)?;
        if let Some(&old) = self.entries(to)?.get(to_name) {
            if noreplace {
                return Err(Errno::EEXIST);
            }
            if old == ino {
                return Ok(());
            }
            match (&self.node(ino)?.content, &self.node(old)?.content) {
                (Content::Dir(_), Content::Dir(e)) if !e.is_empty() => {
                    return Err(Errno::ENOTEMPTY);
                }
                (Content::Dir(_), Content::Dir(_)) => {}
                (Content::Dir(_), _) => return Err(Errno::ENOTDIR),
                (_, Content::Dir(_)) => return Err(Errno::EISDIR),
                _ => {}
            }
        }
        self.entries_mut(parent)?.remove(name);
        self.entries_mut(to)?.insert(to_name.to_owned(), ino);
        Ok(())
    }

    /// `RENAME_EXCHANGE`: both names exist before and after, swapped.
    pub fn exchange(&mut self, parent: u64, name: &OsStr, to: u64, to_name: &OsStr) -> Res<()> {
        self.mutate(|_| {
            format!(
                "exchange {} <-> {}",
                name.to_string_lossy(),
                to_name.to_string_lossy()
            )
        })?;
        let a = self.lookup(parent, name)?;
        let b = self.lookup(to, to_name)?;
        self.entries_mut(parent)?.insert(name.to_owned(), b);
        self.entries_mut(to)?.insert(to_name.to_owned(), a);
        Ok(())
    }

    pub fn write(&mut self, ino: u64, offset: u64, data: &[u8]) -> Res<()> {
        self.mutate(|_| format!("write {ino} ({} bytes at {offset})", data.len()))?;
        let node = self.node_mut(ino)?;
        node.mtime = SystemTime::now();
        let Content::File(bytes) = &mut node.content else {
            return Err(Errno::EISDIR);
        };
        let end = offset as usize + data.len();
        if bytes.len() < end {
            bytes.resize(end, 0);
        }
        bytes[offset as usize..end].copy_from_slice(data);
        Ok(())
    }

    pub fn setattr(
        &mut self,
        ino: u64,
        perm: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
    ) -> Res<()> {
        if perm.is_none() && uid.is_none() && gid.is_none() && size.is_none() {
            // Only times: not modelled (nothing in the state depends on them).
            return self.alive();
        }
        self.mutate(|_| format!("setattr {ino}"))?;
        let node = self.node_mut(ino)?;
        if let Some(p) = perm {
            node.meta.perm = p & 0o7777;
        }
        if let Some(u) = uid {
            node.meta.uid = u;
        }
        if let Some(g) = gid {
            node.meta.gid = g;
        }
        if let Some(size) = size {
            let Content::File(bytes) = &mut node.content else {
                return Err(Errno::EISDIR);
            };
            bytes.resize(size as usize, 0);
        }
        Ok(())
    }

    /// fsync, fdatasync or fsync of a directory: this inode is durable.
    pub fn fsync(&mut self, ino: u64) -> Res<()> {
        self.mutate(|m| format!("fsync {}", m.describe(ino)))?;
        self.seq += 1;
        let seq = self.seq;
        let node = self.node_mut(ino)?;
        let durable = (node.content.clone(), node.meta, seq);
        node.durable = Some(durable);
        Ok(())
    }

    /// syncfs: everything is durable.
    pub fn syncfs(&mut self) -> Res<()> {
        self.mutate(|_| "syncfs".to_string())?;
        self.seq += 1;
        let seq = self.seq;
        for node in self.nodes.values_mut() {
            node.durable = Some((node.content.clone(), node.meta, seq));
        }
        Ok(())
    }

    /// A short name for an inode in traces: one of its names.
    fn describe(&self, ino: u64) -> String {
        for node in self.nodes.values() {
            if let Content::Dir(e) = &node.content {
                if let Some((name, _)) = e.iter().find(|&(_, &i)| i == ino) {
                    return name.to_string_lossy().into_owned();
                }
            }
        }
        if ino == ROOT {
            "<state>".into()
        } else {
            format!("#{ino}")
        }
    }

    /// What a remount after a power cut shows: a new model made only of
    /// what was durable, itself entirely durable.
    pub fn durable_image(&self) -> Model {
        // The durable entries of every directory, from the root, with the
        // sequence number of the snapshot they come from.
        let durable_entries = |ino: u64| -> (BTreeMap<OsString, u64>, u64) {
            let node = &self.nodes[&ino];
            let seq = node.durable.as_ref().map_or(0, |d| d.2);
            match node.durable_content() {
                Content::Dir(e) => (e, seq),
                _ => (BTreeMap::new(), seq),
            }
        };
        let keeps_symlink = |ino: u64| {
            let node = &self.nodes[&ino];
            !(self.symlinks_need_syncfs
                && matches!(node.content, Content::Symlink(_))
                && node.durable.is_none())
        };
        // Pass 1: every durable edge reachable from the root.
        let mut edges: Vec<(u64, OsString, u64, u64)> = Vec::new();
        let mut seen = BTreeSet::from([ROOT]);
        let mut queue = vec![ROOT];
        while let Some(dir) = queue.pop() {
            let (entries, seq) = durable_entries(dir);
            for (name, ino) in entries {
                if !self.nodes.contains_key(&ino) || !keeps_symlink(ino) {
                    continue;
                }
                edges.push((dir, name, ino, seq));
                if matches!(self.nodes[&ino].content, Content::Dir(_)) && seen.insert(ino) {
                    queue.push(ino);
                }
            }
        }
        // A directory keeps one name: the one fsynced last.
        let mut winner: HashMap<u64, (u64, u64, OsString)> = HashMap::new();
        for (dir, name, ino, seq) in &edges {
            if matches!(self.nodes[ino].content, Content::Dir(_)) {
                let better = winner.get(ino).is_none_or(|(s, _, _)| *seq > *s);
                if better {
                    winner.insert(*ino, (*seq, *dir, name.clone()));
                }
            }
        }
        let mut children: HashMap<u64, BTreeMap<OsString, u64>> = HashMap::new();
        for (dir, name, ino, _) in edges {
            let is_dir = matches!(self.nodes[&ino].content, Content::Dir(_));
            if is_dir && (winner[&ino].1 != dir || winner[&ino].2 != name) {
                continue;
            }
            children.entry(dir).or_default().insert(name, ino);
        }
        // Pass 2: what is reachable through the kept edges.
        let mut image = Model::new();
        image.symlinks_need_syncfs = self.symlinks_need_syncfs;
        image.nodes.clear();
        let mut queue = vec![ROOT];
        let mut done = BTreeSet::new();
        while let Some(ino) = queue.pop() {
            if !done.insert(ino) {
                continue;
            }
            let node = &self.nodes[&ino];
            let meta = node.durable.as_ref().map_or(node.born, |d| d.1);
            let content = match node.durable_content() {
                Content::Dir(_) => {
                    let kept = children.remove(&ino).unwrap_or_default();
                    queue.extend(kept.values().copied());
                    Content::Dir(kept)
                }
                other => other,
            };
            let mut fresh = Node::new(content, meta);
            fresh.durable = Some((fresh.content.clone(), meta, 0));
            image.nodes.insert(ino, fresh);
        }
        image.next_ino = self.next_ino;
        image
    }

    /// Everything made durable (as writeback would, given time), and a copy
    /// of it: the starting image of every cut of a sweep.
    pub fn settled(&mut self) -> Model {
        self.arm(None);
        self.syncfs()
            .unwrap_or_else(|e| panic!("syncfs of the model: {e:?}"));
        self.durable_image()
    }

    /// The link count of `ino`: a directory's `.`, `..` and subdirectories;
    /// 1 for anything else (nothing in the tool reads it, and counting the
    /// names of a file would cost a walk of every directory).
    fn nlink(&self, ino: u64) -> u32 {
        match self.node(ino).map(|n| &n.content) {
            Ok(Content::Dir(e)) => {
                let subdirs = e
                    .values()
                    .filter(|i| matches!(self.nodes[i].content, Content::Dir(_)))
                    .count();
                2 + subdirs as u32
            }
            _ => 1,
        }
    }

    fn attr(&self, ino: u64) -> Res<FileAttr> {
        let node = self.node(ino)?;
        let (kind, size) = match &node.content {
            Content::File(b) => (FileType::RegularFile, b.len() as u64),
            Content::Dir(e) => (FileType::Directory, 4096 + e.len() as u64),
            Content::Symlink(t) => (FileType::Symlink, t.len() as u64),
        };
        Ok(FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: node.mtime,
            mtime: node.mtime,
            ctime: node.mtime,
            crtime: SystemTime::UNIX_EPOCH,
            kind,
            perm: node.meta.perm as u16,
            nlink: self.nlink(ino),
            uid: node.meta.uid,
            gid: node.meta.gid,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        })
    }

    /// The tree as path → description, for the model's own tests.
    pub fn listing(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let mut queue = vec![(ROOT, PathBuf::new())];
        while let Some((ino, path)) = queue.pop() {
            let Ok(entries) = self.entries(ino) else {
                continue;
            };
            for (name, child) in entries {
                let p = path.join(name);
                let what = match &self.nodes[child].content {
                    Content::File(b) => format!("file {}", String::from_utf8_lossy(b)),
                    Content::Dir(_) => {
                        queue.push((*child, p.clone()));
                        "dir".to_string()
                    }
                    Content::Symlink(t) => format!("link {}", t.to_string_lossy()),
                };
                out.insert(p.display().to_string(), what);
            }
        }
        out
    }
}

/// The FUSE face of a shared [`Model`].
pub struct PowerCutFs {
    pub model: Arc<Mutex<Model>>,
}

fn meta_of(req: &Request, mode: u32, umask: u32) -> Meta {
    Meta {
        perm: mode & !umask & 0o7777,
        uid: req.uid(),
        gid: req.gid(),
    }
}

impl PowerCutFs {
    fn lock(&self) -> MutexGuard<'_, Model> {
        self.model.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn reply_entry(m: &Model, ino: Res<u64>, reply: ReplyEntry) {
        match ino.and_then(|i| m.attr(i)) {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn reply_empty(r: Res<()>, reply: ReplyEmpty) {
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }
}

impl Filesystem for PowerCutFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let m = self.lock();
        let ino = m.lookup(parent.0, name);
        Self::reply_entry(&m, ino, reply);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let m = self.lock();
        match m.alive().and_then(|()| m.attr(ino.0)) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut m = self.lock();
        match m
            .setattr(ino.0, mode, uid, gid, size)
            .and_then(|()| m.attr(ino.0))
        {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let m = self.lock();
        match m.alive().and_then(|()| m.node(ino.0)).map(|n| &n.content) {
            Ok(Content::Symlink(t)) => reply.data(t.as_encoded_bytes()),
            Ok(_) => reply.error(Errno::EINVAL),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let mut m = self.lock();
        let ino = m.mkdir(parent.0, name, meta_of(req, mode, umask));
        Self::reply_entry(&m, ino, reply);
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        Self::reply_empty(self.lock().unlink(parent.0, name), reply);
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        Self::reply_empty(self.lock().rmdir(parent.0, name), reply);
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let mut m = self.lock();
        let ino = m.symlink(parent.0, link_name, target, meta_of(req, 0o777, 0));
        Self::reply_entry(&m, ino, reply);
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        if flags.contains(RenameFlags::RENAME_WHITEOUT) {
            return reply.error(Errno::EINVAL);
        }
        if flags.contains(RenameFlags::RENAME_EXCHANGE) {
            let r = self.lock().exchange(parent.0, name, newparent.0, newname);
            return Self::reply_empty(r, reply);
        }
        let noreplace = flags.contains(RenameFlags::RENAME_NOREPLACE);
        let r = self
            .lock()
            .rename(parent.0, name, newparent.0, newname, noreplace);
        Self::reply_empty(r, reply);
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let mut m = self.lock();
        let r = m.link(ino.0, newparent.0, newname).map(|()| ino.0);
        Self::reply_entry(&m, r, reply);
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let mut m = self.lock();
        let truncate = flags.0 & libc_o_trunc() != 0;
        let r = if truncate {
            m.setattr(ino.0, None, None, None, Some(0))
        } else {
            m.alive().and_then(|()| m.node(ino.0).map(|_| ()))
        };
        match r {
            Ok(()) => reply.opened(FileHandle(0), FopenFlags::FOPEN_DIRECT_IO),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let m = self.lock();
        match m.alive().and_then(|()| m.node(ino.0)).map(|n| &n.content) {
            Ok(Content::File(b)) => {
                let start = (offset as usize).min(b.len());
                let end = (start + size as usize).min(b.len());
                reply.data(&b[start..end]);
            }
            Ok(_) => reply.error(Errno::EISDIR),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.lock().write(ino.0, offset, data) {
            Ok(()) => reply.written(data.len() as u32),
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        Self::reply_empty(self.lock().fsync(ino.0), reply);
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let m = self.lock();
        match m.alive().and_then(|()| m.entries(ino.0).map(|_| ())) {
            Ok(()) => reply.opened(FileHandle(0), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let m = self.lock();
        let entries = match m.alive().and_then(|()| m.entries(ino.0)) {
            Ok(e) => e,
            Err(e) => return reply.error(e),
        };
        let mut all: Vec<(u64, FileType, OsString)> = vec![
            (ino.0, FileType::Directory, ".".into()),
            (ino.0, FileType::Directory, "..".into()),
        ];
        for (name, &child) in entries {
            let kind = match m.nodes[&child].content {
                Content::File(_) => FileType::RegularFile,
                Content::Dir(_) => FileType::Directory,
                Content::Symlink(_) => FileType::Symlink,
            };
            all.push((child, kind, name.clone()));
        }
        for (i, (child, kind, name)) in all.into_iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(child), (i + 1) as u64, kind, &name) {
                break;
            }
        }
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        Self::reply_empty(self.lock().fsync(ino.0), reply);
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        reply.statfs(1 << 20, 1 << 19, 1 << 19, 1 << 20, 1 << 19, 4096, 255, 4096);
    }

    fn getxattr(&self, _req: &Request, _ino: INodeNo, name: &OsStr, _size: u32, reply: ReplyXattr) {
        let mut m = self.lock();
        if name == SYNCFS_MARKER {
            if let Err(e) = m.syncfs() {
                return reply.error(e);
            }
        }
        reply.error(Errno::from_i32(ENODATA));
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        reply.ok();
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let mut m = self.lock();
        let r = match m.lookup(parent.0, name) {
            Ok(_) if flags & libc_o_excl() != 0 => Err(Errno::EEXIST),
            Ok(ino) if flags & libc_o_trunc() != 0 => {
                m.setattr(ino, None, None, None, Some(0)).map(|()| ino)
            }
            Ok(ino) => Ok(ino),
            Err(_) => m.create(parent.0, name, meta_of(req, mode, umask)),
        };
        match r.and_then(|i| m.attr(i)) {
            Ok(attr) => reply.created(
                &TTL,
                &attr,
                Generation(0),
                FileHandle(0),
                FopenFlags::FOPEN_DIRECT_IO,
            ),
            Err(e) => reply.error(e),
        }
    }
}

const fn libc_o_trunc() -> i32 {
    0o1000
}

const fn libc_o_excl() -> i32 {
    0o200
}

/// A mounted [`Model`]: unmounted when dropped.
pub struct Mounted {
    pub model: Arc<Mutex<Model>>,
    pub at: PathBuf,
    session: Option<fuser::BackgroundSession>,
}

impl Mounted {
    /// Mounts `model` on the (empty) directory `at`.
    pub fn mount(model: Model, at: &Path) -> Mounted {
        detach_leftovers(at);
        let model = Arc::new(Mutex::new(model));
        let mut config = fuser::Config::default();
        config.mount_options = vec![
            fuser::MountOption::FSName("powercut".into()),
            fuser::MountOption::Dev,
            fuser::MountOption::Suid,
        ];
        config.acl = fuser::SessionACL::All;
        let fs = PowerCutFs {
            model: Arc::clone(&model),
        };
        let session = fuser::spawn_mount(fs, at, &config).unwrap_or_else(|e| {
            panic!("mount the power-cut model on {}: {e}", at.to_string_lossy())
        });
        Mounted {
            model,
            at: at.to_path_buf(),
            session: Some(session),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, Model> {
        self.model.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Cuts the power now (if the armed point did not already) and
    /// remounts the durable image; returns the operation the cut was at.
    pub fn cut_and_remount(&mut self) -> Option<String> {
        let (image, cut) = {
            let mut m = self.lock();
            let cut = m.cut.clone();
            if cut.is_none() {
                m.cut = Some("<after the last operation>".into());
            }
            (m.durable_image(), cut)
        };
        self.unmount();
        *self = Mounted::mount(image, &self.at);
        cut
    }

    fn unmount(&mut self) {
        if let Some(session) = self.session.take() {
            match session.umount_and_join() {
                Ok(()) => {}
                // Another test thread's child can hold the mount for a
                // moment (a fork before its exec); the durable image is
                // already taken, so the old mount is detached lazily below
                // and vanishes when that child lets go.
                Err(e) if e.raw_os_error() == Some(16) => {}
                Err(e) => panic!("unmount {}: {e}", self.at.to_string_lossy()),
            }
        }
        detach_leftovers(&self.at);
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        // Without a session it was unmounted already (and a new mount on
        // the same directory, made by `cut_and_remount`, is not ours).
        if let Some(session) = self.session.take() {
            let _ = session.umount_and_join();
            detach_leftovers(&self.at);
        }
    }
}

/// Whether a file system is mounted on `at` (/proc/self/mountinfo).
fn is_mount_point(at: &Path) -> bool {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|m| Path::new(m) == at)
}

/// Lazily unmounts whatever fuser left on `at` (it skips an unmount when it
/// believes the connection already ended), so that no dead mount outlives
/// a test or lies under the next one.
fn detach_leftovers(at: &Path) {
    for _ in 0..4 {
        if !is_mount_point(at) {
            return;
        }
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(at)
            .status();
    }
}

/// Whether this machine can run the model: root, /dev/fuse, and the
/// fusermount3 helper from `fuse3`.
pub fn require_fuse() -> bool {
    crate::harness::require_tool("fusermount3", "fuse3")
        && std::path::Path::new("/dev/fuse").exists()
}

#[cfg(test)]
mod model_tests {
    use super::*;

    const ME: Meta = Meta {
        perm: 0o644,
        uid: 0,
        gid: 0,
    };

    fn n(s: &str) -> &OsStr {
        OsStr::new(s)
    }

    /// A file `name` with `data`, written and (optionally) fsynced.
    fn file(m: &mut Model, dir: u64, name: &str, data: &str, sync: bool) -> u64 {
        let ino = m.create(dir, n(name), ME).unwrap();
        m.write(ino, 0, data.as_bytes()).unwrap();
        if sync {
            m.fsync(ino).unwrap();
        }
        ino
    }

    #[test]
    fn nothing_unsynced_survives_a_cut() {
        let mut m = Model::new();
        file(&mut m, ROOT, "a", "x", true);
        let d = m.mkdir(ROOT, n("d"), ME).unwrap();
        m.symlink(ROOT, n("l"), Path::new("t"), ME).unwrap();
        file(&mut m, d, "b", "y", true);
        assert!(
            m.durable_image().listing().is_empty(),
            "no directory was fsynced"
        );
    }

    #[test]
    fn an_fsynced_directory_keeps_its_entries_and_an_unsynced_file_is_empty() {
        let mut m = Model::new();
        file(&mut m, ROOT, "synced", "x", true);
        file(&mut m, ROOT, "unsynced", "y", false);
        m.symlink(ROOT, n("l"), Path::new("t"), ME).unwrap();
        m.fsync(ROOT).unwrap();
        let image = m.durable_image().listing();
        assert_eq!(image["synced"], "file x");
        assert_eq!(image["unsynced"], "file ", "data never fsynced");
        assert_eq!(image["l"], "link t");
    }

    #[test]
    fn an_unsynced_rename_is_lost() {
        let mut m = Model::new();
        file(&mut m, ROOT, "tmp", "new", true);
        file(&mut m, ROOT, "live", "old", true);
        m.fsync(ROOT).unwrap();
        m.rename(ROOT, n("tmp"), ROOT, n("live"), false).unwrap();
        let image = m.durable_image().listing();
        assert_eq!(image["live"], "file old");
        assert_eq!(image["tmp"], "file new");
        m.fsync(ROOT).unwrap();
        let image = m.durable_image().listing();
        assert_eq!(image["live"], "file new");
        assert!(!image.contains_key("tmp"));
    }

    #[test]
    fn a_rename_across_directories_is_durable_per_directory() {
        let mut m = Model::new();
        let store = m.mkdir(ROOT, n("store"), ME).unwrap();
        file(&mut m, ROOT, "tmp", "obj", true);
        m.fsync(ROOT).unwrap();
        m.fsync(store).unwrap();
        m.rename(ROOT, n("tmp"), store, n("obj"), true).unwrap();
        // Only the destination fsynced: the file has both names.
        m.fsync(store).unwrap();
        let image = m.durable_image().listing();
        assert_eq!(image["store/obj"], "file obj");
        assert_eq!(
            image["tmp"], "file obj",
            "the strict model keeps the old name"
        );
        m.fsync(ROOT).unwrap();
        assert!(!m.durable_image().listing().contains_key("tmp"));
    }

    #[test]
    fn a_directory_keeps_one_name_the_one_fsynced_last() {
        let mut m = Model::new();
        let gens = m.mkdir(ROOT, n("generations"), ME).unwrap();
        let tmp = m.mkdir(ROOT, n(".tmp-generation-2"), ME).unwrap();
        file(&mut m, tmp, "web", "w", true);
        m.fsync(tmp).unwrap();
        m.fsync(gens).unwrap();
        m.fsync(ROOT).unwrap();
        m.rename(ROOT, n(".tmp-generation-2"), gens, n("2"), true)
            .unwrap();
        m.fsync(gens).unwrap();
        let image = m.durable_image().listing();
        assert_eq!(image["generations/2/web"], "file w");
        assert!(!image.contains_key(".tmp-generation-2"), "{image:?}");
    }

    #[test]
    fn syncfs_makes_everything_durable_and_symlinks_may_need_it() {
        let mut m = Model::new();
        m.symlinks_need_syncfs = true;
        m.symlink(ROOT, n("live"), Path::new("generations/1"), ME)
            .unwrap();
        m.fsync(ROOT).unwrap();
        assert!(
            m.durable_image().listing().is_empty(),
            "on ext2 a directory fsync does not write the symlink"
        );
        file(&mut m, ROOT, "f", "data", false);
        m.syncfs().unwrap();
        let image = m.durable_image().listing();
        assert_eq!(image["live"], "link generations/1");
        assert_eq!(image["f"], "file data");
    }

    #[test]
    fn the_armed_operation_and_every_later_one_fail() {
        let mut m = Model::new();
        m.arm(Some(2));
        m.create(ROOT, n("a"), ME).unwrap();
        assert_eq!(m.create(ROOT, n("b"), ME), Err(Errno::EIO));
        assert_eq!(m.cut.as_deref(), Some("create b"));
        assert_eq!(m.lookup(ROOT, n("a")), Err(Errno::EIO));
        assert_eq!(m.fsync(ROOT), Err(Errno::EIO));
        assert_eq!(m.ops, 2);
    }

    #[test]
    fn unsynced_attributes_are_the_ones_a_file_was_created_with() {
        let mut m = Model::new();
        let ino = file(&mut m, ROOT, "run", "#!/bin/sh", false);
        m.fsync(ROOT).unwrap();
        m.setattr(ino, Some(0o755), Some(7), None, None).unwrap();
        let image = m.durable_image();
        let attr = image.attr(image.lookup(ROOT, n("run")).unwrap()).unwrap();
        assert_eq!((attr.perm, attr.uid), (0o644, 0));
        m.fsync(ino).unwrap();
        let image = m.durable_image();
        let attr = image.attr(image.lookup(ROOT, n("run")).unwrap()).unwrap();
        assert_eq!((attr.perm, attr.uid), (0o755, 7));
    }
}

/// The model served through the kernel: what a process sees, and that a
/// cut and remount keeps exactly what it fsynced.
#[test]
fn a_mounted_model_loses_what_was_not_synced_and_keeps_what_was() {
    if !require_fuse() {
        return;
    }
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let mut fs = Mounted::mount(Model::new(), dir.path());
    let p = |s: &str| dir.path().join(s);
    let mut f = std::fs::File::create(p("synced")).unwrap();
    f.write_all(b"kept").unwrap();
    f.sync_all().unwrap();
    drop(f);
    std::fs::set_permissions(p("synced"), std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(p("unsynced"), b"lost").unwrap();
    std::fs::create_dir(p("d")).unwrap();
    std::os::unix::fs::symlink("synced", p("link")).unwrap();
    std::fs::File::open(dir.path()).unwrap().sync_all().unwrap();
    std::fs::rename(p("link"), p("renamed")).unwrap();
    assert_eq!(std::fs::read(p("renamed")).unwrap(), b"kept");
    let cut = fs.cut_and_remount();
    assert_eq!(cut, None, "nothing was armed");
    let names: BTreeSet<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        names,
        BTreeSet::from(["synced", "unsynced", "d", "link"].map(String::from))
    );
    assert_eq!(std::fs::read(p("synced")).unwrap(), b"kept");
    assert_eq!(
        std::fs::read(p("unsynced")).unwrap(),
        b"",
        "data never fsynced"
    );
    assert_eq!(std::fs::read_link(p("link")).unwrap(), Path::new("synced"));
    // The chmod came after the fsync: the file has its first mode.
    let mode = std::fs::metadata(p("synced")).unwrap().permissions().mode();
    assert_ne!(mode & 0o777, 0o600);
    // A cut at an armed operation: it and everything after fail with EIO.
    fs.lock().arm(Some(2));
    std::fs::write(p("one"), b"1").unwrap_err();
    assert!(fs.lock().cut.is_some());
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap_err().raw_os_error(),
        Some(5)
    );
    drop(fs);
}
