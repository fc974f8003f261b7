//! PLC programs: a Structured Text program compiled by STruC++ and linked with
//! this repository's glue (`glue/`, `scripts/build-plc-program`) into a
//! native plugin that also exports the program extension of
//! `glue/openplc_program.h`. `native` finds the extension when it loads the
//! plugin; this module checks it, binds its located variables to the image
//! (`bind`) and runs its tasks on the scan thread (`slot`).
//!
//! Tasks: each runs every `interval / scan period` cycles, on the scan
//! thread, inside the cycle and under the image lock: inputs copied in, due
//! tasks run (each advancing its own IEC time by its own interval), outputs
//! copied out. The scan period must divide every interval; without
//! `--scan-period` the runtime takes the intervals' GCD. A task run that takes
//! longer than its interval, or is missed because the cycle was skipped or
//! late, is an overrun of that task.
//!
//! One program per runtime. The plugin's library stays loaded while the
//! program is bound (the bindings point into it).

mod abi;
mod bind;
pub mod debug;
mod ext2;
mod retain;
mod slot;
mod v2;

use std::cell::Cell;
use std::ffi::{CStr, c_void};
use std::path::Path;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

pub use abi::ABI_VERSION;
use abi::{RunTaskFn, TaskTimeFn};
use bind::Binding;
use retain::Retain;
pub use retain::{DEFAULT_SAVE_PERIOD, FILE_NAME as RETAIN_FILE, set_save_period};
pub use slot::{ProgramSlot, TaskReport};

use crate::image::Image;
use crate::scan::{MAX_PERIOD, MIN_PERIOD};

/// Most tasks a program may have: the per-task statistics are fixed arrays
/// the scan thread updates without allocating. OpenPLC programs have one to
/// a handful.
pub const MAX_TASKS: usize = 32;

/// The scan period the runtime was started with, and whether `--scan-period`
/// fixed it (else a program's GCD replaces it). Set by the supervisor.
static SCAN_PERIOD_NS: AtomicU64 = AtomicU64::new(20_000_000);
static SCAN_PERIOD_GIVEN: AtomicBool = AtomicBool::new(false);
/// A program is loaded (one at a time).
static CLAIMED: AtomicBool = AtomicBool::new(false);
/// The scan period the loaded program runs at, ns (0: no program yet). Set
/// when it loads, so the scan thread switches to it within a cycle and the
/// plugins loaded after it get it as their `base_tick_ns`.
static PROGRAM_PERIOD_NS: AtomicU64 = AtomicU64::new(0);

/// Tells program loading the runtime's scan period and whether the command
/// line fixed it.
pub fn set_scan_period(period: Duration, given: bool) {
    let ns = u64::try_from(period.as_nanos()).unwrap_or(u64::MAX);
    SCAN_PERIOD_NS.store(ns, Ordering::SeqCst);
    SCAN_PERIOD_GIVEN.store(given, Ordering::SeqCst);
}

/// The scan period a loaded program asked for, if any.
pub fn program_period_ns() -> Option<u64> {
    Some(PROGRAM_PERIOD_NS.load(Ordering::SeqCst)).filter(|&p| p > 0)
}

/// One task of a loaded program.
#[derive(Debug, Clone)]
pub struct Task {
    pub name: String,
    pub interval_ns: u64,
    /// Runs every `every` scan cycles.
    every: u64,
}

/// A bound program.
pub struct Program {
    tasks: Vec<Task>,
    bindings: Vec<Binding>,
    period_ns: u64,
    /// Bytes of the RETAIN snapshot (0: none).
    retain_size: usize,
    /// How the period was chosen, for the log.
    period_note: Option<String>,
    run_task: RunTaskFn,
    task_time: TaskTimeFn,
    /// Scan-thread state: the tick of the first run and of the last one.
    first_tick: Cell<Option<u64>>,
    last_rel: Cell<u64>,
    /// Outputs of runs without the image lock, not yet copied out.
    outputs_pending: Cell<bool>,
    claimed: bool,
    /// Version 2: the debugger provider (`v2`), held for its `Drop` (which
    /// removes it); `None` only in unit tests. Declared before `retain`, so
    /// it is dropped first: no debugger call runs during the last save.
    _v2: Option<v2::V2>,
    /// RETAIN store (dropped, saving once more, with the program).
    retain: Option<Retain>,
}

