//! Process isolation: each Python plugin in a worker process of its own, with
//! an interpreter that sees the stdlib, the plugin's directory and its own venv
//! only. That is what lets plugins pinned to conflicting versions of one
//! package coexist. A worker is forked from the zygote (`zygote`, the
//! default) or is this binary re-executed as `openplc-runtime worker ...`
//! (`--worker-start exec`); either way it runs [`serve`].
//!
//! The worker maps the supervisor's image (the memfd is inherited), so the
//! capsule's table pointers, the image lock and the journal behave exactly as
//! in shared mode. Lifecycle calls, results, log records and stop requests
//! travel over a socketpair as length-prefixed frames:
//!
//! | frame | direction | payload |
//! |---|---|---|
//! | `C` | supervisor → worker | function name (`init`, `start_loop`, …) |
//! | `R` | worker → supervisor | `func \0 ok|missing|raised \0 text` |
//! | `L` | worker → supervisor | level digit (1 error … 4 debug) + message |
//! | `S` | worker → supervisor | a plugin called `request_plc_stop` |
//! | `M` | worker → supervisor | the stdlib modules it imported, one per line (for the zygote) |
//!
//! The worker exits after answering `cleanup`, or when the control socket
//! closes (the supervisor is gone); PR_SET_PDEATHSIG kills it if its parent
//! (the zygote, or the supervisor) dies first.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::image::{self, Image};
use crate::lifecycle::Call;
use crate::python::{self, CallOutcome, Capsule};
use crate::resolve::Plugin;

/// First restart delay after a worker died; doubled per consecutive restart.
pub const RESTART_BACKOFF_BASE: Duration = Duration::from_millis(250);
/// Longest restart delay.
pub const RESTART_BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Consecutive restarts before a plugin is marked failed for good: five
/// crashes in a row (about 8 s of back-off) is a plugin that cannot run.
pub const MAX_RESTARTS: u32 = 5;
/// A worker that ran this long without dying has earned a fresh restart count.
pub const HEALTHY_RUN: Duration = Duration::from_secs(60);
/// How long a worker may take to exit after `cleanup` or after its control
/// socket closed, before it is killed.
pub const EXIT_BUDGET: Duration = Duration::from_secs(1);
/// The result frame's name for the import, which is no lifecycle call.
const IMPORT: &str = "import";
/// How long a worker waits, after its first `start_loop`, for the supervisor
/// to be quiet before it reports its stdlib imports (off the start-up path).
const LEARN_DELAY: Duration = Duration::from_millis(300);
/// Largest frame accepted (a traceback or a log record); larger ones mean the
/// peer is broken.
pub const MAX_FRAME: usize = 4 << 20;

/// The delay before restart number `n` (0-based).
pub fn backoff(n: u32) -> Duration {
    RESTART_BACKOFF_BASE
        .saturating_mul(1u32 << n.min(16))
        .min(RESTART_BACKOFF_MAX)
}

fn write_frame(w: &mut impl Write, kind: u8, payload: &[u8]) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(payload.len() + 5);
    buf.extend_from_slice(&((payload.len() + 1) as u32).to_le_bytes());
    buf.push(kind);
    buf.extend_from_slice(payload);
    w.write_all(&buf)
}

/// Logs an `L` frame (level digit + message) of a worker or the zygote in
/// this process's log, the message after `prefix`.
pub(crate) fn log_frame(prefix: &str, p: &[u8]) {
    let level = match p.first() {
        Some(b'1') => log::Level::Error,
        Some(b'2') => log::Level::Warn,
        Some(b'4') => log::Level::Debug,
        _ => log::Level::Info,
    };
    let msg = String::from_utf8_lossy(p.get(1..).unwrap_or_default());
    log::log!(level, "{prefix}{msg}");
}

