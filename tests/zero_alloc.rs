//! Proof that the scan loop performs no heap allocation after start-up: the
//! whole runtime runs in this process under a counting global allocator, with
//! real Python plugins hammering the journal and the image lock and a native
//! plugin's cycle hooks (the C example) running on the scan thread, and every
//! allocation made on the scan thread after it entered its steady state is
//! counted. Its own test binary: it installs the global allocator, starts the
//! interpreter and installs signal handlers.

mod common;

use std::time::Duration;

use common::*;
use openplc_runtime::alloc_probe::{self, CountingAlloc};
use openplc_runtime::image::{self, Table};
use openplc_runtime::supervisor::{self, Options};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

#[test]
fn the_scan_loop_never_allocates_after_start() {
    let dir = TempDir::new("zeroalloc");
    let conf = hammer_conf(&dir, 4, 3);
    let opts = Options {
        config: conf,
        scan_period: Duration::from_millis(1),
        ..Options::default()
    };
    let report = supervisor::run(&opts).expect("run");
    assert_eq!(report.plugins_started, 6, "{report:?}");
    assert_eq!(report.stopped_by, "request_plc_stop");
    // Enough cycles and journal traffic for the proof to mean something.
    assert!(report.cycles >= 1000, "{report:?}");
    assert!(report.journal_applied >= 1000, "{report:?}");
    // The native hooks ran while the plugins ran (about 3 s at 1 ms): the
    // example counts %QW0 up once per cycle_end.
    let counted = image::get().unwrap().read(Table::IntOut, 0, 0).unwrap();
    assert!(counted >= 1000, "{counted} hook cycles; {report:?}");
    assert_eq!(
        alloc_probe::steady_state_allocations(),
        0,
        "the scan thread allocated after start-up ({report:?})"
    );
}
