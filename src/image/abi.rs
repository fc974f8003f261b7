//! The C ABI plugins see: OpenPLC's runtime-args struct, laid out field for
//! field (pinned by compile-time offset checks), and how one is filled for a
//! plugin: pointers into this process's image, the callbacks, the config path.
//!
//! Python and native plugins get structs of the same layout that differ in
//! their log callbacks ([`LogFn`]): plain text for Python, printf-style for
//! native plugins, as OpenPLC's two sides call them.

use std::ffi::{CStr, c_char, c_int, c_uint, c_ulonglong, c_void};
use std::path::Path;
use std::ptr::NonNull;
use std::sync::Mutex;

use super::callbacks::*;
use super::{BITS_PER_BUFFER, Image, Table};
use crate::config::MAX_PLUGINS;

/// The capsule name Python plugins pass to `PyCapsule_GetPointer`.
pub const CAPSULE_NAME: &CStr = c"openplc_runtime_args";
/// `ext_magic`: marks the fields appended after OpenPLC's layout ("OPLC").
pub const ABI_MAGIC: u32 = 0x4F50_4C43;
/// `ext_version`: bumped whenever fields are appended (never reordered).
/// 2: `plugin_state_dir` appended.
pub const ABI_VERSION: u32 = 2;
/// Size of the plugin config path buffer in the struct (255 bytes + NUL).
pub const CONFIG_PATH_BUF: usize = 256;
/// Size of the plugin state directory buffer in the extension block (255
/// bytes + NUL, like the config path).
pub const STATE_DIR_BUF: usize = 256;

/// One log callback slot of the struct: which member is set depends on who
/// the struct was made for ([`LogStyle`]). Both are one code pointer, so the
/// layout is OpenPLC's either way.
#[repr(C)]
#[derive(Clone, Copy)]
pub union LogFn {
    /// Python plugins: `void log_info(const char *message)`, the message as
    /// text (OpenPLC's Python side passes the message itself as the format;
    /// here a `%` in it is printed as is).
    pub text: extern "C" fn(*const c_char),
    /// Native plugins: `void log_info(const char *fmt, ...)`, OpenPLC's
    /// declaration, formatted by the C library's `vsnprintf`.
    pub printf: LogPrintf,
}

/// How a struct's log callbacks read their arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStyle {
    /// A plain message (Python plugins, through ctypes).
    Text,
    /// A printf format and its arguments (native plugins).
    Printf,
}

/// OpenPLC v4.1.4's runtime-args struct, field for field (natural C alignment),
/// followed by this runtime's extension. Fields are only ever appended.
#[repr(C)]
pub struct RuntimeArgs {
    pub bool_input: *mut [*mut u8; BITS_PER_BUFFER],
    pub bool_output: *mut [*mut u8; BITS_PER_BUFFER],
    pub byte_input: *mut *mut u8,
    pub byte_output: *mut *mut u8,
    pub int_input: *mut *mut u16,
    pub int_output: *mut *mut u16,
    pub dint_input: *mut *mut u32,
    pub dint_output: *mut *mut u32,
    pub lint_input: *mut *mut u64,
    pub lint_output: *mut *mut u64,
    pub int_memory: *mut *mut u16,
    pub dint_memory: *mut *mut u32,
    pub lint_memory: *mut *mut u64,
    pub bool_memory: *mut [*mut u8; BITS_PER_BUFFER],
    pub image_lock: extern "C" fn(),
    pub image_unlock: extern "C" fn(),
    pub debug_array_count: extern "C" fn() -> u8,
    pub debug_elem_count: extern "C" fn(u8) -> u16,
    pub debug_size: extern "C" fn(u8, u16) -> u16,
    pub debug_read: extern "C" fn(u8, u16, *mut u8) -> u16,
    pub debug_set: extern "C" fn(u8, u16, bool, *const u8, u16) -> u8,
    pub debug_write: extern "C" fn(u8, u16, *const u8, u16) -> u8,
    pub plugin_specific_config_file_path: [c_char; CONFIG_PATH_BUF],
    pub buffer_size: c_int,
    pub bits_per_buffer: c_int,
    pub log_info: LogFn,
    pub log_debug: LogFn,
    pub log_warn: LogFn,
    pub log_error: LogFn,
    pub journal_write_bool: extern "C" fn(c_int, c_int, c_int, c_int) -> c_int,
    pub journal_write_byte: extern "C" fn(c_int, c_int, c_int) -> c_int,
    pub journal_write_int: extern "C" fn(c_int, c_int, c_int) -> c_int,
    pub journal_write_dint: extern "C" fn(c_int, c_int, c_uint) -> c_int,
    pub journal_write_lint: extern "C" fn(c_int, c_int, c_ulonglong) -> c_int,
    pub request_plc_stop: extern "C" fn(*const c_char),
    pub base_tick_ns: c_ulonglong,
    // --- appended by this runtime (not in OpenPLC v4.1.4) ---
    /// [`ABI_MAGIC`].
    pub ext_magic: u32,
    /// [`ABI_VERSION`].
    pub ext_version: u32,
    /// `sizeof` this struct, so a plugin can tell which appended fields exist.
    pub ext_size: u32,
    pub ext_reserved: u32,
    /// ext_version 2: the plugin's writable directory (NUL-terminated; empty
    /// when the runtime has none to give), see `plugin_state`.
    pub plugin_state_dir: [c_char; STATE_DIR_BUF],
}

