//! What the supervisor tells: the one-line STATUS= for systemd, and the
//! periodic report of scan overruns and of the image's counters (journal
//! overflows and rejects, lock recoveries and failures, corrupt rings, each
//! ring's publish-to-apply waits) as log lines.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::Supervisor;
use super::restart::MAX_RESTARTS;
use super::slot::{Slot, State};
use crate::image;

/// Longest a plugin may hold the image lock before the runtime counts as
/// unhealthy (and systemd's watchdog restarts it): OpenPLC plugins hold it
/// for microseconds around a few reads; a second is a plugin that is stuck.
pub const LOCK_HOLD_LIMIT: std::time::Duration = std::time::Duration::from_secs(1);

/// A journal write waits at most one scan period for the next apply pass;
/// waits past this many periods mean the scan thread skipped cycles or the
/// ring stalled, and the interval's figures are logged as a warning (else at
/// debug level): the runtime's own account of where a write was held up.
pub const RING_WAIT_WARN_PERIODS: u64 = 3;

impl Supervisor {
    /// One human line for STATUS=.
    pub(super) fn status_line(&self) -> String {
        let running = self.slots.iter().filter(|s| s.is_started()).count();
        let failed: Vec<String> = self
            .slots
            .iter()
            .filter(|s| !s.is_up())
            .map(|s| match s.state {
                State::GaveUp => format!("{}: gave up after {} restarts", s.name(), MAX_RESTARTS),
                State::Restarting(_) => format!("{}: restarting", s.name()),
                _ => s.name().to_string(),
            })
            .collect();
        let stats = self.scan.stats();
        let wait_max = (0..image::JOURNAL_RINGS)
            .map(|r| self.image.ring_run_figures(r).wait_max_ns)
            .max()
            .unwrap_or(0);
        let mut s = format!(
            "{running} plugin(s) running, {} failed{}; scan {} us, {} cycle(s), {} overrun(s); journal wait max {} us",
            failed.len(),
            if failed.is_empty() {
                String::new()
            } else {
                format!(" ({})", failed.join(", "))
            },
            // A program's period, which the scan thread takes up within a cycle.
            crate::program::program_period_ns().unwrap_or_else(|| stats.period_ns()) / 1000,
            stats.cycles.load(Ordering::Relaxed),
            stats.overruns.load(Ordering::Relaxed),
            wait_max / 1000
        );
        let (failures, errno) = self.image.lock_failures();
        if failures > 0 {
            s.push_str(&format!(
                "; IMAGE LOCK BROKEN ({failures} failed wait(s), last {})",
                std::io::Error::from_raw_os_error(errno)
            ));
        }
        if stats.overruns.load(Ordering::Relaxed) > 0
            && let Some(note) = self.hooks_note()
        {
            s.push_str("; ");
            s.push_str(&note);
        }
        if let Some(p) = self.scan.hooks().program.status() {
            s.push_str("; ");
            s.push_str(&p);
        }
        if let Some(r) = &self.last_reload {
            s.push_str("; ");
            s.push_str(r);
        }
        if !self.restart_needed.is_empty() {
            s.push_str(&format!(
                "; restart needed for: {}",
                self.restart_needed.join(", ")
            ));
        }
        if let Some(p) = &self.stuck_call {
            s.push_str(&format!("; STUCK: {p}"));
        }
        s
    }

    /// The name of the plugin in callback slot `index`.
    fn slot_name_of(&self, index: usize) -> &str {
        self.slots
            .iter()
            .find(|s| s.index == index)
            .map_or("?", Slot::name)
    }

    /// Who owns journal ring `ring`, in words.
    fn ring_owner(&self, ring: usize) -> String {
        match ring {
            0 => "the runtime's own process".to_string(),
            r => format!("[{}]'s worker", self.slot_name_of(r - 1)),
        }
    }

