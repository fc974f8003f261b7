//! Native plugins (plugins.conf type 1): shared objects with OpenPLC's C ABI.
//!
//! A plugin is loaded with `dlopen(RTLD_NOW | RTLD_LOCAL)`: every undefined
//! symbol is resolved at load time, so a plugin built against a library that
//! is missing on the board fails here, by name, instead of crashing the scan
//! thread later; `RTLD_LOCAL` keeps one plugin's symbols (they all export
//! `init`, `cycle_end`, …) from satisfying another's.
//!
//! Symbols (OpenPLC v4): `int init(void *args)` (required, 0 = success),
//! `int start_loop(void)`, `void stop_loop(void)`, `void cycle_start(void)`,
//! `void cycle_end(void)`, `void cleanup(void)`. `init` gets the same
//! [`RuntimeArgs`] a Python plugin finds in its capsule. OpenPLC frees that
//! struct right after `init` returns, which leaves plugins that keep the
//! pointer (most do) reading freed memory; here it lives until `cleanup`
//! returned.
//!
//! The lifecycle calls (`init`, `start_loop`, `stop_loop`, `cleanup`) run on
//! the supervisor's budgeted threads like a Python plugin's ([`NativeCall`]).
//! The cycle hooks run on the scan thread through [`CycleHooks`], a fixed
//! table of atomics: no allocation, no lock, no GIL.
//!
//! All of the crate's `dlopen`/`dlsym` code, and the `unsafe` it needs, is
//! here.

use std::ffi::{CStr, CString, c_int, c_void};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::config::MAX_PLUGINS;
use crate::image::RuntimeArgs;
use crate::lifecycle::Call;
use crate::program::{Program, ProgramSlot};
use crate::sys::monotonic_ns;

/// `int init(void *args)`.
type InitFn = unsafe extern "C" fn(*mut c_void) -> c_int;
/// `int start_loop(void)`.
type StartLoopFn = unsafe extern "C" fn() -> c_int;
/// `void stop_loop(void)`, `void cycle_start(void)`, `void cycle_end(void)`,
/// `void cleanup(void)`.
type VoidFn = unsafe extern "C" fn();

/// A `dlopen` handle. Closed only by [`Library::close`]: dropping it leaks the
/// handle on purpose, because code of a plugin whose call is stuck may still
/// be running.
struct Library(NonNull<c_void>);

// SAFETY: a dlopen handle is a process-wide token; dlsym and dlclose may be
// called with it from any thread.
unsafe impl Send for Library {}

impl Library {
    /// `dlopen(path, RTLD_NOW | RTLD_LOCAL)`; the error is `dlerror()`'s text,
    /// which names the file and, for an unresolved symbol, the symbol.
    fn open(path: &Path) -> Result<Library, String> {
        let c = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| format!("{} contains a NUL byte", path.display()))?;
        // SAFETY: `c` is a valid C string. dlopen runs the library's
        // constructors: that is plugin code, trusted as in OpenPLC (the file
        // passed resolve's ownership checks).
        let h = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        NonNull::new(h)
            .map(Library)
            .ok_or_else(|| format!("cannot load {}: {}", path.display(), dl_error()))
    }

    /// The address of `name`, or `None` when the library does not define it.
    fn symbol(&self, name: &CStr) -> Option<NonNull<c_void>> {
        // SAFETY: clears a pending error of this thread (dlerror state is
        // thread-local), so a NULL result below is attributable.
        unsafe { libc::dlerror() };
        // SAFETY: a live handle and a valid C string.
        NonNull::new(unsafe { libc::dlsym(self.0.as_ptr(), name.as_ptr()) })
    }

    fn close(self) {
        // SAFETY: the handle came from dlopen and is closed once (`self` is
        // consumed). Callers close only when no code of the library runs and no
        // pointer into it is kept (see `NativePlugin::unload`).
        unsafe { libc::dlclose(self.0.as_ptr()) };
    }
}

/// The current thread's `dlerror()` text.
fn dl_error() -> String {
    // SAFETY: dlerror returns NULL or a NUL-terminated string that stays valid
    // until the next dl* call on this thread; it is copied at once.
    let e = unsafe { libc::dlerror() };
    if e.is_null() {
        "unknown dlopen error".into()
    } else {
        // SAFETY: non-null, NUL-terminated (see above).
        unsafe { CStr::from_ptr(e) }.to_string_lossy().into_owned()
    }
}

