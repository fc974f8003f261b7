//! The supervisor (main thread): parse → resolve → start Python → load and
//! start plugins → READY → run (signals, status, watchdog, reload) → ordered
//! stop.
//!
//! Every plugin lifecycle call runs on a thread of its own while the supervisor
//! waits with a time budget, so a plugin that hangs is reported by name and the
//! rest of start-up or shutdown goes on without it; meanwhile the supervisor
//! keeps handling signals and the watchdog.
//!
//! This module owns the run itself: start-up, the main loop, shutdown and the
//! final report. Its parts:
//! - `slot`: a plugin at run time, one typed state at a time;
//! - `steps`: the one budgeted path of every plugin step, and their order;
//! - `restart`: worker processes that die, and their restarts;
//! - `reload`: SIGHUP, the reload decision and how it is applied;
//! - `status`: STATUS= and the periodic report.

mod order;
mod reload;
mod restart;
mod slot;
mod status;
mod steps;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::image::{self, Image};
use crate::isolation::{Zygote, preload};
use crate::native::CycleHooks;
use crate::python::{self, Interpreter};
use crate::resolve::{self, Isolation, Plan};
use crate::scan::ScanThread;
use crate::signals::{Event, Signals};
use crate::systemd::{Notifier, Watchdog};
use slot::Slot;

/// The settings `run` takes (re-exported: they are part of its signature).
pub use crate::options::Options;

/// How long to wait for the scan thread to finish its last cycle; it can only
/// overrun this when a plugin holds the image lock forever.
pub const SCAN_STOP_BUDGET: Duration = Duration::from_secs(2);
/// How often the supervisor reports scan events and refreshes STATUS.
pub const REPORT_INTERVAL: Duration = Duration::from_secs(1);
/// A second SIGTERM/SIGINT within this time of the first is the same request
/// delivered twice (to the process and to its process group, as `timeout` and
/// shells do), not "give up on the stuck stop".
pub const DOUBLE_SIGNAL_GRACE: Duration = Duration::from_secs(1);
/// Longest single sleep while waiting for a lifecycle call, so signals and the
/// watchdog are served promptly.
const WAIT_SLICE: Duration = Duration::from_millis(200);
/// The stdlib modules workers report are saved for the next zygote once no
/// new one came for this long.
const LEARN_SETTLE: Duration = Duration::from_millis(500);

/// What a finished run did (logged at exit; read by tests and benchmarks).
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub plugins_started: usize,
    pub plugins_failed: usize,
    pub cycles: u64,
    pub overruns: u64,
    pub journal_applied: u64,
    pub journal_overflows: u64,
    /// Why the run ended.
    pub stopped_by: String,
}

/// Loads plugins.conf and resolves it; any problem is a configuration error.
pub fn plan(opts: &Options) -> Result<Plan, Error> {
    let conf = crate::dropins::load(&opts.config, opts.root.as_deref())
        .map_err(|errs| Error::Config(errs.iter().map(ToString::to_string).collect()))?;
    if conf.has_dropins() {
        for s in &conf.sources {
            log::info!("plugins.conf: {s}");
        }
    }
    let (plan, errors) = resolve::resolve(
        &conf,
        python::embedded_version(),
        opts.isolation,
        crate::sys::effective_uid(),
    );
    if errors.is_empty() {
        Ok(plan)
    } else {
        Err(Error::Config(errors))
    }
}

