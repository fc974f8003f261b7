//! A worker shares the image mapping and can write anything there: these
//! tests run a real buggy Python plugin under `--isolation process` that
//! writes over its own journal ring through ctypes (at the address the
//! capsule's tables live in), and check what the runtime's own reports say:
//! the scan keeps cycling (STATUS counts cycles up across reports), and the
//! log names the plugin and says its ring is corrupt.

mod common;

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use common::*;

/// The scribbler fixture as the first (callback slot 0, journal ring 1) and
/// only plugin, writing over its ring in `mode`.
fn start_scribbler(dir: &TempDir, mode: &str) -> (Runtime, UnixDatagram) {
    let cfg = dir.join("scribbler.json");
    std::fs::write(
        &cfg,
        format!("{{\"mode\": \"{mode}\", \"ring\": 1, \"every_s\": 0.3}}"),
    )
    .unwrap();
    let conf = write_conf(
        dir.path(),
        &[conf_line(
            "scribbler",
            &fixture_plugin("scribbler"),
            Some(&cfg),
            None,
        )],
    );
    let sock_path = dir.join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let rt = Runtime::start_with(
        &conf,
        &["--isolation", "process", "--log-target", "stderr"],
        |c| {
            c.env("NOTIFY_SOCKET", &sock_path);
        },
    );
    (rt, sock)
}

/// The cycle counts of the next `n` STATUS= reports that carry one.
fn status_cycles(sock: &UnixDatagram, rt: &Runtime, n: usize) -> Vec<u64> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let end = Instant::now() + Duration::from_secs(30);
    while seen.len() < n {
        assert!(
            Instant::now() < end,
            "only {seen:?} from STATUS in 30 s:\n{}",
            rt.log_text()
        );
        let Ok(len) = sock.recv(&mut buf) else {
            continue;
        };
        let msg = String::from_utf8_lossy(&buf[..len]);
        let cycles = msg
            .lines()
            .filter_map(|l| l.strip_prefix("STATUS="))
            .find_map(|s| {
                let before = s.split(" cycle(s)").next()?;
                before.rsplit(' ').next()?.parse::<u64>().ok()
            });
        if let Some(c) = cycles {
            seen.push(c);
        }
    }
    seen
}

/// The scribbler has written over its ring at least twice (so the scan has
/// met it more than once), the log says what was found, and the scan keeps
/// counting cycles across the next reports.
fn assert_contained(mode: &str, found: &str) {
    let dir = TempDir::new(&format!("scribble-{mode}"));
    let (mut rt, sock) = start_scribbler(&dir, mode);
    rt.wait_log(
        "journal ring 1 ([scribbler]'s worker) is corrupt: ",
        Duration::from_secs(30),
    );
    rt.wait_log(found, Duration::from_secs(30));
    // Reports queued before the corruption are of no interest: drain them.
    sock.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 4096];
    while sock.recv(&mut buf).is_ok() {}
    sock.set_nonblocking(false).unwrap();
    let cycles = status_cycles(&sock, &rt, 4);
    assert!(
        cycles.windows(2).all(|w| w[1] > w[0]),
        "the scan stopped counting cycles: STATUS said {cycles:?}\n{}",
        rt.log_text()
    );
    let log = rt.log_text();
    assert!(
        log.matches("scribbled over journal ring 1").count() >= 2,
        "{log}"
    );
    rt.stop_ok();
}

#[test]
fn a_worker_that_forges_its_rings_tail_and_reset_flag_cannot_stall_the_scan() {
    assert_contained("tail_reset", "its tail is 4611686018427387904");
}

#[test]
fn a_worker_that_forges_sequence_numbers_cannot_stall_the_scan() {
    assert_contained(
        "forge_seq",
        "its oldest slot's sequence number is 244837814042624",
    );
}

/// The longest publish-to-apply wait (us) the log reports for `ring_owner`.
fn longest_wait_us(log: &str, ring_owner: &str) -> u64 {
    log.lines()
        .filter(|l| l.contains(ring_owner))
        .filter_map(|l| l.split(", max ").nth(1)?.split(" us").next()?.parse().ok())
        .max()
        .unwrap_or(0)
}