/// Reads one control-channel frame (length, kind, payload): `Ok(None)` at a
/// clean end of stream; a length of 0 or over [`MAX_FRAME`], or a stream that
/// ends inside a frame, is an error saying so. Public for the fuzz target.
pub fn read_frame(r: &mut impl Read) -> std::io::Result<Option<(u8, Vec<u8>)>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_le_bytes(len) as usize;
    if len == 0 || len > MAX_FRAME {
        return Err(std::io::Error::other(format!(
            "bad frame length {len} (1 to {MAX_FRAME} bytes)"
        )));
    }
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf).map_err(|e| {
        std::io::Error::new(e.kind(), format!("frame of {len} bytes cut short: {e}"))
    })?;
    let kind = buf.remove(0);
    Ok(Some((kind, buf)))
}

fn encode_result(func: &str, outcome: &CallOutcome) -> Vec<u8> {
    let (status, text) = match outcome {
        CallOutcome::Ok => ("ok", ""),
        CallOutcome::Missing => ("missing", ""),
        CallOutcome::Raised(t) => ("raised", t.as_str()),
    };
    format!("{func}\0{status}\0{text}").into_bytes()
}

/// A result frame's payload: the call's name and how it ended. A status the
/// protocol does not know becomes a failure that says so (never a success).
/// Public for the fuzz target.
pub fn decode_result(payload: &[u8]) -> (String, CallOutcome) {
    let text = String::from_utf8_lossy(payload);
    let mut parts = text.splitn(3, '\0');
    let func = parts.next().unwrap_or_default().to_string();
    let status = parts.next().unwrap_or_default();
    let rest = parts.next().unwrap_or_default().to_string();
    let outcome = match status {
        "ok" => CallOutcome::Ok,
        "missing" => CallOutcome::Missing,
        "raised" => CallOutcome::Raised(rest),
        other => CallOutcome::Raised(format!(
            "the worker sent a result with an unknown status `{}`",
            other.escape_debug()
        )),
    };
    (func, outcome)
}

/// What a worker runs.
#[derive(Debug, Clone)]
pub struct Spec {
    pub plugin: String,
    /// Callback slot (selects the per-plugin log/stop callbacks).
    pub slot: usize,
    pub path: PathBuf,
    pub config_path: Option<PathBuf>,
    pub site_dirs: Vec<PathBuf>,
    pub system_site: bool,
    pub buffer_size: usize,
    pub period_ns: u64,
    pub python_home: Option<PathBuf>,
    /// The plugin's writable directory (`plugin_state`), passed in the
    /// environment as `OPENPLC_PLUGIN_STATE_DIR`.
    pub state_dir: Option<PathBuf>,
}

impl Spec {
    /// The worker of Python plugin `p` in callback slot `slot`, on an image of
    /// `buffer_size` slots scanned every `period_ns`: the daemon's and
    /// `check`'s workers are built alike.
    pub fn for_plugin(
        p: &Plugin,
        slot: usize,
        buffer_size: usize,
        period_ns: u64,
        python_home: Option<PathBuf>,
    ) -> Spec {
        Spec {
            plugin: p.name().to_string(),
            slot,
            path: p.entry.path.clone(),
            config_path: p.entry.config_path.clone(),
            site_dirs: p
                .venv
                .as_ref()
                .map(|v| v.site_dirs.clone())
                .unwrap_or_default(),
            system_site: p.system_site(),
            buffer_size,
            period_ns,
            python_home,
            // Set by the supervisor; `check` imports and writes nothing.
            state_dir: None,
        }
    }
}

impl Spec {
    /// The `worker` command line for this spec, without the descriptors
    /// (also the payload of a zygote's fork request).
    pub fn to_args(&self) -> Vec<OsString> {
        let mut a: Vec<OsString> = Vec::new();
        let mut pair = |k: &str, v: OsString| {
            a.push(k.into());
            a.push(v);
        };
        pair("--plugin-name", OsString::from(&self.plugin));
        pair("--plugin", self.path.clone().into_os_string());
        pair("--slot", self.slot.to_string().into());
        pair("--buffer-size", self.buffer_size.to_string().into());
        pair("--period-ns", self.period_ns.to_string().into());
        if let Some(c) = &self.config_path {
            pair("--plugin-config", c.clone().into_os_string());
        }
        for d in &self.site_dirs {
            pair("--site-dir", d.clone().into_os_string());
        }
        if let Some(h) = &self.python_home {
            pair("--python-home", h.clone().into_os_string());
        }
        if let Some(d) = &self.state_dir {
            pair("--state-dir", d.clone().into_os_string());
        }
        if self.system_site {
            a.push("--system-site".into());
        }
        a
    }
}

