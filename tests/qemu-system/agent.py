"""The qemu-system tier's guest agent: runs the host's shell commands in the guest.

It talks over a virtio-serial port (``/dev/virtio-ports/org.openplc.agent``), not
over the serial console, so kernel and systemd messages on the console never mix
with the protocol. One JSON object per line each way:

    host  -> guest   {"id": 7, "cmd": "systemctl is-active x", "timeout": 30}
    guest -> host    {"id": 7, "rc": 0, "out": "active\\n", "err": "", "s": 0.02}

``rc`` is the command's exit status, -1 if it ran past ``timeout`` seconds (it is
killed). On start the agent sends ``{"hello": true, "uptime": S}``. Stdlib only;
run with ``python3 -I -B`` (nothing is written to the read-only root).
"""

import json
import os
import subprocess
import time

PORT = "/dev/virtio-ports/org.openplc.agent"
#: Upper bound for one command, whatever the host asks for.
MAX_TIMEOUT_S = 600
#: Output kept per stream (the rest is cut and marked).
MAX_OUTPUT = 256 * 1024


def send(fd, obj):
    data = (json.dumps(obj) + "\n").encode()
    while data:
        n = os.write(fd, data)
        data = data[n:]


def clip(text):
    return text if len(text) <= MAX_OUTPUT else text[:MAX_OUTPUT] + "\n[... cut]\n"


def run(req):
    timeout = min(float(req.get("timeout", 60)), MAX_TIMEOUT_S)
    t0 = time.monotonic()
    try:
        p = subprocess.run(
            ["/bin/sh", "-c", req["cmd"]],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
        )
        rc, out, err = p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired as exc:
        rc, out, err = -1, exc.stdout or b"", (exc.stderr or b"") + b"\n[agent: timed out]\n"
    return {
        "id": req.get("id"),
        "rc": rc,
        "out": clip(out.decode("utf-8", "replace")),
        "err": clip(err.decode("utf-8", "replace")),
        "s": round(time.monotonic() - t0, 3),
    }


def main():
    fd = os.open(PORT, os.O_RDWR | os.O_NOCTTY)
    with open("/proc/uptime") as f:
        uptime = float(f.read().split()[0])
    send(fd, {"hello": True, "uptime": uptime})
    buf = b""
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            time.sleep(0.1)  # host not connected: the port reads empty
            continue
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            if not line.strip():
                continue
            try:
                req = json.loads(line)
                reply = run(req)
            except Exception as exc:  # keep serving; tell the host what went wrong
                reply = {"id": None, "rc": -2, "out": "", "err": "agent: %s: %s\n" % (type(exc).__name__, exc)}
            send(fd, reply)


if __name__ == "__main__":
    main()