struct Supervisor {
    opts: Options,
    /// The shared interpreter (`--isolation shared`); process mode has none in
    /// the supervisor.
    interp: Option<Arc<Interpreter>>,
    /// Pids of worker processes whose control socket closed.
    worker_exits: mpsc::Receiver<u32>,
    worker_exits_tx: mpsc::Sender<u32>,
    signals: Signals,
    image: &'static Image,
    scan: ScanThread,
    notifier: Notifier,
    watchdog: Watchdog,
    slots: Vec<Slot>,
    /// Set once SIGTERM/SIGINT or a stop request was seen.
    stopping: Option<String>,
    /// When the first SIGTERM/SIGINT arrived (a later one may abandon).
    first_stop_signal: Option<Instant>,
    /// A SIGHUP seen while busy, served when idle again.
    reload_pending: bool,
    /// The last reload's outcome, for STATUS.
    last_reload: Option<String>,
    /// Plugin changes that need a restart of the service to take effect.
    restart_needed: Vec<String>,
    /// The plugin call running past its budget, if any (for the watchdog).
    stuck_call: Option<String>,
    /// Report counters already logged: journal overflows, rejects, lock
    /// recoveries, dropped scan events.
    reported: [u64; 6],
    /// Process isolation: the process workers are forked from (started with
    /// the first Python plugin, restarted when it died).
    zygote: Option<Arc<Zygote>>,
    /// Zygotes that stopped answering, kept while workers they forked live
    /// (ending one would end them).
    old_zygotes: Vec<Arc<Zygote>>,
}

/// Runs the daemon until SIGTERM/SIGINT or a plugin's `request_plc_stop`.
pub fn run(opts: &Options) -> Result<Report, Error> {
    let mut sup = Supervisor::start(opts)?;
    sup.serve();
    Ok(sup.shut_down())
}

impl Supervisor {
    /// Start-up: everything a run needs, then every plugin loaded and started,
    /// then READY.
    fn start(opts: &Options) -> Result<Supervisor, Error> {
        // Before any thread exists, so a signal never kills us half-started.
        let signals = Signals::install()
            .map_err(|e| Error::Os(format!("cannot install signal handlers: {e}")))?;
        let image = image::install(opts.buffer_size).map_err(Error::Os)?;
        // Process isolation: the zygote starts its interpreter while
        // plugins.conf and the venvs are read (it is let go again when there
        // is no Python plugin to fork for); the first fork waits for it.
        let mut zygote = if opts.isolation == Isolation::Process && opts.zygote {
            start_zygote(image, opts)
        } else {
            None
        };
        let plan = plan(opts)?;
        if !plan
            .plugins
            .iter()
            .any(|p| p.entry.kind == crate::config::PluginKind::Python)
            && let Some(z) = zygote.take()
        {
            log::debug!("no Python plugin: zygote (pid {}) {}", z.pid, z.finish());
        }
        if !image.lock_inherits_priority() {
            log::warn!(
                "image lock: this system has no priority-inheriting futexes (qemu-user, some kernels); a plugin holding the lock is not boosted to the scan thread's priority"
            );
        }
        // A plugin's request_plc_stop wakes this loop for an ordered stop.
        image::on_stop_request(Box::new(crate::signals::request_stop));
        // Shared mode: one interpreter here for every Python plugin. Process mode:
        // each worker starts its own; the supervisor embeds none (less memory).
        let interp = match opts.isolation {
            Isolation::Shared => {
                let interp = Arc::new(python::start(opts.python_home.as_deref())?);
                let sys_path = interp
                    .set_paths(&plan.plugin_dirs(), &plan.site_dirs(), plan.system_site())
                    .map_err(Error::Python)?;
                log::debug!("sys.path: {sys_path:?}");
                Some(interp)
            }
            Isolation::Process => None,
        };
        let (worker_exits_tx, worker_exits) = mpsc::channel();

        // What a PLC program's loading checks its tasks against and how often
        // it saves its RETAIN variables.
        crate::program::set_scan_period(opts.scan_period, opts.scan_period_given);
        crate::program::set_save_period(opts.retain_period);

        // The scan thread starts before any plugin's init (journal writes made in
        // init or start_loop are applied at once, and the watchdog sees progress
        // during a long start-up). Native cycle hooks are therefore not a list fixed
        // at spawn time but a fixed table of atomics the thread reads every cycle
        // (native::CycleHooks): a plugin's hooks are added once its start_loop
        // returned and removed before its stop_loop (and before a SIGHUP reload
        // drops it), so a plugin whose init failed never has a hook called.
        let scan = ScanThread::spawn(
            image,
            opts.scan_period,
            Arc::new(CycleHooks::default()),
            opts.scan_priority,
        )
        .map_err(|e| Error::Os(format!("cannot start the scan thread: {e}")))?;
        match (opts.scan_priority, scan.priority_error()) {
            (Some(p), Some(e)) => log::warn!(
                "scan thread: cannot get real-time priority SCHED_FIFO {p} ({e}); it runs with normal scheduling and will wake late under load; run as root or give the service CAP_SYS_NICE (or LimitRTPRIO={p}), or pass --scan-priority 0 to silence this"
            ),
            (Some(p), None) => log::debug!("scan thread: SCHED_FIFO priority {p}"),
            (None, _) => log::debug!("scan thread: normal scheduling (--scan-priority 0)"),
        }
        let watchdog = Watchdog::from_env();
        if let Some(w) = watchdog.interval()
            && opts.scan_period * 2 >= w
        {
            log::warn!(
                "WatchdogSec ({} ms) is less than two scan periods ({} ms): the watchdog may fire while the scan loop is healthy",
                w.as_millis(),
                opts.scan_period.as_millis()
            );
        }
        let mut sup = Supervisor {
            opts: opts.clone(),
            interp,
            worker_exits,
            worker_exits_tx,
            signals,
            image,
            scan,
            notifier: Notifier::from_env(),
            watchdog,
            slots: plan
                .plugins
                .iter()
                .enumerate()
                .map(|(i, p)| Slot::new(p.clone(), i))
                .collect(),
            stopping: None,
            first_stop_signal: None,
            reload_pending: false,
            last_reload: None,
            restart_needed: Vec::new(),
            stuck_call: None,
            reported: [0; 6],
            zygote,
            old_zygotes: Vec::new(),
        };
        let n = sup.slots.len();
        sup.start_slots(0..n);

        let status = sup.status_line();
        log::info!(
            "running: {status}; {} slots per table, isolation {}",
            image.buffer_size(),
            opts.isolation
        );
        // READY only after every enabled plugin's init and start_loop ran
        // (failed ones included, and reported in STATUS).
        sup.notifier.ready(&status);
        Ok(sup)
    }

