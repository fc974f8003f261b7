//! The root trust checks: when the runtime runs as root, nothing it reads as
//! configuration or that its interpreters load as code may be changeable by
//! anyone but root. Checked before anything is imported (`run`, `check`,
//! reload) and again before a crashed worker is restarted.
//!
//! The rule, for every object checked (`lstat`, so a symlink is never taken
//! for its target):
//! - **What is read or loaded** (a file, or a directory whose entries are
//!   read or imported: a drop-in directory, a plugin's directory, a venv and
//!   its site directories, a directory a `.pth` file adds to `sys.path`):
//!   owned by root and not writable by group or others. The sticky bit does not
//!   help here: anyone could still add a file (a module, a drop-in) to it.
//! - **A directory passed through** on the way to one of those (every
//!   ancestor, from `/`, or from `--root`): owned by root and not writable by
//!   group or others, or writable but sticky (`/tmp`) while the entry taken
//!   from it is owned by root: then nobody else can rename or replace it.
//! - **A symlink** on the way is followed as the kernel follows it: the
//!   directory holding the link is a directory passed through (checked with
//!   the link's owner in the sticky case), then the target's path is walked
//!   the same way, component by component (absolute targets under `--root`).
//!   A path that ends at nothing (a link to a plugin's state directory not
//!   made yet) loads nothing: only the directory it would be made in counts,
//!   as a directory passed through with no owner-trusted entry.
//!
//! Root is the only trusted owner: the checks only run when the runtime runs
//! as root (a daemon running as its own user cannot load anything its user
//! cannot write anyway).
//!
//! Bounded, because it runs again at each worker restart: a plugin's
//! directory tree is walked through the directories `import` can reach (names
//! that are Python identifiers), at most [`MAX_TREE_DEPTH`] levels and
//! [`MAX_TREE_ENTRIES`] entries; a bigger tree is refused rather than checked
//! in part. A site directory's own entries (modules, packages, `.pth` files)
//! are checked, not the files inside its packages: a venv is built whole by
//! the image's builder, and its site directory being root's is what keeps
//! anyone else from adding to it.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::Metadata;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use crate::venv::Venv;

/// Symlinks followed on one path before it is refused (the kernel's own
/// limit, MAXSYMLINKS).
pub const MAX_LINKS: usize = 40;
/// Directory levels of a plugin's tree the check walks below its directory;
/// a plugin's own packages are rarely more than 3 deep.
pub const MAX_TREE_DEPTH: usize = 8;
/// Entries of a plugin's tree (or of one site directory) the check looks at:
/// about 10 ms of `lstat` on a slow board's flash when cached, so a restart
/// stays cheap. A plugin with more belongs in a directory of its own, its
/// dependencies in its venv.
pub const MAX_TREE_ENTRIES: usize = 2000;
/// Bytes of a `.pth` file read for the directories it adds to `sys.path` (a
/// `.pth` file is a few lines).
pub const MAX_PTH_BYTES: u64 = 64 * 1024;

const GROUP_OTHER_WRITE: u32 = 0o022;
const STICKY: u32 = 0o1000;

/// Collects the refusals of one plugin (or one configuration): each message
/// once, each object looked up once.
pub struct Checker {
    /// `--root`: paths under it are walked from it, and absolute link
    /// targets resolve under it.
    root: Option<PathBuf>,
    meta: HashMap<PathBuf, Metadata>,
    refusals: Vec<String>,
}

impl Checker {
    pub fn new(root: Option<&Path>) -> Checker {
        Checker {
            root: root.map(Path::to_path_buf),
            meta: HashMap::new(),
            refusals: Vec::new(),
        }
    }

    /// Every refusal found, in the order found.
    pub fn finish(self) -> Vec<String> {
        self.refusals
    }

    fn refuse(&mut self, msg: String) {
        if !self.refusals.contains(&msg) {
            self.refusals.push(msg);
        }
    }

    fn lstat(&mut self, p: &Path) -> std::io::Result<Metadata> {
        if let Some(m) = self.meta.get(p) {
            return Ok(m.clone());
        }
        let m = std::fs::symlink_metadata(p)?;
        self.meta.insert(p.to_path_buf(), m.clone());
        Ok(m)
    }

