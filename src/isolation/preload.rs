//! What the zygote preloads: the stdlib modules workers of earlier runs
//! imported themselves, kept in `<state>/`[`LEARNED_FILE`] (names only).

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The file in the state directory that lists the stdlib modules the
/// workers of the last run imported (one name per line).
pub const LEARNED_FILE: &str = "zygote-preload.txt";
/// At most this many names are read from it.
const MAX_LEARNED: usize = 2000;
/// A larger file is no list of module names (2 000 names of 64 bytes).
const MAX_FILE: u64 = 128 << 10;

/// The learned stdlib modules (the file's, and what the workers of this run
/// reported), and since when that set has changes not yet saved.
static LEARNED: Mutex<(BTreeSet<String>, Option<Instant>)> = Mutex::new((BTreeSet::new(), None));

/// Names learned in this run and not yet sent to the zygote.
static PENDING: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// The stdlib's top-level module names, as the zygote's interpreter gives
/// them (`sys.stdlib_module_names`); until it did, nothing is learned.
static STDLIB: Mutex<Option<BTreeSet<String>>> = Mutex::new(None);

/// Whether `name` looks like a dotted module name that may be preloaded (what
/// the learned file may hold; anything else in it is ignored): identifiers
/// only, and no `__main__` part (importing `unittest.__main__` runs test
/// discovery in the working directory and raises SystemExit).
pub(crate) fn is_module_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && name.split('.').all(|part| {
            let mut c = part.chars();
            part != "__main__"
                && c.next()
                    .is_some_and(|f| f == '_' || f.is_ascii_alphabetic())
                && c.all(|x| x == '_' || x.is_ascii_alphanumeric())
        })
}

/// The zygote's `N` message: the stdlib's top-level names, one per line.
pub fn set_stdlib(payload: &[u8]) {
    let names = String::from_utf8_lossy(payload)
        .lines()
        .filter(|n| is_module_name(n) && !n.contains('.'))
        .map(String::from)
        .collect();
    *STDLIB.lock().unwrap_or_else(|e| e.into_inner()) = Some(names);
}

/// Whether `name` may be learned: a module name whose top-level package is
/// in the stdlib (as far as the zygote said).
fn is_learnable(name: &str) -> bool {
    let top = name.split('.').next().unwrap_or_default();
    is_module_name(name)
        && STDLIB
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_some_and(|s| s.contains(top))
}

/// A worker's `M` frame: the stdlib modules plugin `plugin` imported. Only
/// stdlib names without a `__main__` part are learned; the first other one
/// is logged. Without a zygote in this run (no stdlib list), nothing is.
pub fn learn(plugin: &str, payload: &[u8]) {
    if STDLIB.lock().unwrap_or_else(|e| e.into_inner()).is_none() {
        return; // no zygote this run: nothing is preloaded, nothing learned
    }
    let text = String::from_utf8_lossy(payload);
    let mut learned = LEARNED.lock().unwrap_or_else(|e| e.into_inner());
    let mut changed = false;
    let mut refused = None;
    for name in text.lines() {
        if !is_learnable(name) {
            refused.get_or_insert(name);
            continue;
        }
        if learned.0.len() >= MAX_LEARNED {
            break;
        }
        if learned.0.insert(name.to_string()) {
            changed = true;
            PENDING
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(name.to_string());
        }
    }
    drop(learned);
    if let Some(name) = refused {
        log::warn!(
            "[{plugin}] its worker reported `{}` as an imported stdlib module: not a stdlib module name the zygote may import; not learned",
            name.escape_debug()
        );
    }
    let mut learned = LEARNED.lock().unwrap_or_else(|e| e.into_inner());
    if changed && learned.1.is_none() {
        learned.1 = Some(Instant::now());
    }
}

/// The names workers reported since the last call (for the running zygote).
pub fn take_pending() -> Vec<String> {
    std::mem::take(&mut *PENDING.lock().unwrap_or_else(|e| e.into_inner()))
}

