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

/// The learned stdlib modules (the file's, and what the workers of this run
/// reported), and since when that set has changes not yet saved.
static LEARNED: Mutex<(BTreeSet<String>, Option<Instant>)> = Mutex::new((BTreeSet::new(), None));

/// Names learned in this run and not yet sent to the zygote.
static PENDING: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Whether `name` looks like a dotted module name (what the learned file may
/// hold; anything else in it is ignored).
pub(crate) fn is_module_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && name.split('.').all(|part| {
            let mut c = part.chars();
            c.next()
                .is_some_and(|f| f == '_' || f.is_ascii_alphabetic())
                && c.all(|x| x == '_' || x.is_ascii_alphanumeric())
        })
}

/// A worker's `M` frame: the stdlib modules it imported.
pub fn learn(payload: &[u8]) {
    let text = String::from_utf8_lossy(payload);
    let mut learned = LEARNED.lock().unwrap_or_else(|e| e.into_inner());
    let mut changed = false;
    for name in text.lines().filter(|n| is_module_name(n)) {
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
/// unreadable: none). They are also the start of this run's learned set.
pub fn preload_list(state: Option<&Path>) -> Vec<String> {
    let mut names = BTreeSet::new();
    if let Some(text) = state.and_then(|s| std::fs::read_to_string(s.join(LEARNED_FILE)).ok()) {
        names.extend(
            text.lines()
                .map(str::trim)
                .filter(|n| is_module_name(n))
                .take(MAX_LEARNED)
                .map(String::from),
        );
    }
    let mut learned = LEARNED.lock().unwrap_or_else(|e| e.into_inner());
    learned.0.extend(names.iter().cloned());
    names.into_iter().collect()
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
        for bad in ["", "../os", "a..b", ".a", "a.", "1abc", "a b", "a-b", "é"] {
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
