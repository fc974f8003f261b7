//! The embedded interpreter in this process: sys.path is rebuilt from the same
//! base on every activation (it never grows across reloads), and a plugin
//! reloaded under its module name is a fresh module. Its own test binary: the
//! interpreter is process-global.

mod common;

use common::*;
use openplc_runtime::python;

#[test]
fn sys_path_never_grows_and_reloads_are_fresh() {
    let dir = TempDir::new("interp");
    let venv = dir.join("venv");
    make_venv(&venv, &["pthdemo"]);
    let site = venv.join(format!(
        "lib/python{}/site-packages",
        python_info()["major_minor"]
    ));
    let interp = python::start(None).expect("interpreter");
    let base = interp.sys_path();
    let first = interp
        .set_paths(
            &[dir.path().to_path_buf()],
            std::slice::from_ref(&site),
            false,
        )
        .unwrap();
    for _ in 0..5 {
        let again = interp
            .set_paths(
                &[dir.path().to_path_buf()],
                std::slice::from_ref(&site),
                false,
            )
            .unwrap();
        assert_eq!(again, first);
    }
    // plugin dir, the stdlib base, the site dir and what pthdemo.pth adds.
    assert_eq!(first.len(), base.len() + 3, "{first:?}");
    assert_eq!(first[0], dir.path().to_str().unwrap());
    assert!(
        first
            .iter()
            .any(|p| p.ends_with("site-packages/pthdemo_extra")),
        "{first:?}"
    );

    let plugin = dir.join("counter.py");
    std::fs::write(&plugin, "import sys\nCOUNT = getattr(sys, '_counter_loads', 0) + 1\nsys._counter_loads = COUNT\n\ndef init(a):\n    pass\n").unwrap();
    let m1 = interp
        .load_plugin("openplc_plugin_counter", &plugin)
        .unwrap();
    interp.unload_plugin(m1);
    let m2 = interp
        .load_plugin("openplc_plugin_counter", &plugin)
        .unwrap();
    assert!(interp.has_function(&m2, "init"));
    assert!(!interp.has_function(&m2, "nope"));
    // A syntax error is reported with the file and the error type.
    let bad = dir.join("bad.py");
    std::fs::write(&bad, "def init(:\n").unwrap();
    let err = interp
        .load_plugin("openplc_plugin_bad", &bad)
        .err()
        .unwrap();
    assert!(err.contains("SyntaxError"), "{err}");
    assert!(err.contains("bad.py"), "{err}");
}
