"""The qemu-user tier's native scenarios: C plugins built with the cross
compiler (tests/native.rs) and the example PLC program built for the target
(tests/program.rs). Run by scenarios.py."""
import json
import os
import subprocess
import time

from harness import REPO, check


def build_native(s, src, name, extra=()):
    out = os.path.join(s.dir, name + ".so")
    # The cross gcc links against Debian's cross glibc (2.36): older than the
    # sysroot's, so whatever it references the target has; no --sysroot needed.
    cmd = [s.spec["cc"], "-shared", "-fPIC", "-O2", "-Wall", "-o", out, src] + list(extra)
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    check(p.returncode == 0, "%s failed:\n%s" % (" ".join(cmd), p.stdout.decode(errors="replace")))
    return out


def native_line(name, so, config=""):
    return "%s,%s,1,1,%s" % (name, so, config)


def native_order(s):
    so = build_native(s, os.path.join(REPO, "tests", "fixtures", "native", "recorder.c"), "n",
                      ['-DLABEL="n"'])
    conf = s.conf([s.probe("a"), native_line("n", so, s.record_path), s.probe("b")])
    code, out, err = s.run(["check", "--config", conf])
    check(code == 0, "check: exit %d\n%s%s" % (code, out, err))
    # `check` names the line each plugin came from (plugins.conf or a drop-in).
    check("n: ok (native, init, start_loop, stop_loop, cycle_start, cycle_end, cleanup), %s:2" % conf
          in out.splitlines(), "check:\n%s" % out)
    check(not s.record(), "check called into a plugin: %r" % s.record())
    s.start(conf, ["--scan-period", "2ms"])
    s.wait_log("running: 3 plugin(s) running, 0 failed")
    s.wait_until("n:cycle_end", lambda: "n:cycle_end" in s.record(), 20)
    time.sleep(0.1)
    code = s.stop()
    log = s.log()
    check(code == 0, "exit %d" % code, log)
    # init in file order across both kinds, start_loop after every init,
    # stop_loop and cleanup in reverse.
    want = ["a:init", "n:init", "b:init", "a:start_loop", "n:start_loop", "b:start_loop",
            "b:stop_loop", "n:stop_loop", "a:stop_loop", "b:cleanup", "n:cleanup", "a:cleanup"]
    check(s.lifecycle() == want, "lifecycle %r" % s.lifecycle(), log)
    # Hooks run only between start_loop and stop_loop, start before end.
    ev = s.events("n")
    check(ev[:8] == ["init", "start_loop"] + ["cycle_start", "cycle_end"] * 3, "n: %r" % ev, log)
    check(len(ev) == 12 and ev[8].startswith("cycles ") and ev[8][7:].isdigit(), "n: %r" % ev, log)
    cycles = int(ev[8][7:])
    check(cycles >= 10, "only %d hook cycles: %r" % (cycles, ev), log)
    check(ev[9:] == ["stop_loop", "late 0", "cleanup"], "n: %r" % ev, log)
    return "check ok; init..cleanup interleaved with 2 Python plugins; %d hook cycles, none late" % cycles


def native_example(s):
    so = build_native(s, os.path.join(REPO, "examples", "native", "counter_plugin.c"),
                      "counter_plugin")
    # %IW0 = 4242 through the journal; the C plugin copies it to %QW1 and
    # counts %QW0 up every cycle.
    conf = s.conf([native_line("counter", so),
                   s.probe("watcher", {"journal_int": [[5, 0, 4242]],
                                       "watch_int": ["int_output", 1, 4242],
                                       "watch_changes": ["int_output", 0, 5]})])
    s.start(conf, ["--scan-period", "5ms"])
    s.wait_log("running: 2 plugin(s) running, 0 failed")
    for line in ("watcher:saw int_output[0] change 5 times", "watcher:saw int_output[1]=4242"):
        s.wait_until(line, lambda: line in s.record() or any(
            "timed out" in e for e in s.events("watcher")), 30)
        check(line in s.record(), "no %r: %r" % (line, s.record()), s.log())
    code = s.stop()
    log = s.log()
    check(code == 0, "exit %d" % code, log)
    for line in ("[counter] counter_plugin: init (buffer_size 1024, scan period 5000 us)",
                 "[counter] counter_plugin: started", "[counter] counter_plugin: stopped after ",
                 "[counter] counter_plugin: cleanup"):
        check(line in log, "no %r" % line, log)
    stopped = log.split("counter_plugin: stopped after ", 1)[1].split("\n", 1)[0]
    return "%%QW0 changed 5 times and %%QW1=4242 under image_lock; stopped after %s" % stopped


