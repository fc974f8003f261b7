//! The command line: `openplc-runtime [run|check|python-info] [OPTIONS]`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::Error;
use crate::image::MAX_BUFFER_SIZE;
use crate::logging::{self, Target};
use crate::options::Options;
use crate::resolve::Isolation;
use crate::scan::{MAX_PERIOD, MIN_PERIOD};

/// Usage text (`--help`).
pub const HELP: &str = "\
openplc-runtime: runs OpenPLC-style plugins, each Python plugin with its own venv

USAGE:
    openplc-runtime [run] [OPTIONS]      run the plugins until SIGTERM/SIGINT
    openplc-runtime check [OPTIONS]      validate plugins.conf, venvs, conflicts and
                                         imports without starting anything
    openplc-runtime python-info          the embedded interpreter (version, ABI,
                                         prefix, stdlib) as key=value lines

OPTIONS:
    --config PATH          the main plugins.conf [default: /etc/openplc/plugins.conf;
                           it may be absent when drop-ins exist]. Drop-ins
                           (*.conf, same format) are read besides it from
                           /usr/lib/openplc/plugins.conf.d (packages) <
                           /etc/openplc/plugins.conf.d (image) <
                           /var/lib/openplc/plugins.conf.d (operator); a
                           same-named file in a later directory replaces one
                           in an earlier, a link to /dev/null masks it
    --root DIR             read the default plugins.conf, the drop-in
                           directories and every absolute path in them under
                           DIR (a staged image); --config is taken as given
    --isolation MODE       shared: one interpreter for all Python plugins
                           (least memory; conflicting package versions are
                           refused); process: each Python plugin in its own
                           worker process and interpreter [default: shared]
    --worker-start HOW     process isolation: zygote: fork each worker from one
                           pre-started interpreter with common stdlib modules
                           loaded (fast, pages shared); exec: start each
                           worker as a new process [default: zygote]
    --scan-period TIME     scan period, e.g. 20ms, 500us [default: 20ms; with a
                           PLC program, the GCD of its task intervals]
    --retain-period TIME   how often a PLC program's RETAIN variables are saved
                           [default: 5s]
    --scan-priority N      SCHED_FIFO priority of the scan thread, 1-99, or 0
                           for normal scheduling [default: 40]
    --buffer-size N        slots per image table [default: 1024]
    --python-home DIR      prefix holding lib/pythonX.Y, when the embedded
                           interpreter cannot find its standard library
    --log-level LEVEL      error, warning, info, debug [default: info]
    --log-target TARGET    auto, journal, syslog, stderr [default: auto: the
                           journal when stderr is connected to it
                           ($JOURNAL_STREAM), else syslog if /dev/log
                           exists, else stderr]
    --syslog-socket PATH   [default: /dev/log]
    --journal-socket PATH  [default: /run/systemd/journal/socket]
    -h, --help             this text
    -V, --version          the version

SIGNALS:
    SIGTERM, SIGINT   ordered stop (stop_loop, then cleanup, in reverse order);
                      a second one while a plugin call hangs exits at once (70)
    SIGHUP            reload plugins.conf and its drop-ins: start new and
                      changed plugins, stop removed ones; an invalid file
                      changes nothing

ENVIRONMENT:
    NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID   systemd's notify protocol
    JOURNAL_STREAM                               systemd's journal detection

EXIT STATUS:
    0   success
    64  bad command line
    70  the embedded interpreter failed
    71  the operating system refused a resource
    78  configuration error (plugins.conf, venv, plugin file): fix it and start
        again; systemd does not restart on this code
";

/// A parsed command line.
#[derive(Debug, Clone)]
pub enum Command {
    Run(Options),
    Check(Options),
    PythonInfo(Options),
    /// Internal: a worker process of `--isolation process` (raw arguments).
    Worker(Vec<OsString>),
    /// Internal: the zygote of `--isolation process` (raw arguments).
    Zygote(Vec<OsString>),
    Help,
    Version,
}

