//! Heap allocations per scan cycle after start-up, as a figure for
//! `scripts/bench` (`cargo bench --bench scan_alloc`). The same set-up as
//! tests/zero_alloc.rs, which asserts the figure is 0; this one measures it
//! under the benchmark's load: the whole runtime in this process under a
//! counting global allocator, eight Python plugins hammering the journal and
//! the image lock, the C example's cycle hooks on the scan thread, a 1 ms
//! period, and every allocation the scan thread makes after entering its
//! steady state counted.
//!
//! Prints human lines and one `BENCH key=value ...` line for the script.
//! `OPENPLC_BENCH_ALLOC_SECONDS` sets how long the plugins run (default 10).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::*;
use openplc_runtime::alloc_probe::{self, CountingAlloc};
use openplc_runtime::supervisor::{self, Options};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// Python plugins that hammer the image, as in the lateness benchmark.
const HAMMERS: usize = 8;

fn main() {
    let seconds: u64 = std::env::var("OPENPLC_BENCH_ALLOC_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let dir = TempDir::new("bench-alloc");
    let conf = hammer_conf(&dir, HAMMERS, seconds);
    let opts = Options {
        config: conf,
        scan_period: Duration::from_millis(1),
        ..Options::default()
    };
    let t0 = Instant::now();
    let report = match supervisor::run(&opts) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("scan_alloc: the runtime failed: {e}");
            std::process::exit(1);
        }
    };
    let allocations = alloc_probe::steady_state_allocations();
    let per_cycle = if report.cycles == 0 {
        f64::NAN
    } else {
        allocations as f64 / report.cycles as f64
    };
    println!(
        "scan_alloc: {} plugins started ({} failed), {:.1} s, {} scan cycles, {} journal writes applied",
        report.plugins_started,
        report.plugins_failed,
        t0.elapsed().as_secs_f64(),
        report.cycles,
        report.journal_applied
    );
    println!(
        "scan_alloc: {allocations} heap allocation(s) on the scan thread in its steady state = {per_cycle} per scan cycle"
    );
    println!(
        "BENCH allocations={allocations} cycles={} per_cycle={per_cycle} plugins_started={} journal_applied={}",
        report.cycles, report.plugins_started, report.journal_applied
    );
    // process::exit skips destructors: remove the directory first. The
    // interpreter is not finalised (plugin threads may still exist).
    drop(dir);
    std::process::exit(i32::from(report.plugins_started != HAMMERS + 2));
}