// The layout is an ABI shared with plugins written in C and with ctypes mirrors:
// pin it. 64-bit targets (x86_64, aarch64):
#[cfg(target_pointer_width = "64")]
const _: () = {
    use std::mem::offset_of;
    assert!(offset_of!(RuntimeArgs, bool_memory) == 104);
    assert!(offset_of!(RuntimeArgs, image_lock) == 112);
    assert!(offset_of!(RuntimeArgs, debug_array_count) == 128);
    assert!(offset_of!(RuntimeArgs, plugin_specific_config_file_path) == 176);
    assert!(offset_of!(RuntimeArgs, buffer_size) == 432);
    assert!(offset_of!(RuntimeArgs, bits_per_buffer) == 436);
    assert!(offset_of!(RuntimeArgs, log_info) == 440);
    assert!(offset_of!(RuntimeArgs, journal_write_bool) == 472);
    assert!(offset_of!(RuntimeArgs, request_plc_stop) == 512);
    assert!(offset_of!(RuntimeArgs, base_tick_ns) == 520);
    assert!(offset_of!(RuntimeArgs, ext_magic) == 528);
    assert!(offset_of!(RuntimeArgs, plugin_state_dir) == 544);
    assert!(size_of::<RuntimeArgs>() == 800);
};
// 32-bit ARM (armv7, EABI: 8-byte alignment for 64-bit integers):
#[cfg(all(target_pointer_width = "32", target_arch = "arm"))]
const _: () = {
    use std::mem::offset_of;
    assert!(offset_of!(RuntimeArgs, image_lock) == 56);
    assert!(offset_of!(RuntimeArgs, plugin_specific_config_file_path) == 88);
    assert!(offset_of!(RuntimeArgs, buffer_size) == 344);
    assert!(offset_of!(RuntimeArgs, log_info) == 352);
    assert!(offset_of!(RuntimeArgs, journal_write_bool) == 368);
    assert!(offset_of!(RuntimeArgs, request_plc_stop) == 388);
    assert!(offset_of!(RuntimeArgs, base_tick_ns) == 392);
    assert!(offset_of!(RuntimeArgs, ext_magic) == 400);
    assert!(offset_of!(RuntimeArgs, plugin_state_dir) == 416);
    assert!(size_of::<RuntimeArgs>() == 672);
};

/// What one handed-out struct was made for: the same content is handed out
/// again instead of being made anew.
#[derive(PartialEq, Eq)]
struct ArgsKey {
    slot: usize,
    style: LogStyle,
    config_path: [c_char; CONFIG_PATH_BUF],
    state_dir: [c_char; STATE_DIR_BUF],
    base_tick_ns: u64,
}

