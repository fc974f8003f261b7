"""Host side of the qemu-system tier: boots the test image and checks the runtime in it.

Run by scripts/test-qemu-system (which makes the image first). Boots the image
with qemu-system-aarch64 (software emulation, the disk with snapshot=on so the
image file stays pristine), talks to the guest agent (agent.py) over a
virtio-serial port, and checks, printing the time of each step:

  1. readiness: openplc-runtime.service is active because READY=1 arrived, every
     example plugin initialised and started, Modbus reads in the guest return what
     ramp_writer wrote (and a write comes back through the journal)
  1b. OPC UA: opcua_server's writable path (certs, a link to /var/lib/openplc/
     plugins/opcua_server/certs made by tmpfiles) holds its certificate; an
     asyncua client in the guest reads ramp_writer's live %IW0 through it, and
     its write of %QW1 is read back over Modbus
  1c. the PLC program examples/programs/io_demo (program_step.py): its
     outputs, read over Modbus in the guest, change as it computes them
  2. reload: an operator drop-in adds a plugin on `systemctl reload`; a broken one
     leaves the running set as it was and STATUS= says why
  3. watchdog: a plugin holding the image lock gets the service killed and
     restarted by systemd's watchdog; with --isolation process a crashing plugin
     restarts only its own worker
  4. stop: reverse order, exit status 0, no process of the unit left
  5. the root file system is read-only, nothing was written (or attempted) under
     /usr or /etc, `openplc-runtime check` passes
  6. boot-to-READY time and peak RSS (reported, not asserted)

Prints PASS/FAIL lines and "N passed, M failed"; exits 1 on any failure. Every
wait is bounded; on a hang or a failure the console log (and the guest's journal,
when the agent still answers) is printed, and qemu is always killed.
"""

import argparse
import json
import os
import re
import shlex
import socket
import subprocess
import sys
import threading
import time

import program_step

UNIT = "openplc-runtime.service"
TRIGGERS = "/run/openplc-test"
DROPINS = "/var/lib/openplc/plugins.conf.d"
OVERRIDE_DIR = "/run/systemd/system/openplc-runtime.service.d"
GUEST_TOOLS = "/usr/lib/openplc-test"
#: The plugins the image runs at boot (drop-in order) and how each shows in the
#: journal that its init and its start_loop ran.
BOOT_PLUGINS = [
    ("qemu_test", r"\[qemu_test\] qemu_test: init \(pid \d+\)", r"\[qemu_test\] qemu_test: start_loop \(pid \d+\)"),
    ("image_logger", r"\[image_logger\] image_logger: loaded ", r"\[image_logger\] image_logger: %IW0="),
    ("modbus_server", r"\[modbus_server\] modbus_server: loaded ",
     r"\[modbus_server\] modbus_server: listening on 127\.0\.0\.1:5020"),
    ("opcua_server", r"\[opcua_server\] opcua_server: loaded .*state in /var/lib/openplc/plugins/opcua_server",
     r"\[opcua_server\] opcua_server: listening on opc\.tcp://127\.0\.0\.1:4840/"),
    ("ramp_writer", r"\[ramp_writer\] ramp_writer: loaded ", r"\[ramp_writer\] ramp_writer: writing "),
]
#: The PLC programs the image runs (native: in the supervisor, never a worker).
N_PROGRAMS = 1
#: How many plugins run at boot, and after step 2's reload adds one.
N_BOOT = len(BOOT_PLUGINS) + N_PROGRAMS
N_RELOADED = N_BOOT + 1
#: The opcua_server example: its endpoint and namespace (its config.json), its
#: venv's python (asyncua for the client), its writable path.
OPCUA_ENDPOINT = "opc.tcp://127.0.0.1:4840/openplc/"
OPCUA_NAMESPACE = "urn:openplc-runtime:opcua-example"
OPCUA_PYTHON = "/usr/lib/openplc/venvs/opcua_server/bin/python3"
OPCUA_PLUGIN_DIR = "/usr/lib/openplc/plugins/opcua_server"
OPCUA_STATE = "/var/lib/openplc/plugins/opcua_server"


class Fatal(Exception):
    """A failure after which the remaining steps cannot run."""


class Results:
    def __init__(self, t0):
        self.t0 = t0
        self.passed = 0
        self.failed = 0

    def stamp(self):
        return "%6.1fs" % (time.monotonic() - self.t0)

    def check(self, name, ok, evidence=""):
        if ok:
            self.passed += 1
            print("PASS [%s] %s" % (self.stamp(), name), flush=True)
        else:
            self.failed += 1
            print("FAIL [%s] %s" % (self.stamp(), name), flush=True)
            for line in str(evidence).strip().splitlines()[-40:]:
                print("    | " + line, flush=True)
        return ok

    def info(self, text):
        print("INFO [%s] %s" % (self.stamp(), text), flush=True)


