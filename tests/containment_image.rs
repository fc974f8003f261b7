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
