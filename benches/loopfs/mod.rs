//! A file system of a given type made for the commit bench on a sparse
//! image file, loop-mounted on a directory beside it, and taken down
//! (unmounted, image and mount point removed) when the guard is dropped,
//! also when the bench panics. Needs root and the type's `mkfs`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A mounted loop image; dropping it unmounts it and removes the image.
pub struct LoopFs {
    image: PathBuf,
    mount: PathBuf,
    mounted: bool,
}

impl LoopFs {
    /// Makes `kind` (ext4, btrfs, xfs) on a sparse image of `bytes` in
    /// `dir` and mounts it; the reason as a sentence when that cannot be.
    pub fn make(kind: &str, dir: &Path, tag: &str, bytes: u64) -> Result<LoopFs, String> {
        if !rustix::process::geteuid().is_root() {
            return Err("not root: mounting a loop image needs root".into());
        }
        let mkfs = format!("mkfs.{kind}");
        let force = match kind {
            "ext4" => "-F",
            "btrfs" | "xfs" => "-f",
            _ => return Err(format!("unknown file system {kind:?} (ext4, btrfs, xfs)")),
        };
        if !installed(&mkfs) {
            return Err(format!("{mkfs} is not installed"));
        }
        let image = dir.join(format!("{kind}-{tag}.img"));
        let mount = dir.join(format!("mnt-{kind}-{tag}"));
        // A run killed before its guard ran leaves the mount behind.
        if run("mountpoint", &["-q".as_ref(), mount.as_os_str()]).is_ok() {
            let _ = run("umount", &[mount.as_os_str()]);
        }
        let mut guard = LoopFs {
            image,
            mount,
            mounted: false,
        };
        let file = std::fs::File::create(&guard.image)
            .map_err(|e| format!("cannot create {}: {e}", guard.image.display()))?;
        file.set_len(bytes)
            .map_err(|e| format!("cannot size {}: {e}", guard.image.display()))?;
        drop(file);
        std::fs::create_dir_all(&guard.mount)
            .map_err(|e| format!("cannot create {}: {e}", guard.mount.display()))?;
        // ext4 fixes its inodes at mkfs time, one per 16 KiB by default:
        // too few for copies of a tree of tiny files.
        let mut args: Vec<&std::ffi::OsStr> = vec!["-q".as_ref(), force.as_ref()];
        if kind == "ext4" {
            args.extend([std::ffi::OsStr::new("-i"), std::ffi::OsStr::new("4096")]);
        }
        args.push(guard.image.as_os_str());
        run(&mkfs, &args)?;
        run(
            "mount",
            &[
                "-o".as_ref(),
                "loop".as_ref(),
                guard.image.as_os_str(),
                guard.mount.as_os_str(),
            ],
        )?;
        guard.mounted = true;
        Ok(guard)
    }

    /// Where the file system is mounted.
    pub fn path(&self) -> &Path {
        &self.mount
    }
}

impl Drop for LoopFs {
    fn drop(&mut self) {
        if self.mounted {
            let m = self.mount.as_os_str();
            if let Err(e) = run("umount", &[m]) {
                eprintln!("bench: {e}; detaching it lazily");
                let _ = run("umount", &["-l".as_ref(), m]);
            }
        }
        let _ = std::fs::remove_dir(&self.mount);
        let _ = std::fs::remove_file(&self.image);
    }
}

/// Whether `program` is on `PATH` (or in /sbin, /usr/sbin, where mkfs lives).
pub fn installed(program: &str) -> bool {
    Command::new("sh")
        .args([
            "-c",
            &format!("PATH=$PATH:/sbin:/usr/sbin command -v {program}"),
        ])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs `program ARGS…`, its output captured; the failure as a sentence.
fn run(program: &str, args: &[&std::ffi::OsStr]) -> Result<(), String> {
    let out = Command::new(program)
        .args(args)
        .env(
            "PATH",
            format!(
                "{}:/usr/sbin:/sbin",
                std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into())
            ),
        )
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} {} failed ({}): {}",
            args.iter()
                .map(|a| a.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}