    /// Who held the image lock at the scan thread's last timed-out wait, by
    /// both witnesses: the hold record and the futex word's owner thread,
    /// resolved to a process; a disagreement or a thread that does not exist
    /// is said to be a corrupt mapping.
    fn lock_holder_text(&self) -> String {
        let b = self.image.lock_block();
        let record = match b.holder {
            image::LockOwner::Unrecorded => None,
            image::LockOwner::Plugin(slot) => Some(format!("[{}]", self.slot_name_of(slot))),
            image::LockOwner::Corrupt(v) => {
                return format!(
                    "nobody that can be named: the hold record reads {v}, which no plugin slot has (the shared image mapping was written over)"
                );
            }
        };
        let Some(tid) = b.owner_tid else {
            return record.unwrap_or_else(|| {
                "no recorded plugin (the lock was free again when looked at, or its owner cannot be read with this C library)".into()
            });
        };
        let Some(pid) = thread_process(tid) else {
            // A live lock never names a thread that is gone: the kernel
            // marks a dead owner's robust futex instead. Only a word that
            // still names it now is a corrupt mutex; else the holder ended.
            return if self.image.lock_owner_tid() == Some(tid) {
                format!(
                    "{}thread {tid}, which does not exist: the mutex in the shared image mapping is corrupt",
                    record.map_or(String::new(), |r| format!(
                        "{r} by its record, but the lock names "
                    ))
                )
            } else {
                format!(
                    "{} (thread {tid}, which has ended since)",
                    record.unwrap_or_else(|| "a thread".into())
                )
            };
        };
        let process = if pid == std::process::id() {
            "the runtime's own process".to_string()
        } else if let Some(s) = self
            .slots
            .iter()
            .find(|s| s.worker().is_some_and(|w| w.pid == pid))
        {
            format!("[{}]'s worker", s.name())
        } else {
            format!("process {pid}")
        };
        match record {
            Some(r) => format!("{r} (thread {tid} of {process})"),
            // In a worker, a stop or preemption between taking the lock and
            // writing the record (or clearing it and releasing) looks so too.
            None => format!("thread {tid} of {process}, with no hold recorded"),
        }
    }

    /// Logs each ring's figures for the interval: corruption found (always a
    /// warning, naming the plugin), and publish-to-apply waits (a warning
    /// past [`RING_WAIT_WARN_PERIODS`], else at debug level).
    fn report_rings(&self, skipped: u64) {
        let period = self.scan.stats().period_ns().max(1);
        let apply_max = self.image.take_apply_max_ns();
        let (lock_wait, lock_hold) = self.image.take_plugin_lock_figures();
        for ring in 0..image::JOURNAL_RINGS {
            let f = self.image.take_ring_figures(ring);
            if f.corrupt > 0 {
                let what = self
                    .image
                    .ring_corruption(ring)
                    .map_or(String::new(), |(c, v, head)| c.describe(v, head));
                log::error!(
                    "journal ring {ring} ({}) is corrupt: {what}; found {} time(s) since the last report, reset each time (its pending writes dropped). Only a process that maps the image writes there: that plugin's worker, or another one writing out of bounds",
                    self.ring_owner(ring),
                    f.corrupt
                );
            }
            if f.applied == 0 {
                continue;
            }
            let level = if f.wait_max_ns > RING_WAIT_WARN_PERIODS * period {
                log::Level::Warn
            } else {
                log::Level::Debug
            };
            log::log!(
                level,
                "journal ring {ring} ({}): {} write(s) applied, publish-to-apply wait mean {} us, max {} us (scan period {} us; this interval: {skipped} cycle(s) skipped on the lock, longest apply pass {} us, longest plugin image_lock() wait {} us and hold {} us)",
                self.ring_owner(ring),
                f.applied,
                f.wait_mean_ns / 1000,
                f.wait_max_ns / 1000,
                period / 1000,
                apply_max / 1000,
                lock_wait / 1000,
                lock_hold / 1000
            );
        }
    }

    /// One line per ring that carried writes during the run, for the log at
    /// the stop (and the benchmarks).
    pub(super) fn log_ring_totals(&self) {
        for ring in 0..image::JOURNAL_RINGS {
            let f = self.image.ring_run_figures(ring);
            if f.applied == 0 && f.corrupt == 0 {
                continue;
            }
            log::info!(
                "journal ring {ring} ({}): {} write(s) applied, publish-to-apply wait mean {} us, max {} us; found corrupt {} time(s); longest apply pass {} us",
                self.ring_owner(ring),
                f.applied,
                f.wait_mean_ns / 1000,
                f.wait_max_ns / 1000,
                f.corrupt,
                self.image.apply_max_run_ns() / 1000
            );
        }
    }

    /// What, besides a stuck call or a stalled scan loop, makes the runtime
    /// unhealthy for the watchdog: a plugin holding the image lock past
    /// [`LOCK_HOLD_LIMIT`], or a journal ring whose oldest write stays
    /// unpublished (its writer died and the ring was not reset).
    pub(super) fn sickness(&self) -> Option<String> {
        if let Some((index, held_ns)) = self.image.lock_hold()
            && held_ns > LOCK_HOLD_LIMIT.as_nanos() as u64
        {
            return Some(format!(
                "[{}] has held the image lock for {} ms (limit {} ms)",
                self.slot_name_of(index),
                held_ns / 1_000_000,
                LOCK_HOLD_LIMIT.as_millis()
            ));
        }
        if let Some((ring, passes)) = self.image.stalled_ring() {
            return Some(format!(
                "journal ring {ring} ({}) has had an unpublished write for {passes} scan cycles",
                self.ring_owner(ring)
            ));
        }
        let (failures, errno) = self.image.lock_failures();
        if failures > 0 {
            return Some(format!(
                "the image lock is broken ({}): the journal is not applied",
                std::io::Error::from_raw_os_error(errno)
            ));
        }
        None
    }

