//! Plugin venvs: `pyvenv.cfg`, the site-packages directories to activate, and the
//! distributions installed in them.
//!
//! Everything here reads files only; nothing starts Python. That is what lets the
//! runtime refuse a wrong-version venv or a dependency conflict *before* anything
//! is imported (OpenPLC loads such venvs and fails later with obscure import
//! errors).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// A CPython version; venvs must match the embedded interpreter in `major.minor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct PyVersion {
    pub major: u32,
    pub minor: u32,
    pub micro: u32,
}

impl PyVersion {
    /// Parses `3.11.7`, `3.11`, `3.12.0rc1` or `3.11.7.final.0` (virtualenv's
    /// `version_info`); only the leading numbers count.
    pub fn parse(text: &str) -> Option<PyVersion> {
        let mut it = text.trim().split('.');
        let major = it.next()?.parse().ok()?;
        let minor = it.next()?.parse().ok()?;
        let micro = it
            .next()
            .map(|m| {
                let digits: String = m.chars().take_while(char::is_ascii_digit).collect();
                digits.parse().unwrap_or(0)
            })
            .unwrap_or(0);
        Some(PyVersion {
            major,
            minor,
            micro,
        })
    }

    /// `X.Y`, the part that selects `lib/pythonX.Y` and the ABI.
    pub fn short(&self) -> String {
        format!("{}.{}", self.major, self.minor)
    }

    /// Whether a venv made by `self` can be used by an interpreter `other`.
    pub fn abi_matches(&self, other: &PyVersion) -> bool {
        self.major == other.major && self.minor == other.minor
    }
}

impl fmt::Display for PyVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.micro)
    }
}

/// Distributions that never take part in the conflict check: the installer
/// itself is in every venv at whatever version that venv was made with, and no
/// plugin imports it.
pub const IGNORED_DISTRIBUTIONS: &[&str] = &["pip"];

/// One installed distribution (a `*.dist-info` or `*.egg-info`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Distribution {
    /// Name normalised as pip does (PEP 503): lower case, runs of `-_.` → `-`.
    pub key: String,
    /// The name as the metadata spells it.
    pub name: String,
    pub version: String,
}

/// A venv that passed every check, ready to activate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Venv {
    pub root: PathBuf,
    /// The version `pyvenv.cfg` records.
    pub version: PyVersion,
    /// `include-system-site-packages = true`.
    pub include_system_site: bool,
    /// `lib/pythonX.Y/site-packages`, and the `lib64` one when it is a different
    /// directory, in that order.
    pub site_dirs: Vec<PathBuf>,
    /// Sorted by key.
    pub distributions: Vec<Distribution>,
}

/// The command that rebuilds a plugin's venv on a development machine.
pub fn rebuild_hint(plugin: &str) -> String {
    format!(
        "rebuild it with `scripts/manage_plugin_venvs.sh create --recreate {plugin}` (on a firmware image: rebuild the image)"
    )
}

/// Opens and checks the venv of `plugin` at `root` for an interpreter `embedded`.
/// The error is one complete message naming the plugin, the path and what to do.
pub fn open(plugin: &str, root: &Path, embedded: PyVersion) -> Result<Venv, String> {
    if !root.is_dir() {
        return Err(format!(
            "plugin `{plugin}`: venv {} does not exist; create it with `scripts/manage_plugin_venvs.sh create {plugin}`, or empty field 6 (venv_path) to use no venv",
            root.display()
        ));
    }
    let cfg_path = root.join("pyvenv.cfg");
    let cfg_text = std::fs::read_to_string(&cfg_path).map_err(|e| {
        format!(
            "plugin `{plugin}`: {} is not a venv: cannot read {}: {e}; {}",
            root.display(),
            cfg_path.display(),
            rebuild_hint(plugin)
        )
    })?;
    let cfg = parse_pyvenv_cfg(&cfg_text);
    let version_text = cfg
        .get("version")
        .or_else(|| cfg.get("version_info"))
        .ok_or_else(|| {
            format!(
                "plugin `{plugin}`: {} has no `version` line, so the Python that made the venv is unknown; {}",
                cfg_path.display(),
                rebuild_hint(plugin)
            )
        })?;
    let version = PyVersion::parse(version_text).ok_or_else(|| {
        format!(
            "plugin `{plugin}`: {}: cannot read the version `{version_text}`; {}",
            cfg_path.display(),
            rebuild_hint(plugin)
        )
    })?;
    if !version.abi_matches(&embedded) {
        return Err(format!(
            "plugin `{plugin}`: venv {} was made by Python {version}, but the runtime embeds Python {embedded}; its packages would not import (different ABI and lib/python{}); {}",
            root.display(),
            embedded.short(),
            rebuild_hint(plugin)
        ));
    }
    let include_system_site = cfg
        .get("include-system-site-packages")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));

    let rel = format!("python{}/site-packages", embedded.short());
    let lib = root.join("lib").join(&rel);
    if !lib.is_dir() {
        return Err(format!(
            "plugin `{plugin}`: venv {} has no {}; {}",
            root.display(),
            lib.display(),
            rebuild_hint(plugin)
        ));
    }
    let mut site_dirs = vec![lib.clone()];
    let lib64 = root.join("lib64").join(&rel);
    if lib64.is_dir() && !same_dir(&lib, &lib64) {
        site_dirs.push(lib64);
    }
    let mut distributions = Vec::new();
    for dir in &site_dirs {
        distributions.extend(
            installed_distributions(dir)
                .map_err(|e| format!("plugin `{plugin}`: cannot list {}: {e}", dir.display()))?,
        );
    }
    distributions.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(Venv {
        root: root.to_path_buf(),
        version,
        include_system_site,
        site_dirs,
        distributions,
    })
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// `key = value` lines of `pyvenv.cfg`; keys lower-cased.
pub fn parse_pyvenv_cfg(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect()
}

