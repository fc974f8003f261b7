//! RETAIN variables of a PLC program (real STruC++, g++ and runtime) across
//! SIGTERM, SIGKILL (the last periodic save), a corrupt file and another
//! build of the program.

mod common;
mod plc;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use plc::*;

/// A retained counter and a plain one, both counting task runs: after a
/// restart `total - plain` is the restored value.
const RETAINED: &str = "
PROGRAM P
  VAR RETAIN
    total : DINT;
  END_VAR
  VAR
    shown AT %QD0 : DINT;
    plain AT %QD1 : DINT;
    n : DINT;
  END_VAR
  total := total + 1;
  n := n + 1;
  shown := total;
  plain := n;
END_PROGRAM
CONFIGURATION C
  RESOURCE R ON PLC
    TASK T(INTERVAL := T#10ms, PRIORITY := 1);
    PROGRAM I WITH T : P;
  END_RESOURCE
END_CONFIGURATION
";

/// The DINT a RETAIN file of the program above holds: its 24-byte header,
/// then the value (the debugger's wire format: little-endian).
fn retained_value(file: &Path) -> i32 {
    let bytes = std::fs::read(file).unwrap();
    assert_eq!(bytes.len(), 24 + 4 + 8, "{bytes:?}");
    i32::from_le_bytes(bytes[24..28].try_into().unwrap())
}

/// Starts the runtime on `conf` with a state directory and a 100 ms RETAIN
/// period, waits until the program ran, and returns `total - plain` as the
/// program shows it (what it restored), with the runtime.
fn start_retained(dir: &TempDir, so: &Path, state: &Path) -> (Runtime, i64) {
    let _ = std::fs::remove_file(dir.join("io.log"));
    let io = plcio(
        dir,
        "io",
        r#"[["wait", "%QD1", ">=", 3], ["read", "%QD0"], ["read", "%QD1"]]"#,
    );
    let conf = write_conf(dir.path(), &[native_line("prog", so, None), io]);
    let rt = Runtime::start_with(
        &conf,
        &["--scan-priority", "0", "--retain-period", "100ms"],
        |c| {
            c.env("STATE_DIRECTORY", state);
        },
    );
    let rec = wait_done(dir, "io", Duration::from_secs(60));
    assert_eq!(
        rec.last().map(String::as_str),
        Some("done"),
        "{rec:?}\n{}",
        rt.log_text()
    );
    let (total, plain) = (value(&rec, "read %QD0 "), value(&rec, "read %QD1 "));
    (rt, total as i64 - plain as i64)
}

#[test]
fn retain_survives_sigterm_and_sigkill_and_a_corrupt_file_gives_initial_values() {
    let dir = TempDir::new("prog-retain");
    let so = build(&dir, "retained", RETAINED);
    let state = dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    let file = state.join("plugins/prog/retain.bin");

    // First start: nothing to restore. SIGTERM saves.
    let (mut rt, restored) = start_retained(&dir, &so, &state);
    assert_eq!(restored, 0);
    assert!(
        rt.log_text().contains("no RETAIN file yet"),
        "{}",
        rt.log_text()
    );
    assert!(
        rt.log_text().contains("4 byte(s) of RETAIN variables"),
        "{}",
        rt.log_text()
    );
    rt.stop_ok();
    assert!(
        rt.log_text().contains("RETAIN variables saved to"),
        "{}",
        rt.log_text()
    );
    let saved = retained_value(&file);
    assert!(saved >= 3, "{saved}");

    // Second start: restored exactly. Then the periodic save moves the file
    // on, and SIGKILL leaves the last periodic save.
    let (mut rt, restored) = start_retained(&dir, &so, &state);
    assert_eq!(restored, i64::from(saved), "{}", rt.log_text());
    assert!(
        rt.log_text().contains("RETAIN variables restored from"),
        "{}",
        rt.log_text()
    );
    let end = Instant::now() + Duration::from_secs(30);
    while retained_value(&file) < saved + 20 {
        assert!(
            Instant::now() < end,
            "no periodic save past {saved}: {}",
            rt.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    rt.signal(libc::SIGKILL);
    rt.wait_exit(Duration::from_secs(10));
    let periodic = retained_value(&file);
    assert!(periodic >= saved + 20, "{periodic}");
    let (mut rt, restored) = start_retained(&dir, &so, &state);
    assert_eq!(restored, i64::from(periodic), "{}", rt.log_text());
    rt.stop_ok();

    // A corrupt file: initial values and one warning naming the file.
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[25] ^= 0x40;
    std::fs::write(&file, bytes).unwrap();
    let (mut rt, restored) = start_retained(&dir, &so, &state);
    assert_eq!(restored, 0, "{}", rt.log_text());
    rt.stop_ok();
    let log = rt.log_text();
    let warning = format!(
        "the RETAIN file {} is corrupt (checksum mismatch); the declared initial values are used",
        file.display()
    );
    assert_eq!(log.matches(&warning).count(), 1, "{log}");

    // Another build of the program (its RETAIN variable is now a LINT):
    // the file is not restored, with one warning.
    let other = build(
        &dir,
        "retained",
        &RETAINED.replace("total : DINT", "total : LINT"),
    );
    assert_eq!(other, so);
    let (mut rt, restored) = start_retained(&dir, &so, &state);
    assert_eq!(restored, 0, "{}", rt.log_text());
    rt.stop_ok();
    let log = rt.log_text();
    let warning = format!(
        "the RETAIN file {} is written by another program build",
        file.display()
    );
    assert_eq!(log.matches(&warning).count(), 1, "{log}");
}
