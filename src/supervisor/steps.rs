//! Plugin steps: the one place where a step of a plugin's life (its load, or
//! one of its lifecycle calls) runs under a time budget on a thread of its
//! own, and where its outcome becomes a log line and the slot's next state:
//! for Python plugins in this process, worker processes and native plugins
//! alike. The order of steps is in `order`.

use std::ffi::c_int;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::slot::{Runner, State};

use super::{DOUBLE_SIGNAL_GRACE, SCAN_STOP_BUDGET, Supervisor, WAIT_SLICE};
use crate::config::PluginKind;
use crate::isolation::zygote::{FORK_BUDGET, READY_BUDGET};
use crate::isolation::{self as worker, Worker};
use crate::lifecycle::{Call, INIT_BUDGET, START_BUDGET};
use crate::native::{self, NativeOutcome};
use crate::python::{self, CallOutcome, Capsule};
use crate::resolve::Isolation;
use crate::signals::Event;

/// How long a new worker waits for the scan thread to reset its journal ring
/// (one or two scan cycles normally).
const RING_RESET_WAIT: Duration = Duration::from_secs(1);

/// A step of a plugin's life, run under a time budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    /// Import the module (here or in its worker) or `dlopen` the library.
    Load,
    /// One of the plugin's lifecycle functions.
    Call(Call),
}

impl Step {
    fn budget(self) -> Duration {
        match self {
            Step::Load => INIT_BUDGET,
            Step::Call(c) => c.budget(),
        }
    }
}

/// Why a step failed, as the plugin's kind reports it.
enum Failure {
    /// A Python module without `init()`: not an OpenPLC plugin.
    NoInit,
    /// A Python exception: its traceback.
    Raised(String),
    /// A native `init` returned this non-zero value.
    Returned(c_int),
    /// The library could not be loaded: `dlerror`'s text, which names it.
    Unloadable(String),
}

/// A step, ready to run on another thread: what a load produced, or how it
/// failed.
type Job = Box<dyn FnOnce() -> Result<Option<Runner>, Failure> + Send>;

/// The outcome of a budgeted call.
pub(super) enum Budgeted<T> {
    Done(T),
    Overran,
    /// A second SIGTERM/SIGINT arrived while waiting: exit now.
    Abandon,
}

/// A Python lifecycle call's outcome (here or in a worker): a missing
/// function is fine, except `init`.
fn python_result(call: Call, outcome: CallOutcome) -> Result<Option<Runner>, Failure> {
    match outcome {
        CallOutcome::Ok => Ok(None),
        CallOutcome::Missing if call != Call::Init => Ok(None),
        CallOutcome::Missing => Err(Failure::NoInit),
        CallOutcome::Raised(tb) => Err(Failure::Raised(tb)),
    }
}