/// PEP 503 normalisation, as pip compares names.
pub fn normalize_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut sep = false;
    for c in name.trim().chars() {
        if matches!(c, '-' | '_' | '.') {
            sep = true;
        } else {
            if sep && !out.is_empty() {
                out.push('-');
            }
            sep = false;
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

/// The distributions installed in one site directory.
pub fn installed_distributions(site: &Path) -> std::io::Result<Vec<Distribution>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(site)? {
        let entry = entry?;
        let file_name = entry.file_name();
        let Some(fname) = file_name.to_str() else {
            continue;
        };
        let path = entry.path();
        let metadata_file = if let Some(stem) = fname.strip_suffix(".dist-info") {
            Some((stem, path.join("METADATA")))
        } else if let Some(stem) = fname.strip_suffix(".egg-info") {
            if path.is_dir() {
                Some((stem, path.join("PKG-INFO")))
            } else {
                Some((stem, path.clone()))
            }
        } else {
            None
        };
        let Some((stem, meta)) = metadata_file else {
            continue;
        };
        let text = std::fs::read_to_string(&meta).unwrap_or_default();
        out.push(parse_metadata(stem, &text));
    }
    Ok(out)
}

/// A distribution from its metadata headers (`Name:`, `Version:` of a
/// METADATA or PKG-INFO file), falling back to its directory's stem
/// `name-version` when a header is missing.
pub fn parse_metadata(stem: &str, text: &str) -> Distribution {
    let (mut name, mut version) = (None, None);
    for line in text.lines() {
        if line.is_empty() {
            break; // end of the headers; the description follows
        }
        if let Some(v) = line.strip_prefix("Name:") {
            name.get_or_insert_with(|| v.trim().to_string());
        } else if let Some(v) = line.strip_prefix("Version:") {
            version.get_or_insert_with(|| v.trim().to_string());
        }
    }
    let (stem_name, stem_version) = stem.split_once('-').unwrap_or((stem, ""));
    let name = name.unwrap_or_else(|| stem_name.to_string());
    let version = version.unwrap_or_else(|| stem_version.to_string());
    Distribution {
        key: normalize_name(&name),
        name,
        version,
    }
}

/// Two plugins that would share one interpreter while carrying different
/// versions of one distribution. Returns one message per conflict.
pub fn find_conflicts<'a>(plugins: impl IntoIterator<Item = (&'a str, &'a Venv)>) -> Vec<String> {
    // key → (plugin, venv root, version) of the first plugin that carries it.
    let mut first: BTreeMap<&str, (&str, &Path, &str)> = BTreeMap::new();
    let mut out = Vec::new();
    for (plugin, venv) in plugins {
        for d in &venv.distributions {
            if IGNORED_DISTRIBUTIONS.contains(&d.key.as_str()) {
                continue;
            }
            match first.get(d.key.as_str()) {
                None => {
                    first.insert(&d.key, (plugin, &venv.root, &d.version));
                }
                Some(&(other, other_root, other_version)) if other_version != d.version => {
                    out.push(format!(
                        "plugins `{other}` and `{plugin}` would share one Python interpreter (--isolation shared) but need different versions of `{}`: {other_version} (in {}) and {} (in {}); pin the same version in both requirements.txt files, or run each plugin in its own interpreter with --isolation process",
                        d.name,
                        other_root.display(),
                        d.version,
                        venv.root.display()
                    ));
                }
                Some(_) => {}
            }
        }
    }
    out
}

/// The Python of a staged root filesystem (`check --root`): what its venvs
/// must have been built for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootPython {
    /// X.Y, from the stdlib directory `usr/lib/pythonX.Y`.
    pub version: PyVersion,
    /// The interpreter binary, as the root's path (`/usr/bin/python3.13`).
    pub binary: Option<PathBuf>,
    /// Its CPU, in Rust's `std::env::consts::ARCH` words; `None` when there
    /// is no readable ELF binary.
    pub arch: Option<String>,
}

