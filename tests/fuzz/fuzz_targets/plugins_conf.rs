//! plugins.conf bytes through the strict parser: no panic, no hang; every
//! accepted line is a bounded, well-formed entry; every rejection names the
//! file and a line (or the file itself) and says why.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use openplc_runtime::config::{self, MAX_NAME_LEN, MAX_PATH_LEN, MAX_PLUGINS};

fuzz_target!(|data: &[u8]| {
    let file = Path::new("/etc/openplc/plugins.conf");
    match config::parse(file, Path::new("/etc/openplc"), data) {
        Ok(conf) => {
            assert!(conf.plugins.len() <= MAX_PLUGINS);
            for (i, p) in conf.plugins.iter().enumerate() {
                assert!(!p.name.is_empty() && p.name.len() <= MAX_NAME_LEN);
                assert!(conf.plugins[..i].iter().all(|q| q.name != p.name));
                assert!(p.path.is_absolute() && p.path.as_os_str().len() <= MAX_PATH_LEN);
                for q in [&p.config_path, &p.venv_path].into_iter().flatten() {
                    assert!(q.is_absolute() && q.as_os_str().len() <= MAX_PATH_LEN);
                }
                assert!(p.line >= 1 && p.file == file);
            }
        }
        Err(errors) => {
            assert!(!errors.is_empty());
            for e in &errors {
                assert_eq!(e.file, file);
                assert!(!e.reason.is_empty());
                let text = e.to_string();
                assert!(text.starts_with("/etc/openplc/plugins.conf:"), "{text}");
                if let Some(n) = e.field {
                    assert!((1..=config::MAX_FIELDS).contains(&n), "{text}");
                }
            }
        }
    }
});
