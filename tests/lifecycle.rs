//! The Python plugin lifecycle, run by the real binary with real plugin files:
//! call order, failures in each lifecycle function, same-basename plugins, the
//! capsule and journal round trip, plugin log text, request_plc_stop, a
//! stop_loop that hangs, and an isolated interpreter.

mod common;

use std::time::Duration;

use common::*;

const SIGTERM: i32 = 15;
const SIGINT: i32 = 2;

fn probe(dir: &TempDir, id: &str, extra: &str) -> String {
    conf_line(
        id,
        &fixture_plugin("probe"),
        Some(&probe_config(dir.path(), id, extra)),
        None,
    )
}

#[test]
fn lifecycle_order_capsule_and_disabled_plugin() {
    let dir = TempDir::new("order");
    let mut lines = vec![
        "# a comment, then a blank line".to_string(),
        String::new(),
        probe(&dir, "a", ""),
        probe(&dir, "b", ""),
    ];
    // Disabled: must be neither imported nor initialised.
    let cfg_d = probe_config(dir.path(), "d", "");
    lines.push(format!(
        "d,{},0,0,{}",
        fixture_plugin("probe").display(),
        cfg_d.display()
    ));
    lines.push(probe(&dir, "c", ""));
    let conf = write_conf(dir.path(), &lines);
    let mut rt = Runtime::start(&conf, &["--scan-period", "5ms"]);
    rt.wait_log(
        "running: 3 plugin(s) running, 0 failed",
        Duration::from_secs(30),
    );
    rt.stop_ok();
    assert_eq!(
        lifecycle(dir.path()),
        [
            "a:init",
            "b:init",
            "c:init",
            "a:start_loop",
            "b:start_loop",
            "c:start_loop",
            "c:stop_loop",
            "b:stop_loop",
            "a:stop_loop",
            "c:cleanup",
            "b:cleanup",
            "a:cleanup"
        ]
    );
    assert!(
        events(dir.path(), "d").is_empty(),
        "disabled plugin ran: {:?}",
        record(dir.path())
    );
    // The capsule as the ctypes mirror of the documented layout reads it.
    let cap = &events(dir.path(), "a")[0];
    assert_eq!(
        cap,
        "capsule buffer_size=1024 bits=8 tick=5000000 ext=(2, 800) magic=0x4f504c43 size=800 name=openplc_plugin_a"
    );
}

#[test]
fn ctrl_c_stops_in_order_too() {
    let dir = TempDir::new("sigint");
    let conf = write_conf(dir.path(), &[probe(&dir, "a", ""), probe(&dir, "b", "")]);
    let mut rt = Runtime::start(&conf, &[]);
    rt.wait_log("running:", Duration::from_secs(30));
    rt.signal(SIGINT);
    assert_eq!(rt.wait_exit(Duration::from_secs(20)), 0);
    assert_eq!(
        lifecycle(dir.path()),
        [
            "a:init",
            "b:init",
            "a:start_loop",
            "b:start_loop",
            "b:stop_loop",
            "a:stop_loop",
            "b:cleanup",
            "a:cleanup"
        ]
    );
}

