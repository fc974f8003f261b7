//! `--isolation process` against buggy plugins: what a worker holds of the
//! runtime, a worker's death with children of the plugin left behind, a
//! slow zygote, and a learned preload name that would break the zygote.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::workers::*;
use common::*;

fn probe(dir: &TempDir, id: &str, extra: &str) -> String {
    conf_line(
        id,
        &fixture_plugin("probe"),
        Some(&probe_config(dir.path(), id, extra)),
        None,
    )
}

/// The zygote's pid, from the debug log ("zygote process N started"), the
/// `nth` one started (0-based).
fn zygote_pid(rt: &Runtime, nth: usize) -> Option<u32> {
    rt.log_text()
        .lines()
        .filter(|l| l.contains("zygote process ") && l.contains(" started ("))
        .nth(nth)
        .and_then(|l| l.split("zygote process ").nth(1))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|p| p.parse().ok())
}

/// A free TCP port on 127.0.0.1 (bound and let go again).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// The inode of the socket listening on 127.0.0.1:`port`, from /proc/net/tcp.
fn listening_inode(port: u16) -> Option<String> {
    let tcp = std::fs::read_to_string("/proc/net/tcp").unwrap();
    tcp.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        let local = format!("0100007F:{port:04X}");
        (f.get(1) == Some(&local.as_str()) && f.get(3) == Some(&"0A"))
            .then(|| f.get(9).map(|s| s.to_string()))
            .flatten()
    })
}