class Guest:
    """qemu-system-aarch64 running the image, and the agent channel to it."""

    def __init__(self, opts):
        self.opts = opts
        self.work = opts.work
        self.console = os.path.join(self.work, "console.log")
        self.sock_path = os.path.join(self.work, "agent.sock")
        self.qemu_log = os.path.join(self.work, "qemu.log")
        self.qemu = None
        self.sock = None
        self.buf = b""
        self.next_id = 1
        self.deadline = None
        self.launched = None

    # ----------------------------------------------------------- lifecycle
    def boot_args(self):
        """What this guest boots from: the image's kernel, initrd and root file."""
        image = self.opts.image
        with open(os.path.join(image, "cmdline")) as f:
            cmdline = f.read().strip()
        return [
            "-kernel", os.path.join(image, "vmlinuz"),
            "-initrd", os.path.join(image, "initrd.cpio"),
            "-append", cmdline,
            "-drive", "file=%s,if=none,format=raw,id=hd0,snapshot=on" % os.path.join(image, "rootfs.ext4"),
            "-device", "virtio-blk-pci,drive=hd0",
        ]

    def launch(self, deadline):
        """Starts qemu with boot_args() and connects to the agent's socket."""
        self.deadline = deadline
        argv = [
            "qemu-system-aarch64", "-M", "virt", "-cpu", "max,pauth=off",
            "-smp", str(self.opts.smp), "-m", str(self.opts.memory),
            "-nodefaults", "-display", "none", "-no-reboot", "-nic", "none",
        ] + self.boot_args() + [
            "-serial", "file:" + self.console,
            "-chardev", "socket,id=agent,path=%s,server=on,wait=off" % self.sock_path,
            "-device", "virtio-serial-pci",
            "-device", "virtserialport,chardev=agent,name=org.openplc.agent",
        ]
        with open(self.qemu_log, "wb") as log:
            self.qemu = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        self.launched = time.monotonic()
        t_end = time.monotonic() + 20
        while True:
            self.alive()
            try:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(self.sock_path)
                self.sock = s
                return
            except OSError:
                s.close()
                if time.monotonic() > t_end:
                    raise Fatal("qemu's agent socket %s did not appear within 20 s" % self.sock_path)
                time.sleep(0.1)

    def exited(self, what="qemu"):
        """Fatal for a qemu that has exited, with the end of its log."""
        with open(self.qemu_log, "rb") as f:
            out = f.read().decode("utf-8", "replace")
        return Fatal("%s exited with status %s: %s" % (what, self.qemu.returncode, out.strip()[-2000:]))

    def alive(self):
        if self.qemu is not None and self.qemu.poll() is not None:
            raise self.exited()

    def kill(self):
        if self.qemu is not None and self.qemu.poll() is None:
            self.qemu.kill()
            self.qemu.wait()

    def console_tail(self, lines=120):
        try:
            with open(self.console, "rb") as f:
                text = f.read().decode("utf-8", "replace")
        except OSError as exc:
            return "(no console log: %s)" % exc
        return "\n".join(text.splitlines()[-lines:])

    # ------------------------------------------------------------ protocol
    def _line(self, until):
        while b"\n" not in self.buf:
            self.alive()
            left = min(until, self.deadline) - time.monotonic()
            if left <= 0:
                if until >= self.deadline:
                    raise Fatal("the whole run's time limit (--deadline %d s) is up" % self.opts.deadline)
                return None
            self.sock.settimeout(min(left, 1.0))
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                raise Fatal("qemu closed the agent channel")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        try:
            return json.loads(line)
        except ValueError:
            return {}

    def _send(self, cmd, timeout):
        rid = self.next_id
        self.next_id += 1
        self.sock.sendall((json.dumps({"id": rid, "cmd": cmd, "timeout": timeout}) + "\n").encode())
        return rid

    def wait_agent(self, timeout):
        """Pings until the agent answers (pings sent before it started are queued)."""
        t_end = time.monotonic() + timeout
        while time.monotonic() < t_end:
            rid = self._send("cat /proc/uptime", 10)
            until = min(t_end, time.monotonic() + 5)
            while True:
                msg = self._line(until)
                if msg is None:
                    break
                if msg.get("id") == rid:
                    return float(msg["out"].split()[0])
        raise Fatal("the guest agent did not answer within %d s of boot" % timeout)

    def sh(self, cmd, timeout=60):
        """Runs `cmd` in the guest; returns (rc, stdout, stderr)."""
        rid = self._send(cmd, timeout)
        until = time.monotonic() + timeout + 15
        while True:
            msg = self._line(until)
            if msg is None:
                raise Fatal("no answer from the guest agent within %d s to: %s" % (timeout + 15, cmd))
            if msg.get("id") == rid:
                return msg["rc"], msg["out"], msg["err"]

    def out(self, cmd, timeout=60):
        rc, out, err = self.sh(cmd, timeout)
        if rc != 0:
            raise Fatal("guest command failed (rc %d): %s\n%s%s" % (rc, cmd, out, err))
        return out

    # ------------------------------------------------------------- helpers
    def show(self, *props):
        text = self.out("systemctl show %s %s" % (" ".join("-p " + p for p in props), UNIT))
        return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)

    def cursor(self):
        text = self.out("journalctl -q -n 0 --show-cursor")
        m = re.search(r"-- cursor: (\S+)", text)
        return m.group(1) if m else None

    def journal(self, cursor=None, unit=UNIT):
        cmd = "journalctl -q --no-pager -o cat"
        if unit:
            cmd += " -u " + unit
        if cursor:
            cmd += " --after-cursor=" + shlex.quote(cursor)
        return self.out(cmd).splitlines()

    def wait_journal(self, pattern, cursor=None, unit=UNIT, timeout=60):
        """The first journal line matching `pattern` (a regex), or None at timeout."""
        rx = re.compile(pattern)
        t_end = time.monotonic() + timeout
        while True:
            for line in self.journal(cursor, unit):
                if rx.search(line):
                    return line
            if time.monotonic() >= t_end:
                return None
            time.sleep(1)

    def wait_active(self, timeout, not_pid=None):
        """Waits until the unit is active (with a MainPID other than `not_pid`)."""
        t_end = time.monotonic() + timeout
        while True:
            p = self.show("ActiveState", "SubState", "MainPID", "Result")
            if p.get("ActiveState") == "active" and p.get("MainPID") not in ("0", not_pid):
                return p
            if p.get("ActiveState") == "failed" or time.monotonic() >= t_end:
                return None
            time.sleep(1)

    def children(self, pid):
        return sorted(self.out("ps -o pid= --ppid %s; true" % pid).split())

    def cmdline(self, pid):
        return self.out("tr '\\0' ' ' < /proc/%s/cmdline; true" % pid).strip()

    def workers(self, main_pid):
        """(zygote pid or None, worker pids): with --worker-start zygote (the
        default) the workers are the zygote's children, else the supervisor's."""
        kids = self.children(main_pid)
        zygotes = [k for k in kids if " zygote " in " %s " % self.cmdline(k)]
        if zygotes:
            return zygotes[0], self.children(zygotes[0])
        return None, kids

    def runtime_processes(self):
        """Pids of every process running /usr/bin/openplc-runtime (supervisor and workers)."""
        pids = []
        for line in self.out("ps -eo pid=,comm=,args=").splitlines():
            fields = line.split(None, 2)
            if len(fields) >= 2 and (fields[1] == "openplc-runtime" or "/usr/bin/openplc-runtime" in line):
                pids.append(fields[0])
        return pids

    def hwm_kb(self, pid):
        rc, out, _err = self.sh("grep VmHWM /proc/%s/status" % pid)
        m = re.search(r"(\d+) kB", out)
        return int(m.group(1)) if rc == 0 and m else None


