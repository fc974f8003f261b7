//! What version 2 of the program extension adds to a loaded program: its
//! debugger provider, installed for `crate::debugger` while the runtime's
//! program is loaded (`debug`).

use std::ffi::{CStr, c_void};
use std::ptr::NonNull;

use super::ext2::{self, DebugFns};

/// A program's version 2 parts.
pub struct V2 {
    debug: DebugFns,
    /// Whether this program answers the debugger callbacks (the runtime's
    /// program, not `check`'s).
    installed: bool,
}

impl V2 {
    /// Reads the version 2 symbols.
    pub fn read(lookup: &dyn Fn(&CStr) -> Option<NonNull<c_void>>) -> Result<V2, String> {
        Ok(V2 {
            debug: ext2::read(lookup)?,
            installed: false,
        })
    }

    /// This is the runtime's program: the debugger callbacks address its
    /// variables from now on, until it is dropped.
    pub fn claim(&mut self) {
        super::debug::install(self.debug);
        self.installed = true;
    }
}

impl Drop for V2 {
    fn drop(&mut self) {
        if self.installed {
            super::debug::uninstall();
        }
    }
}
