//! The root trust checks cover what the interpreter will load: a plugin's
//! sibling modules, drop-ins and masks, `.pth` files, a venv reached through a
//! symlink, and the plugin's files again at a worker's restart. Each test
//! needs root (as the daemon runs, and as CI runs the tests); run otherwise it
//! prints a SKIP line.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use common::*;

const NOBODY: u32 = 65534;

fn as_root(test: &str) -> bool {
    if openplc_runtime::sys::effective_uid() == 0 {
        return true;
    }
    skip(
        test,
        "not root: the trust checks apply to root only; run the tests as root (CI does)",
    );
    false
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A plugin that imports `helper` from its own directory, and a helper.py
/// (0666, owned by nobody) that leaves `marker` behind when imported.
#[test]
fn a_world_writable_sibling_module_is_refused_and_never_runs() {
    if !as_root("a_world_writable_sibling_module_is_refused_and_never_runs") {
        return;
    }
    let dir = TempDir::new("trust-helper");
    let pdir = dir.join("plugin");
    std::fs::create_dir(&pdir).unwrap();
    let plugin = pdir.join("plugin.py");
    std::fs::write(&plugin, "import helper\n\ndef init(args):\n    pass\n").unwrap();
    chmod(&plugin, 0o644);
    let marker = dir.join("marker");
    let helper = pdir.join("helper.py");
    std::fs::write(
        &helper,
        format!("open({:?}, 'w').write('ran as root')\n", marker.display()),
    )
    .unwrap();
    chmod(&helper, 0o666);
    std::os::unix::fs::chown(&helper, Some(NOBODY), Some(NOBODY)).unwrap();
    let conf = write_conf(dir.path(), &[conf_line("p", &plugin, None, None)]);
    let refusal = format!(
        "refusing {}: writable by group or others (mode 0666) and owned by uid {NOBODY}",
        helper.display()
    );
    for isolation in ["shared", "process"] {
        let (code, out, err) = runtime(&["check", "--isolation", isolation], &conf);
        assert_eq!(code, 78, "{out}{err}");
        assert!(err.contains(&refusal), "{err}");
        assert!(!marker.exists(), "check imported helper.py ({isolation})");
        let (code, _, err) = runtime(&["run", "--isolation", isolation], &conf);
        assert_eq!(code, 78, "{err}");
        assert!(err.contains(&refusal), "{err}");
        assert!(!marker.exists(), "run imported helper.py ({isolation})");
    }
}

/// An empty drop-in owned by nobody, in a 1777 operator directory, would mask
/// the package's drop-in of the same name: refused, naming owner and mode.
#[test]
fn an_untrusted_mask_in_a_sticky_directory_is_refused_not_obeyed() {
    if !as_root("an_untrusted_mask_in_a_sticky_directory_is_refused_not_obeyed") {
        return;
    }
    let root = TempDir::new("trust-mask");
    let pkg = root.join("usr/lib/openplc/plugins.conf.d");
    let ops = root.join("var/lib/openplc/plugins.conf.d");
    std::fs::create_dir_all(&pkg).unwrap();
    std::fs::create_dir_all(&ops).unwrap();
    let pdir = root.join("usr/lib/openplc/plugins/a");
    std::fs::create_dir_all(&pdir).unwrap();
    std::fs::write(pdir.join("plugin.py"), "def init(args):\n    pass\n").unwrap();
    std::fs::write(
        pkg.join("50-a.conf"),
        "a,/usr/lib/openplc/plugins/a/plugin.py,1,0\n",
    )
    .unwrap();
    let conf = root.join("etc/openplc/plugins.conf");
    let args = ["check", "--root", root.path().to_str().unwrap()];
    let (code, out, err) = runtime(&args, &conf);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("a: ok"), "{out}");

    chmod(&ops, 0o1777);
    let mask = ops.join("50-a.conf");
    std::fs::write(&mask, "").unwrap();
    std::os::unix::fs::chown(&mask, Some(NOBODY), Some(NOBODY)).unwrap();
    let (code, out, err) = runtime(&args, &conf);
    assert_eq!(code, 78, "{out}{err}");
    assert!(
        err.contains(&format!(
            "refusing {}: owned by uid {NOBODY} (mode 0644)",
            mask.display()
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "refusing {}: writable by group or others (mode 1777)",
            ops.display()
        )),
        "{err}"
    );
}

