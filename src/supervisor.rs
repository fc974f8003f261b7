//! The supervisor (main thread): parse → resolve → start Python → load and
//! start plugins → READY → run (signals, status, watchdog, reload) → ordered
//! stop.
//!
//! Every plugin lifecycle call runs on a thread of its own while the supervisor
//! waits with a time budget, so a plugin that hangs is reported by name and the
//! rest of start-up or shutdown goes on without it; meanwhile the supervisor
//! keeps handling signals and the watchdog.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::config::{self, PluginKind};
use crate::error::Error;
use crate::image::{self, Image};
use crate::native::{self, CycleHooks, NativeOutcome, NativePlugin};
use crate::python::{self, CallOutcome, Capsule, Interpreter, Module};
use crate::resolve::{self, Isolation, Plan, Plugin};
use crate::scan::{self, ScanThread};
use crate::signals::{Event, Signals};
use crate::systemd::{Notifier, Watchdog};
use crate::worker::{self, Worker};

/// Budget for importing a plugin and running its `init`: imports of large
/// libraries on a slow board take seconds; half a minute means it is stuck.
pub const INIT_BUDGET: Duration = Duration::from_secs(30);
/// Budget for `start_loop`, which should only start threads.
pub const START_BUDGET: Duration = Duration::from_secs(10);
/// Budget for `stop_loop` (joining the plugin's threads). Shutdown goes on
/// without a plugin that overruns it; the unit's TimeoutStopSec is longer.
pub const STOP_BUDGET: Duration = Duration::from_secs(5);
/// Budget for `cleanup`.
pub const CLEANUP_BUDGET: Duration = Duration::from_secs(5);
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

/// Settings of `run` and `check`.
#[derive(Debug, Clone)]
pub struct Options {
    /// The main plugins.conf (drop-ins are read besides it, see `dropins`).
    pub config: PathBuf,
    /// `--root DIR`: read the drop-in directories and the absolute paths in
    /// the files under DIR (a staged image); `None` = the real root.
    pub root: Option<PathBuf>,
    pub isolation: Isolation,
    pub scan_period: Duration,
    pub buffer_size: usize,
    pub python_home: Option<PathBuf>,
    /// SCHED_FIFO priority of the scan thread; `None` = normal scheduling.
    pub scan_priority: Option<i32>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            config: PathBuf::from(crate::dropins::DEFAULT_CONFIG),
            root: None,
            isolation: Isolation::Shared,
            scan_period: scan::DEFAULT_PERIOD,
            buffer_size: image::DEFAULT_BUFFER_SIZE,
            python_home: None,
            scan_priority: Some(scan::DEFAULT_PRIORITY),
        }
    }
}

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

/// Loads plugins.conf and its drop-ins and resolves them; any problem is a
/// configuration error.
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Failed,
    Initialized,
    Started,
}

/// A plugin at run time.
struct Slot {
    plugin: Plugin,
    /// Callback slot (0..MAX_PLUGINS): selects the log/stop callbacks that
    /// know this plugin's name.
    index: usize,
    /// A Python plugin: its module and capsule.
    module: Option<Arc<Module>>,
    capsule: Option<Arc<Capsule>>,
    /// A native plugin (type 1) once loaded; unloaded after its `cleanup`.
    native: Option<NativePlugin>,
    /// `--isolation process`: the worker process running this Python plugin.
    worker: Option<Arc<Worker>>,
    /// Consecutive worker restarts (reset after a healthy run).
    restarts: u32,
    /// When the next restart of a dead worker is due.
    restart_at: Option<Instant>,
    /// The worker died too often; the plugin stays failed.
    gave_up: bool,
    state: State,
    /// `init` was called (so `cleanup` is owed).
    init_ran: bool,
    /// A lifecycle call overran its budget and may still be running.
    stuck: bool,
}

impl Slot {
    fn name(&self) -> &str {
        self.plugin.name()
    }
}

