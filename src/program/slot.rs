//! Where the scan thread finds the running program: an atomic pointer set
//! when the program's plugin has started and cleared (waiting for the scan
//! thread to leave it) before its `stop_loop`, like `native::CycleHooks`; and
//! the per-task statistics as fixed arrays of atomics the supervisor reads.

use std::sync::Mutex;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::{MAX_TASKS, Program};
use crate::image::Image;

/// Per-task counters, updated by the scan thread.
pub struct TaskStats {
    runs: [AtomicU64; MAX_TASKS],
    overruns: [AtomicU64; MAX_TASKS],
    max_ns: [AtomicU64; MAX_TASKS],
    /// Cycles whose due tasks ran on their last inputs: the image lock was
    /// held by a plugin past the wait's bound, so nothing was copied in.
    pub(super) stale_inputs: AtomicU64,
    /// Cycles that copied out what unlocked runs had left pending.
    pub(super) late_outputs: AtomicU64,
}

impl TaskStats {
    fn new() -> TaskStats {
        TaskStats {
            runs: [const { AtomicU64::new(0) }; MAX_TASKS],
            overruns: [const { AtomicU64::new(0) }; MAX_TASKS],
            max_ns: [const { AtomicU64::new(0) }; MAX_TASKS],
            stale_inputs: AtomicU64::new(0),
            late_outputs: AtomicU64::new(0),
        }
    }

    fn reset(&self) {
        for a in self.runs.iter().chain(&self.overruns).chain(&self.max_ns) {
            a.store(0, Ordering::Relaxed);
        }
        self.stale_inputs.store(0, Ordering::Relaxed);
        self.late_outputs.store(0, Ordering::Relaxed);
    }

