//! Shared helpers of the integration tests: temporary directories, real venvs
//! made with `python -m venv` and pip (from wheels built out of
//! tests/fixtures/dists, offline), plugins.conf files, and the real runtime
//! binary started as a child process.

#![allow(dead_code)]

pub mod workers;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_openplc-runtime");

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixture_plugin(name: &str) -> PathBuf {
    repo()
        .join("tests/fixtures/plugins")
        .join(name)
        .join("plugin.py")
}

/// A directory removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "openplc-test-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
    pub fn join(&self, p: &str) -> PathBuf {
        self.0.join(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `openplc-runtime python-info` as a map.
pub fn python_info() -> &'static BTreeMap<String, String> {
    static INFO: OnceLock<BTreeMap<String, String>> = OnceLock::new();
    INFO.get_or_init(|| {
        let out = Command::new(BIN).arg("python-info").output().unwrap();
        assert!(out.status.success(), "python-info failed: {out:?}");
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    })
}

/// The Python the runtime embeds, as a program (to make matching venvs).
pub fn host_python() -> PathBuf {
    let i = python_info();
    PathBuf::from(&i["prefix"])
        .join("bin")
        .join(format!("python{}", i["major_minor"]))
}

/// Wheels of the test distributions (foo 1.0, foo 2.0, pthdemo 1.0), built
/// once per test binary.
pub fn wheelhouse() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("openplc-test-wheels-{}", std::process::id()));
        let out = Command::new(host_python())
            .arg(repo().join("tests/fixtures/make_wheels.py"))
            .arg(&dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "make_wheels failed: {out:?}");
        dir
    })
}

/// A real venv at `dir`, made by `python` with `packages` installed by pip
/// from the local wheelhouse (no network).
pub fn make_venv_with(python: &Path, dir: &Path, packages: &[&str]) {
    run_ok(
        Command::new(python)
            .args(["-m", "venv", "--without-pip"])
            .arg(dir),
    );
    if !packages.is_empty() {
        run_ok(
            Command::new(host_python())
                .args(["-m", "pip", "--disable-pip-version-check", "--no-cache-dir"])
                .arg("--python")
                .arg(dir.join("bin/python"))
                .args(["install", "-q", "--no-index", "--find-links"])
                .arg(wheelhouse())
                .args(packages),
        );
    }
}

/// A venv made by the embedded interpreter's own Python.
pub fn make_venv(dir: &Path, packages: &[&str]) {
    make_venv_with(&host_python(), dir, packages);
}

pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Writes a probe config (JSON) and returns its path.
pub fn probe_config(dir: &Path, id: &str, extra: &str) -> PathBuf {
    let p = dir.join(format!("{id}.json"));
    let record = dir.join("record.log");
    let extra = if extra.is_empty() {
        String::new()
    } else {
        format!(", {extra}")
    };
    std::fs::write(
        &p,
        format!(
            "{{\"record\": {:?}, \"id\": {id:?}{extra}}}",
            record.to_str().unwrap()
        ),
    )
    .unwrap();
    p
}

