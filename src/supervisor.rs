//! The supervisor (main thread): parse → resolve → start Python → load and
//! start plugins → run → ordered stop.
//!
//! Every plugin lifecycle call runs on a thread of its own while the supervisor
//! waits with a time budget, so a plugin that hangs is reported by name and the
//! rest of start-up or shutdown goes on without it.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::config::{self, PluginKind};
use crate::error::Error;
use crate::image::{self, Image};
use crate::python::{self, CallOutcome, Capsule, Interpreter, Module};
use crate::resolve::{self, Isolation, Plan, Plugin};
use crate::scan::{self, ScanThread};
use crate::signals::{Event, Signals};

/// Budget for importing a plugin and running its `init`: imports of large
/// libraries on a slow board take seconds; a minute means it is stuck.
pub const INIT_BUDGET: Duration = Duration::from_secs(30);
/// Budget for `start_loop`, which should only start threads.
pub const START_BUDGET: Duration = Duration::from_secs(10);
/// Budget for `stop_loop` (joining the plugin's threads). Shutdown goes on
/// without a plugin that overruns it; systemd's stop timeout is longer.
pub const STOP_BUDGET: Duration = Duration::from_secs(5);
/// Budget for `cleanup`.
pub const CLEANUP_BUDGET: Duration = Duration::from_secs(5);
/// How long to wait for the scan thread to finish its last cycle; it can only
/// overrun this when a plugin holds the image lock forever.
pub const SCAN_STOP_BUDGET: Duration = Duration::from_secs(2);
/// How often the supervisor looks at the scan statistics and reports changes.
pub const REPORT_INTERVAL: Duration = Duration::from_secs(1);

/// Settings of `run` and `check`.
#[derive(Debug, Clone)]
pub struct Options {
    pub config: PathBuf,
    pub isolation: Isolation,
    pub scan_period: Duration,
    pub buffer_size: usize,
    pub python_home: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            config: PathBuf::from("/etc/openplc/plugins.conf"),
            isolation: Isolation::Shared,
            scan_period: scan::DEFAULT_PERIOD,
            buffer_size: image::DEFAULT_BUFFER_SIZE,
            python_home: None,
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

/// Loads plugins.conf and resolves it; any problem is a configuration error.
pub fn plan(opts: &Options) -> Result<Plan, Error> {
    if opts.isolation == Isolation::Process {
        return Err(Error::Config(vec![
            "--isolation process is not available in this build yet; use --isolation shared".into(),
        ]));
    }
    let conf = config::load(&opts.config)
        .map_err(|errs| Error::Config(errs.iter().map(ToString::to_string).collect()))?;
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
    module: Option<Arc<Module>>,
    capsule: Option<Arc<Capsule>>,
    state: State,
    /// `init` was called (so `cleanup` is owed).
    init_ran: bool,
    /// A lifecycle call overran its budget and may still be running.
    stuck: bool,
}

/// The outcome of a budgeted call.
enum Budgeted<T> {
    Done(T),
    Overran,
    /// A second SIGTERM/SIGINT arrived while waiting: exit now.
    Abandon,
}

struct Supervisor {
    interp: Arc<Interpreter>,
    signals: Signals,
    image: &'static Image,
    /// Set once SIGTERM/SIGINT or a stop request was seen.
    stopping: Option<String>,
}

impl Supervisor {
    /// Runs `f` on its own thread and waits at most `budget` for it, while
    /// still handling signals: a first SIGTERM/SIGINT is remembered (the
    /// current step finishes, then the runtime stops), a second one abandons.
    fn budgeted<T: Send + 'static>(
        &mut self,
        what: &str,
        budget: Duration,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Budgeted<T> {
        let (tx, rx) = mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name(what.chars().take(15).collect())
            .spawn(move || {
                let _ = tx.send(f());
                crate::signals::wake();
            });
        if let Err(e) = spawned {
            log::error!("cannot start a thread for {what}: {e}");
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
                return Budgeted::Overran;
            }
            match self
                .signals
                .wait((deadline - now).min(Duration::from_millis(200)))
            {
                Event::Terminate(n) => {
                    if self.stopping.is_some() || n > 1 {
                        return Budgeted::Abandon;
                    }
                    log::info!("stop requested by signal; finishing {what} first");
                    self.stopping = Some("signal".into());
                }
                Event::StopRequested => {
                    self.stopping
                        .get_or_insert_with(|| "request_plc_stop".into());
                }
                Event::Reload => log::warn!(
                    "SIGHUP ignored while {what} runs: reloading plugins.conf is not supported by this build; restart the service to apply changes"
                ),
                Event::Tick => {}
            }
        }
    }

