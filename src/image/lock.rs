//! The image lock: a process-shared, robust, priority-inheriting pthread
//! mutex in the mapping, so workers take the same lock as the supervisor's
//! threads, a lock whose owner died (a crashed worker) is recovered instead of
//! blocking the scan forever, and a plugin thread holding it runs at the
//! SCHED_FIFO scan thread's priority while the scan thread waits for it. The
//! scan thread waits a bounded time ([`Image::lock_until`]); plugins' holds
//! are recorded (who, since when) so a hold past a limit is named and counted
//! as unhealthy.

use std::sync::atomic::Ordering;

use super::Image;
use crate::sys::monotonic_ns;

/// `lock_holder` value of a lock taken by the runtime itself (or nobody).
pub const HOLDER_NONE: u64 = 0;

impl Image {
    /// Takes the image lock (process-shared, robust: a lock abandoned by a dead
    /// owner is recovered and counted).
    pub fn lock(&self) {
        let m = self.header().lock.get();
        // SAFETY: `m` is the initialised process-shared mutex in the mapping.
        let r = unsafe { libc::pthread_mutex_lock(m) };
        self.after_lock(r);
    }

    /// Takes the image lock for the plugin in callback slot `slot`, recording
    /// the hold (who and since when) for the scan thread and the watchdog.
    pub fn lock_for_plugin(&self, slot: usize) {
        self.lock();
        let h = self.header();
        h.lock_since_ns.store(monotonic_ns(), Ordering::Relaxed);
        h.lock_holder.store(slot as u64 + 1, Ordering::Release);
    }

    /// Releases a lock taken with [`Image::lock_for_plugin`].
    pub fn unlock_for_plugin(&self) {
        self.header()
            .lock_holder
            .store(HOLDER_NONE, Ordering::Release);
        self.unlock();
    }

    /// Takes the image lock unless it stays held until `deadline_ns`
    /// (`CLOCK_MONOTONIC`): the scan thread must never wait without bound.
    /// True when taken.
    pub fn lock_until(&self, deadline_ns: u64) -> bool {
        let m = self.header().lock.get();
        // pthread_mutex_timedlock takes CLOCK_REALTIME (the only clock glibc
        // accepts for priority-inheriting mutexes): convert the remaining time.
        let remaining = deadline_ns.saturating_sub(monotonic_ns());
        let ts = crate::sys::realtime_after(remaining);
        // SAFETY: `m` is the initialised mutex in the mapping, `ts` a valid
        // timespec on this stack frame.
        let r = unsafe { libc::pthread_mutex_timedlock(m, &ts) };
        if r == libc::ETIMEDOUT {
            return false;
        }
        self.after_lock(r);
        true
    }

    fn after_lock(&self, r: libc::c_int) {
        if r == libc::EOWNERDEAD {
            let m = self.header().lock.get();
            // SAFETY: we own the mutex now (EOWNERDEAD); marking it consistent
            // is the documented recovery.
            unsafe { libc::pthread_mutex_consistent(m) };
            self.header()
                .lock_recoveries
                .fetch_add(1, Ordering::Relaxed);
            // The dead owner was a plugin: its hold is over.
            self.header()
                .lock_holder
                .store(HOLDER_NONE, Ordering::Release);
        }
    }

    /// Releases the image lock.
    pub fn unlock(&self) {
        // SAFETY: callers pair this with `lock` (C plugins are trusted to do so,
        // as in OpenPLC).
        unsafe { libc::pthread_mutex_unlock(self.header().lock.get()) };
    }

    /// The plugin (callback slot) holding the image lock and for how long,
    /// if a plugin holds it.
    pub fn lock_hold(&self) -> Option<(usize, u64)> {
        let h = self.header();
        let holder = h.lock_holder.load(Ordering::Acquire);
        if holder == HOLDER_NONE {
            return None;
        }
        let since = h.lock_since_ns.load(Ordering::Relaxed);
        Some(((holder - 1) as usize, monotonic_ns().saturating_sub(since)))
    }

    /// Whether the lock inherits priority (false where the kernel or qemu-user
    /// lacks PI futexes and a plain robust mutex was used instead).
    pub fn lock_inherits_priority(&self) -> bool {
        self.header().lock_pi.load(Ordering::Relaxed) != 0
    }

    /// Times an abandoned image lock was recovered.
    pub fn lock_recoveries(&self) -> u64 {
        self.header().lock_recoveries.load(Ordering::Relaxed)
    }
}

/// Initialises a process-shared, robust mutex in place, priority-inheriting
/// when the system supports it (then returns true).
///
/// # Safety
/// `m` must point at writable, suitably aligned memory for a mutex that no one
/// uses yet.
pub(super) unsafe fn init_shared_robust_mutex(
    m: *mut libc::pthread_mutex_t,
) -> Result<bool, String> {
    // SAFETY: as this function's contract; a PI mutex that initialises is
    // tried once (lock, unlock) before anyone else can use it.
    unsafe {
        if init_mutex(m, true) == 0 {
            let r = libc::pthread_mutex_lock(m);
            if r == 0 && libc::pthread_mutex_unlock(m) == 0 {
                return Ok(true);
            }
            // No PI futexes here (qemu-user, some kernels): a plain robust
            // mutex still recovers from dead owners.
            libc::pthread_mutex_destroy(m);
        }
        match init_mutex(m, false) {
            0 => Ok(false),
            rc => Err(format!(
                "cannot initialise the image lock: {}",
                std::io::Error::from_raw_os_error(rc)
            )),
        }
    }
}

/// `pthread_mutex_init` with the image lock's attributes; the error number.
///
/// # Safety
/// As [`init_shared_robust_mutex`].
unsafe fn init_mutex(m: *mut libc::pthread_mutex_t, inherit: bool) -> libc::c_int {
    // SAFETY: the attribute object lives on this stack frame and is destroyed
    // before returning; `m` is valid per the caller's contract.
    unsafe {
        let mut attr: libc::pthread_mutexattr_t = std::mem::zeroed();
        let mut rc = libc::pthread_mutexattr_init(&mut attr);
        if rc == 0 {
            rc = libc::pthread_mutexattr_setpshared(&mut attr, libc::PTHREAD_PROCESS_SHARED);
        }
        if rc == 0 {
            rc = libc::pthread_mutexattr_setrobust(&mut attr, libc::PTHREAD_MUTEX_ROBUST);
        }
        if rc == 0 && inherit {
            rc = libc::pthread_mutexattr_setprotocol(&mut attr, libc::PTHREAD_PRIO_INHERIT);
        }
        if rc == 0 {
            rc = libc::pthread_mutex_init(m, &attr);
        }
        libc::pthread_mutexattr_destroy(&mut attr);
        rc
    }
}
