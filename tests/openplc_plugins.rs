//! OpenPLC's own plugins, unchanged, under the real binary: S7Comm (native,
//! Snap7 bundled) built standalone with its own CMakeLists.txt from OpenPLC's
//! plugin sources (v4.1.4, MIT). Its log lines must arrive as text (OpenPLC's
//! printf-style log callbacks), and a start_loop that fails (its port is
//! taken) must count as failed.
//!
//! The sources come from `openplc-runtime-plugins-v4.1.4-071195a.tar.xz` in
//! `$OPENPLC_UPSTREAM_DIR`, else `../shared/upstream` next to the checkout
//! (or next to the main checkout of a git worktree), unpacked once into
//! `${OPENPLC_CACHE:-$HOME/.cache/openplc-runtime}`. Without the tarball the
//! tests say so and pass, as scripts/check-buildroot does.

mod common;

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use common::*;

const PLUGINS: &str = "openplc-runtime-plugins-v4.1.4-071195a";
const S7COMM_DIR: &str = "openplc-runtime-plugins/core/src/drivers/plugins/native/s7comm";

fn cache() -> PathBuf {
    std::env::var_os("OPENPLC_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME or OPENPLC_CACHE"))
                .join(".cache/openplc-runtime")
        })
}

/// The upstream tarball, if any of the places it may be holds it.
fn tarball() -> Option<PathBuf> {
    let name = format!("{PLUGINS}.tar.xz");
    let mut dirs: Vec<PathBuf> = std::env::var_os("OPENPLC_UPSTREAM_DIR")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    dirs.push(repo().join("../shared/upstream"));
    // A git worktree: next to the main checkout.
    if let Ok(out) = Command::new("git")
        .args(["rev-parse", "--path-format=absolute", "--git-common-dir"])
        .current_dir(repo())
        .output()
        && out.status.success()
    {
        let common = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if let Some(main) = common.parent() {
            dirs.push(main.join("../shared/upstream"));
        }
    }
    dirs.into_iter()
        .map(|d| d.join(&name))
        .find(|p| p.is_file())
}

