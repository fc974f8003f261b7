//! systemd integration of the real binary: the notify protocol over a datagram
//! socket the test binds (path and abstract), the health-gated watchdog,
//! SIGHUP reloads (good, broken, venv change), a stuck stop and a second
//! SIGTERM, syslog and journal output on sockets the test binds, and
//! `systemd-analyze verify` of the unit.

mod common;

use std::os::linux::net::SocketAddrExt;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

const SIGTERM: i32 = 15;
const SIGHUP: i32 = 1;

/// Datagrams received on a socket, with their arrival times.
#[derive(Clone, Default)]
struct Inbox(Arc<Mutex<Vec<(Instant, String)>>>);

impl Inbox {
    fn listen(sock: UnixDatagram) -> Inbox {
        let inbox = Inbox::default();
        let store = inbox.clone();
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            loop {
                if let Ok(n) = sock.recv(&mut buf) {
                    let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                    store.0.lock().unwrap().push((Instant::now(), msg));
                }
            }
        });
        inbox
    }

    fn all(&self) -> Vec<(Instant, String)> {
        self.0.lock().unwrap().clone()
    }

    fn texts(&self) -> Vec<String> {
        self.all().into_iter().map(|(_, m)| m).collect()
    }

    /// Waits for a message containing `needle` (after `from` messages).
    fn wait_for(&self, needle: &str, from: usize, timeout: Duration) -> usize {
        let end = Instant::now() + timeout;
        loop {
            if let Some(i) = self
                .texts()
                .iter()
                .skip(from)
                .position(|m| m.contains(needle))
            {
                return from + i;
            }
            assert!(
                Instant::now() < end,
                "no {needle:?} after {timeout:?}: {:?}",
                self.texts()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn count(&self, needle: &str) -> usize {
        self.texts().iter().filter(|m| m.contains(needle)).count()
    }
}

fn notify_socket(dir: &TempDir) -> (PathBuf, Inbox) {
    let path = dir.join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    (path, Inbox::listen(sock))
}

fn probe(dir: &TempDir, id: &str, extra: &str) -> String {
    conf_line(
        id,
        &fixture_plugin("probe"),
        Some(&probe_config(dir.path(), id, extra)),
        None,
    )
}

fn start_notified(conf: &Path, notify: &str, watchdog_usec: Option<u64>) -> Runtime {
    let notify = notify.to_string();
    Runtime::start_with(conf, &["--log-target", "stderr"], move |c| {
        c.env("NOTIFY_SOCKET", &notify);
        if let Some(u) = watchdog_usec {
            c.env("WATCHDOG_USEC", u.to_string());
        }
    })
}

#[test]
fn ready_after_plugins_started_status_watchdog_cadence_and_stopping() {
    let dir = TempDir::new("notify");
    let (sock, inbox) = notify_socket(&dir);
    let conf = write_conf(
        dir.path(),
        &[
            probe(&dir, "good", ""),
            probe(&dir, "bad", "\"raise_in\": \"init\""),
        ],
    );
    let interval = Duration::from_millis(500);
    let mut rt = start_notified(
        &conf,
        sock.to_str().unwrap(),
        Some(interval.as_micros() as u64),
    );
    let ready = inbox.wait_for("READY=1", 0, Duration::from_secs(30));
    // Everything READY promises had already happened when it was sent.
    let rec = record(dir.path());
    assert!(rec.contains(&"good:start_loop".to_string()), "{rec:?}");
    assert!(rec.contains(&"bad:init".to_string()), "{rec:?}");
    let msgs = inbox.texts();
    assert!(
        msgs[ready].contains("STATUS=1 plugin(s) running, 1 failed (bad); scan 20000 us"),
        "{msgs:?}"
    );
    // EXTEND_TIMEOUT_USEC while each plugin loaded, before READY.
    assert_eq!(
        msgs[..ready]
            .iter()
            .filter(|m| m.contains("EXTEND_TIMEOUT_USEC="))
            .count(),
        2,
        "{msgs:?}"
    );
    std::thread::sleep(Duration::from_millis(2500));
    let pings: Vec<Instant> = inbox
        .all()
        .into_iter()
        .filter(|(_, m)| m.trim() == "WATCHDOG=1")
        .map(|(t, _)| t)
        .collect();
    assert!(pings.len() >= 4, "{} pings in 2.5 s", pings.len());
    // systemd's contract: at least one ping per WATCHDOG_USEC.
    for w in pings.windows(2) {
        assert!(
            w[1] - w[0] <= interval,
            "gap of {:?} between pings",
            w[1] - w[0]
        );
    }
    rt.stop_ok();
    inbox.wait_for("STOPPING=1", ready, Duration::from_secs(5));
}

#[test]
fn abstract_notify_socket() {
    let dir = TempDir::new("abstract");
    let name = format!("openplc-test-{}", std::process::id());
    let sock =
        UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap()).unwrap();
    let inbox = Inbox::listen(sock);
    let conf = write_conf(dir.path(), &[probe(&dir, "a", "")]);
    let mut rt = start_notified(&conf, &format!("@{name}"), None);
    inbox.wait_for("READY=1", 0, Duration::from_secs(30));
    rt.stop_ok();
    assert_eq!(inbox.count("WATCHDOG=1"), 0, "no WATCHDOG_USEC, no pings");
}

#[test]
fn without_notify_socket_it_runs_normally_and_says_so_at_debug_level() {
    let dir = TempDir::new("nonotify");
    let conf = write_conf(dir.path(), &[probe(&dir, "a", "")]);
    let mut rt = Runtime::start_with(
        &conf,
        &["--log-level", "debug", "--log-target", "stderr"],
        |c| {
            c.env_remove("NOTIFY_SOCKET");
        },
    );
    rt.wait_log("NOTIFY_SOCKET is not set", Duration::from_secs(30));
    rt.wait_log("running:", Duration::from_secs(30));
    rt.stop_ok();
}

#[test]
fn watchdog_pings_stop_while_the_scan_loop_is_stalled() {
    let dir = TempDir::new("stall");
    let (sock, inbox) = notify_socket(&dir);
    let conf = write_conf(
        dir.path(),
        &[probe(&dir, "hog", "\"hold_lock_after_s\": 1.0")],
    );
    let mut rt = start_notified(&conf, sock.to_str().unwrap(), Some(400_000));
    inbox.wait_for("READY=1", 0, Duration::from_secs(30));
    inbox.wait_for("WATCHDOG=1", 0, Duration::from_secs(5));
    rt.wait_log(
        "watchdog: not pinging systemd: the scan loop made no progress",
        Duration::from_secs(10),
    );
    let stalled_at = inbox.all().len();
    std::thread::sleep(Duration::from_millis(1500));
    let after: Vec<String> = inbox.texts().into_iter().skip(stalled_at).collect();
    assert!(
        !after.iter().any(|m| m.trim() == "WATCHDOG=1"),
        "pinged while stalled: {after:?}"
    );
    assert!(events(dir.path(), "hog").contains(&"holding image_lock".to_string()));
    // stop_loop releases the lock: the stop is still orderly.
    rt.stop_ok();
}

#[test]
fn watchdog_pings_stop_when_a_plugin_call_is_stuck_past_its_budget() {
    let dir = TempDir::new("stuckcall");
    let (sock, inbox) = notify_socket(&dir);
    let conf = write_conf(
        dir.path(),
        &[
            probe(&dir, "ok", ""),
            probe(&dir, "slow", "\"hang_in\": \"start_loop\""),
        ],
    );
    let mut rt = start_notified(&conf, sock.to_str().unwrap(), Some(1_000_000));
    // While start_loop is within its 10 s budget the runtime stays alive...
    inbox.wait_for("WATCHDOG=1", 0, Duration::from_secs(30));
    // ...then the call is stuck: READY with the failure, and no more pings.
    let ready = inbox.wait_for("READY=1", 0, Duration::from_secs(30));
    assert!(
        inbox.texts()[ready].contains("1 failed (slow)"),
        "{:?}",
        inbox.texts()
    );
    assert!(
        inbox.texts()[ready].contains("STUCK: [slow] start_loop()"),
        "{:?}",
        inbox.texts()
    );
    rt.wait_log(
        "[slow] start_loop() is stuck past its time budget",
        Duration::from_secs(5),
    );
    let n = inbox.all().len();
    std::thread::sleep(Duration::from_millis(2500));
    assert!(
        !inbox.texts()[n..].iter().any(|m| m.trim() == "WATCHDOG=1"),
        "{:?}",
        inbox.texts()
    );
    rt.stop_ok();
}

#[test]
fn a_second_sigterm_during_a_stuck_stop_exits_at_once_naming_the_plugin() {
    let dir = TempDir::new("second");
    let conf = write_conf(
        dir.path(),
        &[
            probe(&dir, "a", ""),
            probe(&dir, "stuck", "\"hang_in\": \"stop_loop\""),
        ],
    );
    let mut rt = Runtime::start(&conf, &["--log-target", "stderr"]);
    rt.wait_log("running:", Duration::from_secs(30));
    rt.signal(SIGTERM);
    let end = Instant::now() + Duration::from_secs(10);
    while !lifecycle(dir.path()).contains(&"stuck:stop_loop".to_string()) {
        assert!(Instant::now() < end);
        std::thread::sleep(Duration::from_millis(10));
    }
    // A repeat within DOUBLE_SIGNAL_GRACE (1 s) is the same request...
    rt.signal(SIGTERM);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        rt.child.try_wait().unwrap().is_none(),
        "a quick repeat must not abandon the stop"
    );
    // ...a later one gives up on the stuck stop.
    std::thread::sleep(Duration::from_millis(1000));
    rt.signal(SIGTERM);
    assert_eq!(rt.wait_exit(Duration::from_secs(20)), 70);
    // It left at once: the 5 s stop budget never ran out.
    assert!(
        !rt.log_text().contains("did not return within"),
        "{}",
        rt.log_text()
    );
    assert!(
        rt.log_text()
            .contains("second stop signal while [stuck] stop_loop() is still running"),
        "{}",
        rt.log_text()
    );
}