/// How the supervisor waits for, and kills, a worker: its own child
/// (re-executed binary), or a child of the zygote, which reaps it and reports
/// its exit status.
enum Proc {
    Exec(Mutex<Child>),
    Forked(Arc<crate::zygote::Zygote>),
}

/// The supervisor's handle on a worker process.
pub struct Worker {
    pub pid: u32,
    pub started: Instant,
    proc_: Proc,
    ctl: Mutex<UnixStream>,
    results: Mutex<mpsc::Receiver<(String, CallOutcome)>>,
    /// `cleanup` was sent: the worker exits after answering it.
    exit_expected: AtomicBool,
}

impl Worker {
    /// Starts a worker for `spec` on `image`. When its control socket closes
    /// (the worker exited or died), its pid is sent on `exited`. Call from the
    /// supervisor's main thread (see `sys::spawn_worker`).
    pub fn spawn(spec: &Spec, image: &Image, exited: mpsc::Sender<u32>) -> std::io::Result<Worker> {
        let (ours, theirs) = UnixStream::pair()?;
        let exe = std::env::current_exe()?;
        let image_fd = image.fd().as_raw_fd();
        let mut cmd = Command::new(exe);
        cmd.arg("worker")
            .args(spec.to_args())
            .arg("--image-fd")
            .arg(image_fd.to_string())
            .arg("--control-fd")
            .arg(theirs.as_raw_fd().to_string());
        // Only the supervisor talks to systemd (NotifyAccess=main).
        cmd.env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID")
            .stdin(Stdio::null());
        match &spec.state_dir {
            Some(d) => cmd.env(crate::plugin_state::ENV_VAR, d),
            None => cmd.env_remove(crate::plugin_state::ENV_VAR),
        };
        let child = crate::sys::spawn_worker(&mut cmd, &[image_fd, theirs.as_raw_fd()])?;
        drop(theirs);
        let pid = child.id();
        Worker::with_channel(
            pid,
            Proc::Exec(Mutex::new(child)),
            ours,
            &spec.plugin,
            exited,
        )
    }

    /// Starts workers for `specs` as forks of `zygote` (which maps the same
    /// image), all requested before the first is waited for. One result per
    /// spec, in order; as [`Worker::spawn`] otherwise.
    pub fn fork_many(
        specs: &[&Spec],
        zygote: &Arc<crate::zygote::Zygote>,
        exited: &mpsc::Sender<u32>,
    ) -> Vec<std::io::Result<Worker>> {
        let mut ours = Vec::with_capacity(specs.len());
        let mut reqs = Vec::with_capacity(specs.len());
        let mut early: Vec<Option<std::io::Error>> = Vec::with_capacity(specs.len());
        for spec in specs {
            match UnixStream::pair() {
                Ok((a, b)) => {
                    ours.push(Some(a));
                    reqs.push((*spec, OwnedFd::from(b)));
                    early.push(None);
                }
                Err(e) => {
                    ours.push(None);
                    early.push(Some(e));
                }
            }
        }
        let mut pids = zygote.fork_many(reqs).into_iter();
        specs
            .iter()
            .zip(ours)
            .zip(early)
            .map(|((spec, ours), early)| {
                if let Some(e) = early {
                    return Err(e);
                }
                let pid = pids
                    .next()
                    .unwrap_or_else(|| Err(std::io::Error::other("no answer from the zygote")))?;
                let ours = ours.ok_or_else(|| std::io::Error::other("no control socket"))?;
                Worker::with_channel(
                    pid,
                    Proc::Forked(Arc::clone(zygote)),
                    ours,
                    &spec.plugin,
                    exited.clone(),
                )
            })
            .collect()
    }

