//! Faults a firmware component must survive, each proven with real parts:
//! a producer process SIGKILLed mid-journal-write hundreds of times (real
//! forked processes on the real shared image), a plugin holding the image
//! lock (the real runtime: the scan loop skips and names it), a removed
//! plugin writing through the capsule it kept (real reload), and a worker
//! flooding its control channel with log lines from many threads while its
//! results flow (real worker process).
//!
//! The first test installs the image in this test process, so this file is a
//! test binary of its own (RELIABILITY.md has the fault matrix).

mod common;

use std::os::unix::net::UnixDatagram;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::*;
use openplc_runtime::image::{self, JOURNAL_OK, JournalCursor, Table};

/// A small xorshift generator: random kill moments without a crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// An anonymous shared page with one counter, visible to forked children.
fn shared_counter() -> &'static AtomicU64 {
    // SAFETY: a new anonymous shared mapping of one page; zero is a valid
    // AtomicU64, and the page is never unmapped (the test process ends).
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        assert_ne!(p, libc::MAP_FAILED);
        &*p.cast::<AtomicU64>()
    }
}

#[test]
fn a_producer_killed_mid_write_hundreds_of_times_costs_only_its_own_writes() {
    const KILLS: usize = 300;
    const DEAD_RING: usize = 1;
    let img = image::install(64).unwrap();
    let accepted_by_dead = shared_counter();

    // The scan thread's part: apply the journal under the lock every 200 µs.
    let stop = Arc::new(AtomicBool::new(false));
    let consumer = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut cursor = JournalCursor::default();
            while !stop.load(Ordering::Relaxed) {
                img.lock();
                img.apply_journal(&mut cursor);
                img.unlock();
                std::thread::sleep(Duration::from_micros(200));
            }
            cursor
        })
    };
    // Another plugin (this process's ring): a write every 100 µs, each must
    // be accepted and the last one must land.
    let steady = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let (mut sent, mut refused) = (0u64, 0u64);
            while !stop.load(Ordering::Relaxed) {
                let v = sent + 1;
                if img.journal_push(Table::DintMem, 1, 0, v) == JOURNAL_OK {
                    sent = v;
                } else {
                    refused += 1;
                }
                std::thread::sleep(Duration::from_micros(100));
            }
            (sent, refused)
        })
    };

    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ u64::from(std::process::id()));
    let mut stalled_resets = 0;
    for _ in 0..KILLS {
        // SAFETY: the child only spins on atomics and the journal (no locks,
        // no allocation) until it is killed; PDEATHSIG kills it if we die.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            // SAFETY: plain syscalls in the child.
            unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
            let mut n = 0u64;
            loop {
                n += 1;
                if img.journal_push_to(DEAD_RING, Table::IntMem, (n % 64) as usize, 0, n)
                    == JOURNAL_OK
                {
                    accepted_by_dead.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        std::thread::sleep(Duration::from_micros(rng.next() % 3000));
        // SAFETY: killing and reaping our own child.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
        img.request_ring_reset(DEAD_RING);
        if !img.await_ring_reset(DEAD_RING, Duration::from_secs(5)) {
            stalled_resets += 1;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let (sent, refused) = steady.join().unwrap();
    let mut cursor = consumer.join().unwrap();
    img.lock();
    img.apply_journal(&mut cursor);
    img.unlock();

    assert_eq!(stalled_resets, 0, "the consumer did not reset the ring");
    // The other plugin lost nothing: every write accepted, the last applied.
    assert!(sent > 1000, "steady writer sent only {sent}");
    assert_eq!(refused, 0, "steady writes refused as 'journal full'");
    assert_eq!(img.read(Table::DintMem, 1, 0), Some(sent));
    // The counts add up: everything applied is the steady writes plus the
    // dead producer's; it lost at most one unpublished write per kill, and
    // its counter may miss the one write accepted just before a kill.
    let counted = accepted_by_dead.load(Ordering::Relaxed);
    let applied_dead = img.journal_applied() - sent;
    let lost = img.journal_lost();
    eprintln!(
        "{KILLS} kills: dead producer {counted} counted, {applied_dead} applied, {lost} lost; steady {sent}"
    );
    assert!(lost <= KILLS as u64, "{lost} lost in {KILLS} kills");
    assert!(
        counted <= applied_dead + lost && applied_dead + lost <= counted + KILLS as u64,
        "counted {counted}, applied {applied_dead}, lost {lost}"
    );
    assert!(img.stalled_ring().is_none());
}

/// A datagram socket standing in for systemd's notify socket (never read:
/// the runtime must not care).
fn notify_socket(dir: &TempDir) -> (std::path::PathBuf, UnixDatagram) {
    let path = dir.join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    (path, sock)
}

#[test]
fn a_plugin_holding_the_lock_costs_skipped_cycles_named_not_a_stalled_loop() {
    let dir = TempDir::new("holdlock");
    let (sock, _keep) = notify_socket(&dir);
    let conf = write_conf(
        dir.path(),
        &[conf_line(
            "hog",
            &fixture_plugin("probe"),
            Some(&probe_config(
                dir.path(),
                "hog",
                "\"hold_lock_after_s\": 0.3",
            )),
            None,
        )],
    );
    let mut rt = Runtime::start_with(&conf, &["--log-target", "stderr"], |c| {
        c.env("NOTIFY_SOCKET", &sock);
        c.env("WATCHDOG_USEC", "400000");
    });
    // The loop keeps its deadlines and counts what it skips, naming the holder;
    // past the limit the holder is named as the reason to withhold the ping.
    rt.wait_log(
        "cycle(s) skipped: the image lock was still held half a period after the wake-up, last by [hog]",
        Duration::from_secs(20),
    );
    rt.wait_log(
        "watchdog: not pinging systemd: the scan loop made no progress ([hog] has held the image lock for",
        Duration::from_secs(20),
    );
    rt.stop_ok();
}

#[test]
fn a_removed_plugin_that_kept_its_capsule_still_writes_through_it() {
    let dir = TempDir::new("keptcapsule");
    let keeper = conf_line(
        "keeper",
        &fixture_plugin("probe"),
        Some(&probe_config(
            dir.path(),
            "keeper",
            "\"late_write\": [7, 5, 4242, 0.5]",
        )),
        None,
    );
    let watcher = conf_line(
        "watcher",
        &fixture_plugin("probe"),
        Some(&probe_config(
            dir.path(),
            "watcher",
            "\"watch_int\": [\"int_memory\", 5, 4242]",
        )),
        None,
    );
    let conf = write_conf(dir.path(), &[keeper, watcher.clone()]);
    let mut rt = Runtime::start(&conf, &["--log-target", "stderr"]);
    rt.wait_log("running: 2 plugin(s) running", Duration::from_secs(30));
    // The reload removes keeper: stop_loop, cleanup (which leaves its thread
    // behind with the struct), and its slot is gone.
    write_conf(dir.path(), &[watcher]);
    rt.signal(libc::SIGHUP);
    rt.wait_log("reload ok: 0 started, 1 stopped", Duration::from_secs(30));
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end
        && !record(dir.path())
            .iter()
            .any(|l| l.starts_with("watcher:saw "))
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    rt.stop_ok();
    let rec = record(dir.path());
    assert!(
        rec.contains(&"late:magic=0x4f504c43 config=keeper.json write=0".to_string()),
        "{rec:?}"
    );
    assert!(
        rec.contains(&"watcher:saw int_memory[5]=4242".to_string()),
        "{rec:?}"
    );
}

#[test]
fn a_worker_logging_from_many_threads_while_results_flow_is_never_taken_for_dead() {
    const THREADS: usize = 8;
    const MESSAGES: usize = 30;
    let dir = TempDir::new("chatty");
    let conf = write_conf(
        dir.path(),
        &[conf_line(
            "chatty",
            &fixture_plugin("probe"),
            Some(&probe_config(
                dir.path(),
                "chatty",
                &format!("\"chatty\": [{THREADS}, {MESSAGES}, 65536]"),
            )),
            None,
        )],
    );
    let mut rt = Runtime::start(&conf, &["--isolation", "process", "--log-target", "stderr"]);
    rt.wait_log(
        "running: 1 plugin(s) running, 0 failed",
        Duration::from_secs(60),
    );
    // stop_loop joins the talking threads: every message has been sent then.
    rt.stop_ok();
    let log = rt.log_text();
    assert!(
        !log.contains("died"),
        "a worker was taken for dead:\n{}",
        &log[..log.len().min(4000)]
    );
    let intact = log
        .lines()
        .filter(|l| l.contains("] chatty t") && l.ends_with(" end"))
        .filter(|l| l.len() > 65536)
        .count();
    assert_eq!(intact, THREADS * MESSAGES, "intact log lines");
    assert_eq!(
        lifecycle(dir.path()),
        [
            "chatty:init",
            "chatty:start_loop",
            "chatty:stop_loop",
            "chatty:cleanup"
        ]
    );
}

#[test]
fn sigterm_during_start_up_lets_the_running_init_finish_then_stops_in_order() {
    let dir = TempDir::new("termstart");
    let line = |id: &str, extra: &str| {
        conf_line(
            id,
            &fixture_plugin("probe"),
            Some(&probe_config(dir.path(), id, extra)),
            None,
        )
    };
    let conf = write_conf(
        dir.path(),
        &[
            line("a", ""),
            line("slow", "\"slow_in\": [\"init\", 1.5]"),
            line("c", ""),
        ],
    );
    let mut rt = Runtime::start(&conf, &["--log-target", "stderr"]);
    let end = Instant::now() + Duration::from_secs(30);
    while !record(dir.path()).contains(&"slow:init".to_string()) {
        assert!(Instant::now() < end, "slow never reached init");
        std::thread::sleep(Duration::from_millis(10));
    }
    rt.signal(libc::SIGTERM);
    assert_eq!(
        rt.wait_exit(Duration::from_secs(30)),
        0,
        "{}",
        rt.log_text()
    );
    // slow's init ran to its end; nothing started; what was initialised is
    // cleaned up in reverse order; c was never touched.
    assert_eq!(
        lifecycle(dir.path()),
        ["a:init", "slow:init", "slow:cleanup", "a:cleanup"],
        "{}",
        rt.log_text()
    );
}