/// The outcome of a budgeted call.
enum Budgeted<T> {
    Done(T),
    Overran,
    /// A second SIGTERM/SIGINT arrived while waiting: exit now.
    Abandon,
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
    /// Name of a plugin whose call is running past its budget (watchdog).
    stuck: Option<String>,
    /// Report counters already logged: journal overflows, rejects, lock
    /// recoveries, dropped scan events.
    reported: [u64; 4],
}

impl Supervisor {
    /// Watchdog and STATUS upkeep; called whenever the supervisor wakes.
    fn upkeep(&mut self) {
        self.collect_worker_exits();
        let cycles = self.scan.stats().cycles.load(Ordering::Relaxed);
        self.watchdog
            .tick(&self.notifier, cycles, self.stuck.as_deref());
    }

    /// Runs `f` on its own thread and waits at most `budget` for it, while
    /// still serving signals and the watchdog: a first SIGTERM/SIGINT is
    /// remembered (the current step finishes, then the runtime stops), a
    /// second one abandons.
    fn budgeted<T: Send + 'static>(
        &mut self,
        plugin: &str,
        what: &str,
        budget: Duration,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Budgeted<T> {
        let (tx, rx) = mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name(format!("{plugin}.{what}").chars().take(15).collect())
            .spawn(move || {
                let _ = tx.send(f());
                crate::signals::wake();
            });
        if let Err(e) = spawned {
            log::error!("[{plugin}] cannot start a thread for {what}(): {e}");
            return Budgeted::Overran;
        }
        let deadline = Instant::now() + budget;
        loop {
            match rx.try_recv() {
                Ok(v) => return Budgeted::Done(v),
                Err(mpsc::TryRecvError::Disconnected) => return Budgeted::Overran,
                Err(mpsc::TryRecvError::Empty) => {}
            }
            let now = Instant::now();
            if now >= deadline {
                self.stuck = Some(format!("[{plugin}] {what}()"));
                return Budgeted::Overran;
            }
            let slice = (deadline - now)
                .min(WAIT_SLICE)
                .min(self.watchdog.max_sleep());
            match self.signals.wait(slice) {
                Event::Terminate(_) => match self.first_stop_signal {
                    Some(t) if t.elapsed() >= DOUBLE_SIGNAL_GRACE => return Budgeted::Abandon,
                    Some(_) => log::debug!(
                        "stop signal repeated within {} ms: the same request",
                        DOUBLE_SIGNAL_GRACE.as_millis()
                    ),
                    None => {
                        log::info!("stop requested by signal; finishing [{plugin}] {what}() first");
                        self.first_stop_signal = Some(Instant::now());
                        self.stopping.get_or_insert_with(|| "signal".into());
                    }
                },
                Event::StopRequested => {
                    self.stopping
                        .get_or_insert_with(|| "request_plc_stop".into());
                }
                Event::Reload => self.reload_pending = true,
                Event::Tick => {}
            }
            self.upkeep();
        }
    }

    /// A lifecycle call with logging. Returns false on failure.
    fn lifecycle(&mut self, i: usize, func: &'static str, budget: Duration) -> bool {
        if self.slots[i].native.is_some() {
            return self.native_lifecycle(i, func, budget);
        }
        let slot = &self.slots[i];
        let name = slot.name().to_string();
        let worker = slot.worker.clone();
        let outcome = if let Some(w) = worker.clone() {
            self.budgeted(&name, func, budget, move || w.call(func))
        } else {
            let (Some(module), Some(interp)) = (slot.module.clone(), self.interp.clone()) else {
                return false;
            };
            let capsule = if func == "init" {
                slot.capsule.clone()
            } else {
                None
            };
            self.budgeted(&name, func, budget, move || {
                interp.call(&module, func, capsule.as_deref())
            })
        };
        let path = self.slots[i].plugin.entry.path.display().to_string();
        match outcome {
            Budgeted::Done(CallOutcome::Ok) => true,
            Budgeted::Done(CallOutcome::Missing) if func != "init" => true,
            Budgeted::Done(CallOutcome::Missing) => {
                log::error!(
                    "[{name}] has no init() function: {path} is not an OpenPLC plugin (init(args) is required); plugin disabled"
                );
                false
            }
            Budgeted::Done(CallOutcome::Raised(tb)) => {
                log::error!("[{name}] {func}() raised; the plugin is marked failed:\n{tb}");
                false
            }
            Budgeted::Overran if worker.is_some() => {
                log::error!(
                    "[{name}] {func}() did not return within {} s; its worker process is killed",
                    budget.as_secs()
                );
                self.retire_worker(i, true);
                false
            }
            Budgeted::Overran => {
                log::error!(
                    "[{name}] {func}() did not return within {} s; going on without it",
                    budget.as_secs()
                );
                self.slots[i].stuck = true;
                false
            }
            Budgeted::Abandon => abandon(&name, func),
        }
    }

