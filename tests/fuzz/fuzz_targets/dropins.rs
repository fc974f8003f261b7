//! Several drop-in files (the input split at 0xFF bytes) merged under a
//! `--root`: names stay unique across files, the capacity holds, absolute
//! paths land under the root, and every rejection names its own file.
#![no_main]

use std::path::{Component, Path, PathBuf};

use libfuzzer_sys::fuzz_target;
use openplc_runtime::config::{Builder, MAX_PATH_LEN, MAX_PLUGINS};

fuzz_target!(|data: &[u8]| {
    let root = Path::new("/staged");
    let files: Vec<PathBuf> = (0..8)
        .map(|i| PathBuf::from(format!("/staged/usr/lib/openplc/plugins.conf.d/{i:02}-f.conf")))
        .collect();
    let mut b = Builder::new(Path::new("/staged/etc/openplc/plugins.conf"));
    let mut used = Vec::new();
    for (chunk, file) in data.split(|&b| b == 0xFF).zip(&files) {
        b.add(file, chunk, Some(root));
        used.push(file.clone());
    }
    match b.finish() {
        Ok(conf) => {
            assert!(conf.plugins.len() <= MAX_PLUGINS);
            for (i, p) in conf.plugins.iter().enumerate() {
                assert!(conf.plugins[..i].iter().all(|q| q.name != p.name));
                assert!(used.contains(&p.file));
                // Every path is absolute, normalised (no `.` or `..` left)
                // and fits OpenPLC's 255-byte buffers.
                for q in [Some(&p.path), p.config_path.as_ref(), p.venv_path.as_ref()]
                    .into_iter()
                    .flatten()
                {
                    assert!(q.is_absolute(), "{}", q.display());
                    assert!(q.as_os_str().len() <= MAX_PATH_LEN, "{}", q.display());
                    assert!(
                        q.components()
                            .all(|c| matches!(c, Component::RootDir | Component::Normal(_))),
                        "{}",
                        q.display()
                    );
                }
            }
        }
        Err(errors) => {
            assert!(!errors.is_empty());
            for e in &errors {
                assert!(used.contains(&e.file), "{e}");
                assert!(e.line >= 1 && !e.reason.is_empty(), "{e}");
            }
        }
    }
});
