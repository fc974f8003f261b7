//! plugins.conf: the OpenPLC v4 plugin list, parsed strictly.
//!
//! Format, one plugin per line: `name,path,enabled,type,config_path,venv_path`.
//! Legacy 5-field (no venv) and 4-field (no config) lines are valid. Unlike
//! OpenPLC's own parser, an empty field keeps its position, values are never
//! truncated, and every bad line is reported (all of them, at once) as
//! `FILE:LINE: field N (NAME): reason`.
//!
//! Lines are split here ([`Builder`]), not by the csv crate: csv skips comment
//! and blank lines itself and then reports positions that no longer match the
//! file, and it only knows comments that start in column 0. Each remaining line
//! is then read by `line` (its fields and paths) as one csv record, so quoting
//! works as csv users expect, and deserialized with serde.

use std::fmt;
use std::path::{Path, PathBuf};

mod line;

pub use line::absolute;
use line::parse_line;

/// OpenPLC v4 loads at most 16 plugins; a 17th line is an error here, never
/// dropped in silence as OpenPLC does.
pub const MAX_PLUGINS: usize = 16;
/// OpenPLC keeps plugin names in a 64-byte buffer (63 bytes + NUL).
pub const MAX_NAME_LEN: usize = 63;
/// Paths end up in 256-byte C buffers (the capsule's config path is one), so
/// 255 bytes is the longest value that survives without truncation.
pub const MAX_PATH_LEN: usize = 255;
/// Fields of the current format; a line with more is an error.
pub const MAX_FIELDS: usize = 6;
/// Fields of the oldest accepted (legacy) format.
pub const MIN_FIELDS: usize = 4;

/// Field names, indexed by field number - 1, as the errors print them.
pub const FIELD_NAMES: [&str; MAX_FIELDS] = [
    "name",
    "path",
    "enabled",
    "type",
    "config_path",
    "venv_path",
];

/// A plugin name: bounded by OpenPLC's limit, so it never needs truncating.
pub type PluginName = heapless::String<MAX_NAME_LEN>;

/// What a plugin file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluginKind {
    /// Type 0: a Python module.
    Python,
    /// Type 1: a native shared object.
    Native,
}

impl fmt::Display for PluginKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PluginKind::Python => "python",
            PluginKind::Native => "native",
        })
    }
}

/// One valid plugins.conf line, paths made absolute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginEntry {
    /// The file the line is in: plugins.conf or one of its drop-ins.
    pub file: PathBuf,
    /// 1-based line number in that file.
    pub line: usize,
    pub name: PluginName,
    /// The plugin file, relative paths resolved against its file's directory.
    pub path: PathBuf,
    pub enabled: bool,
    pub kind: PluginKind,
    /// Handed to the plugin in the capsule; `None` when the field is empty or absent.
    pub config_path: Option<PathBuf>,
    /// The plugin's venv; `None` means stdlib and system site-packages only.
    pub venv_path: Option<PathBuf>,
}

impl PluginEntry {
    /// Where the plugin is defined, as `FILE:LINE` (every message about a
    /// plugin starts with it).
    pub fn origin(&self) -> String {
        format!("{}:{}", self.file.display(), self.line)
    }
}

/// What became of one file the configuration was looked for in (listed by
/// `check`, so an operator sees why a drop-in did or did not apply).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceState {
    /// Read; its plugins are in the list.
    Loaded,
    /// The main plugins.conf does not exist (allowed when drop-ins do).
    Absent,
    /// A symlink to /dev/null or an empty file: it masks same-named drop-ins
    /// of lower priority and adds nothing.
    Masked,
    /// A drop-in of the same name in a higher-priority directory replaces it.
    Overridden { by: PathBuf },
}

/// One file of the configuration and what became of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub path: PathBuf,
    pub state: SourceState,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.path.display())?;
        match &self.state {
            SourceState::Loaded => f.write_str("read"),
            SourceState::Absent => f.write_str("absent"),
            SourceState::Masked => f.write_str("masked (empty or a link to /dev/null)"),
            SourceState::Overridden { by } => write!(f, "overridden by {}", by.display()),
        }
    }
}

/// A parsed plugin configuration: plugins.conf, and its drop-ins when it was
/// loaded by [`crate::dropins::load`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginsConf {
    /// The main plugins.conf (as given on the command line).
    pub file: PathBuf,
    /// Every file considered, main file first, then drop-ins in load order.
    pub sources: Vec<Source>,
    /// Entries in load order; the capacity is [`MAX_PLUGINS`].
    pub plugins: heapless::Vec<PluginEntry, MAX_PLUGINS>,
    /// `--root`, when the files were read under it: the root trust checks
    /// walk paths under it from it.
    pub root: Option<PathBuf>,
}

