//! The image lock: a process-shared, robust, priority-inheriting pthread
//! mutex in the mapping, so workers take the same lock as the supervisor's
//! threads, a lock whose owner died (a crashed worker) is recovered instead of
//! blocking the scan forever, and a plugin thread holding it runs at the
//! SCHED_FIFO scan thread's priority while the scan thread waits for it. The
//! scan thread waits a bounded time ([`Image::lock_until`]); plugins' holds
//! are recorded (who, since when) so a hold past a limit is named and counted
//! as unhealthy.
//!
//! The mutex and the hold record live in the mapping, which a worker can
//! write: nothing read from there is taken on trust. A wait that fails with
//! anything but "owner died" or "timed out" is a broken lock, counted and
//! reported with its error, and the scan thread does not apply the journal
//! without the lock. A wait that times out records who holds the lock by two
//! witnesses: the hold record (a plugin's slot, checked for range) and the
//! owner thread id the kernel's futex word carries, which the supervisor
//! resolves to a process.

use std::cell::Cell;
use std::ffi::c_int;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};

use super::Image;
use crate::config::MAX_PLUGINS;
use crate::sys::monotonic_ns;

thread_local! {
    /// Whether this thread's last `image_lock()` took the lock (and its
    /// `image_unlock()` has not released it yet).
    static PLUGIN_HOLDS: Cell<bool> = const { Cell::new(false) };
}

/// `lock_holder` value of a lock taken by the runtime itself (or nobody).
pub const HOLDER_NONE: u64 = 0;

/// Bits of a robust or priority-inheriting futex word that are not the
/// owner's thread id (FUTEX_WAITERS, FUTEX_OWNER_DIED; futex(2)).
const FUTEX_TID_MASK: u32 = 0x3FFF_FFFF;

/// Index (in ints) of the futex word in `pthread_mutex_t`: glibc's `__lock`
/// (the first int), musl's `_m_lock` (the second); unknown elsewhere.
const FUTEX_WORD_INDEX: Option<usize> = if cfg!(target_env = "gnu") {
    Some(0)
} else if cfg!(target_env = "musl") {
    Some(1)
} else {
    None
};

/// What the scan thread found when the image lock failed it (this process's
/// memory; the supervisor reads it).
#[derive(Default)]
pub(super) struct LockState {
    /// Whether timed waits use `pthread_mutex_clocklock(CLOCK_MONOTONIC)`
    /// (tried once on the new mutex), else `CLOCK_REALTIME`.
    monotonic: AtomicBool,
    /// At the last timed-out wait: the hold record's raw value and the
    /// futex word's owner thread id.
    blocked_holder: AtomicU64,
    blocked_tid: AtomicU64,
    /// Waits that failed with an error (not a timeout), and the last error.
    failures: AtomicU64,
    failure_errno: AtomicU64,
    /// `failures` as far as [`Image::take_lock_failures`] has reported them.
    failures_taken: AtomicU64,
}

/// Who the hold record says holds the image lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockOwner {
    /// No plugin's `image_lock()`: the runtime itself, or a thread that
    /// locked without recording (a plugin's direct `pthread_mutex_lock`).
    Unrecorded,
    /// The plugin in this callback slot.
    Plugin(usize),
    /// A value no runtime code writes: the mapping was written over.
    Corrupt(u64),
}

impl LockOwner {
    fn from_raw(raw: u64) -> LockOwner {
        match raw {
            HOLDER_NONE => LockOwner::Unrecorded,
            h if h <= MAX_PLUGINS as u64 => LockOwner::Plugin(h as usize - 1),
            h => LockOwner::Corrupt(h),
        }
    }
}

/// The image lock as the scan thread's last timed-out wait found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockBlock {
    /// What the hold record said.
    pub holder: LockOwner,
    /// The owner's thread id from the futex word (`None`: the word named
    /// nobody, or this C library's layout is not known).
    pub owner_tid: Option<u32>,
}

/// `pthread_mutex_clocklock` (glibc >= 2.30), looked up at run time so that
/// the binary still starts on an older C library or musl, which fall back to
/// `pthread_mutex_timedlock` on `CLOCK_REALTIME`.
type ClockLockFn = unsafe extern "C" fn(
    *mut libc::pthread_mutex_t,
    libc::clockid_t,
    *const libc::timespec,
) -> c_int;

