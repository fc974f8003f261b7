//! Thin safe wrappers over the few libc calls the runtime needs outside the
//! image and the interpreter: the monotonic clock, absolute sleeps, poll and the
//! effective user. Keeping them here keeps `unsafe` out of everything else.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};
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

/// Whether `fd` becomes readable (or hung up) within `timeout`.
pub fn wait_readable(fd: RawFd, timeout: Duration) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: one valid pollfd for the duration of the call.
    unsafe { libc::poll(&mut pfd, 1, ms) != 0 }
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
    let max_fd = open_max();
    // SAFETY: the closure runs in the child between fork and exec. It only
    // calls async-signal-safe functions (syscall, fcntl, setpgid, prctl,
    // getppid, _exit) and allocates nothing: `fds` was built before the fork
    // and is only read.
    unsafe {
        cmd.pre_exec(move || {
            // Nothing but `fds` reaches the worker: every other descriptor
            // (a native plugin's socket opened without SOCK_CLOEXEC, say)
            // closes at exec.
            all_cloexec_from(3, max_fd);
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

/// Highest descriptor number the fallback of [`all_cloexec_from`] reaches
/// (one fcntl each, between fork and exec, on kernels before 5.11 only):
/// a container's RLIMIT_NOFILE of 2^20 would cost a second per spawn.
const MAX_FD_SWEEP: RawFd = 1 << 16;

/// The highest descriptor number this process may hold (RLIMIT_NOFILE),
/// read before a fork for [`all_cloexec_from`]'s fallback.
pub fn open_max() -> RawFd {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid out-pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) } < 0 {
        return 1024;
    }
    RawFd::try_from(rl.rlim_cur)
        .unwrap_or(RawFd::MAX)
        .min(MAX_FD_SWEEP)
}

/// Marks every descriptor from `first` on close-on-exec:
/// `close_range(first, ~0, CLOSE_RANGE_CLOEXEC)`, or on kernels before 5.11
/// one `fcntl` per number up to `max_fd`. Async-signal-safe (no allocation),
/// so it may run between fork and exec.
pub fn all_cloexec_from(first: RawFd, max_fd: RawFd) {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: close_range only changes descriptor flags of this process.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first as libc::c_uint,
            libc::c_uint::MAX,
            CLOSE_RANGE_CLOEXEC,
        )
    };
    if rc == 0 {
        return;
    }
    for fd in first..=max_fd {
        set_cloexec(fd);
    }
}

/// Sets close-on-exec on `fd` (nothing when it is not open).
pub fn set_cloexec(fd: RawFd) {
    // SAFETY: fcntl on a descriptor number; an unopened one gives EBADF.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFD);
        if flags >= 0 && flags & libc::FD_CLOEXEC == 0 {
            libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
        }
    }
}

/// Sends `sig` to process `pid` (a worker).
pub fn kill(pid: u32, sig: i32) {
    // SAFETY: kill has no memory-safety preconditions; a stale pid at worst
    // hits nothing (workers are reaped only by us, so the pid is not reused
    // while we hold the Child).
    unsafe { libc::kill(pid as libc::pid_t, sig) };
}

/// A connected pair of `SOCK_SEQPACKET` Unix sockets (close-on-exec): the
/// zygote's channel, where every message is one packet and may carry a
/// descriptor.
pub fn seqpacket_pair() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [-1; 2];
    // SAFETY: `fds` is a valid array of two ints for the new descriptors.
    let rc = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: socketpair succeeded: both descriptors are new and ours.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Largest packet on a seqpacket channel (a zygote's fork request or log
/// line); a longer log line is cut.
pub const MAX_PACKET: usize = 64 * 1024;

/// Sends one packet on `sock`, with descriptor `fd` attached when given.
pub fn send_packet(sock: RawFd, data: &[u8], fd: Option<RawFd>) -> std::io::Result<()> {
    let data = &data[..data.len().min(MAX_PACKET)];
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    // Room for one descriptor's control message, suitably aligned.
    let mut cbuf = [0u64; 8];
    // SAFETY: a zeroed msghdr is valid; every pointer set below points to
    // memory that outlives the sendmsg call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if let Some(fd) = fd {
        // SAFETY: CMSG_SPACE is a pure computation.
        let space = unsafe { libc::CMSG_SPACE(size_of::<RawFd>() as u32) } as usize;
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = space as _;
        // SAFETY: msg_control points to `space` bytes (<= 64) we own; the
        // first header is written inside them.
        unsafe {
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(size_of::<RawFd>() as u32) as _;
            std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<RawFd>(), fd);
        }
    }
    loop {
        // SAFETY: `msg` is fully initialised and valid for the call.
        let rc = unsafe { libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL) };
        if rc >= 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Receives one packet from `sock`: `Ok(None)` when the peer closed it. A