# ---- a PLC program (tests/program.rs), built for the target.

PLCIO = os.path.join(REPO, "tests", "fixtures", "plugins", "plcio", "plugin.py")
IO_DEMO = os.path.join(REPO, "examples", "programs", "io_demo", "generated")


def program_io_demo(s):
    """examples/programs/io_demo from its committed STruC++ output, compiled by
    scripts/build-plc-program --target ARCH (Debian's cross g++, the
    firmware trees' compile code), run as a type-1 plugin under qemu-user:
    its task computes the outputs from inputs a Python plugin writes through
    the journal, and the plugin reads them back under image_lock."""
    out = os.path.join(s.dir, "program")
    cmd = [os.path.join(REPO, "scripts", "build-plc-program"), "--from-output", IO_DEMO, "--name", "io_demo",
           "--target", s.spec["program_target"], "-o", out]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    check(p.returncode == 0, "%s failed:\n%s" % (" ".join(cmd), p.stdout.decode(errors="replace")))
    so = os.path.join(out, "libplc_io_demo.so")
    record = os.path.join(s.dir, "plcio.log")
    steps = [
        # %QW10 counts task runs from the start: the task runs.
        ["wait", "%QW10", ">=", 10],
        ["write", "%IW0", 321], ["write", "%IX0.0", 1],
        ["wait", "%QW12", "==", 642], ["wait", "%QX0.2", "==", 0], ["wait", "%QW11", "==", 1],
        ["read", "%QX0.1"],
        ["write", "%IW0", 600], ["wait", "%QX0.1", "==", 1], ["wait", "%QW12", "==", 1200],
        ["write", "%IX0.0", 0], ["wait", "%QX0.2", "==", 1],
        ["write", "%IX0.0", 1], ["wait", "%QW11", "==", 2],
        ["read", "%QW10"],
    ]
    cfg = os.path.join(s.dir, "plcio.json")
    with open(cfg, "w") as f:
        json.dump({"record": record, "steps": steps}, f)
    conf = s.conf([native_line("io_demo", so), "io,%s,1,0,%s," % (PLCIO, cfg)])
    code, out_text, err = s.run(["check", "--config", conf])
    check(code == 0, "check: exit %d\n%s%s" % (code, out_text, err))
    s.start(conf, ["--scan-period", "10ms"])
    s.wait_log("running: 2 plugin(s) running, 0 failed")

    def lines():
        try:
            with open(record) as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []
    s.wait_until("plcio done", lambda: any(ln == "done" or ln.startswith("timeout") for ln in lines()), 60)
    code = s.stop()
    log = s.log()
    got = lines()
    check(got[-1:] == ["done"], "plcio: %r" % got, log)
    check(code == 0, "exit %d" % code, log)
    want = ["seen %QW12 642", "seen %QX0.2 0", "seen %QW11 1", "read %QX0.1 0", "seen %QX0.1 1",
            "seen %QW12 1200", "seen %QX0.2 1", "seen %QW11 2"]
    check(all(w in got for w in want), "plcio: %r, want %r" % (got, want), log)
    runs = int(got[-2].split()[-1])
    return ("libplc_io_demo.so (%d bytes) ran its 20 ms task %d times; %%QW12 = 2 x %%IW0, %%QX0.1 = "
            "%%IW0 > 500, %%QX0.2 = NOT %%IX0.0, %%QW11 counted 2 rising edges" % (os.path.getsize(so), runs))