/// The optional symbols, as `check` reports them.
const OPTIONAL: [&CStr; 5] = [
    c"start_loop",
    c"stop_loop",
    c"cycle_start",
    c"cycle_end",
    c"cleanup",
];

/// The symbols of a loaded plugin.
#[derive(Clone, Copy)]
struct Symbols {
    init: InitFn,
    start_loop: Option<StartLoopFn>,
    stop_loop: Option<VoidFn>,
    cycle_start: Option<VoidFn>,
    cycle_end: Option<VoidFn>,
    cleanup: Option<VoidFn>,
}

impl Symbols {
    fn find(lib: &Library, path: &Path) -> Result<Symbols, String> {
        let void = |name: &CStr| {
            lib.symbol(name).map(|p| {
                // SAFETY: OpenPLC's ABI declares these symbols as
                // `void name(void)` functions; a data pointer and a function
                // pointer have the same size and representation on every
                // target this runs on (POSIX requires it for dlsym).
                unsafe { std::mem::transmute::<*mut c_void, VoidFn>(p.as_ptr()) }
            })
        };
        let Some(init) = lib.symbol(c"init") else {
            return Err(format!(
                "{} has no init symbol: not an OpenPLC native plugin (int init(void *args) is required, exported with C linkage)",
                path.display()
            ));
        };
        Ok(Symbols {
            // SAFETY: as above, for `int init(void *)`.
            init: unsafe { std::mem::transmute::<*mut c_void, InitFn>(init.as_ptr()) },
            start_loop: lib.symbol(c"start_loop").map(|p| {
                // SAFETY: as above, for `int start_loop(void)`.
                unsafe { std::mem::transmute::<*mut c_void, StartLoopFn>(p.as_ptr()) }
            }),
            stop_loop: void(c"stop_loop"),
            cycle_start: void(c"cycle_start"),
            cycle_end: void(c"cycle_end"),
            cleanup: void(c"cleanup"),
        })
    }
}

/// What `check` does for a native plugin: load it and look up its symbols,
/// calling none of them (the library's constructors do run; a PLC program's
/// extension reports its tables). Returns the symbols found, e.g. "init,
/// start_loop, cycle_end", and what the program is.
pub fn check(path: &Path, buffer_size: usize) -> Result<String, String> {
    let lib = Library::open(path)?;
    let found = Symbols::find(&lib, path).and_then(|_| {
        // A program's tables, checked against an image of `buffer_size`.
        let program = Program::load(&|n| lib.symbol(n), buffer_size, false, None, "")
            .map_err(|e| format!("{} is a PLC program that cannot run: {e}", path.display()))?;
        Ok(std::iter::once("init")
            .chain(
                OPTIONAL
                    .iter()
                    .filter(|n| lib.symbol(n).is_some())
                    .filter_map(|n| n.to_str().ok()),
            )
            .collect::<Vec<_>>()
            .join(", ")
            + &program.map_or(String::new(), |p| format!("; {}", p.describe())))
    });
    lib.close();
    found
}

/// A loaded native plugin: its library, its symbols and the args struct its
/// `init` receives.
pub struct NativePlugin {
    slot: usize,
    lib: Library,
    syms: Symbols,
    /// From `Image::runtime_args`: never freed, since the plugin may keep
    /// and even write through the pointer; no Rust reference to it exists.
    args: NonNull<RuntimeArgs>,
    /// Its PLC program, when it exports the program extension (boxed: the
    /// scan thread keeps a pointer to it while the plugin runs).
    program: Option<Box<Program>>,
}

// SAFETY: the library handle is usable from any thread (see `Library`); the
// args struct is only read by the runtime (never through a reference) and, like
// a Python plugin's capsule, meant to be used by the plugin from any thread.
unsafe impl Send for NativePlugin {}

/// `args` on its way to the thread that loads the plugin.
struct SendArgs(NonNull<RuntimeArgs>);

// SAFETY: as for `NativePlugin`: the struct points into the process-global
// image and at thread-safe `extern "C"` callbacks.
unsafe impl Send for SendArgs {}

