//! Each plugin's writable directory under the runtime's state directory.
//!
//! The root filesystem is read-only on the image, so a plugin that writes
//! (certificates, caches, logs) needs a place that is not next to its own
//! files. The runtime gives every plugin `<state>/plugins/<name>/`, where
//! `<state>` is `$STATE_DIRECTORY` (systemd's `StateDirectory=openplc`, i.e.
//! `/var/lib/openplc`) or, without it, `/var/lib/openplc` if that exists.
//!
//! The directory is created (mode 0750, owned by the runtime's user, which is
//! the user plugins run as) before the plugin is loaded, and its path handed to
//! the plugin:
//! - in the capsule's extension block (`plugin_state_dir`, ext_version ≥ 2), in
//!   every isolation mode and for native plugins;
//! - as `OPENPLC_PLUGIN_STATE_DIR` in the environment of the plugin's worker
//!   process (`--isolation process`). In shared isolation all Python plugins
//!   share one process and one environment, so the variable is not set there;
//!   the capsule is the one place that works in both modes.
//!
//! A plugin that declares writable subpaths of its install directory
//! (`scripts/install-plugin --writable certs`) gets them as symlinks into this
//! same directory, created at boot by tmpfiles.
//!
//! Problems (no state directory, a directory owned by someone else, a path
//! too long for the struct) are logged with the plugin's name and the path; the
//! plugin then gets an empty path and runs anyway: most plugins write nothing.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::image::STATE_DIR_BUF;

/// The environment variable a worker process gets (process isolation).
pub const ENV_VAR: &str = "OPENPLC_PLUGIN_STATE_DIR";
/// The state directory when systemd does not pass `$STATE_DIRECTORY`.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/openplc";
/// Mode of the directories created here: the runtime's user writes, its group
/// reads (operators' tools), others nothing.
pub const DIR_MODE: u32 = 0o750;

/// The runtime's state directory: the first entry of `$STATE_DIRECTORY`
/// (systemd passes a colon-separated list), else [`DEFAULT_STATE_DIR`] (under
/// `--root DIR`, when given) when it exists. `None`: nothing writable is known
/// (a developer's shell, tests).
pub fn state_directory(root: Option<&Path>) -> Option<PathBuf> {
    match std::env::var_os("STATE_DIRECTORY") {
        Some(v) if !v.is_empty() => {
            let first = v.as_bytes().split(|b| *b == b':').next().unwrap_or(b"");
            Some(PathBuf::from(std::ffi::OsStr::from_bytes(first)))
        }
        _ => Some(crate::dropins::under_root(root, DEFAULT_STATE_DIR)).filter(|p| p.is_dir()),
    }
}

/// `<state>/plugins/<plugin>` for a given state directory.
pub fn dir_for(state: &Path, plugin: &str) -> PathBuf {
    state.join("plugins").join(plugin)
}

/// Creates (or checks) `dir` as a private directory of this user: a real
/// directory (not a symlink), owned by the effective uid, at most 0750 (group
/// write and every permission of others are removed from an existing one).
/// Missing parents are created with the same mode.
pub fn ensure_dir(dir: &Path) -> Result<(), String> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let meta = std::fs::symlink_metadata(dir)
        .map_err(|e| format!("cannot inspect {}: {e}", dir.display()))?;
    if !meta.file_type().is_dir() {
        return Err(format!(
            "{} is not a directory (a symlink or a file is in the way; remove it)",
            dir.display()
        ));
    }
    let uid = crate::sys::effective_uid();
    if meta.uid() != uid {
        return Err(format!(
            "{} is owned by uid {}, not by the runtime's uid {uid}: `chown {uid} {}` or remove it",
            dir.display(),
            meta.uid(),
            dir.display()
        ));
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & !DIR_MODE & 0o777 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode & DIR_MODE))
            .map_err(|e| format!("cannot make {} private: {e}", dir.display()))?;
    }
    Ok(())
}