impl PluginsConf {
    /// Whether anything but a lone main file was involved (drop-ins, or an
    /// absent main file): then the sources are worth listing.
    pub fn has_dropins(&self) -> bool {
        self.sources.len() > 1 || self.sources.iter().any(|s| s.state != SourceState::Loaded)
    }

    /// Enabled plugins, in load order.
    pub fn enabled(&self) -> impl Iterator<Item = &PluginEntry> {
        self.plugins.iter().filter(|p| p.enabled)
    }
}

/// One problem on one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    pub file: PathBuf,
    /// 1-based; 0 when the problem is the file itself (unreadable).
    pub line: usize,
    /// 1-based field number, when one field is at fault.
    pub field: Option<usize>,
    pub reason: String,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self.file.display();
        match (self.line, self.field) {
            (0, _) => write!(f, "{file}: {}", self.reason),
            (line, Some(n)) => write!(
                f,
                "{file}:{line}: field {n} ({}): {}",
                FIELD_NAMES[n - 1],
                self.reason
            ),
            (line, None) => write!(f, "{file}:{line}: {}", self.reason),
        }
    }
}

/// Reads and parses `file` alone (no drop-ins). Relative paths inside it are
/// resolved against the directory that holds it.
pub fn load(file: &Path) -> Result<PluginsConf, Vec<LineError>> {
    let bytes = std::fs::read(file).map_err(|e| vec![unreadable(file, &e)])?;
    let mut b = Builder::new(file);
    b.add(file, &bytes, None);
    b.finish()
}

/// The error for a configuration file that cannot be read.
pub fn unreadable(file: &Path, e: &std::io::Error) -> LineError {
    LineError {
        file: file.to_path_buf(),
        line: 0,
        field: None,
        reason: format!("cannot read plugins.conf: {e}"),
    }
}

/// Parses plugins.conf contents. `file` only names the file in errors; `base` is
/// the directory relative paths are resolved against.
pub fn parse(file: &Path, base: &Path, bytes: &[u8]) -> Result<PluginsConf, Vec<LineError>> {
    let mut b = Builder::new(file);
    b.add_with_base(file, base, bytes, None);
    b.finish()
}

/// Collects the plugins of one or more files in load order, with every
/// problem; names and the capacity are checked across all of them.
#[derive(Debug)]
pub struct Builder {
    conf: PluginsConf,
    errors: Vec<LineError>,
    /// Lines counted for the capacity check: every plugin line, enabled or not,
    /// valid or not, as OpenPLC counts them.
    plugin_lines: usize,
}

impl Builder {
    /// An empty configuration whose main file is `main`.
    pub fn new(main: &Path) -> Builder {
        Builder {
            conf: PluginsConf {
                file: main.to_path_buf(),
                sources: Vec::new(),
                plugins: heapless::Vec::new(),
                root: None,
            },
            errors: Vec::new(),
            plugin_lines: 0,
        }
    }

    /// Records a file that was considered (for `check`'s listing).
    pub fn source(&mut self, path: &Path, state: SourceState) {
        self.conf.sources.push(Source {
            path: path.to_path_buf(),
            state,
        });
    }

    /// Records the `--root` the files are read under.
    pub fn root(&mut self, root: Option<&Path>) {
        self.conf.root = root.map(Path::to_path_buf);
    }

    /// Records a problem that is not about one line (an unreadable file).
    pub fn error(&mut self, e: LineError) {
        self.errors.push(e);
    }

    /// Adds the contents of `file`; relative paths resolve against its
    /// directory, absolute ones under `root` when given (`--root`).
    pub fn add(&mut self, file: &Path, bytes: &[u8], root: Option<&Path>) {
        let abs = absolute(file);
        let base = abs.parent().unwrap_or(Path::new("/")).to_path_buf();
        self.add_with_base(file, &base, bytes, root);
    }

