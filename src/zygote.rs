//! The zygote of `--isolation process`: one process that starts the embedded
//! interpreter once (isolated configuration, the stdlib only, nothing of any
//! venv), imports the stdlib modules plugins commonly need, freezes the
//! collector's view of them (`gc.freeze()`), and then forks one worker per
//! plugin (and per restart). A forked worker shares the zygote's pages until
//! it writes them, and skips the interpreter's start and those imports; it
//! then sets its own `sys.path` from its venv and imports its plugin exactly
//! as a re-executed worker does (see `worker::serve`).
//!
//! Which module a plugin gets does not change: a worker whose `sys.path`
//! (its plugin directory, its venv's `.pth` files and finders) would import a
//! preloaded top-level name from anywhere else forgets every preloaded module
//! before importing its plugin.
//!
//! What is preloaded: the stdlib modules workers of earlier runs imported
//! themselves (beyond what their zygote had loaded), kept in
//! `<state>/`[`LEARNED_FILE`]: names only, and the zygote imports only
//! stdlib names. Nothing on the very first run; the list only grows (a plugin
//! removed leaves its modules in it; delete the file to start afresh).
//!
//! The channel is a `SOCK_SEQPACKET` pair, one message per packet, its first
//! byte the kind:
//!
//! | kind | direction | payload |
//! |---|---|---|
//! | `F` | supervisor → zygote | the `worker` arguments, NUL-separated; the worker's control socket attached |
//! | `K` | supervisor → zygote | pid (u32 LE): SIGKILL that child if it has not been reaped |
//! | `Y` | zygote → supervisor | ready (text: what was preloaded) |
//! | `P` | zygote → supervisor | forked: pid (u32 LE) |
//! | `E` | zygote → supervisor | the fork failed: why |
//! | `X` | zygote → supervisor | a child was reaped: pid (u32 LE), wait status (i32 LE) |
//! | `L` | zygote → supervisor | level digit + log message |
//!
//! Process tree: the workers are the zygote's children. The zygote dies with
//! the supervisor (PR_SET_PDEATHSIG) and its workers die with it, so `kill
//! -9` of the supervisor still leaves nothing behind. The zygote runs no
//! plugin code; should it die anyway, its workers die, are restarted as
//! crashed workers are, and the next fork starts a new zygote.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::ffi::OsString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::image::Image;
use crate::python;
use crate::sys;
use crate::worker::{self, Spec};

/// The file in the state directory that lists the stdlib modules the
/// workers of the last run imported (one name per line).
pub const LEARNED_FILE: &str = "zygote-preload.txt";
/// At most this many names are read from it.
const MAX_LEARNED: usize = 2000;
/// How long the zygote may take to start and preload, before the first fork
/// gives up on it (workers are then started by re-executing the binary).
/// Half the unit's WatchdogSec: a replacement zygote is waited for on the
/// supervisor's main thread, which then sends no watchdog ping.
pub const READY_BUDGET: Duration = Duration::from_secs(5);
/// How long a fork request may take to be answered.
const FORK_BUDGET: Duration = Duration::from_secs(5);

/// A reply of the zygote to the supervisor.
enum Reply {
    Ready(String),
    Forked(u32),
    Failed(String),
}

/// The supervisor's handle on its zygote.
pub struct Zygote {
    pub pid: u32,
    child: Mutex<Child>,
    ctl: OwnedFd,
    /// One fork request (and its reply) at a time; `Some` once ready.
    requests: Mutex<Option<String>>,
    replies: Mutex<mpsc::Receiver<Reply>>,
    /// Exit statuses of reaped workers, by pid, until their handle asks.
    exits: Mutex<HashMap<u32, i32>>,
    exit_cv: Condvar,
    alive: AtomicBool,
}

