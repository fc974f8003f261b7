//! Native (type 1) plugins, built from C with the target's compiler and run by
//! the real binary: lifecycle and cycle-hook order interleaved with Python
//! plugins, the C example driving an output that a Python plugin reads under
//! image_lock, load and init failures, `check`, an overrunning hook in the
//! log and in STATUS, printf-style log callbacks, and a failed start_loop.

mod common;

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;

fn fixture(name: &str) -> PathBuf {
    repo().join("tests/fixtures/native").join(name)
}

/// The recorder fixture built as `<dir>/<label>.so`, recording as `label`.
fn recorder(dir: &TempDir, label: &str, extra: &[&str]) -> PathBuf {
    let mut args = vec![format!("-DLABEL=\"{label}\"")];
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    build_native(
        &fixture("recorder.c"),
        &dir.join(&format!("{label}.so")),
        &args,
    )
}

fn probe(dir: &TempDir, id: &str, extra: &str) -> String {
    conf_line(
        id,
        &fixture_plugin("probe"),
        Some(&probe_config(dir.path(), id, extra)),
        None,
    )
}

/// Waits until the probes' record holds `line`.
fn wait_record(dir: &Path, line: &str, timeout: Duration) {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if record(dir).iter().any(|l| l == line) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("no {line:?} recorded after {timeout:?}: {:?}", record(dir));
}

#[test]
fn lifecycle_and_hook_order_interleave_with_python_plugins() {
    let dir = TempDir::new("native-order");
    let so = recorder(&dir, "n", &[]);
    let rec = dir.join("record.log");
    let conf = write_conf(
        dir.path(),
        &[
            probe(&dir, "a", ""),
            native_line("n", &so, Some(&rec)),
            probe(&dir, "b", ""),
        ],
    );
    let mut rt = Runtime::start(&conf, &["--scan-period", "2ms"]);
    rt.wait_log(
        "running: 3 plugin(s) running, 0 failed",
        Duration::from_secs(30),
    );
    wait_record(dir.path(), "n:cycle_end", Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(100));
    rt.stop_ok();
    // init in file order across both kinds, start_loop after every init,
    // stop_loop and cleanup in reverse.
    assert_eq!(
        lifecycle(dir.path()),
        [
            "a:init",
            "n:init",
            "b:init",
            "a:start_loop",
            "n:start_loop",
            "b:start_loop",
            "b:stop_loop",
            "n:stop_loop",
            "a:stop_loop",
            "b:cleanup",
            "n:cleanup",
            "a:cleanup"
        ]
    );
    // Hooks run only between start_loop and stop_loop, start before end.
    let ev = events(dir.path(), "n");
    assert_eq!(
        ev[..8],
        [
            "init",
            "start_loop",
            "cycle_start",
            "cycle_end",
            "cycle_start",
            "cycle_end",
            "cycle_start",
            "cycle_end"
        ],
        "{ev:?}"
    );
    let cycles: u64 = ev[8]
        .strip_prefix("cycles ")
        .unwrap_or_else(|| panic!("{ev:?}"))
        .parse()
        .unwrap();
    assert!(cycles >= 10, "{ev:?}");
    assert_eq!(ev[9..], ["stop_loop", "late 0", "cleanup"], "{ev:?}");
}

#[test]
fn the_c_example_drives_outputs_that_a_python_plugin_reads() {
    let dir = TempDir::new("native-example");
    let so = build_native(
        &repo().join("examples/native/counter_plugin.c"),
        &dir.join("counter_plugin.so"),
        &[],
    );
    let conf = write_conf(
        dir.path(),
        &[
            native_line("counter", &so, None),
            probe(
                &dir,
                "watcher",
                // %IW0 = 4242 through the journal; the C plugin copies it to
                // %QW1 and counts %QW0 up every cycle.
                "\"journal_int\": [[5, 0, 4242]], \"watch_int\": [\"int_output\", 1, 4242], \"watch_changes\": [\"int_output\", 0, 5]",
            ),
        ],
    );
    let mut rt = Runtime::start(&conf, &["--scan-period", "5ms"]);
    rt.wait_log(
        "running: 2 plugin(s) running, 0 failed",
        Duration::from_secs(30),
    );
    wait_record(
        dir.path(),
        "watcher:saw int_output[0] change 5 times",
        Duration::from_secs(15),
    );
    wait_record(
        dir.path(),
        "watcher:saw int_output[1]=4242",
        Duration::from_secs(15),
    );
    rt.stop_ok();
    let log = rt.log_text();
    for line in [
        "[counter] counter_plugin: init (buffer_size 1024, scan period 5000 us)",
        "[counter] counter_plugin: started",
        "[counter] counter_plugin: stopped after ",
        "[counter] counter_plugin: cleanup",
    ] {
        assert!(log.contains(line), "no {line:?} in:\n{log}");
    }
}