    /// `path` as the kernel resolves it: every directory passed through and
    /// every link on the way, then what it ends at, strictly. Returns where it
    /// ends (when it could be looked up).
    pub fn path(&mut self, path: &Path) -> Option<PathBuf> {
        // Relative (a `--config` given so): from the working directory, its
        // `..` resolved as the kernel does, after any link.
        let joined;
        let path = if path.is_absolute() {
            path
        } else {
            joined = std::env::current_dir()
                .unwrap_or_else(|_| PathBuf::from("/"))
                .join(path);
            &joined
        };
        let (base, rel) = match &self.root {
            Some(r) if path.starts_with(r) => (
                r.clone(),
                path.strip_prefix(r).unwrap_or(path).to_path_buf(),
            ),
            _ => (
                PathBuf::from("/"),
                path.strip_prefix("/").unwrap_or(path).to_path_buf(),
            ),
        };
        let mut todo: Vec<OsString> = components(&rel);
        let mut cur = base.clone();
        let mut links = 0;
        while let Some(name) = todo.pop() {
            if name == ".." {
                if cur != base {
                    cur.pop();
                }
                continue;
            }
            let child = cur.join(&name);
            let cm = match self.lstat(&child) {
                Ok(m) => m,
                // Nothing there (a link to a plugin's state directory not
                // made yet): nothing to load; only whoever could create it in
                // its directory matters.
                Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => {
                    self.passed_through(&cur, &child, None, path);
                    return None;
                }
                Err(e) => {
                    self.refuse(format!("cannot check {}: {e}", child.display()));
                    return None;
                }
            };
            self.passed_through(&cur, &child, Some(&cm), path);
            if !cm.file_type().is_symlink() {
                cur = child;
                continue;
            }
            links += 1;
            let target = match std::fs::read_link(&child) {
                Ok(t) if links <= MAX_LINKS => t,
                Ok(_) => {
                    self.refuse(format!(
                        "refusing {}: more than {MAX_LINKS} symbolic links on its path",
                        path.display()
                    ));
                    return None;
                }
                Err(e) => {
                    self.refuse(format!("cannot read the link {}: {e}", child.display()));
                    return None;
                }
            };
            if target.is_absolute() {
                cur = base.clone();
            }
            todo.extend(components(&target));
        }
        match self.lstat(&cur) {
            Ok(m) => {
                let note = if cur == path {
                    String::new()
                } else {
                    format!(" (where {} leads)", path.display())
                };
                if let Some(r) = strict(&cur, &m, &note) {
                    self.refuse(r);
                }
                Some(cur)
            }
            Err(e) => {
                self.refuse(format!("cannot check {}: {e}", cur.display()));
                None
            }
        }
    }

    /// `dir` is passed through to reach `child` (whose own metadata is `cm`,
    /// `None` when it does not exist), on the way to `goal`.
    fn passed_through(&mut self, dir: &Path, child: &Path, cm: Option<&Metadata>, goal: &Path) {
        let Ok(dm) = self.lstat(dir) else {
            return; // looked up as the previous step; gone meanwhile
        };
        let mode = dm.mode() & 0o7777;
        let child_uid = cm.map(MetadataExt::uid);
        let sticky_ok = mode & STICKY != 0 && child_uid == Some(0);
        let writable = mode & GROUP_OTHER_WRITE != 0 && !sticky_ok;
        if !writable && dm.uid() == 0 {
            return;
        }
        let mut why = Vec::new();
        let mut fix = Vec::new();
        if dm.uid() != 0 {
            why.push(format!("owned by uid {}", dm.uid()));
            fix.push(format!("chown root {}", dir.display()));
        }
        if writable {
            if mode & STICKY != 0 {
                let whose = match child_uid {
                    Some(uid) => format!("is owned by uid {uid}"),
                    None => "does not exist yet".into(),
                };
                why.push(format!(
                    "writable by group or others (mode {mode:04o}; sticky, but {} in it {whose})",
                    child.display(),
                ));
            } else {
                why.push(format!("writable by group or others (mode {mode:04o})"));
            }
            fix.push(format!("chmod go-w {}", dir.display()));
        } else {
            why.push(format!("mode {mode:04o}"));
        }
        self.refuse(format!(
            "refusing {}, a directory on the path to {}: {} while the runtime runs as root; fix with `{}`",
            dir.display(),
            goal.display(),
            why.join(", "),
            fix.join(" && ")
        ));
    }

