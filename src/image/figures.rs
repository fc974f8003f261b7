//! What the scan thread saw of each journal ring: how many writes it applied,
//! how long they waited between their producer's publish and the apply, how
//! long its passes took, and whether a ring was found corrupt. Kept in this
//! process's memory, never in the shared mapping: a worker can write the
//! mapping, and must not be able to write the figures that judge it (nor make
//! another ring look stalled to the watchdog).
//!
//! The scan thread only adds (atomics, no allocation); the supervisor takes
//! the interval's figures at each report and keeps the run's totals here.

use std::sync::atomic::{AtomicU64, Ordering};

use super::Image;
use super::journal::Corruption;

/// One ring's figures.
#[derive(Default)]
pub(super) struct RingFigures {
    /// Consecutive apply passes that found the oldest write claimed but not
    /// published.
    pub(super) stalled_passes: AtomicU64,
    /// Since the last report: writes applied, the sum and the longest of
    /// their publish-to-apply waits (ns), corruptions found.
    pub(super) applied: AtomicU64,
    pub(super) wait_sum_ns: AtomicU64,
    pub(super) wait_max_ns: AtomicU64,
    pub(super) corrupt: AtomicU64,
    /// The longest wait of the run (ns).
    pub(super) wait_max_run_ns: AtomicU64,
    /// The run's totals of what was taken so far.
    applied_run: AtomicU64,
    wait_sum_run_ns: AtomicU64,
    corrupt_run: AtomicU64,
    /// The last corruption: its [`Corruption`] code (0: none yet), the value
    /// found and the scan thread's read position then.
    pub(super) corrupt_kind: AtomicU64,
    pub(super) corrupt_value: AtomicU64,
    pub(super) corrupt_head: AtomicU64,
}

/// A ring's figures over an interval or a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RingReport {
    /// Writes applied.
    pub applied: u64,
    /// Mean publish-to-apply wait, ns (0 when nothing was applied).
    pub wait_mean_ns: u64,
    /// Longest publish-to-apply wait, ns.
    pub wait_max_ns: u64,
    /// Times the ring was found corrupt (and reset).
    pub corrupt: u64,
}

impl Image {
    /// Ring `ring`'s figures since the last call (the interval starts again),
    /// added to the run's totals. For one reader: the supervisor's report.
    pub fn take_ring_figures(&self, ring: usize) -> RingReport {
        let Some(f) = self.figures.get(ring) else {
            return RingReport::default();
        };
        let applied = f.applied.swap(0, Ordering::Relaxed);
        let sum = f.wait_sum_ns.swap(0, Ordering::Relaxed);
        let corrupt = f.corrupt.swap(0, Ordering::Relaxed);
        f.applied_run.fetch_add(applied, Ordering::Relaxed);
        f.wait_sum_run_ns.fetch_add(sum, Ordering::Relaxed);
        f.corrupt_run.fetch_add(corrupt, Ordering::Relaxed);
        RingReport {
            applied,
            wait_mean_ns: sum.checked_div(applied).unwrap_or(0),
            wait_max_ns: f.wait_max_ns.swap(0, Ordering::Relaxed),
            corrupt,
        }
    }

    /// Ring `ring`'s figures over the run, as far as taken by
    /// [`Image::take_ring_figures`].
    pub fn ring_run_figures(&self, ring: usize) -> RingReport {
        let Some(f) = self.figures.get(ring) else {
            return RingReport::default();
        };
        let applied = f.applied_run.load(Ordering::Relaxed);
        RingReport {
            applied,
            wait_mean_ns: f
                .wait_sum_run_ns
                .load(Ordering::Relaxed)
                .checked_div(applied)
                .unwrap_or(0),
            wait_max_ns: f.wait_max_run_ns.load(Ordering::Relaxed),
            corrupt: f.corrupt_run.load(Ordering::Relaxed),
        }
    }

    /// The last corruption found in ring `ring`: what, the value found, and
    /// the scan thread's read position then.
    pub fn ring_corruption(&self, ring: usize) -> Option<(Corruption, u64, u64)> {
        let f = self.figures.get(ring)?;
        let kind = Corruption::from_code(f.corrupt_kind.load(Ordering::Acquire))?;
        Some((
            kind,
            f.corrupt_value.load(Ordering::Relaxed),
            f.corrupt_head.load(Ordering::Relaxed),
        ))
    }

    /// Writes refused for a full journal in ring `ring` since the last call.
    pub fn take_ring_overflows(&self, ring: usize) -> u64 {
        self.header()
            .ring_overflows
            .get(ring)
            .map_or(0, |n| n.swap(0, Ordering::Relaxed))
    }

    /// The longest apply pass (journal checks and applies, under the image
    /// lock) since the last call, ns; the interval starts again.
    pub fn take_apply_max_ns(&self) -> u64 {
        let n = self.apply_max_ns.swap(0, Ordering::Relaxed);
        self.apply_max_run_ns.fetch_max(n, Ordering::Relaxed);
        n
    }

    /// The longest apply pass of the run, as far as taken, ns.
    pub fn apply_max_run_ns(&self) -> u64 {
        self.apply_max_run_ns.load(Ordering::Relaxed)
    }
}