    /// A lifecycle call with logging. Returns false on failure.
    fn lifecycle(&mut self, slot: &mut Slot, func: &'static str, budget: Duration) -> bool {
        let name = slot.plugin.name().to_string();
        let (Some(module), interp) = (slot.module.clone(), Arc::clone(&self.interp)) else {
            return false;
        };
        let capsule = if func == "init" {
            slot.capsule.clone()
        } else {
            None
        };
        let outcome = self.budgeted(&format!("{name}.{func}"), budget, move || {
            interp.call(&module, func, capsule.as_deref())
        });
        match outcome {
            Budgeted::Done(CallOutcome::Ok) => true,
            Budgeted::Done(CallOutcome::Missing) if func != "init" => true,
            Budgeted::Done(CallOutcome::Missing) => {
                log::error!(
                    "[{name}] has no init() function: {} is not an OpenPLC plugin (init(args) is required); plugin disabled",
                    slot.plugin.entry.path.display()
                );
                false
            }
            Budgeted::Done(CallOutcome::Raised(tb)) => {
                log::error!("[{name}] {func}() raised; the plugin is marked failed:\n{tb}");
                false
            }
            Budgeted::Overran => {
                log::error!(
                    "[{name}] {func}() did not return within {} s; going on without it",
                    budget.as_secs()
                );
                slot.stuck = true;
                false
            }
            Budgeted::Abandon => abandon(&name, func),
        }
    }

    fn load(&mut self, index: usize, plugin: &Plugin, period_ns: u64) -> Slot {
        let mut slot = Slot {
            plugin: plugin.clone(),
            module: None,
            capsule: None,
            state: State::Failed,
            init_ran: false,
            stuck: false,
        };
        let name = plugin.name().to_string();
        if plugin.entry.kind == PluginKind::Native {
            log::error!(
                "[{name}] native plugins (type 1) are not supported by this build yet; plugin not loaded"
            );
            return slot;
        }
        image::set_slot_name(index, &name);
        let args = self
            .image
            .runtime_args(index, plugin.entry.config_path.as_deref(), period_ns);
        match Capsule::new(args) {
            Ok(c) => slot.capsule = Some(Arc::new(c)),
            Err(e) => {
                log::error!("[{name}] cannot make its capsule: {e}");
                return slot;
            }
        }
        let interp = Arc::clone(&self.interp);
        let module_name = python::module_name(&name);
        let path = plugin.entry.path.clone();
        match self.budgeted(&format!("{name}.import"), INIT_BUDGET, move || {
            interp.load_plugin(&module_name, &path)
        }) {
            Budgeted::Done(Ok(m)) => slot.module = Some(Arc::new(m)),
            Budgeted::Done(Err(tb)) => {
                log::error!(
                    "[{name}] importing {} failed; the plugin is marked failed:\n{tb}",
                    plugin.entry.path.display()
                );
                return slot;
            }
            Budgeted::Overran => {
                log::error!(
                    "[{name}] importing {} did not finish within {} s; going on without it",
                    plugin.entry.path.display(),
                    INIT_BUDGET.as_secs()
                );
                slot.stuck = true;
                return slot;
            }
            Budgeted::Abandon => abandon(&name, "import"),
        }
        slot.init_ran = true;
        if self.lifecycle(&mut slot, "init", INIT_BUDGET) {
            slot.state = State::Initialized;
        }
        slot
    }