/// descriptor that came with it is returned owned (close-on-exec).
pub fn recv_packet(sock: RawFd) -> std::io::Result<Option<(Vec<u8>, Option<OwnedFd>)>> {
    let mut buf = vec![0u8; MAX_PACKET];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut cbuf = [0u64; 8];
    // SAFETY: as in `send_packet`; the buffers outlive the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = size_of_val(&cbuf) as _;
    let n = loop {
        // SAFETY: `msg` points to valid buffers of the stated lengths.
        let rc = unsafe { libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if rc >= 0 {
            break rc as usize;
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    };
    let mut fd = None;
    // SAFETY: the kernel filled `msg_control`/`msg_controllen`; the CMSG
    // macros walk only inside them. A descriptor received is new and ours.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let raw = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<RawFd>());
                fd = Some(OwnedFd::from_raw_fd(raw));
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    if n == 0 && fd.is_none() {
        return Ok(None);
    }
    buf.truncate(n);
    Ok(Some((buf, fd)))
}

/// Blocks SIGCHLD in this (single-threaded) process and returns a signalfd
/// that becomes readable when a child changes state: the zygote's way to reap
/// its children in the same poll loop as its requests.
pub fn sigchld_fd() -> std::io::Result<OwnedFd> {
    // SAFETY: the sigset is initialised by sigemptyset before use; the
    // signalfd is new and ours.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGCHLD);
        if libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let fd = libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

/// Empties a signalfd (its siginfo records are not needed: `reap_children`
/// asks waitpid).
pub fn drain_signalfd(fd: RawFd) {
    let mut buf = [0u8; 128 * 8];
    // SAFETY: reading into a buffer we own, of its length; the fd is
    // non-blocking, so this ends at EAGAIN.
    while unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
}

/// Reaps every child that exited: `(pid, raw wait status)`.
pub fn reap_children() -> Vec<(u32, i32)> {
    let mut out = Vec::new();
    loop {
        let mut status = 0;
        // SAFETY: a valid out-pointer; WNOHANG never blocks.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid <= 0 {
            return out;
        }
        out.push((pid as u32, status));
    }
}

/// In a child just forked by the zygote: unblocks the signals the zygote
/// blocked, makes its own process group, and asks to be killed when its
/// parent (the zygote, itself tied to the supervisor) dies. Exits at once
/// when that parent is already gone.
pub fn forked_child_setup(parent: u32) {
    // SAFETY: plain libc calls on this process, no pointers but the sigset we
    // initialise first.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
        libc::setpgid(0, 0);
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        if libc::getppid() as u32 != parent {
            libc::_exit(1);
        }
    }
}

/// Closes a descriptor this process holds by number only (a forked child
/// dropping the zygote's).
pub fn close_fd(fd: RawFd) {
    // SAFETY: closing a descriptor number; at worst it is already closed.
    unsafe { libc::close(fd) };
}

/// Rewrites this process's command line as `ps` and `systemctl status` show
/// it (`/proc/self/cmdline`): `argv[0]` stays, `args` replace the rest, cut to
/// the room the original arguments took. A worker forked from the zygote
/// would otherwise show the zygote's command line. Does nothing where
/// `/proc/self/stat` does not give the argument area (qemu-user).
pub fn set_cmdline_args(args: &[&str]) {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return;
    };
    // Fields after the parenthesised command name start at field 3; the
    // argument area is fields 48 (arg_start) and 49 (arg_end).
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let (Some(start), Some(end)) = (
        fields.get(45).and_then(|f| f.parse::<usize>().ok()),
        fields.get(46).and_then(|f| f.parse::<usize>().ok()),
    ) else {
        return;
    };
    if start == 0 || end <= start || end - start > 1 << 20 {
        return;
    }
    // SAFETY: [start, end) is this process's argument area as the kernel
    // reports it: the argv strings at the top of the main thread's stack,
    // mapped readable and writable for the life of the process. Nothing in
    // this process refers to those bytes any more (std copied its argv at
    // start-up), and only bytes inside the area are read or written.
    unsafe {
        let area = std::slice::from_raw_parts_mut(start as *mut u8, end - start);
        let Some(argv0_end) = area.iter().position(|b| *b == 0) else {
            return;
        };
        let room = &mut area[argv0_end + 1..];
        room.fill(0);
        let mut at = 0;
        for a in args {
            let a = a.as_bytes();
            // Keep one NUL at the very end of the area.
            let n = a.len().min(room.len().saturating_sub(at + 1));
            room[at..at + n].copy_from_slice(&a[..n]);
            at += n + 1;
            if at >= room.len() {
                break;
            }
        }
    }
}

