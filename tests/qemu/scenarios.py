#!/usr/bin/env python3
"""The plugin scenarios of the qemu-user tier (scripts/test-qemu-user).

Runs the cross-built runtime under qemu-user with the real fixture plugins
(tests/fixtures/plugins) and the examples, against venvs that
scripts/build-target-venv built for the target, and checks the same outcomes
as the host tests: tests/lifecycle.rs (order and capsule, exceptions, journal)
and tests/venvs.rs (conflict refusal, version mismatch). The assertions mirror
those tests on purpose; when one changes there, change it here.

Host Python 3.7+, stdlib only. Prints one "PASS name" or "FAIL name" line per
scenario (with the reason and the runtime's log under a FAIL); the calling
script counts them.

usage: scenarios.py --arch A --work DIR ... -- QEMU ARGS... RUNTIME [RUNTIME ARGS...]
(see --help; scripts/test-qemu-user is the caller)
"""
import argparse
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
import traceback

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROBE = os.path.join(REPO, "tests", "fixtures", "plugins", "probe", "plugin.py")
EXAMPLES = os.path.join(REPO, "examples", "plugins")

# Emulation is 5-20x slower than the host: the host tests' 30 s waits, doubled.
START_TIMEOUT = 60
EXIT_TIMEOUT = 40


class Failed(Exception):
    pass


def check(cond, what, log=""):
    if not cond:
        raise Failed(what + ("\n--- runtime log ---\n" + log if log else ""))


