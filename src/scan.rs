//! The scan thread: a fixed period with absolute deadlines (no drift), the
//! journal applied under the image lock each cycle, native plugins'
//! `cycle_start`/`cycle_end` hooks around it, and statistics in fixed-size
//! atomics. After its set-up it never allocates, never logs and never takes the
//! GIL; the supervisor reads the statistics.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use heapless::spsc::{Consumer, Producer, Queue};

use crate::image::{Image, JournalCursor};
use crate::native::{CycleHooks, Phase};
use crate::sys::{monotonic_ns, sleep_until_ns};

/// Default scan period (OpenPLC's default `common_ticktime__` is 20 ms).
pub const DEFAULT_PERIOD: Duration = Duration::from_millis(20);
/// Shortest accepted period: below 100 µs a Linux thread without real-time
/// scheduling cannot keep deadlines, and the statistics would only show noise.
pub const MIN_PERIOD: Duration = Duration::from_micros(100);
/// Longest accepted period; longer "scans" are a configuration mistake.
pub const MAX_PERIOD: Duration = Duration::from_secs(10);

/// SCHED_FIFO priority of the scan thread. A normal thread on a busy 2-core
/// board wakes milliseconds late (measured in BENCHMARKS.md: p99 630 µs at a
/// 1 ms period, 80 µs with this). 40 stays below PREEMPT_RT's threaded
/// interrupt handlers (50), so network and serial drivers keep running.
pub const DEFAULT_PRIORITY: i32 = 40;

/// Lateness histogram: 10 µs buckets up to 1 ms, then 1 ms buckets up to
/// 100 ms, then one overflow bucket. Fine where the targets are (p99 ≤ 200 µs
/// at 1 ms) and fixed in size.
const FINE_BUCKETS: usize = 100;
const FINE_NS: u64 = 10_000;
const COARSE_BUCKETS: usize = 99;
const COARSE_NS: u64 = 1_000_000;
/// Number of histogram buckets.
pub const HIST_BUCKETS: usize = FINE_BUCKETS + COARSE_BUCKETS + 1;

/// Capacity of the scan thread's event queue. The supervisor drains it every
/// report interval; 32 overrun reports per interval say everything useful and
/// the rest are counted as dropped, never waited for.
pub const EVENT_CAPACITY: usize = 32;

/// Something the scan thread wants logged. It never logs itself (logging
/// allocates and may block); it queues events for the supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanEvent {
    /// Cycle number whose deadline was missed.
    pub cycle: u64,
    /// Deadlines skipped.
    pub missed: u64,
    /// How late the cycle woke, ns.
    pub late_ns: u64,
    /// How long the cycle's work took, ns.
    pub took_ns: u64,
}

/// Length of the event queue's storage: heapless's queue keeps one slot free
/// to tell full from empty.
const EVENT_QUEUE_LEN: usize = EVENT_CAPACITY + 1;

/// Queues `e` for the supervisor. A full queue counts it as dropped: the scan
/// thread never waits and never allocates.
fn queue_event(events: &mut Producer<'_, ScanEvent>, dropped: &AtomicU64, e: ScanEvent) {
    if events.enqueue(e).is_err() {
        dropped.fetch_add(1, Ordering::Relaxed);
    }
}

/// Scan statistics, shared with the supervisor (and the benchmarks).
pub struct ScanStats {
    /// Cycles completed: journal applied, hooks run.
    pub cycles: AtomicU64,
    /// Cycles whose journal pass was skipped because the image lock stayed
    /// held half a period after the wake-up: the journal waits for the next
    /// cycle, the hooks and the program's due tasks (on their last inputs)
    /// run on time. Not in `cycles`, so the watchdog sees no progress while
    /// it lasts.
    pub skipped: AtomicU64,
    /// Who held the lock at the last skip: its callback slot + 1, or 0 when
    /// the holder was not a plugin's `image_lock`.
    pub skipped_holder: AtomicU64,
    /// Deadlines missed because a cycle (or the wake-up) took longer than the
    /// period; missed cycles are skipped, not run in a burst.
    pub overruns: AtomicU64,
    /// Worst wake-up lateness relative to the deadline, in ns.
    pub lateness_max_ns: AtomicU64,
    /// Most time spent in native plugins' cycle hooks (both phases) in one
    /// cycle, in ns. Part of the cycle time.
    pub hooks_max_ns: AtomicU64,
    hist: [AtomicU64; HIST_BUCKETS],
    /// The scan period; a PLC program loaded without `--scan-period` changes
    /// it to the GCD of its task intervals.
    period_ns: AtomicU64,
    /// Scan events that did not fit in the queue.
    events_dropped: AtomicU64,
}

impl ScanStats {
    fn new(period_ns: u64) -> ScanStats {
        ScanStats {
            cycles: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            skipped_holder: AtomicU64::new(0),
            overruns: AtomicU64::new(0),
            lateness_max_ns: AtomicU64::new(0),
            hooks_max_ns: AtomicU64::new(0),
            hist: [const { AtomicU64::new(0) }; HIST_BUCKETS],
            period_ns: AtomicU64::new(period_ns),
            events_dropped: AtomicU64::new(0),
        }
    }