/// OpenPLC's debugger callbacks from a native plugin on the scan thread, with
/// the Python plugins in worker processes (the same shared image): it reads
/// what one journaled and writes what another then reads; its capsule names
/// its writable state directory.
#[test]
fn a_native_plugin_reads_and_writes_through_the_debugger_callbacks() {
    let dir = TempDir::new("native-debugger");
    let state = dir.join("state");
    let so = build_native(&fixture("debugger.c"), &dir.join("debugger.so"), &[]);
    let rec = dir.join("record.log");
    let conf = write_conf(
        dir.path(),
        &[
            native_line("debugger", &so, Some(&rec)),
            probe(
                &dir,
                "w",
                "\"journal_int\": [[5, 0, 4242]], \"watch_int\": [\"int_output\", 2, 1337], \"watch_timeout_s\": 60",
            ),
            probe(
                &dir,
                "x",
                "\"watch_int\": [\"bool_output\", 1, 1, 1], \"watch_timeout_s\": 60",
            ),
        ],
    );
    let mut rt = Runtime::start_with(
        &conf,
        &["--scan-period", "5ms", "--isolation", "process"],
        |cmd| {
            cmd.env("STATE_DIRECTORY", &state);
        },
    );
    rt.wait_log(
        "running: 3 plugin(s) running, 0 failed",
        Duration::from_secs(30),
    );
    wait_record(
        dir.path(),
        "w:saw int_output[2]=1337",
        Duration::from_secs(60),
    );
    wait_record(
        dir.path(),
        "x:saw bool_output[1.1]=1",
        Duration::from_secs(60),
    );
    rt.stop_ok();
    let dbg = events(dir.path(), "debugger");
    let want_state = format!("state_dir={}", state.join("plugins/debugger").display());
    assert_eq!(
        dbg,
        [
            "arrays 14 sizes 2 1 0",
            want_state.as_str(),
            "read IW0=4242",
            "write QW2 0x7e QX1.1 0x7e short 0x82",
        ],
        "{}",
        rt.log_text()
    );
}

#[test]
fn load_and_init_failures_name_the_plugin_and_the_others_keep_running() {
    let dir = TempDir::new("native-fail");
    let rec = dir.join("record.log");
    let noinit = build_native(&fixture("noinit.c"), &dir.join("noinit.so"), &[]);
    let unresolved = build_native(&fixture("unresolved.c"), &dir.join("unresolved.so"), &[]);
    let fails = recorder(&dir, "fails", &["-DINIT_RESULT=1"]);
    let good = recorder(&dir, "good", &["-DNO_START_LOOP"]);
    let conf = write_conf(
        dir.path(),
        &[
            native_line("noinit", &noinit, None),
            native_line("fails", &fails, Some(&rec)),
            native_line("unresolved", &unresolved, None),
            native_line("good", &good, Some(&rec)),
            probe(&dir, "py", ""),
        ],
    );
    let mut rt = Runtime::start(&conf, &["--scan-period", "2ms"]);
    rt.wait_log(
        "running: 2 plugin(s) running, 3 failed (noinit, fails, unresolved)",
        Duration::from_secs(30),
    );
    wait_record(dir.path(), "good:cycle_end", Duration::from_secs(10));
    rt.stop_ok();
    let log = rt.log_text();
    for needle in [
        format!("[noinit] {} has no init symbol", noinit.display()),
        "[fails] init() returned 1 (0 = success); the plugin is marked failed".to_string(),
        format!("[unresolved] cannot load {}: ", unresolved.display()),
        "openplc_test_no_such_function".to_string(),
    ] {
        assert!(log.contains(&needle), "no {needle:?} in:\n{log}");
    }
    // init failed: cleanup is still owed (init ran), but no hook ever runs.
    assert_eq!(events(dir.path(), "fails"), ["init", "late 0", "cleanup"]);
    // start_loop is optional; the hooks run without it.
    let good_ev = events(dir.path(), "good");
    assert_eq!(
        good_ev[..3],
        ["init", "cycle_start", "cycle_end"],
        "{good_ev:?}"
    );
    assert_eq!(
        good_ev[good_ev.len() - 3..],
        ["stop_loop", "late 0", "cleanup"]
    );
    assert_eq!(
        events(dir.path(), "py")
            .into_iter()
            .filter(|e| !e.starts_with("capsule")
                && !e.starts_with("sys.path")
                && !e.starts_with("pid="))
            .collect::<Vec<_>>(),
        ["init", "start_loop", "stop_loop", "cleanup"]
    );
}