fn run_checked(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// OpenPLC's plugin sources, unpacked once into the cache (into a temporary
/// directory first, so an interrupted unpack is never taken for a whole one).
fn sources(tarball: &Path) -> PathBuf {
    let dir = cache().join(PLUGINS);
    if dir.join(S7COMM_DIR).join("CMakeLists.txt").is_file() {
        return dir;
    }
    let tmp = cache().join(format!(".{PLUGINS}.{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).unwrap();
    run_checked(
        Command::new("tar")
            .arg("-xJf")
            .arg(tarball)
            .arg("-C")
            .arg(&tmp),
        "tar",
    );
    if std::fs::rename(&tmp, &dir).is_err() {
        // Another test process unpacked it meanwhile.
        let _ = std::fs::remove_dir_all(&tmp);
    }
    dir
}

/// libs7comm_plugin.so built from the unchanged sources with their own
/// CMakeLists.txt (once per test binary), or `None` without the tarball.
fn s7comm() -> Option<PathBuf> {
    static SO: OnceLock<Option<PathBuf>> = OnceLock::new();
    SO.get_or_init(|| {
        let Some(tarball) = tarball() else {
            eprintln!(
                "SKIP: {PLUGINS}.tar.xz not found ($OPENPLC_UPSTREAM_DIR, ../shared/upstream)"
            );
            return None;
        };
        let src = sources(&tarball).join(S7COMM_DIR);
        let build =
            std::env::temp_dir().join(format!("openplc-test-s7comm-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&build);
        run_checked(
            Command::new("cmake")
                .arg("-S")
                .arg(&src)
                .arg("-B")
                .arg(&build)
                .arg("-DCMAKE_BUILD_TYPE=Release"),
            "cmake (configure S7Comm; scripts/install-deps --test installs cmake)",
        );
        run_checked(
            Command::new("cmake")
                .arg("--build")
                .arg(&build)
                .args(["-j", "2"]),
            "cmake --build (S7Comm)",
        );
        let so = build.join("plugins/libs7comm_plugin.so");
        assert!(so.is_file(), "no {}", so.display());
        Some(so)
    })
    .clone()
}

/// S7Comm's JSON config: its server on 127.0.0.1:`port`, DB1 mapped to
/// int_input.
fn s7_config(dir: &TempDir, port: u16) -> PathBuf {
    let p = dir.join("s7comm.json");
    std::fs::write(
        &p,
        format!(
            r#"{{
  "server": {{ "enabled": true, "bind_address": "127.0.0.1", "port": {port}, "max_clients": 4 }},
  "plc_identity": {{ "name": "openplc-runtime test" }},
  "data_blocks": [
    {{ "db_number": 1, "description": "inputs", "size_bytes": 8,
       "mapping": {{ "type": "int_input", "start_buffer": 0 }} }}
  ],
  "logging": {{ "log_connections": true, "log_data_access": false, "log_errors": true }}
}}
"#
        ),
    )
    .unwrap();
    p
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// No line of the log holds an unformatted `%s` (the bug: every S7Comm line
/// was `[s7comm] %s`).
fn assert_no_format_strings(log: &str) {
    let raw: Vec<&str> = log.lines().filter(|l| l.contains("%s")).collect();
    assert!(raw.is_empty(), "unformatted lines {raw:?} in:\n{log}");
}

#[test]
fn s7comm_runs_unchanged_and_its_log_lines_are_text() {
    let Some(so) = s7comm() else { return };
    let dir = TempDir::new("s7comm-run");
    let port = free_port();
    let cfg = s7_config(&dir, port);
    let conf = write_conf(dir.path(), &[native_line("s7comm", &so, Some(&cfg))]);
    let mut rt = Runtime::start(&conf, &["--scan-period", "5ms"]);
    rt.wait_log(
        "running: 1 plugin(s) running, 0 failed",
        Duration::from_secs(30),
    );
    // Its server listens: a client connects (a real TCP connection; Snap7
    // reports it through the plugin's log).
    let client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    rt.wait_log(
        "[s7comm] [S7COMM] Client connected (ID: ",
        Duration::from_secs(10),
    );
    drop(client);
    rt.stop_ok();
    let log = rt.log_text();
    for line in [
        "[s7comm] [S7COMM] Initializing S7Comm plugin...".to_string(),
        "[s7comm] [S7COMM] Buffer size: 1024".to_string(),
        format!("[s7comm] [S7COMM] Loading config: {}", cfg.display()),
        format!("[s7comm] [S7COMM] Server config: port={port}, max_clients=4, pdu_size="),
        "[s7comm] [S7COMM] PLC identity: openplc-runtime test (".to_string(),
        "[s7comm] [S7COMM] DB1: 8 bytes -> int_input[0]".to_string(),
        format!("[s7comm] [S7COMM] Starting S7 server on 127.0.0.1:{port}..."),
        "[s7comm] [S7COMM] S7 server started successfully".to_string(),
        "[s7comm] [S7COMM] S7 server stopped".to_string(),
        "[s7comm] [S7COMM] S7Comm plugin cleanup complete".to_string(),
    ] {
        assert!(log.contains(&line), "no {line:?} in:\n{log}");
    }
    assert_no_format_strings(&log);
}

/// S7Comm's start_loop returns -1 when its port is taken: OpenPLC does not
/// mark it running, nor does this runtime; its error lines are text too.
#[test]
fn s7comm_failing_to_start_on_a_taken_port_counts_as_failed() {
    let Some(so) = s7comm() else { return };
    let dir = TempDir::new("s7comm-taken");
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let cfg = s7_config(&dir, port);
    let conf = write_conf(dir.path(), &[native_line("s7comm", &so, Some(&cfg))]);
    let mut rt = Runtime::start(&conf, &["--scan-period", "5ms"]);
    rt.wait_log(
        "running: 0 plugin(s) running, 1 failed (s7comm)",
        Duration::from_secs(30),
    );
    rt.stop_ok();
    drop(taken);
    let log = rt.log_text();
    for line in [
        "[s7comm] [S7COMM] Failed to start S7 server: 0x",
        "[s7comm] start_loop() returned -1 (0 = success); the plugin is marked failed",
        "[s7comm] [S7COMM] S7Comm plugin cleanup complete",
    ] {
        assert!(log.contains(line), "no {line:?} in:\n{log}");
    }
    assert_no_format_strings(&log);
}
