"""ramp_writer -- an OpenPLC Python plugin that feeds test signals into the input image.

Every ``period_ms`` it writes a ramp or sine value into each configured INT input
register (%IW) through the runtime's write journal (``journal_write_int``, type
INT_INPUT), and flips one bool input (%IX) as a heartbeat (``journal_write_bool``).
Configuration: ``config.yaml`` next to this file, or the config_path of plugins.conf.

Plugin API (OpenPLC v4): init(args) / start_loop() / stop_loop() / cleanup().
Needs PyYAML (see requirements.txt); runs unchanged on plain OpenPLC.
"""

import math
import os
import sys
import threading
import time

import yaml

# Shared helpers live one directory up, next to the plugin directories (OpenPLC style).
_HELPERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
if _HELPERS not in sys.path and os.path.normpath(_HELPERS) not in sys.path:
    sys.path.insert(0, _HELPERS)
import openplc_capsule  # noqa: E402

#: Used when plugins.conf gives no config_path.
DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "config.yaml")
#: Bounds of period_ms: faster than 10 ms floods the journal for nothing, slower than a
#: minute is not a signal any more.
PERIOD_MS_RANGE = (10, 60000)
#: stop_loop() waits this long for the writer thread (it wakes at once on stop).
JOIN_TIMEOUT_S = 2.0
WAVEFORMS = ("ramp", "sine")
INT_MAX = 0xFFFF

_args = None
_config = None
_thread = None
_stop = threading.Event()


class ConfigError(ValueError):
    """A bad config file; the message names the file and the key."""


def _load_config(path, buffer_size):
    try:
        with open(path, "r", encoding="utf-8") as f:
            raw = yaml.safe_load(f)
    except OSError as exc:
        raise ConfigError("%s: cannot read: %s" % (path, exc.strerror or exc))
    except yaml.YAMLError as exc:
        raise ConfigError("%s: not valid YAML: %s" % (path, exc))
    if not isinstance(raw, dict):
        raise ConfigError("%s: expected a mapping at the top level" % path)
    unknown = set(raw) - {"period_ms", "toggle", "signals"}
    if unknown:
        raise ConfigError("%s: unknown keys %s" % (path, ", ".join(sorted(map(str, unknown)))))

    def number(where, value, lo, hi):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
            raise ConfigError("%s: %s: expected a number in %s..%s, got %r" % (path, where, lo, hi, value))
        return value

    period_ms = number("period_ms", raw.get("period_ms", 100), *PERIOD_MS_RANGE)

    toggle = raw.get("toggle")
    if toggle is not None:
        try:
            table, index, bit = openplc_capsule.parse_address(toggle)
        except ValueError as exc:
            raise ConfigError("%s: toggle: %s" % (path, exc))
        if table != "bool_input" or index >= buffer_size:
            raise ConfigError("%s: toggle: %r must be a bool input %%IX<0..%d>.<0..7>" % (path, toggle, buffer_size - 1))
        toggle = (index, bit)

    signals = raw.get("signals")
    if not isinstance(signals, list) or not signals:
        raise ConfigError("%s: signals: expected a non-empty list" % path)
    parsed = []
    seen = set()
    for n, sig in enumerate(signals):
        where = "signals[%d]" % n
        if not isinstance(sig, dict):
            raise ConfigError("%s: %s: expected a mapping" % (path, where))
        unknown = set(sig) - {"register", "waveform", "min", "max", "cycle_s", "phase_deg"}
        if unknown:
            raise ConfigError("%s: %s: unknown keys %s" % (path, where, ", ".join(sorted(unknown))))
        register = sig.get("register")
        if isinstance(register, bool) or not isinstance(register, int) or not 0 <= register < buffer_size:
            raise ConfigError("%s: %s.register: expected 0..%d, got %r" % (path, where, buffer_size - 1, register))
        if register in seen:
            raise ConfigError("%s: %s.register: %%IW%d is written by another signal" % (path, where, register))
        seen.add(register)
        waveform = sig.get("waveform", "ramp")
        if waveform not in WAVEFORMS:
            raise ConfigError("%s: %s.waveform: expected one of %s, got %r" % (path, where, ", ".join(WAVEFORMS), waveform))
        lo = number(where + ".min", sig.get("min", 0), 0, INT_MAX)
        hi = number(where + ".max", sig.get("max", INT_MAX), 0, INT_MAX)
        if lo > hi:
            raise ConfigError("%s: %s: min %r is above max %r" % (path, where, lo, hi))
        cycle_s = number(where + ".cycle_s", sig.get("cycle_s", 10), 0.01, 86400)
        phase = number(where + ".phase_deg", sig.get("phase_deg", 0), -360, 360)
        parsed.append(
            {"register": register, "waveform": waveform, "min": lo, "max": hi, "cycle_s": cycle_s, "phase": phase / 360.0}
        )
    return {"period_s": period_ms / 1000.0, "toggle": toggle, "signals": parsed}