/// OpenPLC declares the log callbacks `void log_info(const char *fmt, ...)`
/// and its native plugins log through `log_func("%s", message)`: the
/// runtime formats native calls with the C library. Python plugins pass the
/// message itself, which is printed as text, `%` and all; with the Python
/// plugin in the supervisor (shared) and in a worker (process).
#[test]
fn native_log_calls_are_formatted_and_python_messages_stay_text() {
    for isolation in ["shared", "process"] {
        let dir = TempDir::new(&format!("native-log-{isolation}"));
        let so = build_native(&fixture("logger.c"), &dir.join("logger.so"), &[]);
        let conf = write_conf(
            dir.path(),
            &[
                native_line("nlog", &so, None),
                probe(&dir, "py", "\"log_text\": \"100% %s %d done\""),
            ],
        );
        let mut rt = Runtime::start(&conf, &["--log-level", "debug", "--isolation", isolation]);
        rt.wait_log(
            "running: 2 plugin(s) running, 0 failed",
            Duration::from_secs(30),
        );
        rt.wait_log("[py] 100% %s %d done", Duration::from_secs(10));
        rt.stop_ok();
        let log = rt.log_text();
        let cut = format!(
            "[nlog] {} [truncated: 5003 bytes, the first 4095 shown]",
            "a".repeat(4095)
        );
        for needle in [
            "[nlog] x=5",
            "[nlog] [LOGGER] 100% %s %d done",
            "[nlog] pi~3.14 u=42 c=z",
            cut.as_str(),
            "[py] 100% %s %d done",
        ] {
            assert!(
                log.contains(needle),
                "{isolation}: no {needle:?} in:\n{log}"
            );
        }
        assert!(!log.contains("[nlog] %s"), "{isolation}: {log}");
        assert!(!log.contains("aEND"), "{isolation}: not truncated");
    }
}

/// OpenPLC's `int start_loop(void)`: non-zero is "failed to start" (S7Comm
/// returns -1 when its port is taken). The plugin is counted failed, its
/// hooks never run and its cleanup still does.
#[test]
fn a_native_start_loop_returning_non_zero_marks_the_plugin_failed() {
    let dir = TempDir::new("native-start-fails");
    let rec = dir.join("record.log");
    let bad = recorder(&dir, "bad", &["-DSTART_RESULT=-1"]);
    let good = recorder(&dir, "good", &[]);
    let conf = write_conf(
        dir.path(),
        &[
            native_line("bad", &bad, Some(&rec)),
            native_line("good", &good, Some(&rec)),
        ],
    );
    let mut rt = Runtime::start(&conf, &["--scan-period", "2ms"]);
    rt.wait_log(
        "running: 1 plugin(s) running, 1 failed (bad)",
        Duration::from_secs(30),
    );
    wait_record(dir.path(), "good:cycle_end", Duration::from_secs(10));
    rt.stop_ok();
    let log = rt.log_text();
    assert!(
        log.contains("[bad] start_loop() returned -1 (0 = success); the plugin is marked failed"),
        "{log}"
    );
    // Not running: no hook, no stop_loop; cleanup is owed since init ran.
    assert_eq!(
        events(dir.path(), "bad"),
        ["init", "start_loop", "late 0", "cleanup"]
    );
}

#[test]
fn check_loads_native_plugins_without_calling_them() {
    let dir = TempDir::new("native-check");
    let rec = dir.join("record.log");
    let good = recorder(&dir, "good", &[]);
    let noinit = build_native(&fixture("noinit.c"), &dir.join("noinit.so"), &[]);
    let unresolved = build_native(&fixture("unresolved.c"), &dir.join("unresolved.so"), &[]);
    let missing = dir.join("missing.so");
    let conf = write_conf(
        dir.path(),
        &[
            native_line("good", &good, Some(&rec)),
            native_line("noinit", &noinit, None),
            native_line("unresolved", &unresolved, None),
            native_line("missing", &missing, None),
        ],
    );
    let (code, out, err) = runtime(&["check"], &conf);
    assert_eq!(code, 78, "{out}\n{err}");
    let lines: Vec<&str> = out.lines().collect();
    let file = conf.display();
    // Each listed plugin ends with where it is defined.
    assert!(
        lines.contains(
            &format!("good: ok (native, init, start_loop, stop_loop, cycle_start, cycle_end, cleanup), {file}:1").as_str()
        ),
        "{out}"
    );
    for (line, name) in ["noinit", "unresolved", "missing"].iter().enumerate() {
        assert!(
            lines.contains(&format!("{name}: error (see below), {file}:{}", line + 2).as_str()),
            "{out}"
        );
    }
    for needle in [
        format!(
            "{file}:2: plugin `noinit`: {} has no init symbol",
            noinit.display()
        ),
        format!(
            "{file}:3: plugin `unresolved`: cannot load {}: ",
            unresolved.display()
        ),
        "undefined symbol: openplc_test_no_such_function".to_string(),
        format!(
            "{file}:4: field 2 (path): plugin `missing`: cannot open {}",
            missing.display()
        ),
    ] {
        assert!(err.contains(&needle), "no {needle:?} in:\n{err}");
    }
    assert!(
        record(dir.path()).is_empty(),
        "check called into the plugin"
    );

    // The missing file is a configuration error for the daemon too.
    let (code, _, err) = runtime(&[], &conf);
    assert_eq!(code, 78, "{err}");
    assert!(err.contains("plugin `missing`"), "{err}");
}

