//! systemd's notify protocol (READY, STATUS, STOPPING, RELOADING,
//! EXTEND_TIMEOUT_USEC) and a watchdog that pings only while the runtime is
//! healthy, so that a stalled scan loop or a hung plugin call gets the service
//! restarted instead of kept alive by a timer.

use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use libsystemd::daemon::{self, NotifyState};

/// Notifications queued for the sender thread. libsystemd's `notify` is a
/// blocking `sendmsg`: when nobody reads `$NOTIFY_SOCKET` the socket's queue
/// fills and a direct call would stall the supervisor (and with it signal
/// handling and the watchdog logic). A few seconds' worth of messages is
/// plenty: the supervisor sends at most a handful per second.
pub const NOTIFY_QUEUE: usize = 64;
/// How long the last messages (STOPPING, the final STATUS) may take to leave
/// when the runtime exits; a socket nobody reads must not hold up the exit.
pub const NOTIFY_FLUSH: Duration = Duration::from_millis(500);

/// Sends notifications when `$NOTIFY_SOCKET` is set (a path or an abstract
/// `@name` socket); without it every call is a no-op. Sending happens on a
/// thread of its own, so a notify socket nobody reads never blocks the
/// caller: messages beyond [`NOTIFY_QUEUE`] are dropped and counted.
pub struct Notifier {
    queue: Option<SyncSender<Vec<NotifyState>>>,
    /// Messages queued and not yet handed to the socket.
    pending: Arc<AtomicUsize>,
    last_status: String,
    /// Messages dropped since the queue was last seen moving.
    dropped: Cell<u64>,
}

impl Notifier {
    /// Reads `$NOTIFY_SOCKET` (the variable is left in place: worker processes
    /// must not inherit it, so they are started with a cleaned environment).
    pub fn from_env() -> Notifier {
        if std::env::var_os("NOTIFY_SOCKET").is_none() {
            log::debug!(
                "NOTIFY_SOCKET is not set: not started by systemd as Type=notify; no readiness or watchdog messages"
            );
            return Notifier {
                queue: None,
                pending: Arc::default(),
                last_status: String::new(),
                dropped: Cell::new(0),
            };
        }
        let (tx, rx) = mpsc::sync_channel::<Vec<NotifyState>>(NOTIFY_QUEUE);
        let pending = Arc::new(AtomicUsize::new(0));
        let sent = Arc::clone(&pending);
        let spawned = std::thread::Builder::new()
            .name("sd-notify".into())
            .spawn(move || {
                for states in rx {
                    if let Err(e) = daemon::notify(false, &states) {
                        log::warn!("sd_notify to $NOTIFY_SOCKET failed: {e}");
                    }
                    sent.fetch_sub(1, Ordering::AcqRel);
                }
            });
        let queue = match spawned {
            Ok(_) => Some(tx),
            Err(e) => {
                log::error!(
                    "cannot start the sd_notify thread: {e}; no readiness or watchdog messages"
                );
                None
            }
        };
        Notifier {
            queue,
            pending,
            last_status: String::new(),
            dropped: Cell::new(0),
        }
    }

