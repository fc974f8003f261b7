"""image_logger -- an OpenPLC Python plugin that logs image values periodically.

Every ``interval_s`` it takes the image lock, reads the watched locations (IEC
addresses such as %IW0, %QX0.1, %MD2), releases the lock and logs the values through
the runtime's log_info, formatted with tabulate. Unmapped locations (NULL on plain
OpenPLC) show as "-".
Configuration: ``config.json`` next to this file, or the config_path of plugins.conf:

    {"interval_s": 1.0, "layout": "line", "watch": ["%IW0", "%IX0.0"]}

``layout``: "line" logs one line per interval; "table" logs a header line and a value
line (aligned columns, two log calls).

Plugin API (OpenPLC v4): init(args) / start_loop() / stop_loop() / cleanup().
Needs tabulate (see requirements.txt); runs unchanged on plain OpenPLC.
"""

import json
import os
import sys
import threading

from tabulate import tabulate

# Shared helpers live one directory up, next to the plugin directories (OpenPLC style).
_HELPERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
if _HELPERS not in sys.path and os.path.normpath(_HELPERS) not in sys.path:
    sys.path.insert(0, _HELPERS)
import openplc_capsule  # noqa: E402

#: Used when plugins.conf gives no config_path.
DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "config.json")
#: interval_s bounds: below 0.1 s the log becomes the bottleneck; above an hour the
#: plugin is pointless.
INTERVAL_S_RANGE = (0.1, 3600.0)
#: Upper bound on watched locations: the image lock is held while they are read.
MAX_WATCH = 64
LAYOUTS = ("line", "table")
#: stop_loop() waits this long for the logger thread (it wakes at once on stop).
JOIN_TIMEOUT_S = 2.0

_args = None
_config = None
_thread = None
_stop = threading.Event()


class ConfigError(ValueError):
    """A bad config file; the message names the file and the key."""


def _load_config(path, buffer_size):
    try:
        with open(path, "r", encoding="utf-8") as f:
            raw = json.load(f)
    except OSError as exc:
        raise ConfigError("%s: cannot read: %s" % (path, exc.strerror or exc))
    except ValueError as exc:
        raise ConfigError("%s: not valid JSON: %s" % (path, exc))
    if not isinstance(raw, dict):
        raise ConfigError("%s: expected a JSON object at the top level" % path)
    unknown = set(raw) - {"interval_s", "layout", "watch"}
    if unknown:
        raise ConfigError("%s: unknown keys %s" % (path, ", ".join(sorted(unknown))))

    interval = raw.get("interval_s", 1.0)
    lo, hi = INTERVAL_S_RANGE
    if isinstance(interval, bool) or not isinstance(interval, (int, float)) or not lo <= interval <= hi:
        raise ConfigError("%s: interval_s: expected a number of seconds in %g..%g, got %r" % (path, lo, hi, interval))
    layout = raw.get("layout", "line")
    if layout not in LAYOUTS:
        raise ConfigError("%s: layout: expected one of %s, got %r" % (path, ", ".join(LAYOUTS), layout))
    watch = raw.get("watch")
    if not isinstance(watch, list) or not 1 <= len(watch) <= MAX_WATCH:
        raise ConfigError("%s: watch: expected a list of 1..%d IEC addresses" % (path, MAX_WATCH))
    locations = []
    for n, address in enumerate(watch):
        try:
            table, index, bit = openplc_capsule.parse_address(address)
        except ValueError as exc:
            raise ConfigError("%s: watch[%d]: %s" % (path, n, exc))
        if index >= buffer_size:
            raise ConfigError("%s: watch[%d]: %s is beyond the image (%d slots)" % (path, n, address, buffer_size))
        locations.append((openplc_capsule.format_address(table, index, bit), table, index, bit))
    return {"interval_s": float(interval), "layout": layout, "locations": locations}


def _snapshot(args, locations):
    """Values of ``locations``, read under the image lock (one consistent cycle)."""
    with args.image_locked():
        return [args.read(table, index, bit) for _label, table, index, bit in locations]


def _format(config, values):
    """Log lines for one snapshot."""
    labels = [label for label, _t, _i, _b in config["locations"]]
    if config["layout"] == "table":
        return tabulate([values], headers=labels, tablefmt="plain", missingval="-").splitlines()
    cells = ["%s=%s" % (label, "-" if value is None else value) for label, value in zip(labels, values)]
    return [tabulate([cells], tablefmt="plain")]


def _run(args, config):
    # Log the first snapshot right away, then one per interval.
    while True:
        try:
            for line in _format(config, _snapshot(args, config["locations"])):
                args.log("info", "image_logger: " + line)
        except Exception as exc:  # keep logging; report what went wrong
            args.log("error", "image_logger: snapshot failed: %s: %s" % (type(exc).__name__, exc))
        if _stop.wait(config["interval_s"]):
            return


def init(args):
    """Called once by the runtime with the ``openplc_runtime_args`` capsule."""
    global _args, _config
    _args = openplc_capsule.RuntimeArgs.from_capsule(args)
    path = _args.config_path_or(DEFAULT_CONFIG)
    _config = _load_config(path, _args.buffer_size)
    ext = _args.extension()
    _args.log(
        "info",
        "image_logger: loaded %s; watching %s every %g s (runtime %s)"
        % (
            path,
            ", ".join(label for label, _t, _i, _b in _config["locations"]),
            _config["interval_s"],
            "openplc-runtime ext v%d" % ext[0] if ext else "without extension block",
        ),
    )


def start_loop():
    global _thread
    if _thread is not None and _thread.is_alive():
        return
    _stop.clear()
    _thread = threading.Thread(target=_run, args=(_args, _config), name="image_logger", daemon=True)
    _thread.start()


def stop_loop():
    global _thread
    _stop.set()
    if _thread is not None:
        _thread.join(JOIN_TIMEOUT_S)
        if _thread.is_alive():
            _args.log("error", "image_logger: logger thread did not stop within %g s" % JOIN_TIMEOUT_S)
        _thread = None


def cleanup():
    global _args, _config
    stop_loop()
    # The capsule is only valid until cleanup() returns: drop every reference to it.
    _args = None
    _config = None
