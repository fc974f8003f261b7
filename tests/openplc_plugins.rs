//! OpenPLC's own plugins, unchanged, under the real binary: S7Comm (native,
//! Snap7 bundled) built standalone with its own CMakeLists.txt from OpenPLC's
//! plugin sources (v4.1.4, MIT). Its log lines must arrive as text (OpenPLC's
//! printf-style log callbacks), a real S7 client (Snap7's own, from the same
//! build) must read and write the image through it, and a start_loop that
//! fails (its port is taken) must count as failed. OpenPLC's example Python
//! plugin, with its `shared/` helpers, runs beside it and logs as text.
//!
//! The sources come from `openplc-runtime-plugins-v4.1.4-071195a.tar.xz` in
//! `$OPENPLC_UPSTREAM_DIR`, else `../shared/upstream` next to the checkout
//! (or next to the main checkout of a git worktree), unpacked once into
//! `${OPENPLC_CACHE:-$HOME/.cache/openplc-runtime}`, and S7Comm is built
//! there. Without the tarball the tests say so and pass, as
//! scripts/check-buildroot does.

mod common;

use std::ffi::{CString, c_char, c_int, c_void};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

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
    // The tarball's files are group-writable: with the umask instead, so
    // that the runtime's root trust checks accept the plugins in it.
    run_checked(
        Command::new("tar")
            .args(["--no-same-owner", "--no-same-permissions", "-xJf"])
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

/// OpenPLC's plugin sources (the unpacked tarball's top directory), or
/// `None` without the tarball.
fn plugin_sources() -> Option<PathBuf> {
    static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
    DIR.get_or_init(|| {
        let Some(tarball) = tarball() else {
            eprintln!(
                "SKIP: {PLUGINS}.tar.xz not found ($OPENPLC_UPSTREAM_DIR, ../shared/upstream)"
            );
            return None;
        };
        Some(sources(&tarball))
    })
    .clone()
}

/// libs7comm_plugin.so built from the unchanged sources with their own
/// CMakeLists.txt (once per test binary, in the cache: a later run only
/// checks that it is up to date), or `None` without the tarball.
fn s7comm() -> Option<PathBuf> {
    static SO: OnceLock<Option<PathBuf>> = OnceLock::new();
    SO.get_or_init(|| {
        let src = plugin_sources()?.join(S7COMM_DIR);
        let build = cache().join(format!("{PLUGINS}-s7comm-build"));
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
/// int_input (%IW0..3), DB2 to int_output (%QW0..3).
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
       "mapping": {{ "type": "int_input", "start_buffer": 0 }} }},
    {{ "db_number": 2, "description": "outputs", "size_bytes": 8,
       "mapping": {{ "type": "int_output", "start_buffer": 0 }} }}
  ],
  "logging": {{ "log_connections": true, "log_data_access": false, "log_errors": true }}
}}
"#
        ),
    )
    .unwrap();
    p
}

/// `int Cli_DBRead/Cli_DBWrite(S7Object, int db, int start, int size, void *)`.
type DbFn = unsafe extern "C" fn(usize, c_int, c_int, c_int, *mut c_void) -> c_int;
/// `void Cli_Destroy(S7Object &)`: a C++ reference is a pointer in the C ABI.
type DestroyFn = unsafe extern "C" fn(*mut usize);
/// `S7Object Cli_Create()` (S7Object = uintptr_t).
type CreateFn = unsafe extern "C" fn() -> usize;
/// `int Cli_SetParam(S7Object, int param, void *value)`.
type SetParamFn = unsafe extern "C" fn(usize, c_int, *mut c_void) -> c_int;
/// `int Cli_ConnectTo(S7Object, const char *address, int rack, int slot)`.
type ConnectToFn = unsafe extern "C" fn(usize, *const c_char, c_int, c_int) -> c_int;

/// Snap7's client, as the S7Comm build exports it (Snap7 bundles one): the
/// test process loads the plugin's library only to use that client.
struct S7Client {
    cli: usize,
    db_read: DbFn,
    db_write: DbFn,
    destroy: DestroyFn,
}