#[test]
fn an_overrunning_hook_shows_in_the_log_and_in_status() {
    let dir = TempDir::new("native-slow");
    let slow = recorder(&dir, "slow", &["-DCYCLE_END_US=3000"]);
    let rec = dir.join("record.log");
    let conf = write_conf(dir.path(), &[native_line("slow", &slow, Some(&rec))]);
    let sock_path = dir.join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut rt = Runtime::start_with(&conf, &["--scan-period", "1ms"], |c| {
        c.env("NOTIFY_SOCKET", &sock_path);
    });
    rt.wait_log("native cycle hooks took up to", Duration::from_secs(30));
    let log = rt.log_text();
    assert!(log.contains("(slowest: [slow] "), "{log}");
    let end = Instant::now() + Duration::from_secs(10);
    let mut buf = vec![0u8; 4096];
    let mut statuses = Vec::new();
    while Instant::now() < end {
        if let Ok(n) = sock.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            if msg.contains("STATUS=") && msg.contains("native cycle hooks took up to") {
                assert!(msg.contains("[slow]"), "{msg}");
                statuses.push(msg);
                break;
            }
            statuses.push(msg);
        }
    }
    assert!(
        statuses
            .last()
            .is_some_and(|m| m.contains("native cycle hooks")),
        "no STATUS with the slow hook: {statuses:?}"
    );
    rt.stop_ok();
}

/// A native plugin runs in the runtime's own process: its segfault ends the
/// process (by SIGSEGV, not a hang), and systemd's Restart=on-failure, bounded
/// by StartLimitBurst, takes over. Containment is what process isolation is
/// for (Python plugins).
#[test]
fn a_segfaulting_native_plugin_ends_the_process_by_its_signal() {
    let dir = TempDir::new("native-segv");
    let segv = build_native(&fixture("segv.c"), &dir.join("segv.so"), &[]);
    let conf = write_conf(dir.path(), &[native_line("segv", &segv, None)]);
    let mut rt = Runtime::start(&conf, &["--log-target", "stderr"]);
    rt.wait_exit(Duration::from_secs(30));
    let status = rt.child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGSEGV), "{}", rt.log_text());
}

#[test]
fn waiting_for_a_hanging_cycle_hook_at_stop_still_serves_signals() {
    // The supervisor waits for the scan thread to leave a stopping plugin's
    // hooks while serving signals and the watchdog (it used to sleep for up
    // to 2 s on its main thread): a second SIGTERM a second later leaves at
    // once, naming what it waited for.
    let dir = TempDir::new("native-hook-wait");
    let so = recorder(&dir, "slow", &["-DCYCLE_END_US=20000000"]);
    let rec = dir.join("slow.rec");
    let conf = write_conf(dir.path(), &[native_line("slow", &so, Some(&rec))]);
    let mut rt = Runtime::start(&conf, &["--log-target", "stderr", "--scan-priority", "0"]);
    rt.wait_log("running:", Duration::from_secs(30));
    // The first cycle_end has begun (it records only its first calls).
    let end = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&rec)
        .unwrap_or_default()
        .contains("slow:cycle_start")
    {
        assert!(Instant::now() < end, "no cycle_start recorded");
        std::thread::sleep(Duration::from_millis(10));
    }
    rt.signal(libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(1300));
    rt.signal(libc::SIGTERM);
    assert_eq!(
        rt.wait_exit(Duration::from_secs(20)),
        70,
        "{}",
        rt.log_text()
    );
    assert!(
        rt.log_text()
            .contains("second stop signal while [slow] cycle hooks' end() is still running"),
        "{}",
        rt.log_text()
    );
}
