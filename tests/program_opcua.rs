//! OpenPLC's own OPC UA server plugin (its v4.1.4 source, MIT, unpacked from
//! `../shared/upstream` into `~/.cache/openplc-runtime`), configured from a
//! PLC program's generated debug map, serves the program's variables through
//! the debugger callbacks: a real asyncua client reads a value the program
//! counts and writes a variable the program computes an output from. Real STruC++,
//! g++, runtime, venv (asyncua pinned, from the wheel cache tests/opcua.rs
//! fills) and sockets.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

const PLUGINS: &str = "openplc-runtime-plugins-v4.1.4-071195a";
const NAMESPACE: &str = "urn:openplc-runtime:program-opcua-test";

fn cache() -> PathBuf {
    std::env::var_os("OPENPLC_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME or OPENPLC_CACHE"))
                .join(".cache/openplc-runtime")
        })
}

/// OpenPLC's Python plugins directory (`opcua/`, `shared/`), unpacked once.
fn upstream_plugins() -> PathBuf {
    let root = cache().join(PLUGINS);
    let python = root.join("openplc-runtime-plugins/core/src/drivers/plugins/python");
    if !python.join("opcua/plugin.py").is_file() {
        let tarball = repo()
            .parent()
            .unwrap()
            .join(format!("shared/upstream/{PLUGINS}.tar.xz"));
        std::fs::create_dir_all(&root).unwrap();
        run_ok(
            Command::new("tar")
                .arg("-xJf")
                .arg(&tarball)
                .arg("-C")
                .arg(&root),
        );
    }
    python
}