impl SendArgs {
    fn into_inner(self) -> NonNull<RuntimeArgs> {
        self.0
    }
}

/// [`NativePlugin::load`] as a call that can run on another thread, so the
/// supervisor can give it a time budget (`dlopen` runs the library's
/// constructors, which are plugin code).
pub fn loader(
    slot: usize,
    path: PathBuf,
    args: NonNull<RuntimeArgs>,
) -> impl FnOnce() -> Result<NativePlugin, String> + Send + 'static {
    let args = SendArgs(args);
    // `args.into_inner()`, not a pattern: the closure must capture the whole
    // Send wrapper, not just its field (edition 2021 disjoint captures).
    move || NativePlugin::load(slot, &path, args.into_inner())
}

impl NativePlugin {
    /// Loads the plugin of callback slot `slot` (its index in the plan, the
    /// one `args` was made for).
    pub fn load(
        slot: usize,
        path: &Path,
        args: NonNull<RuntimeArgs>,
    ) -> Result<NativePlugin, String> {
        let lib = Library::open(path)?;
        let buffer_size =
            crate::image::get().map_or(crate::image::DEFAULT_BUFFER_SIZE, |i| i.buffer_size());
        // The plugin's name in plugins.conf, as the log names plugins.
        let name = crate::image::slot_name(slot);
        let label = if name.is_empty() {
            crate::program::label(path)
        } else {
            name.to_string()
        };
        // SAFETY: the runtime made the struct (`Image::runtime_args`) and
        // only reads it; the plugin gets it only in `init`, after this.
        let state_dir = unsafe { state_dir_of(args) };
        let program = Symbols::find(&lib, path).and_then(|syms| {
            Program::load(
                &|n| lib.symbol(n),
                buffer_size,
                true,
                state_dir.as_deref(),
                &label,
            )
            .map(|p| (syms, p))
            .map_err(|e| format!("{} is a PLC program that cannot run: {e}", path.display()))
        });
        match program {
            Ok((syms, program)) => {
                if let Some(p) = &program {
                    log::info!("[{label}] {}", p.describe());
                    if let Some(note) = p.period_note() {
                        log::info!("[{label}] {note}");
                    }
                }
                Ok(NativePlugin {
                    slot,
                    lib,
                    syms,
                    args,
                    program: program.map(Box::new),
                })
            }
            Err(e) => {
                lib.close();
                Err(e)
            }
        }
    }

    /// The plugin's callback slot.
    pub fn slot(&self) -> usize {
        self.slot
    }

    /// Its PLC program, if it is one.
    pub fn program(&self) -> Option<&Program> {
        self.program.as_deref()
    }

    /// A lifecycle call (`init`, `start_loop`, `stop_loop` or `cleanup`) that
    /// can run on another thread. Valid while the plugin is loaded.
    pub fn call(&self, call: Call) -> NativeCall {
        let s = &self.syms;
        NativeCall(match call {
            Call::Init => Target::Init(s.init, ArgsPtr(self.args.as_ptr().cast())),
            Call::StartLoop => s.start_loop.map_or(Target::Missing, Target::StartLoop),
            Call::StopLoop => s.stop_loop.map_or(Target::Missing, Target::Void),
            Call::Cleanup => s.cleanup.map_or(Target::Missing, Target::Void),
        })
    }

    /// Closes the library. Only after `cleanup` returned, with the plugin's
    /// hooks removed from [`CycleHooks`] and no call of it still running; a
    /// plugin that is stuck is never unloaded. The args struct stays (see
    /// `Image::runtime_args`).
    pub fn unload(self) {
        // The program (pointers into the library) goes first.
        drop(self.program);
        self.lib.close();
    }
}

/// The plugin state directory written into `args` (`None`: empty).
///
/// # Safety
/// `args` must point at a live struct made by the runtime.
unsafe fn state_dir_of(args: NonNull<RuntimeArgs>) -> Option<PathBuf> {
    // SAFETY: the caller's promise; the field is a NUL-terminated buffer the
    // runtime filled (`c_path`).
    let raw = unsafe { std::ptr::addr_of!((*args.as_ptr()).plugin_state_dir).read() };
    let bytes: Vec<u8> = raw
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    (!bytes.is_empty()).then(|| PathBuf::from(std::ffi::OsStr::from_bytes(&bytes)))
}

