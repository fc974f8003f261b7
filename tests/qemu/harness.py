"""Shared parts of the qemu-user tier's scenarios (scenarios.py,
native_scenarios.py): paths, timeouts, the Scenario runner and checks."""
import json
import os
import resource
import signal
import socket
import struct
import subprocess
import time


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
        # The top-level qemu has -cpu on its command line. A worker is started
        # by the kernel (binfmt_misc) with no options: only QEMU_CPU reaches
        # it, and only qemu-aarch64 may get one (cortex-a57: no pointer
        # authentication to emulate, 3-4x faster); qemu-arm must get none.
        env.pop("QEMU_CPU", None)
        if self.spec["child_qemu_cpu"]:
            env["QEMU_CPU"] = self.spec["child_qemu_cpu"]
        # A child the runtime execs (binfmt) gets no -L: name the sysroot here.
        env["QEMU_LD_PREFIX"] = self.spec["sysroot"]
        return env

    def start(self, conf, args=()):
        with open(self.log_path, "wb") as log, open(os.devnull, "wb") as out:
            self.child = subprocess.Popen(self.cmd(["--config", conf] + list(args)),
                                          stdin=subprocess.DEVNULL, stdout=out, stderr=log,
                                          env=self.spec_env(), preexec_fn=no_core_dumps)

    def worker_pid(self, pid):
        """The pid the probe `pid` recorded last (a worker's, after restarts)."""
        pids = [int(e[4:]) for e in self.events(pid) if e.startswith("pid=")]
        check(pids, "no pid recorded by %s: %r" % (pid, self.record()), self.log())
        return pids[-1]

    def count(self, line):
        return self.record().count(line)

    def wait_until(self, what, cond, timeout=START_TIMEOUT):
        end = time.monotonic() + timeout
        while not cond():
            check(time.monotonic() < end, "timed out (%d s) waiting for %s; record: %r"
                  % (timeout, what, self.record()), self.log())
            time.sleep(0.02)

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


def no_core_dumps():
    # qemu-user writes a guest core file into the working directory when a
    # guest dies of a signal (the crash scenario SIGSEGVs on purpose) and the
    # core limit allows it; workers inherit the limit.
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def proc_state(pid):
    """(state letter, exit signal or None) from /proc/PID/stat; None if gone.
    A zombie's last field is its wait status: the signal that killed it."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return fields[0], (int(fields[-1]) & 0x7F if fields[0] == "Z" else None)


def running(pid):
    """Alive and not a zombie (as tests/isolation.rs's running())."""
    st = proc_state(pid)
    return st is not None and st[0] != "Z"


def wait_gone(s, pids, timeout=20):
    """Waits until none of `pids` runs; returns {pid: signal that ended it,
    0 for an exit} for those seen as zombies (dead, not yet reaped by their
    new parent). Polled fast: whoever adopts them may reap them at once."""
    how = {}
    end = time.monotonic() + timeout
    while True:
        for p in pids:
            st = proc_state(p)
            if st and st[1] is not None:
                how[p] = st[1]
        if not any(running(p) for p in pids):
            return how
        check(time.monotonic() < end, "still running %d s after kill -9 of the supervisor: %r"
              % (timeout, [(p, proc_state(p)) for p in pids]), s.log())
        time.sleep(0.005)


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
