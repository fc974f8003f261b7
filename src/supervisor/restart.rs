//! Worker processes that die: how the death is reported, and the restart
//! policy (exponential back-off, a fresh count after a healthy run, giving up
//! after too many deaths in a row). The scan loop and the other plugins are
//! never affected.

use std::time::{Duration, Instant};

use super::Supervisor;
use super::slot::{Runner, State};
use super::steps::Step;
use crate::isolation as worker;
use crate::lifecycle::Call;

/// First restart delay after a worker died; doubled per consecutive restart.
pub const RESTART_BACKOFF_BASE: Duration = Duration::from_millis(250);
/// Longest restart delay.
pub const RESTART_BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Consecutive restarts before a plugin is marked failed for good: five
/// crashes in a row (about 8 s of back-off) is a plugin that cannot run.
pub const MAX_RESTARTS: u32 = 5;
/// A worker that ran this long without dying has earned a fresh restart count.
pub const HEALTHY_RUN: Duration = Duration::from_secs(60);

/// The delay before restart number `n` (0-based).
pub fn backoff(n: u32) -> Duration {
    RESTART_BACKOFF_BASE
        .saturating_mul(1u32 << n.min(16))
        .min(RESTART_BACKOFF_MAX)
}

impl Supervisor {
    /// Handles worker processes that died: logs how, marks the plugin failed,
    /// and schedules a restart with exponential back-off (or gives up).
    pub(super) fn collect_worker_exits(&mut self) {
        while let Ok(pid) = self.worker_exits.try_recv() {
            let Some(i) = self
                .slots
                .iter()
                .position(|s| s.worker().is_some_and(|w| w.pid == pid))
            else {
                continue; // a worker we retired ourselves
            };
            if self.slots[i].worker().is_some_and(|w| w.exit_expected()) {
                continue; // cleanup answered; `retire` reaps it
            }
            let Some(Runner::Worker(w)) = self.slots[i].state.take_runner() else {
                continue;
            };
            // Known ended (the exit watcher said so): only its status is asked.
            let status = w.status();
            // What it claimed and never published must not stall its ring:
            // the scan thread resets it (what it did publish is applied).
            self.image
                .request_ring_reset(crate::image::worker_ring(self.slots[i].index));
            let slot = &mut self.slots[i];
            let name = slot.name().to_string();
            log::error!(
                "[{name}] worker process {pid} died: {}; the scan loop and the other plugins go on",
                worker::describe_exit(status)
            );
            if self.stopping.is_some() {
                continue;
            }
            if w.started.elapsed() >= HEALTHY_RUN {
                slot.restarts = 0;
            }
            if slot.restarts < MAX_RESTARTS {
                let delay = backoff(slot.restarts);
                slot.restarts += 1;
                slot.state = State::Restarting(Instant::now() + delay);
                log::warn!(
                    "[{name}] restarting its worker in {} ms (restart {} of {})",
                    delay.as_millis(),
                    slot.restarts,
                    MAX_RESTARTS
                );
            } else {
                slot.state = State::GaveUp;
                log::error!(
                    "[{name}] its worker died {} times in a row; giving up: the plugin stays failed until the service restarts",
                    MAX_RESTARTS + 1
                );
            }
        }
    }

    /// Restarts the workers whose back-off has passed: `init`, then
    /// `start_loop`, as at start-up.
    pub(super) fn restart_due_workers(&mut self) {
        let now = Instant::now();
        for i in 0..self.slots.len() {
            if self.stopping.is_some() {
                return;
            }
            if matches!(self.slots[i].state, State::Restarting(t) if t <= now) {
                self.slots[i].state = State::Unloaded;
                // Its files may have changed since they were checked: the
                // root trust checks run again before anything is imported.
                if crate::sys::effective_uid() == 0 {
                    let refused = self.slots[i].plugin.refusals(self.opts.root.as_deref());
                    if !refused.is_empty() {
                        log::error!(
                            "[{}] not restarting its worker: {}; the plugin stays failed until the service restarts",
                            self.slots[i].name(),
                            refused.join("; ")
                        );
                        continue;
                    }
                }
                log::info!("[{}] restarting its worker", self.slots[i].name());
                self.load(i);
                if matches!(self.slots[i].state, State::Initialized(_)) {
                    self.step(i, Step::Call(Call::StartLoop));
                }
            }
        }
    }

    /// The earliest pending worker restart.
    pub(super) fn next_restart(&self) -> Option<Instant> {
        self.slots
            .iter()
            .filter_map(|s| match s.state {
                State::Restarting(t) => Some(t),
                _ => None,
            })
            .min()
    }
}
