//! The zygote of `--isolation process`: one process that starts the embedded
//! interpreter once (isolated configuration, the stdlib only, nothing of any
//! venv), imports the stdlib modules plugins commonly need, freezes the
//! collector's view of them (`gc.freeze()`), and then forks one worker per
//! plugin (and per restart). A forked worker shares the zygote's pages until
//! it writes them, and skips the interpreter's start and those imports; it
//! then sets its own `sys.path` from its venv and imports its plugin exactly
//! as a re-executed worker does (see `worker_process::serve`).
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
//! | `N` | zygote → supervisor | the stdlib's top-level module names, one per line (sent before `Y`) |
//! | `Y` | zygote → supervisor | ready (text: what was preloaded) |
//! | `P` | zygote → supervisor | forked: pid (u32 LE) |
//! | `E` | zygote → supervisor | the fork failed: why |
//! | `X` | zygote → supervisor | a child was reaped: pid (u32 LE), wait status (i32 LE) |
//! | `L` | zygote → supervisor | level digit + log message |
//!
//! Process tree: the workers are the zygote's children. The zygote dies with
//! the supervisor (PR_SET_PDEATHSIG) and its workers die with it, so `kill
//! -9` of the supervisor still leaves nothing behind. The supervisor never
//! ends a zygote that still has workers: one that does not answer a fork
//! request in time (stopped, starved) is only no longer asked; forks go to a
//! new zygote, and the old one is ended once its last worker is gone. The
//! zygote runs no plugin code; should it die anyway, its workers die, are
//! restarted as crashed workers are, and the next fork starts a new zygote.
//! A worker's end is learned from the process itself (see `exit`), not from
//! the zygote's `X` report, which gives only its status.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::time::{Duration, Instant};

use super::exit::describe_exit;
use super::frames::log_frame;
use super::spec::Spec;
use crate::image::Image;
use crate::sys;

/// How long the zygote may take to start and preload, before the first fork
/// gives up on it (workers are then started by re-executing the binary).
/// The supervisor waits for it (and for forks) serving signals and the
/// watchdog meanwhile.
pub const READY_BUDGET: Duration = Duration::from_secs(5);
/// How long a batch of fork requests may take to be answered.
pub const FORK_BUDGET: Duration = Duration::from_secs(5);

/// How long the zygote may take to exit once its channel closed (it only
/// polls that channel), before it is killed.
const ZYGOTE_EXIT_BUDGET: Duration = Duration::from_millis(500);

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
    /// Cleared when it did not answer a fork request in time: no more forks
    /// go to it, but its workers live on (it is ended once they are gone).
    usable: AtomicBool,
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
            usable: AtomicBool::new(true),
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
                b'L' => log_frame("zygote: ", body),
                b'N' => super::preload::set_stdlib(body),
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

    /// Whether forks may still go to it (it answered every request in time).
    pub fn usable(&self) -> bool {
        self.usable.load(Ordering::SeqCst) && self.alive()
    }

    /// No more forks go to it; its workers are left alone (ending it would
    /// end them: their parent-death signal).
    pub fn abandon(&self) {
        self.usable.store(false, Ordering::SeqCst);
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
        if !self.usable() {
            return (0..n)
                .map(|_| {
                    Err(fail(format!(
                        "the zygote (pid {}) is not answering",
                        self.pid
                    )))
                })
                .collect();
        }
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
        let deadline = Instant::now() + FORK_BUDGET;
        for slot in out.iter_mut().filter(|r| matches!(r, Ok(0))) {
            if let Some(why) = &broken {
                *slot = Err(fail(why.clone()));
                continue;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            *slot = match self.reply(left) {
                Ok(Reply::Forked(pid)) => Ok(pid),
                Ok(Reply::Failed(why)) => Err(fail(format!("the zygote could not fork: {why}"))),
                Ok(Reply::Ready(_)) => Err(fail("the zygote answered out of turn".into())),
                Err(e) => {
                    // Slow, stopped or gone: not ended here, so that the
                    // workers it forked before live on.
                    self.abandon();
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
        let end = Instant::now() + ZYGOTE_EXIT_BUDGET;
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
        describe_exit(status)
    }
}