/// A handed-out struct: written once, then only plugins touch it.
struct Handed(NonNull<RuntimeArgs>);

// SAFETY: the pointer leads to a leaked, never freed struct whose pointers
// lead into the process-global image and at thread-safe `extern "C"`
// callbacks; this module never reads or writes it after handing it out.
unsafe impl Send for Handed {}

/// Every struct handed to a plugin in this process. Plugins may keep the
/// pointer past their `cleanup` (a thread that outlives it, a plugin removed
/// by a reload that kept the capsule), so no struct is ever freed: each
/// distinct (slot, config path, state directory, period) is made once and
/// reused, which bounds the memory by the configurations this process has
/// loaded.
static HANDED_OUT: Mutex<Vec<(ArgsKey, Handed)>> = Mutex::new(Vec::new());

/// `path` as a NUL-terminated C buffer of `N` bytes (empty for `None`).
/// Lengths were checked where the paths come from (plugins.conf's parser,
/// `plugin_state`); `take` only guards the NUL terminator.
fn c_path<const N: usize>(path: Option<&Path>) -> [c_char; N] {
    use std::os::unix::ffi::OsStrExt;
    let mut buf = [0 as c_char; N];
    let bytes = path.map(|p| p.as_os_str().as_bytes()).unwrap_or_default();
    for (dst, src) in buf.iter_mut().zip(bytes.iter().take(N - 1)) {
        *dst = *src as c_char;
    }
    buf
}

impl Image {
    /// The args struct for the plugin in `slot` (0..MAX_PLUGINS), without a
    /// state directory: see [`Image::runtime_args_for`].
    pub fn runtime_args(
        &'static self,
        slot: usize,
        config_path: Option<&Path>,
        base_tick_ns: u64,
    ) -> NonNull<RuntimeArgs> {
        self.runtime_args_for(slot, config_path, None, base_tick_ns)
    }

    /// The args struct for the Python plugin in `slot` (0..MAX_PLUGINS): the
    /// slot selects the log, lock and stop callbacks that know the plugin's
    /// name; `state_dir` is its writable directory (`plugin_state`). Its log
    /// callbacks take plain text. Valid, and never moved or freed, for the
    /// life of the process.
    pub fn runtime_args_for(
        &'static self,
        slot: usize,
        config_path: Option<&Path>,
        state_dir: Option<&Path>,
        base_tick_ns: u64,
    ) -> NonNull<RuntimeArgs> {
        self.args_for(LogStyle::Text, slot, config_path, state_dir, base_tick_ns)
    }

    /// The args struct for the native plugin in `slot`: as
    /// [`Image::runtime_args_for`], with printf-style log callbacks.
    pub fn native_args_for(
        &'static self,
        slot: usize,
        config_path: Option<&Path>,
        state_dir: Option<&Path>,
        base_tick_ns: u64,
    ) -> NonNull<RuntimeArgs> {
        self.args_for(LogStyle::Printf, slot, config_path, state_dir, base_tick_ns)
    }