impl Supervisor {
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
        let mut got = None;
        let waited = self.serve_until(plugin, what, budget, || match rx.try_recv() {
            Ok(v) => {
                got = Some(v);
                true
            }
            Err(mpsc::TryRecvError::Disconnected) => true,
            Err(mpsc::TryRecvError::Empty) => false,
        });
        match (waited, got) {
            (Budgeted::Abandon, _) => Budgeted::Abandon,
            (Budgeted::Done(()), Some(v)) => Budgeted::Done(v),
            (Budgeted::Done(()), None) => Budgeted::Overran,
            (Budgeted::Overran, _) => {
                self.stuck_call = Some(format!("[{plugin}] {what}()"));
                Budgeted::Overran
            }
        }
    }

    /// Waits at most `budget` until `done` says so, serving signals and the
    /// watchdog meanwhile (never blocked for more than a slice): a first
    /// SIGTERM/SIGINT is remembered, a second one abandons. `plugin` and
    /// `what` name what is waited for in the log.
    pub(super) fn serve_until(
        &mut self,
        plugin: &str,
        what: &str,
        budget: Duration,
        mut done: impl FnMut() -> bool,
    ) -> Budgeted<()> {
        let deadline = Instant::now() + budget;
        loop {
            if done() {
                return Budgeted::Done(());
            }
            let now = Instant::now();
            if now >= deadline {
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

    /// Runs `step` of slot `i` under its budget: the one path of every plugin
    /// call. Logs a failure or an overrun by plugin name and moves the slot to
    /// its next state. Returns whether the step succeeded.
    pub(super) fn step(&mut self, i: usize, step: Step) -> bool {
        let slot = &self.slots[i];
        let name = slot.name().to_string();
        let native = slot.plugin.entry.kind == PluginKind::Native;
        let what = match step {
            Step::Load if native => "dlopen",
            Step::Load => "import",
            Step::Call(c) => c.name(),
        };
        if step == Step::Call(Call::StopLoop) && !self.remove_hooks(i) {
            log::error!(
                "[{name}] the scan thread is stuck in a native cycle hook; stop_loop() and cleanup() are skipped"
            );
            let runner = self.slots[i].state.take_runner();
            self.slots[i].state = State::Stuck(runner);
            return false;
        }
        let job = match step {
            Step::Load => self.load_job(i),
            Step::Call(c) => self.call_job(i, c),
        };
        let Some(job) = job else {
            return false;
        };
        // Whether a worker runs the step: an overrun kills it.
        let in_worker = self.slots[i].worker().is_some();
        let budget = step.budget();
        let outcome = self.budgeted(&name, what, budget, job);
        let path = self.slots[i].plugin.entry.path.display().to_string();
        match outcome {
            Budgeted::Done(Ok(loaded)) => {
                self.advance(i, step, loaded);
                true
            }
            Budgeted::Done(Err(failure)) => {
                let why = match (&failure, step) {
                    (Failure::NoInit, _) => format!(
                        "has no init() function: {path} is not an OpenPLC plugin (init(args) is required); plugin disabled"
                    ),
                    (Failure::Raised(tb), Step::Load) => {
                        format!("importing {path} failed; the plugin is marked failed:\n{tb}")
                    }
                    (Failure::Raised(tb), Step::Call(_)) => {
                        format!("{what}() raised; the plugin is marked failed:\n{tb}")
                    }
                    (Failure::Returned(rc), _) => {
                        format!("{what}() returned {rc} (0 = success); the plugin is marked failed")
                    }
                    (Failure::Unloadable(e), _) => format!("{e}; the plugin is marked failed"),
                };
                log::error!("[{name}] {why}");
                self.fall_back(i, step);
                false
            }
            Budgeted::Overran => {
                let late = match step {
                    Step::Load if native => format!("loading {path} did not finish"),
                    Step::Load => format!("importing {path} did not finish"),
                    Step::Call(_) => format!("{what}() did not return"),
                };
                let then = if in_worker {
                    "its worker process is killed"
                } else {
                    "going on without it"
                };
                log::error!("[{name}] {late} within {} s; {then}", budget.as_secs());
                self.give_up_on(i, in_worker);
                false
            }
            Budgeted::Abandon => abandon(&name, what),
        }
    }

    /// The job that loads slot `i`: import its module here, start its worker
    /// process (which imports it), or `dlopen` its library. `None` when that
    /// cannot even start (logged).
    fn load_job(&mut self, i: usize) -> Option<Job> {
        let plugin = self.slots[i].plugin.clone();
        let name = plugin.name().to_string();
        let index = self.slots[i].index;
        crate::image::set_slot_name(index, &name);
        let period_ns =
            crate::program::program_period_ns().unwrap_or_else(|| self.scan.stats().period_ns());
        // A worker's directory travels in its Spec; it makes its own struct.
        let in_process =
            plugin.entry.kind == PluginKind::Native || self.opts.isolation != Isolation::Process;
        let state_dir = if in_process {
            crate::plugin_state::prepare_logged(&name, self.opts.root.as_deref())
        } else {
            None
        };
        // Native plugins' log callbacks are printf-style, Python's take text.
        let args = if plugin.entry.kind == PluginKind::Native {
            crate::image::Image::native_args_for
        } else {
            crate::image::Image::runtime_args_for
        };
        let args = args(
            self.image,
            index,
            plugin.entry.config_path.as_deref(),
            state_dir.as_deref(),
            period_ns,
        );
        if plugin.entry.kind == PluginKind::Native {
            let load = native::loader(index, plugin.entry.path.clone(), args);
            return Some(Box::new(move || {
                load()
                    .map(|p| Some(Runner::Native(p)))
                    .map_err(Failure::Unloadable)
            }));
        }
        if self.opts.isolation == Isolation::Process {
            let w = match self.slots[i].prestarted.take() {
                Some(w) => w,
                None => self.spawn_worker_for(i)?,
            };
            // In the slot from now on, so its death is noticed while it imports.
            self.slots[i].state = State::Loaded(Runner::Worker(Arc::clone(&w)));
            return Some(Box::new(move || match w.import_result() {
                CallOutcome::Ok => Ok(None),
                CallOutcome::Missing => Err(Failure::NoInit),
                CallOutcome::Raised(tb) => Err(Failure::Raised(tb)),
            }));
        }
        let capsule = match Capsule::new(args) {
            Ok(c) => Arc::new(c),
            Err(e) => {
                log::error!("[{name}] cannot make its capsule: {e}");
                return None;
            }
        };
        let interp = self.interp.clone()?;
        let module_name = python::module_name(&name);
        let path = plugin.entry.path.clone();
        Some(Box::new(move || {
            interp
                .load_plugin(&module_name, &path)
                .map(|m| {
                    Some(Runner::Python {
                        module: Arc::new(m),
                        capsule,
                    })
                })
                .map_err(Failure::Raised)
        }))
    }

    /// Starts the worker process of slot `i` (which imports its plugin at
    /// once); `None` when it cannot start (logged).
    fn spawn_worker_for(&mut self, i: usize) -> Option<Arc<Worker>> {
        self.spawn_workers_for(&[i]).pop().flatten()
    }

    /// Starts the worker processes of `slots` at once (forked back to back
    /// from the zygote, when there is one); one per slot, `None` when it could
    /// not start (logged).
    pub(super) fn spawn_workers_for(&mut self, slots: &[usize]) -> Vec<Option<Arc<Worker>>> {
        let specs: Vec<worker::Spec> = slots.iter().map(|&i| self.worker_spec(i)).collect();
        let mut started: Vec<std::io::Result<Worker>> = Vec::with_capacity(specs.len());
        if let Some(z) = self.zygote_for_fork() {
            // On a thread of its own: a slow zygote must not stop signals
            // and the watchdog from being served.
            let (owned, zygote, tx) = (specs.clone(), Arc::clone(&z), self.worker_exits_tx.clone());
            let budget = READY_BUDGET + FORK_BUDGET + WAIT_SLICE;
            match self.budgeted("zygote", "fork", budget, move || {
                let refs: Vec<&worker::Spec> = owned.iter().collect();
                Worker::fork_many(&refs, &zygote, &tx)
            }) {
                Budgeted::Done(v) => started = v,
                Budgeted::Abandon => abandon("zygote", "fork"),
                Budgeted::Overran => {
                    // Its own budgets end the thread first; should they not,
                    // it is no stuck plugin call.
                    self.stuck_call = None;
                    log::warn!(
                        "the zygote (pid {}) did not answer within {} ms; starting workers as new processes",
                        z.pid,
                        budget.as_millis()
                    );
                    z.abandon();
                }
            }
        }
        let mut forked = started.into_iter();
        let mut out = Vec::with_capacity(specs.len());
        for spec in &specs {
            let name = &spec.plugin;
            let w = match forked.next() {
                Some(Ok(w)) => Ok(w),
                other => {
                    if let Some(Err(e)) = other {
                        log::warn!(
                            "[{name}] the zygote could not start its worker ({e}); starting it as a new process"
                        );
                    }
                    Worker::spawn(spec, self.image, self.worker_exits_tx.clone())
                }
            };
            out.push(match w {
                Ok(w) => {
                    log::debug!("[{name}] worker process {} started", w.pid);
                    Some(Arc::new(w))
                }
                Err(e) => {
                    log::error!("[{name}] cannot start its worker process: {e}");
                    None
                }
            });
        }
        out
    }

    /// What the worker of slot `i` runs, once its state directory exists and
    /// its journal ring is clean.
    fn worker_spec(&self, i: usize) -> worker::Spec {
        let plugin = &self.slots[i].plugin;
        let name = plugin.name().to_string();
        let index = self.slots[i].index;
        crate::image::set_slot_name(index, &name);
        let mut spec = worker::Spec::for_plugin(
            plugin,
            index,
            self.image.buffer_size(),
            crate::program::program_period_ns().unwrap_or_else(|| self.scan.stats().period_ns()),
            self.opts.python_home.clone(),
        );
        spec.state_dir = crate::plugin_state::prepare_logged(&name, self.opts.root.as_deref());
        // The ring of a previous worker in this slot must be clean before
        // a new process writes into it.
        let ring = crate::image::worker_ring(index);
        if !self.image.await_ring_reset(ring, RING_RESET_WAIT) {
            log::error!(
                "[{name}] the scan thread did not reset journal ring {ring} within {} ms; the worker's writes may stay queued until the service restarts",
                RING_RESET_WAIT.as_millis()
            );
        }
        spec
    }

    /// The zygote to fork from (`--worker-start zygote`): started again first
    /// when it died. `None` without one (workers are then new processes).
    fn zygote_for_fork(&mut self) -> Option<Arc<crate::isolation::Zygote>> {
        if !self.opts.zygote {
            return None;
        }
        if let Some(z) = self.zygote.take_if(|z| !z.usable()) {
            if z.alive() {
                // Its workers live on; it is ended once they are gone.
                log::warn!(
                    "the zygote process {} did not answer in time; forks go to a new one, it stays for the workers it forked",
                    z.pid
                );
                self.old_zygotes.push(z);
            } else {
                log::warn!(
                    "the zygote process {} is gone ({}); starting a new one",
                    z.pid,
                    z.finish()
                );
            }
        }
        if self.zygote.is_none() {
            self.zygote = super::start_zygote(self.image, &self.opts);
        }
        self.zygote.clone()
    }

    /// The job that makes lifecycle call `call` of slot `i`; `None` when the
    /// plugin is not loaded.
    fn call_job(&self, i: usize, call: Call) -> Option<Job> {
        Some(match self.slots[i].state.runner()? {
            Runner::Python { module, capsule } => {
                let interp = self.interp.clone()?;
                let module = Arc::clone(module);
                // Only `init` receives the capsule.
                let capsule = (call == Call::Init).then(|| Arc::clone(capsule));
                Box::new(move || {
                    python_result(call, interp.call(&module, call, capsule.as_deref()))
                })
            }
            Runner::Worker(w) => {
                let w = Arc::clone(w);
                Box::new(move || python_result(call, w.call(call)))
            }
            Runner::Native(p) => {
                let run = p.call(call);
                Box::new(move || match run.run() {
                    NativeOutcome::Ok | NativeOutcome::Missing => Ok(None),
                    NativeOutcome::Failed(rc) => Err(Failure::Returned(rc)),
                })
            }
        })
    }

    /// Before a native plugin's `stop_loop`: its cycle hooks (and its PLC
    /// program) leave the scan thread. The wait serves signals and the
    /// watchdog (no blocking wait on this thread). `false` when the scan
    /// thread stays in one of them for `SCAN_STOP_BUDGET`.
    fn remove_hooks(&mut self, i: usize) -> bool {
        let Some(Runner::Native(p)) = self.slots[i].state.runner() else {
            return true;
        };
        let hooks = Arc::clone(self.scan.hooks());
        let detached = hooks.detach(p.slot());
        let name = self.slots[i].name().to_string();
        match self.serve_until(&name, "cycle hooks' end", SCAN_STOP_BUDGET, || {
            hooks.left(&detached)
        }) {
            Budgeted::Done(()) => true,
            Budgeted::Overran => false,
            Budgeted::Abandon => abandon(&name, "cycle hooks' end"),
        }
    }

    /// The state after a step that succeeded. A slot whose state changed
    /// during the step (its worker died) keeps its new state.
    fn advance(&mut self, i: usize, step: Step, loaded: Option<Runner>) {
        let state = std::mem::replace(&mut self.slots[i].state, State::Unloaded);
        self.slots[i].state = match (step, state) {
            (Step::Load, state) => loaded.map_or(state, State::Loaded),
            (Step::Call(Call::Init), State::Loaded(r)) => State::Initialized(r),
            (Step::Call(Call::StartLoop), State::Initialized(r)) => {
                // Cycle hooks run only while the plugin is started.
                if let Runner::Native(p) = &r {
                    self.scan.hooks().add(p);
                }
                State::Started(r)
            }
            (Step::Call(Call::StopLoop), State::Started(r)) => State::Loaded(r),
            (Step::Call(Call::Cleanup), State::Loaded(r)) => self.release(i, r, true),
            (_, state) => state,
        };
    }

    /// The state after a step that failed: a plugin whose `init` ran still
    /// gets its `cleanup`; one that did not load is unloaded.
    fn fall_back(&mut self, i: usize, step: Step) {
        let state = std::mem::replace(&mut self.slots[i].state, State::Unloaded);
        self.slots[i].state = match (step, state) {
            (Step::Load, State::Loaded(Runner::Worker(w))) => {
                self.retire(i, &w, false);
                State::Unloaded
            }
            (Step::Call(Call::Cleanup), State::Loaded(r)) => self.release(i, r, false),
            (Step::Call(_), State::Initialized(r) | State::Started(r)) => State::Loaded(r),
            (_, state) => state,
        };
    }

    /// After an overrun: a worker process is killed; anything else may still
    /// be running the call, so the plugin is left as it is, stuck.
    fn give_up_on(&mut self, i: usize, in_worker: bool) {
        match self.slots[i].state.take_runner() {
            Some(Runner::Worker(w)) => self.retire(i, &w, true),
            // Its worker died meanwhile: the state says what happens next.
            None if in_worker => {}
            runner => self.slots[i].state = State::Stuck(runner),
        }
    }

    /// What is left after `cleanup` returned (`clean`) or failed: a native
    /// library is closed (only after a clean return; else it stays mapped), a
    /// worker exits.
    fn release(&mut self, i: usize, runner: Runner, clean: bool) -> State {
        match runner {
            Runner::Native(p) if clean => p.unload(),
            // Dropping a `NativePlugin` leaves its library loaded.
            Runner::Native(_) => {}
            // A worker exits once cleanup answered (or is killed if it does
            // not): nothing of a stopped plugin is left running.
            Runner::Worker(w) => self.retire(i, &w, false),
            python @ Runner::Python { .. } => return State::CleanedUp(python),
        }
        State::Unloaded
    }

    /// Stops a worker process: kills it when `kill`, else lets it exit
    /// (control socket closed) within EXIT_BUDGET before killing it. The
    /// waits serve signals and the watchdog. Its pid is no longer in any
    /// slot, so its exit is not taken for a crash.
    pub(super) fn retire(&mut self, i: usize, w: &Worker, kill: bool) {
        let name = self.slots[i].name().to_string();
        w.close();
        if kill {
            w.kill();
        }
        for _ in 0..2 {
            match self.serve_until(&name, "exit", worker::EXIT_BUDGET, || w.ended()) {
                Budgeted::Done(()) => break,
                Budgeted::Overran => w.kill(),
                Budgeted::Abandon => abandon(&name, "exit"),
            }
        }
        let status = w.status();
        // A killed worker may have died mid-write; the next one starts clean.
        self.image
            .request_ring_reset(crate::image::worker_ring(self.slots[i].index));
        log::debug!(
            "[{name}] worker process {} {}",
            w.pid,
            worker::describe_exit(status)
        );
    }

    /// Loads slot `i` and runs its `init`; its state says how far it got.
    pub(super) fn load(&mut self, i: usize) {
        self.notifier.extend_timeout(INIT_BUDGET + START_BUDGET);
        if self.step(i, Step::Load) {
            self.step(i, Step::Call(Call::Init));
        }
    }
}

/// A second SIGTERM/SIGINT while a plugin call hangs: leave now, non-zero.
pub(super) fn abandon(plugin: &str, what: &str) -> ! {
    log::error!(
        "second stop signal while [{plugin}] {what}() is still running; exiting immediately without finishing shutdown"
    );
    std::process::exit(i32::from(crate::error::EXIT_SOFTWARE));
}