    /// The handle on a started worker process `pid` whose control socket is
    /// `ours`: a thread reads its frames (log records, results, stop requests)
    /// and sends `pid` on `exited` when the socket closes.
    fn with_channel(
        pid: u32,
        proc_: Proc,
        ours: UnixStream,
        plugin: &str,
        exited: mpsc::Sender<u32>,
    ) -> std::io::Result<Worker> {
        let (tx, rx) = mpsc::channel();
        let mut reader = ours.try_clone()?;
        let name = plugin.to_string();
        std::thread::Builder::new()
            .name(format!("w-{name}").chars().take(15).collect())
            .spawn(move || {
                loop {
                    match read_frame(&mut reader) {
                        Ok(Some((b'L', p))) => log_frame("", &p),
                        Ok(Some((b'R', p))) => {
                            let _ = tx.send(decode_result(&p));
                            crate::signals::wake();
                        }
                        Ok(Some((b'S', _))) => crate::signals::request_stop(),
                        Ok(Some((b'M', p))) => crate::zygote::learn(&p),
                        Ok(Some((k, _))) => {
                            log::warn!("[{name}] worker sent an unknown frame {k:?}");
                        }
                        Ok(None) | Err(_) => break,
                    }
                }
                let _ = exited.send(pid);
                crate::signals::wake();
            })?;
        Ok(Worker {
            pid,
            started: Instant::now(),
            proc_,
            ctl: Mutex::new(ours),
            results: Mutex::new(rx),
            exit_expected: AtomicBool::new(false),
        })
    }

    /// Waits for the result of the import, which the worker reports by itself
    /// once it started: `Missing` when the module has no `init`.
    pub fn import_result(&self) -> CallOutcome {
        self.result(IMPORT)
    }

    /// Waits for the result of `func`. A worker that dies first yields a
    /// `Raised` naming that.
    fn result(&self, func: &str) -> CallOutcome {
        let rx = self.results.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            match rx.recv() {
                Ok((f, outcome)) if f == func => return outcome,
                Ok(_) => continue,
                Err(_) => {
                    return CallOutcome::Raised(format!(
                        "the worker process (pid {}) died during {func}()",
                        self.pid
                    ));
                }
            }
        }
    }

    /// Forwards a lifecycle call and waits for its result.
    pub fn call(&self, func: Call) -> CallOutcome {
        if func == Call::Cleanup {
            self.exit_expected.store(true, Ordering::SeqCst);
        }
        let sent = {
            let mut ctl = self.ctl.lock().unwrap_or_else(|e| e.into_inner());
            write_frame(&mut *ctl, b'C', func.name().as_bytes())
        };
        if sent.is_err() {
            return CallOutcome::Raised(format!(
                "the worker process (pid {}) is gone; {func}() was not called",
                self.pid
            ));
        }
        self.result(func.name())
    }

    /// Whether the worker was told to finish (its exit is no crash).
    pub fn exit_expected(&self) -> bool {
        self.exit_expected.load(Ordering::SeqCst)
    }

    /// SIGKILL (a forked worker through its zygote, which knows whether the
    /// pid is still its child).
    pub fn kill(&self) {
        match &self.proc_ {
            Proc::Exec(_) => crate::sys::kill(self.pid, libc::SIGKILL),
            Proc::Forked(z) => z.kill(self.pid),
        }
    }

    /// Reaps the worker, waiting at most `budget`, then killing it.
    pub fn reap(&self, budget: Duration) -> Option<ExitStatus> {
        let child = match &self.proc_ {
            Proc::Exec(c) => c,
            Proc::Forked(z) => {
                let status = z.wait_exit(self.pid, budget).or_else(|| {
                    z.kill(self.pid);
                    z.wait_exit(self.pid, EXIT_BUDGET)
                });
                return status.map(ExitStatus::from_raw);
            }
        };
        let mut child = child.lock().unwrap_or_else(|e| e.into_inner());
        let end = Instant::now() + budget;
        loop {
            if let Ok(Some(st)) = child.try_wait() {
                return Some(st);
            }
            if Instant::now() >= end {
                let _ = child.kill();
                return child.wait().ok();
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Closes the control socket (the worker then exits) and reaps it.
    pub fn finish(&self) -> Option<ExitStatus> {
        let _ = self
            .ctl
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .shutdown(std::net::Shutdown::Both);
        self.reap(EXIT_BUDGET)
    }
}

/// "SIGSEGV (11)", or "signal 42" for one without a name.
fn signal_name(sig: i32) -> String {
    match signal_hook::low_level::signal_name(sig) {
        Some(name) => format!("{name} ({sig})"),
        None => format!("signal {sig}"),
    }
}

/// "exited with code 1" / "killed by SIGSEGV (11)".
pub fn describe_exit(status: Option<ExitStatus>) -> String {
    match status {
        None => "exit status unknown".into(),
        Some(st) => match (st.code(), st.signal()) {
            (Some(c), _) => format!("exited with code {c}"),
            (None, Some(s)) => format!(
                "killed by {}{}",
                signal_name(s),
                if st.core_dumped() {
                    ", core dumped"
                } else {
                    ""
                }
            ),
            _ => "ended".into(),
        },
    }
}

// --- the worker process ----------------------------------------------------------

/// Where this process's frames go: a worker's control socket (a stream of
/// length-prefixed frames), or the zygote's packet channel.
enum Sink {
    None,
    Stream(UnixStream),
    Packet(RawFd),
}

/// The process's one writer to its supervisor: log records (from any plugin
/// thread), stop requests and call results all go through it, a whole frame
/// at a time, so frames never interleave (a torn frame would make the
/// supervisor take a healthy worker for dead). A forked worker switches it
/// from the zygote's channel to its own socket before running anything else.
static OUT: Mutex<Sink> = Mutex::new(Sink::None);

/// Sends one frame to the supervisor.
pub(crate) fn send(kind: u8, payload: &[u8]) {
    let mut out = OUT.lock().unwrap_or_else(|e| e.into_inner());
    match &mut *out {
        Sink::None => {}
        Sink::Stream(s) => {
            let _ = write_frame(s, kind, payload);
        }
        Sink::Packet(fd) => {
            let mut p = Vec::with_capacity(payload.len() + 1);
            p.push(kind);
            p.extend_from_slice(payload);
            let _ = crate::sys::send_packet(*fd, &p, None);
        }
    }
}

/// Sends this process's log records to the supervisor's log.
struct ForwardLogger;

static FORWARD: ForwardLogger = ForwardLogger;

impl log::Log for ForwardLogger {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::max_level()
    }
    fn log(&self, r: &log::Record<'_>) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let digit = match r.level() {
            log::Level::Error => b'1',
            log::Level::Warn => b'2',
            log::Level::Info => b'3',
            _ => b'4',
        };
        let mut payload = vec![digit];
        payload.extend_from_slice(r.args().to_string().as_bytes());
        send(b'L', &payload);
    }
    fn flush(&self) {}
}