/// A pidfd for process `pid` (Linux 5.3+): readable once the process has
/// ended, whoever its parent is, and a handle that signals never hit another
/// process that reused the pid.
pub fn pidfd_open(pid: u32) -> std::io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags; the descriptor returned is
    // new and ours (close-on-exec by definition).
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Sends `sig` to the process of `pidfd`.
pub fn pidfd_kill(pidfd: RawFd, sig: i32) -> std::io::Result<()> {
    // SAFETY: pidfd_send_signal with no siginfo (null) and no flags.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd,
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Whether process `pid` has ended (gone, or a zombie), from /proc.
pub fn has_ended(pid: u32) -> bool {
    proc_stat_fields(pid).is_none_or(|f| f.first().is_some_and(|s| s == "Z" || s == "X"))
}

/// The fields of `/proc/PID/stat` after the command name (the state first).
fn proc_stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_whitespace().map(String::from).collect())
}

/// The live processes of process group `pgid` (zombies left out).
pub fn process_group_members(pgid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out: Vec<u32> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| {
            proc_stat_fields(pid).is_some_and(|f| {
                f.get(2).and_then(|g| g.parse::<u32>().ok()) == Some(pgid)
                    && f.first().is_some_and(|s| s != "Z" && s != "X")
            })
        })
        .collect();
    out.sort_unstable();
    out
}

/// SIGKILL for every process of process group `pgid`.
pub fn kill_group(pgid: u32) {
    // SAFETY: killpg has no memory-safety preconditions.
    unsafe { libc::killpg(pgid as libc::pid_t, libc::SIGKILL) };
}

/// Reaps child `pid` if it has ended: its raw wait status.
pub fn reap_child(pid: u32) -> Option<i32> {
    let mut status = 0;
    // SAFETY: a valid out-pointer; WNOHANG never blocks.
    let r = unsafe { libc::waitpid(pid as libc::pid_t, &mut status, libc::WNOHANG) };
    (r == pid as libc::pid_t).then_some(status)
}

/// A non-blocking, close-on-exec pipe: (read end, write end).
pub fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [-1; 2];
    // SAFETY: `fds` is a valid array of two ints for the new descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded: both descriptors are new and ours.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Polls `fds` for readability for at most `timeout`: which of them are
/// readable (or hung up).
pub fn poll_which(fds: &[RawFd], timeout: Duration) -> Vec<bool> {
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
    let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, ms) };
    pfds.iter().map(|p| n > 0 && p.revents != 0).collect()
}

/// Reads and discards what is waiting on non-blocking `fd`.
pub fn drain(fd: RawFd) {
    let mut buf = [0u8; 256];
    // SAFETY: reading into a buffer we own, of its length.
    while unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
}

/// Writes one byte to `fd` (a wake-up).
pub fn poke(fd: RawFd) {
    // SAFETY: writing one byte from a buffer we own.
    unsafe { libc::write(fd, [1u8].as_ptr().cast(), 1) };
}
