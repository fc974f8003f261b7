//! Per-plugin venvs, made for real with `python -m venv` and pip from local
//! wheels: activation (site-packages and .pth files), conflict refusal in the
//! shared interpreter, version mismatch, missing venvs.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;

fn probe_line(dir: &TempDir, id: &str, venv: Option<&Path>, extra: &str) -> String {
    conf_line(
        id,
        &fixture_plugin("probe"),
        Some(&probe_config(dir.path(), id, extra)),
        venv,
    )
}

fn run_briefly(conf: &Path) -> Runtime {
    let mut rt = Runtime::start(conf, &[]);
    rt.wait_log("running:", Duration::from_secs(30));
    rt.signal(15);
    assert_eq!(
        rt.wait_exit(Duration::from_secs(20)),
        0,
        "{}",
        rt.log_text()
    );
    rt
}

#[test]
fn each_plugin_sees_its_venv_and_pth_files_are_honoured() {
    let dir = TempDir::new("activate");
    let venv = dir.join("venvs/pth");
    make_venv(&venv, &["foo==2.0", "pthdemo"]);
    let conf = write_conf(
        dir.path(),
        &[probe_line(
            &dir,
            "p",
            Some(&venv),
            "\"imports\": [\"foo\", \"hidden_by_pth\"]",
        )],
    );
    run_briefly(&conf);
    let ev = events(dir.path(), "p");
    assert!(ev.contains(&"import foo ok 2.0".to_string()), "{ev:?}");
    // hidden_by_pth is only reachable through pthdemo.pth in site-packages.
    assert!(
        ev.contains(&"import hidden_by_pth ok found through pthdemo.pth".to_string()),
        "{ev:?}"
    );
}

#[test]
fn a_plugin_without_venv_does_not_see_another_plugins_packages_in_check() {
    // `check` imports each plugin; a venv-less plugin importing foo fails.
    let dir = TempDir::new("novenv");
    let p = dir.join("needs_foo.py");
    std::fs::write(&p, "import foo\n\ndef init(args):\n    pass\n").unwrap();
    let conf = write_conf(dir.path(), &[conf_line("needs_foo", &p, None, None)]);
    let (code, out, err) = runtime(&["check"], &conf);
    assert_eq!(code, 78, "{out}{err}");
    assert!(out.contains("needs_foo: error (see below)"), "{out}");
    assert!(err.contains("plugin `needs_foo`: importing"), "{err}");
    assert!(
        err.contains("ModuleNotFoundError: No module named 'foo'"),
        "{err}"
    );
}

#[test]
fn conflicting_versions_are_refused_before_anything_is_imported() {
    let dir = TempDir::new("conflict");
    let v1 = dir.join("venvs/one");
    let v2 = dir.join("venvs/two");
    make_venv(&v1, &["foo==1.0"]);
    make_venv(&v2, &["foo==2.0"]);
    let conf = write_conf(
        dir.path(),
        &[
            probe_line(&dir, "one", Some(&v1), ""),
            probe_line(&dir, "two", Some(&v2), ""),
        ],
    );
    for cmd in ["check", "run"] {
        let (code, out, err) = runtime(&[cmd], &conf);
        assert_eq!(code, 78, "{cmd}: {out}{err}");
        for needle in [
            "plugins `one` and `two` would share one Python interpreter",
            "different versions of `foo`: 1.0 (in ",
            "and 2.0 (in ",
            "--isolation process",
        ] {
            assert!(err.contains(needle), "{cmd}: no {needle:?} in {err}");
        }
    }
    // Nothing was imported or initialised.
    assert!(record(dir.path()).is_empty(), "{:?}", record(dir.path()));
    // The same version in both is fine.
    let v3 = dir.join("venvs/three");
    make_venv(&v3, &["foo==1.0"]);
    let conf = write_conf(
        dir.path(),
        &[
            probe_line(&dir, "one", Some(&v1), ""),
            probe_line(&dir, "three", Some(&v3), ""),
        ],
    );
    let (code, out, err) = runtime(&["check"], &conf);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("one: ok (python, venv"), "{out}");
    assert!(out.contains("three: ok (python, venv"), "{out}");
}

/// A Python of another minor version than the embedded one, if this machine
/// has one (pyenv keeps several here).
fn other_python() -> Option<PathBuf> {
    let mm = &python_info()["major_minor"];
    let roots = std::fs::read_dir("/root/.pyenv/versions").ok()?;
    let mut found: Vec<PathBuf> = roots
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let v = e.file_name().into_string().ok()?;
            let short: String = v.split('.').take(2).collect::<Vec<_>>().join(".");
            let bin = e.path().join(format!("bin/python{short}"));
            (short != *mm && short.starts_with("3.") && short.as_str() >= "3.6" && bin.exists())
                .then_some(bin)
        })
        .collect();
    found.sort();
    found.pop()
}