#[test]
fn sighup_applies_a_good_config_and_keeps_unchanged_plugins_running() {
    let dir = TempDir::new("reload");
    let (sock, inbox) = notify_socket(&dir);
    let keep = probe(&dir, "keep", "");
    let change_v1 = probe(&dir, "change", "");
    let conf = write_conf(
        dir.path(),
        &[keep.clone(), change_v1, probe(&dir, "gone", "")],
    );
    let mut rt = start_notified(&conf, sock.to_str().unwrap(), None);
    let ready = inbox.wait_for("READY=1", 0, Duration::from_secs(30));
    // `change` gets another config file; `gone` is removed; `new` is added.
    let other = dir.join("change2.json");
    std::fs::copy(dir.join("change.json"), &other).unwrap();
    let change_v2 = conf_line("change", &fixture_plugin("probe"), Some(&other), None);
    write_conf(dir.path(), &[keep, change_v2, probe(&dir, "new", "")]);
    rt.signal(SIGHUP);
    let reloading = inbox.wait_for("RELOADING=1", ready + 1, Duration::from_secs(10));
    assert!(
        inbox.texts()[reloading].contains("MONOTONIC_USEC="),
        "{:?}",
        inbox.texts()
    );
    let ready2 = inbox.wait_for("READY=1", reloading, Duration::from_secs(30));
    assert!(
        inbox.texts()[ready2].contains("STATUS=3 plugin(s) running, 0 failed")
            && inbox.texts()[ready2].contains("reload ok: 2 started, 2 stopped"),
        "{:?}",
        inbox.texts()
    );
    rt.stop_ok();
    assert_eq!(
        lifecycle(dir.path()),
        [
            "keep:init",
            "change:init",
            "gone:init",
            "keep:start_loop",
            "change:start_loop",
            "gone:start_loop",
            // reload: removed and changed plugins stop (reverse order), then
            // the changed and new ones start; `keep` is not touched.
            "gone:stop_loop",
            "change:stop_loop",
            "gone:cleanup",
            "change:cleanup",
            "change:init",
            "new:init",
            "change:start_loop",
            "new:start_loop",
            // shutdown, reverse file order: keep, change, new
            "new:stop_loop",
            "change:stop_loop",
            "keep:stop_loop",
            "new:cleanup",
            "change:cleanup",
            "keep:cleanup",
        ]
    );
}