    /// A plugin's directory and every entry `import` can reach from it:
    /// directories are descended when their name is a Python identifier (a
    /// package, or a namespace package), at most [`MAX_TREE_DEPTH`] levels
    /// and [`MAX_TREE_ENTRIES`] entries.
    pub fn tree(&mut self, dir: &Path) {
        let Some(real) = self.path(dir) else {
            return;
        };
        let mut stack = vec![(real, 0usize)];
        let mut entries = 0;
        while let Some((d, depth)) = stack.pop() {
            for p in self.entries(&d, &mut entries, dir) {
                let Some(end) = self.entry(&p) else {
                    continue;
                };
                let name = p.file_name().unwrap_or_default().to_string_lossy();
                if !std::fs::metadata(&end).is_ok_and(|m| m.is_dir()) || !is_identifier(&name) {
                    continue;
                }
                if depth + 1 > MAX_TREE_DEPTH {
                    self.refuse(format!(
                        "refusing {}: {} is more than {MAX_TREE_DEPTH} directory levels deep; the trust check walks at most {MAX_TREE_DEPTH} (put the plugin in a directory of its own, its dependencies in its venv)",
                        dir.display(),
                        p.display()
                    ));
                    return;
                }
                stack.push((end, depth + 1));
            }
            if entries > MAX_TREE_ENTRIES {
                return;
            }
        }
    }

