"""Host side of the qemu-system tier's update tests: A/B updates with RAUC.

Run by scripts/test-qemu-system after drive.py. Boots the A/B disk that
scripts/make-qemu-image made (ab/disk.img: UEFI from AAVMF, GRUB on the ESP
choosing the slot from grubenv, two root slots, /var/lib on a data partition)
through a qcow2 overlay that persists across the reboots of the scenario (the
cached disk is never changed), with a per-run copy of the UEFI variables. The
bundles (scripts/make-rauc-bundles) reach the guest on a read-only second
disk. Every boot is a fresh qemu (-no-reboot: a guest reboot ends it); the
test never chooses a kernel or a command line.

  U1. v1 boots from slot A, the runtime is READY, the health gate marks A good
  U2. an operator drop-in is added; a bundle signed by a foreign key is
      refused by `rauc install` and nothing changes (grubenv, slot B)
  U3. `rauc install` of v2; reboot: GRUB boots B, v2 is READY with the
      drop-in's plugin, the gate marks B good; /var/lib survived byte for byte
  U4. `rauc install` of v3 (a venv made for another Python); each boot of it
      fails, the gate records why and reboots; when GRUB's attempts are spent
      the machine is back on v2 by itself, READY, the record names the cause;
      /var/lib survived byte for byte

INFO lines give each boot's boot-to-READY and the update-to-committed time
(`rauc install` start to the gate's mark-good). Every wait is bounded; on a
failure the console log of the boot is printed and qemu is always killed.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import threading
import time

import drive
from drive import Fatal

GATE = "openplc-update-health.service"
GRUBENV = "/boot/efi/grub/grubenv"
BUNDLES = "/run/bundles"
RECORD = "/var/lib/openplc/update"
#: Boots of an unhealthy slot before GRUB gives up on it (make-qemu-image's ab_tries).
TRIES = 2
AAVMF_CODE = "/usr/share/AAVMF/AAVMF_CODE.fd"
AAVMF_VARS = "/usr/share/AAVMF/AAVMF_VARS.fd"
#: /var/lib/openplc files the update must not touch (the gate's record is
#: expected to change).
HASH_CMD = ("cd /var/lib/openplc && find . -path ./update -prune -o -type f -print0 | sort -z"
            " | xargs -0 -r sha256sum")


class ABGuest(drive.Guest):
    """One boot of the A/B disk: UEFI, GRUB, the slot GRUB picks."""

    def __init__(self, opts, n):
        super().__init__(opts)
        self.console = os.path.join(self.work, "console-%d.log" % n)
        self.sock_path = os.path.join(self.work, "agent-%d.sock" % n)
        self.qemu_log = os.path.join(self.work, "qemu-%d.log" % n)
        self.n = n

    def boot_args(self):
        w = self.work
        return [
            "-drive", "if=pflash,format=raw,unit=0,readonly=on,file=" + AAVMF_CODE,
            "-drive", "if=pflash,format=raw,unit=1,file=" + os.path.join(w, "vars.fd"),
            # The A/B disk first (vda), the bundles second (vdb).
            "-drive", "file=%s,if=none,format=qcow2,id=hd0" % os.path.join(w, "disk.qcow2"),
            "-device", "virtio-blk-pci,drive=hd0,addr=0x8,bootindex=0",
            "-drive", "file=%s,if=none,format=raw,id=hd1,readonly=on" % os.path.join(w, "bundles.ext4"),
            "-device", "virtio-blk-pci,drive=hd1,addr=0x9",
        ]

    def alive(self):
        if self.qemu is not None and self.qemu.poll() is not None:
            fatal = self.exited("qemu (boot %d)" % self.n)
            raise Fatal("%s\n---- console:\n%s" % (fatal, self.console_tail(60)))

    def console_text(self):
        try:
            with open(self.console, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def wait_exit(self, timeout):
        """Waits for the guest to reboot (qemu exits); False at timeout."""
        try:
            self.qemu.wait(timeout=max(1, min(timeout, self.deadline - time.monotonic())))
            return True
        except subprocess.TimeoutExpired:
            return False

    def wait_cmdline(self, timeout):
        """The kernel command line GRUB passed, from the console; None at timeout."""
        t_end = time.monotonic() + timeout
        while time.monotonic() < t_end:
            m = re.search(r"Kernel command line: ([^\r\n]*)", self.console_text())
            if m:
                return m.group(1)
            if self.qemu.poll() is not None:
                return None
            time.sleep(1)
        return None


class Scenario:
    def __init__(self, opts, r):
        self.opts = opts
        self.r = r
        self.n = 0
        self.g = None
        self.deadline = time.monotonic() + opts.deadline

    def boot(self):
        """Launches the next boot."""
        if self.g is not None:
            self.g.kill()
        self.n += 1
        self.g = ABGuest(self.opts, self.n)
        self.g.launch(self.deadline)
        return self.g

    def up(self, slot, version, plugins):
        """Waits for the agent, checks the slot and version, waits for READY and
        the gate; returns the host time the gate finished."""
        g, r = self.g, self.r
        t0 = g.launched
        g.wait_agent(self.opts.boot_timeout)
        cmdline = g.out("cat /proc/cmdline").strip()
        ver = g.out("cat /etc/openplc-image-version").strip()
        r.check("boot %d: GRUB booted slot %s (rauc.slot=%s on the kernel command line), image v%s"
                % (self.n, slot, slot, version),
                ("rauc.slot=%s" % slot) in cmdline.split() and ver == version,
                "cmdline: %s\nversion: %s\n%s" % (cmdline, ver, g.console_tail(40)))
        t_end = time.monotonic() + self.opts.ready_timeout
        p = {}
        while time.monotonic() < t_end:
            p = g.show("ActiveState", "StatusText", "ActiveEnterTimestampMonotonic")
            if p.get("ActiveState") == "active" and p.get("StatusText", "").startswith(
                    "%d plugin(s) running, 0 failed" % plugins):
                break
            if p.get("ActiveState") == "failed":
                break
            time.sleep(1)
        ready = p.get("ActiveState") == "active" and p.get("StatusText", "").startswith(
            "%d plugin(s) running, 0 failed" % plugins)
        r.check("boot %d: openplc-runtime READY with %d plugin(s) running, 0 failed" % (self.n, plugins),
                ready, "%s\n%s" % (p, "\n".join(g.journal()[-30:])))
        if ready:
            guest_s = int(p.get("ActiveEnterTimestampMonotonic", "0")) / 1e6
            r.info("boot %d (slot %s, v%s): boot-to-READY %.1f s from qemu start (firmware, GRUB, kernel, "
                   "systemd), %.1f s of it in the guest kernel and userspace"
                   % (self.n, slot, version, time.monotonic() - t0, guest_s))
        t_end = time.monotonic() + self.opts.gate_timeout
        gp = {}
        while time.monotonic() < t_end:
            text = g.out("systemctl show -p ActiveState -p Result %s" % GATE)
            gp = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
            if gp.get("ActiveState") in ("active", "failed"):
                break
            time.sleep(1)
        t_gate = time.monotonic()
        gate_log = g.out("journalctl -b -q --no-pager -o cat -u %s" % GATE)
        r.check("boot %d: the health gate marked slot %s good ('slot %s committed')" % (self.n, slot, slot),
                gp.get("ActiveState") == "active" and ("slot %s committed" % slot) in gate_log,
                "%s\n%s" % (gp, gate_log))
        return t_gate

    def grubenv(self):
        text = self.g.out("grub-editenv %s list" % GRUBENV)
        return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)

    def hashes(self):
        """sha256 of /var/lib/openplc's files, the runtime stopped (RETAIN saved)."""
        self.g.out("systemctl stop openplc-runtime.service", timeout=120)
        return self.g.out(HASH_CMD)

    def reboot(self, why):
        try:
            self.g.sh("systemctl --no-block reboot", timeout=20)
        except Fatal:
            pass  # the agent (or qemu) went away before it answered
        if not self.g.wait_exit(180):
            raise Fatal("boot %d: the guest did not reboot within 180 s (%s)" % (self.n, why))

    def install(self, bundle):
        self.g.out("mountpoint -q {0} || {{ mkdir -p {0} && mount -o ro /dev/vdb {0}; }}".format(BUNDLES))
        rc, out, err = self.g.sh("rauc install %s/%s" % (BUNDLES, bundle), timeout=self.opts.install_timeout)
        return rc, out + err