/// `name` from the library `lib`, as a function of type `F`.
///
/// # Safety
/// `F` must be the function's signature (snap7_libmain.h).
unsafe fn symbol<F: Copy>(lib: *mut c_void, name: &str) -> F {
    assert_eq!(size_of::<F>(), size_of::<*mut c_void>());
    let n = CString::new(name).unwrap();
    // SAFETY: a live handle and a valid C string.
    let p = unsafe { libc::dlsym(lib, n.as_ptr()) };
    assert!(!p.is_null(), "no {name} in the S7Comm library");
    // SAFETY: a function pointer of the caller's signature, pointer-sized.
    unsafe { std::mem::transmute_copy::<*mut c_void, F>(&p) }
}

impl S7Client {
    /// Connected to 127.0.0.1:`port` (rack 0, slot 1), or Snap7's error code.
    fn connect(so: &Path, port: u16) -> Result<S7Client, c_int> {
        let path = CString::new(so.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid C string; the library's constructors are Snap7's
        // and S7Comm's static initialisers, nothing of the plugin runs.
        let lib = unsafe { libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        assert!(!lib.is_null(), "dlopen {}", so.display());
        // SAFETY: the signatures of snap7_libmain.h, above.
        let (create, set_param, connect_to) = unsafe {
            (
                symbol::<CreateFn>(lib, "Cli_Create"),
                symbol::<SetParamFn>(lib, "Cli_SetParam"),
                symbol::<ConnectToFn>(lib, "Cli_ConnectTo"),
            )
        };
        // SAFETY: as above.
        let (db_read, db_write, destroy) = unsafe {
            (
                symbol::<DbFn>(lib, "Cli_DBRead"),
                symbol::<DbFn>(lib, "Cli_DBWrite"),
                symbol::<DestroyFn>(lib, "Cli_Destroy"),
            )
        };
        let c = S7Client {
            // SAFETY: Cli_Create has no preconditions.
            cli: unsafe { create() },
            db_read,
            db_write,
            destroy,
        };
        let mut port = port;
        // SAFETY: p_u16_RemotePort (2) takes a pointer to a u16.
        let rc = unsafe { set_param(c.cli, 2, (&raw mut port).cast()) };
        assert_eq!(rc, 0, "Cli_SetParam");
        // SAFETY: a live client and a valid C string.
        match unsafe { connect_to(c.cli, c"127.0.0.1".as_ptr(), 0, 1) } {
            0 => Ok(c),
            e => Err(e),
        }
    }

    /// The big-endian 16-bit word `word` of data block `db`.
    fn read_word(&self, db: c_int, word: c_int) -> Result<u16, c_int> {
        let mut b = [0u8; 2];
        // SAFETY: a connected client and a 2-byte buffer for 2 bytes.
        match unsafe { (self.db_read)(self.cli, db, word * 2, 2, b.as_mut_ptr().cast()) } {
            0 => Ok(u16::from_be_bytes(b)),
            e => Err(e),
        }
    }

    fn write_word(&self, db: c_int, word: c_int, value: u16) -> Result<(), c_int> {
        let mut b = value.to_be_bytes();
        // SAFETY: as in read_word.
        match unsafe { (self.db_write)(self.cli, db, word * 2, 2, b.as_mut_ptr().cast()) } {
            0 => Ok(()),
            e => Err(e),
        }
    }
}

impl Drop for S7Client {
    fn drop(&mut self) {
        // SAFETY: the client made by Cli_Create; it disconnects and frees it.
        unsafe { (self.destroy)(&mut self.cli) };
    }
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

/// S7Comm serves the image to a real S7 client: a Python plugin journals
/// %IW0 = 4242, the client reads it from DB1 and writes 1337 to DB2 word 0,
/// which the Python plugin sees in %QW0. Every line S7Comm logs is text.
#[test]
fn s7comm_runs_unchanged_and_its_log_lines_are_text() {
    let Some(so) = s7comm() else { return };
    let dir = TempDir::new("s7comm-run");
    let port = free_port();
    let cfg = s7_config(&dir, port);
    let probe = probe_config(
        dir.path(),
        "py",
        "\"journal_int\": [[5, 0, 4242]], \"watch_int\": [\"int_output\", 0, 1337], \"watch_timeout_s\": 60",
    );
    let conf = write_conf(
        dir.path(),
        &[
            native_line("s7comm", &so, Some(&cfg)),
            conf_line("py", &fixture_plugin("probe"), Some(&probe), None),
        ],
    );
    let mut rt = Runtime::start(&conf, &["--scan-period", "5ms"]);
    rt.wait_log(
        "running: 2 plugin(s) running, 0 failed",
        Duration::from_secs(30),
    );
    let client = S7Client::connect(&so, port)
        .unwrap_or_else(|e| panic!("S7 connect: 0x{e:08x}\n{}", rt.log_text()));
    rt.wait_log(
        "[s7comm] [S7COMM] Client connected (ID: ",
        Duration::from_secs(10),
    );
    let end = Instant::now() + Duration::from_secs(10);
    let mut iw0 = client.read_word(1, 0);
    while iw0 != Ok(4242) && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
        iw0 = client.read_word(1, 0);
    }
    assert_eq!(iw0, Ok(4242), "DB1.DBW0 (%IW0)\n{}", rt.log_text());
    client.write_word(2, 0, 1337).unwrap();
    let end = Instant::now() + Duration::from_secs(30);
    while !record(dir.path())
        .iter()
        .any(|l| l == "py:saw int_output[0]=1337")
    {
        assert!(
            Instant::now() < end,
            "py never saw %QW0 = 1337: {:?}\n{}",
            record(dir.path()),
            rt.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
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
        "[s7comm] [S7COMM] DB2: 8 bytes -> int_output[0]".to_string(),
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

/// OpenPLC's example Python plugin with its `shared/` helpers, unchanged,
/// beside S7Comm, in both isolation modes. Its SafeLoggingAccess passes each
/// message as the format (`args.log_info(message.encode())`): here the
/// message arrives as text, as do S7Comm's printf-style lines.
#[test]
fn openplc_python_example_runs_unchanged_beside_s7comm() {
    let (Some(src), Some(so)) = (plugin_sources(), s7comm()) else {
        return;
    };
    let python = src.join("openplc-runtime-plugins/core/src/drivers/plugins/python");
    for isolation in ["shared", "process"] {
        let dir = TempDir::new(&format!("openplc-python-{isolation}"));
        // A copy (the plugin imports `shared` from its parent directory).
        let tree = dir.join("python");
        std::fs::create_dir(&tree).unwrap();
        run_checked(
            Command::new("cp")
                .arg("-r")
                .arg(python.join("examples"))
                .arg(python.join("shared"))
                .arg(&tree),
            "cp",
        );
        let cfg = s7_config(&dir, free_port());
        let conf = write_conf(
            dir.path(),
            &[
                native_line("s7comm", &so, Some(&cfg)),
                conf_line(
                    "example",
                    &tree.join("examples/example_python_plugin.py"),
                    None,
                    None,
                ),
            ],
        );
        let mut rt = Runtime::start(&conf, &["--log-level", "debug", "--isolation", isolation]);
        rt.wait_log(
            "running: 2 plugin(s) running, 0 failed",
            Duration::from_secs(30),
        );
        rt.stop_ok();
        let log = rt.log_text();
        for line in [
            "[example] Python plugin initialization started",
            "[example] Plugin received buffer_size=1024, bits_per_buffer=8",
            "[example] Python plugin initialization completed successfully",
            "[s7comm] [S7COMM] S7 server started successfully",
        ] {
            assert!(log.contains(line), "{isolation}: no {line:?} in:\n{log}");
        }
        assert_no_format_strings(&log);
    }
}
