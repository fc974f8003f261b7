//! openplc-runtime: runs OpenPLC-style plugins, each Python plugin with its own
//! venv, for read-only firmware images supervised by systemd.
//!
//! Where to look, from the ground up (a module uses only those above it in
//! this list):
//! - `error`, `sys` (the few libc calls), `logging` (journal, syslog,
//!   stderr), `alloc_probe` (zero-allocation proof);
//! - `config` (plugins.conf), `dropins` (the plugins.conf.d directories:
//!   precedence, masking, `--root`), `venv` (pyvenv.cfg, site-packages,
//!   installed distributions), `lifecycle` (a plugin's lifecycle calls and their time
//!   budgets);
//! - `resolve` (conf + venvs → a checked plan), `image` (the OpenPLC I/O
//!   image: mapping, lock, journal, the runtime-args struct and its
//!   callbacks; all C-ABI code), `plugin_state` (each plugin's writable
//!   directory), `signals` (what wakes the supervisor),
//!   `systemd` (notify, watchdog);
//! - `debugger` (OpenPLC's `debug_*` callbacks over the image), `python`
//!   (the embedded interpreter; all pyo3 code), `native` (type 1
//!   plugins: dlopen, their lifecycle calls and cycle hooks), `program` (a
//!   PLC program inside a native plugin: its extension, located variables,
//!   tasks on the scan thread);
//! - `worker` (process isolation: a plugin in a process of its own),
//!   `zygote` (the pre-initialised interpreter workers are forked from),
//!   `scan` (the scan thread);
//! - `options` (the settings of `run` and `check`);
//! - `supervisor` (start-up, plugin states and steps, restarts, reload,
//!   status, shutdown), `check`, `cli`.

pub mod alloc_probe;
pub mod check;
pub mod cli;
pub mod config;
pub mod debugger;
pub mod dropins;
pub mod error;
pub mod image;
pub mod lifecycle;
pub mod logging;
pub mod native;
pub mod options;
pub mod plugin_state;
pub mod program;
pub mod python;
pub mod resolve;
pub mod scan;
pub mod signals;
pub mod supervisor;
pub mod sys;
pub mod systemd;
pub mod venv;
pub mod worker;
pub mod zygote;