/// Prepares `plugin`'s directory under `state`; returns its path.
pub fn prepare_in(state: &Path, plugin: &str) -> Result<PathBuf, String> {
    // plugins.conf names are checked for length only; a name that would leave
    // `<state>/plugins/` gets no directory rather than a surprising one.
    if plugin.is_empty() || plugin.starts_with('.') || plugin.contains('/') {
        return Err(format!(
            "the plugin name {plugin:?} cannot name a directory (no '/', no leading '.')"
        ));
    }
    let dir = dir_for(state, plugin);
    if dir.as_os_str().len() >= STATE_DIR_BUF {
        return Err(format!(
            "{} is {} bytes long; the capsule holds at most {} (use a shorter STATE_DIRECTORY)",
            dir.display(),
            dir.as_os_str().len(),
            STATE_DIR_BUF - 1
        ));
    }
    ensure_dir(&state.join("plugins"))?;
    ensure_dir(&dir)?;
    Ok(dir)
}

/// Prepares `plugin`'s directory under [`state_directory`]; logs why there is
/// none (naming the plugin) and returns `None` then.
pub fn prepare_logged(plugin: &str, root: Option<&Path>) -> Option<PathBuf> {
    let Some(state) = state_directory(root) else {
        log::debug!(
            "[{plugin}] no state directory ($STATE_DIRECTORY unset, no {DEFAULT_STATE_DIR}): the plugin gets no writable directory"
        );
        return None;
    };
    match prepare_in(&state, plugin) {
        Ok(dir) => Some(dir),
        Err(e) => {
            log::warn!("[{plugin}] gets no writable directory: {e}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(tag: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("openplc-state-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        p
    }

    #[test]
    fn creates_private_dirs_and_tightens_existing_ones() {
        let state = tmp("mk");
        let dir = prepare_in(&state, "opcua").unwrap();
        assert_eq!(dir, state.join("plugins/opcua"));
        for d in [state.join("plugins"), dir.clone()] {
            let m = std::fs::metadata(&d).unwrap();
            assert_eq!(m.permissions().mode() & 0o777, DIR_MODE, "{}", d.display());
            assert_eq!(m.uid(), crate::sys::effective_uid());
        }
        // A directory open to others (as a sloppy tmpfiles line would leave
        // it) is brought back to 0750; a stricter one stays as it is.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        prepare_in(&state, "opcua").unwrap();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o750);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        prepare_in(&state, "opcua").unwrap();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        let _ = std::fs::remove_dir_all(&state);
    }

    #[test]
    fn refuses_symlinks_bad_names_and_long_paths() {
        let state = tmp("bad");
        std::fs::create_dir_all(state.join("plugins")).unwrap();
        std::os::unix::fs::symlink("/tmp", state.join("plugins/evil")).unwrap();
        let e = prepare_in(&state, "evil").unwrap_err();
        assert!(e.contains("not a directory"), "{e}");
        assert!(prepare_in(&state, "../x").is_err());
        assert!(prepare_in(&state, ".hidden").is_err());
        let long = state.join("d".repeat(240));
        let e = prepare_in(&long, "p").unwrap_err();
        assert!(e.contains("bytes long"), "{e}");
        let _ = std::fs::remove_dir_all(&state);
    }

    #[test]
    fn the_default_state_directory_follows_root_and_must_exist() {
        if std::env::var_os("STATE_DIRECTORY").is_some() {
            return; // systemd's variable wins; the default is not used
        }
        let root = tmp("root");
        assert_eq!(state_directory(Some(&root)), None);
        std::fs::create_dir_all(root.join("var/lib/openplc")).unwrap();
        assert_eq!(
            state_directory(Some(&root)),
            Some(root.join("var/lib/openplc"))
        );
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn the_capsule_carries_the_directory_nul_terminated() {
        let img = crate::image::install(64).unwrap();
        let dir = Path::new("/var/lib/openplc/plugins/x");
        let args = img.runtime_args_for(0, None, Some(dir), 1);
        // SAFETY: structs from runtime_args_for live as long as the process
        // and nothing writes this one.
        let args = unsafe { args.as_ref() };
        // SAFETY: the buffer keeps its last byte NUL.
        let s = unsafe { std::ffi::CStr::from_ptr(args.plugin_state_dir.as_ptr()) };
        assert_eq!(s.to_str().unwrap(), "/var/lib/openplc/plugins/x");
        // SAFETY: as above.
        let none = unsafe { img.runtime_args(0, None, 1).as_ref() };
        assert_eq!(none.plugin_state_dir[0], 0);
    }
}
