"""qemu_test -- a test-only OpenPLC plugin for the qemu-system tier (never ship it).

It does what a misbehaving plugin does on a board, on request, so that the tier can
watch systemd and the runtime deal with it:

- ``/run/openplc-test/stall`` appears: a thread takes the image lock through the
  capsule's ``image_lock`` and never releases it. The scan loop stops making
  progress, the runtime stops pinging the systemd watchdog, systemd kills and
  restarts the service.
- ``/run/openplc-test/crash`` appears: the process aborts (``os.abort()``), or
  segfaults through ctypes when the file says ``segv``. Under ``--isolation
  process`` that is this plugin's worker only.

Only a trigger file modified after this plugin instance's ``init`` counts, so the
instance systemd (or the runtime) starts again does not stall or crash again. The
test creates the files as root; the service sees /run read-only
(``ProtectSystem=strict``) and never writes there.

It also watches for writes under /usr and /etc with a Python audit hook (PEP 578),
installed when the module is imported -- before the plugins after it in load order
are imported, since the hook is process-wide in a shared interpreter. Every
attempt (an ``open`` with write flags, ``os.mkdir``, ``os.rename`` ...) is logged as
``qemu_test: audit: write attempt ...``. ``init`` proves the hook works by
attempting one write itself (to /etc, which fails on the read-only root) and
logging whether the hook saw it.

Every lifecycle call logs ``qemu_test: <call> (pid N)``, so the test can read the
call order and the worker's pid from the journal.
"""

import ctypes
import os
import sys
import threading
import time

_HELPERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
if _HELPERS not in sys.path and os.path.normpath(_HELPERS) not in sys.path:
    sys.path.insert(0, _HELPERS)
import openplc_capsule  # noqa: E402

TRIGGER_DIR = "/run/openplc-test"
#: How often the watcher looks for trigger files and new audit records.
POLL_S = 0.2
JOIN_TIMEOUT_S = 2.0
#: Audit records kept until the watcher logs them (more are counted, not kept).
MAX_RECORDS = 64
WATCHED_PREFIXES = ("/usr/", "/etc/")
PROBE_PATH = "/etc/openplc/.qemu-test-audit-probe"
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
#: Audit events whose first argument(s) are paths that get modified.
_PATH_EVENTS = {
    "os.mkdir": 1,
    "os.rename": 2,
    "os.replace": 2,
    "os.remove": 1,
    "os.rmdir": 1,
    "os.chmod": 1,
    "os.chown": 1,
    "os.utime": 1,
    "os.symlink": 2,
    "os.link": 2,
    "os.truncate": 1,
    "shutil.copyfile": 2,
}

_records = []
_dropped = [0]
_in_hook = threading.local()


def _watched(path):
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not isinstance(path, str):
        return None  # a file descriptor: already open
    full = os.path.abspath(path)
    return full if full.startswith(WATCHED_PREFIXES) else None


def _audit(event, args):
    """The audit hook: record writes under /usr and /etc. Never raises."""
    if getattr(_in_hook, "busy", False):
        return
    _in_hook.busy = True
    try:
        paths = []
        if event == "open" and len(args) >= 3:
            path, mode, flags = args[0], args[1], args[2]
            writes = bool((flags or 0) & _WRITE_FLAGS) or (
                isinstance(mode, str) and any(c in mode for c in "wax+")
            )
            if writes:
                paths = [path]
        elif event in _PATH_EVENTS:
            paths = list(args[: _PATH_EVENTS[event]])
        for path in paths:
            full = _watched(path)
            if full is None:
                continue
            if len(_records) < MAX_RECORDS:
                _records.append("%s %s" % (event, full))
            else:
                _dropped[0] += 1
    except Exception:  # an audit hook must never break the code it watches
        pass
    finally:
        _in_hook.busy = False


sys.addaudithook(_audit)

_args = None
_since = 0.0
_thread = None
_stop = threading.Event()


def _log(level, text):
    if _args is not None:
        _args.log(level, "qemu_test: " + text)


def _flush_audit():
    while _records:
        _log("error", "audit: write attempt: " + _records.pop(0))
    if _dropped[0]:
        _log("error", "audit: %d more write attempt(s) not shown" % _dropped[0])
        _dropped[0] = 0


def _fresh(name):
    """The trigger file's content if it was modified after this instance's init."""
    path = os.path.join(TRIGGER_DIR, name)
    try:
        if os.stat(path).st_mtime <= _since:
            return None
        with open(path, "r", encoding="utf-8", errors="replace") as f:
            return f.read().strip()
    except OSError:
        return None


def _stall(args):
    _log("warning", "stall requested: taking the image lock and never releasing it (pid %d)" % os.getpid())
    args.image_lock()
    _log("warning", "stall: image lock held; the scan loop is stuck from now on")
    while True:
        time.sleep(3600)


def _crash(how):
    _log("warning", "crash requested (%s) in pid %d" % (how or "abort", os.getpid()))
    time.sleep(0.3)  # let the record reach the journal first
    if how == "segv":
        ctypes.string_at(0)
    os.abort()


def _watch(args):
    while not _stop.wait(POLL_S):
        _flush_audit()
        how = _fresh("crash")
        if how is not None:
            _crash(how)
        if _fresh("stall") is not None:
            _stall(args)


def init(capsule):
    global _args, _since
    _args = openplc_capsule.RuntimeArgs.from_capsule(capsule)
    _since = time.time()
    before = len(_records)
    try:
        with open(PROBE_PATH, "w") as f:
            f.write("the root file system should be read-only\n")
        outcome = "it succeeded: the root file system is writable"
    except OSError as exc:
        outcome = "%s: %s" % (type(exc).__name__, exc.strerror or exc)
    seen = [r for r in _records[before:] if r.endswith(PROBE_PATH)]
    for r in seen:
        _records.remove(r)
    if seen:
        _log("info", "audit hook armed: saw the probe write to %s (%s)" % (PROBE_PATH, outcome))
    else:
        _log("error", "audit hook NOT armed: the probe write to %s was not seen (%s)" % (PROBE_PATH, outcome))
    _flush_audit()
    _log("info", "init (pid %d)" % os.getpid())


def start_loop():
    global _thread
    _stop.clear()
    _thread = threading.Thread(target=_watch, args=(_args,), name="qemu_test", daemon=True)
    _thread.start()
    _log("info", "start_loop (pid %d)" % os.getpid())


def stop_loop():
    global _thread
    _log("info", "stop_loop (pid %d)" % os.getpid())
    _stop.set()
    if _thread is not None:
        _thread.join(JOIN_TIMEOUT_S)
        _thread = None
    _flush_audit()


def cleanup():
    global _args
    _log("info", "cleanup (pid %d)" % os.getpid())
    _args = None
