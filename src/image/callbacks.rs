//! The callbacks in the runtime-args struct (C ABI): the image lock, the
//! journal writes, and the per-plugin log and
//! stop callbacks, which know their plugin's name although OpenPLC's ABI
//! passes no context. A stop request goes to the handler the process
//! registered ([`on_stop_request`]): the image knows nothing of signals or
//! supervisors.
//!
//! Log callbacks come in two kinds, as on OpenPLC: native plugins call
//! `log_info(fmt, ...)` printf-style (every OpenPLC native plugin logs
//! through `log_func("%s", message)`), so theirs are C variadic functions
//! (log_shim.c, built by build.rs) that format with the C library's
//! `vsnprintf` and hand the line to [`native_log_sink`]. Python plugins pass
//! the message itself (`args.log_info(message.encode())`), so theirs take
//! plain text: a `%` in it is printed, never interpreted.

use std::ffi::{CStr, c_char, c_int, c_uint, c_ulonglong};
use std::sync::{Mutex, OnceLock};

use super::{Table, journal};
use crate::config::{MAX_NAME_LEN, MAX_PLUGINS, PluginName};

pub(super) extern "C" fn cb_journal_write_bool(
    t: c_int,
    index: c_int,
    bit: c_int,
    value: c_int,
) -> c_int {
    journal::write(t, Table::BoolIn, index, bit, u64::from(value != 0))
}
pub(super) extern "C" fn cb_journal_write_byte(t: c_int, index: c_int, value: c_int) -> c_int {
    journal::write(t, Table::ByteIn, index, 0, u64::from(value as u8))
}
pub(super) extern "C" fn cb_journal_write_int(t: c_int, index: c_int, value: c_int) -> c_int {
    journal::write(t, Table::IntIn, index, 0, u64::from(value as u16))
}
pub(super) extern "C" fn cb_journal_write_dint(t: c_int, index: c_int, value: c_uint) -> c_int {
    journal::write(t, Table::DintIn, index, 0, u64::from(value))
}
pub(super) extern "C" fn cb_journal_write_lint(
    t: c_int,
    index: c_int,
    value: c_ulonglong,
) -> c_int {
    journal::write(t, Table::LintIn, index, 0, value)
}

// --- per-plugin callbacks ------------------------------------------------------
//
// OpenPLC's log and stop callbacks carry no context, yet every log line must
// name its plugin. Each plugin slot gets its own monomorphised copy of the
// callbacks (`log_info::<3>` knows it serves slot 3), and the slot's name lives
// in a fixed table.

static SLOT_NAMES: [Mutex<PluginName>; MAX_PLUGINS] =
    [const { Mutex::new(heapless::String::new()) }; MAX_PLUGINS];

/// Names the plugin that owns callback slot `slot`.
pub fn set_slot_name(slot: usize, name: &str) {
    if let Some(m) = SLOT_NAMES.get(slot) {
        let mut n = m.lock().unwrap_or_else(|e| e.into_inner());
        n.clear();
        let _ = n.push_str(&name[..name.len().min(MAX_NAME_LEN)]);
    }
}

/// The name of the plugin in callback slot `slot` (this process's view).
pub fn slot_name(slot: usize) -> PluginName {
    SLOT_NAMES
        .get(slot)
        .map(|m| m.lock().unwrap_or_else(|e| e.into_inner()).clone())
        .unwrap_or_default()
}

/// A message from a plugin, as text: never interpreted as a format string.
fn message(msg: *const c_char) -> String {
    if msg.is_null() {
        return String::new();
    }
    // SAFETY: plugins pass a NUL-terminated string (OpenPLC's contract); it is
    // only read for the duration of the call.
    unsafe { CStr::from_ptr(msg) }
        .to_string_lossy()
        .into_owned()
}

fn plugin_log(slot: usize, level: log::Level, msg: *const c_char) {
    plugin_log_text(slot, level, &message(msg));
}

fn plugin_log_text(slot: usize, level: log::Level, text: &str) {
    let name = slot_name(slot);
    log::log!(target: "plugin", level, "[{name}] {text}");
}

/// `void log_x(const char *fmt, ...)`: a native plugin's log callback.
pub type LogPrintf = unsafe extern "C" fn(*const c_char, ...);

/// What log_shim.c calls with a formatted line (see there).
type LogSink = extern "C" fn(c_uint, c_uint, *const c_char, c_int);

// SAFETY: the declarations match log_shim.c, which build.rs compiles and
// links into this crate: a constant table of function pointers and three
// functions without preconditions.
unsafe extern "C" {
    /// Per slot: info, debug, warn, error.
    safe static openplc_log_shim_table: [[LogPrintf; 4]; MAX_PLUGINS];
    safe fn openplc_log_shim_set_sink(sink: LogSink);
    safe fn openplc_log_shim_slots() -> c_uint;
    safe fn openplc_log_shim_line_max() -> c_uint;
}