    /// Events that did not fit in the queue.
    pub fn events_dropped(&self) -> u64 {
        self.events_dropped.load(Ordering::Relaxed)
    }

    /// The scan period in ns (`base_tick_ns`).
    pub fn period_ns(&self) -> u64 {
        self.period_ns.load(Ordering::Relaxed)
    }

    fn record_lateness(&self, ns: u64) {
        let b = if ns < FINE_NS * FINE_BUCKETS as u64 {
            (ns / FINE_NS) as usize
        } else if ns < COARSE_NS * (COARSE_BUCKETS as u64 + 1) {
            FINE_BUCKETS + (ns / COARSE_NS) as usize - 1
        } else {
            HIST_BUCKETS - 1
        };
        self.hist[b].fetch_add(1, Ordering::Relaxed);
        self.lateness_max_ns.fetch_max(ns, Ordering::Relaxed);
    }

    /// Upper bound (ns) of the lateness bucket holding quantile `q` (0..=1), or
    /// `None` before the first cycle. The overflow bucket reports the maximum.
    pub fn lateness_quantile_ns(&self, q: f64) -> Option<u64> {
        let counts: Vec<u64> = self
            .hist
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(if i < FINE_BUCKETS {
                    (i as u64 + 1) * FINE_NS
                } else if i < HIST_BUCKETS - 1 {
                    (i - FINE_BUCKETS + 2) as u64 * COARSE_NS
                } else {
                    self.lateness_max_ns.load(Ordering::Relaxed)
                });
            }
        }
        None
    }
}

/// The running scan thread.
pub struct ScanThread {
    stop: Arc<AtomicBool>,
    stats: Arc<ScanStats>,
    hooks: Arc<CycleHooks>,
    /// The supervisor's end of the scan thread's event queue.
    events: Consumer<'static, ScanEvent>,
    priority_error: Option<String>,
    handle: Option<JoinHandle<()>>,
    /// Set by the thread when its loop has ended.
    exited: Arc<AtomicBool>,
}

impl ScanThread {
    /// Starts the scan loop over `image` with `period`, calling the native
    /// plugins' hooks registered in `hooks` each cycle. Hooks are added and
    /// removed while the loop runs (see [`CycleHooks`]): the thread starts
    /// before any plugin's `init`, and a plugin's hooks run only between its
    /// `start_loop` and its `stop_loop`.
    /// `priority`: SCHED_FIFO priority for the thread, or `None` to keep
    /// normal scheduling. The result of asking for it is in
    /// [`ScanThread::priority_error`]; the loop runs either way.
    pub fn spawn(
        image: &'static Image,
        period: Duration,
        hooks: Arc<CycleHooks>,
        priority: Option<i32>,
    ) -> std::io::Result<ScanThread> {
        let stop = Arc::new(AtomicBool::new(false));
        let period_ns = u64::try_from(period.as_nanos()).unwrap_or(u64::MAX);
        let stats = Arc::new(ScanStats::new(period_ns));
        // 'static: the thread can outlive this handle (`stop` leaves a thread
        // stuck on the image lock behind). One small queue per scan thread.
        let queue: &'static mut Queue<ScanEvent, EVENT_QUEUE_LEN> =
            Box::leak(Box::new(Queue::new()));
        let (mut producer, events) = queue.split();
        let (tx, rx) = std::sync::mpsc::channel();
        let exited = Arc::new(AtomicBool::new(false));
        let handle = std::thread::Builder::new().name("plc-scan".into()).spawn({
            let stop = Arc::clone(&stop);
            let stats = Arc::clone(&stats);
            let hooks = Arc::clone(&hooks);
            let exited = Arc::clone(&exited);
            move || {
                let r = priority.map(crate::sys::set_current_thread_fifo);
                let _ = tx.send(r.and_then(Result::err).map(|e| e.to_string()));
                scan_loop(image, period_ns, &stop, &stats, &hooks, &mut producer);
                exited.store(true, Ordering::SeqCst);
            }
        })?;
        let priority_error = rx.recv().unwrap_or(None);
        Ok(ScanThread {
            stop,
            stats,
            hooks,
            events,
            priority_error,
            handle: Some(handle),
            exited,
        })
    }

    /// Why the requested real-time priority could not be set, if it could not.
    pub fn priority_error(&self) -> Option<&str> {
        self.priority_error.as_deref()
    }

    /// The next queued scan event.
    pub fn pop_event(&mut self) -> Option<ScanEvent> {
        self.events.dequeue()
    }

    /// Shared statistics.
    pub fn stats(&self) -> &Arc<ScanStats> {
        &self.stats
    }

    /// The native cycle hooks this thread calls.
    pub fn hooks(&self) -> &Arc<CycleHooks> {
        &self.hooks
    }