    /// What native cycle hooks cost, for overrun reports: "native cycle hooks
    /// took up to N us in one cycle (slowest: [name] M us in one call)", or
    /// `None` while no hook has run.
    pub(super) fn hooks_note(&self) -> Option<String> {
        let (index, call_ns) = self.scan.hooks().slowest()?;
        let name = self
            .slots
            .iter()
            .find(|s| s.index == index)
            .map_or("?", Slot::name);
        Some(format!(
            "native cycle hooks took up to {} us in one cycle (slowest: [{name}] {} us in one call)",
            self.scan.stats().hooks_max_ns.load(Ordering::Relaxed) / 1000,
            call_ns / 1000
        ))
    }

    /// Logs queued scan events and counter changes; refreshes STATUS.
    pub(super) fn report(&mut self) {
        let stats = Arc::clone(self.scan.stats());
        let mut missed = false;
        while let Some(e) = self.scan.pop_event() {
            missed = true;
            log::warn!(
                "scan: cycle {} missed {} deadline(s): woke {} us late, its work took {} us (period {} us)",
                e.cycle,
                e.missed,
                e.late_ns / 1000,
                e.took_ns / 1000,
                stats.period_ns() / 1000
            );
        }
        if missed && let Some(note) = self.hooks_note() {
            log::warn!("scan: {note}");
        }
        for t in self.scan.hooks().program.take_new_overruns() {
            log::warn!(
                "program: task {} (every {}) overran {} time(s) (after {} run(s); longest run {} us): a run took longer than its interval or its cycle was late",
                t.name,
                crate::program::human_ns(t.interval_ns),
                t.overruns,
                t.runs,
                t.max_ns / 1000
            );
        }
        let now = [
            self.image.journal_overflows(),
            self.image.journal_rejected(),
            self.image.lock_recoveries(),
            stats.events_dropped(),
            stats.skipped.load(Ordering::Relaxed),
            self.image.journal_lost(),
        ];
        let d: Vec<u64> = now.iter().zip(self.reported).map(|(n, r)| n - r).collect();
        let by_ring: Vec<String> = (0..image::JOURNAL_RINGS)
            .filter_map(|r| {
                let n = self.image.take_ring_overflows(r);
                (n > 0).then(|| format!("{} {n}", self.ring_owner(r)))
            })
            .collect();
        if d[0] > 0 {
            log::warn!(
                "journal full: {} write(s) dropped (capacity {} per ring per cycle; by ring: {})",
                d[0],
                image::JOURNAL_CAPACITY,
                by_ring.join(", ")
            );
        }
        if d[1] > 0 {
            log::warn!(
                "journal: {} write(s) rejected (wrong type code for the function, index >= buffer_size or bit > 7)",
                d[1]
            );
        }
        if d[2] > 0 {
            log::warn!("image lock: recovered from a dead owner {} time(s)", d[2]);
        }
        if d[3] > 0 {
            log::warn!("scan: {} more overrun report(s) dropped (queue full)", d[3]);
        }
        let (failed, errno) = self.image.take_lock_failures();
        if failed > 0 {
            let ghost = match self.image.lock_block().owner_tid {
                Some(tid) if errno == libc::ESRCH => {
                    format!(", its owner word naming thread {tid}, which does not exist")
                }
                _ => String::new(),
            };
            log::error!(
                "image lock: {failed} lock call(s) in the runtime's process failed with {} (errno {errno}{ghost}): the mutex in the shared image mapping is corrupt (a process that maps the image wrote over it); the scan applies no journal without the lock",
                std::io::Error::from_raw_os_error(errno)
            );
        }
        if d[4] > failed {
            // Failed waits are skipped cycles too, told above.
            log::warn!(
                "scan: {} cycle(s) skipped: the image lock was still held half a period after the wake-up, last by {}; the journal waits for the next cycle",
                d[4].saturating_sub(failed),
                self.lock_holder_text()
            );
        }
        if d[5] > 0 {
            log::warn!(
                "journal: {} write(s) lost: claimed by a worker process that died before publishing them",
                d[5]
            );
        }
        self.report_rings(d[4]);
        self.reported = now;
        let status = self.status_line();
        self.notifier.status(&status);
    }
}

/// The process (thread group) thread `tid` belongs to, from
/// `/proc/<tid>/status`; `None` when no such thread exists.
fn thread_process(tid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{tid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Tgid:"))
        .and_then(|v| v.trim().parse().ok())
}
