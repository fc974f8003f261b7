//! Proof that the scan loop performs no heap allocation after start-up: the
//! whole runtime runs in this process under a counting global allocator, with
//! real Python plugins hammering the journal and the image lock and a native
//! plugin's cycle hooks (the C example) and a PLC program (Structured Text
//! built by scripts/build-plc-program: copy-in, two tasks, copy-out) running
//! on the scan thread, and every
//! allocation made on the scan thread after it entered its steady state is
//! counted. Then OpenPLC's debugger callbacks (debug_read, debug_write, …),
//! which plugins call from their own threads, are called on a thread in the
//! same steady state. Its own test binary: it installs the global allocator,
//! starts the interpreter and installs signal handlers.

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
    // A state directory, so the program's RETAIN variables are saved
    // periodically (the scan thread's part of it is under the proof).
    let state = dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    // SAFETY: set before the runtime starts any thread in this process (this
    // binary has this one test).
    unsafe { std::env::set_var("STATE_DIRECTORY", &state) };
    let conf = hammer_conf(&dir, 4, 3);
    let program = build_program(&dir);
    let mut lines = std::fs::read_to_string(&conf).unwrap();
    lines.push_str(&native_line("program", &program, None));
    lines.push('\n');
    std::fs::write(&conf, lines).unwrap();
    let opts = Options {
        config: conf,
        scan_period: Duration::from_millis(1),
        scan_period_given: true,
        retain_period: Duration::from_millis(20),
        ..Options::default()
    };
    let report = supervisor::run(&opts).expect("run");
    assert_eq!(report.plugins_started, 7, "{report:?}");
    assert_eq!(report.stopped_by, "request_plc_stop");
    // Enough cycles and journal traffic for the proof to mean something.
    assert!(report.cycles >= 1000, "{report:?}");
    assert!(report.journal_applied >= 1000, "{report:?}");
    // The native hooks ran while the plugins ran (about 3 s at 1 ms): the
    // example counts %QW0 up once per cycle_end.
    let counted = image::get().unwrap().read(Table::IntOut, 0, 0).unwrap();
    assert!(counted >= 1000, "{counted} hook cycles; {report:?}");
    // The program's tasks ran (every 1 ms and every 2 ms), copying the
    // hammered %IW0 through and counting their runs.
    let fast = image::get().unwrap().read(Table::DintOut, 9, 0).unwrap();
    let slow = image::get().unwrap().read(Table::DintOut, 10, 0).unwrap();
    assert!(
        fast >= 1000 && slow >= 500,
        "{fast} and {slow} task runs; {report:?}"
    );
    // RETAIN was saved (periodically, and once more at the stop).
    let retain = std::fs::metadata(state.join("plugins/program/retain.bin")).unwrap();
    assert_eq!(retain.len(), 24 + 8 + 8, "{retain:?}");
    assert_eq!(
        alloc_probe::steady_state_allocations(),
        0,
        "the scan thread allocated after start-up ({report:?})"
    );
    debugger_calls_never_allocate();
}

/// A program with two tasks (1 ms, 2 ms) and located variables of several
/// sizes, built with the real STruC++ and g++.
fn build_program(dir: &TempDir) -> std::path::PathBuf {
    let src = dir.join("alloc.st");
    std::fs::write(
        &src,
        "PROGRAM Fast
  VAR
    iw AT %IW0 : INT;
    qw AT %QW9 : INT;
    ix AT %IX0.1 : BOOL;
    mx AT %MX0.1 : BOOL;
    t : TON;
    runs AT %QD9 : DINT;
  END_VAR
  qw := iw;
  mx := ix;
  t(IN := NOT t.Q, PT := T#5ms);
  runs := runs + 1;
END_PROGRAM
PROGRAM Slow
  VAR
    runs AT %QD10 : DINT;
    ml AT %ML3 : LINT;
  END_VAR
  VAR RETAIN
    kept : LINT;
  END_VAR
  kept := kept + 1;
  runs := runs + 1;
  ml := ml + 2;
END_PROGRAM
CONFIGURATION C
  RESOURCE R ON PLC
    TASK T1(INTERVAL := T#1ms, PRIORITY := 1);
    TASK T2(INTERVAL := T#2ms, PRIORITY := 2);
    PROGRAM F WITH T1 : Fast;
    PROGRAM S WITH T2 : Slow;
  END_RESOURCE
END_CONFIGURATION
",
    )
    .unwrap();
    let out = std::process::Command::new(repo().join("scripts/build-plc-program"))
        .arg(&src)
        .arg("-o")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "build-plc-program: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir.join("libplc_alloc.so")
}

/// Every debugger callback, through the runtime-args struct a plugin gets, on
/// every table, including refused calls: no allocation.
fn debugger_calls_never_allocate() {
    let img = image::get().unwrap();
    // SAFETY: a struct from runtime_args lives as long as the process, and
    // only its function pointers are read here.
    let args = unsafe { img.runtime_args(0, None, 1_000_000).as_ref() };
    // The function pointers as a plugin finds them (the struct itself holds raw
    // pointers and is not Send).
    let (array_count, elem_count, size_of, read, write, set) = (
        args.debug_array_count,
        args.debug_elem_count,
        args.debug_size,
        args.debug_read,
        args.debug_write,
        args.debug_set,
    );
    let calls = std::thread::spawn(move || {
        alloc_probe::enter_steady_state();
        let mut n = 0u64;
        let mut buf = [0u8; 8];
        for round in 0..1000u64 {
            let count = array_count();
            for arr in 0..=count {
                let elems = elem_count(arr);
                let elem = (round % 64) as u16;
                let size = size_of(arr, elem);
                let value = round.to_le_bytes();
                write(arr, elem, value.as_ptr(), size);
                write(arr, elem, value.as_ptr(), 3);
                read(arr, elem, buf.as_mut_ptr());
                read(arr, elems, buf.as_mut_ptr());
                set(arr, elem, true, value.as_ptr(), size);
                n += 7;
            }
        }
        n
    });
    let n = calls.join().unwrap();
    assert!(n >= 100_000, "{n} calls");
    assert_eq!(
        alloc_probe::steady_state_allocations(),
        0,
        "the debugger callbacks allocated ({n} calls)"
    );
    // The calls did reach the image: the last round wrote 999 to %IW(999 % 64).
    assert_eq!(img.read(Table::IntIn, 999 % 64, 0), Some(999));
}
