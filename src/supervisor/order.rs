//! The order of plugin steps: at start-up every `init` before any
//! `start_loop` (forked workers importing side by side first); at the end
//! every `stop_loop`, then the scan thread, then every `cleanup`.

use std::time::Duration;

use super::slot::State;
use super::steps::{Budgeted, Step, abandon};
use super::{SCAN_STOP_BUDGET, Supervisor};
use crate::config::PluginKind;
use crate::lifecycle::Call;

impl Supervisor {
    /// Loads and starts the slots in `range` (new slots at the end of `slots`):
    /// every `init` first, in order, then `start_loop` for those whose init
    /// succeeded.
    pub(super) fn start_slots(&mut self, range: std::ops::Range<usize>) {
        // Forked workers import their plugins side by side; `init` is still
        // called in order, once each import reported.
        if self.zygote.is_some() && self.stopping.is_none() {
            let python: Vec<usize> = range
                .clone()
                .filter(|&i| {
                    self.slots[i].plugin.entry.kind == PluginKind::Python
                        && matches!(self.slots[i].state, State::Unloaded)
                })
                .collect();
            let workers = self.spawn_workers_for(&python);
            for (i, w) in python.into_iter().zip(workers) {
                self.slots[i].prestarted = w;
            }
        }
        for i in range.clone() {
            if self.stopping.is_some() {
                break;
            }
            self.load(i);
        }
        for i in range.clone() {
            if self.stopping.is_some() {
                break;
            }
            if matches!(self.slots[i].state, State::Initialized(_)) {
                self.step(i, Step::Call(Call::StartLoop));
            }
        }
        // Stopped before their turn: never called, they just go.
        for i in range {
            if let Some(w) = self.slots[i].prestarted.take() {
                self.retire(i, &w, true);
            }
        }
    }

    /// Stops the given slots (indices into `slots`, stopped in the order
    /// given): `stop_loop` for the started ones, then `cleanup` for those whose
    /// init ran. With `scan` set, the scan thread is stopped in between.
    pub(super) fn stop_slots(&mut self, order: &[usize], scan: bool) {
        for &i in order {
            let stopped = match self.slots[i].state {
                State::Started(_) => self.step(i, Step::Call(Call::StopLoop)),
                State::Initialized(_) => {
                    // Stopping came between its init and its start_loop.
                    if let Some(r) = self.slots[i].state.take_runner() {
                        self.slots[i].state = State::Loaded(r);
                    }
                    true
                }
                _ => true,
            };
            if !stopped {
                log::warn!("[{}] did not stop cleanly", self.slots[i].name());
            }
        }
        if scan {
            self.stop_scan();
        }
        for &i in order {
            match self.slots[i].state {
                State::Stuck(_) => log::warn!(
                    "[{}] skipping cleanup(): an earlier call of this plugin is still running",
                    self.slots[i].name()
                ),
                State::Loaded(_) => {
                    self.step(i, Step::Call(Call::Cleanup));
                }
                State::Restarting(_) => self.slots[i].state = State::Unloaded,
                _ => {}
            }
        }
    }

    /// Stops the scan thread: it ends after its current cycle, so the wait is
    /// one period plus `SCAN_STOP_BUDGET`, serving signals and the watchdog.
    /// The lock is waited for only until a cycle's end, so a thread that does
    /// not end is inside a native cycle hook or the PLC program.
    fn stop_scan(&mut self) {
        self.scan.request_stop();
        let exited = self.scan.exited();
        let period_ns = crate::program::program_period_ns()
            .unwrap_or(0)
            .max(self.scan.stats().period_ns());
        let budget = Duration::from_nanos(period_ns) + SCAN_STOP_BUDGET;
        let r = self.serve_until("scan", "cycle's end", budget, || {
            exited.load(std::sync::atomic::Ordering::SeqCst)
        });
        if matches!(r, Budgeted::Abandon) {
            abandon("scan", "cycle's end");
        }
        if matches!(r, Budgeted::Overran) {
            log::error!(
                "the scan thread did not finish its cycle within {} ms: it is inside a native plugin's cycle hook or the PLC program{}",
                budget.as_millis(),
                self.hooks_note()
                    .map_or(String::new(), |n| format!(" ({n})"))
            );
        } else {
            // Joins the ended thread (or leaves one still running behind).
            self.scan.stop(Duration::ZERO);
        }
    }
}
