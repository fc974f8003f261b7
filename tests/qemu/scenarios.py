#!/usr/bin/env python3
"""The plugin scenarios of the qemu-user tier (scripts/test-qemu-user).

Runs the cross-built runtime under qemu-user with the real fixture plugins
(tests/fixtures/plugins) and the examples, against venvs that
scripts/build-target-venv built for the target, and checks the same outcomes
as the host tests: tests/lifecycle.rs (order and capsule, exceptions, journal),
tests/venvs.rs (conflict refusal, version mismatch), tests/isolation.rs
(`--isolation process`: workers re-executed through binfmt_misc) and
tests/native.rs (C plugins built with the cross compiler), tests/program.rs
(the example PLC program built for the target). The assertions
mirror those tests on purpose; when one changes there, change it here.

Host Python 3.7+, stdlib only. Prints one "PASS name" or "FAIL name" line per
scenario (with the reason and the runtime's log under a FAIL); the calling
script counts them. A "LIMIT name" line names a host assertion that qemu-user
cannot support (with the evidence); it is neither passed nor failed.

usage: scenarios.py --arch A --work DIR ... -- QEMU ARGS... RUNTIME [RUNTIME ARGS...]
(see --help; scripts/test-qemu-user is the caller)
"""
import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import traceback
from harness import (EXAMPLES, EXIT_TIMEOUT, Failed, Scenario, check, modbus_read_input_registers,
                     python_info, running, wait_gone)
from native_scenarios import native_example, native_order, program_io_demo


def examples(s):
    spec = s.spec
    # The modbus example on a free port (another run may hold its default).
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    modbus_cfg = os.path.join(s.dir, "modbus.json")
    with open(modbus_cfg, "w") as f:
        json.dump({"port": port}, f)
    lines = []
    for name in spec["examples"]:
        cfg = {"modbus_server": modbus_cfg,
               "image_logger": os.path.join(EXAMPLES, "image_logger", "config.json"),
               "ramp_writer": os.path.join(EXAMPLES, "ramp_writer", "config.yaml")}[name]
        lines.append("%s,%s,1,0,%s,%s" % (name, os.path.join(EXAMPLES, name, "plugin.py"), cfg,
                                          spec["venvs"][name]))
    # A probe in the venv with the compiled package: its extension module must
    # import in the target's embedded interpreter. It also writes %IW10 through
    # the journal, which the Modbus server must then serve (a slot the ramp
    # leaves alone).
    compiled = spec["compiled"]
    lines.append(s.probe("compiled", {"imports": [compiled["module"]], "journal_int": [[5, 10, 4321]]},
                         spec["venvs"][compiled["venv"]]))
    conf = s.conf(lines)
    code, out, err = s.run(["check", "--config", conf])
    check(code == 0, "check exited %d:\n%s%s" % (code, out, err))
    for name in spec["examples"]:
        check("%s: ok (python, venv" % name in out, "check: no '%s: ok' in:\n%s" % (name, out))
    n = len(lines)
    s.start(conf)
    s.wait_log("running: %d plugin(s) running, 0 failed" % n)
    s.wait_log("modbus_server: listening on 127.0.0.1:%d" % port)
    time.sleep(spec["run_seconds"])
    regs = modbus_read_input_registers(port, 0, 11)
    check(regs[10] == 4321, "Modbus input register 10 = %d, want the probe's 4321" % regs[10], s.log())
    if "ramp_writer" in spec["examples"]:
        # %IW0..2 carry the ramp and sines by now.
        check(any(regs[:3]), "%%IW0..2 still zero after %d s: %r" % (spec["run_seconds"], regs), s.log())
    code = s.stop()
    log = s.log()
    check(code == 0, "exit %d after SIGTERM" % code, log)
    for name in spec["examples"]:
        check("[%s] %s:" % (name, name) in log, "nothing logged by %s" % name, log)
    check(any(e.startswith("import %s ok" % compiled["module"]) for e in s.events("compiled")),
          "%s did not import: %r" % (compiled["module"], s.events("compiled")), log)
    return "%d plugins ran %d s, stopped with 0; over Modbus %%IW0..2 = %r, %%IW10 = %d; %s imported" % (
        n, spec["run_seconds"], regs[:3], regs[10], compiled["module"])