/// The args pointer, moved to the thread that runs `init`.
struct ArgsPtr(*mut c_void);

// SAFETY: the struct behind it is immutable to the runtime and outlives every
// call (see `NativePlugin::args`); C code may use it from any thread.
unsafe impl Send for ArgsPtr {}

/// The function a [`NativeCall`] runs, with its argument.
enum Target {
    Init(InitFn, ArgsPtr),
    StartLoop(StartLoopFn),
    Void(VoidFn),
    Missing,
}

/// A lifecycle call of a native plugin, ready to run on any thread.
pub struct NativeCall(Target);

/// How a native lifecycle call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NativeOutcome {
    Ok,
    /// The library has no such symbol (fine for the optional ones).
    Missing,
    /// `init` returned this non-zero value.
    Failed(c_int),
}

impl NativeCall {
    pub fn run(self) -> NativeOutcome {
        match self.0 {
            // SAFETY: a function of a library that stays loaded while any of
            // its calls can run (`unload` only after cleanup returned); the
            // argument is the live args struct.
            Target::Init(f, args) => match unsafe { f(args.0) } {
                0 => NativeOutcome::Ok,
                rc => NativeOutcome::Failed(rc),
            },
            Target::StartLoop(f) => {
                // OpenPLC ignores start_loop's result and real plugins declare
                // it `void`, so the register holds garbage: ignore it too.
                // SAFETY: as for init; no arguments.
                let _ = unsafe { f() };
                NativeOutcome::Ok
            }
            Target::Void(f) => {
                // SAFETY: as for init; no arguments.
                unsafe { f() };
                NativeOutcome::Ok
            }
            Target::Missing => NativeOutcome::Missing,
        }
    }
}

/// The cycle hooks the scan thread calls: per plugin slot, `cycle_start` and
/// `cycle_end` as atomic pointers (null = none), so the supervisor can add a
/// plugin's hooks when it has started and remove them before its `stop_loop`
/// while the scan thread runs. Slots are plan indices, so walking the table in
/// order calls the hooks in plugins.conf order. Fixed size
/// ([`MAX_PLUGINS`]): the scan thread reads it without allocating or locking.
pub struct CycleHooks {
    start: [AtomicPtr<c_void>; MAX_PLUGINS],
    end: [AtomicPtr<c_void>; MAX_PLUGINS],
    /// Longest single call of each slot's hooks, in ns.
    max_ns: [AtomicU64; MAX_PLUGINS],
    /// Incremented when the scan thread enters and when it leaves a pass over
    /// the table: odd = inside. `remove` waits on it.
    pass: AtomicU64,
    /// The PLC program the scan thread runs, and the slot of its plugin + 1
    /// (0: none).
    pub program: ProgramSlot,
    program_owner: AtomicU64,
}

/// Which hook a pass calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    CycleStart,
    CycleEnd,
}

impl Default for CycleHooks {
    fn default() -> CycleHooks {
        CycleHooks {
            start: [const { AtomicPtr::new(std::ptr::null_mut()) }; MAX_PLUGINS],
            end: [const { AtomicPtr::new(std::ptr::null_mut()) }; MAX_PLUGINS],
            max_ns: [const { AtomicU64::new(0) }; MAX_PLUGINS],
            pass: AtomicU64::new(0),
            program: ProgramSlot::default(),
            program_owner: AtomicU64::new(0),
        }
    }
}

impl CycleHooks {
    /// Makes the scan thread call `plugin`'s hooks from its next pass on.
    pub fn add(&self, plugin: &NativePlugin) {
        let ptr = |f: Option<VoidFn>| f.map_or(std::ptr::null_mut(), |f| f as *mut c_void);
        if let (Some(s), Some(e)) = (self.start.get(plugin.slot), self.end.get(plugin.slot)) {
            s.store(ptr(plugin.syms.cycle_start), Ordering::SeqCst);
            e.store(ptr(plugin.syms.cycle_end), Ordering::SeqCst);
        }
        if let Some(p) = plugin.program() {
            self.program_owner
                .store(plugin.slot as u64 + 1, Ordering::SeqCst);
            self.program.add(p);
        }
    }

