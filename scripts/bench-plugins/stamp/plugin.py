# The benchmarks' stamp plugin: the trivial lifecycle, plus stamps from which
# scripts/bench measures how fast a killed worker is back in start_loop. In the
# directory $OPENPLC_BENCH_STAMPS, named after this plugin's directory:
#   NAME.pid    the worker's pid, written by init;
#   NAME.start  time.monotonic_ns() (system-wide clock, comparable with the
#               bench's), written by start_loop.
# Each is written to a temporary name and renamed, so a reader never sees a
# partial file.
import os
import time

_DIR = os.environ.get("OPENPLC_BENCH_STAMPS")
_NAME = os.path.basename(os.path.dirname(os.path.abspath(__file__)))


def _stamp(suffix, value):
    if not _DIR:
        return
    path = os.path.join(_DIR, _NAME + suffix)
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "w") as f:
        f.write("%d\n" % value)
    os.replace(tmp, path)


def init(capsule):
    _stamp(".pid", os.getpid())


def start_loop():
    _stamp(".start", time.monotonic_ns())


def stop_loop():
    pass


def cleanup():
    pass