// SAFETY: the bindings' raw pointers point into the plugin's library, which
// is loaded as long as the program exists; the `Cell`s are only touched by the
// scan thread while the program is in a `ProgramSlot` (see `slot`), and the
// supervisor only reads the immutable parts.
unsafe impl Send for Program {}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// `ns` as a short human time: "15 ms", "500 us", "1.5 ms".
pub fn human_ns(ns: u64) -> String {
    if ns.is_multiple_of(1_000_000) {
        format!("{} ms", ns / 1_000_000)
    } else if ns.is_multiple_of(1_000) {
        format!("{} us", ns / 1_000)
    } else {
        format!("{ns} ns")
    }
}

impl Program {
    /// Reads and checks the program extension of a library whose symbols
    /// `lookup` finds, binding its variables against an image of
    /// `buffer_size` slots. `Ok(None)`: a plain native plugin. `claim`: this
    /// becomes the runtime's program (a second one is refused) and its
    /// RETAIN variables are restored from `state_dir`; `check` passes false.
    /// `label` names the program in the log.
    pub fn load(
        lookup: &dyn Fn(&CStr) -> Option<NonNull<c_void>>,
        buffer_size: usize,
        claim: bool,
        state_dir: Option<&Path>,
        label: &str,
    ) -> Result<Option<Program>, String> {
        let Some(ext) = abi::read(lookup)? else {
            return Ok(None);
        };
        if ext.tasks.is_empty() {
            return Err("the program has no task (its CONFIGURATION declares none)".into());
        }
        if ext.tasks.len() > MAX_TASKS {
            return Err(format!(
                "the program has {} tasks, at most {MAX_TASKS} are supported",
                ext.tasks.len()
            ));
        }
        let mut tasks = Vec::with_capacity(ext.tasks.len());
        for t in &ext.tasks {
            let name = if t.name.is_null() {
                "?".to_string()
            } else {
                // SAFETY: a NUL-terminated name in the loaded library.
                unsafe { CStr::from_ptr(t.name) }
                    .to_string_lossy()
                    .into_owned()
            };
            if t.interval_ns == 0 {
                return Err(format!(
                    "task {name} has no INTERVAL: only cyclic tasks are supported"
                ));
            }
            tasks.push(Task {
                name,
                interval_ns: t.interval_ns,
                every: 0,
            });
        }
        let given = SCAN_PERIOD_GIVEN.load(Ordering::SeqCst);
        let current = SCAN_PERIOD_NS.load(Ordering::SeqCst);
        let (period_ns, period_note) = if given {
            if let Some(t) = tasks
                .iter()
                .find(|t| !t.interval_ns.is_multiple_of(current))
            {
                return Err(format!(
                    "task {} runs every {}, which is not a multiple of the scan period {} (--scan-period): give a scan period that divides every task interval, or none to use their GCD",
                    t.name,
                    human_ns(t.interval_ns),
                    human_ns(current)
                ));
            }
            (current, None)
        } else {
            let g = tasks.iter().fold(0, |g, t| gcd(g, t.interval_ns));
            let min = MIN_PERIOD.as_nanos() as u64;
            let max = MAX_PERIOD.as_nanos() as u64;
            if !(min..=max).contains(&g) {
                return Err(format!(
                    "the GCD of the task intervals, {}, is outside the scan periods supported ({}..{}): change the intervals",
                    human_ns(g),
                    human_ns(min),
                    human_ns(max)
                ));
            }
            let list: Vec<String> = tasks
                .iter()
                .map(|t| format!("{} {}", t.name, human_ns(t.interval_ns)))
                .collect();
            let note = format!(
                "scan period {}: the GCD of the task intervals ({}); --scan-period was not given",
                human_ns(g),
                list.join(", ")
            );
            (g, Some(note))
        };
        for t in &mut tasks {
            t.every = t.interval_ns / period_ns;
        }
        let located = bind::check(&ext.vars, buffer_size)?;
        let bindings = located.iter().map(Binding::new).collect();
        let mut v2 = v2::V2::read(lookup)?;
        if claim {
            if CLAIMED.swap(true, Ordering::SeqCst) {
                return Err(
                    "another program is already loaded: the runtime runs one program".into(),
                );
            }
            PROGRAM_PERIOD_NS.store(period_ns, Ordering::SeqCst);
            v2.claim();
        }
        let retain = if claim {
            Retain::start(&ext, state_dir, period_ns, label)
        } else {
            None
        };
        Ok(Some(Program {
            tasks,
            bindings,
            period_ns,
            period_note,
            retain_size: ext.retain_size,
            run_task: ext.run_task,
            task_time: ext.task_time,
            first_tick: Cell::new(None),
            last_rel: Cell::new(0),
            outputs_pending: Cell::new(false),
            claimed: claim,
            retain,
            _v2: Some(v2),
        }))
    }