/// The command and the logging settings.
#[derive(Debug, Clone)]
pub struct Cli {
    pub command: Command,
    pub log: logging::Options,
}

/// Parses `args` (without the program name).
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Cli, Error> {
    let mut opts = Options::default();
    let mut config_given = false;
    let mut log = logging::Options::default();
    let mut command: Option<&str> = None;
    let mut it = args.into_iter().peekable();
    if it.peek().is_some_and(|a| a == "worker" || a == "zygote") {
        let which = it.next().unwrap_or_default();
        let rest = it.collect();
        return Ok(Cli {
            command: if which == "worker" {
                Command::Worker(rest)
            } else {
                Command::Zygote(rest)
            },
            log,
        });
    }
    let usage = |m: String| Error::Usage(m);
    while let Some(arg) = it.next() {
        let arg = arg
            .into_string()
            .map_err(|a| usage(format!("argument {a:?} is not valid UTF-8")))?;
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| -> Result<String, Error> {
            if let Some(v) = inline.clone() {
                return Ok(v);
            }
            it.next()
                .and_then(|v| v.into_string().ok())
                .ok_or_else(|| usage(format!("{name} needs a value")))
        };
        match flag.as_str() {
            "-h" | "--help" => command = Some("help"),
            "-V" | "--version" => command = Some("version"),
            "--config" => {
                opts.config = PathBuf::from(value("--config")?);
                config_given = true;
            }
            "--root" => {
                let v = value("--root")?;
                if v.is_empty() {
                    return Err(usage("--root needs a directory".into()));
                }
                opts.root = Some(crate::config::absolute(Path::new(&v)));
            }
            "--isolation" => {
                let v = value("--isolation")?;
                opts.isolation = Isolation::parse(&v)
                    .ok_or_else(|| usage(format!("--isolation {v}: expected shared or process")))?;
            }
            "--worker-start" => {
                let v = value("--worker-start")?;
                opts.zygote = match v.as_str() {
                    "zygote" => true,
                    "exec" => false,
                    _ => {
                        return Err(usage(format!(
                            "--worker-start {v}: expected zygote or exec"
                        )));
                    }
                };
            }
            "--scan-period" => {
                let v = value("--scan-period")?;
                let d = parse_duration(&v).ok_or_else(|| {
                    usage(format!(
                        "--scan-period {v}: expected a time like 20ms, 500us or 1s"
                    ))
                })?;
                if !(MIN_PERIOD..=MAX_PERIOD).contains(&d) {
                    return Err(usage(format!(
                        "--scan-period {v}: must be between {} µs and {} s",
                        MIN_PERIOD.as_micros(),
                        MAX_PERIOD.as_secs()
                    )));
                }
                opts.scan_period = d;
                opts.scan_period_given = true;
            }
            "--retain-period" => {
                let v = value("--retain-period")?;
                let d = parse_duration(&v)
                    .filter(|d| (Duration::from_millis(10)..=Duration::from_secs(3600)).contains(d))
                    .ok_or_else(|| {
                        usage(format!(
                            "--retain-period {v}: expected a time from 10ms to 1h, like 5s or 500ms"
                        ))
                    })?;
                opts.retain_period = d;
            }
            "--scan-priority" => {
                let v = value("--scan-priority")?;
                let n: i32 = v
                    .parse()
                    .ok()
                    .filter(|n| (0..=99).contains(n))
                    .ok_or_else(|| {
                        usage(format!(
                            "--scan-priority {v}: expected 0 (normal scheduling) or 1 to 99"
                        ))
                    })?;
                opts.scan_priority = (n > 0).then_some(n);
            }
            "--buffer-size" => {
                let v = value("--buffer-size")?;
                opts.buffer_size = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_BUFFER_SIZE).contains(n))
                    .ok_or_else(|| {
                        usage(format!(
                            "--buffer-size {v}: expected a number from 1 to {MAX_BUFFER_SIZE}"
                        ))
                    })?;
            }
            "--python-home" => opts.python_home = Some(PathBuf::from(value("--python-home")?)),
            "--log-level" => {
                let v = value("--log-level")?;
                log.level = logging::parse_level(&v).ok_or_else(|| {
                    usage(format!(
                        "--log-level {v}: expected error, warning, info or debug"
                    ))
                })?;
            }
            "--log-target" => {
                let v = value("--log-target")?;
                log.target = Target::parse(&v).ok_or_else(|| {
                    usage(format!(
                        "--log-target {v}: expected auto, journal, syslog or stderr"
                    ))
                })?;
            }
            "--syslog-socket" => log.syslog_socket = PathBuf::from(value("--syslog-socket")?),
            "--journal-socket" => log.journal_socket = PathBuf::from(value("--journal-socket")?),
            "run" | "check" | "python-info" if command.is_none() => {
                command = Some(match flag.as_str() {
                    "run" => "run",
                    "check" => "check",
                    _ => "python-info",
                })
            }
            other => return Err(usage(format!("unknown argument `{other}`"))),
        }
    }
    if let (Some(root), false) = (&opts.root, config_given) {
        opts.config = crate::dropins::under_root(Some(root), crate::dropins::DEFAULT_CONFIG);
    }
    let command = match command.unwrap_or("run") {
        "help" => Command::Help,
        "version" => Command::Version,
        "check" => Command::Check(opts),
        "python-info" => Command::PythonInfo(opts),
        _ => Command::Run(opts),
    };
    Ok(Cli { command, log })
}

