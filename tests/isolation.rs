//! `--isolation process`: every Python plugin in its own worker process with
//! its own interpreter, the image shared through memory. Conflicting package
//! versions side by side, the journal across processes, crashes (also while
//! holding image_lock), restarts with back-off and their limit, a worker hung
//! in stop_loop, and no orphans when the supervisor is killed.

mod common;

use std::path::Path;
use std::time::Duration;

use common::workers::*;
use common::*;

fn probe(dir: &TempDir, id: &str, venv: Option<&Path>, extra: &str) -> String {
    conf_line(
        id,
        &fixture_plugin("probe"),
        Some(&probe_config(dir.path(), id, extra)),
        venv,
    )
}

fn start(conf: &Path) -> Runtime {
    Runtime::start(conf, &["--isolation", "process", "--log-target", "stderr"])
}

#[test]
fn conflicting_versions_each_see_their_own_in_their_own_process() {
    let dir = TempDir::new("proc-conflict");
    let v1 = dir.join("venvs/one");
    let v2 = dir.join("venvs/two");
    make_venv(&v1, &["foo==1.0"]);
    make_venv(&v2, &["foo==2.0", "pthdemo"]);
    let imports = "\"imports\": [\"foo\", \"hidden_by_pth\"]";
    let conf = write_conf(
        dir.path(),
        &[
            probe(&dir, "one", Some(&v1), imports),
            probe(&dir, "two", Some(&v2), imports),
        ],
    );
    // Shared mode refuses this; process mode does not, and check says so.
    let (code, _, err) = runtime(&["check"], &conf);
    assert_eq!(code, 78, "{err}");
    let (code, out, err) = runtime(&["check", "--isolation", "process"], &conf);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!err.contains("would share"), "{err}");
    assert!(
        out.contains("one: ok (python, venv")
            && out.contains("imports in its own process, has init"),
        "{out}"
    );
    assert!(record(dir.path()).is_empty(), "check called into a plugin");

    let mut rt = start(&conf);
    rt.wait_log(
        "running: 2 plugin(s) running, 0 failed",
        Duration::from_secs(30),
    );
    rt.stop_ok();
    let one = events(dir.path(), "one");
    let two = events(dir.path(), "two");
    assert!(one.contains(&"import foo ok 1.0".to_string()), "{one:?}");
    assert!(two.contains(&"import foo ok 2.0".to_string()), "{two:?}");
    // Only its own venv: `one` does not see what two's venv's .pth adds.
    assert!(
        one.contains(&"import hidden_by_pth failed ModuleNotFoundError".to_string()),
        "{one:?}"
    );
    assert!(
        two.contains(&"import hidden_by_pth ok found through pthdemo.pth".to_string()),
        "{two:?}"
    );
    let (p1, p2) = (worker_pid(dir.path(), "one"), worker_pid(dir.path(), "two"));
    assert!(p1 != p2 && p1 != rt.child.id() && p2 != rt.child.id());
    assert_eq!(
        lifecycle(dir.path()),
        [
            "one:init",
            "two:init",
            "one:start_loop",
            "two:start_loop",
            "two:stop_loop",
            "one:stop_loop",
            "two:cleanup",
            "one:cleanup"
        ]
    );
    // Stopping leaves no worker behind.
    assert!(!running(p1) && !running(p2));
}

#[test]
fn journal_writes_in_one_worker_are_seen_by_another_under_image_lock() {
    let dir = TempDir::new("proc-journal");
    let conf = write_conf(
        dir.path(),
        &[
            probe(
                &dir,
                "reader",
                None,
                "\"watch_int\": [\"int_input\", 7, 4321]",
            ),
            probe(
                &dir,
                "writer",
                None,
                "\"journal_int\": [[5, 7, 4321]], \"log_text\": \"hello from a worker %s\"",
            ),
            probe(&dir, "bad", None, "\"raise_in\": \"init\""),
        ],
    );
    let mut rt = start(&conf);
    rt.wait_log(
        "running: 2 plugin(s) running, 1 failed (bad)",
        Duration::from_secs(30),
    );
    wait_until("the reader", Duration::from_secs(10), || {
        events(dir.path(), "reader")
            .iter()
            .any(|e| e.starts_with("saw") || e.contains("timed out"))
    });
    rt.stop_ok();
    assert!(
        events(dir.path(), "reader").contains(&"saw int_input[7]=4321".to_string()),
        "{:?}",
        record(dir.path())
    );
    // Log callbacks and tracebacks of workers reach the supervisor's log.
    let log = rt.log_text();
    assert!(log.contains("[writer] hello from a worker %s"), "{log}");
    assert!(
        log.contains("[bad] init() raised")
            && log.contains("RuntimeError: probe was told to fail in init"),
        "{log}"
    );
}

