"""reload_probe -- a test-only OpenPLC plugin for the qemu-system tier.

The image installs it disabled; the reload step of the test adds it under another
name with a drop-in in /var/lib/openplc/plugins.conf.d/. It logs each lifecycle
call (``reload_probe: <call>``), so the journal shows it started on reload and
where it stops in the reverse stop order. No threads, no dependencies.
"""

import os
import sys

_HELPERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
if _HELPERS not in sys.path and os.path.normpath(_HELPERS) not in sys.path:
    sys.path.insert(0, _HELPERS)
import openplc_capsule  # noqa: E402

_args = None


def init(capsule):
    global _args
    _args = openplc_capsule.RuntimeArgs.from_capsule(capsule)
    _args.log("info", "reload_probe: init")


def start_loop():
    _args.log("info", "reload_probe: start_loop")


def stop_loop():
    _args.log("info", "reload_probe: stop_loop")


def cleanup():
    global _args
    _args.log("info", "reload_probe: cleanup")
    _args = None