/// `20ms`, `500us`, `1s`, `250000ns`; a bare number is milliseconds.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    match unit {
        "" | "ms" => Some(Duration::from_millis(n)),
        "us" | "µs" => Some(Duration::from_micros(n)),
        "ns" => Some(Duration::from_nanos(n)),
        "s" => Some(Duration::from_secs(n)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Cli, Error> {
        parse(args.iter().map(OsString::from))
    }

    #[test]
    fn defaults_to_run() {
        let Command::Run(o) = p(&[]).unwrap().command else {
            panic!()
        };
        assert_eq!(o.config, PathBuf::from("/etc/openplc/plugins.conf"));
        assert_eq!(o.scan_period, Duration::from_millis(20));
        assert!(!o.scan_period_given);
        assert_eq!(o.retain_period, Duration::from_secs(5));
    }

    #[test]
    fn flags_and_inline_values() {
        let c = p(&[
            "check",
            "--config=x.conf",
            "--scan-period",
            "1ms",
            "--buffer-size",
            "64",
            "--retain-period",
            "250ms",
        ])
        .unwrap();
        let Command::Check(o) = c.command else {
            panic!()
        };
        assert_eq!(o.config, PathBuf::from("x.conf"));
        assert_eq!(o.scan_period, Duration::from_millis(1));
        assert!(o.scan_period_given);
        assert_eq!(o.retain_period, Duration::from_millis(250));
        assert_eq!(o.buffer_size, 64);
    }

    #[test]
    fn bad_values_name_the_flag() {
        for (args, needle) in [
            (&["--scan-period", "fast"][..], "--scan-period fast"),
            (&["--scan-period", "1us"][..], "between"),
            (&["--buffer-size", "0"][..], "--buffer-size 0"),
            (
                &["--retain-period", "1ms"][..],
                "--retain-period 1ms: expected a time from 10ms",
            ),
            (&["--isolation", "vm"][..], "--isolation vm"),
            (&["--bogus"][..], "unknown argument `--bogus`"),
            (&["--config"][..], "--config needs a value"),
        ] {
            let e = p(args).unwrap_err().to_string();
            assert!(e.contains(needle), "{e}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500us"), Some(Duration::from_micros(500)));
        assert_eq!(parse_duration("2s"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("20"), Some(Duration::from_millis(20)));
        assert_eq!(parse_duration("x"), None);
    }
}
