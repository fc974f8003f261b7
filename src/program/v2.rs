//! What version 2 of the program extension adds to a loaded program: its
//! debugger provider (installed for `crate::debugger` while the program is
//! loaded, `debug`) and its RETAIN variables (`retain`).

use std::ffi::{CStr, c_void};
use std::path::{Path, PathBuf};
use std::ptr::NonNull;

use super::Program;
use super::ext2::{self, Ext2};
use super::retain::{self, Retain};
use crate::image::RuntimeArgs;

/// A program's version 2 parts.
pub struct V2 {
    ext: Ext2,
    /// Whether this program answers the debugger callbacks (the runtime's
    /// program, not `check`'s).
    debug: bool,
    retain: Option<Retain>,
}

impl V2 {
    /// Reads the version 2 symbols; `claim`: this is the runtime's program,
    /// whose variables the debugger callbacks address from now on.
    pub fn read(
        lookup: &dyn Fn(&CStr) -> Option<NonNull<c_void>>,
        claim: bool,
    ) -> Result<V2, String> {
        let ext = ext2::read(lookup)?;
        if claim {
            super::debug::install(ext.debug);
        }
        Ok(V2 {
            ext,
            debug: claim,
            retain: None,
        })
    }

    /// After a cycle's tasks (scan thread, image lock held).
    pub fn after_tasks(&self, rel: u64) {
        if let Some(r) = &self.retain {
            r.after_tasks(rel);
        }
    }
}

impl Drop for V2 {
    fn drop(&mut self) {
        if self.debug {
            super::debug::uninstall();
        }
        // `retain` is dropped next: its final save.
    }
}

/// A C string buffer of the args struct as a path (`None` when empty).
fn c_path(buf: &[std::ffi::c_char]) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    let bytes: Vec<u8> = buf
        .iter()
        .take_while(|c| **c != 0)
        .map(|c| *c as u8)
        .collect();
    (!bytes.is_empty()).then(|| PathBuf::from(std::ffi::OsStr::from_bytes(&bytes)))
}

impl Program {
    /// The runtime's program, just loaded by plugin `label` with runtime args
    /// `args`: reads its config file (`retain_period_ms`) and restores its
    /// RETAIN variables from its state directory, before any task runs.
    pub fn attach(&mut self, args: &RuntimeArgs, label: &str) -> Result<(), String> {
        let config = c_path(&args.plugin_specific_config_file_path);
        let state = c_path(&args.plugin_state_dir);
        self.attach_to(config.as_deref(), state.as_deref(), label)
    }

    fn attach_to(
        &mut self,
        config: Option<&Path>,
        state: Option<&Path>,
        label: &str,
    ) -> Result<(), String> {
        let period_ms = match config {
            Some(p) => retain::parse_config(p)?,
            None => None,
        }
        .unwrap_or(retain::DEFAULT_PERIOD_MS);
        let period_ns = self.period_ns;
        let Some(v2) = &mut self.v2 else {
            return Ok(());
        };
        v2.retain = Retain::start(
            v2.ext.retain,
            &v2.ext.build_id,
            state,
            period_ms,
            period_ns,
            label,
        );
        Ok(())
    }

    /// The build identity the program was compiled with.
    pub fn build_id(&self) -> Option<&str> {
        self.v2.as_ref().map(|v| v.ext.build_id.as_str())
    }

    /// Periodic RETAIN saves written and skipped, if it retains anything.
    pub fn retain_saves(&self) -> Option<(u64, u64)> {
        self.v2.as_ref()?.retain.as_ref().map(Retain::saves)
    }
}