def _value(sig, t):
    """Value of ``sig`` at ``t`` seconds since start, an int in min..max."""
    frac = (t / sig["cycle_s"] + sig["phase"]) % 1.0
    span = sig["max"] - sig["min"]
    if sig["waveform"] == "ramp":
        value = sig["min"] + span * frac
    else:
        value = sig["min"] + span * (0.5 + 0.5 * math.sin(2.0 * math.pi * frac))
    return int(round(min(max(value, sig["min"]), sig["max"])))


def _describe(config):
    parts = []
    for sig in config["signals"]:
        parts.append(
            "%%IW%d=%s(%s..%s, %gs%s)"
            % (
                sig["register"],
                sig["waveform"],
                sig["min"],
                sig["max"],
                sig["cycle_s"],
                ", phase %g deg" % (sig["phase"] * 360) if sig["phase"] else "",
            )
        )
    if config["toggle"] is not None:
        parts.append("%%IX%d.%d=toggle" % config["toggle"])
    return "every %g ms: %s" % (config["period_s"] * 1000, "; ".join(parts))


def _run(args, config):
    """Writer thread: absolute deadlines, so the period does not drift."""
    period = config["period_s"]
    start = time.monotonic()
    deadline = start
    toggle_state = 0
    rejected = set()
    while True:
        now = time.monotonic()
        for sig in config["signals"]:
            rc = args.journal_write_int(openplc_capsule.INT_INPUT, sig["register"], _value(sig, now - start))
            if rc != 0 and sig["register"] not in rejected:
                # Log once per register: a full journal would otherwise flood the log.
                rejected.add(sig["register"])
                args.log("warn", "ramp_writer: journal rejected a write to %%IW%d (rc=%d)" % (sig["register"], rc))
        if config["toggle"] is not None:
            index, bit = config["toggle"]
            toggle_state ^= 1
            rc = args.journal_write_bool(openplc_capsule.BOOL_INPUT, index, bit, toggle_state)
            if rc != 0 and "toggle" not in rejected:
                rejected.add("toggle")
                args.log("warn", "ramp_writer: journal rejected a write to %%IX%d.%d (rc=%d)" % (index, bit, rc))
        deadline += period
        now = time.monotonic()
        if deadline < now:
            # Fell behind (suspended, overloaded): skip missed periods instead of bursting.
            deadline = now + period - ((now - deadline) % period)
        if _stop.wait(deadline - now):
            return


def init(args):
    """Called once by the runtime with the ``openplc_runtime_args`` capsule."""
    global _args, _config
    _args = openplc_capsule.RuntimeArgs.from_capsule(args)
    path = _args.config_path_or(DEFAULT_CONFIG)
    _config = _load_config(path, _args.buffer_size)
    _args.log("info", "ramp_writer: loaded %s (%d signals)" % (path, len(_config["signals"])))


def start_loop():
    global _thread
    if _thread is not None and _thread.is_alive():
        return
    _stop.clear()
    _thread = threading.Thread(target=_run, args=(_args, _config), name="ramp_writer", daemon=True)
    _thread.start()
    _args.log("info", "ramp_writer: writing " + _describe(_config))


def stop_loop():
    global _thread
    _stop.set()
    if _thread is not None:
        _thread.join(JOIN_TIMEOUT_S)
        if _thread.is_alive():
            _args.log("error", "ramp_writer: writer thread did not stop within %g s" % JOIN_TIMEOUT_S)
        else:
            _args.log("info", "ramp_writer: stopped")
        _thread = None


def cleanup():
    global _args, _config
    stop_loop()
    # The capsule is only valid until cleanup() returns: drop every reference to it.
    _args = None
    _config = None