/// A `.pth` file in the venv's site-packages that others can write runs its
/// `import` lines as root: refused.
#[test]
fn a_pth_file_writable_by_others_is_refused() {
    if !as_root("a_pth_file_writable_by_others_is_refused") {
        return;
    }
    let dir = TempDir::new("trust-pth");
    let venv = dir.join("venv");
    make_venv(&venv, &["pthdemo"]);
    let pdir = dir.join("plugin");
    std::fs::create_dir(&pdir).unwrap();
    let plugin = pdir.join("plugin.py");
    std::fs::write(&plugin, "def init(args):\n    pass\n").unwrap();
    let conf = write_conf(dir.path(), &[conf_line("p", &plugin, None, Some(&venv))]);
    let (code, out, err) = runtime(&["check"], &conf);
    assert_eq!(code, 0, "{out}{err}");

    let site = venv.join(format!(
        "lib/python{}/site-packages",
        python_info()["major_minor"]
    ));
    let pth = std::fs::read_dir(&site)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "pth"))
        .expect("pthdemo installs a .pth file");
    chmod(&pth, 0o646);
    let (code, out, err) = runtime(&["check"], &conf);
    assert_eq!(code, 78, "{out}{err}");
    assert!(
        err.contains(&format!(
            "plugin `p`: venv: refusing {}: writable by group or others (mode 0646), owned by uid 0",
            pth.display()
        )),
        "{err}"
    );
}

/// The venv itself is root's, but the symlink that leads to it sits in a
/// group-writable directory: anyone in the group can point it elsewhere.
#[test]
fn a_venv_reached_through_a_link_in_a_group_writable_directory_is_refused() {
    if !as_root("a_venv_reached_through_a_link_in_a_group_writable_directory_is_refused") {
        return;
    }
    let dir = TempDir::new("trust-link");
    let venv = dir.join("venvs/real");
    make_venv(&venv, &[]);
    let links = dir.join("links");
    std::fs::create_dir(&links).unwrap();
    let link = links.join("v");
    std::os::unix::fs::symlink("../venvs/real", &link).unwrap();
    let pdir = dir.join("plugin");
    std::fs::create_dir(&pdir).unwrap();
    let plugin = pdir.join("plugin.py");
    std::fs::write(&plugin, "def init(args):\n    pass\n").unwrap();
    let conf = write_conf(dir.path(), &[conf_line("p", &plugin, None, Some(&link))]);
    let (code, out, err) = runtime(&["check"], &conf);
    assert_eq!(code, 0, "{out}{err}");

    chmod(&links, 0o775);
    let (code, out, err) = runtime(&["check"], &conf);
    assert_eq!(code, 78, "{out}{err}");
    assert!(
        err.contains(&format!(
            "plugin `p`: venv: refusing {}, a directory on the path to {}: writable by group or others (mode 0775)",
            links.display(),
            link.display()
        )),
        "{err}"
    );
    let (code, _, _) = runtime(&["run"], &conf);
    assert_eq!(code, 78);
}

