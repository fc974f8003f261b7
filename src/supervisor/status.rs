//! What the supervisor tells: the one-line STATUS= for systemd, and the
//! periodic report of scan overruns and of the image's counters (journal
//! overflows and rejects, lock recoveries) as log lines.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::Supervisor;
use super::slot::{Slot, State};
use crate::image;
use crate::worker;

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
            stats.period_ns() / 1000,
            stats.overruns.load(Ordering::Relaxed)
        );
        if stats.overruns.load(Ordering::Relaxed) > 0
            && let Some(note) = self.hooks_note()
        {
            s.push_str("; ");
            s.push_str(&note);
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
        let now = [
            self.image.journal_overflows(),
            self.image.journal_rejected(),
            self.image.lock_recoveries(),
            stats.events_dropped(),
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
        self.reported = now;
        let status = self.status_line();
        self.notifier.status(&status);
    }
}