    /// Stops calling the hooks of `slot` and waits until the scan thread is
    /// no longer inside any of them. `false` when a pass did not end within
    /// `budget` (a hook hangs): the plugin must then be treated as stuck.
    pub fn remove(&self, slot: usize, budget: Duration) -> bool {
        if self.program_owner.load(Ordering::SeqCst) == slot as u64 + 1 {
            self.program_owner.store(0, Ordering::SeqCst);
            if !self.program.remove(budget) {
                return false;
            }
        }
        let (Some(s), Some(e)) = (self.start.get(slot), self.end.get(slot)) else {
            return true;
        };
        s.store(std::ptr::null_mut(), Ordering::SeqCst);
        e.store(std::ptr::null_mut(), Ordering::SeqCst);
        // SeqCst orders these stores before the load below and before the scan
        // thread's next `pass` increment: a pass that starts after we saw an
        // even count (or after the count moved on) reads the nulls.
        let seen = self.pass.load(Ordering::SeqCst);
        if seen.is_multiple_of(2) {
            return true;
        }
        let deadline = Instant::now() + budget;
        while self.pass.load(Ordering::SeqCst) == seen {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        true
    }

    /// Calls every registered hook of `phase`, in slot order, and returns the
    /// time they took in ns. Scan thread only; allocation-free.
    pub fn run(&self, phase: Phase) -> u64 {
        let table = match phase {
            Phase::CycleStart => &self.start,
            Phase::CycleEnd => &self.end,
        };
        self.pass.fetch_add(1, Ordering::SeqCst);
        let mut total = 0;
        for (f, max) in table.iter().zip(&self.max_ns) {
            let p = f.load(Ordering::SeqCst);
            if p.is_null() {
                continue;
            }
            let t0 = monotonic_ns();
            // SAFETY: non-null entries are `VoidFn`s stored by `add` from a
            // loaded plugin; `remove` clears them and waits for this pass to
            // end before the plugin is stopped and its library closed.
            unsafe { std::mem::transmute::<*mut c_void, VoidFn>(p)() };
            let dt = monotonic_ns().saturating_sub(t0);
            max.fetch_max(dt, Ordering::Relaxed);
            total += dt;
        }
        self.pass.fetch_add(1, Ordering::SeqCst);
        total
    }

    /// The slot whose hooks took longest in a single call, and that time in
    /// ns; `None` while no hook has run.
    pub fn slowest(&self) -> Option<(usize, u64)> {
        self.max_ns
            .iter()
            .map(|m| m.load(Ordering::Relaxed))
            .enumerate()
            .filter(|(_, ns)| *ns > 0)
            .max_by_key(|(_, ns)| *ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    static CALLS: AtomicUsize = AtomicUsize::new(0);
    extern "C" fn count() {
        CALLS.fetch_add(1, Ordering::SeqCst);
    }

    #[test]
    fn hooks_run_until_removed() {
        let hooks = CycleHooks::default();
        assert_eq!(hooks.slowest(), None);
        let f: VoidFn = count;
        hooks.end[3].store(f as *mut c_void, Ordering::SeqCst);
        hooks.run(Phase::CycleStart);
        assert_eq!(CALLS.load(Ordering::SeqCst), 0);
        hooks.run(Phase::CycleEnd);
        assert_eq!(CALLS.load(Ordering::SeqCst), 1);
        assert_eq!(hooks.slowest().map(|(s, _)| s), Some(3));
        assert!(hooks.remove(3, Duration::from_millis(10)));
        hooks.run(Phase::CycleEnd);
        assert_eq!(CALLS.load(Ordering::SeqCst), 1);
        // A pass in progress (odd count) that never ends: remove gives up.
        hooks.pass.fetch_add(1, Ordering::SeqCst);
        assert!(!hooks.remove(3, Duration::from_millis(10)));
    }

    #[test]
    fn missing_file_is_a_dlopen_error_naming_it() {
        let e = check(Path::new("/nonexistent/plugin.so"), 1024).unwrap_err();
        assert!(e.starts_with("cannot load /nonexistent/plugin.so: "), "{e}");
    }
}