    /// Asks the loop to stop after its current cycle, without waiting; the
    /// flag from [`ScanThread::exited`] says when it has.
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Set once the loop has ended: for waits that serve the watchdog meanwhile.
    pub fn exited(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.exited)
    }

    /// Stops the loop after its current cycle and waits for it. A scan thread
    /// blocked on the image lock (a plugin holding it forever) is left behind
    /// after `budget`, and `false` is returned.
    pub fn stop(&mut self, budget: Duration) -> bool {
        self.stop.store(true, Ordering::SeqCst);
        let Some(h) = self.handle.take() else {
            return true;
        };
        let deadline = std::time::Instant::now() + budget;
        while !h.is_finished() {
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        h.join().is_ok()
    }
}

fn scan_loop(
    image: &'static Image,
    mut period_ns: u64,
    stop: &AtomicBool,
    stats: &ScanStats,
    hooks: &CycleHooks,
    events: &mut Producer<'_, ScanEvent>,
) {
    let mut journal = JournalCursor::default();
    let mut deadline = monotonic_ns() + period_ns;
    // Deadlines since start, missed ones included: a PLC program's tasks run
    // on multiples of it.
    let mut tick: u64 = 0;
    crate::alloc_probe::enter_steady_state();
    while !stop.load(Ordering::Relaxed) {
        sleep_until_ns(deadline);
        let woke = monotonic_ns();
        stats.record_lateness(woke.saturating_sub(deadline));

        // Native hooks run outside the image lock, as in OpenPLC: a plugin
        // takes image_lock itself around its image access (holding the lock
        // here would deadlock every plugin that does).
        let mut hooks_ns = hooks.run(Phase::CycleStart);
        // Wait for the lock at most half a period: a holder stalled (a plugin
        // thread waiting for the GIL, or stopped) costs journal passes that
        // are counted, never the loop, and the hooks and the program's due
        // tasks keep their times.
        let applied = image.lock_until(woke + period_ns / 2);
        if applied {
            image.apply_journal(&mut journal);
            // The PLC program's due tasks: inputs in, tasks, outputs out.
            hooks.program.run(image, tick, period_ns, true);
            image.unlock();
        } else {
            let holder = image.lock_hold().map_or(0, |(slot, _)| slot as u64 + 1);
            stats.skipped_holder.store(holder, Ordering::Relaxed);
            stats.skipped.fetch_add(1, Ordering::Relaxed);
            // Due tasks run on their last inputs; their outputs are copied
            // out by the next cycle that gets the lock.
            hooks.program.run(image, tick, period_ns, false);
        }
        hooks_ns += hooks.run(Phase::CycleEnd);
        stats.hooks_max_ns.fetch_max(hooks_ns, Ordering::Relaxed);

        let end = monotonic_ns();
        if applied {
            stats.cycles.fetch_add(1, Ordering::Relaxed);
        }

        // A program asked for another period: deadlines continue from here.
        if let Some(p) = crate::program::program_period_ns().filter(|&p| p != period_ns) {
            period_ns = p;
            stats.period_ns.store(p, Ordering::Relaxed);
        }
        tick += 1;
        deadline += period_ns;
        if end >= deadline && !applied {
            // A skipped cycle waited for the lock until its end: counted as
            // skipped (above), not again as an overrun.
            let missed = (end - deadline) / period_ns + 1;
            tick += missed;
            deadline += missed * period_ns;
        } else if end >= deadline {
            // Skip the deadlines already missed instead of running them back
            // to back; count them as overruns.
            let missed = (end - deadline) / period_ns + 1;
            stats.overruns.fetch_add(missed, Ordering::Relaxed);
            let event = ScanEvent {
                cycle: stats.cycles.load(Ordering::Relaxed),
                missed,
                late_ns: woke.saturating_sub(deadline - period_ns),
                took_ns: end - woke,
            };
            queue_event(events, &stats.events_dropped, event);
            tick += missed;
            deadline += missed * period_ns;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_queue_is_fifo_and_counts_drops() {
        let mut q: Queue<ScanEvent, EVENT_QUEUE_LEN> = Queue::new();
        let (mut tx, mut rx) = q.split();
        let dropped = AtomicU64::new(0);
        let e = |c| ScanEvent {
            cycle: c,
            missed: 1,
            late_ns: 2,
            took_ns: 3,
        };
        for c in 0..EVENT_CAPACITY as u64 + 5 {
            queue_event(&mut tx, &dropped, e(c));
        }
        assert_eq!(dropped.load(Ordering::Relaxed), 5);
        for c in 0..EVENT_CAPACITY as u64 {
            assert_eq!(rx.dequeue(), Some(e(c)));
        }
        assert_eq!(rx.dequeue(), None);
        queue_event(&mut tx, &dropped, e(99));
        assert_eq!(rx.dequeue(), Some(e(99)));
    }

    #[test]
    fn histogram_quantiles() {
        let s = ScanStats::new(1_000_000);
        assert_eq!(s.lateness_quantile_ns(0.5), None);
        for _ in 0..98 {
            s.record_lateness(15_000); // bucket 1: (10, 20] µs
        }
        s.record_lateness(2_500_000); // 2.5 ms
        s.record_lateness(500_000_000); // overflow
        assert_eq!(s.lateness_quantile_ns(0.5), Some(20_000));
        assert_eq!(s.lateness_quantile_ns(0.99), Some(3_000_000));
        assert_eq!(s.lateness_quantile_ns(1.0), Some(500_000_000));
    }
}