impl fmt::Display for RootPython {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the root's Python is {}", self.version.short())?;
        match (&self.binary, &self.arch) {
            (Some(b), Some(a)) => write!(f, " ({}, {a})", b.display()),
            (Some(b), None) => write!(f, " ({}, CPU unknown)", b.display()),
            _ => write!(f, " (no interpreter binary found)"),
        }
    }
}

/// Most symlinks followed inside a staged root (a loop is an error, not a hang).
const MAX_LINK_HOPS: usize = 16;

/// Finds the Python of the root filesystem at `root`: the newest
/// `usr/lib/python3.N` holding `os.py`, and its `usr/bin/python3.N`.
pub fn root_python(root: &Path) -> Option<RootPython> {
    let mut best: Option<u32> = None;
    for lib in ["usr/lib", "usr/lib64"] {
        let Ok(entries) = std::fs::read_dir(root.join(lib)) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            let Some(minor) = name
                .to_str()
                .and_then(|n| n.strip_prefix("python3."))
                .and_then(|m| m.parse::<u32>().ok())
            else {
                continue;
            };
            if e.path().join("os.py").is_file() && best.is_none_or(|b| minor > b) {
                best = Some(minor);
            }
        }
    }
    let minor = best?;
    let version = PyVersion {
        major: 3,
        minor,
        micro: 0,
    };
    let binary = PathBuf::from(format!("/usr/bin/python3.{minor}"));
    let host = resolve_in_root(root, &binary);
    let arch = host.as_deref().and_then(elf_arch);
    Some(RootPython {
        version,
        binary: host.map(|_| binary),
        arch,
    })
}

/// `path` (as the root sees it) on this machine, symlinks followed inside
/// `root` (an absolute link target means the root's path, not the host's).
fn resolve_in_root(root: &Path, path: &Path) -> Option<PathBuf> {
    let mut target = path.to_path_buf();
    for _ in 0..MAX_LINK_HOPS {
        let host = root.join(target.strip_prefix("/").unwrap_or(&target));
        match std::fs::read_link(&host) {
            Ok(next) if next.is_absolute() => target = next,
            Ok(next) => target = target.parent().unwrap_or(Path::new("/")).join(next),
            Err(_) => return host.is_file().then_some(host),
        }
    }
    None
}

/// The CPU of an ELF file, in `std::env::consts::ARCH` words.
pub fn elf_arch(path: &Path) -> Option<String> {
    use std::io::Read;
    let mut head = [0u8; 20];
    std::fs::File::open(path).ok()?.read_exact(&mut head).ok()?;
    if head[..4] != *b"\x7fELF" {
        return None;
    }
    let machine = match head[5] {
        1 => u16::from_le_bytes([head[18], head[19]]),
        2 => u16::from_be_bytes([head[18], head[19]]),
        _ => return None,
    };
    let is64 = head[4] == 2;
    // e_machine values from the System V ABI registry.
    let arch = match (machine, is64) {
        (62, true) => "x86_64",
        (3, false) => "x86",
        (183, true) => "aarch64",
        (40, false) => "arm",
        (243, true) => "riscv64",
        (8, _) => "mips",
        (21, true) => "powerpc64",
        (20, false) => "powerpc",
        _ => return Some(format!("ELF machine {machine}")),
    };
    Some(arch.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        let v = PyVersion::parse("3.11.7").unwrap();
        assert_eq!((v.major, v.minor, v.micro), (3, 11, 7));
        assert_eq!(PyVersion::parse("3.12.0rc1").unwrap().micro, 0);
        assert_eq!(PyVersion::parse("3.9.18.final.0").unwrap().minor, 9);
        assert_eq!(PyVersion::parse("3.13").unwrap().micro, 0);
        assert!(PyVersion::parse("three").is_none());
        assert!(v.abi_matches(&PyVersion::parse("3.11.2").unwrap()));
        assert!(!v.abi_matches(&PyVersion::parse("3.12.1").unwrap()));
    }

    #[test]
    fn names_normalise_like_pip() {
        assert_eq!(normalize_name("Foo_Bar"), "foo-bar");
        assert_eq!(normalize_name("foo.-_bar"), "foo-bar");
        assert_eq!(normalize_name("PyYAML"), "pyyaml");
    }

    #[test]
    fn pyvenv_cfg_keys() {
        let cfg = parse_pyvenv_cfg(
            "home = /usr/bin\ninclude-system-site-packages = false\nversion = 3.11.7\n",
        );
        assert_eq!(cfg["version"], "3.11.7");
        assert_eq!(cfg["home"], "/usr/bin");
    }
}