fn clocklock() -> Option<ClockLockFn> {
    static F: OnceLock<Option<ClockLockFn>> = OnceLock::new();
    *F.get_or_init(|| {
        // SAFETY: looking a symbol up in the already loaded libraries with a
        // NUL-terminated name.
        let p = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"pthread_mutex_clocklock".as_ptr()) };
        // SAFETY: glibc's pthread_mutex_clocklock has exactly this
        // signature (POSIX 2024).
        (!p.is_null()).then(|| unsafe { std::mem::transmute::<*mut libc::c_void, ClockLockFn>(p) })
    })
}

/// `ns` of `CLOCK_MONOTONIC` as a timespec.
fn timespec_of(ns: u64) -> libc::timespec {
    libc::timespec {
        tv_sec: (ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (ns % 1_000_000_000) as libc::c_long,
    }
}

impl Image {
    /// Takes the image lock (process-shared, robust: a lock abandoned by a dead
    /// owner is recovered and counted).
    /// False when the lock could not be taken (a mutex written over in the
    /// mapping): counted as a failure, and the caller goes on without it, as
    /// OpenPLC's `void image_lock(void)` gives it no way to learn.
    pub fn lock(&self) -> bool {
        if self.ghost_owner() {
            return false;
        }
        let m = self.header().lock.get();
        // SAFETY: `m` is the initialised process-shared mutex in the mapping.
        let r = unsafe { libc::pthread_mutex_lock(m) };
        self.after_lock(r)
    }

    /// True (counted as a failure with ESRCH) when the futex word names an
    /// owner thread that does not exist. The kernel answers ESRCH for such a
    /// priority-inheriting futex and glibc *aborts the process* on it
    /// (`assert (e != ESRCH || !robust)`), so a worker writing a made-up
    /// thread id into the mapping would kill the runtime; this check, before
    /// every wait that can reach the kernel, turns that into a reported
    /// broken lock. A word rewritten between this check and the futex call
    /// still gets through: the window is that of one system call.
    fn ghost_owner(&self) -> bool {
        let Some(tid) = self.lock_owner_tid() else {
            return false;
        };
        // SAFETY: signal 0 only checks that the thread exists.
        let gone = unsafe { libc::kill(tid as libc::pid_t, 0) } != 0
            // SAFETY: reading this thread's errno right after the call.
            && unsafe { *libc::__errno_location() } == libc::ESRCH
            // A holder that unlocked and ended since the word was read is
            // no ghost: only a word still naming the ended thread is (the
            // kernel clears a robust owner's word before its thread ends).
            && self.lock_owner_tid() == Some(tid);
        if gone {
            let st = &self.lock_state;
            st.blocked_tid.store(u64::from(tid), Ordering::Relaxed);
            st.failure_errno
                .store(libc::ESRCH as u64, Ordering::Relaxed);
            st.failures.fetch_add(1, Ordering::Release);
        }
        gone
    }

    /// Takes the image lock for the plugin in callback slot `slot`, recording
    /// the hold (who and since when) for the scan thread and the watchdog.
    ///
    /// OpenPLC's `void image_lock(void)` gives a plugin no way to learn that
    /// the lock was not taken (a mutex written over in the mapping): the
    /// failure is counted and logged under the plugin's name (from a worker
    /// process too, whose counts the supervisor does not read), the plugin's
    /// image access until its `image_unlock()` is unguarded, and that
    /// unlock then releases nothing and clears no other holder's record.
    pub fn lock_for_plugin(&self, slot: usize) {
        let asked = monotonic_ns();
        if !self.lock() {
            PLUGIN_HOLDS.set(false);
            let (n, errno) = self.lock_failures();
            // First, second, fourth... failure: bounded, whatever the rate.
            if n.is_power_of_two() {
                log::error!(
                    "[{}] image_lock() could not take the image lock: {}; the mutex in the shared image mapping is corrupt, and the plugin's image access until image_unlock() is unguarded (OpenPLC's void image_lock() cannot tell it); {n} failed lock call(s) in process {} so far",
                    super::callbacks::slot_name(slot),
                    std::io::Error::from_raw_os_error(errno),
                    std::process::id()
                );
            }
            return;
        }
        PLUGIN_HOLDS.set(true);
        let h = self.header();
        let now = monotonic_ns();
        h.plugin_lock_wait_max_ns
            .fetch_max(now - asked, Ordering::Relaxed);
        h.lock_since_ns.store(now, Ordering::Relaxed);
        h.lock_holder.store(slot as u64 + 1, Ordering::Release);
    }

    /// Releases a lock taken with [`Image::lock_for_plugin`] on this thread;
    /// nothing when that call failed (or there was none).
    pub fn unlock_for_plugin(&self) {
        if !PLUGIN_HOLDS.replace(false) {
            return;
        }
        let h = self.header();
        let held = monotonic_ns().saturating_sub(h.lock_since_ns.load(Ordering::Relaxed));
        h.plugin_lock_hold_max_ns.fetch_max(held, Ordering::Relaxed);
        h.lock_holder.store(HOLDER_NONE, Ordering::Release);
        self.unlock();
    }

    /// The longest wait for and hold of the lock by a plugin's `image_lock()`
    /// (any process) since the last call, ns; the interval starts again.
    pub fn take_plugin_lock_figures(&self) -> (u64, u64) {
        let h = self.header();
        (
            h.plugin_lock_wait_max_ns.swap(0, Ordering::Relaxed),
            h.plugin_lock_hold_max_ns.swap(0, Ordering::Relaxed),
        )
    }

    /// Takes the image lock unless it stays held until `deadline_ns`
    /// (`CLOCK_MONOTONIC`): the scan thread must never wait without bound.
    /// True when taken. False when it stayed held (who held it is recorded:
    /// [`Image::lock_block`]) or the wait failed (counted:
    /// [`Image::lock_failures`]); either way the caller must not touch what
    /// the lock guards.
    pub fn lock_until(&self, deadline_ns: u64) -> bool {
        if self.ghost_owner() {
            return false;
        }
        let m = self.header().lock.get();
        let r = match clocklock() {
            Some(f) if self.lock_state.monotonic.load(Ordering::Relaxed) => {
                let ts = timespec_of(deadline_ns);
                // SAFETY: `m` is the initialised mutex in the mapping, `ts` a
                // valid timespec on this stack frame.
                unsafe { f(m, libc::CLOCK_MONOTONIC, &ts) }
            }
            _ => {
                // Only CLOCK_REALTIME here (an older C library, or one whose
                // PI futexes take no other clock): convert the remaining time;
                // a clock step during the wait stretches or shortens it.
                let remaining = deadline_ns.saturating_sub(monotonic_ns());
                let ts = crate::sys::realtime_after(remaining);
                // SAFETY: as above.
                unsafe { libc::pthread_mutex_timedlock(m, &ts) }
            }
        };
        if r == libc::ETIMEDOUT {
            let st = &self.lock_state;
            st.blocked_holder.store(
                self.header().lock_holder.load(Ordering::Acquire),
                Ordering::Relaxed,
            );
            st.blocked_tid.store(
                u64::from(self.lock_owner_tid().unwrap_or(0)),
                Ordering::Relaxed,
            );
            return false;
        }
        self.after_lock(r)
    }

    /// True when `r` (a lock call's result) means the lock is ours; recovers
    /// a lock whose owner died, counts anything else as a failure.
    fn after_lock(&self, r: c_int) -> bool {
        let m = self.header().lock.get();
        let r = if r == libc::EOWNERDEAD {
            // SAFETY: we own the mutex now (EOWNERDEAD); marking it consistent
            // is the documented recovery.
            let c = unsafe { libc::pthread_mutex_consistent(m) };
            self.header()
                .lock_recoveries
                .fetch_add(1, Ordering::Relaxed);
            // The dead owner was a plugin: its hold is over.
            self.header()
                .lock_holder
                .store(HOLDER_NONE, Ordering::Release);
            if c != 0 {
                // SAFETY: EOWNERDEAD made us the owner; give it back.
                unsafe { libc::pthread_mutex_unlock(m) };
            }
            c
        } else {
            r
        };
        if r == 0 {
            return true;
        }
        let st = &self.lock_state;
        st.failure_errno.store(r as u64, Ordering::Relaxed);
        st.failures.fetch_add(1, Ordering::Release);
        false
    }

    /// The owner thread id the mutex's futex word names now, if this C
    /// library's layout is known and the word names one.
    pub fn lock_owner_tid(&self) -> Option<u32> {
        let offset = FUTEX_WORD_INDEX?;
        // SAFETY: the futex word is an aligned int inside the mutex in the
        // mapping; reading it atomically races with no one's non-atomic use
        // (the C library and the kernel access it atomically).
        let word = unsafe {
            (*self.header().lock.get().cast::<AtomicI32>().add(offset)).load(Ordering::Relaxed)
        };
        let tid = word as u32 & FUTEX_TID_MASK;
        (tid != 0).then_some(tid)
    }

    /// Who held the image lock at the scan thread's last timed-out wait.
    pub fn lock_block(&self) -> LockBlock {
        let st = &self.lock_state;
        let tid = st.blocked_tid.load(Ordering::Relaxed) as u32;
        LockBlock {
            holder: LockOwner::from_raw(st.blocked_holder.load(Ordering::Relaxed)),
            owner_tid: (tid != 0).then_some(tid),
        }
    }

    /// Lock calls in this process that failed with an error other than
    /// "owner died" and "timed out" (a mutex written over in the mapping),
    /// and the last such error number.
    pub fn lock_failures(&self) -> (u64, i32) {
        let st = &self.lock_state;
        let n = st.failures.load(Ordering::Acquire);
        (n, st.failure_errno.load(Ordering::Relaxed) as i32)
    }

    /// Lock failures since the last call (count, last error number); for one
    /// reader, the supervisor's report.
    pub fn take_lock_failures(&self) -> (u64, i32) {
        let (n, errno) = self.lock_failures();
        let before = self.lock_state.failures_taken.swap(n, Ordering::Relaxed);
        (n - before, errno)
    }

    /// Whether the scan thread's timed wait runs on `CLOCK_MONOTONIC`
    /// (`pthread_mutex_clocklock`); false: `CLOCK_REALTIME`.
    pub fn lock_wait_monotonic(&self) -> bool {
        self.lock_state.monotonic.load(Ordering::Relaxed)
    }

    /// Tries `pthread_mutex_clocklock(CLOCK_MONOTONIC)` once on the new,
    /// unshared mutex: glibc before 2.35 (or a kernel without
    /// FUTEX_LOCK_PI2) refuses it for priority-inheriting mutexes with
    /// EINVAL, which must not later read as a broken lock.
    pub(super) fn probe_monotonic_wait(&self) {
        let Some(f) = clocklock() else { return };
        let m = self.header().lock.get();
        let ts = timespec_of(monotonic_ns() + 1_000_000_000);
        // SAFETY: the initialised mutex, not yet shared with anyone; a
        // successful lock is released at once.
        let ok = unsafe {
            if f(m, libc::CLOCK_MONOTONIC, &ts) == 0 {
                libc::pthread_mutex_unlock(m);
                true
            } else {
                false
            }
        };
        self.lock_state.monotonic.store(ok, Ordering::Relaxed);
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
        // The record alone could be forged: believe it only while the mutex
        // is held at all (where this C library's futex word can be read).
        if FUTEX_WORD_INDEX.is_some() {
            self.lock_owner_tid()?;
        }
        let LockOwner::Plugin(slot) = LockOwner::from_raw(h.lock_holder.load(Ordering::Acquire))
        else {
            return None;
        };
        let since = h.lock_since_ns.load(Ordering::Relaxed);
        Some((slot, monotonic_ns().saturating_sub(since)))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn gettid() -> u32 {
        // SAFETY: gettid has no preconditions.
        unsafe { libc::gettid() as u32 }
    }

    #[test]
    fn a_timed_out_wait_names_the_holding_plugin_and_thread() {
        let img = Image::create(8).unwrap();
        let img: &'static Image = Box::leak(Box::new(img));
        let (tx, rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let holder = std::thread::spawn(move || {
            img.lock_for_plugin(3);
            tx.send(gettid()).unwrap();
            let _ = done_rx.recv();
            img.unlock_for_plugin();
        });
        let tid = rx.recv().unwrap();
        assert!(!img.lock_until(monotonic_ns() + 20_000_000));
        let b = img.lock_block();
        assert_eq!(b.holder, LockOwner::Plugin(3));
        if cfg!(target_env = "gnu") {
            assert_eq!(b.owner_tid, Some(tid));
        }
        assert_eq!(img.lock_hold().map(|h| h.0), Some(3));
        done_tx.send(()).unwrap();
        holder.join().unwrap();
        assert!(img.lock_until(monotonic_ns() + 1_000_000_000));
        img.unlock();
        assert_eq!(img.lock_failures().0, 0);
        // A forged hold record is not believed while nobody holds the lock.
        img.header().lock_holder.store(2, Ordering::Relaxed);
        assert_eq!(img.lock_hold(), None);
    }

    #[test]
    fn a_mutex_written_over_is_a_counted_failure_never_taken_as_locked() {
        let img = Image::create(8).unwrap();
        // SAFETY: scribbling over the image's own mutex, as a worker could
        // through the mapping; nobody else uses this image.
        unsafe {
            std::ptr::write_bytes(
                img.header().lock.get().cast::<u8>(),
                0xA5,
                size_of::<libc::pthread_mutex_t>(),
            )
        };
        assert!(!img.lock_until(monotonic_ns() + 20_000_000));
        let (n, errno) = img.lock_failures();
        assert_eq!(n, 1, "errno {errno}");
        assert_ne!(errno, 0);
    }

    #[test]
    fn a_plugin_lock_that_fails_is_counted_and_its_unlock_clears_no_other_hold() {
        let img = Image::create(8).unwrap();
        // SAFETY: as above, scribbling over this image's own mutex.
        unsafe {
            std::ptr::write_bytes(
                img.header().lock.get().cast::<u8>(),
                0xA5,
                size_of::<libc::pthread_mutex_t>(),
            )
        };
        img.lock_for_plugin(1);
        assert_eq!(img.lock_failures().0, 1);
        // Another plugin's hold, as recorded: the failed caller's unlock
        // must neither release nor erase it (it used to clear the record).
        img.header().lock_holder.store(3, Ordering::Relaxed);
        img.unlock_for_plugin();
        assert_eq!(img.header().lock_holder.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn a_lock_word_naming_a_thread_that_does_not_exist_is_a_failure_not_an_abort() {
        // glibc aborts the process when the kernel answers ESRCH for a
        // robust priority-inheriting mutex: the old code died here.
        let img = Image::create(8).unwrap();
        let ghost = 0x3FFF_FFF0;
        // SAFETY: writing the futex word of the image's own mutex, as a
        // worker could through the mapping; nobody else uses this image.
        unsafe { (*img.header().lock.get().cast::<AtomicI32>()).store(ghost, Ordering::Relaxed) };
        if cfg!(target_env = "gnu") {
            assert!(!img.lock_until(monotonic_ns() + 20_000_000));
            assert!(!img.lock());
            assert_eq!(img.lock_failures(), (2, libc::ESRCH));
            assert_eq!(img.lock_block().owner_tid, Some(ghost as u32));
        }
    }

    /// "X.Y" of a version string as a pair.
    fn major_minor(v: &str) -> (u32, u32) {
        let mut it = v.split(['.', '-']).map(|p| p.parse().unwrap_or(0));
        (it.next().unwrap_or(0), it.next().unwrap_or(0))
    }

    #[test]
    fn the_timed_wait_runs_on_the_monotonic_clock_where_the_c_library_has_it() {
        let img = Image::create(8).unwrap();
        if clocklock().is_none() {
            assert!(!img.lock_wait_monotonic());
            return;
        }
        // glibc >= 2.35 on Linux >= 5.14 (FUTEX_LOCK_PI2) takes
        // CLOCK_MONOTONIC for priority-inheriting mutexes; before that only
        // plain mutexes take it.
        #[cfg(target_env = "gnu")]
        {
            // SAFETY: glibc returns a static NUL-terminated string.
            let glibc = unsafe { std::ffi::CStr::from_ptr(libc::gnu_get_libc_version()) };
            let glibc = major_minor(&glibc.to_string_lossy());
            let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
            let kernel = major_minor(kernel.trim());
            if glibc >= (2, 35) && (kernel >= (5, 14) || !img.lock_inherits_priority()) {
                assert!(
                    img.lock_wait_monotonic(),
                    "glibc {glibc:?}, Linux {kernel:?}"
                );
            }
        }
        eprintln!(
            "timed wait on CLOCK_MONOTONIC: {}",
            img.lock_wait_monotonic()
        );
    }
}
