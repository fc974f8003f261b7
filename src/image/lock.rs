//! The image lock: a process-shared, robust pthread mutex in the mapping, so
//! workers take the same lock as the supervisor's threads, and a lock whose
//! owner died (a crashed worker) is recovered instead of blocking the scan
//! forever.

use std::sync::atomic::Ordering;

use super::Image;

impl Image {
    /// Takes the image lock (process-shared, robust: a lock abandoned by a dead
    /// owner is recovered and counted).
    pub fn lock(&self) {
        let m = self.header().lock.get();
        // SAFETY: `m` is the initialised process-shared mutex in the mapping.
        let r = unsafe { libc::pthread_mutex_lock(m) };
        if r == libc::EOWNERDEAD {
            // SAFETY: we own the mutex now (EOWNERDEAD); marking it consistent
            // is the documented recovery.
            unsafe { libc::pthread_mutex_consistent(m) };
            self.header()
                .lock_recoveries
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Releases the image lock.
    pub fn unlock(&self) {
        // SAFETY: callers pair this with `lock` (C plugins are trusted to do so,
        // as in OpenPLC).
        unsafe { libc::pthread_mutex_unlock(self.header().lock.get()) };
    }

    /// Times an abandoned image lock was recovered.
    pub fn lock_recoveries(&self) -> u64 {
        self.header().lock_recoveries.load(Ordering::Relaxed)
    }
}

/// Initialises a process-shared, robust mutex in place.
///
/// # Safety
/// `m` must point at writable, suitably aligned memory for a mutex that no one
/// uses yet.
pub(super) unsafe fn init_shared_robust_mutex(m: *mut libc::pthread_mutex_t) -> Result<(), String> {
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
        if rc == 0 {
            rc = libc::pthread_mutex_init(m, &attr);
        }
        libc::pthread_mutexattr_destroy(&mut attr);
        if rc == 0 {
            Ok(())
        } else {
            Err(format!(
                "cannot initialise the image lock: {}",
                std::io::Error::from_raw_os_error(rc)
            ))
        }
    }
}