    /// The tasks.
    pub fn tasks(&self) -> &[Task] {
        &self.tasks
    }

    /// The scan period the program runs at.
    pub fn period_ns(&self) -> u64 {
        self.period_ns
    }

    /// How the scan period was chosen, when the program chose it.
    pub fn period_note(&self) -> Option<&str> {
        self.period_note.as_deref()
    }

    /// Number of located variables bound.
    pub fn bound(&self) -> usize {
        self.bindings.len()
    }

    /// One line for `check` and the log.
    pub fn describe(&self) -> String {
        let tasks: Vec<String> = self
            .tasks
            .iter()
            .map(|t| format!("{} every {}", t.name, human_ns(t.interval_ns)))
            .collect();
        format!(
            "PLC program (extension version {ABI_VERSION}): tasks {}; {} located variable(s); {} byte(s) of RETAIN variables",
            tasks.join(", "),
            self.bindings.len(),
            self.retain_size
        )
    }

    /// The IEC time task `i` saw on its last run, ns.
    pub fn task_time_ns(&self, i: usize) -> i64 {
        // SAFETY: a call into the loaded library with a task number it
        // reported.
        unsafe { (self.task_time)(i as u32) }
    }

    /// One scan cycle, deadline number `tick`, under the image lock. Scan
    /// thread only; no allocation.
    fn run_cycle(&self, image: &Image, tick: u64, stats: &slot::TaskStats, locked: bool) {
        // Debugger calls into the program wait while this runs (`debug`):
        // tasks and RETAIN snapshots may run without the image lock.
        let _running = debug::running();
        let first = match self.first_tick.get() {
            Some(f) => f,
            None => {
                self.first_tick.set(Some(tick));
                self.last_rel.set(0);
                tick
            }
        };
        let rel = tick.saturating_sub(first);
        let last = self.last_rel.get();
        if rel > last + 1 {
            // Deadlines in (last, rel) passed without a run: count each task's
            // due points among them.
            for (i, t) in self.tasks.iter().enumerate() {
                let missed = (rel - 1) / t.every - last / t.every;
                stats.overran(i, missed);
            }
        }
        self.last_rel.set(rel);
        if let Some(r) = &self.retain {
            // Snapshots what the last runs left (handed to the writer).
            r.tick();
        }
        if locked && self.outputs_pending.replace(false) {
            // What runs without the lock left (before inputs and memory are
            // copied in over it).
            for b in &self.bindings {
                b.copy_out(image);
            }
            stats.late_outputs.fetch_add(1, Ordering::Relaxed);
        }
        if !self.tasks.iter().any(|t| rel.is_multiple_of(t.every)) {
            return;
        }
        if locked {
            for b in &self.bindings {
                b.copy_in(image);
            }
        } else {
            stats.stale_inputs.fetch_add(1, Ordering::Relaxed);
        }
        for (i, t) in self.tasks.iter().enumerate() {
            if !rel.is_multiple_of(t.every) {
                continue;
            }
            let t0 = crate::sys::monotonic_ns();
            // SAFETY: a call into the loaded library with a task number it
            // reported; the program's state is only touched by this thread.
            unsafe { (self.run_task)(i as u32) };
            let dt = crate::sys::monotonic_ns().saturating_sub(t0);
            stats.ran(i, dt, dt > t.interval_ns);
        }
        if !locked {
            self.outputs_pending.set(true);
            return;
        }
        for b in &self.bindings {
            b.copy_out(image);
        }
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        if self.claimed {
            CLAIMED.store(false, Ordering::SeqCst);
        }
    }
}