impl Zygote {
    /// Starts the zygote on `image` (it returns at once: the zygote starts
    /// its interpreter and preloads `preload` meanwhile; the first `fork`
    /// waits for that).
    pub fn start(
        image: &Image,
        python_home: Option<&Path>,
        preload: &[String],
    ) -> std::io::Result<Arc<Zygote>> {
        let (ours, theirs) = sys::seqpacket_pair()?;
        let image_fd = image.fd().as_raw_fd();
        let mut cmd = Command::new(std::env::current_exe()?);
        cmd.arg("zygote")
            .arg("--image-fd")
            .arg(image_fd.to_string())
            .arg("--control-fd")
            .arg(theirs.as_raw_fd().to_string())
            .arg("--preload")
            .arg(preload.join(","));
        if let Some(h) = python_home {
            cmd.arg("--python-home").arg(h);
        }
        // Only the supervisor talks to systemd (NotifyAccess=main).
        cmd.env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID")
            .env_remove(crate::plugin_state::ENV_VAR)
            .stdin(Stdio::null());
        let child = sys::spawn_worker(&mut cmd, &[image_fd, theirs.as_raw_fd()])?;
        drop(theirs);
        let (tx, rx) = mpsc::channel();
        let z = Arc::new(Zygote {
            pid: child.id(),
            child: Mutex::new(child),
            ctl: ours,
            requests: Mutex::new(None),
            replies: Mutex::new(rx),
            exits: Mutex::new(HashMap::new()),
            exit_cv: Condvar::new(),
            alive: AtomicBool::new(true),
        });
        let reader = Arc::clone(&z);
        std::thread::Builder::new()
            .name("zygote".into())
            .spawn(move || reader.read_loop(tx))?;
        Ok(z)
    }

    /// The supervisor's reader of the zygote's channel.
    fn read_loop(&self, replies: mpsc::Sender<Reply>) {
        let fd = self.ctl.as_raw_fd();
        while let Ok(Some((p, _))) = sys::recv_packet(fd) {
            let (Some(&kind), body) = (p.first(), p.get(1..).unwrap_or_default()) else {
                continue;
            };
            let u32_at = |at: usize| {
                body.get(at..at + 4)
                    .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            };
            match kind {
                b'L' => worker::log_frame("zygote: ", body),
                b'Y' => {
                    let _ = replies.send(Reply::Ready(String::from_utf8_lossy(body).into()));
                }
                b'P' => {
                    if let Some(pid) = u32_at(0) {
                        let _ = replies.send(Reply::Forked(pid));
                    }
                }
                b'E' => {
                    let _ = replies.send(Reply::Failed(String::from_utf8_lossy(body).into()));
                }
                b'X' => {
                    if let (Some(pid), Some(st)) = (u32_at(0), u32_at(4)) {
                        self.exits
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(pid, st as i32);
                        self.exit_cv.notify_all();
                    }
                }
                k => log::warn!("zygote sent an unknown message {k:?}"),
            }
        }
        self.alive.store(false, Ordering::SeqCst);
        self.exit_cv.notify_all();
        crate::signals::wake();
    }

    /// Whether the zygote process is still there.
    pub fn alive(&self) -> bool {
        self.alive.load(Ordering::SeqCst)
    }

    fn reply(&self, budget: Duration) -> Result<Reply, String> {
        let rx = self.replies.lock().unwrap_or_else(|e| e.into_inner());
        match rx.recv_timeout(budget) {
            Ok(r) => Ok(r),
            Err(mpsc::RecvTimeoutError::Timeout) => Err(format!(
                "the zygote (pid {}) did not answer within {} ms",
                self.pid,
                budget.as_millis()
            )),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(format!(
                "the zygote (pid {}) is gone: {}",
                self.pid,
                self.finish()
            )),
        }
    }