    fn report_scan(&self, scan: &ScanThread, last: &mut (u64, u64, u64, u64)) {
        let s = scan.stats();
        let overruns = s.overruns.load(std::sync::atomic::Ordering::Relaxed);
        let overflows = self.image.journal_overflows();
        let rejected = self.image.journal_rejected();
        let recovered = self.image.lock_recoveries();
        if overruns > last.0 {
            log::warn!(
                "scan: {} deadline(s) missed in the last interval (period {} µs, longest cycle {} µs, worst lateness {} µs)",
                overruns - last.0,
                s.period_ns() / 1000,
                s.cycle_max_ns.load(std::sync::atomic::Ordering::Relaxed) / 1000,
                s.lateness_max_ns.load(std::sync::atomic::Ordering::Relaxed) / 1000
            );
        }
        if overflows > last.1 {
            log::warn!(
                "journal full: {} write(s) dropped in the last interval (capacity {} per cycle)",
                overflows - last.1,
                image::JOURNAL_CAPACITY
            );
        }
        if rejected > last.2 {
            log::warn!(
                "journal: {} write(s) rejected (wrong type code for the function, index >= buffer_size or bit > 7)",
                rejected - last.2
            );
        }
        if recovered > last.3 {
            log::warn!(
                "image lock: recovered from a dead owner {} time(s)",
                recovered - last.3
            );
        }
        *last = (overruns, overflows, rejected, recovered);
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
    let interp = Arc::new(python::start(opts.python_home.as_deref())?);
    let sys_path = interp
        .set_paths(&plan.plugin_dirs(), &plan.site_dirs(), plan.system_site())
        .map_err(Error::Python)?;
    log::debug!("sys.path: {sys_path:?}");

    let period_ns = u64::try_from(opts.scan_period.as_nanos()).unwrap_or(u64::MAX);
    let mut scan = ScanThread::spawn(image, opts.scan_period)
        .map_err(|e| Error::Os(format!("cannot start the scan thread: {e}")))?;
    let mut sup = Supervisor {
        interp,
        signals,
        image,
        stopping: None,
    };

    // init in file order; start_loop only once every init has run.
    let mut slots: Vec<Slot> = Vec::with_capacity(plan.plugins.len());
    for (i, p) in plan.plugins.iter().enumerate() {
        if sup.stopping.is_some() {
            break;
        }
        slots.push(sup.load(i, p, period_ns));
    }
    for slot in &mut slots {
        if sup.stopping.is_some() {
            break;
        }
        if slot.state == State::Initialized && sup.lifecycle(slot, "start_loop", START_BUDGET) {
            slot.state = State::Started;
        } else {
            slot.state = State::Failed;
        }
    }
    let started = slots.iter().filter(|s| s.state == State::Started).count();
    let failed: Vec<String> = slots
        .iter()
        .filter(|s| s.state == State::Failed)
        .map(|s| s.plugin.name().to_string())
        .collect();
    log::info!(
        "running: {started} plugin(s) started, {} failed{}; scan period {} µs, {} slots per table, isolation {}",
        failed.len(),
        if failed.is_empty() {
            String::new()
        } else {
            format!(" ({})", failed.join(", "))
        },
        period_ns / 1000,
        image.buffer_size(),
        opts.isolation
    );

    let mut last = (0, 0, 0, 0);
    while sup.stopping.is_none() {
        match sup.signals.wait(REPORT_INTERVAL) {
            Event::Terminate(_) => sup.stopping = Some("signal".into()),
            Event::StopRequested => sup.stopping = Some("request_plc_stop".into()),
            Event::Reload => log::warn!(
                "SIGHUP: reloading plugins.conf is not supported by this build; restart the service to apply changes"
            ),
            Event::Tick => {}
        }
        sup.report_scan(&scan, &mut last);
    }
    let stopped_by = sup.stopping.clone().unwrap_or_default();
    log::info!("stopping ({stopped_by}): stop_loop, then cleanup, in reverse order");

    for slot in slots.iter_mut().rev() {
        if slot.state == State::Started && !sup.lifecycle(slot, "stop_loop", STOP_BUDGET) {
            log::warn!("[{}] did not stop cleanly", slot.plugin.name());
        }
    }
    if !scan.stop(SCAN_STOP_BUDGET) {
        log::error!(
            "the scan thread did not finish within {} s: a plugin is holding the image lock",
            SCAN_STOP_BUDGET.as_secs()
        );
    }
    sup.report_scan(&scan, &mut last);
    for slot in slots.iter_mut().rev() {
        if slot.stuck {
            log::warn!(
                "[{}] skipping cleanup(): an earlier call of this plugin is still running",
                slot.plugin.name()
            );
        } else if slot.init_ran {
            sup.lifecycle(slot, "cleanup", CLEANUP_BUDGET);
        }
    }
    if slots.iter().all(|s| !s.stuck) {
        sup.interp.flush_stdio();
    }
    let stats = scan.stats();
    let report = Report {
        plugins_started: started,
        plugins_failed: failed.len(),
        cycles: stats.cycles.load(std::sync::atomic::Ordering::Relaxed),
        overruns: stats.overruns.load(std::sync::atomic::Ordering::Relaxed),
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
        stats.lateness_max_ns.load(std::sync::atomic::Ordering::Relaxed) / 1000,
        report.journal_applied,
        report.journal_overflows
    );
    // The interpreter is not finalised: plugin threads that were not joined
    // would block Py_FinalizeEx; the process exits with them.
    std::mem::forget(slots);
    Ok(report)
}