def capsule_and_order(s):
    lines = ["# a comment, then a blank line", "", s.probe("a"), s.probe("b"),
             s.probe("d", enabled=0), s.probe("c")]
    conf = s.conf(lines)
    s.start(conf, ["--scan-period", "5ms"])
    s.wait_log("running: 3 plugin(s) running, 0 failed")
    code = s.stop()
    check(code == 0, "exit %d" % code, s.log())
    want = ["a:init", "b:init", "c:init", "a:start_loop", "b:start_loop", "c:start_loop",
            "c:stop_loop", "b:stop_loop", "a:stop_loop", "c:cleanup", "b:cleanup", "a:cleanup"]
    check(s.lifecycle() == want, "lifecycle %r" % s.lifecycle(), s.log())
    check(not s.events("d"), "disabled plugin ran: %r" % s.record())
    size = s.spec["capsule_size"]
    cap = ("capsule buffer_size=1024 bits=8 tick=5000000 ext=(2, %d) magic=0x4f504c43 size=%d "
           "name=openplc_plugin_a" % (size, size))
    check(s.events("a")[0] == cap, "capsule %r, want %r" % (s.events("a")[0], cap))
    return "order ok; " + cap


def exceptions(s):
    conf = s.conf([s.probe("ok"),
                   s.probe("r_init", {"raise_in": "init"}),
                   s.probe("r_start", {"raise_in": "start_loop"}),
                   s.probe("r_stop", {"raise_in": "stop_loop"}),
                   s.probe("r_clean", {"raise_in": "cleanup"})])
    s.start(conf)
    s.wait_log("running: 3 plugin(s) running, 2 failed (r_init, r_start)")
    code = s.stop()
    log = s.log()
    check(code == 0, "exit %d" % code, log)

    def ev(pid):
        return [e for e in s.events(pid) if not e.startswith(("capsule", "sys.path", "pid="))]

    for pid, want in [("ok", ["init", "start_loop", "stop_loop", "cleanup"]),
                      ("r_init", ["init", "cleanup"]),
                      ("r_start", ["init", "start_loop", "cleanup"]),
                      ("r_stop", ["init", "start_loop", "stop_loop", "cleanup"]),
                      ("r_clean", ["init", "start_loop", "stop_loop", "cleanup"])]:
        check(ev(pid) == want, "%s: %r, want %r" % (pid, ev(pid), want), log)
    for pid, func in [("r_init", "init"), ("r_start", "start_loop"),
                      ("r_stop", "stop_loop"), ("r_clean", "cleanup")]:
        head = "[%s] %s() raised" % (pid, func)
        at = log.find(head)
        check(at >= 0, "no %r" % head, log)
        rest = log[at:]
        check("Traceback (most recent call last):" in rest, "no traceback after %r" % head, log)
        check("RuntimeError: probe was told to fail in %s" % func in rest, "no RuntimeError for %s" % pid, log)
    return "init/start_loop raised: 2 failed, tracebacks logged, cleanup owed and run"


def journal(s):
    conf = s.conf([s.probe("reader", {"watch_int": ["int_input", 3, 1234]}),
                   s.probe("writer", {"journal_int": [[5, 3, 1234], [5, 64, 1], [9, 0, 1]]})])
    s.start(conf, ["--buffer-size", "64"])
    s.wait_log("running: 2 plugin(s) running")
    end = time.monotonic() + 30
    while not any(e.startswith("saw") or "timed out" in e for e in s.events("reader")):
        check(time.monotonic() < end, "reader saw nothing: %r" % s.record(), s.log())
        time.sleep(0.05)
    code = s.stop()
    log = s.log()
    check(code == 0, "exit %d" % code, log)
    check("saw int_input[3]=1234" in s.events("reader"), "reader: %r" % s.events("reader"), log)
    w = s.events("writer")
    for want in ("journal 5 3 1234 -> 0", "journal 5 64 1 -> -1", "journal 9 0 1 -> -1"):
        check(want in w, "writer: no %r in %r" % (want, w), log)
    check("journal: 2 write(s) rejected" in log, "no rejected count", log)
    return "journal write seen under image_lock; 2 rejected"


