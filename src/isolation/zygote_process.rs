//! The zygote process: `openplc-runtime zygote ...`, started by the
//! supervisor; it forks the workers (see `zygote` for its channel).

use std::collections::HashSet;
use std::ffi::OsString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::frames::{forward_logs, send_to_packets};
use super::preload::is_module_name;
use super::spec::{Spec, parse_args};
use super::worker_process::serve;
use crate::error::Error;
use crate::python;
use crate::sys;

/// `openplc-runtime zygote ...`: started by the supervisor.
pub fn zygote_main(args: Vec<OsString>) -> Result<(), Error> {
    let bad = |m: String| {
        Error::Usage(format!(
            "zygote: {m} (this command is started by the runtime itself)"
        ))
    };
    let (mut image_fd, mut ctl_fd, mut home, mut preload) = (-1, -1, None, Vec::new());
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        let v = it
            .next()
            .ok_or_else(|| bad(format!("{} needs a value", a.to_string_lossy())))?;
        let num = |v: &OsString| v.to_string_lossy().parse::<RawFd>().unwrap_or(-1);
        match a.to_string_lossy().as_ref() {
            "--image-fd" => image_fd = num(&v),
            "--control-fd" => ctl_fd = num(&v),
            "--python-home" => home = Some(PathBuf::from(v)),
            "--preload" => {
                preload = v
                    .to_string_lossy()
                    .split(',')
                    .filter(|n| is_module_name(n))
                    .map(String::from)
                    .collect()
            }
            other => return Err(bad(format!("unknown argument {other}"))),
        }
    }
    if image_fd < 3 || ctl_fd < 3 {
        return Err(bad("missing --image-fd or --control-fd".into()));
    }
    send_to_packets(ctl_fd);
    forward_logs();
    let say = |kind: u8, body: &[u8]| {
        let mut m = vec![kind];
        m.extend_from_slice(body);
        let _ = sys::send_packet(ctl_fd, &m, None);
    };
    let sigfd = match sys::sigchld_fd() {
        Ok(fd) => fd,
        Err(e) => {
            say(b'E', format!("cannot watch its children: {e}").as_bytes());
            return Err(Error::Os(format!("zygote: signalfd: {e}")));
        }
    };
    let t0 = Instant::now();
    let interp = match python::start(home.as_deref()) {
        Ok(i) => i,
        Err(e) => {
            say(b'E', e.to_string().as_bytes());
            return Err(e);
        }
    };
    let started = t0.elapsed();
    // What the supervisor may learn from workers' reports: stdlib names only.
    say(b'N', interp.stdlib_names().join("\n").as_bytes());
    match interp.preload(&preload) {
        Ok((n, failed)) => {
            for f in &failed {
                log::warn!("preloading {f} failed; skipped");
            }
            say(
                b'Y',
                format!(
                    "interpreter started in {} ms, {n} modules preloaded in {} ms ({} names asked)",
                    started.as_millis(),
                    (t0.elapsed() - started).as_millis(),
                    preload.len()
                )
                .as_bytes(),
            );
        }
        Err(e) => {
            say(b'E', e.as_bytes());
            return Err(Error::Python(e));
        }
    }
    let me = std::process::id();
    // Children forked and not reaped yet: only those may be killed.
    let mut live: HashSet<u32> = HashSet::new();
    loop {
        sys::poll_readable(&[ctl_fd, sigfd.as_raw_fd()], Duration::from_secs(3600));
        sys::drain_signalfd(sigfd.as_raw_fd());
        for (pid, status) in sys::reap_children() {
            live.remove(&pid);
            let mut m = pid.to_le_bytes().to_vec();
            m.extend_from_slice(&status.to_le_bytes());
            say(b'X', &m);
        }
        let Some((p, fd)) = (match recv_ready(ctl_fd) {
            Ok(Some(Some(msg))) => Some(msg),
            Ok(Some(None)) => None,
            Ok(None) | Err(_) => break,
        }) else {
            continue;
        };
        match (p.first(), fd) {
            (Some(b'K'), _) => {
                if let Some(b) = p.get(1..5) {
                    let pid = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                    if live.contains(&pid) {
                        sys::kill(pid, libc::SIGKILL);
                    }
                }
            }
            (Some(b'F'), Some(ctl)) => {
                let args: Vec<OsString> = p[1..]
                    .split(|b| *b == 0)
                    .map(|a| OsString::from_vec(a.to_vec()))
                    .collect();
                let spec = match parse_args(args) {
                    Ok((spec, _, _)) => spec,
                    Err(e) => {
                        say(b'E', e.to_string().as_bytes());
                        continue;
                    }
                };
                match interp.fork(spec.state_dir.as_deref()) {
                    Ok(0) => child(
                        interp,
                        &spec,
                        ctl,
                        [ctl_fd, sigfd.as_raw_fd()],
                        image_fd,
                        me,
                    ),
                    Ok(pid) => {
                        drop(ctl);
                        live.insert(pid);
                        say(b'P', &pid.to_le_bytes());
                    }
                    Err(e) => say(b'E', e.as_bytes()),
                }
            }
            (Some(b'F'), None) => say(b'E', b"a fork request without its control socket"),
            (Some(b'M'), _) => {
                let names: Vec<String> = String::from_utf8_lossy(&p[1..])
                    .lines()
                    .filter(|n| is_module_name(n))
                    .map(String::from)
                    .collect();
                let t = Instant::now();
                match interp.preload(&names) {
                    Ok((n, _)) => log::debug!(
                        "{n} more modules preloaded in {} ms ({} names reported by workers)",
                        t.elapsed().as_millis(),
                        names.len()
                    ),
                    Err(e) => log::warn!("preloading what workers reported failed: {e}"),
                }
            }
            (k, _) => log::warn!("unknown request {k:?}"),
        }
    }
    // The supervisor closed the channel: it is done with us. Workers still
    // running (there should be none) die with us (their parent-death signal).
    std::process::exit(0);
}

/// One packet if the channel has one now: `Ok(None)` when the supervisor
/// closed it, `Ok(Some(None))` when nothing is waiting.
#[allow(clippy::type_complexity)]
fn recv_ready(fd: RawFd) -> std::io::Result<Option<Option<(Vec<u8>, Option<OwnedFd>)>>> {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd; a zero timeout never blocks.
    let n = unsafe { libc::poll(&mut pfd, 1, 0) };
    if n <= 0 {
        return Ok(Some(None));
    }
    if pfd.revents & libc::POLLIN == 0 {
        // POLLHUP/POLLERR without data: the supervisor is gone.
        return Ok(None);
    }
    Ok(sys::recv_packet(fd)?.map(Some))
}

/// The forked child: drops the zygote's descriptors, becomes a worker.
fn child(
    interp: python::Interpreter,
    spec: &Spec,
    ctl: OwnedFd,
    zygote_fds: [RawFd; 2],
    image_fd: RawFd,
    zygote: u32,
) -> ! {
    sys::forked_child_setup(zygote);
    for fd in zygote_fds {
        sys::close_fd(fd);
    }
    // `ps` and `systemctl status` name the plugin, as for a re-executed one.
    sys::set_cmdline_args(&["worker", "--plugin-name", &spec.plugin]);
    // SAFETY: the image's memfd was inherited by the zygote and by this fork;
    // nothing else in this process owns it.
    let image = unsafe { OwnedFd::from_raw_fd(image_fd) };
    let r = serve(spec, image, UnixStream::from(ctl), Some(interp));
    if let Err(e) = r {
        log::error!("[{}] worker: {e}", spec.plugin);
    }
    std::process::exit(1);
}