/// The lines the probes recorded, in order.
pub fn record(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("record.log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Record lines of one probe, without the id prefix.
pub fn events(dir: &Path, id: &str) -> Vec<String> {
    let prefix = format!("{id}:");
    record(dir)
        .iter()
        .filter_map(|l| l.strip_prefix(&prefix).map(str::to_string))
        .collect()
}

/// Just the lifecycle events, "id:event".
pub fn lifecycle(dir: &Path) -> Vec<String> {
    record(dir)
        .into_iter()
        .filter(|l| {
            ["init", "start_loop", "stop_loop", "cleanup"]
                .iter()
                .any(|e| l.ends_with(&format!(":{e}")))
        })
        .collect()
}

pub fn write_conf(dir: &Path, lines: &[String]) -> PathBuf {
    let p = dir.join("plugins.conf");
    std::fs::write(&p, lines.join("\n") + "\n").unwrap();
    p
}

/// The runtime binary started as a child, stderr captured to a file.
pub struct Runtime {
    pub child: Child,
    pub log: PathBuf,
}

impl Runtime {
    pub fn start(conf: &Path, extra: &[&str]) -> Runtime {
        Self::start_with(conf, extra, |_| {})
    }

    pub fn start_with(conf: &Path, extra: &[&str], f: impl FnOnce(&mut Command)) -> Runtime {
        let log = conf.with_file_name("runtime.log");
        let mut cmd = Command::new(BIN);
        cmd.arg("--config")
            .arg(conf)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(conf.with_file_name("stdout.log")).unwrap())
            .stderr(std::fs::File::create(&log).unwrap());
        f(&mut cmd);
        Runtime {
            child: cmd.spawn().unwrap(),
            log,
        }
    }

    pub fn log_text(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// Waits until the log contains `needle`; panics with the log after `timeout`.
    pub fn wait_log(&mut self, needle: &str, timeout: Duration) {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if self.log_text().contains(needle) {
                return;
            }
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!(
                    "runtime exited ({st}) before logging {needle:?}:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "no {needle:?} in the log after {timeout:?}:\n{}",
            self.log_text()
        );
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: sending a signal to our own child process.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// SIGTERM, then the ordered stop must end with exit code 0.
    pub fn stop_ok(&mut self) {
        self.signal(libc::SIGTERM);
        let code = self.wait_exit(Duration::from_secs(30));
        assert_eq!(code, 0, "exit code after SIGTERM:\n{}", self.log_text());
    }

    /// Waits for exit; panics with the log after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> i32 {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st.code().unwrap_or(-1);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        panic!(
            "runtime still running after {timeout:?}:\n{}",
            self.log_text()
        );
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `openplc-runtime check` (or another command) to completion.
pub fn runtime(args: &[&str], conf: &Path) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .arg("--config")
        .arg(conf)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub fn conf_line(name: &str, plugin: &Path, config: Option<&Path>, venv: Option<&Path>) -> String {
    format!(
        "{name},{},1,0,{},{}",
        plugin.display(),
        config.map(|p| p.display().to_string()).unwrap_or_default(),
        venv.map(|p| p.display().to_string()).unwrap_or_default()
    )
}

/// The C compiler for the target the tests run on: `$OPENPLC_TEST_CC`, else
/// `$TARGET_CC`, else the Debian cross compiler for an arm64/armhf test binary
/// when it is installed (the qemu-user tier), else `cc`.
pub fn target_cc() -> String {
    if let Some(cc) = ["OPENPLC_TEST_CC", "TARGET_CC"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
    {
        return cc;
    }
    let cross = if cfg!(target_arch = "aarch64") {
        Some("aarch64-linux-gnu-gcc")
    } else if cfg!(target_arch = "arm") {
        Some("arm-linux-gnueabihf-gcc")
    } else {
        None
    };
    cross
        .filter(|c| {
            Command::new(c)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .unwrap_or("cc")
        .to_string()
}

/// Builds a native plugin from C source into `out` (a shared object), with
/// extra compiler arguments such as `-DNAME=value`.
pub fn build_native(src: &Path, out: &Path, extra: &[&str]) -> PathBuf {
    run_ok(
        Command::new(target_cc())
            .args(["-shared", "-fPIC", "-O2", "-Wall", "-o"])
            .arg(out)
            .arg(src)
            .args(extra),
    );
    out.to_path_buf()
}

/// A plugins.conf line for a native (type 1) plugin.
pub fn native_line(name: &str, so: &Path, config: Option<&Path>) -> String {
    format!(
        "{name},{},1,1,{}",
        so.display(),
        config.map(|p| p.display().to_string()).unwrap_or_default()
    )
}

/// plugins.conf for the allocation proof and its benchmark: `hammers` probe
/// plugins writing the journal and reading under image_lock in tight loops,
/// the native counter example (cycle hooks), and a probe that calls
/// request_plc_stop after `seconds`.
pub fn hammer_conf(dir: &TempDir, hammers: usize, seconds: u64) -> PathBuf {
    let counter = build_native(
        &repo().join("examples/native/counter_plugin.c"),
        &dir.join("counter_plugin.so"),
        &[],
    );
    let timer = probe_config(dir.path(), "timer", &format!("\"stop_after_s\": {seconds}"));
    let lines: Vec<String> = (0..hammers)
        .map(|i| {
            let id = format!("h{i}");
            let cfg = probe_config(dir.path(), &id, &format!("\"hammer_int\": [5, {i}]"));
            conf_line(&id, &fixture_plugin("probe"), Some(&cfg), None)
        })
        .chain([
            native_line("counter", &counter, None),
            conf_line("timer", &fixture_plugin("probe"), Some(&timer), None),
        ])
        .collect();
    write_conf(dir.path(), &lines)
}

/// Says, visibly in the test run's output (the harness captures `eprintln!`
/// of passing tests), that a test did not test anything here, and why.
pub fn skip(test: &str, why: &str) {
    let line = format!("SKIP {test}: {why}\n");
    // SAFETY: writing a valid buffer to fd 2, which the process owns.
    unsafe { libc::write(2, line.as_ptr().cast(), line.len()) };
}

/// Whether this process has capability number `cap` (capabilities(7)) in its
/// effective set, from /proc/self/status (children inherit it).
pub fn has_capability(cap: u32) -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|bits| bits & (1u64 << cap) != 0)
}

/// CAP_SYS_NICE (capabilities(7)): needed for SCHED_FIFO.
pub const CAP_SYS_NICE: u32 = 23;