    /// Queues `states`; never blocks.
    fn send(&self, states: &[NotifyState]) {
        let Some(queue) = &self.queue else {
            return;
        };
        self.pending.fetch_add(1, Ordering::AcqRel);
        match queue.try_send(states.to_vec()) {
            Ok(()) => {
                if self.dropped.get() > 0 {
                    log::info!(
                        "sd_notify: $NOTIFY_SOCKET is read again; {} message(s) were dropped",
                        self.dropped.get()
                    );
                    self.dropped.set(0);
                }
            }
            Err(TrySendError::Full(_)) => {
                self.pending.fetch_sub(1, Ordering::AcqRel);
                if self.dropped.get() == 0 {
                    log::error!(
                        "sd_notify: nobody reads $NOTIFY_SOCKET ({NOTIFY_QUEUE} messages queued); dropping notifications so the runtime keeps running"
                    );
                }
                self.dropped.set(self.dropped.get() + 1);
            }
            // The sender thread is gone (it only ends with the process).
            Err(TrySendError::Disconnected(_)) => {
                self.pending.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }

    /// Messages dropped because nobody reads `$NOTIFY_SOCKET` (since it was
    /// last read).
    pub fn dropped(&self) -> u64 {
        self.dropped.get()
    }

    /// `READY=1` with the current status line.
    pub fn ready(&mut self, status: &str) {
        self.last_status = status.to_string();
        self.send(&[NotifyState::Ready, NotifyState::Status(status.to_string())]);
    }

    /// `STATUS=`, sent only when it changed.
    pub fn status(&mut self, status: &str) {
        if status != self.last_status {
            self.last_status = status.to_string();
            self.send(&[NotifyState::Status(status.to_string())]);
        }
    }

    /// `STOPPING=1`.
    pub fn stopping(&mut self, status: &str) {
        self.last_status = status.to_string();
        self.send(&[
            NotifyState::Stopping,
            NotifyState::Status(status.to_string()),
        ]);
    }

    /// `RELOADING=1` with `MONOTONIC_USEC=` (required by `Type=notify-reload`
    /// and harmless for `Type=notify`).
    pub fn reloading(&mut self) {
        let usec = crate::sys::monotonic_ns() / 1000;
        self.send(&[
            NotifyState::Reloading,
            NotifyState::Other(format!("MONOTONIC_USEC={usec}")),
            NotifyState::Status("reloading plugins.conf".into()),
        ]);
    }

    /// `EXTEND_TIMEOUT_USEC=`: a slow but progressing start (or stop) is not
    /// killed by `TimeoutStartSec=`.
    pub fn extend_timeout(&self, by: Duration) {
        self.send(&[NotifyState::Other(format!(
            "EXTEND_TIMEOUT_USEC={}",
            by.as_micros()
        ))]);
    }

    fn watchdog(&self) {
        self.send(&[NotifyState::Watchdog]);
    }
}

impl Drop for Notifier {
    /// Gives the last messages [`NOTIFY_FLUSH`] to leave before the process
    /// exits.
    fn drop(&mut self) {
        let end = Instant::now() + NOTIFY_FLUSH;
        while self.pending.load(Ordering::Acquire) > 0 && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

/// The watchdog policy: ping at most every half interval, and only when the
/// scan thread completed cycles since the last ping and no lifecycle call is
/// stuck past its budget.
pub struct Watchdog {
    interval: Option<Duration>,
    last_ping: Option<Instant>,
    last_cycles: u64,
    /// Why the last ping was withheld (logged once per episode).
    withheld: Option<&'static str>,
}

impl Watchdog {
    /// From `$WATCHDOG_USEC` / `$WATCHDOG_PID` (ignored when the PID is not ours).
    pub fn from_env() -> Watchdog {
        let interval = daemon::watchdog_enabled(false).filter(|d| !d.is_zero());
        if let Some(i) = interval {
            log::debug!("systemd watchdog: {} ms", i.as_millis());
        }
        Watchdog {
            interval,
            // systemd's timer started with the process: count the start as
            // the first ping, so the first real one needs scan progress made
            // since then (and no false alarm before the first cycle).
            last_ping: Some(Instant::now()),
            last_cycles: 0,
            withheld: None,
        }
    }

    /// The watchdog interval, if enabled.
    pub fn interval(&self) -> Option<Duration> {
        self.interval
    }

    /// How long the supervisor may sleep without missing a ping.
    pub fn max_sleep(&self) -> Duration {
        self.interval
            .map(|i| (i / 4).max(Duration::from_millis(10)))
            .unwrap_or(Duration::from_secs(3600))
    }

    /// Pings if due and healthy. `cycles` is the scan thread's count of
    /// completed cycles; `stuck` names a plugin call past its budget, if any;
    /// `sick` says what else is wrong (a plugin holding the image lock past
    /// its limit, a stalled journal ring), if anything.
    pub fn tick(
        &mut self,
        notifier: &Notifier,
        cycles: u64,
        stuck: Option<&str>,
        sick: Option<&str>,
    ) {
        let Some(interval) = self.interval else {
            return;
        };
        let now = Instant::now();
        if self
            .last_ping
            .is_some_and(|t| now.duration_since(t) < interval / 2)
        {
            return;
        }
        let reason = if let Some(s) = stuck {
            log_withheld(&mut self.withheld, "stuck", || {
                format!(
                    "watchdog: not pinging systemd: {s} is stuck past its time budget; systemd will restart the service"
                )
            });
            Some("stuck")
        } else if cycles <= self.last_cycles {
            // Logged again when the cause becomes known (a hold past its limit).
            let key = if sick.is_some() { "scan-sick" } else { "scan" };
            log_withheld(&mut self.withheld, key, || {
                format!(
                    "watchdog: not pinging systemd: the scan loop made no progress ({})",
                    sick.unwrap_or("a plugin may hold the image lock")
                )
            });
            Some(key)
        } else if let Some(s) = sick {
            log_withheld(&mut self.withheld, "sick", || {
                format!("watchdog: not pinging systemd: {s}; systemd will restart the service")
            });
            Some("sick")
        } else {
            None
        };
        if reason.is_none() {
            if self.withheld.take().is_some() {
                log::info!("watchdog: healthy again, pinging systemd");
            }
            notifier.watchdog();
            self.last_ping = Some(now);
            self.last_cycles = cycles;
        }
    }
}

fn log_withheld(state: &mut Option<&'static str>, why: &'static str, msg: impl FnOnce() -> String) {
    if *state != Some(why) {
        log::error!("{}", msg());
        *state = Some(why);
    }
}