def ordered(lines, patterns):
    """Indices of the first line matching each pattern, searched in order (None if missing)."""
    found, start = [], 0
    for p in patterns:
        rx = re.compile(p)
        idx = next((i for i in range(start, len(lines)) if rx.search(lines[i])), None)
        found.append(idx)
        if idx is not None:
            start = idx + 1
    return found


def wait_opcua(g, r, cursor, when):
    """Waits until opcua_server listens again after a restart. Its server starts
    in a thread after start_loop returned, and under emulation that takes ~40 s
    (asyncua's address space, the certificate); a stop before that finds
    asyncua still initialising and overruns the runtime's 5 s stop budget."""
    t0 = time.monotonic()
    line = g.wait_journal(r"\[opcua_server\] opcua_server: listening on ", cursor, timeout=180)
    r.check("opcua_server listens again %s (%.1f s of waiting)" % (when, time.monotonic() - t0), line is not None,
            "\n".join(ln for ln in g.journal(cursor) if "opcua_server" in ln))


def step(r, n, title):
    print("== step %s: %s" % (n, title), flush=True)
    return time.monotonic()


def done(r, n, t):
    r.info("step %s took %.1f s" % (n, time.monotonic() - t))


def run(opts, g, r):
    figures = {}
    deadline = time.monotonic() + opts.deadline
    t_launch = time.monotonic()
    g.launch(deadline)

    # ------------------------------------------------------------ step 1
    t = step(r, 1, "boot, READY, plugins, Modbus")
    uptime = g.wait_agent(opts.boot_timeout)
    r.info("guest agent answered %.1f s after qemu started (guest uptime %.1f s)"
           % (time.monotonic() - t_launch, uptime))
    p = g.wait_active(opts.ready_timeout)
    if p is None:
        st = g.sh("systemctl status --no-pager -l %s; journalctl -b --no-pager -u %s | tail -n 60" % (UNIT, UNIT))
        raise Fatal("%s not active within %d s:\n%s" % (UNIT, opts.ready_timeout, st[1] + st[2]))
    host_ready = time.monotonic() - t_launch
    props = g.show("Type", "ActiveState", "SubState", "StatusText", "MainPID", "NRestarts",
                   "ExecMainStartTimestampMonotonic", "ActiveEnterTimestampMonotonic", "WatchdogUSec")
    r.check("the unit is Type=notify with a watchdog (so 'active' means READY=1 arrived)",
            props["Type"] == "notify" and props["WatchdogUSec"] not in ("0", "infinity", ""), props)
    r.check("%s active/running, STATUS= '%d plugin(s) running, 0 failed'" % (UNIT, N_BOOT),
            props["SubState"] == "running"
            and props["StatusText"].startswith("%d plugin(s) running, 0 failed" % N_BOOT), props)
    lines = g.journal()
    idx = ordered(lines, [r"^running: %d plugin\(s\) running, 0 failed" % N_BOOT, r"^Started "])
    r.check("journal: the runtime's READY line ('running: ...') comes before systemd's 'Started'",
            None not in idx, "\n".join(lines[-30:]))
    start_us = int(props["ExecMainStartTimestampMonotonic"])
    ready_us = int(props["ActiveEnterTimestampMonotonic"])
    figures["boot_to_ready"] = (ready_us / 1e6, (ready_us - start_us) / 1e6, host_ready)
    for name, init_rx, start_rx in BOOT_PLUGINS:
        got_init = g.wait_journal(init_rx, timeout=5)
        # opcua_server's server thread may listen after start_loop returned
        # (asyncua's address space and the first RSA key, under emulation; over
        # 60 s on a loaded host).
        got_start = g.wait_journal(start_rx, timeout=180 if name == "opcua_server" else 15)
        r.check("journal: %s initialised and started" % name, got_init and got_start,
                "init %r: %s\nstart %r: %s" % (init_rx, got_init, start_rx, got_start))
    first = g.sh("python3 -I -B %s/modbus_read.py ir 0 3" % GUEST_TOOLS)
    time.sleep(1.5)
    second = g.sh("python3 -I -B %s/modbus_read.py ir 0 3" % GUEST_TOOLS)
    ok = first[0] == 0 and second[0] == 0
    evidence = "first: %r\nsecond: %r" % (first, second)
    if ok:
        a, b = json.loads(first[1]), json.loads(second[1])
        # ramp_writer's config.yaml: %IW0 ramp 0..1000 over 10 s; %IW1/%IW2 sines
        # 0..20000, 90 degrees apart (so their point lies on a circle of radius
        # 10000 around (10000, 10000); one journal cycle apart at worst).
        radius = ((b[1] - 10000) ** 2 + (b[2] - 10000) ** 2) ** 0.5
        ok = (all(0 <= v[0] <= 1000 and 0 <= v[1] <= 20000 and 0 <= v[2] <= 20000 for v in (a, b))
              and a[0] != b[0] and 8000 <= radius <= 12000)
        evidence += "\nradius of (%%IW1, %%IW2) around 10000: %.0f" % radius
    r.check("Modbus FC4 in the guest: %%IW0..2 = ramp_writer's ramp and sines (%s, then %s)"
            % (first[1].strip(), second[1].strip()), ok, evidence)
    w = g.sh("python3 -I -B %s/modbus_read.py write-hr 7 4242" % GUEST_TOOLS)
    back = None
    for _ in range(10):
        back = g.sh("python3 -I -B %s/modbus_read.py hr 7 1" % GUEST_TOOLS)
        if back[0] == 0 and json.loads(back[1]) == [4242]:
            break
        time.sleep(0.5)
    r.check("Modbus FC6 write of %QW7 comes back through the journal (FC3 reads 4242)",
            w[0] == 0 and back[0] == 0 and json.loads(back[1]) == [4242], "write: %r\nread: %r" % (w, back))
    figures["rss_shared"] = g.hwm_kb(props["MainPID"])
    gate = g.wait_journal(r"not booted by RAUC", unit="openplc-update-health.service", timeout=30)
    r.check("the update health gate is inert without rauc.slot= (one line, nothing marked)", gate, gate)
    done(r, 1, t)

    # ----------------------------------------------------------- step 1b
    t = step(r, "1b", "OPC UA: the opcua_server example, its writable path, a client in the guest")
    certs_link = OPCUA_PLUGIN_DIR + "/certs"
    rc, out, err = g.sh("readlink %s; cat /usr/lib/tmpfiles.d/openplc-plugin-opcua_server.conf; "
                        "findmnt -n -o TARGET,FSTYPE -T %s/certs" % (certs_link, OPCUA_STATE))
    lines_ = out.splitlines()
    r.check("opcua_server: %s is a link to %s/certs, which a tmpfiles entry creates on the /var tmpfs"
            % (certs_link, OPCUA_STATE),
            rc == 0 and lines_[:1] == [OPCUA_STATE + "/certs"]
            and any(re.match(r"^d %s/certs " % re.escape(OPCUA_STATE), ln) for ln in lines_)
            and lines_[-1].split() == ["/var", "tmpfs"], out + err)
    rc, out, err = g.sh("cd %s/ && touch .probe && rm .probe && echo writable" % certs_link)
    r.check("opcua_server: the writable path is writable through the plugin's link", rc == 0 and "writable" in out,
            out + err)
    rc, out, err = g.sh("ls -l %s/certs/; find /usr -xdev \\( -name 'server_key.pem' -o -name 'server_cert.der' \\)"
                        " -print" % OPCUA_STATE)
    r.check("opcua_server: its certificate and key are in %s/certs (none under /usr)" % OPCUA_STATE,
            rc == 0 and "server_cert.der" in out and "server_key.pem" in out
            and "/usr/" not in out, out + err)
    t_client = time.monotonic()
    rc, out, err = g.sh("%s -I -B %s/opcua_read.py %s %s 1.5 ramp sine heartbeat setpoint=1234"
                        % (OPCUA_PYTHON, GUEST_TOOLS, OPCUA_ENDPOINT, OPCUA_NAMESPACE), timeout=180)
    client_s = time.monotonic() - t_client
    ok = rc == 0
    res = {}
    if ok:
        res = json.loads(out)
        a, b = res["first"], res["second"]
        # ramp_writer's %IW0 ramp (0..1000 over 10 s) and %IW1 sine (0..20000).
        ok = (all(0 <= v["ramp"] <= 1000 and 0 <= v["sine"] <= 20000 and isinstance(v["heartbeat"], bool)
                  for v in (a, b)) and a["ramp"] != b["ramp"])
    r.check("OPC UA client in the guest (asyncua, opcua_server's venv) reads ramp_writer's live %%IW0 on %s "
            "(ramp %s, then %s)"
            % (OPCUA_ENDPOINT, res.get("first", {}).get("ramp"), res.get("second", {}).get("ramp")),
            ok, "rc %s\n%s%s" % (rc, out, err))
    r.info("OPC UA client: %.1f s in all (python start + asyncua import + connect %s s, first reads %s s)"
           % (client_s, res.get("connect_s"), res.get("read_s")))
    back = None
    for _ in range(10):
        back = g.sh("python3 -I -B %s/modbus_read.py hr 1 1" % GUEST_TOOLS)
        if back[0] == 0 and json.loads(back[1]) == [1234]:
            break
        time.sleep(0.5)
    r.check("OPC UA write of 'setpoint' (%QW1) = 1234 is in the image: Modbus FC3 reads it back",
            ok and res.get("wrote") == {"setpoint": 1234} and back[0] == 0 and json.loads(back[1]) == [1234],
            "client: %s\nmodbus: %r" % (res, back))
    done(r, "1b", t)

    # ----------------------------------------------------------- step 1c
    t = step(r, "1c", "the PLC program io_demo: its outputs over Modbus")
    program_step.run(g, r, GUEST_TOOLS)
    done(r, "1c", t)

    # ------------------------------------------------------------ step 2
    t = step(r, 2, "reload with drop-ins")
    main_pid = props["MainPID"]
    c = g.cursor()
    g.out("mkdir -p %s && printf 'probe2,/usr/lib/openplc/plugins/reload_probe/plugin.py,1,0,,\\n' > %s/70-probe2.conf"
          % (DROPINS, DROPINS))
    g.out("systemctl reload %s" % UNIT)
    ok_line = g.wait_journal(r"^reload ok: 1 started, 0 stopped", c, timeout=60)
    probe = g.wait_journal(r"\[probe2\] reload_probe: start_loop", c, timeout=5)
    p = g.show("StatusText", "MainPID", "ActiveState")
    r.check("reload: %s/70-probe2.conf adds plugin probe2 (same MainPID, '%d plugin(s) running')"
            % (DROPINS, N_RELOADED),
            ok_line and probe and p["MainPID"] == main_pid
            and p["StatusText"].startswith("%d plugin(s) running, 0 failed" % N_RELOADED),
            "%s\n%s\n%s\n%s" % (ok_line, probe, p, "\n".join(g.journal(c))))
    c = g.cursor()
    g.out("printf 'broken,/usr/lib/openplc/plugins/reload_probe/plugin.py,yes,0,,\\n' > %s/80-broken.conf" % DROPINS)
    g.out("systemctl reload %s" % UNIT)
    failed_line = g.wait_journal(r"reload failed", c, timeout=60)
    named = g.wait_journal(r"80-broken\.conf:1", c, timeout=5)
    p = g.show("StatusText", "MainPID", "ActiveState")
    status = g.sh("systemctl status --no-pager -l %s" % UNIT)[1]
    r.check("reload: a broken drop-in leaves the %d plugins running, STATUS= says why" % N_RELOADED,
            failed_line and p["MainPID"] == main_pid and p["ActiveState"] == "active"
            and p["StatusText"].startswith("%d plugin(s) running, 0 failed" % N_RELOADED)
            and "reload failed" in p["StatusText"],
            "%s\n%s\n%s" % (failed_line, p, "\n".join(g.journal(c))))
    r.check("reload: 'systemctl status' shows the reason, the journal names 80-broken.conf:1",
            re.search(r"Status: \".*reload failed", status) is not None and named is not None,
            "%s\njournal: %s" % (status, named))
    still = g.sh("python3 -I -B %s/modbus_read.py ir 0 3" % GUEST_TOOLS)
    r.check("reload: modbus_server still answers after the failed reload", still[0] == 0, still)
    c = g.cursor()
    g.out("rm -f %s/80-broken.conf && systemctl reload %s" % (DROPINS, UNIT))
    r.check("reload: without the broken drop-in the reload is clean again ('reload ok: 0 started, 0 stopped')",
            g.wait_journal(r"^reload ok: 0 started, 0 stopped", c, timeout=60) is not None, "\n".join(g.journal(c)))
    done(r, 2, t)

    # ------------------------------------------------------------ step 3
    t = step(r, 3, "watchdog restart; a crashing worker under --isolation process")
    props = g.show("MainPID", "NRestarts")
    c = g.cursor()
    t_stall = time.monotonic()
    g.out("mkdir -p %s && date > %s/stall" % (TRIGGERS, TRIGGERS))
    stalled = g.wait_journal(r"qemu_test: stall: image lock held", c, timeout=20)
    withheld = g.wait_journal(r"watchdog: not pinging systemd", c, timeout=30)
    timeout_line = g.wait_journal(r"[Ww]atchdog timeout", c, timeout=60)
    t_timeout = time.monotonic() - t_stall
    r.check("watchdog: the plugin holds the image lock, the runtime stops pinging, systemd logs a watchdog timeout",
            stalled and withheld and timeout_line,
            "%s\n%s\n%s\n%s" % (stalled, withheld, timeout_line, "\n".join(g.journal(c)[-30:])))
    p = g.wait_active(120, not_pid=props["MainPID"])
    t_back = time.monotonic() - t_stall
    p2 = g.show("MainPID", "NRestarts", "StatusText", "SubState")
    r.check("watchdog: systemd restarted the service and it is READY again (new MainPID %s, NRestarts %s -> %s)"
            % (p2["MainPID"], props["NRestarts"], p2["NRestarts"]),
            p is not None and int(p2["NRestarts"]) == int(props["NRestarts"]) + 1
            and p2["StatusText"].startswith("%d plugin(s) running, 0 failed" % N_RELOADED),
            "%s\n%s" % (p2, "\n".join(g.journal(c)[-40:])))
    r.info("watchdog: stall -> timeout %.1f s, stall -> READY again %.1f s" % (t_timeout, t_back))
    g.out("rm -f %s/stall" % TRIGGERS)
    wait_opcua(g, r, c, "after the watchdog restart")

    c = g.cursor()
    g.out("mkdir -p %s && printf '[Service]\\nExecStart=\\nExecStart=/usr/bin/openplc-runtime run --config "
          "/etc/openplc/plugins.conf --isolation process\\n' > %s/50-isolation.conf && systemctl daemon-reload"
          % (OVERRIDE_DIR, OVERRIDE_DIR))
    g.out("systemctl restart %s" % UNIT, timeout=180)
    p = g.wait_active(60)
    wait_opcua(g, r, c, "under --isolation process")
    props = g.show("MainPID", "NRestarts", "StatusText", "ExecStart")
    r.check("process isolation: restarted with --isolation process, %d plugins running" % N_RELOADED,
            p is not None and "--isolation process" in props["ExecStart"]
            and props["StatusText"].startswith("%d plugin(s) running, 0 failed" % N_RELOADED), props)
    main_pid = props["MainPID"]
    zygote, workers = g.workers(main_pid)
    started = g.wait_journal(r"qemu_test: start_loop \(pid \d+\)", c, timeout=10) or ""
    m = re.search(r"qemu_test: start_loop \(pid (\d+)\)", started)
    old_worker = m.group(1) if m else None
    r.check("process isolation: %d worker processes forked by zygote %s, qemu_test's is pid %s"
            % (len(workers), zygote, old_worker),
            zygote is not None and len(workers) == N_RELOADED - N_PROGRAMS and old_worker in workers,
            "zygote %s, workers of %s: %s" % (zygote, main_pid, workers))
    figures["rss_process"] = (g.hwm_kb(main_pid), [g.hwm_kb(w) for w in workers],
                              g.hwm_kb(zygote) if zygote else None)
    c = g.cursor()
    g.out("date > %s/crash" % TRIGGERS)
    died = g.wait_journal(r"\[qemu_test\] worker process %s died" % old_worker, c, timeout=30)
    again = g.wait_journal(r"qemu_test: start_loop \(pid (?!%s\))\d+\)" % old_worker, c, timeout=60)
    restarting = g.wait_journal(r"\[qemu_test\] restarting its worker", c, timeout=5)
    after = g.show("MainPID", "NRestarts", "ActiveState", "StatusText")
    zygote_after, workers_after = g.workers(main_pid)
    others = [w for w in workers if w != old_worker]
    r.check("process isolation: the crashed worker died and was restarted (journal), the service was not",
            died and restarting and again and after["MainPID"] == main_pid and after["NRestarts"] == props["NRestarts"]
            and after["ActiveState"] == "active",
            "%s\n%s\n%s\n%s\n%s" % (died, restarting, again, after, "\n".join(g.journal(c)[-30:])))
    r.check("process isolation: only that worker was replaced (other workers %s unchanged, "
            "same zygote)" % " ".join(others),
            all(w in workers_after for w in others) and old_worker not in workers_after
            and len(workers_after) == N_RELOADED - N_PROGRAMS and zygote_after == zygote,
            "before %s %s, after %s %s" % (zygote, workers, zygote_after, workers_after))
    g.out("rm -f %s/crash" % TRIGGERS)
    done(r, 3, t)

    # ------------------------------------------------------------ step 4
    t = step(r, 4, "systemctl stop")
    props = g.show("MainPID", "ControlGroup")
    cgroup = props["ControlGroup"]
    before = g.runtime_processes()
    c = g.cursor()
    g.out("systemctl stop %s" % UNIT, timeout=120)
    p = g.show("ActiveState", "Result", "ExecMainCode", "ExecMainStatus")
    r.check("stop: inactive, Result=success, exit status 0",
            p["ActiveState"] == "inactive" and p["Result"] == "success" and p["ExecMainCode"] == "1"
            and p["ExecMainStatus"] == "0", p)
    lines = g.journal(c)
    patterns = [
        r"^stopping \(signal\): stop_loop, then cleanup, in reverse order",
        r"\[probe2\] reload_probe: stop_loop",
        r"\[ramp_writer\] ramp_writer: stopped",
        r"\[opcua_server\] opcua_server: stopped",
        r"\[modbus_server\] modbus_server: stopped",
        r"\[qemu_test\] qemu_test: stop_loop",
        r"\[probe2\] reload_probe: cleanup",
        r"\[qemu_test\] qemu_test: cleanup",
        r"^stopped: \d+ scan cycles",
    ]
    idx = ordered(lines, patterns)
    r.check("stop: journal shows stop_loop then cleanup in reverse load order "
            "(probe2, ramp_writer, opcua_server, modbus_server, qemu_test)", None not in idx,
            "\n".join("%s: %s" % (p_, i) for p_, i in zip(patterns, idx)) + "\n" + "\n".join(lines[-40:]))
    over = [ln for ln in lines if "did not return within" in ln or "did not stop" in ln]
    r.check("stop: every plugin's stop_loop returned within the runtime's 5 s budget (opcua_server's too)",
            not over, "\n".join(over))
    in_cgroup = g.out("cat /sys/fs/cgroup%s/cgroup.procs 2>/dev/null; true" % cgroup).split()
    running = g.runtime_processes()
    r.check("stop: no process of the unit left (%d openplc-runtime processes before, none after; cgroup %s "
            "empty or gone)" % (len(before), cgroup),
            before and not in_cgroup and not running,
            "before: %s\nin the cgroup: %s\nrunning /usr/bin/openplc-runtime: %s" % (before, in_cgroup, running))
    done(r, 4, t)

    # ------------------------------------------------------------ step 5
    t = step(r, 5, "read-only root, no writes, check")
    mounts = g.out("cat /proc/mounts")
    root_opts = next((ln.split()[3] for ln in mounts.splitlines() if ln.split()[1:2] == ["/"]), "")
    targets = g.out("findmnt -n -o TARGET,OPTIONS -T /usr; findmnt -n -o TARGET,OPTIONS -T /etc")
    r.check("/ is mounted read-only and /usr, /etc are on it (%s)" % root_opts,
            root_opts.split(",")[0] == "ro" and all(ln.split()[0] == "/" for ln in targets.splitlines()),
            mounts + "\n" + targets)
    rc, _out, err = g.sh("touch /usr/lib/openplc/.probe")
    r.check("root cannot write /usr either: %s" % err.strip(), rc != 0 and "Read-only file system" in err, err)
    lines = g.journal(None)
    armed = [ln for ln in lines if "audit hook armed" in ln]
    attempts = [ln for ln in lines if "audit: write attempt" in ln or "audit hook NOT armed" in ln
                or ("Read-only file system" in ln and "audit hook" not in ln)]
    r.check("no write under /usr or /etc attempted by the runtime's Python (audit hook armed %d time(s), "
            "%d attempt(s))" % (len(armed), len(attempts)), armed and not attempts, "\n".join(attempts or lines[-20:]))
    rc, out, err = g.sh("openplc-runtime check", timeout=180)
    r.check("openplc-runtime check passes in the guest", rc == 0, out + err)
    r.check("check: io_demo is a PLC program (native, its task and located variables)",
            any(ln.startswith("io_demo: ok (native") and "PLC program" in ln for ln in (out + err).splitlines()),
            out + err)
    r.info("check: " + " | ".join((out + err).strip().splitlines()[-3:]))
    done(r, 5, t)

    # ------------------------------------------------------------ step 6
    step(r, 6, "figures (reported, not asserted)")
    kernel, process, host = figures["boot_to_ready"]
    r.info("boot to READY: %.1f s after the kernel started (guest monotonic), %.1f s from the runtime's start, "
           "%.1f s after qemu was launched" % (kernel, process, host))
    r.info("peak RSS, --isolation shared: %s kB (VmHWM of the runtime, %d plugins)"
           % (figures["rss_shared"], N_BOOT))
    sup, workers, zygote = figures["rss_process"]
    r.info("peak RSS, --isolation process: supervisor %s kB, zygote %s kB, workers %s kB (total %s kB; "
           "RSS counts the pages a worker shares with its zygote in each)"
           % (sup, zygote, " + ".join(str(w) for w in workers),
              (sup or 0) + (zygote or 0) + sum(w or 0 for w in workers)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image", required=True, help="directory made by scripts/make-qemu-image")
    ap.add_argument("--work", required=True, help="directory for the console log and the agent socket")
    ap.add_argument("--smp", type=int, default=2)
    ap.add_argument("--memory", type=int, default=1024, help="MiB")
    ap.add_argument("--boot-timeout", type=int, default=300, help="s until the guest agent answers")
    ap.add_argument("--ready-timeout", type=int, default=240, help="s from the agent until the unit is active")
    ap.add_argument("--deadline", type=int, default=900, help="s for the whole run; qemu is killed then")
    opts = ap.parse_args()
    r = Results(time.monotonic())
    g = Guest(opts)
    # The last resort against a hang this script does not see: kill qemu.
    killer = threading.Timer(opts.deadline + 60, g.kill)
    killer.daemon = True
    killer.start()
    fatal = None
    try:
        run(opts, g, r)
    except Fatal as exc:
        fatal = str(exc)
    except Exception as exc:  # a bug here still gets the console printed and qemu killed
        fatal = "%s: %s" % (type(exc).__name__, exc)
    if fatal is not None or r.failed:
        if fatal is not None:
            r.check("the run went to its end", False, fatal)
        if g.sock is not None and g.qemu is not None and g.qemu.poll() is None:
            try:
                g.deadline = time.monotonic() + 30
                print("---- guest journal (last 150 lines)")
                print(g.sh("journalctl -b --no-pager | tail -n 150", timeout=20)[1])
            except Fatal as exc:
                print("(the guest journal could not be read: %s)" % exc)
        print("---- console log (%s, last 120 lines)" % g.console)
        print(g.console_tail())
    g.kill()
    killer.cancel()
    print("%d passed, %d failed" % (r.passed, r.failed))
    return 1 if r.failed else 0


if __name__ == "__main__":
    sys.exit(main())