#[test]
fn sighup_with_a_broken_config_changes_nothing_and_says_reload_failed() {
    let dir = TempDir::new("badreload");
    let (sock, inbox) = notify_socket(&dir);
    let good = probe(&dir, "a", "");
    let conf = write_conf(dir.path(), std::slice::from_ref(&good));
    let mut rt = start_notified(&conf, sock.to_str().unwrap(), None);
    let ready = inbox.wait_for("READY=1", 0, Duration::from_secs(30));
    write_conf(dir.path(), &[good, "b,/nonexistent.py,maybe,0".to_string()]);
    rt.signal(SIGHUP);
    let ready2 = inbox.wait_for("READY=1", ready + 1, Duration::from_secs(30));
    assert!(
        inbox.texts()[ready2]
            .contains("reload failed (1 problem(s) in plugins.conf), running set unchanged"),
        "{:?}",
        inbox.texts()
    );
    assert!(
        inbox.texts()[ready2].contains("1 plugin(s) running"),
        "{:?}",
        inbox.texts()
    );
    let log = rt.log_text();
    assert!(
        log.contains("reload: ")
            && log.contains("plugins.conf:2: field 3 (enabled): `maybe` is not 0 or 1"),
        "{log}"
    );
    rt.stop_ok();
    assert_eq!(
        lifecycle(dir.path()),
        ["a:init", "a:start_loop", "a:stop_loop", "a:cleanup"]
    );
}