def conflict(s):
    v = s.spec["venvs"]
    conf = s.conf([s.probe("one", venv=v["foo1"]), s.probe("two", venv=v["foo2"])])
    for cmd in ("check", "run"):
        code, out, err = s.run([cmd, "--config", conf])
        check(code == 78, "%s: exit %d\n%s%s" % (cmd, code, out, err))
        for needle in ("plugins `one` and `two` would share one Python interpreter",
                       "different versions of `foo`: 1.0 (in ", "and 2.0 (in ",
                       "--isolation process"):
            check(needle in err, "%s: no %r in:\n%s" % (cmd, needle, err))
    check(not s.record(), "something was imported: %r" % s.record())
    conf = s.conf([s.probe("one", venv=v["foo1"]), s.probe("three", venv=v["foo1b"])])
    code, out, err = s.run(["check", "--config", conf])
    check(code == 0, "same version: exit %d\n%s%s" % (code, out, err))
    check("one: ok (python, venv" in out and "three: ok (python, venv" in out, out)
    return "foo 1.0 vs 2.0 refused (78) by check and run; 1.0 and 1.0 accepted"


def mismatch(s):
    spec = s.spec
    venv = spec["venvs"]["old"]
    with open(os.path.join(venv, "pyvenv.cfg")) as f:
        made = [l.split("=", 1)[1].strip() for l in f if l.split("=")[0].strip() == "version"][0]
    conf = s.conf([s.probe("old", venv=venv)])
    code, _, err = s.run(["check", "--config", conf])
    check(code == 78, "exit %d: %s" % (code, err))
    for needle in ("plugins.conf:1: field 6 (venv_path): plugin `old`: venv ",
                   "was made by Python %s" % made,
                   "but the runtime embeds Python %s" % spec["python_version"],
                   "scripts/manage_plugin_venvs.sh create --recreate old", venv):
        check(needle in err, "no %r in:\n%s" % (needle, err))
    return "venv for Python %s (%s) refused (78)" % (made, spec["old_venv_how"])

# ---- --isolation process (tests/isolation.rs). A worker is the runtime
# re-executed: current_exe() is /proc/self/exe, which qemu-user answers with
# the guest binary, so the kernel sees an aarch64/armv7 ELF and binfmt_misc
# hands it to qemu (scripts/test-qemu-user makes sure it is registered).

PROCESS = ["--isolation", "process", "--log-target", "stderr"]


def worker_cmdline(pid):
    with open("/proc/%d/cmdline" % pid, "rb") as f:
        return [a.decode(errors="replace") for a in f.read().split(b"\0")]


def proc_conflict(s):
    v = s.spec["venvs"]
    imports = {"imports": ["foo", "hidden_by_pth"]}
    conf = s.conf([s.probe("one", imports, v["foo1"]), s.probe("two", imports, v["foo2pth"])])
    # Shared mode refuses this; process mode does not, and check says so.
    code, _, err = s.run(["check", "--config", conf])
    check(code == 78, "shared check: exit %d\n%s" % (code, err))
    code, out, err = s.run(["check", "--isolation", "process", "--config", conf])
    check(code == 0, "check --isolation process: exit %d\n%s%s" % (code, out, err))
    check("would share" not in err, err)
    check("one: ok (python, venv" in out and "imports in its own process, has init" in out, out)
    check(not s.record(), "check called into a plugin: %r" % s.record())
    s.start(conf, PROCESS)
    s.wait_log("running: 2 plugin(s) running, 0 failed")
    p1, p2 = s.worker_pid("one"), s.worker_pid("two")
    # What the supervisor re-executed: the guest binary (binfmt_misc puts
    # qemu in front of it), i.e. current_exe() was not qemu's own path. That
    # is the zygote (the default), the workers being its forks (qemu-user
    # shows a fork its parent's command line), or the worker itself
    # (--worker-start exec).
    argv = worker_cmdline(p1)
    sub = next((a for a in ("worker", "zygote") if a in argv), None)
    check(sub is not None and os.path.realpath(argv[argv.index(sub) - 1])
          == os.path.realpath(s.spec["bin"]),
          "worker %d's command line %r does not run %s worker/zygote" % (p1, argv, s.spec["bin"]))
    code = s.stop()
    log = s.log()
    check(code == 0, "exit %d" % code, log)
    one, two = s.events("one"), s.events("two")
    check("import foo ok 1.0" in one, "one: %r" % one, log)
    check("import foo ok 2.0" in two, "two: %r" % two, log)
    # Only its own venv: `one` does not see what two's venv's .pth adds.
    check("import hidden_by_pth failed ModuleNotFoundError" in one, "one: %r" % one, log)
    check("import hidden_by_pth ok found through pthdemo.pth" in two, "two: %r" % two, log)
    sup = s.child.pid
    check(p1 != p2 and sup not in (p1, p2), "pids: one %d, two %d, supervisor %d" % (p1, p2, sup))
    want = ["one:init", "two:init", "one:start_loop", "two:start_loop",
            "two:stop_loop", "one:stop_loop", "two:cleanup", "one:cleanup"]
    check(s.lifecycle() == want, "lifecycle %r" % s.lifecycle(), log)
    check(not running(p1) and not running(p2), "a worker outlived the stop", log)
    return ("check --isolation process: 0; foo 1.0 and 2.0 in workers %d and %d (argv %s ...), "
            ".pth only in its own" % (p1, p2, " ".join(argv[:4])))


