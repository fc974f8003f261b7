//! Parse, then resolve: plugins.conf entries become a checked plan (files
//! found, venvs opened and version-checked, dependency conflicts ruled out,
//! ownership and modes trusted) before the interpreter starts. Every problem is
//! collected; none stops the search for the next.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::config::{PluginEntry, PluginKind, PluginsConf, SourceState};
use crate::trust;
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

    /// The root trust checks of this plugin again ([`refusals`]), as before a
    /// restart of its worker: its files may have changed since it was resolved.
    pub fn refusals(&self, root: Option<&Path>) -> Vec<String> {
        refusals(&self.entry, self.venv.as_ref(), root)
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
    let mut errors: Vec<String> = Vec::new();
    let mut plugins = Vec::new();
    let root = conf.root.as_deref();
    // The files read (and the masks that hid others): a refused one stops its
    // plugins too, so `check` never imports what an untrusted file named.
    let mut refused_files = Vec::new();
    if euid == 0 {
        for source in &conf.sources {
            if matches!(source.state, SourceState::Loaded | SourceState::Masked) {
                let mut c = trust::Checker::new(root);
                c.config_file(&source.path, source.path != conf.file);
                let refusals = c.finish();
                if !refusals.is_empty() {
                    refused_files.push(source.path.clone());
                }
                for e in refusals {
                    if !errors.contains(&e) {
                        errors.push(e);
                    }
                }
            }
        }
    }
    for entry in conf.enabled() {
        let name = entry.name.as_str();
        let at = entry.origin();
        let mut ok = !refused_files.contains(&entry.file);
        match std::fs::metadata(&entry.path) {
            Ok(m) if m.is_file() => {}
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
                Ok(v) => Some(v),
                Err(e) => {
                    errors.push(format!("{at}: field 6 (venv_path): {e}"));
                    ok = false;
                    None
                }
            },
        };
        if euid == 0 && entry.path.is_file() {
            for e in refusals(entry, venv.as_ref(), root) {
                errors.push(format!("{at}: plugin `{name}`: {e}"));
                ok = false;
            }
        }
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

/// What the root trust checks ([`trust`]) refuse of a plugin: for a Python
/// plugin its directory tree (what `import` reaches from it, its file
/// included) and ancestors, for a native one its file and directory; its venv
/// as configured (along any symlink), its site directories, their entries and
/// `.pth` files (those prefixed `venv: `).
pub fn refusals(entry: &PluginEntry, venv: Option<&Venv>, root: Option<&Path>) -> Vec<String> {
    let mut c = trust::Checker::new(root);
    let dir = entry.path.parent().unwrap_or(Path::new("/"));
    match entry.kind {
        PluginKind::Python => c.tree(dir),
        PluginKind::Native => {
            c.path(dir);
        }
    }
    c.path(&entry.path);
    let mut out = c.finish();
    if let (Some(v), Some(configured)) = (venv, &entry.venv_path) {
        let mut c = trust::Checker::new(root);
        c.venv(configured, v);
        out.extend(c.finish().into_iter().map(|e| format!("venv: {e}")));
    }
    out
}