    fn add_with_base(&mut self, file: &Path, base: &Path, bytes: &[u8], root: Option<&Path>) {
        self.source(file, SourceState::Loaded);
        for (idx, raw) in bytes.split(|&b| b == b'\n').enumerate() {
            let line_no = idx + 1;
            let err = |field: Option<usize>, reason: String| LineError {
                file: file.to_path_buf(),
                line: line_no,
                field,
                reason,
            };
            let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
            let Ok(text) = std::str::from_utf8(raw) else {
                self.errors.push(err(None, "not valid UTF-8".into()));
                continue;
            };
            let trimmed = text.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            self.plugin_lines += 1;
            match parse_line(trimmed, base, root) {
                Ok(mut entry) => {
                    entry.file = file.to_path_buf();
                    entry.line = line_no;
                    if let Some(first) = self.conf.plugins.iter().find(|p| p.name == entry.name) {
                        let at = if first.file == entry.file {
                            format!("line {}", first.line)
                        } else {
                            first.origin()
                        };
                        self.errors.push(err(
                            Some(1),
                            format!(
                                "duplicate plugin name `{}` (first defined on {at}); names must be unique",
                                entry.name
                            ),
                        ));
                        continue;
                    }
                    if let Err(entry) = self.conf.plugins.push(entry) {
                        self.errors.push(err(
                            None,
                            format!(
                                "plugin `{}` is plugin number {}, but at most {MAX_PLUGINS} plugins are supported; remove or merge plugins",
                                entry.name, self.plugin_lines
                            ),
                        ));
                    }
                }
                Err(list) => self.errors.extend(list.into_iter().map(|(f, r)| err(f, r))),
            }
        }
    }