#[test]
fn a_worker_crashing_with_image_lock_held_is_contained_and_the_lock_recovered() {
    let dir = TempDir::new("proc-crash");
    let conf = write_conf(
        dir.path(),
        &[
            probe(&dir, "steady", None, "\"hammer_int\": [5, 1]"),
            probe(&dir, "crasher", None, "\"crash_holding_lock_after_s\": 0.5"),
        ],
    );
    let mut rt = start(&conf);
    rt.wait_log("running: 2 plugin(s) running", Duration::from_secs(30));
    rt.wait_log("[crasher] worker process", Duration::from_secs(10));
    rt.wait_log("died: killed by SIGSEGV (11)", Duration::from_secs(5));
    rt.wait_log(
        "image lock: recovered from a dead owner",
        Duration::from_secs(5),
    );
    rt.wait_log(
        "[crasher] restarting its worker in 250 ms (restart 1 of 5)",
        Duration::from_secs(5),
    );
    wait_until("crasher's second init", Duration::from_secs(10), || {
        count(dir.path(), "crasher:init") >= 2
    });
    rt.stop_ok();
    let log = rt.log_text();
    // The other plugin and the scan loop went on: its hammer thread (locked
    // reads) never blocked, so its stop_loop returned in time.
    assert!(
        !log.contains("[steady] stop_loop() did not return"),
        "{log}"
    );
    assert_eq!(count(dir.path(), "steady:init"), 1);
    assert_eq!(count(dir.path(), "steady:cleanup"), 1);
    let cycles: u64 = log
        .split("stopped: ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(cycles > 20, "{log}");
}

#[test]
fn a_killed_worker_is_restarted_with_exponential_back_off() {
    let dir = TempDir::new("proc-kill");
    let conf = write_conf(
        dir.path(),
        &[
            probe(&dir, "victim", None, ""),
            probe(&dir, "other", None, ""),
        ],
    );
    let mut rt = start(&conf);
    rt.wait_log("running: 2 plugin(s) running", Duration::from_secs(30));
    let first = worker_pid(dir.path(), "victim");
    kill(first, 9);
    rt.wait_log(
        &format!("[victim] worker process {first} died: killed by SIGKILL (9)"),
        Duration::from_secs(10),
    );
    rt.wait_log(
        "[victim] restarting its worker in 250 ms (restart 1 of 5)",
        Duration::from_secs(5),
    );
    wait_until("victim's second start", Duration::from_secs(10), || {
        count(dir.path(), "victim:start_loop") == 2
    });
    let second = worker_pid(dir.path(), "victim");
    assert_ne!(first, second);
    kill(second, 9);
    rt.wait_log(
        "[victim] restarting its worker in 500 ms (restart 2 of 5)",
        Duration::from_secs(10),
    );
    wait_until("victim's third start", Duration::from_secs(10), || {
        count(dir.path(), "victim:start_loop") == 3
    });
    rt.stop_ok();
    // The other plugin was never touched.
    assert_eq!(count(dir.path(), "other:init"), 1);
    assert_eq!(count(dir.path(), "other:stop_loop"), 1);
    // Killed workers get no stop_loop/cleanup; the last one stops normally.
    assert_eq!(count(dir.path(), "victim:stop_loop"), 1);
    assert_eq!(count(dir.path(), "victim:cleanup"), 1);
}

#[test]
fn after_too_many_restarts_the_plugin_is_marked_failed() {
    let dir = TempDir::new("proc-limit");
    let conf = write_conf(
        dir.path(),
        &[
            probe(&dir, "doomed", None, "\"exit_in\": \"start_loop\""),
            probe(&dir, "fine", None, ""),
        ],
    );
    let mut rt = start(&conf);
    rt.wait_log(
        "[doomed] its worker died 6 times in a row; giving up",
        Duration::from_secs(60),
    );
    assert_eq!(count(dir.path(), "doomed:start_loop"), 6);
    assert!(rt.log_text().contains("exited with code 3"));
    rt.stop_ok();
    assert_eq!(count(dir.path(), "fine:stop_loop"), 1);
}

#[test]
fn a_worker_hanging_in_stop_loop_is_killed_after_its_budget() {
    let dir = TempDir::new("proc-hang");
    let conf = write_conf(
        dir.path(),
        &[
            probe(&dir, "a", None, ""),
            probe(&dir, "stuck", None, "\"hang_in\": \"stop_loop\""),
        ],
    );
    let mut rt = start(&conf);
    rt.wait_log("running: 2 plugin(s) running", Duration::from_secs(30));
    let stuck = worker_pid(dir.path(), "stuck");
    rt.stop_ok();
    assert!(
        rt.log_text().contains(
            "[stuck] stop_loop() did not return within 5 s; its worker process is killed"
        ),
        "{}",
        rt.log_text()
    );
    assert!(!running(stuck));
    assert_eq!(
        lifecycle(dir.path()),
        [
            "a:init",
            "stuck:init",
            "a:start_loop",
            "stuck:start_loop",
            "stuck:stop_loop",
            "a:stop_loop",
            "a:cleanup"
        ]
    );
}

#[test]
fn killing_the_supervisor_leaves_no_worker_behind() {
    let dir = TempDir::new("proc-orphans");
    let conf = write_conf(
        dir.path(),
        &[probe(&dir, "a", None, ""), probe(&dir, "b", None, "")],
    );
    let mut rt = start(&conf);
    rt.wait_log("running: 2 plugin(s) running", Duration::from_secs(30));
    let pids = [worker_pid(dir.path(), "a"), worker_pid(dir.path(), "b")];
    assert!(pids.iter().all(|&p| running(p)));
    kill(rt.child.id(), 9);
    let _ = rt.child.wait();
    wait_until("the workers to die", Duration::from_secs(10), || {
        pids.iter().all(|&p| !running(p))
    });
}

/// The zygote preloads `struct` (a learned list from an earlier run says so);
/// a venv whose `.pth` installs a finder serving its own `struct` (as
/// setuptools does for `distutils`) must still get its own module in its
/// worker, exactly as a re-executed worker does, and a plugin without it gets
/// the stdlib's.
#[test]
fn a_venv_shadowing_a_preloaded_stdlib_module_gets_its_own_module() {
    for how in ["zygote", "exec"] {
        let dir = TempDir::new(&format!("proc-shadow-{how}"));
        let shadowed = dir.join("venvs/shadowed");
        let plain = dir.join("venvs/plain");
        make_venv(&shadowed, &["shadowstruct"]);
        make_venv(&plain, &["foo==1.0"]);
        let imports = "\"imports\": [\"struct\"]";
        let conf = write_conf(
            dir.path(),
            &[
                probe(&dir, "shadowed", Some(&shadowed), imports),
                probe(&dir, "plain", Some(&plain), imports),
            ],
        );
        let state = dir.join("state");
        std::fs::create_dir_all(&state).unwrap();
        std::fs::write(state.join("zygote-preload.txt"), "# learned\nstruct\n").unwrap();
        let mut rt = start_debug(&conf, how, Some(&state));
        rt.wait_log(
            "running: 2 plugin(s) running, 0 failed",
            Duration::from_secs(30),
        );
        rt.stop_ok();
        let log = rt.log_text();
        assert!(
            events(dir.path(), "shadowed")
                .contains(&"import struct ok struct from shadowstruct 1.0".to_string()),
            "{how}: {:?}\n{log}",
            record(dir.path())
        );
        assert!(
            events(dir.path(), "plain").contains(&"import struct ok -".to_string()),
            "{how}: {:?}\n{log}",
            record(dir.path())
        );
        if how == "zygote" {
            assert!(log.contains("(1 names asked)"), "{log}");
            assert!(
                log.contains("[shadowed] its sys.path provides its own struct: this worker forgets the zygote's preloaded modules"),
                "{log}"
            );
            assert!(!log.contains("[plain] its sys.path provides"), "{log}");
        } else {
            assert!(!log.contains("zygote"), "{log}");
        }
    }
}

/// What the workers import from the stdlib is kept in the state directory
/// and preloaded by the next run's zygote.
#[test]
fn the_zygote_preloads_what_the_last_run_imported() {
    let dir = TempDir::new("proc-learn");
    let state = dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    let conf = write_conf(
        dir.path(),
        &[probe(&dir, "one", None, "\"imports\": [\"decimal\"]")],
    );
    let learned = state.join("zygote-preload.txt");
    let mut asked = Vec::new();
    for run in 0..2 {
        let mut rt = start_debug(&conf, "zygote", Some(&state));
        rt.wait_log(
            "running: 1 plugin(s) running, 0 failed",
            Duration::from_secs(30),
        );
        wait_until("the learned module list", Duration::from_secs(10), || {
            std::fs::read_to_string(&learned).is_ok_and(|t| t.lines().any(|l| l == "decimal"))
        });
        if run == 0 {
            // The running zygote takes them too, for this run's next forks.
            rt.wait_log("more modules preloaded", Duration::from_secs(10));
        }
        rt.stop_ok();
        let log = rt.log_text();
        let line = log
            .lines()
            .find(|l| l.contains("ready: interpreter started"))
            .unwrap_or_else(|| panic!("run {run}: no zygote ready line:\n{log}"));
        let n: usize = line
            .rsplit_once('(')
            .and_then(|(_, r)| r.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{line}"));
        asked.push(n);
    }
    let text = std::fs::read_to_string(&learned).unwrap();
    // The probe's own imports (json, threading) and what `decimal` pulls in.
    for m in ["json", "threading", "decimal"] {
        assert!(text.lines().any(|l| l == m), "{m} not in {text}");
    }
    // Nothing but stdlib names: not the plugin, not the capsule helper.
    assert!(
        !text
            .lines()
            .any(|l| l.starts_with("openplc") || l == "probe_lib"),
        "{text}"
    );
    assert_eq!(asked[0], 0, "first run: nothing learned yet");
    assert!(
        asked[1] > asked[0] + 5,
        "second run preloads what the first imported: {asked:?}"
    );
}

/// The zygote is no single point of failure: killed, its workers go with it
/// (no orphans), are restarted as crashed workers are, from a new zygote.
#[test]
fn a_killed_zygote_is_replaced_and_its_workers_restarted() {
    let dir = TempDir::new("proc-zygote-kill");
    let conf = write_conf(
        dir.path(),
        &[probe(&dir, "one", None, ""), probe(&dir, "two", None, "")],
    );
    let mut rt = start_debug(&conf, "zygote", None);
    rt.wait_log(
        "running: 2 plugin(s) running, 0 failed",
        Duration::from_secs(30),
    );
    let log = rt.log_text();
    let zygote: u32 = log
        .split("zygote process ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no zygote pid in:\n{log}"));
    let (one, two) = (worker_pid(dir.path(), "one"), worker_pid(dir.path(), "two"));
    kill(zygote, libc::SIGKILL);
    wait_until(
        "both workers to die with the zygote",
        Duration::from_secs(5),
        || !running(one) && !running(two),
    );
    wait_until("both plugins back", Duration::from_secs(15), || {
        count(dir.path(), "one:start_loop") == 2 && count(dir.path(), "two:start_loop") == 2
    });
    let log = rt.log_text();
    assert!(
        log.contains(&format!("the zygote process {zygote} is gone")),
        "{log}"
    );
    let (one2, two2) = (worker_pid(dir.path(), "one"), worker_pid(dir.path(), "two"));
    assert!(one2 != one && two2 != two && running(one2) && running(two2));
    rt.stop_ok();
}