    /// The main loop, until a stop is requested: reloads, worker restarts,
    /// signals, the watchdog and the periodic report.
    fn serve(&mut self) {
        let mut next_report = Instant::now() + REPORT_INTERVAL;
        while self.stopping.is_none() {
            if self.reload_pending {
                self.reload();
                continue;
            }
            self.restart_due_workers();
            let mut wait = next_report
                .saturating_duration_since(Instant::now())
                .min(self.watchdog.max_sleep());
            if let Some(t) = self.next_restart() {
                wait = wait.min(t.saturating_duration_since(Instant::now()));
            }
            match self.signals.wait(wait) {
                Event::Terminate(_) => {
                    self.first_stop_signal = Some(Instant::now());
                    self.stopping = Some("signal".into());
                }
                Event::StopRequested => self.stopping = Some("request_plc_stop".into()),
                Event::Reload => self.reload_pending = true,
                Event::Tick => {}
            }
            self.upkeep();
            if Instant::now() >= next_report {
                self.report();
                next_report = Instant::now() + REPORT_INTERVAL;
            }
        }
    }

    /// Watchdog and STATUS upkeep; called whenever the supervisor wakes.
    fn upkeep(&mut self) {
        self.collect_worker_exits();
        // An old zygote is ended once no worker it forked is left (the
        // handles are its workers', its reader thread's while it runs, ours).
        self.old_zygotes.retain(|z| {
            let workers = Arc::strong_count(z).saturating_sub(1 + usize::from(z.alive()));
            if workers > 0 {
                return true;
            }
            log::info!(
                "old zygote (pid {}) has no workers left: {}",
                z.pid,
                z.finish()
            );
            false
        });
        if let Some(z) = &self.zygote {
            // What workers reported: the running zygote imports it for the next
            // forks, and the next run's zygote preloads it.
            let more = preload::take_pending();
            if !more.is_empty() && z.alive() {
                z.preload_more(&more);
            }
            if let Some(state) = crate::plugin_state::state_directory(self.opts.root.as_deref()) {
                preload::save_learned(&state, LEARN_SETTLE);
            }
        }
        let cycles = self.scan.stats().cycles.load(Ordering::Relaxed);
        let sick = self.sickness();
        self.watchdog.tick(
            &self.notifier,
            cycles,
            self.stuck_call.as_deref(),
            sick.as_deref(),
        );
    }

