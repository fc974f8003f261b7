//! OpenPLC's debugger interface over a loaded program's variables.
//!
//! While a program (extension version 2) is loaded, the six `debug_*`
//! callbacks of the runtime-args struct (`crate::debugger`) are answered by
//! the program's glue, with OpenPLC's meaning: `arr` is an array of the
//! program's debug tables (STruC++'s `generated_debug.cpp`: the globals
//! first, then one array per program instance), `elem` a leaf variable, sizes
//! per type, and `debug_set` forces through the variable's forced flag.
//! Without a program, `crate::debugger` keeps mapping arrays to the image
//! tables.
//!
//! Calls that touch a variable (read, write, set) take `RUNNING`, which the
//! scan thread holds while it runs the program's tasks and RETAIN snapshots
//! (with or without the image lock: a plugin holding the image lock does not
//! stop the tasks), so a debugger call never sees a task half-way and never
//! waits for the image lock. The program's calls are installed when it is
//! loaded and removed before its library is closed; removal waits for calls
//! in flight (they hold `ACTIVE`). Lock order: `ACTIVE`, then `RUNNING`.
//! No path allocates.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use super::ext2::DebugFns;
use crate::image;

static ACTIVE: Mutex<Option<DebugFns>> = Mutex::new(None);

/// Held by the scan thread around a program cycle and by debugger calls that
/// touch a variable. A debugger call holds it for one call into the glue.
static RUNNING: Mutex<()> = Mutex::new(());

/// The scan thread's hold on the program's variables for one cycle.
pub(super) fn running() -> MutexGuard<'static, ()> {
    RUNNING.lock().unwrap_or_else(|e| e.into_inner())
}

fn active() -> MutexGuard<'static, Option<DebugFns>> {
    ACTIVE.lock().unwrap_or_else(|e| e.into_inner())
}

/// The program's debugger calls answer from now on.
pub(super) fn install(fns: DebugFns) {
    *active() = Some(fns);
    if let Some(img) = image::get() {
        img.set_program_debug(true);
    }
}

/// The image tables answer again; returns once no call into the program is
/// in flight.
pub(super) fn uninstall() {
    let mut a = active();
    *a = None;
    if let Some(img) = image::get() {
        img.set_program_debug(false);
    }
}

/// Whether the program answering the debugger runs in another process (a
/// worker of `--isolation process` asks): its variables cannot be reached
/// from here, so the callbacks refuse instead of answering from the image.
/// Warns once per process.
pub fn elsewhere() -> bool {
    static WARNED: AtomicBool = AtomicBool::new(false);
    let remote = image::get().is_some_and(|img| img.program_debug()) && !is_active();
    if remote && !WARNED.swap(true, Ordering::Relaxed) {
        log::warn!(
            "a plugin called the debugger callbacks in a worker process, but the PLC program runs in the supervisor: they answer \"no such variable\" here; run plugins that use the debugger with --isolation shared"
        );
    }
    remote
}

/// Whether a program answers the debugger callbacks.
pub fn is_active() -> bool {
    active().is_some()
}

/// `f` with the program's calls, while no task runs when `locked`; `None`
/// without a program.
fn with<R>(locked: bool, f: impl FnOnce(&DebugFns) -> R) -> Option<R> {
    let guard = active();
    let fns = guard.as_ref()?;
    let _running = locked.then(running);
    Some(f(fns))
}

// The functions were found in the program's library, which stays loaded
// while they are installed (see `uninstall`).

/// `debug_array_count`, or `None` without a program.
pub fn array_count() -> Option<u8> {
    // SAFETY: a call without arguments into the loaded library.
    with(false, |f| unsafe { (f.array_count)() })
}

/// `debug_elem_count`.
pub fn elem_count(arr: u8) -> Option<u16> {
    // SAFETY: as above; bounds are checked by the glue.
    with(false, |f| unsafe { (f.elem_count)(arr) })
}

/// `debug_size`.
pub fn size(arr: u8, elem: u16) -> Option<u16> {
    // SAFETY: as above.
    with(false, |f| unsafe { (f.size)(arr, elem) })
}

/// `debug_read`.
///
/// # Safety
/// `dest` is NULL or holds `debug_size(arr, elem)` writable bytes (OpenPLC's
/// contract).
pub unsafe fn read(arr: u8, elem: u16, dest: *mut u8) -> Option<u16> {
    // SAFETY: the caller's promise; the glue checks NULL and bounds.
    with(true, |f| unsafe { (f.read)(arr, elem, dest) })
}

/// `debug_write`.
///
/// # Safety
/// `bytes` is NULL or points at `len` readable bytes.
pub unsafe fn write(arr: u8, elem: u16, bytes: *const u8, len: u16) -> Option<u8> {
    // SAFETY: the caller's promise; the glue checks NULL and the length.
    with(true, |f| unsafe { (f.write)(arr, elem, bytes, len) })
}

/// `debug_set`: forces (`forcing`) or unforces.
///
/// # Safety
/// When forcing, `bytes` is NULL or points at `len` readable bytes.
pub unsafe fn set(arr: u8, elem: u16, forcing: bool, bytes: *const u8, len: u16) -> Option<u8> {
    // SAFETY: the caller's promise; the glue checks NULL and the length.
    with(true, |f| unsafe { (f.set)(arr, elem, forcing, bytes, len) })
}