class Scenario:
    """One scenario's directory, plugins.conf and runtime processes."""

    def __init__(self, spec, name):
        self.spec = spec
        self.dir = os.path.join(spec["work"], name)
        os.makedirs(self.dir, exist_ok=True)
        self.record_path = os.path.join(self.dir, "record.log")
        self.log_path = os.path.join(self.dir, "runtime.log")
        self.child = None

    # ---- files
    def probe_config(self, pid, extra=None):
        path = os.path.join(self.dir, pid + ".json")
        cfg = {"record": self.record_path, "id": pid}
        cfg.update(extra or {})
        with open(path, "w") as f:
            json.dump(cfg, f)
        return path

    def probe(self, pid, extra=None, venv="", enabled=1):
        return "%s,%s,%d,0,%s,%s" % (pid, PROBE, enabled, self.probe_config(pid, extra), venv)

    def conf(self, lines):
        path = os.path.join(self.dir, "plugins.conf")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return path

    def record(self):
        try:
            with open(self.record_path) as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []

    def events(self, pid):
        p = pid + ":"
        return [l[len(p):] for l in self.record() if l.startswith(p)]

    def lifecycle(self):
        return [l for l in self.record()
                if l.split(":")[-1] in ("init", "start_loop", "stop_loop", "cleanup")]

    # ---- the runtime under qemu
    def cmd(self, args):
        return self.spec["runtime"] + list(args)

    def run(self, args, timeout=EXIT_TIMEOUT):
        p = subprocess.run(self.cmd(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           stdin=subprocess.DEVNULL, timeout=timeout, env=self.spec_env())
        return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")

    def spec_env(self):
        env = dict(os.environ)
        # -cpu is on the command line; QEMU_CPU would also reach qemu-arm.
        env.pop("QEMU_CPU", None)
        # A child the runtime execs (binfmt) gets no -L: name the sysroot here.
        env["QEMU_LD_PREFIX"] = self.spec["sysroot"]
        return env

    def start(self, conf, args=()):
        with open(self.log_path, "wb") as log, open(os.devnull, "wb") as out:
            self.child = subprocess.Popen(self.cmd(["--config", conf] + list(args)),
                                          stdin=subprocess.DEVNULL, stdout=out, stderr=log,
                                          env=self.spec_env())

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def wait_log(self, needle, timeout=START_TIMEOUT):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if needle in self.log():
                return
            code = self.child.poll()
            check(code is None, "runtime exited (%s) before logging %r" % (code, needle), self.log())
            time.sleep(0.05)
        raise Failed("no %r in the log after %d s\n--- runtime log ---\n%s" % (needle, timeout, self.log()))

    def stop(self, sig=signal.SIGTERM, timeout=EXIT_TIMEOUT):
        self.child.send_signal(sig)
        return self.wait_exit(timeout)

    def wait_exit(self, timeout=EXIT_TIMEOUT):
        try:
            return self.child.wait(timeout)
        except subprocess.TimeoutExpired:
            self.child.kill()
            self.child.wait()
            raise Failed("runtime still running after %d s\n--- runtime log ---\n%s" % (timeout, self.log()))

    def close(self):
        if self.child is not None and self.child.poll() is None:
            self.child.kill()
            self.child.wait()


# ------------------------------------------------------------------ scenarios


def python_info(s):
    code, out, err = s.run(["python-info"])
    check(code == 0, "python-info exited %d: %s" % (code, err))
    info = dict(l.split("=", 1) for l in out.splitlines() if "=" in l)
    spec = s.spec
    check(info.get("machine") == spec["machine"],
          "machine=%s, want %s" % (info.get("machine"), spec["machine"]))
    check(info.get("version") == spec["python_version"],
          "version=%s, want the sysroot's %s" % (info.get("version"), spec["python_version"]))
    check(spec["triplet"] in info.get("soabi", ""), "soabi=%s has no %s" % (info.get("soabi"), spec["triplet"]))
    # The stdlib the interpreter found is the sysroot's: either named through
    # --python-home, or /usr/lib/python3.X resolved by qemu's -L.
    stdlib = info.get("stdlib", "")
    want = os.path.join(spec["sysroot"], "usr", "lib", "python" + info.get("major_minor", "?"))
    check(stdlib in (want, "/usr/lib/python" + info.get("major_minor", "?")), "stdlib=%s" % stdlib)
    check(os.path.isfile(os.path.join(want, "os.py")), "%s/os.py missing" % want)
    return "python %s on %s, stdlib %s" % (info["version"], info["machine"], stdlib)


def modbus_read_input_registers(port, start, count):
    """Function 4 over Modbus/TCP, by hand (the host has no pymodbus)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
        c.sendall(struct.pack(">HHHBBHH", 1, 0, 6, 1, 4, start, count))
        data = b""
        while len(data) < 9 + 2 * count:
            chunk = c.recv(256)
            if not chunk:
                break
            data += chunk
    check(len(data) >= 9 and data[7] == 4, "bad Modbus reply %r" % data)
    return list(struct.unpack(">%dH" % count, data[9:9 + 2 * count]))


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
    cap = ("capsule buffer_size=1024 bits=8 tick=5000000 ext=(1, %d) magic=0x4f504c43 size=%d "
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


SCENARIOS = [
    ("python-info", python_info),
    ("examples: check, run, SIGTERM", examples),
    ("lifecycle order and capsule", capsule_and_order),
    ("exception in init (and the others)", exceptions),
    ("capsule/journal round trip", journal),
    ("conflict refusal", conflict),
    ("version-mismatch refusal", mismatch),
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
    ap.add_argument("runtime", nargs="+", help="the command that runs the runtime (after --)")
    spec = vars(ap.parse_args())
    spec["venvs"] = dict(v.split("=", 1) for v in spec["venv"])
    venv, module = spec["compiled"].split(":", 1)
    spec["compiled"] = {"venv": venv, "module": module}
    for name, fn in SCENARIOS:
        if spec["only"] and name not in spec["only"]:
            continue
        s = Scenario(spec, fn.__name__)
        label = "%s: %s" % (spec["arch"], name)
        t0 = time.monotonic()
        try:
            detail = fn(s)
            print("PASS %s (%.1f s): %s" % (label, time.monotonic() - t0, detail), flush=True)
        except Failed as e:
            print("FAIL %s (%.1f s)\n%s" % (label, time.monotonic() - t0, e), flush=True)
        except Exception:
            print("FAIL %s\n%s" % (label, traceback.format_exc()), flush=True)
        finally:
            s.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