    /// Stops tracking slot `i`'s worker: kills it when `kill`, else lets it
    /// exit (control socket closed), and reaps it. Its pid is no longer ours,
    /// so its exit is not taken for a crash. `cleanup` can no longer be owed.
    fn retire_worker(&mut self, i: usize, kill: bool) {
        if let Some(w) = self.slots[i].worker.take() {
            if kill {
                w.kill();
            }
            let status = w.finish();
            log::debug!(
                "[{}] worker process {} {}",
                self.slots[i].name(),
                w.pid,
                worker::describe_exit(status)
            );
        }
        self.slots[i].init_ran = false;
    }

    /// Handles worker processes that died: logs how, marks the plugin failed,
    /// and schedules a restart with exponential back-off (or gives up).
    fn collect_worker_exits(&mut self) {
        while let Ok(pid) = self.worker_exits.try_recv() {
            let Some(i) = self
                .slots
                .iter()
                .position(|s| s.worker.as_ref().is_some_and(|w| w.pid == pid))
            else {
                continue; // a worker we retired ourselves
            };
            if self.slots[i]
                .worker
                .as_ref()
                .is_some_and(|w| w.exit_expected())
            {
                continue; // cleanup answered; retire_worker reaps it
            }
            let Some(w) = self.slots[i].worker.take() else {
                continue;
            };
            let status = w.reap(worker::EXIT_BUDGET);
            let name = self.slots[i].name().to_string();
            log::error!(
                "[{name}] worker process {pid} died: {}; the scan loop and the other plugins go on",
                worker::describe_exit(status)
            );
            let slot = &mut self.slots[i];
            slot.state = State::Failed;
            slot.init_ran = false;
            if self.stopping.is_some() {
                continue;
            }
            if w.started.elapsed() >= worker::HEALTHY_RUN {
                slot.restarts = 0;
            }
            if slot.restarts < worker::MAX_RESTARTS {
                let delay = worker::backoff(slot.restarts);
                slot.restarts += 1;
                slot.restart_at = Some(Instant::now() + delay);
                log::warn!(
                    "[{name}] restarting its worker in {} ms (restart {} of {})",
                    delay.as_millis(),
                    slot.restarts,
                    worker::MAX_RESTARTS
                );
            } else {
                slot.gave_up = true;
                log::error!(
                    "[{name}] its worker died {} times in a row; giving up: the plugin stays failed until the service restarts",
                    worker::MAX_RESTARTS + 1
                );
            }
        }
    }

    /// Restarts the workers whose back-off has passed: `init`, then
    /// `start_loop`, as at start-up.
    fn restart_due_workers(&mut self) {
        let now = Instant::now();
        for i in 0..self.slots.len() {
            if self.stopping.is_some() {
                return;
            }
            if self.slots[i].restart_at.is_some_and(|t| t <= now) {
                self.slots[i].restart_at = None;
                log::info!("[{}] restarting its worker", self.slots[i].name());
                self.load(i);
                if self.slots[i].state == State::Initialized
                    && self.lifecycle(i, "start_loop", START_BUDGET)
                {
                    self.slots[i].state = State::Started;
                } else {
                    self.slots[i].state = State::Failed;
                }
            }
        }
    }

    /// The earliest pending worker restart.
    fn next_restart(&self) -> Option<Instant> {
        self.slots.iter().filter_map(|s| s.restart_at).min()
    }