    /// The ordered stop (plugins in reverse order: every stop_loop, the scan
    /// thread, every cleanup) and the run's report.
    fn shut_down(mut self) -> Report {
        let image = self.image;
        let stopped_by = self.stopping.clone().unwrap_or_default();
        log::info!("stopping ({stopped_by}): stop_loop, then cleanup, in reverse order");
        self.notifier.stopping(&format!("stopping ({stopped_by})"));
        let started = self.slots.iter().filter(|s| s.is_started()).count();
        let failed = self.slots.len() - started;
        let order: Vec<usize> = (0..self.slots.len()).rev().collect();
        self.stop_slots(&order, true);
        for z in std::mem::take(&mut self.old_zygotes) {
            log::debug!("old zygote (pid {}) {}", z.pid, z.finish());
        }
        if let Some(z) = self.zygote.take() {
            log::debug!("zygote (pid {}) {}", z.pid, z.finish());
            // What the workers reported and upkeep did not save yet.
            if let Some(state) = crate::plugin_state::state_directory(self.opts.root.as_deref()) {
                preload::save_learned(&state, Duration::ZERO);
            }
        }
        self.report();
        if self.slots.iter().all(|s| !s.is_stuck())
            && let Some(interp) = &self.interp
        {
            interp.flush_stdio();
        }
        let stats = Arc::clone(self.scan.stats());
        let report = Report {
            plugins_started: started,
            plugins_failed: failed,
            cycles: stats.cycles.load(Ordering::Relaxed),
            overruns: stats.overruns.load(Ordering::Relaxed),
            journal_applied: image.journal_applied(),
            journal_overflows: image.journal_overflows(),
            stopped_by,
        };
        let q = |x: f64| stats.lateness_quantile_ns(x).unwrap_or(0) / 1000;
        if let Some(p) = self.scan.hooks().program.status() {
            log::info!("{p}");
        }
        log::info!(
            "stopped: {} scan cycles, {} overrun(s), lateness p50 <= {} us, p99 <= {} us, max {} us; {} journal write(s) applied, {} dropped, {} lost; {} cycle(s) skipped on a held image lock",
            report.cycles,
            report.overruns,
            q(0.5),
            q(0.99),
            stats.lateness_max_ns.load(Ordering::Relaxed) / 1000,
            report.journal_applied,
            report.journal_overflows,
            image.journal_lost(),
            stats.skipped.load(Ordering::Relaxed)
        );
        self.log_ring_totals();
        // The interpreter is not finalised: plugin threads that were not joined
        // would block Py_FinalizeEx; the process exits with them.
        std::mem::forget(self);
        report
    }
}

/// Starts the zygote with what it should preload; `None` (logged) when it
/// cannot start: workers are then started by re-executing the binary.
fn start_zygote(image: &Image, opts: &Options) -> Option<Arc<Zygote>> {
    let state = crate::plugin_state::state_directory(opts.root.as_deref());
    // The file's names, and what this run learned (a replacement zygote).
    preload::preload_list(state.as_deref());
    let preload = preload::learned_names();
    match Zygote::start(image, opts.python_home.as_deref(), &preload) {
        Ok(z) => {
            log::debug!(
                "zygote process {} started ({} module names to preload)",
                z.pid,
                preload.len()
            );
            Some(z)
        }
        Err(e) => {
            log::warn!(
                "cannot start the zygote process ({e}); workers start as new processes (--worker-start exec)"
            );
            None
        }
    }
}