    /// Forks one worker per request, sending every request before waiting
    /// for the first answer (the zygote forks them back to back while the
    /// first ones already import). One result per request, in order.
    pub fn fork_many(&self, reqs: Vec<(&Spec, OwnedFd)>) -> Vec<std::io::Result<u32>> {
        let fail = |m: String| std::io::Error::other(m);
        let n = reqs.len();
        let mut out: Vec<std::io::Result<u32>> = Vec::with_capacity(n);
        let mut ready = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        if ready.is_none() {
            let why = match self.reply(READY_BUDGET) {
                Ok(Reply::Ready(what)) => {
                    log::debug!("zygote (pid {}) ready: {what}", self.pid);
                    *ready = Some(what);
                    None
                }
                Ok(Reply::Failed(why)) => Some(why),
                Ok(Reply::Forked(_)) => Some("the zygote answered out of turn".into()),
                Err(e) => Some(e),
            };
            if let Some(why) = why {
                self.finish();
                return (0..n).map(|_| Err(fail(why.clone()))).collect();
            }
        }
        let mut sent = 0;
        for (spec, ctl) in reqs {
            let mut msg = vec![b'F'];
            for (i, a) in spec.to_args().iter().enumerate() {
                if i > 0 {
                    msg.push(0);
                }
                msg.extend_from_slice(a.as_bytes());
            }
            if msg.len() > sys::MAX_PACKET {
                out.push(Err(fail(format!(
                    "the worker's arguments ({} bytes) do not fit in one request",
                    msg.len()
                ))));
                continue;
            }
            match sys::send_packet(self.ctl.as_raw_fd(), &msg, Some(ctl.as_raw_fd())) {
                Ok(()) => {
                    sent += 1;
                    // A placeholder for the answer, filled in below.
                    out.push(Ok(0));
                }
                Err(e) => out.push(Err(e)),
            }
        }
        let mut broken: Option<String> = None;
        for slot in out.iter_mut().filter(|r| matches!(r, Ok(0))) {
            if let Some(why) = &broken {
                *slot = Err(fail(why.clone()));
                continue;
            }
            *slot = match self.reply(FORK_BUDGET) {
                Ok(Reply::Forked(pid)) => Ok(pid),
                Ok(Reply::Failed(why)) => Err(fail(format!("the zygote could not fork: {why}"))),
                Ok(Reply::Ready(_)) => Err(fail("the zygote answered out of turn".into())),
                Err(e) => {
                    self.finish();
                    broken = Some(e.clone());
                    Err(fail(e))
                }
            };
        }
        debug_assert!(sent <= n);
        out
    }

    /// Has the zygote import `names` too (what workers reported during this
    /// run), so that the next forks (restarts, reloads) start with them.
    pub fn preload_more(&self, names: &[String]) {
        let mut msg = vec![b'M'];
        for n in names {
            if msg.len() + n.len() + 1 > sys::MAX_PACKET {
                break;
            }
            if msg.len() > 1 {
                msg.push(b'\n');
            }
            msg.extend_from_slice(n.as_bytes());
        }
        let _ = sys::send_packet(self.ctl.as_raw_fd(), &msg, None);
    }

    /// SIGKILL for child `pid` of the zygote (the zygote checks that it has
    /// not reaped it, so a reused pid is never hit).
    pub fn kill(&self, pid: u32) {
        let mut msg = vec![b'K'];
        msg.extend_from_slice(&pid.to_le_bytes());
        let _ = sys::send_packet(self.ctl.as_raw_fd(), &msg, None);
    }