    /// `load` for `--isolation process`: start the plugin's worker (which
    /// imports it in its own interpreter) and run `init` there.
    fn load_worker(&mut self, i: usize) {
        let plugin = self.slots[i].plugin.clone();
        let name = plugin.name().to_string();
        let spec = worker::Spec {
            plugin: name.clone(),
            slot: self.slots[i].index,
            path: plugin.entry.path.clone(),
            config_path: plugin.entry.config_path.clone(),
            site_dirs: plugin
                .venv
                .as_ref()
                .map(|v| v.site_dirs.clone())
                .unwrap_or_default(),
            system_site: plugin.venv.as_ref().is_none_or(|v| v.include_system_site),
            buffer_size: self.image.buffer_size(),
            period_ns: self.scan.stats().period_ns(),
            python_home: self.opts.python_home.clone(),
            state_dir: crate::plugin_state::prepare_logged(&name, self.opts.root.as_deref()),
        };
        let w = match Worker::spawn(&spec, self.image, self.worker_exits_tx.clone()) {
            Ok(w) => Arc::new(w),
            Err(e) => {
                log::error!("[{name}] cannot start its worker process: {e}");
                return;
            }
        };
        log::debug!("[{name}] worker process {} started", w.pid);
        self.slots[i].worker = Some(Arc::clone(&w));
        self.slots[i].init_ran = false;
        let path = plugin.entry.path.display().to_string();
        match self.budgeted(&name, "import", INIT_BUDGET, move || w.result("import")) {
            Budgeted::Done(CallOutcome::Ok) => {}
            Budgeted::Done(CallOutcome::Missing) => {
                log::error!(
                    "[{name}] has no init() function: {path} is not an OpenPLC plugin (init(args) is required); plugin disabled"
                );
                self.retire_worker(i, false);
                return;
            }
            Budgeted::Done(CallOutcome::Raised(tb)) => {
                log::error!("[{name}] importing {path} failed; the plugin is marked failed:\n{tb}");
                self.retire_worker(i, false);
                return;
            }
            Budgeted::Overran => {
                log::error!(
                    "[{name}] importing {path} did not finish within {} s; its worker process is killed",
                    INIT_BUDGET.as_secs()
                );
                self.retire_worker(i, true);
                return;
            }
            Budgeted::Abandon => abandon(&name, "import"),
        }
        self.slots[i].init_ran = true;
        if self.lifecycle(i, "init", INIT_BUDGET) {
            self.slots[i].state = State::Initialized;
        }
    }

    /// Imports a plugin and runs its `init`; the slot records the outcome.
    fn load(&mut self, i: usize) {
        let plugin = self.slots[i].plugin.clone();
        let name = plugin.name().to_string();
        self.notifier.extend_timeout(INIT_BUDGET + START_BUDGET);
        let index = self.slots[i].index;
        image::set_slot_name(index, &name);
        let period_ns = self.scan.stats().period_ns();
        let mut args =
            self.image
                .runtime_args(index, plugin.entry.config_path.as_deref(), period_ns);
        // A worker prepares its own (load_worker → Spec::state_dir).
        if plugin.entry.kind == PluginKind::Native || self.opts.isolation != Isolation::Process {
            let dir = crate::plugin_state::prepare_logged(&name, self.opts.root.as_deref());
            crate::plugin_state::fill(&mut args, dir.as_deref());
        }
        if plugin.entry.kind == PluginKind::Native {
            return self.load_native(i, args);
        }
        if self.opts.isolation == Isolation::Process {
            return self.load_worker(i);
        }
        match Capsule::new(args) {
            Ok(c) => self.slots[i].capsule = Some(Arc::new(c)),
            Err(e) => {
                log::error!("[{name}] cannot make its capsule: {e}");
                return;
            }
        }
        let Some(interp) = self.interp.clone() else {
            return;
        };
        let module_name = python::module_name(&name);
        let path = plugin.entry.path.clone();
        match self.budgeted(&name, "import", INIT_BUDGET, move || {
            interp.load_plugin(&module_name, &path)
        }) {
            Budgeted::Done(Ok(m)) => self.slots[i].module = Some(Arc::new(m)),
            Budgeted::Done(Err(tb)) => {
                log::error!(
                    "[{name}] importing {} failed; the plugin is marked failed:\n{tb}",
                    plugin.entry.path.display()
                );
                return;
            }
            Budgeted::Overran => {
                log::error!(
                    "[{name}] importing {} did not finish within {} s; going on without it",
                    plugin.entry.path.display(),
                    INIT_BUDGET.as_secs()
                );
                self.slots[i].stuck = true;
                return;
            }
            Budgeted::Abandon => abandon(&name, "import"),
        }
        self.slots[i].init_ran = true;
        if self.lifecycle(i, "init", INIT_BUDGET) {
            self.slots[i].state = State::Initialized;
        }
    }