/// What process `pid`'s descriptors point at.
fn fd_targets(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .map(|t| t.display().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn listener_line(dir: &TempDir, port: u16) -> (String, PathBuf) {
    let so = build_native(
        &repo().join("tests/fixtures/native/listener.c"),
        &dir.join("listener.so"),
        &[&format!("-DPORT={port}"), "-DLABEL=\"net\""],
    );
    let record = dir.join("record.log");
    (native_line("net", &so, Some(&record)), record)
}

/// A native plugin's listening socket (opened without SOCK_CLOEXEC) never
/// reaches a worker, in either start mode and from a zygote started after
/// the native plugin ran: after a reload removes that plugin, adding it
/// again binds its port again.
#[test]
fn a_native_plugins_socket_never_reaches_a_worker() {
    for how in ["exec", "zygote"] {
        let dir = TempDir::new(&format!("proc-fds-{how}"));
        let port = free_port();
        let (net, _) = listener_line(&dir, port);
        let py = probe(&dir, "py", "");
        let with = [net.clone(), py.clone()];
        let conf = write_conf(dir.path(), &with);
        let mut rt = start_debug(&conf, how, None);
        rt.wait_log(
            "running: 2 plugin(s) running, 0 failed",
            Duration::from_secs(30),
        );
        assert_eq!(
            count(dir.path(), "net:bound"),
            1,
            "{:?}",
            record(dir.path())
        );
        let inode = listening_inode(port).expect("the native plugin's listening socket");
        let socket = format!("socket:[{inode}]");
        if how == "zygote" {
            // A zygote started after the native plugin ran: the first one
            // is killed, its worker restarted from a new one.
            let z = zygote_pid(&rt, 0).expect("a zygote");
            let before = worker_pid(dir.path(), "py");
            kill(z, libc::SIGKILL);
            wait_until(
                "the worker from a new zygote",
                Duration::from_secs(20),
                || count(dir.path(), "py:start_loop") == 2,
            );
            assert_ne!(worker_pid(dir.path(), "py"), before);
            let z2 = zygote_pid(&rt, 1).expect("a second zygote");
            assert!(
                !fd_targets(z2).contains(&socket),
                "the new zygote holds {socket}: {:?}",
                fd_targets(z2)
            );
        }
        let w = worker_pid(dir.path(), "py");
        let fds = fd_targets(w);
        assert!(!fds.is_empty(), "cannot list /proc/{w}/fd");
        assert!(
            !fds.contains(&socket),
            "{how}: worker {w} holds the native plugin's {socket}: {fds:?}"
        );
        // Removed by a reload, then added again: it binds again.
        write_conf(dir.path(), std::slice::from_ref(&py));
        rt.signal(libc::SIGHUP);
        rt.wait_log("reload ok", Duration::from_secs(30));
        write_conf(dir.path(), &with);
        rt.signal(libc::SIGHUP);
        wait_until("the second reload", Duration::from_secs(30), || {
            rt.log_text().matches("reload ok").count() == 2
        });
        assert_eq!(
            count(dir.path(), "net:bound"),
            2,
            "{how}: {:?}\n{}",
            record(dir.path()),
            rt.log_text()
        );
        rt.stop_ok();
    }
}

/// A plugin file in `dir/NAME/plugin.py` with `body` (Python) as its `init`;
/// the other lifecycle functions do nothing.
fn plugin_file(dir: &TempDir, name: &str, body: &str) -> PathBuf {
    let d = dir.join(name);
    std::fs::create_dir_all(&d).unwrap();
    let p = d.join("plugin.py");
    let body: String = body.lines().map(|l| format!("    {l}\n")).collect();
    std::fs::write(
        &p,
        format!(
            "import os\nREC = {:?}\n\ndef rec(line):\n    with open(REC, 'a') as f:\n        f.write(line + '\\n')\n\ndef init(args):\n{body}    rec('{name}:init')\n\ndef start_loop():\n    rec('{name}:start_loop')\n\ndef stop_loop():\n    pass\n\ndef cleanup():\n    pass\n",
            dir.join("record.log").display().to_string()
        ),
    )
    .unwrap();
    p
}

/// A plugin that imports `unittest.__main__` (which runs test discovery in
/// the working directory and raises SystemExit) must not poison the next
/// run's zygote: the name is not learned, the next zygote starts and forks,
/// and a `test_*.py` in the working directory is not run by it. A learned
/// file with such a name written by hand is ignored with a log line.
#[test]
fn a_plugin_importing_unittest_main_does_not_poison_the_next_zygote() {
    let dir = TempDir::new("proc-poison");
    let cwd = dir.join("cwd");
    std::fs::create_dir_all(&cwd).unwrap();
    std::fs::write(
        cwd.join("test_poison.py"),
        format!(
            "import os\nwith open({:?}, 'a') as f:\n    f.write('discovered:%d\\n' % os.getpid())\n",
            dir.join("record.log").display().to_string()
        ),
    )
    .unwrap();
    let plugin = plugin_file(
        &dir,
        "poison",
        // Loaded by hand, as a plugin might: it stays in sys.modules.
        "import importlib.util, sys\nspec = importlib.util.find_spec('unittest.__main__')\nm = importlib.util.module_from_spec(spec)\nsys.modules['unittest.__main__'] = m\ntry:\n    spec.loader.exec_module(m)\nexcept BaseException as e:\n    rec('poison:raised ' + type(e).__name__)",
    );
    let conf = write_conf(dir.path(), &[conf_line("poison", &plugin, None, None)]);
    let state = dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    let learned = state.join("zygote-preload.txt");
    let run = |n: usize| {
        let mut rt = Runtime::start_with(
            &conf,
            &[
                "--isolation",
                "process",
                "--log-target",
                "stderr",
                "--log-level",
                "debug",
            ],
            |c| {
                c.env("STATE_DIRECTORY", &state).current_dir(&cwd);
            },
        );
        rt.wait_log(
            "running: 1 plugin(s) running, 0 failed",
            Duration::from_secs(30),
        );
        // The worker reports what it imported once the supervisor is quiet;
        // the learned file is written half a second after the last report.
        wait_until("the learned module list", Duration::from_secs(10), || {
            std::fs::read_to_string(&learned).is_ok_and(|t| t.lines().any(|l| l == "unittest"))
        });
        rt.stop_ok();
        assert_eq!(
            count(dir.path(), "poison:start_loop"),
            n,
            "{:?}",
            record(dir.path())
        );
        rt.log_text()
    };
    let first = run(1);
    assert!(
        events(dir.path(), "poison").contains(&"raised SystemExit".to_string()),
        "{:?}\n{first}",
        record(dir.path())
    );
    let text = std::fs::read_to_string(&learned).unwrap();
    assert!(!text.contains("__main__"), "{text}");
    let discovered = |r: &[String]| r.iter().filter(|l| l.starts_with("discovered:")).count();
    let before = discovered(&record(dir.path()));
    let second = run(2);
    // Only the plugin's own import ran the discovery, not the zygote.
    assert_eq!(
        discovered(&record(dir.path())),
        before + 1,
        "{:?}\n{second}",
        record(dir.path())
    );
    assert!(!second.contains("SystemExit"), "{second}");
    assert!(!second.contains("could not start its worker"), "{second}");

    // A hand-written list with such names: they are ignored, with a line
    // saying so, and the zygote preloads the rest.
    std::fs::write(&learned, "json\nunittest.__main__\nos.__main__.x\n").unwrap();
    let third = run(3);
    assert!(
        third.contains("2 line(s) ignored") && third.contains("line 2: `unittest.__main__`"),
        "{third}"
    );
    assert!(third.contains("(1 names asked)"), "{third}");
    assert!(!third.contains("SystemExit"), "{third}");
    assert!(!third.contains("could not start its worker"), "{third}");
}

/// A worker SIGKILLed while children of its plugin live (an `os.fork` child,
/// and a `sleep &` started through the shell, which once held the control
/// socket): its death is logged and the plugin restarted while those
/// children would still sleep, and they are ended with its process group.
#[test]
fn a_worker_death_is_seen_whatever_children_its_plugin_left() {
    for how in ["zygote", "exec"] {
        let dir = TempDir::new(&format!("proc-kids-{how}"));
        let sleep_pid = dir.join("sleep.pid");
        let plugin = plugin_file(
            &dir,
            "kids",
            &format!(
                "import time\nif not os.path.exists({p:?}):\n    kid = os.fork()\n    if kid == 0:\n        time.sleep(60)\n        os._exit(0)\n    rec('kids:fork=%d' % kid)\n    os.system('sleep 61 & echo $! > {p}')",
                p = sleep_pid.display().to_string()
            ),
        );
        let conf = write_conf(dir.path(), &[conf_line("kids", &plugin, None, None)]);
        let mut rt = start_debug(&conf, how, None);
        rt.wait_log(
            "running: 1 plugin(s) running, 0 failed",
            Duration::from_secs(30),
        );
        let forked: u32 = events(dir.path(), "kids")
            .iter()
            .find_map(|e| e.strip_prefix("fork=").map(|p| p.parse().unwrap()))
            .expect("the forked child's pid");
        let slept: u32 = std::fs::read_to_string(&sleep_pid)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(running(forked) && running(slept));
        let worker = rt
            .log_text()
            .lines()
            .find_map(|l| {
                l.split("[kids] worker process ")
                    .nth(1)?
                    .split_whitespace()
                    .next()?
                    .parse::<u32>()
                    .ok()
            })
            .expect("the worker's pid in the log");
        kill(worker, libc::SIGKILL);
        // The children sleep 60 s: a restart now means the death was seen
        // from the process, not from its socket.
        wait_until("the plugin restarted", Duration::from_secs(20), || {
            count(dir.path(), "kids:start_loop") == 2
        });
        let log = rt.log_text();
        assert!(
            log.contains(&format!("[kids] worker process {worker} died")),
            "{how}: {log}"
        );
        wait_until("the children ended", Duration::from_secs(5), || {
            !running(forked) && !running(slept)
        });
        assert!(
            log.contains("process(es) its plugin left in its process group are ended too"),
            "{how}: {log}"
        );
        rt.stop_ok();
    }
}

/// The notify datagrams the runtime sent, in order.
#[derive(Clone, Default)]
struct Inbox(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl Inbox {
    fn listen(path: &Path) -> Inbox {
        let sock = std::os::unix::net::UnixDatagram::bind(path).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let inbox = Inbox::default();
        let store = inbox.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            loop {
                if let Ok(n) = sock.recv(&mut buf) {
                    let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                    store.0.lock().unwrap().push(msg);
                }
            }
        });
        inbox
    }

    fn pings(&self) -> usize {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|m| m.lines().any(|l| l == "WATCHDOG=1"))
            .count()
    }
}

