//! Parse, then resolve: plugins.conf entries become a checked plan (files
//! found, venvs opened and version-checked, dependency conflicts ruled out,
//! ownership and modes trusted) before the interpreter starts. Every problem is
//! collected; none stops the search for the next.

use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::config::{PluginEntry, PluginKind, PluginsConf, SourceState};
use crate::venv::{self, PyVersion, Venv};

/// How Python plugins share interpreters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// One embedded interpreter for all Python plugins (OpenPLC's model).
    Shared,
    /// One worker process (and interpreter) per Python plugin.
    Process,
}

impl Isolation {
    /// Parses `--isolation`.
    pub fn parse(s: &str) -> Option<Isolation> {
        match s {
            "shared" => Some(Isolation::Shared),
            "process" => Some(Isolation::Process),
            _ => None,
        }
    }
}

impl fmt::Display for Isolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Isolation::Shared => "shared",
            Isolation::Process => "process",
        })
    }
}

/// An enabled plugin, checked.
#[derive(Debug, Clone)]
pub struct Plugin {
    pub entry: PluginEntry,
    pub venv: Option<Venv>,
}

impl Plugin {
    pub fn name(&self) -> &str {
        &self.entry.name
    }

    /// The directory that holds the plugin file (put on `sys.path`, as OpenPLC
    /// does, so a plugin's sibling modules import).
    pub fn dir(&self) -> PathBuf {
        self.entry
            .path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("/"))
    }

    /// Whether this plugin sees the system site-packages: a Python plugin
    /// without a venv (OpenPLC's legacy case: "system Python") or a venv with
    /// `include-system-site-packages = true`.
    pub fn system_site(&self) -> bool {
        self.entry.kind == PluginKind::Python
            && self.venv.as_ref().is_none_or(|v| v.include_system_site)
    }
}

/// What the runtime will load.
#[derive(Debug, Clone)]
pub struct Plan {
    pub conf: PluginsConf,
    /// Enabled plugins in file order.
    pub plugins: Vec<Plugin>,
}

impl Plan {
    /// Site directories of all venvs, in plugin order (shared interpreter).
    pub fn site_dirs(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = Vec::new();
        for d in self
            .plugins
            .iter()
            .filter_map(|p| p.venv.as_ref())
            .flat_map(|v| &v.site_dirs)
        {
            if !out.contains(d) {
                out.push(d.clone());
            }
        }
        out
    }

    /// Plugin directories, in plugin order, without repeats.
    pub fn plugin_dirs(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = Vec::new();
        for p in self
            .plugins
            .iter()
            .filter(|p| p.entry.kind == PluginKind::Python)
        {
            let d = p.dir();
            if !out.contains(&d) {
                out.push(d);
            }
        }
        out
    }

    /// Whether the system site-packages are visible to the shared
    /// interpreter: whether any plugin sees them ([`Plugin::system_site`]).
    pub fn system_site(&self) -> bool {
        self.plugins.iter().any(Plugin::system_site)
    }
}

/// Resolves the enabled plugins of `conf` for an interpreter `embedded`.
/// `euid` decides whether the root-only trust checks apply. Returns the plan of
/// the plugins that passed and every problem found; the daemon refuses to start
/// on any problem, `check` reports them all.
pub fn resolve(
    conf: &PluginsConf,
    embedded: PyVersion,
    isolation: Isolation,
    euid: u32,
) -> (Plan, Vec<String>) {
    let mut errors = Vec::new();
    let mut plugins = Vec::new();
    if euid == 0 {
        for source in &conf.sources {
            if source.state == SourceState::Loaded
                && let Err(e) = trusted(&source.path)
            {
                errors.push(format!("{}: {e}", source.path.display()));
            }
        }
    }
    for entry in conf.enabled() {
        let name = entry.name.as_str();
        let at = entry.origin();
        let mut ok = true;
        match std::fs::metadata(&entry.path) {
            Ok(m) if m.is_file() => {
                if euid == 0 {
                    for p in [
                        entry.path.as_path(),
                        entry.path.parent().unwrap_or(Path::new("/")),
                    ] {
                        if let Err(e) = trusted(p) {
                            errors.push(format!("{at}: plugin `{name}`: {e}"));
                            ok = false;
                        }
                    }
                }
            }
            Ok(_) => {
                errors.push(format!(
                    "{at}: field 2 (path): plugin `{name}`: {} is not a regular file",
                    entry.path.display()
                ));
                ok = false;
            }
            Err(e) => {
                errors.push(format!(
                    "{at}: field 2 (path): plugin `{name}`: cannot open {}: {e}",
                    entry.path.display()
                ));
                ok = false;
            }
        }
        let venv = match &entry.venv_path {
            None => None,
            Some(root) => match venv::open(name, root, embedded) {
                Ok(v) => {
                    if euid == 0 {
                        for p in std::iter::once(&v.root).chain(&v.site_dirs) {
                            if let Err(e) = trusted(p) {
                                errors.push(format!("{at}: plugin `{name}`: venv: {e}"));
                                ok = false;
                            }
                        }
                    }
                    Some(v)
                }
                Err(e) => {
                    errors.push(format!("{at}: field 6 (venv_path): {e}"));
                    ok = false;
                    None
                }
            },
        };
        if ok {
            plugins.push(Plugin {
                entry: entry.clone(),
                venv,
            });
        }
    }
    if isolation == Isolation::Shared {
        errors.extend(venv::find_conflicts(
            plugins
                .iter()
                .filter_map(|p| p.venv.as_ref().map(|v| (p.name(), v))),
        ));
    }
    (
        Plan {
            conf: conf.clone(),
            plugins,
        },
        errors,
    )
}

/// Files a root daemon executes must not be changeable by anyone but root:
/// not writable by group or others, owned by root. (Owned by the daemon's own
/// non-root user is fine when not running as root; this check only runs as
/// root.)
fn trusted(path: &Path) -> Result<(), String> {
    let m = std::fs::metadata(path).map_err(|e| format!("cannot stat {}: {e}", path.display()))?;
    let mode = m.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(format!(
            "refusing {}: writable by group or others (mode {mode:04o}) while the runtime runs as root; fix with `chmod go-w {}`",
            path.display(),
            path.display()
        ));
    }
    if m.uid() != 0 {
        return Err(format!(
            "refusing {}: owned by uid {} while the runtime runs as root; fix with `chown root {}`",
            path.display(),
            m.uid(),
            path.display()
        ));
    }
    Ok(())
}
