//! The program extension's C ABI (`glue/openplc_program.h`), the version 1
//! part: the structs as `repr(C)` and the functions found with `dlsym`
//! (version 2's additions: `ext2`).

use std::ffi::{CStr, c_char, c_int, c_void};
use std::ptr::NonNull;

/// The version of `openplc_program.h` this runtime speaks.
pub const ABI_VERSION: u32 = 2;

/// `struct openplc_program_task`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct RawTask {
    pub name: *const c_char,
    pub interval_ns: u64,
}

/// `struct openplc_program_var`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct RawVar {
    pub area: u8,
    pub size: u8,
    pub index: u16,
    pub bit: u8,
    pub var_bytes: u8,
    pub reserved: [u8; 2],
    pub value: *mut c_void,
    pub name: *const c_char,
}

type AbiFn = unsafe extern "C" fn() -> u32;
type CountFn = unsafe extern "C" fn() -> u32;
type TasksFn = unsafe extern "C" fn() -> *const RawTask;
type VarsFn = unsafe extern "C" fn() -> *const RawVar;
/// `int openplc_program_run_task(uint32_t)`.
pub type RunTaskFn = unsafe extern "C" fn(u32) -> c_int;
/// `int64_t openplc_program_task_time_ns(uint32_t)`.
pub type TaskTimeFn = unsafe extern "C" fn(u32) -> i64;
type SignatureFn = unsafe extern "C" fn() -> u64;
/// `uint32_t openplc_program_retain_save(uint8_t *, uint32_t)`.
pub type RetainSaveFn = unsafe extern "C" fn(*mut u8, u32) -> u32;
/// `int openplc_program_retain_restore(const uint8_t *, uint32_t)`.
pub type RetainRestoreFn = unsafe extern "C" fn(*const u8, u32) -> c_int;

/// The marker: a native plugin exporting it is a program.
pub const MARKER: &CStr = c"openplc_program_abi";

/// The other symbols version 1 requires.
const REQUIRED: [&CStr; 10] = [
    c"openplc_program_task_count",
    c"openplc_program_tasks",
    c"openplc_program_run_task",
    c"openplc_program_task_time_ns",
    c"openplc_program_var_count",
    c"openplc_program_vars",
    c"openplc_program_retain_size",
    c"openplc_program_retain_signature",
    c"openplc_program_retain_save",
    c"openplc_program_retain_restore",
];

/// What the plugin's extension gave: its tables copied out, its two calls.
pub struct Extension {
    pub tasks: Vec<RawTask>,
    pub vars: Vec<RawVar>,
    pub run_task: RunTaskFn,
    pub task_time: TaskTimeFn,
    /// RETAIN: snapshot size in bytes (0: none) and the build's signature.
    pub retain_size: usize,
    pub retain_signature: u64,
    pub retain_save: RetainSaveFn,
    pub retain_restore: RetainRestoreFn,
}

/// Reads the extension of a library whose symbols `lookup` finds; `Ok(None)`
/// when it has no marker (a plain native plugin).
pub fn read(
    lookup: &dyn Fn(&CStr) -> Option<NonNull<c_void>>,
) -> Result<Option<Extension>, String> {
    let Some(abi) = lookup(MARKER) else {
        return Ok(None);
    };
    let missing: Vec<&str> = REQUIRED
        .iter()
        .filter(|n| lookup(n).is_none())
        .filter_map(|n| n.to_str().ok())
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "it exports openplc_program_abi but not {}: a half-built program (build it with scripts/build-plc-program)",
            missing.join(", ")
        ));
    }
    let f = |n: &CStr| {
        lookup(n)
            .map(NonNull::as_ptr)
            .unwrap_or(std::ptr::null_mut())
    };
    // SAFETY: openplc_program.h declares these symbols as functions of these
    // types (a data and a function pointer have the same representation on
    // every target, as POSIX requires for dlsym); all were found above.
    let (abi, task_count, tasks, run_task, task_time, var_count, vars) = unsafe {
        (
            std::mem::transmute::<*mut c_void, AbiFn>(abi.as_ptr()),
            std::mem::transmute::<*mut c_void, CountFn>(f(REQUIRED[0])),
            std::mem::transmute::<*mut c_void, TasksFn>(f(REQUIRED[1])),
            std::mem::transmute::<*mut c_void, RunTaskFn>(f(REQUIRED[2])),
            std::mem::transmute::<*mut c_void, TaskTimeFn>(f(REQUIRED[3])),
            std::mem::transmute::<*mut c_void, CountFn>(f(REQUIRED[4])),
            std::mem::transmute::<*mut c_void, VarsFn>(f(REQUIRED[5])),
        )
    };
    // SAFETY: as above, for the RETAIN functions.
    let (retain_size, retain_signature, retain_save, retain_restore) = unsafe {
        (
            std::mem::transmute::<*mut c_void, CountFn>(f(REQUIRED[6])),
            std::mem::transmute::<*mut c_void, SignatureFn>(f(REQUIRED[7])),
            std::mem::transmute::<*mut c_void, RetainSaveFn>(f(REQUIRED[8])),
            std::mem::transmute::<*mut c_void, RetainRestoreFn>(f(REQUIRED[9])),
        )
    };
    // SAFETY: plain calls without arguments into the loaded library.
    let version = unsafe { abi() };
    if version != ABI_VERSION {
        return Err(format!(
            "its program extension is version {version}, this runtime speaks version {ABI_VERSION}: rebuild the program with this runtime's scripts/build-plc-program"
        ));
    }
    // SAFETY: as above; the glue returns arrays of `count` entries that stay
    // valid while the library is loaded; they are copied here at once.
    let (tasks, vars) = unsafe { (table(task_count(), tasks())?, table(var_count(), vars())?) };
    // SAFETY: plain calls without arguments into the loaded library.
    let (retain_size, retain_signature) = unsafe { (retain_size() as usize, retain_signature()) };
    Ok(Some(Extension {
        tasks,
        vars,
        run_task,
        task_time,
        retain_size,
        retain_signature,
        retain_save,
        retain_restore,
    }))
}

/// `n` entries at `p`, copied.
///
/// # Safety
/// `p` must point at `n` initialised entries (or `n` be 0).
unsafe fn table<T: Copy>(n: u32, p: *const T) -> Result<Vec<T>, String> {
    if n == 0 {
        return Ok(Vec::new());
    }
    if p.is_null() {
        return Err("the glue returned a null table".into());
    }
    // SAFETY: the caller's promise.
    Ok(unsafe { std::slice::from_raw_parts(p, n as usize) }.to_vec())
}