    /// `load` for a native plugin: `dlopen` and its symbols (budgeted: the
    /// library's constructors run), then `init` with `args`, which the plugin
    /// keeps until its `cleanup` returned.
    fn load_native(&mut self, i: usize, args: Box<image::RuntimeArgs>) {
        let (name, index) = (self.slots[i].name().to_string(), self.slots[i].index);
        let path = self.slots[i].plugin.entry.path.clone();
        let load = native::loader(index, path.clone(), args);
        match self.budgeted(&name, "dlopen", INIT_BUDGET, load) {
            Budgeted::Done(Ok(p)) => self.slots[i].native = Some(p),
            Budgeted::Done(Err(e)) => {
                log::error!("[{name}] {e}; the plugin is marked failed");
                return;
            }
            Budgeted::Overran => {
                log::error!(
                    "[{name}] loading {} did not finish within {} s; going on without it",
                    path.display(),
                    INIT_BUDGET.as_secs()
                );
                self.slots[i].stuck = true;
                return;
            }
            Budgeted::Abandon => abandon(&name, "dlopen"),
        }
        self.slots[i].init_ran = true;
        if self.lifecycle(i, "init", INIT_BUDGET) {
            self.slots[i].state = State::Initialized;
        }
    }

    /// `lifecycle` for a native plugin, with the same budgets and reports. Its
    /// cycle hooks run while it is started: added after `start_loop`, removed
    /// before `stop_loop` (waiting for the scan thread to leave them); the
    /// library is closed after `cleanup` returned, never while a call is stuck.
    fn native_lifecycle(&mut self, i: usize, func: &'static str, budget: Duration) -> bool {
        let name = self.slots[i].name().to_string();
        let Some(plugin) = &self.slots[i].native else {
            return false;
        };
        if func == "stop_loop" && !self.scan.hooks().remove(plugin.slot(), SCAN_STOP_BUDGET) {
            log::error!(
                "[{name}] the scan thread is stuck in a native cycle hook; stop_loop() and cleanup() are skipped"
            );
            self.slots[i].stuck = true;
            return false;
        }
        let call = plugin.call(func);
        match self.budgeted(&name, func, budget, move || call.run()) {
            Budgeted::Done(NativeOutcome::Ok | NativeOutcome::Missing) => {}
            Budgeted::Done(NativeOutcome::Failed(rc)) => {
                log::error!(
                    "[{name}] {func}() returned {rc} (0 = success); the plugin is marked failed"
                );
                return false;
            }
            Budgeted::Overran => {
                log::error!(
                    "[{name}] {func}() did not return within {} s; going on without it",
                    budget.as_secs()
                );
                self.slots[i].stuck = true;
                return false;
            }
            Budgeted::Abandon => abandon(&name, func),
        }
        if func == "start_loop"
            && let Some(p) = &self.slots[i].native
        {
            self.scan.hooks().add(p);
        }
        if func == "cleanup"
            && let Some(p) = self.slots[i].native.take()
        {
            p.unload();
        }
        true
    }

    /// Loads and starts the slots in `range` (new slots at the end of `slots`):
    /// every `init` first, in order, then `start_loop` for those whose init
    /// succeeded.
    fn start_slots(&mut self, range: std::ops::Range<usize>) {
        for i in range.clone() {
            if self.stopping.is_some() {
                break;
            }
            self.load(i);
        }
        for i in range {
            if self.stopping.is_some() {
                break;
            }
            if self.slots[i].state == State::Initialized
                && self.lifecycle(i, "start_loop", START_BUDGET)
            {
                self.slots[i].state = State::Started;
            } else {
                self.slots[i].state = State::Failed;
            }
        }
    }

