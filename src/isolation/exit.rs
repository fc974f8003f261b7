//! How a worker's end is learned, and told: the one place that decides a
//! worker process is gone.
//!
//! Every worker is watched from the moment it is started by one thread,
//! `w-exits`, through a pidfd (Linux 5.3+; on older kernels by looking at
//! `/proc` every [`POLL_FALLBACK`]): readable as soon as the process has
//! ended, whatever its control socket says (a child the plugin forked, or a
//! program it started, may hold that open for long after). When a worker
//! ends, that thread
//! 1. ends what the plugin left in the worker's process group (logged with
//!    the pids: a `multiprocessing` child, a `sleep 15 &`),
//! 2. reaps the worker when it is the supervisor's own child (`--worker-start
//!    exec`; a forked worker is reaped by its zygote, which reports the
//!    status),
//! 3. marks its [`End`] and sends its pid on the supervisor's channel.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::{Arc, Condvar, Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

use crate::sys;

/// How often a worker without a pidfd (an old kernel) is looked at.
pub const POLL_FALLBACK: Duration = Duration::from_millis(50);

/// A worker's end, once the watcher saw it: its wait status when the
/// supervisor reaped it itself.
#[derive(Default)]
pub struct End {
    state: Mutex<Option<Option<i32>>>,
    cv: Condvar,
}

impl End {
    fn set(&self, status: Option<i32>) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = Some(status);
        self.cv.notify_all();
    }

    /// Whether the process has ended.
    pub fn ended(&self) -> bool {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    /// Waits at most `budget` for the end; whether it came.
    pub fn wait(&self, budget: Duration) -> bool {
        let end = Instant::now() + budget;
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        while st.is_none() {
            let now = Instant::now();
            if now >= end {
                return false;
            }
            st = self
                .cv
                .wait_timeout(st, end - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }

    /// The raw wait status, when the supervisor reaped the worker itself.
    pub fn status(&self) -> Option<i32> {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .flatten()
    }
}

/// One watched worker.
struct Watched {
    pid: u32,
    plugin: String,
    pidfd: Option<Arc<OwnedFd>>,
    /// The supervisor's own child: reaped here.
    reap: bool,
    end: Arc<End>,
    exited: mpsc::Sender<u32>,
}

/// The watcher thread's inbox, and the pipe that wakes it.
struct Watcher {
    tx: Mutex<mpsc::Sender<Watched>>,
    wake: OwnedFd,
}

static WATCHER: OnceLock<std::io::Result<Watcher>> = OnceLock::new();

/// Starts watching worker `pid` of `plugin`: when it ends, its pid is sent on
/// `exited` (and the supervisor woken). `reap`: it is this process's child.
/// Returns its [`End`] and its pidfd (for signals that cannot hit a reused
/// pid), when the kernel has pidfds.
pub fn watch(
    pid: u32,
    plugin: &str,
    reap: bool,
    exited: mpsc::Sender<u32>,
) -> std::io::Result<(Arc<End>, Option<Arc<OwnedFd>>)> {
    let w = WATCHER
        .get_or_init(start_watcher)
        .as_ref()
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot watch workers: {e}")))?;
    let pidfd = match sys::pidfd_open(pid) {
        Ok(fd) => Some(Arc::new(fd)),
        // Already gone (a forked worker its zygote reaped): the fallback's
        // look at /proc says so at once.
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => None,
        Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => None,
        Err(e) => return Err(e),
    };
    let end = Arc::new(End::default());
    let watched = Watched {
        pid,
        plugin: plugin.to_string(),
        pidfd: pidfd.clone(),
        reap,
        end: Arc::clone(&end),
        exited,
    };
    w.tx.lock()
        .unwrap_or_else(|e| e.into_inner())
        .send(watched)
        .map_err(|_| std::io::Error::other("the worker watcher thread is gone"))?;
    sys::poke(w.wake.as_raw_fd());
    Ok((end, pidfd))
}

fn start_watcher() -> std::io::Result<Watcher> {
    let (rd, wr) = sys::pipe()?;
    let (tx, rx) = mpsc::channel::<Watched>();
    std::thread::Builder::new()
        .name("w-exits".into())
        .spawn(move || watch_loop(&rd, &rx))?;
    Ok(Watcher {
        tx: Mutex::new(tx),
        wake: wr,
    })
}

fn watch_loop(wake: &OwnedFd, rx: &mpsc::Receiver<Watched>) {
    let mut live: Vec<Watched> = Vec::new();
    loop {
        let mut fds = vec![wake.as_raw_fd()];
        fds.extend(
            live.iter()
                .filter_map(|w| w.pidfd.as_ref().map(|f| f.as_raw_fd())),
        );
        let timeout = if live.iter().any(|w| w.pidfd.is_none()) {
            POLL_FALLBACK
        } else {
            Duration::from_secs(3600)
        };
        let ready = sys::poll_which(&fds, timeout);
        sys::drain(wake.as_raw_fd());
        while let Ok(w) = rx.try_recv() {
            live.push(w);
        }
        let mut ready = ready.into_iter().skip(1);
        let mut ended = Vec::new();
        for (i, w) in live.iter().enumerate() {
            let gone = match &w.pidfd {
                Some(_) => ready.next().unwrap_or(false),
                None => sys::has_ended(w.pid),
            };
            if gone {
                ended.push(i);
            }
        }
        for i in ended.into_iter().rev() {
            on_end(live.swap_remove(i));
        }
    }
}

/// Worker `w` ended: what it left in its process group is ended, it is
/// reaped when it is our child, and the supervisor is told.
fn on_end(w: Watched) {
    // The worker leads its own process group (its pid is the group's id); a
    // zombie or any member left keeps that id from being reused.
    let left = sys::process_group_members(w.pid);
    sys::kill_group(w.pid);
    if !left.is_empty() {
        log::warn!(
            "[{}] worker process {} ended; {} process(es) its plugin left in its process group are ended too: {}",
            w.plugin,
            w.pid,
            left.len(),
            left.iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let status = if w.reap { sys::reap_child(w.pid) } else { None };
    w.end.set(status);
    let _ = w.exited.send(w.pid);
    crate::signals::wake();
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
