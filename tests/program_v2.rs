//! Version 2 of the program extension: OpenPLC's debugger interface over a
//! loaded program's variables (forcing included); RETAIN files of another
//! build or damaged ones (tests/program_retain.rs has the rest). Real STruC++
//! (the snapshot `scripts/install-deps --program` builds), real g++, the real
//! runtime binary, real signals; the program's I/O and its debugger are
//! driven by Python plugins (tests/fixtures/plugins/plcio, plcdebug).
//! Values are asserted in program terms (what the program computed), never
//! in wall-clock time.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

/// Builds `st` as `<dir>/<name>/libplc_<name>.so` (+ debug-map.json there).
fn build(dir: &TempDir, name: &str, st: &str) -> PathBuf {
    let out = dir.join(name);
    let src = dir.join(&format!("{name}.st"));
    std::fs::write(&src, st).unwrap();
    let o = Command::new(repo().join("scripts/build-plc-program"))
        .arg(&src)
        .args(["--name", name, "-o"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "build-plc-program {name} (STruC++ comes from scripts/install-deps --program): {}",
        String::from_utf8_lossy(&o.stderr)
    );
    out.join(format!("libplc_{name}.so"))
}

/// A plugins.conf line for fixture plugin `plugin` named `id` running
/// `steps`, with `extra` JSON fields.
fn driver(dir: &TempDir, plugin: &str, id: &str, extra: &str, steps: &str) -> String {
    let cfg = dir.join(&format!("{id}.json"));
    let record = dir.join(&format!("{id}.log"));
    let _ = std::fs::remove_file(&record);
    std::fs::write(
        &cfg,
        format!(
            "{{\"record\": {:?}, {extra} \"steps\": {steps}}}",
            record.to_str().unwrap()
        ),
    )
    .unwrap();
    conf_line(id, &fixture_plugin(plugin), Some(&cfg), None)
}

/// The record of driver `id` so far.
fn record_of(dir: &TempDir, id: &str) -> Vec<String> {
    std::fs::read_to_string(dir.join(&format!("{id}.log")))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// The record once it has a line starting with `prefix` ("done").
fn wait_record(dir: &TempDir, id: &str, prefix: &str, rt: &mut Runtime) -> Vec<String> {
    let end = Instant::now() + Duration::from_secs(60);
    loop {
        let lines = record_of(dir, id);
        if lines.iter().any(|l| l.starts_with(prefix)) {
            return lines;
        }
        if let Some(l) = lines.iter().find(|l| l.starts_with("timeout")) {
            panic!("{id}: {l}: {lines:?}\n{}", rt.log_text());
        }
        if let Ok(Some(st)) = rt.child.try_wait() {
            panic!("runtime exited ({st}): {lines:?}\n{}", rt.log_text());
        }
        assert!(
            Instant::now() < end,
            "{id}: no {prefix:?}: {lines:?}\n{}",
            rt.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `s` in lowercase hex.
fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

/// The value on the line of `lines` starting with `prefix`.
fn value(lines: &[String], prefix: &str) -> i64 {
    lines
        .iter()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} in {lines:?}"))
        .trim()
        .parse()
        .unwrap()
}

const DEBUGGED: &str = "
PROGRAM Dbg
  VAR
    step : INT := 1;
    doubled AT %QW1 : INT;
    limit : INT := 100;
    capped AT %QW2 : INT;
    name : STRING := 'pump';
  END_VAR
  step := 1;
  doubled := step * 2;
  capped := limit;
END_PROGRAM

CONFIGURATION Config0
  VAR_GLOBAL
    gcount : DINT := 41;
  END_VAR
  RESOURCE Res0 ON PLC
    TASK Main(INTERVAL := T#10ms, PRIORITY := 1);
    PROGRAM Inst0 WITH Main : Dbg;
  END_RESOURCE
END_CONFIGURATION
";

/// With a program loaded the debugger callbacks address its variables as
/// OpenPLC does: the arrays and sizes of its debug tables, a variable read
/// and written by its debug-map path, and forcing through debug_set pins a
/// variable the program itself assigns, so what the program computes from it
/// changes; unforcing gives it back to the program.
#[test]
fn debugger_reads_writes_and_forces_program_variables() {
    let dir = TempDir::new("prog-debug");
    let so = build(&dir, "dbg", DEBUGGED);
    let map = so.with_file_name("debug-map.json");
    let steps = r#"[["wait", "%QW1", "==", 2], ["arrays"],
        ["size", "GCOUNT"], ["size", "INST0.STEP"], ["size", "INST0.NAME"],
        ["dread", "GCOUNT"], ["dread", "INST0.LIMIT"], ["dread", "INST0.NAME"], ["dbytes", "INST0.NAME"],
        ["dwrite", "INST0.LIMIT", 300], ["wait", "%QW2", "==", 300], ["dread", "INST0.LIMIT"],
        ["dwrite", "INST0.STEP", 9], ["sleep", 0.1], ["read", "%QW1"],
        ["force", "INST0.STEP", 7], ["wait", "%QW1", "==", 14], ["sleep", 0.1],
        ["read", "%QW1"], ["dread", "INST0.STEP"],
        ["dwrite", "INST0.STEP", 5], ["sleep", 0.1], ["read", "%QW1"],
        ["unforce", "INST0.STEP"], ["wait", "%QW1", "==", 2],
        ["force", "INST0.DOUBLED", 1234], ["wait", "%QW1", "==", 1234], ["sleep", 0.1],
        ["read", "%QW1"], ["unforce", "INST0.DOUBLED"], ["wait", "%QW1", "==", 2]]"#;
    let line = driver(
        &dir,
        "plcdebug",
        "dbgio",
        &format!("\"map\": {map:?},"),
        steps,
    );
    let conf = write_conf(dir.path(), &[native_line("prog", &so, None), line]);
    let mut rt = Runtime::start(&conf, &["--scan-priority", "0"]);
    let rec = wait_record(&dir, "dbgio", "done", &mut rt);
    rt.stop_ok();
    // The program's tables: globals first, then its one instance.
    let m: String = std::fs::read_to_string(&map).unwrap();
    assert!(m.contains("\"path\": \"GCOUNT\""), "{m}");
    assert_eq!(
        rec.iter()
            .find(|l| l.starts_with("arrays"))
            .map(String::as_str),
        Some("arrays 2 1 5"),
        "{rec:?}"
    );
    assert!(rec.contains(&"size GCOUNT 4".to_string()), "{rec:?}");
    assert!(rec.contains(&"size INST0.STEP 2".to_string()), "{rec:?}");
    assert!(rec.contains(&"size INST0.NAME 127".to_string()), "{rec:?}");
    assert_eq!(value(&rec, "dread GCOUNT "), 41, "{rec:?}");
    assert_eq!(value(&rec, "dread INST0.LIMIT "), 100, "{rec:?}");
    // A STRING is 127 bytes on the wire: its length, then its characters.
    // The capsule's integer reader declines it (and sizes its buffer by
    // debug_size, so nothing is overrun).
    assert!(
        rec.contains(&"dread INST0.NAME None".to_string()),
        "{rec:?}"
    );
    assert!(
        rec.contains(&format!("dbytes INST0.NAME 127 04{}", hex("pump"))),
        "{rec:?}"
    );
    // A soft write of a variable the program does not assign sticks...
    assert!(
        rec.contains(&"dwrite INST0.LIMIT 300 -> 126".to_string()),
        "{rec:?}"
    );
    assert!(
        rec.contains(&"dread INST0.LIMIT 300".to_string()),
        "{rec:?}"
    );
    // ...one it assigns every run is overwritten by the program (OpenPLC's
    // soft write), so STEP stays 1 and DOUBLED 2.
    assert!(
        rec.contains(&"dwrite INST0.STEP 9 -> 126".to_string()),
        "{rec:?}"
    );
    let reads: Vec<&String> = rec.iter().filter(|l| l.starts_with("read %QW1")).collect();
    assert_eq!(reads.len(), 4, "{rec:?}");
    assert_eq!(reads[0], "read %QW1 2", "{rec:?}");
    // Forced, STEP holds 7 against the program's `step := 1`, and a soft
    // write does not move it.
    assert!(
        rec.contains(&"force INST0.STEP 7 -> 126".to_string()),
        "{rec:?}"
    );
    assert_eq!(reads[1], "read %QW1 14", "{rec:?}");
    assert!(rec.contains(&"dread INST0.STEP 7".to_string()), "{rec:?}");
    assert_eq!(reads[2], "read %QW1 14", "{rec:?}");
    assert!(
        rec.contains(&"unforce INST0.STEP -> 126".to_string()),
        "{rec:?}"
    );
    // A forced located output reaches the image.
    assert!(
        rec.contains(&"force INST0.DOUBLED 1234 -> 126".to_string()),
        "{rec:?}"
    );
    assert!(rec.contains(&"seen %QW1 1234".to_string()), "{rec:?}");
    assert_eq!(reads[3], "read %QW1 1234", "{rec:?}");
    assert_eq!(rec.last().map(String::as_str), Some("done"), "{rec:?}");
}

/// With `--isolation process` a Python plugin's debugger callbacks run in its
/// worker, where the program is not: they refuse (no arrays, no such
/// variable) instead of answering from the image tables, and the worker
/// warns once.
#[test]
fn debugger_in_a_worker_process_refuses_instead_of_answering_from_the_image() {
    let dir = TempDir::new("prog-debug-proc");
    let so = build(&dir, "dbg", DEBUGGED);
    let map = so.with_file_name("debug-map.json");
    let steps = r#"[["wait", "%QW1", "==", 2], ["arrays"], ["size", "INST0.LIMIT"],
        ["dread", "INST0.LIMIT"], ["dread", "GCOUNT"]]"#;
    let line = driver(
        &dir,
        "plcdebug",
        "dbgio",
        &format!("\"map\": {map:?},"),
        steps,
    );
    let conf = write_conf(dir.path(), &[native_line("prog", &so, None), line]);
    let mut rt = Runtime::start(&conf, &["--scan-priority", "0", "--isolation", "process"]);
    let rec = wait_record(&dir, "dbgio", "done", &mut rt);
    rt.stop_ok();
    let log = rt.log_text();
    assert!(rec.contains(&"arrays 0 ".to_string()), "{rec:?}");
    assert!(rec.contains(&"size INST0.LIMIT 0".to_string()), "{rec:?}");
    assert!(
        rec.contains(&"dread INST0.LIMIT None".to_string()),
        "{rec:?}"
    );
    assert!(rec.contains(&"dread GCOUNT None".to_string()), "{rec:?}");
    assert_eq!(
        log.matches("the PLC program runs in the supervisor")
            .count(),
        1,
        "{log}"
    );
}

/// A program built for version 1 of the extension (or a half-built version
/// 2) is refused by `check` with what to do.
#[test]
fn a_version_1_program_is_refused_with_rebuild_advice() {
    let dir = TempDir::new("prog-v1");
    let src = dir.join("v1.c");
    std::fs::write(
        &src,
        r#"#include <stdint.h>
int init(void *a) { (void)a; return 0; }
uint32_t openplc_program_abi(void) { return ABI; }
struct task { const char *name; uint64_t interval_ns; };
static const struct task MAIN = {"MAIN", 10000000};
uint32_t openplc_program_task_count(void) { return 1; }
const void *openplc_program_tasks(void) { return &MAIN; }
int openplc_program_run_task(uint32_t t) { (void)t; return 0; }
int64_t openplc_program_task_time_ns(uint32_t t) { (void)t; return 0; }
uint32_t openplc_program_var_count(void) { return 0; }
const void *openplc_program_vars(void) { return 0; }
uint32_t openplc_program_retain_size(void) { return 0; }
uint64_t openplc_program_retain_signature(void) { return 0; }
uint32_t openplc_program_retain_save(uint8_t *b, uint32_t n) { (void)b; (void)n; return 0; }
int openplc_program_retain_restore(const uint8_t *b, uint32_t n) { (void)b; (void)n; return 0; }
"#,
    )
    .unwrap();
    for (abi, want) in [
        (
            "1",
            "version 1, this runtime speaks version 2: rebuild the program with this runtime's scripts/build-plc-program",
        ),
        (
            "2",
            "does not export openplc_program_debug_array_count, openplc_program_debug_elem_count",
        ),
    ] {
        let so = build_native(
            &src,
            &dir.join(&format!("libplc_v{abi}.so")),
            &[&format!("-DABI={abi}")],
        );
        let conf = write_conf(dir.path(), &[native_line("prog", &so, None)]);
        let (code, out, err) = runtime(&["check"], &conf);
        assert_ne!(code, 0, "{out}{err}");
        assert!(
            format!("{out}{err}").contains(want),
            "ABI {abi}: {out}{err}"
        );
    }
}

/// A program with one RETAIN counter: TOTAL grows by 3 per run from 7, so
/// every value it takes is 1 mod 3; %QD1 shows the value TOTAL had before the
/// first run of this start (RUNS is not retained), which is 7 unless it was
/// restored.
const KEEPER: &str = "
PROGRAM Keeper
  VAR RETAIN
    total : DINT := 7;
  END_VAR
  VAR
    runs : DINT := 0;
    now AT %QD0 : DINT;
    start AT %QD1 : DINT;
  END_VAR
  total := total + 3;
  runs := runs + 1;
  now := total;
  start := total - 3 * runs;
END_PROGRAM

CONFIGURATION Config0
  RESOURCE Res0 ON PLC
    TASK Main(INTERVAL := T#10ms, PRIORITY := 1);
    PROGRAM Inst0 WITH Main : Keeper;
  END_RESOURCE
END_CONFIGURATION
";

struct Keeper {
    dir: TempDir,
    so: PathBuf,
    state: PathBuf,
}

impl Keeper {
    fn new(tag: &str, st: &str) -> Keeper {
        let dir = TempDir::new(tag);
        let so = build(&dir, "keeper", st);
        let state = dir.join("state");
        std::fs::create_dir_all(&state).unwrap();
        Keeper { dir, so, state }
    }

    fn file(&self) -> PathBuf {
        self.state.join("plugins/prog/retain.bin")
    }

    /// Starts the runtime with the program and a plcio driver running `steps`.
    fn start(&self, steps: &str) -> Runtime {
        let io = driver(&self.dir, "plcio", "io", "", steps);
        let conf = write_conf(self.dir.path(), &[native_line("prog", &self.so, None), io]);
        Runtime::start_with(
            &conf,
            &["--scan-priority", "0", "--retain-period", "100ms"],
            |c| {
                c.env("STATE_DIRECTORY", &self.state);
            },
        )
    }

    /// A start that reads where TOTAL started and where it is; stops with
    /// SIGTERM. Returns (start, now, log).
    fn run_once(&self) -> (i64, i64, String) {
        let mut rt = self.start(r#"[["wait", "%QD0", ">=", 1], ["read", "%QD1"], ["wait", "%QD0", ">=", 1], ["read", "%QD0"]]"#);
        let rec = wait_record(&self.dir, "io", "done", &mut rt);
        rt.stop_ok();
        (
            value(&rec, "read %QD1 "),
            value(&rec, "read %QD0 "),
            rt.log_text(),
        )
    }
}

fn warnings_naming(log: &str, file: &Path) -> usize {
    let f = file.display().to_string();
    log.lines()
        .filter(|l| l.contains("RETAIN file") && l.contains(&f) && l.contains("initial values"))
        .count()
}

/// A corrupt retain file, or one from another build of the program (same
/// RETAIN variables, another initial value: only the build identity tells
/// them apart), gives the initial values and one warning naming the file;
/// the next stop replaces it with a good one.
#[test]
fn corrupt_or_foreign_retain_file_gives_initial_values_and_one_warning() {
    let k = Keeper::new("prog-retain-bad", KEEPER);
    let file = k.file();
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    let garbage = b"this is not a retain file at all";
    std::fs::write(&file, garbage).unwrap();
    let (start, _, log) = k.run_once();
    assert_eq!(start, 7, "{log}");
    assert_eq!(warnings_naming(&log, &file), 1, "{log}");
    assert!(log.contains("not a RETAIN file"), "{log}");
    // Now a good file exists: flip one value byte.
    let mut bytes = std::fs::read(&file).unwrap();
    let n = bytes.len();
    bytes[n - 9] ^= 1;
    std::fs::write(&file, &bytes).unwrap();
    let (start, _, log) = k.run_once();
    assert_eq!(start, 7, "{log}");
    assert_eq!(warnings_naming(&log, &file), 1, "{log}");
    assert!(log.contains("corrupt"), "{log}");
    // Another build (same variables, another initial value) writes the file.
    let other = Keeper::new("prog-retain-other", &KEEPER.replace(":= 7;", ":= 10;"));
    let (s_other, _, _) = other.run_once();
    assert_eq!(s_other, 10);
    std::fs::copy(other.file(), &file).unwrap();
    let (start, _, log) = k.run_once();
    assert_eq!(start, 7, "the other build's value was restored\n{log}");
    assert_eq!(warnings_naming(&log, &file), 1, "{log}");
    assert!(log.contains("another program build"), "{log}");
}
