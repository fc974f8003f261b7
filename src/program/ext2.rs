//! Version 2 of the program extension (`glue/openplc_program.h`): the
//! debugger provider (`openplc_program_debug_*`), found with `dlsym` next to
//! the version 1 symbols (`abi`).

use std::ffi::{CStr, c_void};
use std::ptr::NonNull;

/// The debugger calls, OpenPLC's signatures.
#[derive(Clone, Copy)]
pub struct DebugFns {
    pub array_count: unsafe extern "C" fn() -> u8,
    pub elem_count: unsafe extern "C" fn(u8) -> u16,
    pub size: unsafe extern "C" fn(u8, u16) -> u16,
    pub read: unsafe extern "C" fn(u8, u16, *mut u8) -> u16,
    pub write: unsafe extern "C" fn(u8, u16, *const u8, u16) -> u8,
    pub set: unsafe extern "C" fn(u8, u16, bool, *const u8, u16) -> u8,
}

/// The symbols version 2 adds, in the order `read` uses them.
const REQUIRED: [&CStr; 6] = [
    c"openplc_program_debug_array_count",
    c"openplc_program_debug_elem_count",
    c"openplc_program_debug_size",
    c"openplc_program_debug_read",
    c"openplc_program_debug_write",
    c"openplc_program_debug_set",
];

/// A symbol's address as the function type `F`.
///
/// # Safety
/// `p` must be a function of type `F`.
unsafe fn as_fn<F>(p: *mut c_void) -> F {
    assert_eq!(size_of::<F>(), size_of::<*mut c_void>());
    // SAFETY: the caller's promise; same size, checked above.
    unsafe { std::mem::transmute_copy::<*mut c_void, F>(&p) }
}

/// Reads the version 2 symbols of a program whose version 1 part was read
/// and whose `openplc_program_abi()` answered 2.
pub fn read(lookup: &dyn Fn(&CStr) -> Option<NonNull<c_void>>) -> Result<DebugFns, String> {
    let mut found = [std::ptr::null_mut::<c_void>(); REQUIRED.len()];
    let mut missing = Vec::new();
    for (slot, name) in found.iter_mut().zip(REQUIRED) {
        match lookup(name) {
            Some(p) => *slot = p.as_ptr(),
            None => missing.push(name.to_string_lossy().into_owned()),
        }
    }
    if !missing.is_empty() {
        return Err(format!(
            "it says program extension version 2 but does not export {}: a half-built program (build it with scripts/build-plc-program)",
            missing.join(", ")
        ));
    }
    // SAFETY: openplc_program.h declares these symbols as functions of these
    // types; all were found above (see `abi::read` on dlsym and function
    // pointers).
    unsafe {
        Ok(DebugFns {
            array_count: as_fn(found[0]),
            elem_count: as_fn(found[1]),
            size: as_fn(found[2]),
            read: as_fn(found[3]),
            write: as_fn(found[4]),
            set: as_fn(found[5]),
        })
    }
}