/// Process isolation: the plugin's file becomes writable by others while it
/// runs; its worker then crashes (the plugin kills itself when a file it
/// polls appears). The restart checks again and imports nothing.
#[test]
fn a_plugin_file_made_untrusted_after_start_is_refused_at_its_restart() {
    if !as_root("a_plugin_file_made_untrusted_after_start_is_refused_at_its_restart") {
        return;
    }
    let dir = TempDir::new("trust-restart");
    let pdir = dir.join("plugin");
    std::fs::create_dir(&pdir).unwrap();
    let plugin = pdir.join("plugin.py");
    let imports = dir.join("imports");
    let crash = dir.join("crash");
    std::fs::write(
        &plugin,
        format!(
            r#"import os, signal, threading, time

with open({imports:?}, "a") as f:
    f.write("imported\n")

def _watch():
    while not os.path.exists({crash:?}):
        time.sleep(0.02)
    os.kill(os.getpid(), signal.SIGKILL)

def init(args):
    pass

def start_loop():
    threading.Thread(target=_watch, daemon=True).start()
"#,
            imports = imports.display().to_string(),
            crash = crash.display().to_string(),
        ),
    )
    .unwrap();
    chmod(&plugin, 0o644);
    let conf = write_conf(dir.path(), &[conf_line("p", &plugin, None, None)]);
    let mut rt = Runtime::start(&conf, &["--isolation", "process", "--log-target", "stderr"]);
    rt.wait_log("running:", Duration::from_secs(30));
    assert_eq!(std::fs::read_to_string(&imports).unwrap(), "imported\n");

    chmod(&plugin, 0o666);
    std::fs::write(&crash, "").unwrap();
    rt.wait_log("[p] not restarting its worker: ", Duration::from_secs(30));
    let log = rt.log_text();
    assert!(
        log.contains(&format!(
            "refusing {}: writable by group or others (mode 0666)",
            plugin.display()
        )),
        "{log}"
    );
    assert!(!log.contains("[p] restarting its worker\n"), "{log}");
    // Only the first start imported it.
    assert_eq!(std::fs::read_to_string(&imports).unwrap(), "imported\n");
    rt.stop_ok();
}

/// What the tree walk covers and where it stops: packages (identifier names)
/// are walked, other directories and a link to a state directory not made
/// yet are not refused, a sticky plugin directory is, and so is a tree past
/// the entry cap.
#[test]
fn the_plugin_tree_walk_covers_packages_and_is_bounded() {
    if !as_root("the_plugin_tree_walk_covers_packages_and_is_bounded") {
        return;
    }
    let dir = TempDir::new("trust-tree");
    let pdir = dir.join("plugin");
    std::fs::create_dir_all(pdir.join("pkg/sub")).unwrap();
    std::fs::create_dir_all(pdir.join("data-files")).unwrap();
    let plugin = pdir.join("plugin.py");
    std::fs::write(&plugin, "def init(args):\n    pass\n").unwrap();
    // Not importable (not an identifier): its contents are not the plugin's code.
    let data = pdir.join("data-files/log.txt");
    std::fs::write(&data, "").unwrap();
    chmod(&data, 0o666);
    // A writable-path link whose target the runtime makes later.
    std::os::unix::fs::symlink(dir.join("state/certs"), pdir.join("certs")).unwrap();
    let deep = pdir.join("pkg/sub/mod.py");
    std::fs::write(&deep, "").unwrap();
    let conf = write_conf(dir.path(), &[conf_line("p", &plugin, None, None)]);
    let (code, out, err) = runtime(&["check"], &conf);
    assert_eq!(code, 0, "{out}{err}");

    chmod(&deep, 0o664);
    let (code, _, err) = runtime(&["check"], &conf);
    assert_eq!(code, 78, "{err}");
    assert!(
        err.contains(&format!(
            "refusing {}: writable by group or others (mode 0664)",
            deep.display()
        )),
        "{err}"
    );
    chmod(&deep, 0o644);

    chmod(&pdir, 0o1777);
    let (code, _, err) = runtime(&["check"], &conf);
    assert_eq!(code, 78, "{err}");
    assert!(
        err.contains(&format!(
            "refusing {}: writable by group or others (mode 1777)",
            pdir.display()
        )),
        "{err}"
    );
    chmod(&pdir, 0o755);

    for i in 0..2000 {
        std::fs::write(pdir.join(format!("pkg/m{i}.py")), "").unwrap();
    }
    let (code, _, err) = runtime(&["check"], &conf);
    assert_eq!(code, 78, "{err}");
    assert!(
        err.contains(&format!(
            "refusing {}: more than 2000 entries to check",
            pdir.display()
        )),
        "{err}"
    );
}