    /// The entries of `d`, counted against [`MAX_TREE_ENTRIES`] (refusing
    /// `whole` past it).
    fn entries(&mut self, d: &Path, count: &mut usize, whole: &Path) -> Vec<PathBuf> {
        let rd = match std::fs::read_dir(d) {
            Ok(rd) => rd,
            Err(e) => {
                self.refuse(format!("cannot list {}: {e}", d.display()));
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for e in rd {
            match e {
                Ok(e) => out.push(e.path()),
                Err(e) => self.refuse(format!("cannot list {}: {e}", d.display())),
            }
            *count += 1;
            if *count > MAX_TREE_ENTRIES {
                self.refuse(format!(
                    "refusing {}: more than {MAX_TREE_ENTRIES} entries to check; the trust check looks at {MAX_TREE_ENTRIES} at most (put the plugin in a directory of its own, its dependencies in its venv)",
                    whole.display()
                ));
                break;
            }
        }
        out.sort();
        out
    }

    /// One entry of a directory already checked: itself, strictly, or, for a
    /// symlink, its whole way. Returns where it ends.
    fn entry(&mut self, p: &Path) -> Option<PathBuf> {
        let m = match self.lstat(p) {
            Ok(m) => m,
            Err(e) => {
                self.refuse(format!("cannot check {}: {e}", p.display()));
                return None;
            }
        };
        if m.file_type().is_symlink() {
            return self.path(p);
        }
        if let Some(r) = strict(p, &m, "") {
            self.refuse(r);
        }
        Some(p.to_path_buf())
    }

    /// A configuration file (plugins.conf or a drop-in, or a mask), and for a
    /// drop-in its directory, whose every entry is read. A mask that is a
    /// symlink to /dev/null is checked as a link (its target is nothing).
    pub fn config_file(&mut self, file: &Path, dropin: bool) {
        if dropin && let Some(dir) = file.parent() {
            self.path(dir);
        }
        if std::fs::read_link(file).is_ok_and(|t| t == Path::new("/dev/null")) {
            let dir = file.parent().unwrap_or(Path::new("/"));
            if !dropin {
                self.path(dir);
            }
            return;
        }
        self.path(file);
    }

    /// A venv as configured (`configured`, which may be a link or lie behind
    /// one), its `pyvenv.cfg`, its site directories and their entries, and the
    /// directories their `.pth` files add to `sys.path`.
    pub fn venv(&mut self, configured: &Path, v: &Venv) {
        self.path(configured);
        self.path(&configured.join("pyvenv.cfg"));
        for site in &v.site_dirs {
            let Some(real) = self.path(site) else {
                continue;
            };
            let mut count = 0;
            for p in self.entries(&real, &mut count, site) {
                let Some(end) = self.entry(&p) else {
                    continue;
                };
                if p.extension().is_some_and(|e| e == "pth") {
                    self.pth(&real, &end);
                }
            }
        }
    }

    /// The directories a `.pth` file adds (as `site.addsitedir` reads it:
    /// one path per line, relative to the site directory; `import` lines run
    /// code, which is the file's own, checked as an entry of its directory).
    fn pth(&mut self, site: &Path, file: &Path) {
        let mut text = String::new();
        let read =
            std::fs::File::open(file).and_then(|f| f.take(MAX_PTH_BYTES).read_to_string(&mut text));
        if let Err(e) = read {
            self.refuse(format!("cannot read {}: {e}", file.display()));
            return;
        }
        for line in text.lines() {
            let line = line.trim_end();
            if line.is_empty()
                || line.starts_with('#')
                || line.starts_with("import ")
                || line.starts_with("import\t")
            {
                continue;
            }
            let dir = site.join(line);
            if dir.exists() {
                self.path(&dir);
            }
        }
    }
}

/// The refusal of an object that is read or loaded, if it is not root's
/// alone. `note` follows the path (where a link led from).
fn strict(p: &Path, m: &Metadata, note: &str) -> Option<String> {
    let mode = m.mode() & 0o7777;
    let writable = mode & GROUP_OTHER_WRITE != 0;
    let uid = m.uid();
    let p = p.display();
    match (writable, uid != 0) {
        (false, false) => None,
        (true, false) => Some(format!(
            "refusing {p}{note}: writable by group or others (mode {mode:04o}), owned by uid 0, while the runtime runs as root; fix with `chmod go-w {p}`"
        )),
        (false, true) => Some(format!(
            "refusing {p}{note}: owned by uid {uid} (mode {mode:04o}) while the runtime runs as root; fix with `chown root {p}`"
        )),
        (true, true) => Some(format!(
            "refusing {p}{note}: writable by group or others (mode {mode:04o}) and owned by uid {uid} while the runtime runs as root; fix with `chown root {p} && chmod go-w {p}`"
        )),
    }
}

/// The components of `p` as a stack: the first one last (`.` dropped).
fn components(p: &Path) -> Vec<OsString> {
    let mut v: Vec<OsString> = p
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
        .collect();
    v.reverse();
    v
}

/// Whether `name` can be imported as a package (a directory `import` can
/// reach): a Python identifier (ASCII here; a non-ASCII one is walked too).
fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c == '_' || c.is_alphabetic())
        && chars.all(|c| c == '_' || c.is_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_names_are_identifiers() {
        for ok in ["pkg", "_private", "__pycache__", "a1", "é"] {
            assert!(is_identifier(ok), "{ok}");
        }
        for no in [
            "python3.11",
            "site-packages",
            "1abc",
            "",
            "a b",
            "x.dist-info",
        ] {
            assert!(!is_identifier(no), "{no}");
        }
    }

    #[test]
    fn a_link_loop_is_refused_not_followed_forever() {
        let dir = std::env::temp_dir().join(format!("openplc-trust-loop-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::os::unix::fs::symlink("b", dir.join("a")).unwrap();
        std::os::unix::fs::symlink("a", dir.join("b")).unwrap();
        let mut c = Checker::new(None);
        assert_eq!(c.path(&dir.join("a/x")), None);
        let refusals = c.finish();
        let _ = std::fs::remove_dir_all(&dir);
        let want = format!(
            "refusing {}: more than {MAX_LINKS} symbolic links on its path",
            dir.join("a/x").display()
        );
        assert!(refusals.contains(&want), "{refusals:?}");
    }

    #[test]
    fn components_are_a_stack() {
        let c = components(Path::new("/a/./b/../c"));
        assert_eq!(c, ["c", "..", "b", "a"].map(OsString::from));
    }
}