def proc_journal(s):
    conf = s.conf([s.probe("reader", {"watch_int": ["int_input", 7, 4321]}),
                   s.probe("writer", {"journal_int": [[5, 7, 4321]],
                                      "log_text": "hello from a worker %s"}),
                   s.probe("bad", {"raise_in": "init"})])
    s.start(conf, PROCESS)
    s.wait_log("running: 2 plugin(s) running, 1 failed (bad)")
    s.wait_until("the reader", lambda: any(e.startswith("saw") or "timed out" in e
                                           for e in s.events("reader")), 30)
    code = s.stop()
    log = s.log()
    check(code == 0, "exit %d" % code, log)
    check("saw int_input[7]=4321" in s.events("reader"), "reader: %r" % s.record(), log)
    # Log callbacks and tracebacks of workers reach the supervisor's log.
    for needle in ("[writer] hello from a worker %s", "[bad] init() raised",
                   "RuntimeError: probe was told to fail in init"):
        check(needle in log, "no %r" % needle, log)
    return "int_input[7]=4321 journalled in worker %d, seen under image_lock in worker %d" % (
        s.worker_pid("writer"), s.worker_pid("reader"))


def robust_futexes(spec):
    """None if the emulator supports robust futexes, else the evidence.

    A lock abandoned by a dead owner is recovered only because glibc
    registers each thread's robust-mutex list with set_robust_list(2) and the
    kernel walks that list when the thread dies. qemu-user answers the call
    with ENOSYS (the list holds guest pointers in the guest's layout, which
    the host kernel cannot walk, and qemu cannot hook the thread's death), so
    glibc never registers one. QEMU_STRACE shows the answer."""
    if "robust" not in spec:
        env = dict(os.environ, QEMU_STRACE="1", QEMU_LD_PREFIX=spec["sysroot"])
        env.pop("QEMU_CPU", None)
        p = subprocess.run(spec["runtime"] + ["--version"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env,
                           timeout=EXIT_TIMEOUT)
        line = next((l for l in p.stderr.decode(errors="replace").splitlines()
                     if "set_robust_list(" in l), "")
        spec["robust"] = (None if "errno=38" not in line else
                          "set_robust_list(...) =%s under %s (QEMU_STRACE)"
                          % (line.split(") =", 1)[-1], spec["qemu_version"]))
    return spec["robust"]


def proc_crash(s):
    conf = s.conf([s.probe("steady", {"hammer_int": [5, 1]}),
                   s.probe("crasher", {"crash_holding_lock_after_s": 0.5})])
    limit = robust_futexes(s.spec)
    s.start(conf, PROCESS)
    s.wait_log("running: 2 plugin(s) running")
    crashed = s.worker_pid("crasher")
    s.wait_log("[crasher] worker process %d died: killed by SIGSEGV (11)" % crashed)
    s.wait_log("[crasher] restarting its worker in 250 ms (restart 1 of 5)")
    s.wait_until("crasher's second init", lambda: s.count("crasher:init") >= 2)
    check("crashing with image_lock held" in s.events("crasher"), "the crasher did not take the lock: %r"
          % s.events("crasher"), s.log())
    # Without robust futexes (qemu-user) the lock is still handed over when
    # the scan thread was already waiting on it as the worker died: the
    # kernel marks a priority-inheriting futex with waiters FUTEX_OWNER_DIED
    # at the owner's exit, robust list or not. Then it is recovered as on a
    # board; otherwise it stays held by the dead worker.
    time.sleep(1)
    if limit and "image lock: recovered" not in s.log():
        # The scan loop and steady's hammer wait on it for good, and an
        # ordered stop would only time out (5 s per plugin). Kill the
        # supervisor; PR_SET_PDEATHSIG ends the workers (proc_orphans checks
        # that).
        s.child.kill()
        s.child.wait()
        wait_gone(s, [s.worker_pid("steady"), s.worker_pid("crasher")])
        return ("worker %d died of SIGSEGV holding image_lock, logged; restarted in 250 ms "
                "(restart 1 of 5), init again" % crashed,
                "lock recovery and 'the others continue' not testable: %s; the dead owner's lock "
                "is never marked EOWNERDEAD, so the scan loop and the other worker block on it "
                "(the runtime logged no recovery, as expected)" % limit)
    s.wait_log("image lock: recovered from a dead owner")
    code = s.stop()
    log = s.log()
    check(code == 0, "exit %d" % code, log)
    # The other plugin and the scan loop went on: its hammer thread (locked
    # reads) never blocked, so its stop_loop returned in time.
    check("[steady] stop_loop() did not return" not in log, "steady hung", log)
    check(s.count("steady:init") == 1 and s.count("steady:cleanup") == 1, "steady: %r"
          % s.events("steady"), log)
    cycles = int(log.split("stopped: ", 1)[1].split(" ", 1)[0])
    check(cycles > 20, "%d scan cycles" % cycles, log)
    return "SIGSEGV with image_lock held: lock recovered, restarted, %d scan cycles" % cycles


def proc_kill(s):
    conf = s.conf([s.probe("victim"), s.probe("other")])
    s.start(conf, PROCESS)
    s.wait_log("running: 2 plugin(s) running")
    first = s.worker_pid("victim")
    os.kill(first, signal.SIGKILL)
    s.wait_log("[victim] worker process %d died: killed by SIGKILL (9)" % first)
    s.wait_log("[victim] restarting its worker in 250 ms (restart 1 of 5)")
    s.wait_until("victim's second start", lambda: s.count("victim:start_loop") == 2)
    second = s.worker_pid("victim")
    check(second != first, "same pid %d after the restart" % first)
    os.kill(second, signal.SIGKILL)
    s.wait_log("[victim] restarting its worker in 500 ms (restart 2 of 5)")
    s.wait_until("victim's third start", lambda: s.count("victim:start_loop") == 3)
    code = s.stop()
    log = s.log()
    check(code == 0, "exit %d" % code, log)
    # The other plugin was never touched; killed workers get no
    # stop_loop/cleanup, the last one stops normally.
    for line, n in (("other:init", 1), ("other:stop_loop", 1),
                    ("victim:stop_loop", 1), ("victim:cleanup", 1)):
        check(s.count(line) == n, "%d x %r, want %d: %r" % (s.count(line), line, n, s.record()), log)
    return "SIGKILL twice: restarted after 250 ms, then 500 ms; the other worker untouched"


def proc_orphans(s):
    conf = s.conf([s.probe("a"), s.probe("b")])
    s.start(conf, PROCESS)
    s.wait_log("running: 2 plugin(s) running")
    pids = [s.worker_pid("a"), s.worker_pid("b")]
    check(all(running(p) for p in pids), "workers %r not running" % pids, s.log())
    s.child.kill()  # SIGKILL: the supervisor (the qemu process) gets no say
    s.child.wait()
    # How they died, when seen as zombies before their new parent reaps them:
    # SIGKILL is PR_SET_PDEATHSIG's; a clean exit means the worker saw its
    # control socket close first. The kernel closes a dying process's files
    # before it signals the children of its threads, so under qemu-user (a
    # slower teardown of many host threads) either may come first; both leave
    # no worker behind, which is the promise. Anything else is a failure.
    how = wait_gone(s, pids)
    check(all(sig in (signal.SIGKILL, 0) for sig in how.values()),
          "workers ended by %r (0: exited), neither SIGKILL (PR_SET_PDEATHSIG) nor the "
          "exit on a closed control socket" % how, s.log())
    killed = sum(1 for sig in how.values() if sig == signal.SIGKILL)
    return "kill -9 of the supervisor: workers %r gone; of %d seen dead, %d by SIGKILL " \
        "(PR_SET_PDEATHSIG), %d exited on the closed control socket" % (
            pids, len(how), killed, len(how) - killed)


# ---- native plugins (tests/native.rs), built with the cross compiler.


SCENARIOS = [
    ("python-info", python_info),
    ("examples: check, run, SIGTERM", examples),
    ("lifecycle order and capsule", capsule_and_order),
    ("exception in init (and the others)", exceptions),
    ("capsule/journal round trip", journal),
    ("conflict refusal", conflict),
    ("version-mismatch refusal", mismatch),
    ("native: hook order with Python plugins", native_order),
    ("native: C example drives an output a probe reads", native_example),
    ("program: io_demo built for the target, outputs from journal-written inputs", program_io_demo),
    ("process: conflicting versions, each in its worker", proc_conflict),
    ("process: journal across workers", proc_journal),
    ("process: worker crash holding image_lock", proc_crash),
    ("process: SIGKILLed worker restarted with back-off", proc_kill),
    ("process: kill -9 of the supervisor leaves no worker", proc_orphans),
]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", required=True, help="label of the results")
    ap.add_argument("--work", required=True, help="directory for plugins.conf, records, logs")
    ap.add_argument("--machine", required=True, help="os.uname().machine on the target")
    ap.add_argument("--triplet", required=True, help="in the SOABI, e.g. aarch64-linux-gnu")
    ap.add_argument("--sysroot", required=True)
    ap.add_argument("--python-version", required=True, help="the sysroot's Python, X.Y.Z")
    ap.add_argument("--capsule-size", type=int, required=True, help="sizeof the runtime-args struct")
    ap.add_argument("--example", action="append", default=[], dest="examples")
    ap.add_argument("--venv", action="append", default=[], metavar="NAME=PATH")
    ap.add_argument("--compiled", required=True, metavar="VENV:MODULE",
                    help="a compiled extension module and the venv that has it")
    ap.add_argument("--old-venv-how", default="", help="how the other-version venv was made")
    ap.add_argument("--run-seconds", type=int, default=4)
    ap.add_argument("--only", action="append", default=[], help="only the scenario with this name")
    ap.add_argument("--skip", action="append", default=[], metavar="PREFIX",
                    help="leave out the scenarios whose name starts with PREFIX (e.g. process:)")
    ap.add_argument("--bin", required=True, help="the cross-built runtime (what a worker re-executes)")
    ap.add_argument("--cc", required=True, help="the target's C compiler (native plugins)")
    ap.add_argument("--program-target", required=True, choices=["aarch64", "armv7"],
                    help="scripts/build-plc-program --target for the PLC program scenario")
    ap.add_argument("--child-qemu-cpu", default="",
                    help="QEMU_CPU for the workers binfmt_misc starts (empty: none)")
    ap.add_argument("--qemu-version", default="qemu-user", help="for messages")
    ap.add_argument("runtime", nargs="+", help="the command that runs the runtime (after --)")
    spec = vars(ap.parse_args())
    spec["venvs"] = dict(v.split("=", 1) for v in spec["venv"])
    venv, module = spec["compiled"].split(":", 1)
    spec["compiled"] = {"venv": venv, "module": module}
    for name, fn in SCENARIOS:
        if spec["only"] and name not in spec["only"]:
            continue
        if any(name.startswith(prefix) for prefix in spec["skip"]):
            continue
        s = Scenario(spec, fn.__name__)
        label = "%s: %s" % (spec["arch"], name)
        t0 = time.monotonic()
        try:
            detail = fn(s)
            # (detail, limit): what passed, and what the emulator cannot do.
            detail, limit = detail if isinstance(detail, tuple) else (detail, None)
            print("PASS %s (%.1f s): %s" % (label, time.monotonic() - t0, detail), flush=True)
            if limit:
                print("LIMIT %s: %s" % (label, limit), flush=True)
        except Failed as e:
            print("FAIL %s (%.1f s)\n%s" % (label, time.monotonic() - t0, e), flush=True)
        except Exception:
            print("FAIL %s\n%s" % (label, traceback.format_exc()), flush=True)
        finally:
            s.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
