//! plugins.conf and its drop-in directories, composed as systemd composes
//! unit drop-ins (`systemd.unit(5)`, `tmpfiles.d(5)`).
//!
//! On a firmware image one shared `/etc/openplc/plugins.conf` cannot work:
//! every plugin package would edit the same file, and on a read-only root an
//! operator could change nothing. So besides the main file the runtime reads
//! `*.conf` files, in the same OpenPLC line format, from [`DROPIN_DIRS`]
//! (lowest priority first): what packages install, what the image's builder
//! sets, what an operator changes on the writable `/var/lib`.
//!
//! - A drop-in in a higher-priority directory replaces the same-named file
//!   below it; a symlink to `/dev/null` or an empty file masks it away.
//! - Order: the main file first, then the drop-ins by file name (bytewise)
//!   across the directories, each in line order. A plugin's position decides
//!   its init/start order, as its line's position does in OpenPLC.
//! - Names are unique across all files; the capacity is shared.
//! - The main file may be absent when drop-ins exist.
//! - `root` (`--root DIR`) reads the directories under DIR, and absolute paths
//!   inside the files are taken under DIR too (the files say what the target
//!   sees). Relative paths are relative to the file's own directory.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::config::{Builder, LineError, PluginsConf, SourceState, unreadable};

/// The main plugins.conf, unless `--config` names another.
pub const DEFAULT_CONFIG: &str = "/etc/openplc/plugins.conf";

/// Drop-in directories, lowest priority first: packages (read-only), the
/// image's builder (read-only), the operator (writable, survives where
/// /var/lib does; applied by `systemctl reload`).
pub const DROPIN_DIRS: [&str; 3] = [
    "/usr/lib/openplc/plugins.conf.d",
    "/etc/openplc/plugins.conf.d",
    "/var/lib/openplc/plugins.conf.d",
];

/// `path` (absolute, as the target sees it) under `root`.
pub fn under_root(root: Option<&Path>, path: &str) -> PathBuf {
    match root {
        Some(r) => r.join(path.trim_start_matches('/')),
        None => PathBuf::from(path),
    }
}

/// The drop-in directories as read (under `root` when given).
pub fn dropin_dirs(root: Option<&Path>) -> [PathBuf; 3] {
    DROPIN_DIRS.map(|d| under_root(root, d))
}

/// One drop-in file that won its name.
struct DropIn {
    path: PathBuf,
    masked: bool,
}

/// Loads `main` and every drop-in: the merged configuration, or every problem
/// found (each naming its file and line). Nothing is half-applied: the caller
/// gets all of it or an error.
pub fn load(main: &Path, root: Option<&Path>) -> Result<PluginsConf, Vec<LineError>> {
    let mut b = Builder::new(main);
    b.root(root);
    let main_bytes = match std::fs::read(main) {
        Ok(bytes) => Some(bytes),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => {
            b.error(unreadable(main, &e));
            None
        }
    };

    // By file name: the highest-priority directory's file wins.
    let mut winners: BTreeMap<Vec<u8>, DropIn> = BTreeMap::new();
    let mut overridden: BTreeMap<Vec<u8>, Vec<PathBuf>> = BTreeMap::new();
    for dir in dropin_dirs(root) {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => {
                b.error(LineError {
                    file: dir.clone(),
                    line: 0,
                    field: None,
                    reason: format!("cannot read the drop-in directory: {e}"),
                });
                continue;
            }
        };
        let mut names: Vec<Vec<u8>> = Vec::new();
        for entry in entries {
            match entry {
                Ok(entry) => {
                    let name = entry.file_name().into_encoded_bytes();
                    if name.ends_with(b".conf") && !name.starts_with(b".") {
                        names.push(name);
                    }
                }
                Err(e) => b.error(LineError {
                    file: dir.clone(),
                    line: 0,
                    field: None,
                    reason: format!("cannot list the drop-in directory: {e}"),
                }),
            }
        }
        names.sort();
        for name in names {
            let path = dir.join(OsStr::from_bytes(&name));
            let masked = match is_mask(&path) {
                Ok(m) => m,
                Err(reason) => {
                    b.error(LineError {
                        file: path,
                        line: 0,
                        field: None,
                        reason,
                    });
                    continue;
                }
            };
            if let Some(lower) = winners.insert(name.clone(), DropIn { path, masked }) {
                overridden.entry(name).or_default().push(lower.path);
            }
        }
    }

    match main_bytes {
        Some(bytes) => b.add(main, &bytes, root),
        None if winners.is_empty() && overridden.is_empty() => {
            let dirs: Vec<String> = dropin_dirs(root)
                .iter()
                .map(|d| d.display().to_string())
                .collect();
            b.error(LineError {
                file: main.to_path_buf(),
                line: 0,
                field: None,
                reason: format!(
                    "cannot read plugins.conf: no such file, and no drop-ins in {}",
                    dirs.join(", ")
                ),
            });
        }
        None => b.source(main, SourceState::Absent),
    }
    for (name, d) in winners {
        for lower in overridden.remove(&name).unwrap_or_default() {
            let by = d.path.clone();
            b.source(&lower, SourceState::Overridden { by });
        }
        if d.masked {
            b.source(&d.path, SourceState::Masked);
            continue;
        }
        match std::fs::read(&d.path) {
            Ok(bytes) => b.add(&d.path, &bytes, root),
            Err(e) => b.error(unreadable(&d.path, &e)),
        }
    }
    b.finish()
}

/// Whether a drop-in masks its name away: a symlink to /dev/null (its target
/// is not looked up under `--root`: it means "nothing" on any root) or an
/// empty file. Anything but a (link to a) regular file is an error.
fn is_mask(path: &Path) -> Result<bool, String> {
    if let Ok(target) = std::fs::read_link(path)
        && target == Path::new("/dev/null")
    {
        return Ok(true);
    }
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => Ok(m.len() == 0),
        Ok(_) => Err(
            "not a regular file (a drop-in is a file, or a symlink to /dev/null to mask one)"
                .into(),
        ),
        Err(e) => Err(format!("cannot read plugins.conf drop-in: {e}")),
    }
}