def run(opts, s):
    r = s.r
    plugins_boot, plugins_more = drive.N_BOOT, drive.N_RELOADED

    # ------------------------------------------------------------ U1
    print("== U1: v1 from slot A through UEFI and GRUB", flush=True)
    g = s.boot()
    s.up("A", "1", plugins_boot)
    mounts = g.out("findmnt -n -o SOURCE,OPTIONS /; findmnt -n -o SOURCE /var/lib; findmnt -n -o SOURCE /boot/efi")
    r.check("slot A is / read-only, /var/lib is the data partition, the ESP is /boot/efi",
            re.match(r"/dev/vda2 ro[,\s]", mounts) and "/dev/vda4" in mounts and "/dev/vda1" in mounts, mounts)
    env = s.grubenv()
    r.check("grubenv: ORDER 'A B', A_OK=1, A_TRY=0 after the gate", env.get("ORDER") == "A B"
            and env.get("A_OK") == "1" and env.get("A_TRY") == "0", env)

    # ------------------------------------------------------------ U2
    print("== U2: an operator drop-in; a foreign-signed bundle is refused", flush=True)
    g.out("mkdir -p %s && printf 'probe2,/usr/lib/openplc/plugins/reload_probe/plugin.py,1,0,,\\n' > %s/70-probe2.conf"
          " && systemctl reload openplc-runtime.service" % (drive.DROPINS, drive.DROPINS))
    t_end = time.monotonic() + 60
    while time.monotonic() < t_end and not g.show("StatusText")["StatusText"].startswith(
            "%d plugin(s) running, 0 failed" % plugins_more):
        time.sleep(1)
    st = g.show("StatusText")["StatusText"]
    r.check("the drop-in adds probe2: %d plugin(s) running" % plugins_more,
            st.startswith("%d plugin(s) running, 0 failed" % plugins_more), st)
    slot_b = "head -c 16777216 /dev/vda3 | sha256sum"
    before = (s.grubenv(), g.out(slot_b), g.out("rauc status --output-format=shell"))
    rc, out = s.install("v2-foreign.raucb")
    after = (s.grubenv(), g.out(slot_b), g.out("rauc status --output-format=shell"))
    r.check("rauc install refuses v2-foreign.raucb (signature not trusted by the keyring); grubenv, "
            "slot B and RAUC's status unchanged",
            rc != 0 and re.search(r"(?i)signature|verif|certificate", out) and before == after,
            "rc %d\n%s\nbefore %s\nafter  %s" % (rc, out, before, after))

    # ------------------------------------------------------------ U3
    print("== U3: rauc install v2, reboot into slot B", flush=True)
    # opcua_server's state: the key and certificate it makes on its first start
    # (asyncua, slow under emulation) and reuses after.
    cert = "/var/lib/openplc/plugins/opcua_server/certs/server_cert.der"
    g.out("i=0; while [ ! -s %s ] && [ $i -lt 300 ]; do sleep 1; i=$((i + 1)); done; true" % cert, timeout=330)
    kept = s.hashes()
    r.check("the files kept include plugin state (opcua_server's certificate), the operator drop-in"
            " and io_demo's RETAIN file",
            "opcua_server/certs/server_cert.der" in kept and "70-probe2.conf" in kept
            and "plugins/io_demo/retain.bin" in kept, kept)
    r.info("/var/lib/openplc before the update (%d files): %s"
           % (len(kept.splitlines()), ", ".join(line.split()[1] for line in kept.splitlines())))
    t_install = time.monotonic()
    rc, out = s.install("v2.raucb")
    r.check("rauc install v2.raucb succeeds", rc == 0, out)
    if rc != 0:
        raise Fatal("cannot go on without v2 installed")
    r.info("rauc install v2 took %.1f s (writes slot B)" % (time.monotonic() - t_install))
    env = s.grubenv()
    r.check("grubenv after install: ORDER 'B A', B_OK=1, B_TRY=0",
            env.get("ORDER") == "B A" and env.get("B_OK") == "1" and env.get("B_TRY") == "0", env)
    s.reboot("after installing v2")
    g = s.boot()
    t_gate = s.up("B", "2", plugins_more)
    r.info("update-to-committed v2: %.1f s (rauc install start to the gate's mark-good, with the reboot)"
           % (t_gate - t_install))
    env = s.grubenv()
    r.check("grubenv: slot B good (B_OK=1, B_TRY=0), ORDER 'B A'",
            env.get("ORDER") == "B A" and env.get("B_OK") == "1" and env.get("B_TRY") == "0", env)
    now = s.hashes()
    r.check("/var/lib/openplc (drop-ins, plugin state, any RETAIN file) byte for byte after v1 -> v2", now == kept,
            "before:\n%s\nafter:\n%s" % (kept, now))

    # ------------------------------------------------------------ U4
    print("== U4: rauc install v3 (a venv for another Python): rejected, back on v2", flush=True)
    rc, out = s.install("v3.raucb")
    r.check("rauc install v3.raucb succeeds (the bundle is fine; the slot will not be)", rc == 0, out)
    if rc != 0:
        raise Fatal("cannot go on without v3 installed")
    s.reboot("after installing v3")
    v3_boots = 0
    for _ in range(TRIES + 1):
        g = s.boot()
        cmdline = g.wait_cmdline(opts.boot_timeout)
        if cmdline is None:
            raise Fatal("boot %d: no kernel command line on the console within %d s" % (s.n, opts.boot_timeout))
        if "rauc.slot=A" not in cmdline.split():
            break
        v3_boots += 1
        r.info("boot %d: GRUB booted slot A (v3), attempt %d" % (s.n, v3_boots))
        if not g.wait_exit(opts.boot_timeout + opts.gate_timeout):
            raise Fatal("boot %d: v3 did not reboot within %d s: the gate did not reject it"
                        % (s.n, opts.boot_timeout + opts.gate_timeout))
    r.check("v3 booted %d time(s), then GRUB fell back to slot B by itself" % TRIES,
            v3_boots == TRIES, "v3 boots: %d" % v3_boots)
    s.up("B", "2", plugins_more)
    rejected = g.out("cat %s/rejected-A; cat %s/history" % (RECORD, RECORD))
    r.check("%s/rejected-A says why v3 was rejected (exit status 78; the venv made by another Python), "
            "history has %d rejections of A" % (RECORD, TRIES),
            "exit status 78" in rejected and "Python 3.11" in rejected
            and len(re.findall(r"slot A \(\S+\) rejected", rejected)) == TRIES, rejected)
    for line in rejected.splitlines():
        if line.startswith("rejected: ") or "was made by Python" in line:
            r.info("the gate's record of v3: %s" % line.strip())
    env = s.grubenv()
    r.check("grubenv: A's attempts spent (A_TRY=%d), B good" % TRIES,
            env.get("A_TRY") == str(TRIES) and env.get("B_OK") == "1" and env.get("B_TRY") == "0", env)
    now = s.hashes()
    r.check("/var/lib/openplc byte for byte after the rejected v3", now == kept,
            "before:\n%s\nafter:\n%s" % (kept, now))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image", required=True, help="directory made by scripts/make-qemu-image")
    ap.add_argument("--bundles", required=True, help="directory made by scripts/make-rauc-bundles")
    ap.add_argument("--work", required=True, help="directory for the overlay, console logs and sockets")
    ap.add_argument("--smp", type=int, default=2)
    ap.add_argument("--memory", type=int, default=1024, help="MiB")
    ap.add_argument("--boot-timeout", type=int, default=400, help="s per boot until the agent answers")
    ap.add_argument("--ready-timeout", type=int, default=300, help="s from the agent until READY")
    ap.add_argument("--gate-timeout", type=int, default=240, help="s from READY until the gate is done")
    ap.add_argument("--install-timeout", type=int, default=900, help="s for one rauc install")
    ap.add_argument("--deadline", type=int, default=3600, help="s for the whole scenario")
    opts = ap.parse_args()
    disk = os.path.join(opts.image, "ab", "disk.img")
    w = opts.work
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", disk,
                    os.path.join(w, "disk.qcow2")], check=True)
    shutil.copyfile(AAVMF_VARS, os.path.join(w, "vars.fd"))
    media = os.path.join(w, "bundles.ext4")
    size = sum(os.path.getsize(os.path.join(opts.bundles, f)) for f in os.listdir(opts.bundles))
    subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "bundles", "-d", opts.bundles, media,
                    "%dM" % (size * 11 // 10 // 2**20 + 32)], check=True)
    r = drive.Results(time.monotonic())
    s = Scenario(opts, r)
    # The last resort against a hang this script does not see: kill qemu.
    killer = threading.Timer(opts.deadline + 60, lambda: s.g and s.g.kill())
    killer.daemon = True
    killer.start()
    fatal = None
    try:
        run(opts, s)
    except Fatal as exc:
        fatal = str(exc)
    except Exception as exc:  # a bug here still gets the console printed and qemu killed
        fatal = "%s: %s" % (type(exc).__name__, exc)
    g = s.g
    if fatal is not None or r.failed:
        if fatal is not None:
            r.check("the update scenario went to its end", False, fatal)
        if g is not None and g.sock is not None and g.qemu is not None and g.qemu.poll() is None:
            try:
                g.deadline = time.monotonic() + 30
                print("---- guest journal of boot %d (last 150 lines)" % s.n)
                print(g.sh("journalctl -b --no-pager | tail -n 150", timeout=20)[1])
            except Fatal as exc:
                print("(the guest journal could not be read: %s)" % exc)
        if g is not None:
            print("---- console log of boot %d (%s, last 120 lines)" % (s.n, g.console))
            print(g.console_tail())
    if g is not None:
        g.kill()
    killer.cancel()
    print("%d passed, %d failed" % (r.passed, r.failed))
    return 1 if r.failed else 0


if __name__ == "__main__":
    sys.exit(main())