    /// Stops the given slots (indices into `slots`, stopped in the order
    /// given): `stop_loop` for the started ones, then `cleanup` for those whose
    /// init ran. With `scan` set, the scan thread is stopped in between.
    fn stop_slots(&mut self, order: &[usize], scan: bool) {
        for &i in order {
            if self.slots[i].state == State::Started && !self.lifecycle(i, "stop_loop", STOP_BUDGET)
            {
                log::warn!("[{}] did not stop cleanly", self.slots[i].name());
            }
            self.slots[i].state = State::Failed;
        }
        if scan && !self.scan.stop(SCAN_STOP_BUDGET) {
            log::error!(
                "the scan thread did not finish within {} s: a plugin is holding the image lock",
                SCAN_STOP_BUDGET.as_secs()
            );
        }
        for &i in order {
            if self.slots[i].stuck {
                log::warn!(
                    "[{}] skipping cleanup(): an earlier call of this plugin is still running",
                    self.slots[i].name()
                );
            } else if self.slots[i].init_ran {
                self.slots[i].init_ran = false;
                self.lifecycle(i, "cleanup", CLEANUP_BUDGET);
            }
            // A worker exits once cleanup answered (or is killed if it does
            // not): nothing of a stopped plugin is left running.
            self.slots[i].restart_at = None;
            self.retire_worker(i, false);
        }
    }

