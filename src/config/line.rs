//! One plugins.conf line into a [`PluginEntry`]: the line split as one csv
//! record, each field checked (the errors carry the field number), and the
//! path fields resolved: relative ones against the file's directory, absolute
//! ones under `--root`, `.` and `..` folded lexically.

use std::path::{Component, Path, PathBuf};

use serde::Deserialize;

use super::{
    MAX_FIELDS, MAX_NAME_LEN, MAX_PATH_LEN, MIN_FIELDS, PluginEntry, PluginKind, PluginName,
};

/// The columns of one line as serde sees them; empty optional fields are `None`.
#[derive(Debug, Deserialize)]
struct RawLine {
    name: String,
    path: String,
    enabled: String,
    kind: String,
    #[serde(default)]
    config_path: Option<String>,
    #[serde(default)]
    venv_path: Option<String>,
}

type FieldErrors = Vec<(Option<usize>, String)>;

/// Parses one non-comment line; errors carry the field number.
pub(super) fn parse_line(
    text: &str,
    base: &Path,
    root: Option<&Path>,
) -> Result<PluginEntry, FieldErrors> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let mut record = csv::StringRecord::new();
    match rdr.read_record(&mut record) {
        Ok(true) => {}
        Ok(false) => return Err(vec![(None, "empty line".into())]),
        Err(e) => return Err(vec![(None, format!("cannot split into fields: {e}"))]),
    }
    if record.len() > MAX_FIELDS {
        return Err(vec![(
            None,
            format!(
                "{} fields, at most {MAX_FIELDS} are allowed (name,path,enabled,type,config_path,venv_path)",
                record.len()
            ),
        )]);
    }
    if record.len() < MIN_FIELDS {
        return Err(vec![(
            None,
            format!(
                "{} field(s), at least {MIN_FIELDS} are needed (name,path,enabled,type[,config_path[,venv_path]])",
                record.len()
            ),
        )]);
    }
    let raw: RawLine = record
        .deserialize(None)
        .map_err(|e| vec![(None, format!("cannot read fields: {e}"))])?;

    let mut errs: FieldErrors = Vec::new();
    let mut name = PluginName::new();
    if raw.name.is_empty() {
        errs.push((Some(1), "empty; every plugin needs a name".into()));
    } else if raw.name.chars().any(char::is_control) {
        errs.push((Some(1), "contains a control character".into()));
    } else if name.push_str(&raw.name).is_err() {
        errs.push((
            Some(1),
            format!(
                "`{}` is {} bytes long, at most {MAX_NAME_LEN} bytes are allowed",
                raw.name,
                raw.name.len()
            ),
        ));
    }
    let path = match check_path(2, &raw.path, base, root) {
        Ok(Some(p)) => Some(p),
        Ok(None) => {
            errs.push((Some(2), "empty; the plugin file is required".into()));
            None
        }
        Err(e) => {
            errs.push(e);
            None
        }
    };
    let enabled = match raw.enabled.as_str() {
        "1" => Some(true),
        "0" => Some(false),
        other => {
            errs.push((Some(3), format!("`{other}` is not 0 or 1")));
            None
        }
    };
    let kind = match raw.kind.as_str() {
        "0" => Some(PluginKind::Python),
        "1" => Some(PluginKind::Native),
        other => {
            errs.push((
                Some(4),
                format!("unknown plugin type `{other}`; 0 = Python, 1 = native .so"),
            ));
            None
        }
    };
    let config_path = check_path(5, raw.config_path.as_deref().unwrap_or(""), base, root)
        .map_err(|e| errs.push(e))
        .ok()
        .flatten();
    let venv_path = check_path(6, raw.venv_path.as_deref().unwrap_or(""), base, root)
        .map_err(|e| errs.push(e))
        .ok()
        .flatten();
    if kind == Some(PluginKind::Native) && venv_path.is_some() {
        errs.push((
            Some(6),
            "a native plugin (type 1) has no Python venv; leave this field empty".into(),
        ));
    }
    match (path, enabled, kind) {
        (Some(path), Some(enabled), Some(kind)) if errs.is_empty() => Ok(PluginEntry {
            file: PathBuf::new(),
            line: 0,
            name,
            path,
            enabled,
            kind,
            config_path,
            venv_path,
        }),
        _ => Err(errs),
    }
}

/// An optional path field: empty is `None`; too long is an error; relative paths
/// are resolved against `base`, absolute ones under `root` when given (paths
/// in the files are written as the target sees them; `--root` reads a staged
/// image).
fn check_path(
    field: usize,
    value: &str,
    base: &Path,
    root: Option<&Path>,
) -> Result<Option<PathBuf>, (Option<usize>, String)> {
    if value.is_empty() {
        return Ok(None);
    }
    if value.len() > MAX_PATH_LEN {
        return Err((
            Some(field),
            format!(
                "{} bytes long, at most {MAX_PATH_LEN} bytes are allowed",
                value.len()
            ),
        ));
    }
    if value.contains('\0') {
        return Err((Some(field), "contains a NUL byte".into()));
    }
    let resolved = match root {
        Some(root) if Path::new(value).is_absolute() => {
            let target = normalize(Path::new(value));
            let rel = target.strip_prefix("/").unwrap_or(&target);
            normalize(&root.join(rel))
        }
        _ => normalize(&base.join(value)),
    };
    if resolved.as_os_str().len() > MAX_PATH_LEN {
        let hint = if root.is_some() {
            "use a shorter --root"
        } else {
            "move plugins.conf closer to the files or use a shorter path"
        };
        return Err((
            Some(field),
            format!(
                "resolves to {} ({} bytes), at most {MAX_PATH_LEN} bytes are allowed; {hint}",
                resolved.display(),
                resolved.as_os_str().len()
            ),
        ));
    }
    Ok(Some(resolved))
}

/// `path` made absolute against the current directory (lexically, no symlinks
/// resolved: on a firmware image the configured path is the one to report).
pub fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        normalize(path)
    } else {
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
        normalize(&cwd.join(path))
    }
}

/// Drops `.` components and folds `dir/..` lexically.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            // `/..` is `/`, as the kernel resolves it.
            Component::ParentDir => {
                if !out.pop() && !out.has_root() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}
