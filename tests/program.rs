//! PLC programs: Structured Text compiled by the real STruC++ (the pinned
//! snapshot `scripts/install-deps --program` builds), linked with our glue by
//! `scripts/build-plc-program` with the real g++, run by the real binary, its
//! I/O driven and read back by a Python plugin through the journal and the
//! image (tests/fixtures/plugins/plcio). Timing is asserted in program time
//! (task runs), never in wall-clock time.

mod common;
mod plc;

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use plc::*;

#[test]
fn counter_follows_its_input_and_stops_when_it_drops() {
    let dir = TempDir::new("prog-counter");
    let src = repo().join("examples/programs/counter.st");
    let so = try_build(&dir, "counter", &src, false).unwrap_or_else(|e| panic!("{e}"));
    let io = plcio(
        &dir,
        "io",
        r#"[["read", "%QW0"], ["write", "%IX0.0", 1], ["wait", "%QW0", ">=", 20],
            ["read", "%QX0.0"], ["write", "%IX0.0", 0], ["wait", "%QX0.0", "==", 0],
            ["read", "%QW0"], ["sleep", 0.2], ["read", "%QW0"]]"#,
    );
    let (rec, log) = run_program(&dir, &[native_line("prog", &so, None), io], &[]);
    assert_eq!(
        rec.last().map(String::as_str),
        Some("done"),
        "{rec:?}\n{log}"
    );
    // Nothing counts before the input is on; the lamp follows it.
    assert_eq!(rec[0], "read %QW0 0", "{rec:?}");
    assert!(rec.contains(&"read %QX0.0 1".to_string()), "{rec:?}");
    // Once the program saw the input off (lamp off), the count stays.
    let reads: Vec<&String> = rec.iter().filter(|l| l.starts_with("read %QW0")).collect();
    assert_eq!(reads.len(), 3, "{rec:?}");
    assert_eq!(
        reads[1], reads[2],
        "the counter went on after %IX0.0 dropped: {rec:?}"
    );
    assert!(value(&rec, "seen %QW0 ") >= 20, "{rec:?}");
    // The program was announced, and the scan period taken from its task.
    assert!(
        log.contains(
            "PLC program (extension version 2): tasks MAIN every 10 ms; 3 located variable(s); 0 byte(s) of RETAIN variables"
        ),
        "{log}"
    );
    assert!(
        log.contains("scan period 10 ms: the GCD of the task intervals (MAIN 10 ms)"),
        "{log}"
    );
}

