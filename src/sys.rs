//! Thin safe wrappers over the few libc calls the runtime needs outside the
//! image and the interpreter: the monotonic clock, absolute sleeps, poll and the
//! effective user. Keeping them here keeps `unsafe` out of everything else.

use std::os::fd::RawFd;
use std::time::Duration;

/// CLOCK_MONOTONIC in ns.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid out-pointer; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// CLOCK_REALTIME `after_ns` from now, as a timespec (for the pthread calls
/// that take only that clock).
pub fn realtime_after(after_ns: u64) -> libc::timespec {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid out-pointer; CLOCK_REALTIME always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    let total = ts.tv_nsec as u64 + after_ns % 1_000_000_000;
    ts.tv_sec += (after_ns / 1_000_000_000 + total / 1_000_000_000) as libc::time_t;
    ts.tv_nsec = (total % 1_000_000_000) as libc::c_long;
    ts
}

/// Sleeps until CLOCK_MONOTONIC reaches `deadline_ns`. Absolute: a signal
/// (EINTR) restarts the sleep and the deadline does not drift.
pub fn sleep_until_ns(deadline_ns: u64) {
    let ts = libc::timespec {
        tv_sec: (deadline_ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (deadline_ns % 1_000_000_000) as libc::c_long,
    };
    loop {
        // SAFETY: valid timespec; the remainder may be null with TIMER_ABSTIME.
        let r = unsafe {
            libc::clock_nanosleep(
                libc::CLOCK_MONOTONIC,
                libc::TIMER_ABSTIME,
                &ts,
                std::ptr::null_mut(),
            )
        };
        if r != libc::EINTR {
            break;
        }
    }
}

/// Waits until one of `fds` is readable or `timeout` passes (EINTR returns
/// early; callers re-check their state anyway).
pub fn poll_readable(fds: &[RawFd], timeout: Duration) {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: `pfds` is a valid array of `pfds.len()` pollfd structs.
    unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, ms) };
}

/// Gives the calling thread real-time SCHED_FIFO scheduling at
/// `priority` (1..=99).
pub fn set_current_thread_fifo(priority: i32) -> std::io::Result<()> {
    let param = libc::sched_param {
        sched_priority: priority,
    };
    // SAFETY: pthread_self() is always valid for the calling thread and
    // `param` outlives the call.
    let rc = unsafe { libc::pthread_setschedparam(libc::pthread_self(), libc::SCHED_FIFO, &param) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::from_raw_os_error(rc))
    }
}

/// The effective user id.
pub fn effective_uid() -> u32 {
    // SAFETY: geteuid cannot fail and has no preconditions.
    unsafe { libc::geteuid() }
}

/// Starts `cmd` as a worker process of the supervisor:
/// - the descriptors in `inherit` stay open across exec (at the same numbers;
///   the command line tells the worker which is which);
/// - the child gets its own process group, so a terminal's Ctrl-C reaches only
///   the supervisor, which stops its workers in order;
/// - the child is killed (SIGKILL) when the thread that spawned it dies
///   (PR_SET_PDEATHSIG), so `kill -9` of the supervisor leaves no orphan.
///   Spawn from the supervisor's main thread, which lives as long as it does.
pub fn spawn_worker(
    cmd: &mut std::process::Command,
    inherit: &[RawFd],
) -> std::io::Result<std::process::Child> {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id() as libc::pid_t;
    let fds: Vec<RawFd> = inherit.to_vec();
    // SAFETY: the closure runs in the child between fork and exec. It only
    // calls async-signal-safe functions (fcntl, setpgid, prctl, getppid,
    // _exit) and allocates nothing: `fds` was built before the fork and is
    // only read.
    unsafe {
        cmd.pre_exec(move || {
            for &fd in &fds {
                let flags = libc::fcntl(fd, libc::F_GETFD);
                if flags < 0 || libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            if libc::setpgid(0, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The supervisor died between fork and prctl: nobody would kill us.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    cmd.spawn()
}

/// Sends `sig` to process `pid` (a worker).
pub fn kill(pid: u32, sig: i32) {
    // SAFETY: kill has no memory-safety preconditions; a stale pid at worst
    // hits nothing (workers are reaped only by us, so the pid is not reused
    // while we hold the Child).
    unsafe { libc::kill(pid as libc::pid_t, sig) };
}