/// A stopped zygote (SIGSTOP: slow, starved) costs no healthy worker its
/// life: worker a is SIGKILLed, its restart's fork request goes unanswered,
/// a is started as a new process, and worker b, forked by that zygote,
/// lives on and stops in order. Meanwhile the watchdog keeps being pinged.
#[test]
fn a_stopped_zygote_costs_no_healthy_worker_and_no_watchdog_ping() {
    let dir = TempDir::new("proc-slow-zygote");
    let notify = dir.join("notify.sock");
    let inbox = Inbox::listen(&notify);
    let conf = write_conf(dir.path(), &[probe(&dir, "a", ""), probe(&dir, "b", "")]);
    let args = [
        "--isolation",
        "process",
        "--log-target",
        "stderr",
        "--log-level",
        "debug",
    ];
    let mut rt = Runtime::start_with(&conf, &args, |c| {
        // Pinged every second when healthy.
        c.env("NOTIFY_SOCKET", &notify)
            .env("WATCHDOG_USEC", "2000000");
    });
    rt.wait_log(
        "running: 2 plugin(s) running, 0 failed",
        Duration::from_secs(30),
    );
    let zygote = zygote_pid(&rt, 0).expect("a zygote");
    let (a, b) = (worker_pid(dir.path(), "a"), worker_pid(dir.path(), "b"));
    kill(zygote, libc::SIGSTOP);
    kill(a, libc::SIGKILL);
    rt.wait_log(&format!("worker process {a} died"), Duration::from_secs(10));
    let at_death = inbox.pings();
    // The restart's fork request waits for the stopped zygote (5 s).
    rt.wait_log("did not answer", Duration::from_secs(30));
    let at_timeout = inbox.pings();
    wait_until("a restarted", Duration::from_secs(20), || {
        count(dir.path(), "a:start_loop") == 2
    });
    assert!(running(b), "worker b died with its stopped zygote");
    assert!(
        at_timeout >= at_death + 3,
        "watchdog pings while the fork request waited: {at_death} before, {at_timeout} after\n{}",
        rt.log_text()
    );
    assert_eq!(worker_pid(dir.path(), "b"), b);
    assert_eq!(count(dir.path(), "b:start_loop"), 1);
    rt.stop_ok();
    let b_events = events(dir.path(), "b");
    assert!(
        b_events.ends_with(&["stop_loop".to_string(), "cleanup".to_string()]),
        "{b_events:?}\n{}",
        rt.log_text()
    );
    kill(zygote, libc::SIGCONT);
}

/// A log record larger than a frame may be (5 MiB) is cut, with a note; the
/// worker that sent it is not taken for a broken one.
#[test]
fn a_huge_log_record_is_cut_not_taken_for_a_dead_worker() {
    let dir = TempDir::new("proc-huge-log");
    let text = "x".repeat(5 << 20);
    let conf = write_conf(
        dir.path(),
        &[probe(&dir, "loud", &format!("\"log_text\": {text:?}"))],
    );
    let mut rt = start_debug(&conf, "zygote", None);
    rt.wait_log("running: 1 plugin(s)", Duration::from_secs(30));
    let log = rt.log_text();
    assert!(
        log.contains("running: 1 plugin(s) running, 0 failed"),
        "{}",
        log.lines()
            .filter(|l| l.len() < 2000)
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(log.contains("more bytes cut]"));
    rt.stop_ok();
}