#[test]
fn a_worker_frozen_holding_the_lock_is_named_and_the_waits_it_causes_are_counted() {
    // Issue 24's finding 9: a frozen worker that holds the image lock holds
    // up every other plugin's writes; the runtime's own figures must say so
    // (who holds it, by thread and process; how long the other ring waited).
    let dir = TempDir::new("frozen-holder");
    let cfg = dir.join("frozen.json");
    std::fs::write(
        &cfg,
        "{\"mode\": \"freeze_holding_lock\", \"ring\": 1, \"every_s\": 1.0}",
    )
    .unwrap();
    let writer = probe_config(dir.path(), "writer", "\"hammer_int\": [7, 1]");
    let conf = write_conf(
        dir.path(),
        &[
            conf_line("frozen", &fixture_plugin("scribbler"), Some(&cfg), None),
            conf_line("writer", &fixture_plugin("probe"), Some(&writer), None),
        ],
    );
    let mut rt = Runtime::start(
        &conf,
        &[
            "--isolation",
            "process",
            "--log-target",
            "stderr",
            "--log-level",
            "debug",
        ],
    );
    let needle = "stopping itself with the image lock held: pid ";
    rt.wait_log(needle, Duration::from_secs(30));
    let log = rt.log_text();
    let pid: i32 = log
        .split(needle)
        .nth(1)
        .and_then(|s| s.lines().next())
        .and_then(|s| s.trim().parse().ok())
        .unwrap();
    std::thread::sleep(Duration::from_millis(600));
    // SAFETY: continuing the frozen worker, a process this test's runtime started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGCONT) }, 0);
    rt.wait_log("continued; image lock released", Duration::from_secs(30));
    rt.wait_log(
        "the image lock was still held half a period after the wake-up, last by [frozen] (thread ",
        Duration::from_secs(30),
    );
    rt.wait_log("of [frozen]'s worker)", Duration::from_secs(30));
    rt.wait_log(
        "journal ring 2 ([writer]'s worker): ",
        Duration::from_secs(30),
    );
    rt.stop_ok();
    // The writer's last write before it blocked on the lock waited for the
    // freeze (600 ms from the moment the log line was seen): a lower bound
    // set by the test, not by the machine's speed.
    let waited = longest_wait_us(&rt.log_text(), "journal ring 2 ([writer]'s worker)");
    assert!(
        waited >= 300_000,
        "longest wait {waited} us:\n{}",
        rt.log_text()
    );
}

#[test]
fn a_worker_that_writes_a_made_up_owner_into_the_image_mutex_cannot_abort_the_runtime() {
    if !cfg!(target_env = "gnu") {
        skip(
            "a_worker_that_writes_a_made_up_owner_into_the_image_mutex_cannot_abort_the_runtime",
            "the fixture writes glibc's mutex layout",
        );
        return;
    }
    // glibc aborts a process whose wait on a robust PI mutex meets an owner
    // thread that does not exist; the old runtime died of SIGABRT here.
    let dir = TempDir::new("scribble-ghost");
    let (mut rt, _sock) = start_scribbler(&dir, "ghost_lock");
    rt.wait_log(
        "its owner word naming thread 1073741808, which does not exist): the mutex in the shared image mapping is corrupt",
        Duration::from_secs(30),
    );
    rt.wait_log(
        "scribbled over journal ring 1 (ghost_lock)",
        Duration::from_secs(30),
    );
    // The worker's own image_lock() on that mutex fails too: told from the
    // worker's process, under the plugin's name.
    rt.wait_log(
        "[scribbler] image_lock() could not take the image lock: No such process (os error 3)",
        Duration::from_secs(30),
    );
    assert!(rt.child.try_wait().unwrap().is_none(), "{}", rt.log_text());
    rt.signal(libc::SIGTERM);
    let code = rt.wait_exit(Duration::from_secs(30));
    assert!(code >= 0, "ended by a signal:\n{}", rt.log_text());
}
