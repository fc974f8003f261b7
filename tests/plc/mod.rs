//! Helpers of the PLC program tests: building programs with the real
//! STruC++ and g++ (scripts/build-plc-program), and driving their I/O with
//! the plcio fixture plugin.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::*;

/// Builds `src` (a .st file, or with `from_output` a directory of STruC++
/// output) into `<dir>/libplc_<name>.so`; returns the library or the
/// script's stderr.
pub fn try_build(
    dir: &TempDir,
    name: &str,
    src: &Path,
    from_output: bool,
) -> Result<PathBuf, String> {
    let mut cmd = Command::new(repo().join("scripts/build-plc-program"));
    if from_output {
        cmd.arg("--from-output");
    }
    let out = cmd
        .arg(src)
        .args(["--name", name, "-o"])
        .arg(dir.path())
        .output()
        .unwrap();
    if out.status.success() {
        Ok(dir.join(&format!("libplc_{name}.so")))
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Builds the program `st` (source text) as `<dir>/libplc_<name>.so`.
pub fn build(dir: &TempDir, name: &str, st: &str) -> PathBuf {
    let src = dir.join(&format!("{name}.st"));
    std::fs::write(&src, st).unwrap();
    try_build(dir, name, &src, false).unwrap_or_else(|e| {
        panic!("build-plc-program {name}: {e}\n(the STruC++ build comes from scripts/install-deps --program)")
    })
}

/// STruC++'s output for `st`, written to `<dir>/<name>-out` (what the
/// OpenPLC editor produces), for tests that edit it.
pub fn strucpp_output(dir: &TempDir, name: &str, st: &str) -> PathBuf {
    let src = dir.join(&format!("{name}.st"));
    std::fs::write(&src, st).unwrap();
    let out = dir.join(&format!("{name}-out"));
    let strucpp = Command::new("bash")
        .arg("-c")
        .arg(". \"$1\" && plc_strucpp_dir")
        .arg("bash")
        .arg(repo().join("scripts/lib/plc_toolchain.sh"))
        .output()
        .unwrap();
    let strucpp = String::from_utf8(strucpp.stdout).unwrap();
    let node = Command::new("bash")
        .arg("-c")
        .arg(". \"$1\" && { n=$(plc_node); [ -x \"$n\" ] && echo \"$n\" || command -v node; }")
        .arg("bash")
        .arg(repo().join("scripts/lib/plc_toolchain.sh"))
        .output()
        .unwrap();
    let node = String::from_utf8(node.stdout).unwrap();
    run_ok(
        Command::new(node.trim())
            .arg(repo().join("scripts/lib/strucpp_compile.mjs"))
            .arg(strucpp.trim())
            .arg(&src)
            .arg(&out),
    );
    out
}

/// A plugins.conf line for the plcio driver running `steps` (JSON array).
pub fn plcio(dir: &TempDir, id: &str, steps: &str) -> String {
    let cfg = dir.join(&format!("{id}.json"));
    let record = dir.join(&format!("{id}.log"));
    std::fs::write(
        &cfg,
        format!(
            "{{\"record\": {:?}, \"steps\": {steps}}}",
            record.to_str().unwrap()
        ),
    )
    .unwrap();
    conf_line(id, &fixture_plugin("plcio"), Some(&cfg), None)
}

/// The plcio driver's record, once it wrote "done" (or a timeout).
pub fn wait_done(dir: &TempDir, id: &str, timeout: Duration) -> Vec<String> {
    let end = Instant::now() + timeout;
    loop {
        let lines: Vec<String> = std::fs::read_to_string(dir.join(&format!("{id}.log")))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect();
        if lines
            .iter()
            .any(|l| l == "done" || l.starts_with("timeout"))
        {
            return lines;
        }
        assert!(
            Instant::now() < end,
            "{id} not done after {timeout:?}: {lines:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The value of a "read ADDR V" or "seen ADDR V" line of the record.
pub fn value(lines: &[String], prefix: &str) -> u64 {
    lines
        .iter()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} in {lines:?}"))
        .trim()
        .parse()
        .unwrap()
}

/// Runs the runtime with `lines` until the plcio driver `io` is done;
/// returns its record and the runtime's log.
pub fn run_program(dir: &TempDir, lines: &[String], extra: &[&str]) -> (Vec<String>, String) {
    let conf = write_conf(dir.path(), lines);
    let mut args = vec!["--scan-priority", "0"];
    args.extend_from_slice(extra);
    let mut rt = Runtime::start(&conf, &args);
    let rec = wait_done(dir, "io", Duration::from_secs(60));
    rt.stop_ok();
    (rec, rt.log_text())
}