#[test]
fn an_exception_fails_only_that_plugin_with_its_traceback_logged() {
    let dir = TempDir::new("raise");
    let conf = write_conf(
        dir.path(),
        &[
            probe(&dir, "ok", ""),
            probe(&dir, "r_init", "\"raise_in\": \"init\""),
            probe(&dir, "r_start", "\"raise_in\": \"start_loop\""),
            probe(&dir, "r_stop", "\"raise_in\": \"stop_loop\""),
            probe(&dir, "r_clean", "\"raise_in\": \"cleanup\""),
        ],
    );
    let mut rt = Runtime::start(&conf, &[]);
    rt.wait_log(
        "running: 3 plugin(s) running, 2 failed (r_init, r_start)",
        Duration::from_secs(30),
    );
    rt.stop_ok();
    let ev = |id| {
        events(dir.path(), id)
            .into_iter()
            .filter(|e| {
                !e.starts_with("capsule") && !e.starts_with("sys.path") && !e.starts_with("pid=")
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(ev("ok"), ["init", "start_loop", "stop_loop", "cleanup"]);
    // init raised: never started, but cleanup is owed because init ran.
    assert_eq!(ev("r_init"), ["init", "cleanup"]);
    // start_loop raised: it never started, so no stop_loop.
    assert_eq!(ev("r_start"), ["init", "start_loop", "cleanup"]);
    assert_eq!(ev("r_stop"), ["init", "start_loop", "stop_loop", "cleanup"]);
    assert_eq!(
        ev("r_clean"),
        ["init", "start_loop", "stop_loop", "cleanup"]
    );
    let log = rt.log_text();
    for (id, func) in [
        ("r_init", "init"),
        ("r_start", "start_loop"),
        ("r_stop", "stop_loop"),
        ("r_clean", "cleanup"),
    ] {
        let head = format!("[{id}] {func}() raised");
        let at = log
            .find(&head)
            .unwrap_or_else(|| panic!("no {head:?} in:\n{log}"));
        // The whole traceback is one record following the head line.
        let rest = &log[at..];
        assert!(rest.contains("Traceback (most recent call last):"), "{log}");
        assert!(
            rest.contains(&format!("RuntimeError: probe was told to fail in {func}")),
            "{log}"
        );
    }
}

#[test]
fn missing_init_is_a_clear_failure_and_optional_functions_may_be_missing() {
    let dir = TempDir::new("noinit");
    let conf = write_conf(
        dir.path(),
        &[
            conf_line("noinit", &fixture_plugin("noinit"), None, None),
            conf_line(
                "minimal",
                &fixture_plugin("minimal"),
                Some(&probe_config(dir.path(), "minimal", "")),
                None,
            ),
        ],
    );
    let mut rt = Runtime::start(&conf, &[]);
    rt.wait_log(
        "running: 1 plugin(s) running, 1 failed (noinit)",
        Duration::from_secs(30),
    );
    rt.stop_ok();
    let log = rt.log_text();
    assert!(log.contains("[noinit] has no init() function"), "{log}");
    assert!(log.contains("init(args) is required"), "{log}");
    assert_eq!(lifecycle(dir.path()), ["minimal:init"]);
}

#[test]
fn same_basename_plugins_get_their_own_modules() {
    let dir = TempDir::new("basename");
    let conf = write_conf(
        dir.path(),
        &[
            conf_line(
                "one",
                &fixture_plugin("same_a"),
                Some(&probe_config(dir.path(), "one", "")),
                None,
            ),
            conf_line(
                "two",
                &fixture_plugin("same_b"),
                Some(&probe_config(dir.path(), "two", "")),
                None,
            ),
        ],
    );
    let mut rt = Runtime::start(&conf, &[]);
    rt.wait_log("running: 2 plugin(s) running", Duration::from_secs(30));
    rt.stop_ok();
    let one = events(dir.path(), "one");
    let two = events(dir.path(), "two");
    assert!(one.contains(&"who=a".to_string()), "{one:?}");
    assert!(two.contains(&"who=b".to_string()), "{two:?}");
    assert!(one[0].ends_with("name=openplc_plugin_one"), "{one:?}");
    assert!(two[0].ends_with("name=openplc_plugin_two"), "{two:?}");
}

#[test]
fn journal_write_is_visible_under_image_lock_after_the_next_cycle() {
    let dir = TempDir::new("journal");
    let conf = write_conf(
        dir.path(),
        &[
            // Reader first: it watches before the writer has written.
            probe(&dir, "reader", "\"watch_int\": [\"int_input\", 3, 1234]"),
            // The second write is out of range (buffer_size 64): rejected with -1.
            probe(
                &dir,
                "writer",
                "\"journal_int\": [[5, 3, 1234], [5, 64, 1], [9, 0, 1]]",
            ),
        ],
    );
    let mut rt = Runtime::start(&conf, &["--buffer-size", "64"]);
    rt.wait_log("running: 2 plugin(s) running", Duration::from_secs(30));
    let end = std::time::Instant::now() + Duration::from_secs(10);
    while !events(dir.path(), "reader")
        .iter()
        .any(|e| e.starts_with("saw") || e.contains("timed out"))
    {
        assert!(std::time::Instant::now() < end, "{:?}", record(dir.path()));
        std::thread::sleep(Duration::from_millis(20));
    }
    rt.stop_ok();
    assert!(
        events(dir.path(), "reader").contains(&"saw int_input[3]=1234".to_string()),
        "{:?}",
        record(dir.path())
    );
    let w = events(dir.path(), "writer");
    assert!(w.contains(&"journal 5 3 1234 -> 0".to_string()), "{w:?}");
    assert!(w.contains(&"journal 5 64 1 -> -1".to_string()), "{w:?}");
    // Type 9 (DINT_OUT) through journal_write_int: wrong function, rejected.
    assert!(w.contains(&"journal 9 0 1 -> -1".to_string()), "{w:?}");
    assert!(
        rt.log_text().contains("journal: 2 write(s) rejected"),
        "{}",
        rt.log_text()
    );
}

#[test]
fn plugin_log_text_is_printed_not_interpreted() {
    let dir = TempDir::new("logtext");
    let conf = write_conf(
        dir.path(),
        &[probe(
            &dir,
            "talker",
            "\"log_text\": \"100% %s %d %n done\"",
        )],
    );
    let mut rt = Runtime::start(&conf, &[]);
    rt.wait_log("[talker] 100% %s %d %n done", Duration::from_secs(30));
    rt.stop_ok();
}

#[test]
fn request_plc_stop_stops_the_runtime_in_order() {
    let dir = TempDir::new("reqstop");
    let conf = write_conf(
        dir.path(),
        &[
            probe(&dir, "a", ""),
            probe(&dir, "quitter", "\"stop_after_s\": 0.3"),
        ],
    );
    let mut rt = Runtime::start(&conf, &[]);
    assert_eq!(
        rt.wait_exit(Duration::from_secs(30)),
        0,
        "{}",
        rt.log_text()
    );
    assert_eq!(
        lifecycle(dir.path()),
        [
            "a:init",
            "quitter:init",
            "a:start_loop",
            "quitter:start_loop",
            "quitter:stop_loop",
            "a:stop_loop",
            "quitter:cleanup",
            "a:cleanup"
        ]
    );
    let log = rt.log_text();
    assert!(
        log.contains("[quitter] requested a PLC stop: probe asked to stop"),
        "{log}"
    );
    assert!(log.contains("stopping (request_plc_stop)"), "{log}");
}

#[test]
fn a_hanging_stop_loop_is_reported_and_shutdown_continues() {
    let dir = TempDir::new("hang");
    let conf = write_conf(
        dir.path(),
        &[
            probe(&dir, "a", ""),
            probe(&dir, "stuck", "\"hang_in\": \"stop_loop\""),
        ],
    );
    let mut rt = Runtime::start(&conf, &[]);
    rt.wait_log("running: 2 plugin(s) running", Duration::from_secs(30));
    rt.signal(SIGTERM);
    // STOP_BUDGET is 5 s; shutdown must finish after it, not hang.
    assert_eq!(rt.wait_exit(Duration::from_secs(30)), 0);
    let log = rt.log_text();
    assert!(
        log.contains("[stuck] stop_loop() did not return within 5 s; going on without it"),
        "{log}"
    );
    assert!(log.contains("[stuck] skipping cleanup()"), "{log}");
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
fn environment_does_not_leak_into_the_interpreter_and_no_bytecode_is_written() {
    let dir = TempDir::new("isolated");
    // A module that PYTHONPATH would make importable.
    let leak = dir.join("leak");
    std::fs::create_dir_all(&leak).unwrap();
    std::fs::write(leak.join("leaked_mod.py"), "VERSION = 'leaked'\n").unwrap();
    // A plugin copied into a fresh directory, with a sibling module it imports:
    // importing must not leave __pycache__ behind (read-only root).
    let pdir = dir.join("plugin");
    std::fs::create_dir_all(&pdir).unwrap();
    std::fs::write(
        pdir.join("plugin.py"),
        std::fs::read_to_string(fixture_plugin("probe"))
            .unwrap()
            .replace(
                "_PARENT = os.path.join(os.path.dirname(os.path.abspath(__file__)), \"..\")",
                &format!(
                    "_PARENT = {:?}",
                    repo().join("tests/fixtures/plugins").to_str().unwrap()
                ),
            ),
    )
    .unwrap();
    std::fs::write(pdir.join("sibling.py"), "VERSION = 'sibling'\n").unwrap();
    let cfg = probe_config(
        dir.path(),
        "iso",
        "\"imports\": [\"leaked_mod\", \"sibling\"]",
    );
    let conf = write_conf(
        dir.path(),
        &[conf_line("iso", &pdir.join("plugin.py"), Some(&cfg), None)],
    );
    let mut rt = Runtime::start_with(&conf, &[], |c| {
        c.env("PYTHONPATH", &leak)
            .env("PYTHONHOME", "/nonexistent")
            .env_remove("PYTHONDONTWRITEBYTECODE");
    });
    rt.wait_log("running: 1 plugin(s) running", Duration::from_secs(30));
    rt.stop_ok();
    let ev = events(dir.path(), "iso");
    assert!(
        ev.contains(&"import leaked_mod failed ModuleNotFoundError".to_string()),
        "{ev:?}"
    );
    assert!(
        ev.contains(&"import sibling ok sibling".to_string()),
        "{ev:?}"
    );
    assert!(
        !pdir.join("__pycache__").exists(),
        "bytecode was written next to the plugin"
    );
}
