//! The settings of `run` and `check`, as the command line gives them: which
//! plugins.conf, how Python plugins are isolated, the scan period and the
//! image size. Below everything that reads them, so `cli` and `check` need
//! not know the supervisor.

use std::path::PathBuf;
use std::time::Duration;

use crate::image;
use crate::resolve::Isolation;
use crate::scan;

/// Settings of `run` and `check`.
#[derive(Debug, Clone)]
pub struct Options {
    /// The main plugins.conf (drop-ins are read besides it, see `dropins`).
    pub config: PathBuf,
    /// `--root DIR`: read the drop-in directories and the absolute paths in
    /// the files under DIR (a staged image); `None` = the real root.
    pub root: Option<PathBuf>,
    pub isolation: Isolation,
    pub scan_period: Duration,
    /// `--scan-period` was given: a PLC program must fit it (else the
    /// program's tasks choose the period).
    pub scan_period_given: bool,
    /// How often a PLC program's RETAIN variables are saved.
    pub retain_period: Duration,
    pub buffer_size: usize,
    pub python_home: Option<PathBuf>,
    /// SCHED_FIFO priority of the scan thread; `None` = normal scheduling.
    pub scan_priority: Option<i32>,
    /// Process isolation: fork workers from a zygote (`true`), or re-execute
    /// the binary for each (`--worker-start exec`).
    pub zygote: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            config: PathBuf::from(crate::dropins::DEFAULT_CONFIG),
            root: None,
            isolation: Isolation::Shared,
            scan_period: scan::DEFAULT_PERIOD,
            scan_period_given: false,
            retain_period: crate::program::DEFAULT_SAVE_PERIOD,
            buffer_size: image::DEFAULT_BUFFER_SIZE,
            python_home: None,
            scan_priority: Some(scan::DEFAULT_PRIORITY),
            zygote: true,
        }
    }
}
