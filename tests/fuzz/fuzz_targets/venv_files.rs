//! A venv's `pyvenv.cfg` and one distribution's METADATA (the input split at
//! the first 0xFF byte), written to a real directory and opened as the
//! runtime opens a plugin's venv: no panic, no hang; a rejection names the
//! plugin and the venv; an accepted venv matches the interpreter's X.Y.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use openplc_runtime::venv::{self, PyVersion};

fn venv_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("openplc-fuzz-venv-{}", std::process::id()));
        let site = d.join("lib/python3.11/site-packages/demo-1.0.dist-info");
        std::fs::create_dir_all(&site).unwrap();
        d
    })
}

fuzz_target!(|data: &[u8]| {
    let (cfg, meta) = match data.iter().position(|&b| b == 0xFF) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b""[..]),
    };
    let root = venv_dir();
    std::fs::write(root.join("pyvenv.cfg"), cfg).unwrap();
    std::fs::write(
        root.join("lib/python3.11/site-packages/demo-1.0.dist-info/METADATA"),
        meta,
    )
    .unwrap();
    let embedded = PyVersion {
        major: 3,
        minor: 11,
        micro: 4,
    };
    match venv::open("fuzzed", root, embedded) {
        Ok(v) => {
            assert!(v.version.abi_matches(&embedded));
            assert_eq!(v.distributions.len(), 1);
            let d = &v.distributions[0];
            assert_eq!(d.key, venv::normalize_name(&d.name));
        }
        Err(e) => {
            assert!(e.starts_with("plugin `fuzzed`: "), "{e}");
            assert!(e.contains(&root.display().to_string()), "{e}");
        }
    }
    // The pure parsers on the raw text as well.
    let text = String::from_utf8_lossy(data);
    let _ = venv::parse_pyvenv_cfg(&text);
    let _ = PyVersion::parse(&text);
    let d = venv::parse_metadata(&text, &text);
    assert_eq!(d.key, venv::normalize_name(&d.name));
});