/// A venv with the pinned asyncua set (OpenPLC's plugin needs asyncua and
/// cryptography; psutil and bcrypt are optional there), from the wheel cache.
fn venv(dir: &Path) -> PathBuf {
    let venv = dir.join("venv");
    run_ok(
        Command::new(host_python())
            .args(["-m", "venv", "--without-pip"])
            .arg(&venv),
    );
    let wheels = cache().join("opcua-wheels");
    let reqs = repo().join("examples/plugins/opcua_server/requirements.txt");
    let pip = |args: &[&str]| {
        Command::new(host_python())
            .args(["-m", "pip", "--disable-pip-version-check", "--no-cache-dir"])
            .args(args)
            .output()
            .unwrap()
    };
    let install = |v: &Path| {
        pip(&[
            "--python",
            v.join("bin/python").to_str().unwrap(),
            "install",
            "-q",
            "--no-index",
            "--find-links",
            wheels.to_str().unwrap(),
            "-r",
            reqs.to_str().unwrap(),
        ])
    };
    if !install(&venv).status.success() {
        std::fs::create_dir_all(&wheels).unwrap();
        eprintln!("filling {} from PyPI", wheels.display());
        let out = pip(&[
            "wheel",
            "-q",
            "-w",
            wheels.to_str().unwrap(),
            "-r",
            reqs.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "pip wheel: {out:?}");
        let out = install(&venv);
        assert!(out.status.success(), "pip install: {out:?}");
    }
    venv
}

/// Copies `src` into `dst` (OpenPLC's plugin writes its certificates next to
/// itself: a copy per test).
fn copy_tree(src: &Path, dst: &Path) {
    run_ok(Command::new("cp").arg("-r").arg(src).arg(dst));
}

const PROGRAM: &str = "
PROGRAM Served
  VAR
    limit : INT := 100;
    capped AT %QW2 : INT;
    runs : DINT;
  END_VAR
  capped := limit * 2;
  runs := runs + 1;
END_PROGRAM

CONFIGURATION Config0
  RESOURCE Res0 ON PLC
    TASK Main(INTERVAL := T#10ms, PRIORITY := 1);
    PROGRAM Inst0 WITH Main : Served;
  END_RESOURCE
END_CONFIGURATION
";

/// `(arr, elem, type)` of `path` in a debug-map.json's text.
fn leaf(map: &str, path: &str) -> (u64, u64, String) {
    // The map is STruC++'s pretty-printed JSON: one leaf per block.
    let at = map
        .find(&format!("\"path\": \"{path}\""))
        .unwrap_or_else(|| panic!("{path} not in the debug map:\n{map}"));
    let start = map[..at].rfind('{').unwrap();
    let end = at + map[at..].find('}').unwrap();
    let block = &map[start..end];
    let field = |name: &str| -> String {
        let f = block.find(&format!("\"{name}\": ")).unwrap() + name.len() + 4;
        block[f..]
            .split([',', '\n'])
            .next()
            .unwrap()
            .trim()
            .trim_matches('"')
            .to_string()
    };
    (
        field("arrayIdx").parse().unwrap(),
        field("elemIdx").parse().unwrap(),
        field("type"),
    )
}

#[test]
fn openplcs_opcua_plugin_reads_and_writes_program_variables() {
    let dir = TempDir::new("prog-opcua");
    // The program.
    let src = dir.join("served.st");
    std::fs::write(&src, PROGRAM).unwrap();
    run_ok(
        Command::new(repo().join("scripts/build-plc-program"))
            .arg(&src)
            .arg("-o")
            .arg(dir.path()),
    );
    let so = dir.join("libplc_served.so");
    let map = std::fs::read_to_string(dir.join("debug-map.json")).unwrap();
    // OpenPLC's plugin, configured from the map.
    let plugins = dir.join("python");
    std::fs::create_dir_all(&plugins).unwrap();
    let upstream = upstream_plugins();
    copy_tree(&upstream.join("opcua"), &plugins);
    copy_tree(&upstream.join("shared"), &plugins);
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("opc.tcp://127.0.0.1:{port}/openplc/opcua");
    let var = |name: &str, path: &str, perm: &str| {
        let (arr, elem, ty) = leaf(&map, path);
        format!(
            r#"{{"node_id": "PLC.{name}", "browse_name": "{name}", "display_name": "{name}",
  "datatype": "{ty}", "description": "{path}", "arr": {arr}, "elem": {elem},
  "permissions": {{"viewer": "{perm}", "operator": "{perm}", "engineer": "{perm}"}}}}"#
        )
    };
    let cfg = dir.join("opcua.json");
    std::fs::write(
        &cfg,
        format!(
            r#"[{{"name": "opcua_server", "protocol": "OPC-UA", "config": {{
  "server": {{"name": "program test", "application_uri": "urn:openplc-runtime:test",
    "product_uri": "urn:openplc-runtime:test", "endpoint_url": "{endpoint}",
    "security_profiles": [{{"name": "insecure", "enabled": true, "security_policy": "None",
      "security_mode": "None", "auth_methods": ["Anonymous"]}}]}},
  "security": {{"server_certificate_strategy": "auto_self_signed",
    "server_certificate_custom": null, "server_private_key_custom": null,
    "trusted_client_certificates": []}},
  "users": [],
  "cycle_time_ms": 50,
  "address_space": {{"namespace_uri": "{NAMESPACE}", "variables": [{}, {}, {}]}}
}}}}]"#,
            var("limit", "INST0.LIMIT", "rw"),
            var("capped", "INST0.CAPPED", "r"),
            var("runs", "INST0.RUNS", "r")
        ),
    )
    .unwrap();
    let venv = venv(dir.path());
    let conf = write_conf(
        dir.path(),
        &[
            native_line("prog", &so, None),
            conf_line(
                "opcua",
                &plugins.join("opcua/plugin.py"),
                Some(&cfg),
                Some(&venv),
            ),
        ],
    );
    let mut rt = Runtime::start_with(&conf, &["--scan-priority", "0"], |c| {
        c.env("STATE_DIRECTORY", dir.join("state"));
    });
    rt.wait_log("OPC-UA server started on", Duration::from_secs(120));
    let t = Instant::now();
    let out = Command::new(venv.join("bin/python"))
        .arg(repo().join("tests/fixtures/openplc_opcua_client.py"))
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
    eprintln!("client done in {:.1} s", t.elapsed().as_secs_f64());
    assert!(stdout.contains("read runs>=10: True"), "{stdout}");
    assert!(stdout.contains("wrote limit=150"), "{stdout}");
    assert!(stdout.contains("read capped=300"), "{stdout}");
    rt.stop_ok();
}
