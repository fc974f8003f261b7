//! Version 2 of the program extension (`glue/openplc_program.h`): the build's
//! identity, the debugger provider (`openplc_program_debug_*`) and RETAIN
//! access (`openplc_program_retain_*`), found with `dlsym` next to the
//! version 1 symbols (`abi`).

use std::ffi::{CStr, c_char, c_int, c_void};
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

/// The RETAIN calls.
#[derive(Clone, Copy)]
pub struct RetainFns {
    pub count: unsafe extern "C" fn() -> u32,
    pub size: unsafe extern "C" fn() -> u32,
    pub save: unsafe extern "C" fn(*mut u8),
    pub restore: unsafe extern "C" fn(*const u8, u32) -> c_int,
}

/// What version 2 adds.
#[derive(Clone)]
pub struct Ext2 {
    pub build_id: String,
    pub debug: DebugFns,
    pub retain: RetainFns,
}

/// The symbols version 2 requires, in the order `read` uses them.
const REQUIRED: [&CStr; 11] = [
    c"openplc_program_build_id",
    c"openplc_program_debug_array_count",
    c"openplc_program_debug_elem_count",
    c"openplc_program_debug_size",
    c"openplc_program_debug_read",
    c"openplc_program_debug_write",
    c"openplc_program_debug_set",
    c"openplc_program_retain_count",
    c"openplc_program_retain_size",
    c"openplc_program_retain_save",
    c"openplc_program_retain_restore",
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
pub fn read(lookup: &dyn Fn(&CStr) -> Option<NonNull<c_void>>) -> Result<Ext2, String> {
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
        let build_id_fn =
            std::mem::transmute::<*mut c_void, unsafe extern "C" fn() -> *const c_char>(found[0]);
        let debug = DebugFns {
            array_count: as_fn(found[1]),
            elem_count: as_fn(found[2]),
            size: as_fn(found[3]),
            read: as_fn(found[4]),
            write: as_fn(found[5]),
            set: as_fn(found[6]),
        };
        let retain = RetainFns {
            count: as_fn(found[7]),
            size: as_fn(found[8]),
            save: as_fn(found[9]),
            restore: as_fn(found[10]),
        };
        let id = build_id_fn();
        if id.is_null() {
            return Err("openplc_program_build_id() returned NULL".into());
        }
        let build_id = CStr::from_ptr(id).to_string_lossy().into_owned();
        Ok(Ext2 {
            build_id,
            debug,
            retain,
        })
    }
}