/// Logs of this process (a worker or the zygote) go to the supervisor.
pub(crate) fn forward_logs() {
    let _ = log::set_logger(&FORWARD);
    log::set_max_level(log::LevelFilter::Debug);
}

/// Frames of this process go to the zygote channel `fd`.
pub(crate) fn send_to_packets(fd: RawFd) {
    *OUT.lock().unwrap_or_else(|e| e.into_inner()) = Sink::Packet(fd);
}

/// Parses the `worker` arguments: the spec, and the image and control
/// descriptors (absent in a zygote's fork request).
pub(crate) fn parse_args(
    args: Vec<OsString>,
) -> Result<(Spec, Option<RawFd>, Option<RawFd>), Error> {
    let mut spec = Spec {
        plugin: String::new(),
        slot: 0,
        path: PathBuf::new(),
        config_path: None,
        site_dirs: Vec::new(),
        system_site: false,
        buffer_size: image::DEFAULT_BUFFER_SIZE,
        period_ns: 0,
        python_home: None,
        state_dir: None,
    };
    let (mut image_fd, mut control_fd) = (None, None);
    let bad = |m: String| {
        Error::Usage(format!(
            "worker: {m} (this command is started by the runtime itself)"
        ))
    };
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        let a = a.to_string_lossy().into_owned();
        if a == "--system-site" {
            spec.system_site = true;
            continue;
        }
        let v = it.next().ok_or_else(|| bad(format!("{a} needs a value")))?;
        let num = |v: &OsString| -> Result<u64, Error> {
            v.to_string_lossy()
                .parse()
                .map_err(|_| bad(format!("{a}: not a number")))
        };
        match a.as_str() {
            "--plugin-name" => spec.plugin = v.to_string_lossy().into_owned(),
            "--plugin" => spec.path = PathBuf::from(v),
            "--plugin-config" => spec.config_path = Some(PathBuf::from(v)),
            "--site-dir" => spec.site_dirs.push(PathBuf::from(v)),
            "--python-home" => spec.python_home = Some(PathBuf::from(v)),
            "--state-dir" => spec.state_dir = Some(PathBuf::from(v)),
            "--slot" => spec.slot = num(&v)? as usize,
            "--buffer-size" => spec.buffer_size = num(&v)? as usize,
            "--period-ns" => spec.period_ns = num(&v)?,
            "--image-fd" => image_fd = Some(num(&v)? as RawFd),
            "--control-fd" => control_fd = Some(num(&v)? as RawFd),
            _ => return Err(bad(format!("unknown argument {a}"))),
        }
    }
    if spec.plugin.is_empty() || spec.path.as_os_str().is_empty() {
        return Err(bad("missing --plugin-name or --plugin".into()));
    }
    Ok((spec, image_fd, control_fd))
}

