//! The example OPC UA server plugin (examples/plugins/opcua_server) in a real
//! runtime, with its real venv (asyncua from PyPI), and a real asyncua client:
//! the client reads a value another plugin journaled and writes values that a
//! third plugin then reads in the image, through OpenPLC's debugger callbacks,
//! in both isolation modes. The server's certificate lands in the plugin's
//! writable state directory.
//!
//! The venv is built by pip from wheels cached in
//! `${OPENPLC_CACHE:-$HOME/.cache/openplc-runtime}/opcua-wheels`; a cold cache
//! is filled from PyPI (`pip wheel`), later runs are offline.

mod common;

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::*;

const NAMESPACE: &str = "urn:openplc-runtime:opcua-test";

fn requirements() -> PathBuf {
    repo().join("examples/plugins/opcua_server/requirements.txt")
}

fn wheel_cache() -> PathBuf {
    let base = std::env::var_os("OPENPLC_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME or OPENPLC_CACHE"))
                .join(".cache/openplc-runtime")
        });
    base.join("opcua-wheels")
}

fn pip_install(venv: &Path, cache: &Path) -> std::process::Output {
    Command::new(host_python())
        .args(["-m", "pip", "--disable-pip-version-check", "--no-cache-dir"])
        .arg("--python")
        .arg(venv.join("bin/python"))
        .args(["install", "-q", "--no-index", "--find-links"])
        .arg(cache)
        .arg("-r")
        .arg(requirements())
        .output()
        .unwrap()
}