    /// Task `i` ran for `ns`; `over`: longer than its interval.
    pub(super) fn ran(&self, i: usize, ns: u64, over: bool) {
        if let (Some(r), Some(m), Some(o)) =
            (self.runs.get(i), self.max_ns.get(i), self.overruns.get(i))
        {
            r.fetch_add(1, Ordering::Relaxed);
            m.fetch_max(ns, Ordering::Relaxed);
            if over {
                o.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Task `i` missed `n` runs.
    pub(super) fn overran(&self, i: usize, n: u64) {
        if let Some(o) = self.overruns.get(i).filter(|_| n > 0) {
            o.fetch_add(n, Ordering::Relaxed);
        }
    }
}

/// A task's figures, for STATUS and the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskReport {
    pub name: String,
    pub interval_ns: u64,
    pub runs: u64,
    pub overruns: u64,
    pub max_ns: u64,
}

/// The scan thread's view of the program. Part of `native::CycleHooks`.
pub struct ProgramSlot {
    program: AtomicPtr<Program>,
    /// Odd while the scan thread is inside `run`.
    pass: AtomicU64,
    stats: TaskStats,
    /// Overruns already logged, per task (`take_new_overruns`).
    logged: [AtomicU64; MAX_TASKS],
    /// Task names and intervals of the program last added (supervisor side).
    tasks: Mutex<Vec<(String, u64)>>,
}

impl Default for ProgramSlot {
    fn default() -> ProgramSlot {
        ProgramSlot {
            program: AtomicPtr::new(std::ptr::null_mut()),
            pass: AtomicU64::new(0),
            stats: TaskStats::new(),
            logged: [const { AtomicU64::new(0) }; MAX_TASKS],
            tasks: Mutex::new(Vec::new()),
        }
    }
}

impl ProgramSlot {
    /// The scan thread runs `program` from its next cycle on (once its
    /// period is the program's). The program must stay alive and in place
    /// until `remove` returned true.
    pub fn add(&self, program: &Program) {
        self.stats.reset();
        for l in &self.logged {
            l.store(0, Ordering::Relaxed);
        }
        if let Ok(mut t) = self.tasks.lock() {
            *t = program
                .tasks
                .iter()
                .map(|t| (t.name.clone(), t.interval_ns))
                .collect();
        }
        program.first_tick.set(None);
        self.program
            .store(std::ptr::from_ref(program).cast_mut(), Ordering::SeqCst);
    }

    /// Stops running the program. Returns the pass the scan thread was in
    /// (odd), which [`ProgramSlot::left`] waits for, or `None` when it was
    /// outside the program already.
    pub fn detach(&self) -> Option<u64> {
        self.program.store(std::ptr::null_mut(), Ordering::SeqCst);
        let seen = self.pass.load(Ordering::SeqCst);
        (!seen.is_multiple_of(2)).then_some(seen)
    }

    /// True once the scan thread has left the pass `detach` returned.
    pub fn left(&self, seen: Option<u64>) -> bool {
        seen.is_none_or(|s| self.pass.load(Ordering::SeqCst) != s)
    }

    /// Stops running the program and waits until the scan thread is out of
    /// it; `false` when it stayed inside for `budget` (the program hangs).
    pub fn remove(&self, budget: Duration) -> bool {
        let seen = self.detach();
        let deadline = Instant::now() + budget;
        while !self.left(seen) {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        true
    }

    /// One cycle of the program, if there is one and the scan runs at its
    /// period: deadline number `tick`; `locked`: the scan thread holds the
    /// image lock (else the due tasks run on their last inputs and their
    /// outputs wait for the next cycle that gets the lock). Scan thread
    /// only; no allocation.
    pub fn run(&self, image: &Image, tick: u64, period_ns: u64, locked: bool) {
        self.pass.fetch_add(1, Ordering::SeqCst);
        let p = self.program.load(Ordering::SeqCst);
        if !p.is_null() {
            // SAFETY: `add` stored a live program that stays in place until
            // `remove` returned, which waits for this pass to end; only this
            // thread touches its scan state.
            let program = unsafe { &*p };
            if program.period_ns == period_ns {
                program.run_cycle(image, tick, &self.stats, locked);
            }
        }
        self.pass.fetch_add(1, Ordering::SeqCst);
    }

    /// Per-task figures of the program last added.
    pub fn report(&self) -> Vec<TaskReport> {
        let tasks = self.tasks.lock().map(|t| t.clone()).unwrap_or_default();
        tasks
            .into_iter()
            .enumerate()
            .map(|(i, (name, interval_ns))| TaskReport {
                name,
                interval_ns,
                runs: self.stats.runs[i].load(Ordering::Relaxed),
                overruns: self.stats.overruns[i].load(Ordering::Relaxed),
                max_ns: self.stats.max_ns[i].load(Ordering::Relaxed),
            })
            .collect()
    }

    /// The tasks whose overrun count grew since the last call, with the
    /// growth in `overruns` (for the log).
    pub fn take_new_overruns(&self) -> Vec<TaskReport> {
        self.report()
            .into_iter()
            .zip(&self.logged)
            .filter_map(|(mut r, logged)| {
                let before = logged.swap(r.overruns, Ordering::Relaxed);
                r.overruns = r.overruns.checked_sub(before).filter(|&d| d > 0)?;
                Some(r)
            })
            .collect()
    }

    /// "program: MAIN 10 ms: 1200 run(s), 0 overrun(s); …" for STATUS, or
    /// `None` without a program.
    pub fn status(&self) -> Option<String> {
        let tasks = self.report();
        if tasks.is_empty() {
            return None;
        }
        let parts: Vec<String> = tasks
            .iter()
            .map(|t| {
                format!(
                    "{} {}: {} run(s), {} overrun(s)",
                    t.name,
                    super::human_ns(t.interval_ns),
                    t.runs,
                    t.overruns
                )
            })
            .collect();
        let stale = self.stats.stale_inputs.load(Ordering::Relaxed);
        let late = self.stats.late_outputs.load(Ordering::Relaxed);
        let lock = if stale + late > 0 {
            format!(
                "; image lock busy: {stale} cycle(s) ran tasks on their last inputs, {late} copied outputs out late"
            )
        } else {
            String::new()
        };
        Some(format!("program: {}{lock}", parts.join(", ")))
    }
}