/// Everything learned so far (the file's names and this run's).
pub fn learned_names() -> Vec<String> {
    let learned = LEARNED.lock().unwrap_or_else(|e| e.into_inner());
    learned.0.iter().cloned().collect()
}

/// What to preload: the names in `<state>/LEARNED_FILE` (missing or
/// unreadable: none). They are also the start of this run's learned set. A
/// file over [`MAX_FILE`] bytes is ignored, and so is every line that is no
/// module name the zygote may import; both are logged.
pub fn preload_list(state: Option<&Path>) -> Vec<String> {
    let mut names = BTreeSet::new();
    if let Some(path) = state.map(|s| s.join(LEARNED_FILE)) {
        names = read_learned(&path);
    }
    let mut learned = LEARNED.lock().unwrap_or_else(|e| e.into_inner());
    learned.0.extend(names.iter().cloned());
    names.into_iter().collect()
}

/// The names in the learned file `path`, bounded and checked.
fn read_learned(path: &Path) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let Ok(meta) = std::fs::metadata(path) else {
        return names;
    };
    if meta.len() > MAX_FILE {
        log::warn!(
            "{}: {} bytes, more than the {MAX_FILE} a list of module names takes; ignored (delete it: it is written again from what workers import)",
            path.display(),
            meta.len()
        );
        return names;
    }
    let Ok(text) = std::fs::read_to_string(path) else {
        return names;
    };
    let mut bad = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let name = line.trim();
        if name.is_empty() || name.starts_with('#') {
            continue;
        }
        if !is_module_name(name) {
            bad.push(format!("line {}: `{}`", n + 1, name.escape_debug()));
        } else if names.len() < MAX_LEARNED {
            names.insert(name.to_string());
        }
    }
    if !bad.is_empty() {
        log::warn!(
            "{}: {} line(s) ignored, not module names the zygote may import (identifiers only, no `__main__` part): {}",
            path.display(),
            bad.len(),
            bad.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
        );
    }
    names
}

/// Writes this run's learned names to `<state>/LEARNED_FILE` (atomically)
/// when they changed at least `settle` ago. A failure is logged once per
/// change, at debug level: the preload is an optimisation.
pub fn save_learned(state: &Path, settle: Duration) {
    let names = {
        let mut learned = LEARNED.lock().unwrap_or_else(|e| e.into_inner());
        match learned.1 {
            Some(t) if t.elapsed() >= settle => {
                learned.1 = None;
                learned.0.iter().cloned().collect::<Vec<_>>()
            }
            _ => return,
        }
    };
    let path = state.join(LEARNED_FILE);
    let tmp = state.join(format!(".{LEARNED_FILE}.tmp"));
    let mut text = String::from(
        "# Stdlib modules plugins' workers imported; the zygote preloads them. Delete to forget.\n",
    );
    for n in &names {
        text.push_str(n);
        text.push('\n');
    }
    let r = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, &path));
    match r {
        Ok(()) => log::debug!("{}: {} module name(s) saved", path.display(), names.len()),
        Err(e) => log::debug!("{}: not saved: {e}", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_names_are_dotted_identifiers_only() {
        for ok in ["json", "email.mime.text", "_struct", "a1._b2"] {
            assert!(is_module_name(ok), "{ok}");
        }
        for bad in [
            "",
            "../os",
            "a..b",
            ".a",
            "a.",
            "1abc",
            "a b",
            "a-b",
            "é",
            "unittest.__main__",
            "__main__",
        ] {
            assert!(!is_module_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn the_learned_file_gives_names_and_ignores_the_rest() {
        let dir = std::env::temp_dir().join(format!("openplc-zygote-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join(LEARNED_FILE),
            "# comment\njson\n  email.mime.text  \n../../etc/passwd\nimport os\n\nre\n",
        )
        .unwrap();
        assert_eq!(preload_list(Some(&dir)), ["email.mime.text", "json", "re"]);
        assert!(preload_list(Some(&dir.join("missing"))).is_empty());
        assert!(preload_list(None).is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