    /// Waits at most `budget` for the exit status of child `pid`; `None` if it
    /// did not come (or the zygote is gone, and with it the status).
    pub fn wait_exit(&self, pid: u32, budget: Duration) -> Option<i32> {
        let end = Instant::now() + budget;
        let mut exits = self.exits.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(st) = exits.remove(&pid) {
                return Some(st);
            }
            let now = Instant::now();
            if now >= end || !self.alive() {
                return None;
            }
            exits = self
                .exit_cv
                .wait_timeout(exits, end - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Ends the zygote: closes its channel (it exits), waits a second, kills
    /// it otherwise. Its workers, if any are left, die with it. Returns how it
    /// ended.
    pub fn finish(&self) -> String {
        // SAFETY: shutting down a socket we own; no memory is involved.
        unsafe { libc::shutdown(self.ctl.as_raw_fd(), libc::SHUT_RDWR) };
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        let end = Instant::now() + worker::EXIT_BUDGET;
        let status = loop {
            if let Ok(Some(st)) = child.try_wait() {
                break Some(st);
            }
            if Instant::now() >= end {
                let _ = child.kill();
                break child.wait().ok();
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        self.alive.store(false, Ordering::SeqCst);
        self.exit_cv.notify_all();
        worker::describe_exit(status)
    }
}

// --- what the workers imported ------------------------------------------------

/// The learned stdlib modules (the file's, and what the workers of this run
/// reported), and since when that set has changes not yet saved.
static LEARNED: Mutex<(BTreeSet<String>, Option<Instant>)> = Mutex::new((BTreeSet::new(), None));

/// Names learned in this run and not yet sent to the zygote.
static PENDING: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Whether `name` looks like a dotted module name (what the learned file may
/// hold; anything else in it is ignored).
fn is_module_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && name.split('.').all(|part| {
            let mut c = part.chars();
            c.next()
                .is_some_and(|f| f == '_' || f.is_ascii_alphabetic())
                && c.all(|x| x == '_' || x.is_ascii_alphanumeric())
        })
}

/// A worker's `M` frame: the stdlib modules it imported.
pub fn learn(payload: &[u8]) {
    let text = String::from_utf8_lossy(payload);
    let mut learned = LEARNED.lock().unwrap_or_else(|e| e.into_inner());
    let mut changed = false;
    for name in text.lines().filter(|n| is_module_name(n)) {
        if learned.0.len() >= MAX_LEARNED {
            break;
        }
        if learned.0.insert(name.to_string()) {
            changed = true;
            PENDING
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(name.to_string());
        }
    }
    if changed && learned.1.is_none() {
        learned.1 = Some(Instant::now());
    }
}

/// The names workers reported since the last call (for the running zygote).
pub fn take_pending() -> Vec<String> {
    std::mem::take(&mut *PENDING.lock().unwrap_or_else(|e| e.into_inner()))
}

/// Everything learned so far (the file's names and this run's).
pub fn learned_names() -> Vec<String> {
    let learned = LEARNED.lock().unwrap_or_else(|e| e.into_inner());
    learned.0.iter().cloned().collect()
}

/// What to preload: the names in `<state>/LEARNED_FILE` (missing or
/// unreadable: none). They are also the start of this run's learned set.
pub fn preload_list(state: Option<&Path>) -> Vec<String> {
    let mut names = BTreeSet::new();
    if let Some(text) = state.and_then(|s| std::fs::read_to_string(s.join(LEARNED_FILE)).ok()) {
        names.extend(
            text.lines()
                .map(str::trim)
                .filter(|n| is_module_name(n))
                .take(MAX_LEARNED)
                .map(String::from),
        );
    }
    let mut learned = LEARNED.lock().unwrap_or_else(|e| e.into_inner());
    learned.0.extend(names.iter().cloned());
    names.into_iter().collect()
}

/// Writes this run's learned names to `<state>/LEARNED_FILE` (atomically)
/// when they changed at least `settle` ago. A failure is logged once per
/// change, at debug level: the preload is an optimisation.
pub fn save_learned(state: &Path, settle: Duration) {
    let names = {
        let mut learned = LEARNED.lock().unwrap_or_else(|e| e.into_inner());
        match learned.1 {
            Some(t) if t.elapsed() >= settle => {
                learned.1 = None;
                learned.0.iter().cloned().collect::<Vec<_>>()
            }
            _ => return,
        }
    };
    let path = state.join(LEARNED_FILE);
    let tmp = state.join(format!(".{LEARNED_FILE}.tmp"));
    let mut text = String::from(
        "# Stdlib modules plugins' workers imported; the zygote preloads them. Delete to forget.\n",
    );
    for n in &names {
        text.push_str(n);
        text.push('\n');
    }
    let r = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, &path));
    match r {
        Ok(()) => log::debug!("{}: {} module name(s) saved", path.display(), names.len()),
        Err(e) => log::debug!("{}: not saved: {e}", path.display()),
    }
}

// --- the zygote process ----------------------------------------------------------

/// `openplc-runtime zygote ...`: started by the supervisor.
pub fn zygote_main(args: Vec<OsString>) -> Result<(), Error> {
    let bad = |m: String| {
        Error::Usage(format!(
            "zygote: {m} (this command is started by the runtime itself)"
        ))
    };
    let (mut image_fd, mut ctl_fd, mut home, mut preload) = (-1, -1, None, Vec::new());
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        let v = it
            .next()
            .ok_or_else(|| bad(format!("{} needs a value", a.to_string_lossy())))?;
        let num = |v: &OsString| v.to_string_lossy().parse::<RawFd>().unwrap_or(-1);
        match a.to_string_lossy().as_ref() {
            "--image-fd" => image_fd = num(&v),
            "--control-fd" => ctl_fd = num(&v),
            "--python-home" => home = Some(PathBuf::from(v)),
            "--preload" => {
                preload = v
                    .to_string_lossy()
                    .split(',')
                    .filter(|n| is_module_name(n))
                    .map(String::from)
                    .collect()
            }
            other => return Err(bad(format!("unknown argument {other}"))),
        }
    }
    if image_fd < 3 || ctl_fd < 3 {
        return Err(bad("missing --image-fd or --control-fd".into()));
    }
    worker::send_to_packets(ctl_fd);
    worker::forward_logs();
    let say = |kind: u8, body: &[u8]| {
        let mut m = vec![kind];
        m.extend_from_slice(body);
        let _ = sys::send_packet(ctl_fd, &m, None);
    };
    let sigfd = match sys::sigchld_fd() {
        Ok(fd) => fd,
        Err(e) => {
            say(b'E', format!("cannot watch its children: {e}").as_bytes());
            return Err(Error::Os(format!("zygote: signalfd: {e}")));
        }
    };
    let t0 = Instant::now();
    let interp = match python::start(home.as_deref()) {
        Ok(i) => i,
        Err(e) => {
            say(b'E', e.to_string().as_bytes());
            return Err(e);
        }
    };
    let started = t0.elapsed();
    match interp.preload(&preload) {
        Ok((n, failed)) => {
            for f in &failed {
                log::debug!("preloading {f} failed; skipped");
            }
            say(
                b'Y',
                format!(
                    "interpreter started in {} ms, {n} modules preloaded in {} ms ({} names asked)",
                    started.as_millis(),
                    (t0.elapsed() - started).as_millis(),
                    preload.len()
                )
                .as_bytes(),
            );
        }
        Err(e) => {
            say(b'E', e.as_bytes());
            return Err(Error::Python(e));
        }
    }
    let me = std::process::id();
    // Children forked and not reaped yet: only those may be killed.
    let mut live: HashSet<u32> = HashSet::new();
    loop {
        sys::poll_readable(&[ctl_fd, sigfd.as_raw_fd()], Duration::from_secs(3600));
        sys::drain_signalfd(sigfd.as_raw_fd());
        for (pid, status) in sys::reap_children() {
            live.remove(&pid);
            let mut m = pid.to_le_bytes().to_vec();
            m.extend_from_slice(&status.to_le_bytes());
            say(b'X', &m);
        }
        let Some((p, fd)) = (match recv_ready(ctl_fd) {
            Ok(Some(Some(msg))) => Some(msg),
            Ok(Some(None)) => None,
            Ok(None) | Err(_) => break,
        }) else {
            continue;
        };
        match (p.first(), fd) {
            (Some(b'K'), _) => {
                if let Some(b) = p.get(1..5) {
                    let pid = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                    if live.contains(&pid) {
                        sys::kill(pid, libc::SIGKILL);
                    }
                }
            }
            (Some(b'F'), Some(ctl)) => {
                let args: Vec<OsString> = p[1..]
                    .split(|b| *b == 0)
                    .map(|a| OsString::from_vec(a.to_vec()))
                    .collect();
                let spec = match worker::parse_args(args) {
                    Ok((spec, _, _)) => spec,
                    Err(e) => {
                        say(b'E', e.to_string().as_bytes());
                        continue;
                    }
                };
                match interp.fork(spec.state_dir.as_deref()) {
                    Ok(0) => child(
                        interp,
                        &spec,
                        ctl,
                        [ctl_fd, sigfd.as_raw_fd()],
                        image_fd,
                        me,
                    ),
                    Ok(pid) => {
                        drop(ctl);
                        live.insert(pid);
                        say(b'P', &pid.to_le_bytes());
                    }
                    Err(e) => say(b'E', e.as_bytes()),
                }
            }
            (Some(b'F'), None) => say(b'E', b"a fork request without its control socket"),
            (Some(b'M'), _) => {
                let names: Vec<String> = String::from_utf8_lossy(&p[1..])
                    .lines()
                    .filter(|n| is_module_name(n))
                    .map(String::from)
                    .collect();
                let t = Instant::now();
                match interp.preload(&names) {
                    Ok((n, _)) => log::debug!(
                        "{n} more modules preloaded in {} ms ({} names reported by workers)",
                        t.elapsed().as_millis(),
                        names.len()
                    ),
                    Err(e) => log::warn!("preloading what workers reported failed: {e}"),
                }
            }
            (k, _) => log::warn!("unknown request {k:?}"),
        }
    }
    // The supervisor closed the channel: it is done with us. Workers still
    // running (there should be none) die with us (their parent-death signal).
    std::process::exit(0);
}

/// One packet if the channel has one now: `Ok(None)` when the supervisor
/// closed it, `Ok(Some(None))` when nothing is waiting.
#[allow(clippy::type_complexity)]
fn recv_ready(fd: RawFd) -> std::io::Result<Option<Option<(Vec<u8>, Option<OwnedFd>)>>> {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd; a zero timeout never blocks.
    let n = unsafe { libc::poll(&mut pfd, 1, 0) };
    if n <= 0 {
        return Ok(Some(None));
    }
    if pfd.revents & libc::POLLIN == 0 {
        // POLLHUP/POLLERR without data: the supervisor is gone.
        return Ok(None);
    }
    Ok(sys::recv_packet(fd)?.map(Some))
}

/// The forked child: drops the zygote's descriptors, becomes a worker.
fn child(
    interp: python::Interpreter,
    spec: &Spec,
    ctl: OwnedFd,
    zygote_fds: [RawFd; 2],
    image_fd: RawFd,
    zygote: u32,
) -> ! {
    sys::forked_child_setup(zygote);
    for fd in zygote_fds {
        sys::close_fd(fd);
    }
    // `ps` and `systemctl status` name the plugin, as for a re-executed one.
    sys::set_cmdline_args(&["worker", "--plugin-name", &spec.plugin]);
    // SAFETY: the image's memfd was inherited by the zygote and by this fork;
    // nothing else in this process owns it.
    let image = unsafe { OwnedFd::from_raw_fd(image_fd) };
    let r = worker::serve(spec, image, UnixStream::from(ctl), Some(interp));
    if let Err(e) = r {
        log::error!("[{}] worker: {e}", spec.plugin);
    }
    std::process::exit(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_names_are_dotted_identifiers_only() {
        for ok in ["json", "email.mime.text", "_struct", "a1._b2"] {
            assert!(is_module_name(ok), "{ok}");
        }
        for bad in ["", "../os", "a..b", ".a", "a.", "1abc", "a b", "a-b", "é"] {
            assert!(!is_module_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn the_learned_file_gives_names_and_ignores_the_rest() {
        let dir = std::env::temp_dir().join(format!("openplc-zygote-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join(LEARNED_FILE),
            "# comment\njson\n  email.mime.text  \n../../etc/passwd\nimport os\n\nre\n",
        )
        .unwrap();
        assert_eq!(preload_list(Some(&dir)), ["email.mime.text", "json", "re"]);
        assert!(preload_list(Some(&dir.join("missing"))).is_empty());
        assert!(preload_list(None).is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