    /// The configuration, or every problem found.
    pub fn finish(self) -> Result<PluginsConf, Vec<LineError>> {
        if self.errors.is_empty() {
            Ok(self.conf)
        } else {
            Err(self.errors)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(text: &str) -> PluginsConf {
        parse(
            Path::new("plugins.conf"),
            Path::new("/etc/openplc"),
            text.as_bytes(),
        )
        .unwrap_or_else(|e| panic!("unexpected errors: {e:?}"))
    }

    fn parse_err(text: &str) -> Vec<String> {
        parse(
            Path::new("plugins.conf"),
            Path::new("/etc/openplc"),
            text.as_bytes(),
        )
        .expect_err("expected errors")
        .iter()
        .map(ToString::to_string)
        .collect()
    }

    #[test]
    fn full_line_with_relative_paths() {
        let c = parse_ok("mb,./plugins/mb/plugin.py,1,0,./mb.json,./venvs/mb\n");
        let p = &c.plugins[0];
        assert_eq!(p.name.as_str(), "mb");
        assert_eq!(p.path, Path::new("/etc/openplc/plugins/mb/plugin.py"));
        assert!(p.enabled);
        assert_eq!(p.kind, PluginKind::Python);
        assert_eq!(
            p.config_path.as_deref(),
            Some(Path::new("/etc/openplc/mb.json"))
        );
        assert_eq!(
            p.venv_path.as_deref(),
            Some(Path::new("/etc/openplc/venvs/mb"))
        );
        assert_eq!(p.line, 1);
    }

    #[test]
    fn empty_field_keeps_its_position() {
        // OpenPLC merges the empty field and puts the venv into the config slot.
        let c = parse_ok("a,p.py,1,0,,./venvs/a");
        assert_eq!(c.plugins[0].config_path, None);
        assert_eq!(
            c.plugins[0].venv_path.as_deref(),
            Some(Path::new("/etc/openplc/venvs/a"))
        );
    }

    #[test]
    fn legacy_five_and_four_fields() {
        let c = parse_ok("a,/x/a.py,1,0,/x/a.ini\nb,/x/b.py,0,0\n");
        assert_eq!(
            c.plugins[0].config_path.as_deref(),
            Some(Path::new("/x/a.ini"))
        );
        assert_eq!(c.plugins[0].venv_path, None);
        assert_eq!(c.plugins[1].config_path, None);
        assert!(!c.plugins[1].enabled);
        assert_eq!(c.enabled().count(), 1);
    }

    #[test]
    fn comments_blank_lines_crlf_and_trimming() {
        let text =
            "# header\r\n\r\n   # indented comment\r\n\t\r\n  a , /x/a.py , 1 , 0 , , /v/a \r\n";
        let c = parse_ok(text);
        assert_eq!(c.plugins.len(), 1);
        let p = &c.plugins[0];
        assert_eq!(p.name.as_str(), "a");
        assert_eq!(p.path, Path::new("/x/a.py"));
        assert_eq!(p.venv_path.as_deref(), Some(Path::new("/v/a")));
        assert_eq!(p.line, 5);
    }

    #[test]
    fn line_numbers_survive_comments_and_blank_lines() {
        let errs = parse_err("# c\n\n  # c2\n\nok,/a.py,1,0\n\n# c3\nbad,/b.py,yes,0\n");
        assert_eq!(
            errs,
            ["plugins.conf:8: field 3 (enabled): `yes` is not 0 or 1"]
        );
    }

    #[test]
    fn all_bad_lines_reported_at_once() {
        let long_name = "n".repeat(64);
        let long_path = format!("/{}", "p".repeat(255));
        let text = format!(
            "a,/a.py,1,0\nb,/b.py,2,0\nc,/c.py,1,0,,/v,extra\n{long_name},/d.py,1,0\ne,{long_path},1,0\na,/a2.py,1,0\nf\n,/g.py,1,0\nh,,1,0\nn,/n.so,1,1,,/venv\nt,/t.py,1,7\n"
        );
        let errs = parse_err(&text);
        assert_eq!(
            errs,
            [
                "plugins.conf:2: field 3 (enabled): `2` is not 0 or 1",
                "plugins.conf:3: 7 fields, at most 6 are allowed (name,path,enabled,type,config_path,venv_path)",
                &format!(
                    "plugins.conf:4: field 1 (name): `{long_name}` is 64 bytes long, at most 63 bytes are allowed"
                ),
                "plugins.conf:5: field 2 (path): 256 bytes long, at most 255 bytes are allowed",
                "plugins.conf:6: field 1 (name): duplicate plugin name `a` (first defined on line 1); names must be unique",
                "plugins.conf:7: 1 field(s), at least 4 are needed (name,path,enabled,type[,config_path[,venv_path]])",
                "plugins.conf:8: field 1 (name): empty; every plugin needs a name",
                "plugins.conf:9: field 2 (path): empty; the plugin file is required",
                "plugins.conf:10: field 6 (venv_path): a native plugin (type 1) has no Python venv; leave this field empty",
                "plugins.conf:11: field 4 (type): unknown plugin type `7`; 0 = Python, 1 = native .so",
            ]
        );
    }

    #[test]
    fn duplicate_of_a_bad_line_is_not_reported_twice() {
        // Line 1 is invalid, so it never becomes the "first" of a name.
        let errs = parse_err("a,/a.py,9,0\na,/a.py,1,0\n");
        assert_eq!(errs.len(), 1);
    }

    #[test]
    fn capacity_is_an_error_not_a_silent_drop() {
        let mut text = String::new();
        for i in 0..=MAX_PLUGINS {
            text.push_str(&format!("p{i},/p{i}.py,0,0\n"));
        }
        let errs = parse_err(&text);
        assert_eq!(
            errs,
            [
                "plugins.conf:17: plugin `p16` is plugin number 17, but at most 16 plugins are supported; remove or merge plugins"
            ]
        );
    }

    #[test]
    fn max_lengths_are_accepted() {
        let name = "n".repeat(MAX_NAME_LEN);
        let path = format!("/{}", "p".repeat(MAX_PATH_LEN - 1));
        let c = parse_ok(&format!("{name},{path},1,0\n"));
        assert_eq!(c.plugins[0].name.len(), MAX_NAME_LEN);
        assert_eq!(c.plugins[0].path.as_os_str().len(), MAX_PATH_LEN);
    }

    #[test]
    fn resolved_path_too_long_is_reported() {
        let rel = "p".repeat(250);
        let errs = parse(
            Path::new("plugins.conf"),
            Path::new("/a/rather/long/base/directory"),
            format!("a,{rel},1,0\n").as_bytes(),
        )
        .unwrap_err();
        assert_eq!(errs[0].field, Some(2));
        assert!(
            errs[0].reason.contains("resolves to /a/rather/long"),
            "{}",
            errs[0]
        );
    }

    #[test]
    fn invalid_utf8_names_the_line() {
        let errs = parse(Path::new("c"), Path::new("/"), b"# ok\na\xff,/a.py,1,0\n").unwrap_err();
        assert_eq!(errs[0].to_string(), "c:2: not valid UTF-8");
    }

    #[test]
    fn unreadable_file_is_an_error_naming_it() {
        let errs = load(Path::new("/nonexistent/plugins.conf")).unwrap_err();
        assert!(
            errs[0]
                .to_string()
                .starts_with("/nonexistent/plugins.conf: cannot read")
        );
    }

    #[test]
    fn parent_components_fold() {
        let c = parse_ok("a,../lib/a.py,1,0\n");
        assert_eq!(c.plugins[0].path, Path::new("/etc/lib/a.py"));
        // Above the root is the root, as the kernel has it (this was `/../x`;
        // seen while writing the fuzz targets' invariants).
        let c = parse_ok("a,../../../x.py,1,0\n");
        assert_eq!(c.plugins[0].path, Path::new("/x.py"));
    }
}
