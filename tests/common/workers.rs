//! Helpers of the process-isolation tests (tests/isolation.rs,
//! tests/isolation_faults.rs): starting process isolation, the probes'
//! recorded worker pids, signals and process states.

use std::path::Path;
use std::time::{Duration, Instant};

use super::{Runtime, events, record};

/// Process isolation with workers started `how` (zygote or exec), debug
/// logging, and `state` as the state directory when given.
pub fn start_debug(conf: &Path, how: &str, state: Option<&Path>) -> Runtime {
    let args = [
        "--isolation",
        "process",
        "--worker-start",
        how,
        "--log-target",
        "stderr",
        "--log-level",
        "debug",
    ];
    Runtime::start_with(conf, &args, |c| {
        if let Some(s) = state {
            c.env("STATE_DIRECTORY", s);
        }
    })
}

/// The pid the probe `id` recorded (the latest one, after restarts).
pub fn worker_pid(dir: &Path, id: &str) -> u32 {
    events(dir, id)
        .iter()
        .rev()
        .find_map(|e| e.strip_prefix("pid=").map(|p| p.parse().unwrap()))
        .unwrap_or_else(|| panic!("no pid recorded by {id}: {:?}", record(dir)))
}

pub fn count(dir: &Path, line: &str) -> usize {
    record(dir).iter().filter(|l| *l == line).count()
}

pub fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn kill(pid: u32, sig: i32) {
    // SAFETY: signalling a process this test started (directly or through the
    // runtime under test).
    unsafe { libc::kill(pid as i32, sig) };
}

/// Alive and not a zombie.
pub fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}