/// Two tasks, 10 ms and 15 ms, each with a TON of 300 ms started on its
/// first run; each counts its runs until the TON's Q, then shows Q.
const TWO_TASKS: &str = "
PROGRAM Fast
  VAR
    t : TON;
    n AT %MD0 : DINT;
    q AT %QX0.0 : BOOL;
  END_VAR
  t(IN := TRUE, PT := T#300ms);
  IF NOT t.Q THEN
    n := n + 1;
  END_IF;
  q := t.Q;
END_PROGRAM

PROGRAM Slow
  VAR
    t : TON;
    n AT %MD1 : DINT;
    q AT %QX0.1 : BOOL;
  END_VAR
  t(IN := TRUE, PT := T#300ms);
  IF NOT t.Q THEN
    n := n + 1;
  END_IF;
  q := t.Q;
END_PROGRAM

CONFIGURATION Config0
  RESOURCE Res0 ON PLC
    TASK T10(INTERVAL := T#10ms, PRIORITY := 1);
    TASK T15(INTERVAL := T#15ms, PRIORITY := 2);
    PROGRAM F WITH T10 : Fast;
    PROGRAM S WITH T15 : Slow;
  END_RESOURCE
END_CONFIGURATION
";

#[test]
fn each_task_keeps_its_own_time_so_both_timers_switch_at_300_ms() {
    let dir = TempDir::new("prog-ton");
    let so = build(&dir, "ton", TWO_TASKS);
    let io = plcio(
        &dir,
        "io",
        r#"[["wait", "%QX0.0", "==", 1], ["wait", "%QX0.1", "==", 1],
            ["read", "%MD0"], ["read", "%MD1"]]"#,
    );
    let (rec, log) = run_program(&dir, &[native_line("prog", &so, None), io], &[]);
    assert_eq!(
        rec.last().map(String::as_str),
        Some("done"),
        "{rec:?}\n{log}"
    );
    // Runs before Q × the task's interval: when the TON switched, in the
    // task's own time, which must be 300 ms to within one interval. A clock
    // that does not advance by the task's own interval per run (OpenPLC
    // advances every task by the GCD, 5 ms, per 10 ms) is off by far more.
    let fast = value(&rec, "read %MD0 ") * 10;
    let slow = value(&rec, "read %MD1 ") * 15;
    assert!(
        (300..=310).contains(&fast),
        "10 ms task: TON switched after {fast} ms of task time"
    );
    assert!(
        (300..=315).contains(&slow),
        "15 ms task: TON switched after {slow} ms of task time"
    );
    assert!(
        log.contains("scan period 5 ms: the GCD of the task intervals (T10 10 ms, T15 15 ms)"),
        "{log}"
    );
    assert!(
        log.contains("program: T10 10 ms: "),
        "STATUS shows the tasks: {log}"
    );
}

/// Every located size in each area: inputs copied to outputs and memory;
/// memory written by a plugin seen by the program; an output the program
/// declares but never writes keeps a plugin's write.
const SIZES: &str = "
PROGRAM Sizes
  VAR
    ix AT %IX1.3 : BOOL;
    ib AT %IB2 : BYTE;
    iw AT %IW3 : INT;
    id AT %ID4 : DINT;
    il AT %IL5 : LINT;
    qx AT %QX1.3 : BOOL;
    qb AT %QB2 : BYTE;
    qw AT %QW3 : INT;
    qd AT %QD4 : DINT;
    ql AT %QL5 : LINT;
    mx AT %MX1.3 : BOOL;
    mw AT %MW3 : INT;
    md AT %MD4 : DINT;
    ml AT %ML5 : LINT;
    from_plugin AT %MW6 : INT;
    echo AT %QW6 : INT;
    spare AT %QW7 : INT;
    runs AT %QD8 : DINT;
  END_VAR
  qx := ix;
  qb := ib;
  qw := iw;
  qd := id;
  ql := il;
  mx := NOT ix;
  mw := iw + 1;
  md := id + 1;
  ml := il + 1;
  echo := from_plugin;
  runs := runs + 1;
END_PROGRAM

CONFIGURATION Config0
  RESOURCE Res0 ON PLC
    TASK Main(INTERVAL := T#2ms, PRIORITY := 1);
    PROGRAM Inst0 WITH Main : Sizes;
  END_RESOURCE
END_CONFIGURATION
";

#[test]
fn every_located_size_in_each_area_is_bound() {
    let dir = TempDir::new("prog-sizes");
    let so = build(&dir, "sizes", SIZES);
    let io = plcio(
        &dir,
        "io",
        r#"[["wait", "%QD8", ">=", 5], ["write", "%QW7", 1234],
            ["write", "%IX1.3", 1], ["write", "%IB2", 200], ["write", "%IW3", 65534],
            ["write", "%ID4", 70000], ["write", "%IL5", 1099511627781],
            ["write", "%MW6", 77],
            ["wait", "%QL5", "==", 1099511627781], ["wait", "%QW6", "==", 77],
            ["read", "%QX1.3"], ["read", "%QB2"], ["read", "%QW3"], ["read", "%QD4"],
            ["read", "%MX1.3"], ["read", "%MW3"], ["read", "%MD4"], ["read", "%ML5"],
            ["read", "%QW7"]]"#,
    );
    let (rec, log) = run_program(&dir, &[native_line("prog", &so, None), io], &[]);
    assert_eq!(
        rec.last().map(String::as_str),
        Some("done"),
        "{rec:?}\n{log}"
    );
    for (addr, want) in [
        ("%QX1.3", 1u64),
        ("%QB2", 200),
        ("%QW3", 65534),
        ("%QD4", 70000),
        ("%MX1.3", 0),
        // -2 + 1 as an INT.
        ("%MW3", 65535),
        ("%MD4", 70001),
        ("%ML5", 1099511627782),
        // Declared, never written by the program: the plugin's write stays.
        ("%QW7", 1234),
    ] {
        assert_eq!(
            value(&rec, &format!("read {addr} ")),
            want,
            "{addr}: {rec:?}"
        );
    }
    assert!(log.contains("18 located variable(s)"), "{log}");
}

/// One program with one task and the located declarations `vars`.
fn one_task(vars: &str) -> String {
    format!(
        "PROGRAM P
  VAR
{vars}
  END_VAR
  n := n + 1;
END_PROGRAM
CONFIGURATION C
  RESOURCE R ON PLC
    TASK T(INTERVAL := T#10ms, PRIORITY := 1);
    PROGRAM I WITH T : P;
  END_RESOURCE
END_CONFIGURATION
"
    )
}

/// `check` on a plugins.conf holding just `so`: its exit code and output.
fn check(dir: &TempDir, so: &Path, extra: &[&str]) -> (i32, String) {
    let conf = write_conf(dir.path(), &[native_line("prog", so, None)]);
    let mut args = vec!["check"];
    args.extend_from_slice(extra);
    let (code, out, err) = runtime(&args, &conf);
    (code, format!("{out}{err}"))
}

#[test]
fn programs_with_bad_addresses_are_refused_naming_the_variable() {
    let dir = TempDir::new("prog-refused");
    let n = "    n AT %QW0 : INT;\n";
    // What STruC++ itself accepts but OpenPLC's image has no place for.
    for (name, decl, extra, want) in [
        (
            "mb",
            "    c AT %MB3 : BYTE;",
            &[][..],
            "program variable C at %MB3: there is no %MB table",
        ),
        (
            "big",
            "    big AT %QW2000 : INT;",
            &[],
            "program variable BIG at %QW2000: slot 2000 is beyond the image (--buffer-size 1024: slots 0..1023)",
        ),
        (
            "small",
            "    q AT %QX20.1 : BOOL;",
            &["--buffer-size", "16"],
            "program variable Q at %QX20.1: slot 20 is beyond the image (--buffer-size 16: slots 0..15)",
        ),
    ] {
        let so = build(&dir, name, &one_task(&format!("{n}{decl}")));
        let (code, out) = check(&dir, &so, extra);
        assert_ne!(code, 0, "{out}");
        assert!(out.contains(want), "{name}: {out}");
    }
    // What STruC++ refuses, in output edited after it ran (an output from
    // another compiler version or a hand edit): a bit above 7, and a
    // variable whose type is not the size of its address.
    let out = strucpp_output(
        &dir,
        "edited",
        &one_task(&format!("{n}    b AT %IX0.7 : BOOL;")),
    );
    let conf_cpp = out.join("configuration.cpp");
    let text = std::fs::read_to_string(&conf_cpp).unwrap();
    let edits = [
        (
            "bit",
            text.replace("LocatedSize::Bit, 0, 7,", "LocatedSize::Bit, 0, 9,"),
            "program variable B at %IX0.9: bit 9 is above 7",
        ),
        (
            "size",
            text.replace("LocatedSize::Word, 0, 0,", "LocatedSize::DWord, 0, 0,"),
            "program variable N at %QD0: its type takes 2 byte(s), the address holds 4",
        ),
    ];
    for (name, edited, want) in edits {
        assert_ne!(edited, text, "{name}: the edit did not apply to {text}");
        std::fs::write(&conf_cpp, edited).unwrap();
        let so = try_build(&dir, name, &out, true).unwrap_or_else(|e| panic!("{e}"));
        let (code, msg) = check(&dir, &so, &[]);
        assert_ne!(code, 0, "{msg}");
        assert!(msg.contains(want), "{name}: {msg}");
    }
}

#[test]
fn a_scan_period_that_does_not_divide_a_task_interval_is_refused() {
    let dir = TempDir::new("prog-period");
    let so = build(&dir, "ton", TWO_TASKS);
    let (code, out) = check(&dir, &so, &["--scan-period", "10ms"]);
    assert_ne!(code, 0, "{out}");
    assert!(
        out.contains("task T15 runs every 15 ms, which is not a multiple of the scan period 10 ms (--scan-period)"),
        "{out}"
    );
    let (code, out) = check(&dir, &so, &["--scan-period", "5ms"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("tasks T10 every 10 ms, T15 every 15 ms; 4 located variable(s); 0 byte(s) of RETAIN variables"),
        "{out}"
    );
}

/// A native plugin exporting the program extension's marker, built from C:
/// `body` is the rest of it.
fn fake_program(dir: &TempDir, name: &str, body: &str) -> PathBuf {
    let src = dir.join(&format!("{name}.c"));
    std::fs::write(
        &src,
        format!("#include <stdint.h>\nint init(void *a) {{ (void)a; return 0; }}\n{body}\n"),
    )
    .unwrap();
    build_native(&src, &dir.join(&format!("{name}.so")), &[])
}

#[test]
fn a_half_built_or_mismatched_program_fails_like_any_plugin() {
    let dir = TempDir::new("prog-abi");
    let half = fake_program(
        &dir,
        "half",
        "uint32_t openplc_program_abi(void) { return 1; }\nuint32_t openplc_program_task_count(void) { return 0; }",
    );
    let (code, out) = check(&dir, &half, &[]);
    assert_ne!(code, 0, "{out}");
    assert!(
        out.contains("it exports openplc_program_abi but not openplc_program_tasks, openplc_program_run_task, openplc_program_task_time_ns, openplc_program_var_count, openplc_program_vars, openplc_program_retain_size, openplc_program_retain_signature, openplc_program_retain_save, openplc_program_retain_restore: a half-built program"),
        "{out}"
    );
    let future = fake_program(
        &dir,
        "future",
        "uint32_t openplc_program_abi(void) { return 99; }
uint32_t openplc_program_task_count(void) { return 0; }
const void *openplc_program_tasks(void) { return 0; }
int openplc_program_run_task(uint32_t t) { (void)t; return 0; }
int64_t openplc_program_task_time_ns(uint32_t t) { (void)t; return 0; }
uint32_t openplc_program_var_count(void) { return 0; }
const void *openplc_program_vars(void) { return 0; }
uint32_t openplc_program_retain_size(void) { return 0; }
uint64_t openplc_program_retain_signature(void) { return 0; }
uint32_t openplc_program_retain_save(uint8_t *b, uint32_t n) { (void)b; (void)n; return 0; }
int openplc_program_retain_restore(const uint8_t *b, uint32_t n) { (void)b; (void)n; return 0; }",
    );
    let want = "its program extension is version 99, this runtime speaks version 2";
    let (code, out) = check(&dir, &future, &[]);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains(want), "{out}");
    // Run: the plugin fails at load like any other, the rest runs on.
    let io = plcio(
        &dir,
        "io",
        r#"[["write", "%QW0", 5], ["wait", "%QW0", "==", 5]]"#,
    );
    let conf = write_conf(dir.path(), &[native_line("future", &future, None), io]);
    let mut rt = Runtime::start(&conf, &["--scan-priority", "0"]);
    rt.wait_log(
        "1 plugin(s) running, 1 failed (future)",
        Duration::from_secs(30),
    );
    assert_eq!(
        wait_done(&dir, "io", Duration::from_secs(30))
            .last()
            .map(String::as_str),
        Some("done")
    );
    rt.stop_ok();
    assert!(rt.log_text().contains(want), "{}", rt.log_text());
}

#[test]
fn a_task_longer_than_its_interval_is_counted_in_status_and_the_log() {
    let dir = TempDir::new("prog-overrun");
    // Tens of millions of dependent multiply-adds (the input keeps g++ from
    // folding them) in a 1 ms task: every run overruns on any machine.
    let so = build(
        &dir,
        "slow",
        "PROGRAM Slow
  VAR
    iw AT %ID0 : DINT;
    acc AT %QD0 : DINT;
    runs AT %QD1 : DINT;
    i : DINT;
  END_VAR
  FOR i := 0 TO 30000000 DO
    acc := acc * 3 + iw + i;
  END_FOR;
  runs := runs + 1;
END_PROGRAM
CONFIGURATION C
  RESOURCE R ON PLC
    TASK Busy(INTERVAL := T#1ms, PRIORITY := 1);
    PROGRAM I WITH Busy : Slow;
  END_RESOURCE
END_CONFIGURATION
",
    );
    let io = plcio(&dir, "io", r#"[["wait", "%QD1", ">=", 3]]"#);
    let conf = write_conf(dir.path(), &[native_line("prog", &so, None), io]);
    let sock_path = dir.join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut rt = Runtime::start_with(&conf, &["--scan-priority", "0"], |c| {
        c.env("NOTIFY_SOCKET", &sock_path);
    });
    rt.wait_log(
        "program: task BUSY (every 1 ms) overran",
        Duration::from_secs(60),
    );
    assert!(rt.log_text().contains("longest run"), "{}", rt.log_text());
    assert_eq!(
        wait_done(&dir, "io", Duration::from_secs(60))
            .last()
            .map(String::as_str),
        Some("done")
    );
    // STATUS= carries the task's runs and overruns.
    let end = Instant::now() + Duration::from_secs(30);
    let mut buf = vec![0u8; 4096];
    let mut last = String::new();
    let counted = loop {
        if let Ok(n) = sock.recv(&mut buf) {
            last = String::from_utf8_lossy(&buf[..n]).into_owned();
            if let Some(status) = last.lines().find_map(|l| l.strip_prefix("STATUS="))
                && let Some(rest) = status.split("program: BUSY 1 ms: ").nth(1)
                && !rest.contains(" 0 overrun(s)")
            {
                break rest.to_string();
            }
        }
        assert!(
            Instant::now() < end,
            "no STATUS with BUSY's overruns; last: {last}"
        );
    };
    assert!(counted.contains("run(s), "), "{counted}");
    rt.stop_ok();
}

#[test]
fn a_second_program_is_refused_and_the_first_runs_on() {
    let dir = TempDir::new("prog-two");
    let src = repo().join("examples/programs/counter.st");
    let so = try_build(&dir, "counter", &src, false).unwrap_or_else(|e| panic!("{e}"));
    let io = plcio(
        &dir,
        "io",
        r#"[["write", "%IX0.0", 1], ["wait", "%QW0", ">=", 10]]"#,
    );
    let lines = [
        native_line("first", &so, None),
        native_line("second", &so, None),
        io,
    ];
    let (rec, log) = run_program(&dir, &lines, &[]);
    assert_eq!(
        rec.last().map(String::as_str),
        Some("done"),
        "{rec:?}\n{log}"
    );
    assert!(
        log.contains("is a PLC program that cannot run: another program is already loaded: the runtime runs one program"),
        "{log}"
    );
    assert!(
        log.contains("2 plugin(s) running, 1 failed (second)"),
        "{log}"
    );
}

#[test]
fn a_plugin_holding_the_image_lock_does_not_stop_the_programs_tasks() {
    // Issue 22, item 6: the scan waits for the image lock at most half a
    // period; the program's due tasks then run on their last inputs and
    // their outputs are copied out by the next cycle that gets the lock
    // (it used to skip the whole cycle, tasks included).
    let dir = TempDir::new("prog-held-lock");
    let src = repo().join("examples/programs/counter.st");
    let so = try_build(&dir, "counter", &src, false).unwrap_or_else(|e| panic!("{e}"));
    let io = plcio(
        &dir,
        "io",
        r#"[["write", "%IX0.0", 1], ["wait", "%QW0", ">=", 5],
            ["hold", "%QW0", 0.5], ["sleep", 0.2], ["read", "%QW0"]]"#,
    );
    let (rec, log) = run_program(&dir, &[native_line("prog", &so, None), io], &[]);
    assert_eq!(
        rec.last().map(String::as_str),
        Some("done"),
        "{rec:?}\n{log}"
    );
    // Nothing reached the image while the plugin held it...
    let held = rec.iter().find(|l| l.starts_with("held %QW0 ")).unwrap();
    let v: Vec<u64> = held
        .split(' ')
        .skip(2)
        .map(|x| x.parse().unwrap())
        .collect();
    assert_eq!(v[0], v[1], "{rec:?}");
    // ...but the task ran meanwhile (the runtime counts those runs and the
    // late copy-outs), and its count reached the image after the release.
    let line = log
        .lines()
        .find(|l| l.contains("cycle(s) ran tasks on their last inputs"))
        .unwrap_or_else(|| panic!("no count of runs on last inputs:\n{log}"));
    let counts: Vec<u64> = line
        .split("image lock busy: ")
        .nth(1)
        .unwrap_or_else(|| panic!("{line}"))
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    assert!(
        counts.len() >= 2 && counts[0] >= 1 && counts[1] >= 1,
        "{line}"
    );
    let after = value(&rec, "read %QW0 ");
    assert!(
        after > v[1],
        "count {} at the hold, {after} after: {rec:?}",
        v[1]
    );
}