#[test]
fn sighup_with_a_changed_venv_in_shared_mode_asks_for_a_restart() {
    let dir = TempDir::new("venvreload");
    let (sock, inbox) = notify_socket(&dir);
    let v1 = dir.join("venvs/v1");
    let v2 = dir.join("venvs/v2");
    make_venv(&v1, &["foo==1.0"]);
    make_venv(&v2, &["foo==2.0"]);
    let cfg = probe_config(dir.path(), "p", "");
    let conf = write_conf(
        dir.path(),
        &[conf_line(
            "p",
            &fixture_plugin("probe"),
            Some(&cfg),
            Some(&v1),
        )],
    );
    let mut rt = start_notified(&conf, sock.to_str().unwrap(), None);
    let ready = inbox.wait_for("READY=1", 0, Duration::from_secs(30));
    write_conf(
        dir.path(),
        &[conf_line(
            "p",
            &fixture_plugin("probe"),
            Some(&cfg),
            Some(&v2),
        )],
    );
    rt.signal(SIGHUP);
    let ready2 = inbox.wait_for("READY=1", ready + 1, Duration::from_secs(30));
    assert!(
        inbox.texts()[ready2].contains("restart needed for: p (venv changed)"),
        "{:?}",
        inbox.texts()
    );
    assert!(rt.log_text().contains(
        "reload: p (venv changed): this change takes effect only when the service restarts"
    ));
    rt.stop_ok();
    // Not pretended: the plugin was not restarted.
    assert_eq!(
        lifecycle(dir.path()),
        ["p:init", "p:start_loop", "p:stop_loop", "p:cleanup"]
    );
}

#[test]
fn syslog_target_sends_one_datagram_per_record_as_daemon() {
    let dir = TempDir::new("syslog");
    let path = dir.join("log.sock");
    let inbox = Inbox::listen(UnixDatagram::bind(&path).unwrap());
    let conf = write_conf(
        dir.path(),
        &[
            probe(&dir, "talker", "\"log_text\": \"hello syslog\""),
            probe(&dir, "bad", "\"raise_in\": \"init\""),
        ],
    );
    let mut rt = Runtime::start(
        &conf,
        &[
            "--log-target",
            "syslog",
            "--syslog-socket",
            path.to_str().unwrap(),
        ],
    );
    let pid = rt.child.id();
    inbox.wait_for("hello syslog", 0, Duration::from_secs(30));
    let hello = inbox
        .texts()
        .into_iter()
        .find(|m| m.contains("hello syslog"))
        .unwrap();
    // <30> = facility daemon (3) * 8 + info (6); RFC 3164 tag with our pid.
    assert!(hello.starts_with("<30>"), "{hello}");
    assert!(
        hello.contains(&format!("openplc-runtime[{pid}]: [talker] hello syslog")),
        "{hello}"
    );
    let at = inbox.wait_for("[bad] init() raised", 0, Duration::from_secs(30));
    let tb = inbox.texts()[at].clone();
    assert!(tb.starts_with("<27>"), "{tb}");
    assert!(
        tb.contains("Traceback (most recent call last):\n")
            && tb.contains("RuntimeError: probe was told to fail in init"),
        "one record: {tb}"
    );
    rt.stop_ok();
}