    /// One human line for STATUS=.
    fn status_line(&self) -> String {
        let running = self
            .slots
            .iter()
            .filter(|s| s.state == State::Started)
            .count();
        let failed: Vec<String> = self
            .slots
            .iter()
            .filter(|s| s.state == State::Failed)
            .map(|s| {
                if s.gave_up {
                    format!(
                        "{}: gave up after {} restarts",
                        s.name(),
                        worker::MAX_RESTARTS
                    )
                } else if s.restart_at.is_some() {
                    format!("{}: restarting", s.name())
                } else {
                    s.name().to_string()
                }
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
        if let Some(p) = &self.stuck {
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
    fn report(&mut self) {
        let stats = Arc::clone(self.scan.stats());
        let mut missed = false;
        while let Some(e) = stats.pop_event() {
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

    /// SIGHUP: re-read plugins.conf; apply the difference, or keep everything
    /// running as it is when the new file is invalid.
    fn reload(&mut self) {
        self.reload_pending = false;
        self.notifier.reloading();
        log::info!(
            "SIGHUP: reloading {} and its drop-ins",
            self.opts.config.display()
        );
        let new_plan = match plan(&self.opts) {
            Ok(p) => p,
            Err(e) => {
                let list = match e {
                    Error::Config(l) => l,
                    other => vec![other.to_string()],
                };
                for m in &list {
                    log::error!("reload: {m}");
                }
                log::error!(
                    "reload failed: {} problem(s) in {} or its drop-ins; the running plugins are unchanged",
                    list.len(),
                    self.opts.config.display()
                );
                // STATUS= carries the first problem, so `systemctl status`
                // says which file and line without a look at the journal.
                let first = list.first().map(|m| first_line(m)).unwrap_or_default();
                self.last_reload = Some(format!(
                    "reload failed ({} problem(s) in plugins.conf), running set unchanged: {first}",
                    list.len()
                ));
                let status = self.status_line();
                self.notifier.ready(&status);
                return;
            }
        };

        // Decide per running plugin: keep, restart, remove; and what is new.
        let mut remove: Vec<usize> = Vec::new();
        let mut keep_old: Vec<Plugin> = Vec::new();
        let mut restart_needed = Vec::new();
        for (i, s) in self.slots.iter().enumerate() {
            match new_plan.plugins.iter().find(|p| p.name() == s.name()) {
                None => remove.push(i),
                Some(p) if same_plugin(&s.plugin, p) && s.state != State::Failed => {}
                Some(p)
                    if self.opts.isolation == Isolation::Shared
                        && s.plugin.entry.venv_path != p.entry.venv_path
                        && !s.stuck =>
                {
                    // One interpreter cannot drop the packages it imported
                    // from the old venv: saying "reloaded" would be a lie.
                    restart_needed.push(format!("{} (venv changed)", p.name()));
                    keep_old.push(s.plugin.clone());
                }
                Some(_) => remove.push(i),
            }
        }
        let stuck_slots: Vec<usize> = remove
            .iter()
            .copied()
            .filter(|&i| self.slots[i].stuck)
            .collect();
        if !stuck_slots.is_empty() {
            for &i in &stuck_slots {
                restart_needed.push(format!(
                    "{} (a call is still running)",
                    self.slots[i].name()
                ));
            }
            remove.retain(|i| !stuck_slots.contains(i));
        }
        let mut order = remove.clone();
        order.reverse();
        self.stop_slots(&order, false);
        for &i in &order {
            if let Some(m) = self.slots[i].module.take()
                && let Ok(m) = Arc::try_unwrap(m)
                && let Some(interp) = &self.interp
            {
                interp.unload_plugin(m);
            }
            self.retire_worker(i, false);
        }
        let mut kept: Vec<Slot> = Vec::new();
        for (i, s) in std::mem::take(&mut self.slots).into_iter().enumerate() {
            if !remove.contains(&i) {
                kept.push(s);
            }
        }

        // The new set in file order: kept slots stay, new ones get free
        // callback indices.
        let mut next: Vec<Slot> = Vec::new();
        let mut fresh: Vec<usize> = Vec::new();
        for p in &new_plan.plugins {
            if let Some(pos) = kept.iter().position(|s| s.name() == p.name()) {
                next.push(kept.remove(pos));
            } else {
                let used: Vec<usize> = next.iter().chain(kept.iter()).map(|s| s.index).collect();
                let Some(index) = (0..config::MAX_PLUGINS).find(|i| !used.contains(i)) else {
                    log::error!("[{}] no free plugin slot; restart the service", p.name());
                    continue;
                };
                fresh.push(next.len());
                next.push(new_slot(p.clone(), index));
            }
        }
        // Stuck plugins that were removed from the file stay tracked.
        next.extend(kept);
        let added = fresh.len();
        let removed = order.len();
        // New plugins start after the kept ones, each init before any start.
        let (new_slots, mut others): (Vec<_>, Vec<_>) = next
            .into_iter()
            .enumerate()
            .partition(|(k, _)| fresh.contains(k));
        let first_new = others.len();
        others.extend(new_slots);
        self.slots = others.into_iter().map(|(_, s)| s).collect();

        let active: Vec<Plugin> = self
            .slots
            .iter()
            .map(|s| {
                keep_old
                    .iter()
                    .find(|o| o.name() == s.name())
                    .cloned()
                    .unwrap_or_else(|| s.plugin.clone())
            })
            .collect();
        let active_plan = Plan {
            conf: new_plan.conf.clone(),
            plugins: active,
        };
        if let Some(interp) = &self.interp {
            match interp.set_paths(
                &active_plan.plugin_dirs(),
                &active_plan.site_dirs(),
                active_plan.system_site(),
            ) {
                Ok(p) => log::debug!("sys.path: {p:?}"),
                Err(e) => log::error!("reload: {e}"),
            }
        }
        self.start_slots(first_new..self.slots.len());
        // File order again, for the stop order.
        let order_of = |n: &str| {
            new_plan
                .plugins
                .iter()
                .position(|p| p.name() == n)
                .unwrap_or(usize::MAX)
        };
        self.slots.sort_by_key(|s| order_of(s.name()));

        for r in &restart_needed {
            log::warn!("reload: {r}: this change takes effect only when the service restarts");
        }
        self.restart_needed = restart_needed;
        let summary = format!("reload ok: {added} started, {removed} stopped");
        log::info!("{summary}");
        self.last_reload = Some(summary);
        let status = self.status_line();
        self.notifier.ready(&status);
    }
}

/// The first line of a message (STATUS= is one line).
fn first_line(m: &str) -> &str {
    m.lines().next().unwrap_or("")
}

/// Same plugins.conf entry, apart from where it is written.
fn same_plugin(a: &Plugin, b: &Plugin) -> bool {
    let (a, b) = (&a.entry, &b.entry);
    a.path == b.path
        && a.kind == b.kind
        && a.config_path == b.config_path
        && a.venv_path == b.venv_path
}

fn new_slot(plugin: Plugin, index: usize) -> Slot {
    Slot {
        plugin,
        index,
        module: None,
        capsule: None,
        native: None,
        worker: None,
        restarts: 0,
        restart_at: None,
        gave_up: false,
        state: State::Failed,
        init_ran: false,
        stuck: false,
    }
}

/// A second SIGTERM/SIGINT while a plugin call hangs: leave now, non-zero.
fn abandon(plugin: &str, func: &str) -> ! {
    log::error!(
        "second stop signal while [{plugin}] {func}() is still running; exiting immediately without finishing shutdown"
    );
    std::process::exit(i32::from(crate::error::EXIT_SOFTWARE));
}

/// Runs the daemon until SIGTERM/SIGINT or a plugin's `request_plc_stop`.
pub fn run(opts: &Options) -> Result<Report, Error> {
    let plan = plan(opts)?;
    // Before any thread exists, so a signal never kills us half-started.
    let signals = Signals::install()
        .map_err(|e| Error::Os(format!("cannot install signal handlers: {e}")))?;
    let image = image::install(opts.buffer_size).map_err(Error::Os)?;
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
            .map(|(i, p)| new_slot(p.clone(), i))
            .collect(),
        stopping: None,
        first_stop_signal: None,
        reload_pending: false,
        last_reload: None,
        restart_needed: Vec::new(),
        stuck: None,
        reported: [0; 4],
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

    let mut next_report = Instant::now() + REPORT_INTERVAL;
    while sup.stopping.is_none() {
        if sup.reload_pending {
            sup.reload();
            continue;
        }
        sup.restart_due_workers();
        let mut wait = next_report
            .saturating_duration_since(Instant::now())
            .min(sup.watchdog.max_sleep());
        if let Some(t) = sup.next_restart() {
            wait = wait.min(t.saturating_duration_since(Instant::now()));
        }
        match sup.signals.wait(wait) {
            Event::Terminate(_) => {
                sup.first_stop_signal = Some(Instant::now());
                sup.stopping = Some("signal".into());
            }
            Event::StopRequested => sup.stopping = Some("request_plc_stop".into()),
            Event::Reload => sup.reload_pending = true,
            Event::Tick => {}
        }
        sup.upkeep();
        if Instant::now() >= next_report {
            sup.report();
            next_report = Instant::now() + REPORT_INTERVAL;
        }
    }
    let stopped_by = sup.stopping.clone().unwrap_or_default();
    log::info!("stopping ({stopped_by}): stop_loop, then cleanup, in reverse order");
    sup.notifier.stopping(&format!("stopping ({stopped_by})"));
    let started = sup
        .slots
        .iter()
        .filter(|s| s.state == State::Started)
        .count();
    let failed = sup.slots.len() - started;
    let order: Vec<usize> = (0..sup.slots.len()).rev().collect();
    sup.stop_slots(&order, true);
    sup.report();
    if sup.slots.iter().all(|s| !s.stuck)
        && let Some(interp) = &sup.interp
    {
        interp.flush_stdio();
    }
    let stats = Arc::clone(sup.scan.stats());
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
    log::info!(
        "stopped: {} scan cycles, {} overrun(s), lateness p50 <= {} us, p99 <= {} us, max {} us; {} journal write(s) applied, {} dropped",
        report.cycles,
        report.overruns,
        q(0.5),
        q(0.99),
        stats.lateness_max_ns.load(Ordering::Relaxed) / 1000,
        report.journal_applied,
        report.journal_overflows
    );
    // The interpreter is not finalised: plugin threads that were not joined
    // would block Py_FinalizeEx; the process exits with them.
    std::mem::forget(sup);
    Ok(report)
}
