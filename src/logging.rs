//! The runtime's logger behind the `log` facade, with three targets:
//!
//! - `journal`: when `$JOURNAL_STREAM` names our stderr (systemd connected it
//!   to the journal), records go over the journal's native protocol, so a
//!   multi-line traceback stays one entry and carries `OPENPLC_PLUGIN=`; if the
//!   journal socket cannot be reached, stderr lines with `<N>` priority
//!   prefixes (sd-daemon(3)) are written instead;
//! - `syslog`: RFC 3164 datagrams to `/dev/log` (ident `openplc-runtime`,
//!   facility daemon), one datagram per record;
//! - `stderr`: plain lines for a terminal.
//!
//! `auto` picks journal, else syslog when `/dev/log` exists, else stderr.
//! Every record is written with one system call, so lines of different
//! threads never interleave.

use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::Mutex;

use log::{Level, LevelFilter, Log, Metadata, Record};

/// The syslog identifier.
pub const IDENT: &str = "openplc-runtime";
/// Where syslog listens by default.
pub const DEFAULT_SYSLOG_SOCKET: &str = "/dev/log";
/// journald's native protocol socket.
pub const DEFAULT_JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";

/// `--log-target`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Auto,
    Stderr,
    Syslog,
    Journal,
}

impl Target {
    pub fn parse(s: &str) -> Option<Target> {
        match s {
            "auto" => Some(Target::Auto),
            "stderr" => Some(Target::Stderr),
            "syslog" => Some(Target::Syslog),
            "journal" => Some(Target::Journal),
            _ => None,
        }
    }
}

/// Logging settings from the command line.
#[derive(Debug, Clone)]
pub struct Options {
    pub level: LevelFilter,
    pub target: Target,
    pub syslog_socket: PathBuf,
    pub journal_socket: PathBuf,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            level: LevelFilter::Info,
            target: Target::Auto,
            syslog_socket: PathBuf::from(DEFAULT_SYSLOG_SOCKET),
            journal_socket: PathBuf::from(DEFAULT_JOURNAL_SOCKET),
        }
    }
}

enum Sink {
    Stderr,
    /// Native journal protocol, falling back to `<N>`-prefixed stderr.
    Journal {
        socket: UnixDatagram,
        path: PathBuf,
    },
    Syslog(Mutex<syslog::Logger<syslog::LoggerBackend, syslog::Formatter3164>>),
}

struct Logger {
    sink: Sink,
}

/// The plugin name of a record written as `[name] message`.
fn plugin_of(msg: &str) -> Option<&str> {
    msg.strip_prefix('[')?.split_once("] ").map(|(n, _)| n)
}

/// syslog/sd-daemon priority of a level.
fn priority(level: Level) -> u8 {
    match level {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 6,
        Level::Debug | Level::Trace => 7,
    }
}

/// One native-protocol datagram (systemd.io/JOURNAL_NATIVE_PROTOCOL): fields
/// without a newline as `KEY=value\n`, the message length-prefixed so that
/// newlines stay inside one entry.
fn journal_datagram(level: Level, msg: &str) -> Vec<u8> {
    let mut d = Vec::with_capacity(msg.len() + 128);
    d.extend_from_slice(format!("PRIORITY={}\n", priority(level)).as_bytes());
    d.extend_from_slice(format!("SYSLOG_IDENTIFIER={IDENT}\nSYSLOG_FACILITY=3\n").as_bytes());
    if let Some(p) = plugin_of(msg).filter(|p| !p.contains('\n')) {
        d.extend_from_slice(format!("OPENPLC_PLUGIN={p}\n").as_bytes());
    }
    d.extend_from_slice(b"MESSAGE\n");
    d.extend_from_slice(&(msg.len() as u64).to_le_bytes());
    d.extend_from_slice(msg.as_bytes());
    d.push(b'\n');
    d
}