    fn args_for(
        &'static self,
        style: LogStyle,
        slot: usize,
        config_path: Option<&Path>,
        state_dir: Option<&Path>,
        base_tick_ns: u64,
    ) -> NonNull<RuntimeArgs> {
        let args = self.make_args(style, slot, config_path, state_dir, base_tick_ns);
        // A slot index may serve a Python plugin and, after a reload, a native
        // one with the same paths: the style is part of what is reused.
        let key = ArgsKey {
            slot,
            style,
            config_path: args.plugin_specific_config_file_path,
            state_dir: args.plugin_state_dir,
            base_tick_ns,
        };
        let mut handed = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, h)) = handed.iter().find(|(k, _)| *k == key) {
            return h.0;
        }
        let ptr = NonNull::from(Box::leak(Box::new(args)));
        handed.push((key, Handed(ptr)));
        ptr
    }

    fn make_args(
        &'static self,
        style: LogStyle,
        slot: usize,
        config_path: Option<&Path>,
        state_dir: Option<&Path>,
        base_tick_ns: u64,
    ) -> RuntimeArgs {
        let p = |t: Table| self.pointers[t as usize].as_ptr() as *mut c_void;
        let cb = &SLOT_CALLBACKS[slot % MAX_PLUGINS];
        let [info, debug, warn, error] = match style {
            LogStyle::Text => {
                [cb.log_info, cb.log_debug, cb.log_warn, cb.log_error].map(|text| LogFn { text })
            }
            LogStyle::Printf => printf_log_callbacks(slot).map(|printf| LogFn { printf }),
        };
        RuntimeArgs {
            bool_input: p(Table::BoolIn).cast(),
            bool_output: p(Table::BoolOut).cast(),
            byte_input: p(Table::ByteIn).cast(),
            byte_output: p(Table::ByteOut).cast(),
            int_input: p(Table::IntIn).cast(),
            int_output: p(Table::IntOut).cast(),
            dint_input: p(Table::DintIn).cast(),
            dint_output: p(Table::DintOut).cast(),
            lint_input: p(Table::LintIn).cast(),
            lint_output: p(Table::LintOut).cast(),
            int_memory: p(Table::IntMem).cast(),
            dint_memory: p(Table::DintMem).cast(),
            lint_memory: p(Table::LintMem).cast(),
            bool_memory: p(Table::BoolMem).cast(),
            image_lock: cb.image_lock,
            image_unlock: cb.image_unlock,
            debug_array_count: crate::debugger::debug_array_count,
            debug_elem_count: crate::debugger::debug_elem_count,
            debug_size: crate::debugger::debug_size,
            debug_read: crate::debugger::debug_read,
            debug_set: crate::debugger::debug_set,
            debug_write: crate::debugger::debug_write,
            plugin_specific_config_file_path: c_path(config_path),
            buffer_size: self.buffer_size as c_int,
            bits_per_buffer: BITS_PER_BUFFER as c_int,
            log_info: info,
            log_debug: debug,
            log_warn: warn,
            log_error: error,
            journal_write_bool: cb_journal_write_bool,
            journal_write_byte: cb_journal_write_byte,
            journal_write_int: cb_journal_write_int,
            journal_write_dint: cb_journal_write_dint,
            journal_write_lint: cb_journal_write_lint,
            request_plc_stop: cb.request_plc_stop,
            base_tick_ns,
            ext_magic: ABI_MAGIC,
            ext_version: ABI_VERSION,
            ext_size: size_of::<RuntimeArgs>() as u32,
            ext_reserved: 0,
            plugin_state_dir: c_path(state_dir),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A slot's Python and native structs are distinct (a reload may put a
    /// native plugin where a Python one was), each reused for the same
    /// configuration, with the log callbacks of their style.
    #[test]
    fn python_and_native_structs_differ_only_in_their_log_callbacks() {
        let img = super::super::install(64).unwrap();
        let cfg = Some(Path::new("/etc/openplc/s7.json"));
        let py = img.runtime_args_for(5, cfg, None, 1_000_000);
        let native = img.native_args_for(5, cfg, None, 1_000_000);
        assert_ne!(py, native);
        assert_eq!(img.native_args_for(5, cfg, None, 1_000_000), native);
        assert_eq!(img.runtime_args_for(5, cfg, None, 1_000_000), py);
        // SAFETY: structs from args_for live for the life of the process and
        // are only read here; each union is read as the member its style set.
        let (py, native) = unsafe { (py.as_ref(), native.as_ref()) };
        let text = SLOT_CALLBACKS[5].log_info;
        // SAFETY: see above (Text style).
        assert_eq!(unsafe { py.log_info.text } as usize, text as usize);
        let printf = printf_log_callbacks(5);
        // SAFETY: see above (Printf style).
        let error = unsafe { native.log_error.printf };
        assert_eq!(error as usize, printf[3] as usize);
        assert_eq!(py.base_tick_ns, native.base_tick_ns);
        assert_eq!(py.int_input, native.int_input);
        assert_eq!(
            py.plugin_specific_config_file_path,
            native.plugin_specific_config_file_path
        );
    }
}