#[test]
fn a_venv_made_by_another_python_version_is_refused_with_the_rebuild_command() {
    let dir = TempDir::new("mismatch");
    let venv = dir.join("venvs/old");
    let embedded = python_info()["version"].clone();
    let made_by = match other_python() {
        Some(py) => {
            make_venv_with(&py, &venv, &[]);
            py.display().to_string()
        }
        None => {
            // No second Python on this machine: make a real venv, then record
            // another version in its pyvenv.cfg, as a venv of 3.99 would.
            make_venv(&venv, &[]);
            let cfg = std::fs::read_to_string(venv.join("pyvenv.cfg")).unwrap();
            let cfg: String = cfg
                .lines()
                .map(|l| {
                    if l.starts_with("version") {
                        "version = 3.99.0".into()
                    } else {
                        l.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join("\n");
            std::fs::write(venv.join("pyvenv.cfg"), cfg).unwrap();
            "a pyvenv.cfg naming 3.99.0".to_string()
        }
    };
    eprintln!("venv made by {made_by}");
    let cfg = std::fs::read_to_string(venv.join("pyvenv.cfg")).unwrap();
    let venv_version = cfg
        .lines()
        .find_map(|l| {
            l.strip_prefix("version")
                .map(|v| v.trim_start_matches([' ', '=']).trim().to_string())
        })
        .unwrap();
    let conf = write_conf(dir.path(), &[probe_line(&dir, "old", Some(&venv), "")]);
    let (code, _, err) = runtime(&["check"], &conf);
    assert_eq!(code, 78, "{err}");
    for needle in [
        "plugins.conf:1: field 6 (venv_path): plugin `old`: venv ".to_string(),
        format!("was made by Python {venv_version}"),
        format!("but the runtime embeds Python {embedded}"),
        "scripts/manage_plugin_venvs.sh create --recreate old".to_string(),
    ] {
        assert!(err.contains(&needle), "no {needle:?} in {err}");
    }
    assert!(err.contains(&venv.display().to_string()), "{err}");
}

#[test]
fn missing_venv_or_pyvenv_cfg_is_an_error_naming_plugin_and_path() {
    let dir = TempDir::new("missing");
    let nothing = dir.join("venvs/nothing");
    let not_a_venv = dir.join("venvs/plain");
    std::fs::create_dir_all(&not_a_venv).unwrap();
    let conf = write_conf(
        dir.path(),
        &[
            probe_line(&dir, "gone", Some(&nothing), ""),
            probe_line(&dir, "plain", Some(&not_a_venv), ""),
        ],
    );
    let (code, out, err) = runtime(&["run"], &conf);
    assert_eq!(code, 78, "{out}{err}");
    assert!(err.contains(&format!(
        "plugins.conf:1: field 6 (venv_path): plugin `gone`: venv {} does not exist; create it with `scripts/manage_plugin_venvs.sh create gone`",
        nothing.display()
    )), "{err}");
    assert!(err.contains(&format!("plugins.conf:2: field 6 (venv_path): plugin `plain`: {} is not a venv: cannot read {}/pyvenv.cfg", not_a_venv.display(), not_a_venv.display())), "{err}");
    assert!(
        err.contains("2 configuration problem(s); nothing was started"),
        "{err}"
    );
    assert!(record(dir.path()).is_empty());
}

#[test]
fn system_site_packages_only_when_the_venv_asks_for_them() {
    let dir = TempDir::new("syssite");
    let closed = dir.join("venvs/closed");
    let open = dir.join("venvs/open");
    make_venv(&closed, &[]);
    run_ok(
        std::process::Command::new(host_python())
            .args(["-m", "venv", "--without-pip", "--system-site-packages"])
            .arg(&open),
    );
    let script = dir.join("show_path.py");
    std::fs::write(
        &script,
        "import os, sys\n\ndef init(args):\n    with open(os.environ['SHOW_PATH_OUT'], 'w') as f:\n        f.write('\\n'.join(sys.path))\n",
    )
    .unwrap();
    for (venv, expect_system) in [(&closed, false), (&open, true)] {
        let out = dir.join("path.txt");
        let conf = write_conf(dir.path(), &[conf_line("show", &script, None, Some(venv))]);
        let mut rt = Runtime::start_with(&conf, &[], |c| {
            c.env("SHOW_PATH_OUT", &out);
        });
        rt.wait_log("running:", Duration::from_secs(30));
        rt.stop_ok();
        let path = std::fs::read_to_string(&out).unwrap();
        let site = format!(
            "{}/lib/python{}/site-packages",
            venv.display(),
            python_info()["major_minor"]
        );
        assert!(path.lines().any(|l| l == site), "{path}");
        let system: Vec<&str> = path
            .lines()
            .filter(|l| (l.ends_with("-packages")) && !l.starts_with(venv.to_str().unwrap()))
            .collect();
        assert_eq!(
            !system.is_empty(),
            expect_system,
            "venv {}: {path}",
            venv.display()
        );
        // The plugin's own directory comes first, as in OpenPLC.
        assert_eq!(path.lines().next(), Some(dir.path().to_str().unwrap()));
    }
}