fn stderr_write(bytes: &[u8]) {
    let _ = std::io::stderr().lock().write_all(bytes);
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let level = record.level();
        let msg = record.args().to_string();
        match &self.sink {
            Sink::Stderr => {
                let name = match level {
                    Level::Error => "error",
                    Level::Warn => "warning",
                    Level::Info => "info",
                    Level::Debug => "debug",
                    Level::Trace => "trace",
                };
                stderr_write(format!("{IDENT}: {name}: {msg}\n").as_bytes());
            }
            Sink::Journal { socket, path } => {
                if socket
                    .send_to(&journal_datagram(level, &msg), path)
                    .is_err()
                {
                    // Every line carries the priority, so the journal files
                    // the continuation lines of a traceback correctly too.
                    let p = priority(level);
                    let text: String = msg.lines().map(|l| format!("<{p}>{l}\n")).collect();
                    stderr_write(text.as_bytes());
                }
            }
            Sink::Syslog(logger) => {
                let mut l = logger.lock().unwrap_or_else(|e| e.into_inner());
                let r = match level {
                    Level::Error => l.err(&msg),
                    Level::Warn => l.warning(&msg),
                    Level::Info => l.info(&msg),
                    Level::Debug | Level::Trace => l.debug(&msg),
                };
                if r.is_err() {
                    stderr_write(format!("{IDENT}: {msg}\n").as_bytes());
                }
            }
        }
    }

    fn flush(&self) {
        let _ = std::io::stderr().flush();
    }
}

fn syslog_sink(opts: &Options) -> Result<Sink, String> {
    let formatter = syslog::Formatter3164 {
        facility: syslog::Facility::LOG_DAEMON,
        hostname: None,
        process: IDENT.into(),
        pid: std::process::id(),
    };
    syslog::unix_custom(formatter, &opts.syslog_socket)
        .map(|l| Sink::Syslog(Mutex::new(l)))
        .map_err(|e| {
            format!(
                "cannot log to syslog at {}: {e}",
                opts.syslog_socket.display()
            )
        })
}

/// Installs the logger. Returns a note to log once the logger is up (which
/// target was chosen and why), or an error for an explicit target that cannot
/// work.
pub fn init(opts: &Options) -> Result<String, String> {
    let journal = || -> Result<Sink, String> {
        let socket =
            UnixDatagram::unbound().map_err(|e| format!("cannot open a datagram socket: {e}"))?;
        Ok(Sink::Journal {
            socket,
            path: opts.journal_socket.clone(),
        })
    };
    let (sink, note) = match opts.target {
        Target::Stderr => (Sink::Stderr, "logging to stderr".to_string()),
        Target::Syslog => (
            syslog_sink(opts)?,
            format!("logging to syslog at {}", opts.syslog_socket.display()),
        ),
        Target::Journal => (journal()?, "logging to the journal".to_string()),
        Target::Auto => {
            if libsystemd::logging::connected_to_journal() {
                (
                    journal()?,
                    "stderr is the journal ($JOURNAL_STREAM): logging to the journal".to_string(),
                )
            } else if opts.syslog_socket.exists() {
                match syslog_sink(opts) {
                    Ok(s) => (
                        s,
                        format!("logging to syslog at {}", opts.syslog_socket.display()),
                    ),
                    Err(e) => (Sink::Stderr, format!("{e}; logging to stderr")),
                }
            } else {
                (Sink::Stderr, "logging to stderr".to_string())
            }
        }
    };
    let logger: &'static Logger = Box::leak(Box::new(Logger { sink }));
    log::set_logger(logger).map_err(|_| "a logger is already installed".to_string())?;
    log::set_max_level(opts.level);
    Ok(note)
}

/// Parses `--log-level`.
pub fn parse_level(s: &str) -> Option<LevelFilter> {
    match s {
        "error" => Some(LevelFilter::Error),
        "warning" | "warn" => Some(LevelFilter::Warn),
        "info" => Some(LevelFilter::Info),
        "debug" => Some(LevelFilter::Debug),
        "trace" => Some(LevelFilter::Trace),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_names_and_priorities() {
        assert_eq!(plugin_of("[modbus] listening"), Some("modbus"));
        assert_eq!(plugin_of("running: 3"), None);
        assert_eq!(priority(Level::Error), 3);
        // facility daemon (3 << 3) + info: what a syslog datagram starts with.
        assert_eq!((3 << 3) + priority(Level::Info), 30);
    }

    #[test]
    fn journal_datagram_keeps_newlines_in_one_field() {
        let d = journal_datagram(Level::Error, "[p] init() raised:\nTraceback\n  line");
        let text = String::from_utf8_lossy(&d);
        assert!(text.starts_with("PRIORITY=3\nSYSLOG_IDENTIFIER=openplc-runtime\n"));
        assert!(text.contains("OPENPLC_PLUGIN=p\nMESSAGE\n"));
        let at = d.windows(8).position(|w| w == b"MESSAGE\n").unwrap() + 8;
        let len = u64::from_le_bytes(d[at..at + 8].try_into().unwrap()) as usize;
        assert_eq!(
            &d[at + 8..at + 8 + len],
            "[p] init() raised:\nTraceback\n  line".as_bytes()
        );
    }
}