/// Receives every line a native plugin logs, formatted by log_shim.c:
/// `wanted` is vsnprintf's result (the whole line's length; negative when
/// the C library rejected the format, and `text` is then the format).
extern "C" fn native_log_sink(slot: c_uint, level: c_uint, text: *const c_char, wanted: c_int) {
    let level = match level {
        0 => log::Level::Info,
        1 => log::Level::Debug,
        2 => log::Level::Warn,
        _ => log::Level::Error,
    };
    let mut line = message(text);
    let shown = openplc_log_shim_line_max().saturating_sub(1);
    if wanted < 0 {
        line = format!("(the C library could not format this log call; its format:) {line}");
    } else if wanted as c_uint > shown {
        line.push_str(&format!(
            " [truncated: {wanted} bytes, the first {shown} shown]"
        ));
    }
    plugin_log_text(slot as usize, level, &line);
}

/// The printf-style log callbacks of slot `slot` (info, debug, warn, error),
/// with the sink set: call before handing them to a plugin.
pub(super) fn printf_log_callbacks(slot: usize) -> [LogPrintf; 4] {
    debug_assert_eq!(openplc_log_shim_slots() as usize, MAX_PLUGINS);
    openplc_log_shim_set_sink(native_log_sink);
    openplc_log_shim_table[slot % MAX_PLUGINS]
}

// The image lock, per slot: the hold is recorded under the plugin's name.
extern "C" fn image_lock<const N: usize>() {
    if let Some(img) = super::get() {
        img.lock_for_plugin(N);
    }
}
extern "C" fn image_unlock<const N: usize>() {
    if let Some(img) = super::get() {
        img.unlock_for_plugin();
    }
}

extern "C" fn log_info<const N: usize>(msg: *const c_char) {
    plugin_log(N, log::Level::Info, msg);
}
extern "C" fn log_debug<const N: usize>(msg: *const c_char) {
    plugin_log(N, log::Level::Debug, msg);
}
extern "C" fn log_warn<const N: usize>(msg: *const c_char) {
    plugin_log(N, log::Level::Warn, msg);
}
extern "C" fn log_error<const N: usize>(msg: *const c_char) {
    plugin_log(N, log::Level::Error, msg);
}
extern "C" fn request_plc_stop<const N: usize>(reason: *const c_char) {
    let name = slot_name(N);
    log::warn!("[{name}] requested a PLC stop: {}", message(reason));
    if let Some(f) = STOP_HANDLER.get() {
        f();
    }
}

/// Where plugins' stop requests go, once the process said (see
/// [`on_stop_request`]).
static STOP_HANDLER: OnceLock<Box<dyn Fn() + Send + Sync>> = OnceLock::new();

/// Makes `handler` receive every plugin's `request_plc_stop` in this process:
/// the supervisor wakes itself for an ordered stop, a worker forwards the
/// request to its supervisor. Set once per process; later calls are ignored.
pub fn on_stop_request(handler: Box<dyn Fn() + Send + Sync>) {
    let _ = STOP_HANDLER.set(handler);
}

/// One plugin slot's copies of the per-plugin callbacks.
pub(super) struct SlotCallbacks {
    pub(super) image_lock: extern "C" fn(),
    pub(super) image_unlock: extern "C" fn(),
    pub(super) log_info: extern "C" fn(*const c_char),
    pub(super) log_debug: extern "C" fn(*const c_char),
    pub(super) log_warn: extern "C" fn(*const c_char),
    pub(super) log_error: extern "C" fn(*const c_char),
    pub(super) request_plc_stop: extern "C" fn(*const c_char),
}

macro_rules! slot_callbacks {
    ($($n:literal),*) => {
        [$(SlotCallbacks {
            image_lock: image_lock::<$n>,
            image_unlock: image_unlock::<$n>,
            log_info: log_info::<$n>,
            log_debug: log_debug::<$n>,
            log_warn: log_warn::<$n>,
            log_error: log_error::<$n>,
            request_plc_stop: request_plc_stop::<$n>,
        }),*]
    };
}

pub(super) static SLOT_CALLBACKS: [SlotCallbacks; MAX_PLUGINS] =
    slot_callbacks!(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_c_shim_was_built_for_the_same_capacity() {
        assert_eq!(openplc_log_shim_slots() as usize, MAX_PLUGINS);
        assert!(openplc_log_shim_line_max() >= 1024);
    }
}