/// The file name of `path`, to name a program in the log.
pub fn label(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::c_int;
    use std::sync::Mutex;

    /// Runs of each task of the test program, in call order.
    static RUNS: Mutex<Vec<u32>> = Mutex::new(Vec::new());

    extern "C" fn run_task(t: u32) -> c_int {
        RUNS.lock().unwrap().push(t);
        0
    }
    extern "C" fn task_time(_: u32) -> i64 {
        0
    }

    /// Tasks of 10 and 15 ms at a 5 ms scan, without located variables.
    fn program() -> Program {
        let task = |name: &str, ms: u64| Task {
            name: name.into(),
            interval_ns: ms * 1_000_000,
            every: ms / 5,
        };
        Program {
            tasks: vec![task("T10", 10), task("T15", 15)],
            bindings: Vec::new(),
            period_ns: 5_000_000,
            period_note: None,
            retain_size: 0,
            run_task,
            task_time,
            first_tick: Cell::new(None),
            last_rel: Cell::new(0),
            outputs_pending: Cell::new(false),
            claimed: false,
            retain: None,
            _v2: None,
        }
    }

    #[test]
    fn tasks_run_on_their_multiples_and_missed_runs_are_overruns() {
        // 64 slots, as the other unit tests of this process install it.
        let image = crate::image::install(64).unwrap();
        let slot = ProgramSlot::default();
        let p = program();
        slot.add(&p);
        // The scan starts at tick 100; the program's first cycle is its 0.
        for tick in 100..=112 {
            slot.run(image, tick, 5_000_000, true);
        }
        let runs = std::mem::take(&mut *RUNS.lock().unwrap());
        assert_eq!(runs.iter().filter(|&&t| t == 0).count(), 7, "{runs:?}");
        assert_eq!(runs.iter().filter(|&&t| t == 1).count(), 5, "{runs:?}");
        // Cycle 0 runs both, in table order.
        assert_eq!(runs[..2], [0, 1]);
        // Ticks 113..=119 are skipped (a held lock, a late wake-up): T10
        // misses 114, 116, 118; T15 misses 115, 118. 120 runs T10 only.
        slot.run(image, 120, 5_000_000, true);
        let report = slot.report();
        assert_eq!((report[0].runs, report[0].overruns), (8, 3), "{report:?}");
        assert_eq!((report[1].runs, report[1].overruns), (5, 2), "{report:?}");
        // A scan at another period does not run the program.
        slot.run(image, 122, 20_000_000, true);
        assert_eq!(slot.report()[0].runs, 8);
        assert!(
            slot.status()
                .unwrap()
                .contains("T15 15 ms: 5 run(s), 2 overrun(s)")
        );
        assert_eq!(slot.take_new_overruns().len(), 2);
        assert!(slot.take_new_overruns().is_empty());
        assert!(slot.remove(Duration::from_millis(10)));
        slot.run(image, 124, 5_000_000, true);
        assert_eq!(slot.report()[0].runs, 8);
    }

    #[test]
    fn human_times() {
        assert_eq!(human_ns(15_000_000), "15 ms");
        assert_eq!(human_ns(500_000), "500 us");
        assert_eq!(human_ns(1_500), "1500 ns");
        assert_eq!(gcd(10_000_000, 15_000_000), 5_000_000);
    }
}