#[test]
fn journal_target_keeps_a_traceback_in_one_entry_and_falls_back_to_prefixed_stderr() {
    let dir = TempDir::new("journal");
    let path = dir.join("journal.sock");
    let inbox = Inbox::listen(UnixDatagram::bind(&path).unwrap());
    let conf = write_conf(dir.path(), &[probe(&dir, "bad", "\"raise_in\": \"init\"")]);
    // auto + $JOURNAL_STREAM naming our stderr = journal.
    let stderr_file = dir.join("runtime.log");
    std::fs::write(&stderr_file, "").unwrap();
    let m = std::fs::metadata(&stderr_file).unwrap();
    let stream = format!("{}:{}", m.dev(), m.ino());
    let s = stream.clone();
    let mut rt = Runtime::start_with(
        &conf,
        &["--journal-socket", path.to_str().unwrap()],
        move |c| {
            c.env("JOURNAL_STREAM", &s);
        },
    );
    // Runtime::start_with recreates runtime.log: refresh the stream id check.
    let m2 = std::fs::metadata(&stderr_file).unwrap();
    assert_eq!(
        format!("{}:{}", m2.dev(), m2.ino()),
        stream,
        "the log file was replaced"
    );
    inbox.wait_for("init() raised", 0, Duration::from_secs(30));
    let entry = inbox
        .texts()
        .into_iter()
        .find(|m| m.contains("init() raised"))
        .unwrap();
    assert!(
        entry.starts_with("PRIORITY=3\nSYSLOG_IDENTIFIER=openplc-runtime\n"),
        "{entry:?}"
    );
    assert!(entry.contains("OPENPLC_PLUGIN=bad\nMESSAGE\n"), "{entry:?}");
    assert!(
        entry.contains("Traceback (most recent call last):\n"),
        "{entry:?}"
    );
    rt.stop_ok();

    // No journal socket: the same records as <N>-prefixed stderr lines.
    let dir2 = TempDir::new("journal2");
    let conf2 = write_conf(
        dir2.path(),
        &[probe(&dir2, "bad", "\"raise_in\": \"init\"")],
    );
    let mut rt = Runtime::start(
        &conf2,
        &[
            "--log-target",
            "journal",
            "--journal-socket",
            "/nonexistent/socket",
        ],
    );
    rt.wait_log("<3>[bad] init() raised", Duration::from_secs(30));
    rt.wait_log(
        "<3>RuntimeError: probe was told to fail in init",
        Duration::from_secs(5),
    );
    rt.wait_log("<6>running:", Duration::from_secs(5));
    rt.stop_ok();
}

#[test]
fn the_unit_passes_systemd_analyze_verify() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        panic!("systemd-analyze is missing: scripts/install-deps --test installs systemd");
    }
    let dir = TempDir::new("unit");
    let unit = std::fs::read_to_string(
        repo().join("rootfs-overlay/usr/lib/systemd/system/openplc-runtime.service"),
    )
    .unwrap();
    // verify checks that ExecStart exists: point it at the binary under test.
    let unit_path = dir.join("openplc-runtime.service");
    std::fs::write(&unit_path, unit.replace("/usr/bin/openplc-runtime", BIN)).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit_path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.trim().is_empty(),
        "systemd-analyze verify: {err}"
    );
    for line in [
        "Type=notify",
        "NotifyAccess=main",
        "RestartPreventExitStatus=78",
        "WatchdogSec=",
        "ExecReload=",
        "ProtectSystem=strict",
    ] {
        assert!(unit.contains(line), "{line}");
    }
}

/// A `$NOTIFY_SOCKET` nobody reads (its queue full) must not stall the
/// supervisor: messages are dropped and counted, reload and stop still work.
#[test]
fn a_notify_socket_nobody_reads_never_blocks_the_supervisor() {
    let dir = TempDir::new("deafnotify");
    let path = dir.join("deaf.sock");
    // Bound but never read: after the kernel's queue fills, sendmsg blocks.
    let _deaf = UnixDatagram::bind(&path).unwrap();
    let conf = write_conf(dir.path(), &[probe(&dir, "p", "")]);
    // A 20 ms watchdog: a ping every 10 ms fills any queue within seconds.
    let mut rt = start_notified(&conf, path.to_str().unwrap(), Some(20_000));
    rt.wait_log("nobody reads $NOTIFY_SOCKET", Duration::from_secs(30));
    rt.signal(SIGHUP);
    rt.wait_log("reload ok: 0 started, 0 stopped", Duration::from_secs(10));
    rt.signal(SIGTERM);
    assert_eq!(
        rt.wait_exit(Duration::from_secs(10)),
        0,
        "{}",
        rt.log_text()
    );
    assert_eq!(
        lifecycle(dir.path()),
        ["p:init", "p:start_loop", "p:stop_loop", "p:cleanup"]
    );
}
