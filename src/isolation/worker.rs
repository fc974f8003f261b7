//! The supervisor's handle on a worker process: how it is started (a fork
//! of the zygote, or this binary re-executed), called, stopped and reaped.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::exit::{self, End};
use super::frames::{IMPORT, decode_result, log_frame, read_frame, write_frame};
use super::preload;
use super::spec::Spec;
use super::zygote::Zygote;
use crate::image::Image;
use crate::lifecycle::Call;
use crate::python::CallOutcome;

/// How long a worker may take to exit after `cleanup` or after its control
/// socket closed, before it is killed.
pub const EXIT_BUDGET: Duration = Duration::from_secs(1);
/// How often a caller waiting for a result looks whether the worker ended.
const RESULT_POLL: Duration = Duration::from_millis(50);

/// How long the status of a forked worker that ended is waited for (its
/// zygote reaps it and reports it at once, if slower under qemu-user; a
/// stopped zygote does not, and one that stopped answering is not asked).
const STATUS_WAIT: Duration = Duration::from_millis(500);

/// Whose child a worker is: the supervisor's (re-executed binary, reaped by
/// the exit watcher), or the zygote's, which reaps it and reports its exit
/// status.
enum Proc {
    Exec,
    Forked(Arc<Zygote>),
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
    /// Its end, as the exit watcher learns it (the one place that decides).
    end: Arc<End>,
    /// Signals go through it: they never hit a process that reused the pid.
    pidfd: Option<Arc<OwnedFd>>,
}

impl Worker {
    /// Starts a worker for `spec` on `image`. When the process ends (exited
    /// or died), its pid is sent on `exited`. Call from the
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
        // The exit watcher reaps it (waitpid), not `Child`.
        drop(child);
        Worker::with_channel(pid, Proc::Exec, ours, &spec.plugin, exited)
    }

    /// Starts workers for `specs` as forks of `zygote` (which maps the same
    /// image), all requested before the first is waited for. One result per
    /// spec, in order; as [`Worker::spawn`] otherwise.
    pub fn fork_many(
        specs: &[&Spec],
        zygote: &Arc<Zygote>,
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
    /// `ours`: a thread reads its frames (log records, results, stop
    /// requests); the exit watcher sends `pid` on `exited` when the process
    /// ends (not when the socket closes: a child of the plugin may hold it).
    fn with_channel(
        pid: u32,
        proc_: Proc,
        ours: UnixStream,
        plugin: &str,
        exited: mpsc::Sender<u32>,
    ) -> std::io::Result<Worker> {
        let (end, pidfd) = exit::watch(pid, plugin, matches!(proc_, Proc::Exec), exited)?;
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
                        Ok(Some((b'M', p))) => preload::learn(&name, &p),
                        Ok(Some((k, _))) => {
                            log::warn!("[{name}] worker sent an unknown frame {k:?}");
                        }
                        Ok(None) | Err(_) => break,
                    }
                }
                // Waiters for a result learn the end from `end`.
                crate::signals::wake();
            })?;
        Ok(Worker {
            pid,
            started: Instant::now(),
            proc_,
            ctl: Mutex::new(ours),
            results: Mutex::new(rx),
            exit_expected: AtomicBool::new(false),
            end,
            pidfd,
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
        let died = || {
            CallOutcome::Raised(format!(
                "the worker process (pid {}) died during {func}()",
                self.pid
            ))
        };
        // When the process ended: the socket normally closes with it (the
        // watcher ends its process group); a result it sent just before
        // still counts, for RESULT_POLL * 4 after the end was seen.
        let mut ended_polls = 0;
        loop {
            if self.end.ended() {
                ended_polls += 1;
                if ended_polls > 4 {
                    return died();
                }
            }
            match rx.recv_timeout(RESULT_POLL) {
                Ok((f, outcome)) if f == func => return outcome,
                Ok(_) => continue,
                Err(mpsc::RecvTimeoutError::Disconnected) => return died(),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
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

    /// SIGKILL, through its pidfd (or, on kernels without pidfds, directly
    /// for the supervisor's own child and through the zygote for a forked
    /// one, which knows whether the pid is still its child).
    pub fn kill(&self) {
        if self.end.ended() {
            return;
        }
        if let Some(fd) = &self.pidfd
            && crate::sys::pidfd_kill(fd.as_raw_fd(), libc::SIGKILL).is_ok()
        {
            return;
        }
        // No pidfd, or no pidfd_send_signal (qemu-user may lack it).
        match &self.proc_ {
            Proc::Exec => crate::sys::kill(self.pid, libc::SIGKILL),
            Proc::Forked(z) => z.kill(self.pid),
        }
    }

    /// Whether the process has ended (as the exit watcher saw it).
    pub fn ended(&self) -> bool {
        self.end.ended()
    }

    /// How the process ended, once it did: reaped by the exit watcher, or
    /// reported by its zygote (waited for at most [`STATUS_WAIT`]).
    pub fn status(&self) -> Option<ExitStatus> {
        let raw = match &self.proc_ {
            Proc::Exec => self.end.status(),
            Proc::Forked(z) => {
                let wait = if z.usable() {
                    STATUS_WAIT
                } else {
                    Duration::ZERO
                };
                z.wait_exit(self.pid, wait)
            }
        };
        raw.map(ExitStatus::from_raw)
    }

    /// Closes the control socket: the worker then exits.
    pub fn close(&self) {
        let _ = self
            .ctl
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .shutdown(std::net::Shutdown::Both);
    }

    /// Waits at most `budget` for the worker to end, then kills it (and
    /// waits for that as long again): how it ended.
    pub fn reap(&self, budget: Duration) -> Option<ExitStatus> {
        if !self.end.wait(budget) {
            self.kill();
            self.end.wait(EXIT_BUDGET);
        }
        self.status()
    }

    /// Closes the control socket (the worker then exits) and reaps it.
    pub fn finish(&self) -> Option<ExitStatus> {
        self.close();
        self.reap(EXIT_BUDGET)
    }
}
