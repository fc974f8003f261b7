//! openplc-runtime: runs OpenPLC-style plugins, each Python plugin with its own
//! venv, for read-only firmware images supervised by systemd.
//!
//! Where to look: `config` (plugins.conf), `dropins` (plugins.conf.d
//! directories: precedence, masking, `--root`), `venv` (pyvenv.cfg, site-packages,
//! installed distributions), `resolve` (conf + venvs → a checked plan), `python`
//! (the embedded interpreter; all pyo3 code), `image` (the OpenPLC I/O image, the
//! capsule struct, the journal; all C-ABI code), `debugger`
//! (OpenPLC's debug_* callbacks over the image), `plugin_state` (each plugin's
//! writable directory), `native` (type 1 plugins:
//! dlopen, their lifecycle calls and cycle hooks), `scan` (the scan thread),
//! `supervisor` (start-up, lifecycle, reload, shutdown), `systemd` (notify,
//! watchdog), `check`, `signals`, `logging` (journal, syslog, stderr),
//! `sys` (the few libc calls), `cli`, `alloc_probe` (zero-allocation proof).

pub mod alloc_probe;
pub mod check;
pub mod cli;
pub mod config;
pub mod debugger;
pub mod dropins;
pub mod error;
pub mod image;
pub mod logging;
pub mod native;
pub mod plugin_state;
pub mod python;
pub mod resolve;
pub mod scan;
pub mod signals;
pub mod supervisor;
pub mod sys;
pub mod systemd;
pub mod venv;
pub mod worker;
