//! The command line of the real binary: python-info, exit codes, every bad
//! plugins.conf line reported at once, `check`'s per-plugin lines, and the
//! ownership/mode checks that apply when running as root.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use common::*;

#[test]
fn python_info_describes_the_embedded_interpreter() {
    let i = python_info();
    let v = &i["version"];
    assert!(v.starts_with(&format!("{}.", i["major_minor"])), "{i:?}");
    assert_eq!(i["abi"], format!("cp{}", i["major_minor"].replace('.', "")));
    assert!(
        i["soabi"].starts_with(&format!("cpython-{}", i["major_minor"].replace('.', ""))),
        "{i:?}"
    );
    assert_eq!(i["machine"], std::env::consts::ARCH);
    let stdlib = std::path::Path::new(&i["stdlib"]);
    assert!(stdlib.join("os.py").is_file(), "{i:?}");
    assert!(std::path::Path::new(&i["prefix"]).is_dir());
    // The same interpreter the venv tooling will use exists.
    assert!(host_python().is_file(), "{}", host_python().display());
}

#[test]
fn every_bad_line_is_reported_with_exit_78() {
    let dir = TempDir::new("badconf");
    let conf = dir.join("plugins.conf");
    std::fs::write(
        &conf,
        "# comment\r\n\r\n   # indented comment\r\ngood,/x.py,1,0\r\nbad,/x.py,yes,0\r\n\r\nugly,/y.py,1,2,,,\r\n",
    )
    .unwrap();
    let (code, out, err) = runtime(&["check"], &conf);
    assert_eq!(code, 78, "{out}{err}");
    let shown = conf.display();
    assert!(
        err.contains(&format!(
            "{shown}:5: field 3 (enabled): `yes` is not 0 or 1"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!("{shown}:7: 7 fields, at most 6 are allowed")),
        "{err}"
    );
    assert!(err.contains("2 configuration problem(s)"), "{err}");
    // The daemon refuses the same file with the same code.
    let (code, _, _) = runtime(&["run"], &conf);
    assert_eq!(code, 78);
}

#[test]
fn usage_errors_exit_64_and_help_exits_0() {
    let out = Command::new(BIN)
        .arg("--scan-period")
        .arg("soon")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--scan-period soon"));
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("78  configuration error"));
}

#[test]
fn check_prints_one_line_per_plugin() {
    let dir = TempDir::new("checklines");
    let venv = dir.join("venvs/v");
    make_venv(&venv, &["foo==1.0"]);
    let conf = write_conf(
        dir.path(),
        &[
            conf_line("ok", &fixture_plugin("probe"), None, Some(&venv)),
            format!("off,{},0,0", fixture_plugin("probe").display()),
            conf_line("noinit", &fixture_plugin("noinit"), None, None),
        ],
    );
    let (code, out, err) = runtime(&["check"], &conf);
    assert_eq!(code, 78, "{out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert!(
        lines[1].starts_with(&format!(
            "ok: ok (python, venv {} (1 distributions), imports, has init)",
            venv.display()
        )),
        "{out}"
    );
    // Each plugin's line ends with where it is defined.
    assert_eq!(
        lines[2],
        format!("off: disabled (not checked), {}:2", conf.display())
    );
    assert_eq!(
        lines[3],
        format!("noinit: error (see below), {}:3", conf.display())
    );
    assert!(
        err.contains("plugin `noinit`: ") && err.contains("has no init() function"),
        "{err}"
    );
    // check never calls init: the probe would record it.
    assert!(record(dir.path()).is_empty());
}

/// Runs only as root, as CI and the daemon do: files a root daemon executes
/// must not be writable by group/others nor owned by another user.
#[test]
fn as_root_untrusted_files_are_refused() {
    if openplc_runtime::sys::effective_uid() != 0 {
        skip(
            "as_root_untrusted_files_are_refused",
            "not root: the trust checks apply to root only; run the tests as root (CI does)",
        );
        return;
    }
    let dir = TempDir::new("trust");
    let pdir = dir.join("plugin");
    std::fs::create_dir_all(&pdir).unwrap();
    let plugin = pdir.join("plugin.py");
    std::fs::write(&plugin, "def init(args):\n    pass\n").unwrap();
    std::fs::set_permissions(&plugin, std::fs::Permissions::from_mode(0o644)).unwrap();
    let venv = dir.join("venv");
    make_venv(&venv, &[]);
    let conf = write_conf(dir.path(), &[conf_line("p", &plugin, None, Some(&venv))]);
    std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, out, err) = runtime(&["check"], &conf);
    assert_eq!(code, 0, "{out}{err}");

    std::fs::set_permissions(&plugin, std::fs::Permissions::from_mode(0o664)).unwrap();
    std::fs::set_permissions(&venv, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::os::unix::fs::chown(&conf, Some(65534), None).unwrap();
    let (code, _, err) = runtime(&["check"], &conf);
    assert_eq!(code, 78, "{err}");
    assert!(
        err.contains(&format!(
            "refusing {}: writable by group or others (mode 0664)",
            plugin.display()
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!("chmod go-w {}", plugin.display())),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "venv: refusing {}: writable by group or others (mode 0777)",
            venv.display()
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!("refusing {}: owned by uid 65534", conf.display())),
        "{err}"
    );
    let (code, _, _) = runtime(&["run"], &conf);
    assert_eq!(code, 78);
}

/// (policy, rt_priority) of the runtime's scan thread, from /proc.
fn scan_thread_sched(pid: u32) -> (u32, u32) {
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let dir = t.unwrap().path();
        if std::fs::read_to_string(dir.join("comm"))
            .unwrap_or_default()
            .trim()
            != "plc-scan"
        {
            continue;
        }
        let stat = std::fs::read_to_string(dir.join("stat")).unwrap();
        // Fields after the ")" of comm start at field 3; rt_priority is 40,
        // policy is 41 (proc(5)).
        let rest: Vec<&str> = stat
            .rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .collect();
        return (rest[41 - 3].parse().unwrap(), rest[40 - 3].parse().unwrap());
    }
    panic!("no plc-scan thread in process {pid}");
}

#[test]
fn the_scan_thread_runs_sched_fifo_or_says_why_not() {
    let dir = TempDir::new("prio");
    let conf = write_conf(dir.path(), &[]);
    for (args, expect) in [
        (&[][..], (1, 40)),
        (&["--scan-priority", "0"][..], (0, 0)),
        (&["--scan-priority", "7"][..], (1, 7)),
    ] {
        let mut rt = Runtime::start(&conf, args);
        rt.wait_log("running:", std::time::Duration::from_secs(30));
        let got = scan_thread_sched(rt.child.id());
        // Root is not enough: a container or a unit may bound CAP_SYS_NICE.
        if has_capability(CAP_SYS_NICE) || expect.0 == 0 {
            assert_eq!(got, expect, "{args:?}");
        } else {
            // Without CAP_SYS_NICE: normal scheduling, and the log says why.
            assert_eq!(got, (0, 0));
            assert!(
                rt.log_text().contains("cannot get real-time priority"),
                "{}",
                rt.log_text()
            );
        }
        rt.stop_ok();
    }
}