/// The plugin's venv, built once per test binary (both modes use it).
fn opcua_venv() -> &'static Path {
    static VENV: OnceLock<PathBuf> = OnceLock::new();
    VENV.get_or_init(|| {
        let t = Instant::now();
        let venv =
            std::env::temp_dir().join(format!("openplc-test-opcua-venv-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&venv);
        run_ok(
            Command::new(host_python())
                .args(["-m", "venv", "--without-pip"])
                .arg(&venv),
        );
        let cache = wheel_cache();
        std::fs::create_dir_all(&cache).unwrap();
        if !pip_install(&venv, &cache).status.success() {
            // Cold cache: fetch (and build, for sdists) the pinned set once.
            eprintln!("filling {} from PyPI", cache.display());
            run_ok(
                Command::new(host_python())
                    .args([
                        "-m",
                        "pip",
                        "--disable-pip-version-check",
                        "wheel",
                        "-q",
                        "-w",
                    ])
                    .arg(&cache)
                    .arg("-r")
                    .arg(requirements()),
            );
            let out = pip_install(&venv, &cache);
            assert!(
                out.status.success(),
                "pip install from {}: {out:?}",
                cache.display()
            );
        }
        eprintln!("opcua venv ready in {:.1} s", t.elapsed().as_secs_f64());
        venv
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_record(dir: &Path, rt: &mut Runtime, line: &str, timeout: Duration) {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if record(dir).iter().any(|l| l == line) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!(
        "no {line:?} in the record after {timeout:?}: {:?}\n{}",
        record(dir),
        rt.log_text()
    );
}

fn round_trip(isolation: &str) {
    let venv = opcua_venv();
    let dir = TempDir::new(&format!("opcua-{isolation}"));
    let state = dir.join("state");
    let port = free_port();
    let endpoint = format!("opc.tcp://127.0.0.1:{port}/openplc/");
    let opcua_cfg = dir.join("opcua.json");
    std::fs::write(
        &opcua_cfg,
        format!(
            r#"{{"endpoint": "{endpoint}", "namespace_uri": "{NAMESPACE}", "poll_ms": 20,
  "security": ["None", "Basic256Sha256_SignAndEncrypt"],
  "variables": [
    {{"name": "ramp", "address": "%IW0", "datatype": "UINT"}},
    {{"name": "setpoint", "address": "%QW1", "datatype": "INT", "writable": true}},
    {{"name": "lamp", "arr": 1, "elem": 1, "writable": true}}
  ]}}"#
        ),
    )
    .unwrap();
    let probe = |id: &str, extra: &str| {
        let cfg = probe_config(dir.path(), id, extra);
        conf_line(id, &fixture_plugin("probe"), Some(&cfg), None)
    };
    let conf = write_conf(
        dir.path(),
        &[
            probe(
                "writer",
                r#""journal_int": [[5, 0, 4242]], "record_state_dir": true"#,
            ),
            conf_line(
                "opcua",
                &repo().join("examples/plugins/opcua_server/plugin.py"),
                Some(&opcua_cfg),
                Some(venv),
            ),
            probe(
                "reader",
                r#""watch_int": ["int_output", 1, 777], "watch_timeout_s": 300"#,
            ),
            probe(
                "lampwatch",
                r#""watch_int": ["bool_output", 0, 1, 1], "watch_timeout_s": 300"#,
            ),
        ],
    );
    let t = Instant::now();
    let mut rt = Runtime::start_with(
        &conf,
        &["--isolation", isolation, "--scan-period", "10ms"],
        |cmd| {
            cmd.env("STATE_DIRECTORY", &state);
        },
    );
    rt.wait_log(
        &format!("opcua_server: listening on {endpoint}"),
        Duration::from_secs(120),
    );
    eprintln!(
        "[{isolation}] server listening after {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let out = Command::new(venv.join("bin/python"))
        .arg(repo().join("tests/fixtures/opcua_client.py"))
        .arg(&endpoint)
        .arg(NAMESPACE)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "client failed: {stdout}\n{}\nruntime log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        rt.log_text()
    );
    eprintln!(
        "[{isolation}] client done in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    assert!(stdout.contains("browsed lamp,ramp,setpoint"), "{stdout}");
    assert!(stdout.contains("read ramp=4242"), "{stdout}");
    assert!(stdout.contains("ramp write refused"), "{stdout}");
    // The third and fourth plugins see the client's writes in the image.
    wait_record(
        dir.path(),
        &mut rt,
        "reader:saw int_output[1]=777",
        Duration::from_secs(60),
    );
    wait_record(
        dir.path(),
        &mut rt,
        "lampwatch:saw bool_output[0.1]=1",
        Duration::from_secs(60),
    );

    // Writable directories: one per plugin, 0750, the server's key and
    // certificate in the OPC UA plugin's; handed over in the capsule (both
    // modes) and in the environment (worker processes only).
    let mine = state.join("plugins/opcua");
    for d in [
        state.join("plugins"),
        mine.clone(),
        state.join("plugins/writer"),
    ] {
        let mode = std::fs::metadata(&d).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o750, "{}", d.display());
    }
    assert!(
        mine.join("certs/server_cert.der").is_file(),
        "{}",
        rt.log_text()
    );
    let key_mode = std::fs::metadata(mine.join("certs/server_key.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(key_mode & 0o077, 0, "the private key is readable by others");
    assert!(
        rt.log_text()
            .contains(&format!("state in {}", mine.display())),
        "{}",
        rt.log_text()
    );
    let writer_dir = state.join("plugins/writer").display().to_string();
    let env = if isolation == "process" {
        writer_dir.as_str()
    } else {
        "-"
    };
    assert!(
        events(dir.path(), "writer").contains(&format!("state_dir capsule={writer_dir} env={env}")),
        "{:?}",
        record(dir.path())
    );
    rt.stop_ok();
}

#[test]
fn opcua_round_trip_shared() {
    round_trip("shared");
}

#[test]
fn opcua_round_trip_process() {
    round_trip("process");
}

/// A bad variable in the plugin's config is refused at `init`, naming the file
/// and the entry, and the runtime goes on without the plugin.
#[test]
fn a_bad_variable_is_refused_naming_the_file_and_the_entry() {
    let venv = opcua_venv();
    let dir = TempDir::new("opcua-bad");
    let cfg = dir.join("opcua.json");
    std::fs::write(
        &cfg,
        r#"{"endpoint": "opc.tcp://127.0.0.1:1/x/", "variables": [
  {"name": "ok", "address": "%IW0"},
  {"name": "too_far", "arr": 5, "elem": 5000}
]}"#,
    )
    .unwrap();
    let conf = write_conf(
        dir.path(),
        &[conf_line(
            "opcua",
            &repo().join("examples/plugins/opcua_server/plugin.py"),
            Some(&cfg),
            Some(venv),
        )],
    );
    let mut rt = Runtime::start(&conf, &[]);
    rt.wait_log(
        "running: 0 plugin(s) running, 1 failed",
        Duration::from_secs(120),
    );
    let want = format!(
        "{}: variables[1]: (arr 5, elem 5000) does not exist in the runtime (14 arrays; array 5 has 1024 elements)",
        cfg.display()
    );
    assert!(rt.log_text().contains(&want), "{}", rt.log_text());
    rt.stop_ok();
}
