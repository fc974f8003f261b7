//! Errors that end a command, and the exit codes they map to.
//!
//! Exit codes follow `sysexits.h` where one fits, so that the unit can list the
//! configuration code in `RestartPreventExitStatus=`: a broken plugins.conf must
//! not turn into a restart loop.

use std::fmt;

/// Exit code for success.
pub const EXIT_OK: u8 = 0;
/// `EX_USAGE`: the command line is wrong.
pub const EXIT_USAGE: u8 = 64;
/// `EX_SOFTWARE`: the embedded interpreter or the runtime itself failed.
pub const EXIT_SOFTWARE: u8 = 70;
/// `EX_OSERR`: the operating system refused something the runtime needs
/// (shared memory, threads, signal handlers).
pub const EXIT_OSERR: u8 = 71;
/// `EX_CONFIG`: plugins.conf, a venv or a plugin file is unusable. The unit lists
/// this code in `RestartPreventExitStatus=`.
pub const EXIT_CONFIG: u8 = 78;

/// Why a command ended without doing its job.
#[derive(Debug)]
pub enum Error {
    /// Bad command line; the message says which argument.
    Usage(String),
    /// Every configuration problem found, each one complete (file:line, plugin,
    /// path, what to do). All of them are reported, not just the first.
    Config(Vec<String>),
    /// The embedded interpreter could not start or a runtime step failed.
    Python(String),
    /// The operating system refused a resource.
    Os(String),
}

impl Error {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) => EXIT_USAGE,
            Error::Config(_) => EXIT_CONFIG,
            Error::Python(_) => EXIT_SOFTWARE,
            Error::Os(_) => EXIT_OSERR,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(m) => write!(f, "{m} (see `openplc-runtime --help`)"),
            Error::Config(list) => {
                for (i, m) in list.iter().enumerate() {
                    if i > 0 {
                        writeln!(f)?;
                    }
                    write!(f, "{m}")?;
                }
                Ok(())
            }
            Error::Python(m) | Error::Os(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for Error {}
