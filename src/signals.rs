//! Signals and other reasons for the supervisor to wake up.
//!
//! The runtime owns the process's signals (the embedded interpreter installs no
//! handlers). signal-hook's handlers only set a flag and write one byte into a
//! self-pipe; the supervisor sleeps in `poll()` on that pipe, so it wakes at once
//! for SIGTERM/SIGINT/SIGHUP and for a plugin's `request_plc_stop`, and otherwise
//! on its own timer (status, watchdog).

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

/// Write end of the wake pipe, for `request_stop` (called from plugin threads).
static WAKE: OnceLock<UnixStream> = OnceLock::new();
/// Set by a plugin's `request_plc_stop`.
static STOP_REQUESTED: AtomicBool = AtomicBool::new(false);

/// Asks the supervisor for an ordered stop (a plugin called `request_plc_stop`).
pub fn request_stop() {
    STOP_REQUESTED.store(true, Ordering::SeqCst);
    if let Some(mut tx) = WAKE.get() {
        // A full pipe already means "wake up"; nothing to do on error.
        let _ = tx.write(b"s");
    }
}

/// Wakes the supervisor without a reason of its own (a lifecycle call
/// finished), so it re-checks its state at once.
pub fn wake() {
    if let Some(mut tx) = WAKE.get() {
        let _ = tx.write(b"w");
    }
}

/// What woke the supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// SIGTERM or SIGINT; the number says how many were seen so far (a second
    /// one during a stuck stop means "exit now").
    Terminate(usize),
    /// SIGHUP: reload plugins.conf.
    Reload,
    /// A plugin called `request_plc_stop`.
    StopRequested,
    /// The timeout passed.
    Tick,
}

/// The installed handlers and the read end of the wake pipe.
pub struct Signals {
    rx: UnixStream,
    terminate: Arc<AtomicBool>,
    terminations: usize,
    reload: Arc<AtomicBool>,
}

impl Signals {
    /// Installs the handlers. Call once, before threads are started, so that
    /// from then on SIGTERM/SIGINT never kill the process unordered.
    pub fn install() -> std::io::Result<Signals> {
        let (rx, tx) = UnixStream::pair()?;
        rx.set_nonblocking(true)?;
        tx.set_nonblocking(true)?;
        let terminate = Arc::new(AtomicBool::new(false));
        let reload = Arc::new(AtomicBool::new(false));
        for sig in [SIGTERM, SIGINT] {
            signal_hook::flag::register(sig, Arc::clone(&terminate))?;
            signal_hook::low_level::pipe::register(sig, tx.try_clone()?)?;
        }
        signal_hook::flag::register(SIGHUP, Arc::clone(&reload))?;
        signal_hook::low_level::pipe::register(SIGHUP, tx.try_clone()?)?;
        // Kept for request_stop and wake (the handlers own their own clones).
        let _ = WAKE.set(tx);
        Ok(Signals {
            rx,
            terminate,
            terminations: 0,
            reload,
        })
    }

    /// Waits until something happens or `timeout` passes. Terminate wins over
    /// everything else.
    pub fn wait(&mut self, timeout: Duration) -> Event {
        if let Some(e) = self.pending() {
            return e;
        }
        crate::sys::poll_readable(&[self.rx.as_raw_fd()], timeout);
        let mut buf = [0u8; 64];
        while matches!((&self.rx).read(&mut buf), Ok(n) if n > 0) {}
        self.pending().unwrap_or(Event::Tick)
    }

    fn pending(&mut self) -> Option<Event> {
        if self.terminate.swap(false, Ordering::SeqCst) {
            self.terminations += 1;
            return Some(Event::Terminate(self.terminations));
        }
        if self.reload.swap(false, Ordering::SeqCst) {
            return Some(Event::Reload);
        }
        if STOP_REQUESTED.swap(false, Ordering::SeqCst) {
            return Some(Event::StopRequested);
        }
        None
    }
}