/// `openplc-runtime worker ...`: runs one plugin for the supervisor, in a
/// fresh interpreter.
pub fn worker_main(args: Vec<OsString>) -> Result<(), Error> {
    let (spec, image_fd, control_fd) = parse_args(args)?;
    let (Some(image_fd), Some(control_fd)) = (image_fd, control_fd) else {
        return Err(Error::Usage(
            "worker: missing --image-fd or --control-fd (this command is started by the runtime itself)"
                .into(),
        ));
    };
    if image_fd < 3 || control_fd < 3 {
        return Err(Error::Usage(
            "worker: --image-fd and --control-fd must be inherited descriptors (3 or more)".into(),
        ));
    }
    // SAFETY: the supervisor passed this descriptor, open and owned by nobody
    // else in this process, and named it on our command line.
    let ctl = unsafe { UnixStream::from_raw_fd(control_fd) };
    // SAFETY: as above, for the image's memfd.
    let image_fd = unsafe { OwnedFd::from_raw_fd(image_fd) };
    serve(&spec, image_fd, ctl, None)
}

/// A worker's life once it has its control socket `ctl` and the image's
/// memfd: attach the image, start the interpreter (or take the zygote's,
/// `forked`), set `sys.path`, import the plugin, then answer lifecycle calls
/// until `cleanup` or until the socket closes. Exits the process.
pub(crate) fn serve(
    spec: &Spec,
    image_fd: OwnedFd,
    ctl: UnixStream,
    forked: Option<python::Interpreter>,
) -> Result<(), Error> {
    let writer = ctl.try_clone().map_err(|e| Error::Os(e.to_string()))?;
    *OUT.lock().unwrap_or_else(|e| e.into_inner()) = Sink::Stream(writer);
    forward_logs();
    image::on_stop_request(Box::new(|| send(b'S', b"")));

    let img = image::attach(image_fd, spec.buffer_size, image::worker_ring(spec.slot))
        .map_err(Error::Os)?;
    image::set_slot_name(spec.slot, &spec.plugin);
    let from_zygote = forked.is_some();
    let interp = match forked {
        Some(i) => i,
        None => python::start(spec.python_home.as_deref())?,
    };
    let plugin_dir = spec.path.parent().map(PathBuf::from).unwrap_or_default();
    interp
        .set_paths(&[plugin_dir], &spec.site_dirs, spec.system_site)
        .map_err(Error::Python)?;
    if from_zygote {
        // Preloading must not change which module the plugin gets: when its
        // sys.path would import a preloaded name from elsewhere, it starts
        // without the preload, as a re-executed worker would.
        match interp.preload_shadowed() {
            Ok(names) if names.is_empty() => {}
            Ok(names) => {
                log::info!(
                    "[{}] its sys.path provides its own {}: this worker forgets the zygote's preloaded modules",
                    spec.plugin,
                    names.join(", ")
                );
                interp.drop_preload().map_err(Error::Python)?;
            }
            Err(e) => {
                log::warn!(
                    "[{}] cannot compare its sys.path with the preload ({e}); this worker forgets the preloaded modules",
                    spec.plugin
                );
                interp.drop_preload().map_err(Error::Python)?;
            }
        }
    }
    let result = |func: &str, o: &CallOutcome| send(b'R', &encode_result(func, o));
    let module = match interp.load_plugin(&python::module_name(&spec.plugin), &spec.path) {
        Ok(m) => {
            let has_init = interp.has_function(&m, "init");
            // The import result says whether `init` exists (`missing` if not).
            let o = if has_init {
                CallOutcome::Ok
            } else {
                CallOutcome::Missing
            };
            result(IMPORT, &o);
            m
        }
        Err(tb) => {
            result(IMPORT, &CallOutcome::Raised(tb));
            interp.flush_stdio();
            std::process::exit(0);
        }
    };
    let args = img.runtime_args_for(
        spec.slot,
        spec.config_path.as_deref(),
        spec.state_dir.as_deref(),
        spec.period_ns,
    );
    let capsule = Capsule::new(args).map_err(Error::Python)?;
    let mut reader = ctl;
    // Set after the first start_loop: once the supervisor has been quiet for
    // LEARN_DELAY (the others are starting meanwhile), this worker reports
    // the stdlib modules it imported, for the next zygote.
    let mut learn_pending = false;
    let mut learned = false;
    loop {
        if learn_pending && !crate::sys::wait_readable(reader.as_raw_fd(), LEARN_DELAY) {
            learn_pending = false;
            send(b'M', interp.stdlib_loaded().join("\n").as_bytes());
        }
        let Ok(Some((kind, payload))) = read_frame(&mut reader) else {
            break;
        };
        if kind != b'C' {
            continue;
        }
        let name = String::from_utf8_lossy(&payload);
        let Some(func) = Call::from_name(&name) else {
            // Not a lifecycle function: nothing of the plugin is called.
            result(&name, &CallOutcome::Missing);
            continue;
        };
        if learn_pending && matches!(func, Call::StopLoop | Call::Cleanup) {
            // Stopped before the supervisor was ever quiet: report now.
            learn_pending = false;
            send(b'M', interp.stdlib_loaded().join("\n").as_bytes());
        }
        let outcome = interp.call(&module, func, (func == Call::Init).then_some(&capsule));
        result(func.name(), &outcome);
        if func == Call::StartLoop && !learned {
            learned = true;
            learn_pending = true;
        }
        if func == Call::Cleanup {
            break;
        }
    }
    interp.flush_stdio();
    // Plugin threads that were not joined must not keep the worker alive.
    let _ = std::io::stdout().flush();
    std::process::exit(0);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A zygote's fork request carries the spec as `worker` arguments: every
    /// field must come back as it went.
    #[test]
    fn a_spec_survives_its_arguments() {
        let spec = Spec {
            plugin: "modbus server".into(),
            slot: 7,
            path: PathBuf::from("/usr/lib/openplc/plugins/m/plugin.py"),
            config_path: Some(PathBuf::from("/etc/openplc/m.json")),
            site_dirs: vec![
                PathBuf::from("/v/lib/python3.13/site-packages"),
                PathBuf::from("/v/lib64"),
            ],
            system_site: true,
            buffer_size: 512,
            period_ns: 5_000_000,
            python_home: Some(PathBuf::from("/usr")),
            state_dir: Some(PathBuf::from("/var/lib/openplc/plugins/m")),
        };
        let (back, image, ctl) = parse_args(spec.to_args()).unwrap();
        assert_eq!((image, ctl), (None, None));
        assert_eq!(format!("{back:?}"), format!("{spec:?}"));
        let bare = Spec {
            config_path: None,
            site_dirs: Vec::new(),
            system_site: false,
            python_home: None,
            state_dir: None,
            ..spec
        };
        let (back, _, _) = parse_args(bare.to_args()).unwrap();
        assert_eq!(format!("{back:?}"), format!("{bare:?}"));
    }
}
