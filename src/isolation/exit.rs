//! How a worker's end is learned and told.

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

/// "SIGSEGV (11)", or "signal 42" for one without a name.
fn signal_name(sig: i32) -> String {
    match signal_hook::low_level::signal_name(sig) {
        Some(name) => format!("{name} ({sig})"),
        None => format!("signal {sig}"),
    }
}

/// "exited with code 1" / "killed by SIGSEGV (11)".
pub fn describe_exit(status: Option<ExitStatus>) -> String {
    match status {
        None => "exit status unknown".into(),
        Some(st) => match (st.code(), st.signal()) {
            (Some(c), _) => format!("exited with code {c}"),
            (None, Some(s)) => format!(
                "killed by {}{}",
                signal_name(s),
                if st.core_dumped() {
                    ", core dumped"
                } else {
                    ""
                }
            ),
            _ => "ended".into(),
        },
    }
}
