//! What the supervisor tells: the one-line STATUS= for systemd, and the
//! periodic report of scan overruns and of the image's counters (journal
//! overflows and rejects, lock recoveries) as log lines.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::Supervisor;
use super::slot::{Slot, State};
use crate::image;
use crate::worker;

/// Longest a plugin may hold the image lock before the runtime counts as
/// unhealthy (and systemd's watchdog restarts it): OpenPLC plugins hold it
/// for microseconds around a few reads; a second is a plugin that is stuck.
pub const LOCK_HOLD_LIMIT: std::time::Duration = std::time::Duration::from_secs(1);

impl Supervisor {
    /// One human line for STATUS=.
    pub(super) fn status_line(&self) -> String {
        let running = self.slots.iter().filter(|s| s.is_started()).count();
        let failed: Vec<String> = self
            .slots
            .iter()
            .filter(|s| !s.is_up())
            .map(|s| match s.state {
                State::GaveUp => format!(
                    "{}: gave up after {} restarts",
                    s.name(),
                    worker::MAX_RESTARTS
                ),
                State::Restarting(_) => format!("{}: restarting", s.name()),
                _ => s.name().to_string(),
            })
            .collect();
        let stats = self.scan.stats();
        let mut s = format!(
            "{running} plugin(s) running, {} failed{}; scan {} us, {} overrun(s)",
            failed.len(),
            if failed.is_empty() {
                String::new()
            } else {
                format!(" ({})", failed.join(", "))
            },
            // A program's period, which the scan thread takes up within a cycle.
            crate::program::program_period_ns().unwrap_or_else(|| stats.period_ns()) / 1000,
            stats.overruns.load(Ordering::Relaxed)
        );
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
            let owner = match ring {
                0 => "the runtime's own process".to_string(),
                r => format!("[{}]'s worker", self.slot_name_of(r - 1)),
            };
            return Some(format!(
                "journal ring {ring} ({owner}) has had an unpublished write for {passes} scan cycles"
            ));
        }
        None
    }

    /// What native cycle hooks cost, for overrun reports: "native cycle hooks
    /// took up to N us in one cycle (slowest: [name] M us in one call)", or
    /// `None` while no hook has run.
    fn hooks_note(&self) -> Option<String> {
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
        if d[0] > 0 {
            log::warn!(
                "journal full: {} write(s) dropped (capacity {} per cycle)",
                d[0],
                image::JOURNAL_CAPACITY
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
        if d[4] > 0 {
            let holder = match stats.skipped_holder.load(Ordering::Relaxed) {
                0 => "a thread outside any plugin's image_lock()".to_string(),
                h => format!("[{}]", self.slot_name_of(h as usize - 1)),
            };
            log::warn!(
                "scan: {} cycle(s) skipped: the image lock was still held at the cycle's end, last by {holder}; the journal waits for the next cycle",
                d[4]
            );
        }
        if d[5] > 0 {
            log::warn!(
                "journal: {} write(s) lost: claimed by a worker process that died before publishing them",
                d[5]
            );
        }
        self.reported = now;
        let status = self.status_line();
        self.notifier.status(&status);
    }
}
