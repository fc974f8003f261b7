//! Process isolation: each Python plugin in a worker process of its own, with
//! an interpreter that sees the stdlib, the plugin's directory and its own venv
//! only. That is what lets plugins pinned to conflicting versions of one
//! package coexist. A worker is forked from the zygote (`zygote`, the
//! default) or is this binary re-executed as `openplc-runtime worker ...`
//! (`--worker-start exec`); either way it runs `worker_process::serve`.
//!
//! The worker maps the supervisor's image (the memfd is inherited), so the
//! capsule's table pointers, the image lock and the journal behave exactly as
//! in shared mode. Lifecycle calls, results, log records and stop requests
//! travel over a socketpair as length-prefixed frames (`frames`).
//!
//! The worker exits after answering `cleanup`, or when the control socket
//! closes (the supervisor is gone); PR_SET_PDEATHSIG kills it if its parent
//! (the zygote, or the supervisor) dies first.
//!
//! The files, by what they hold:
//! - `spec`: what a worker runs, and its `worker` command line;
//! - `frames`: the frames between the supervisor and a worker, and a
//!   worker's (or the zygote's) one writer of them;
//! - `worker`: the supervisor's handle on a worker process;
//! - `worker_process`: the worker process itself;
//! - `zygote`: the supervisor's handle on the zygote, and its channel;
//! - `zygote_process`: the zygote process itself;
//! - `preload`: what the zygote preloads (names learned from workers);
//! - `exit`: how a worker's end is learned and told.

pub mod exit;
pub mod frames;
pub mod preload;
pub mod spec;
pub mod worker;
pub mod worker_process;
pub mod zygote;
pub mod zygote_process;

pub use exit::describe_exit;
pub use frames::{MAX_FRAME, decode_result, read_frame};
pub use spec::Spec;
pub use worker::{EXIT_BUDGET, Worker};
pub use worker_process::worker_main;
pub use zygote::Zygote;
pub use zygote_process::zygote_main;
