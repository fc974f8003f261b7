"""modbus_server -- an OpenPLC Python plugin serving the I/O image over Modbus/TCP.

Listens on 127.0.0.1 only (port from ``config.json``, default 5020) and maps, with
zero-based addresses:

| Modbus table       | function codes   | image                                     |
|--------------------|------------------|-------------------------------------------|
| discrete inputs    | 2 (read)         | bool_input,  address = slot * 8 + bit     |
| coils              | 1, 5, 15         | bool_output, address = slot * 8 + bit     |
| input registers    | 4 (read)         | int_input  (%IW)                          |
| holding registers  | 3, 6, 16, 22, 23 | int_output (%QW)                          |

Reads take the image lock. Writes from clients never touch the image directly: they
go through the runtime's write journal (``journal_write_int`` type INT_OUTPUT,
``journal_write_bool`` type BOOL_OUTPUT), so a read right after a write may still
return the old value until the next scan cycle applied it. A rejected journal write
answers the client with a Modbus exception (slave device failure).

pymodbus 3.6 is asyncio-based: the server runs on its own event loop in its own
thread. start_loop() returns once the port is bound, or raises (and logs) if it can't
be, e.g. because the port is in use. stop_loop() stops the loop and joins the thread.

Plugin API (OpenPLC v4): init(args) / start_loop() / stop_loop() / cleanup().
Needs pymodbus (see requirements.txt); runs unchanged on plain OpenPLC.
"""

import asyncio
import json
import logging
import os
import socket
import sys
import threading
import time

from pymodbus.datastore import ModbusBaseSlaveContext, ModbusServerContext
from pymodbus.server import ModbusTcpServer

# Shared helpers live one directory up, next to the plugin directories (OpenPLC style).
_HELPERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
if _HELPERS not in sys.path and os.path.normpath(_HELPERS) not in sys.path:
    sys.path.insert(0, _HELPERS)
import openplc_capsule  # noqa: E402

#: Used when plugins.conf gives no config_path.
DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "config.json")
DEFAULT_PORT = 5020
#: Loopback only, on purpose: an example must not expose the PLC's image to the network
#: (Modbus/TCP has no authentication). Put a gateway in front of it to publish it.
HOST = "127.0.0.1"
#: start_loop() gives the server thread this long to bind the port.
START_TIMEOUT_S = 5.0
#: stop_loop() waits this long for the server thread.
JOIN_TIMEOUT_S = 2.0
#: At most LOG_BURST pymodbus messages reach the runtime log per LOG_WINDOW_S.
LOG_BURST = 20
LOG_WINDOW_S = 10.0

_args = None
_port = None
_server = None
_log_handler = None


class ConfigError(ValueError):
    """A bad config file; the message names the file and the key."""


def _load_config(path):
    try:
        with open(path, "r", encoding="utf-8") as f:
            raw = json.load(f)
    except OSError as exc:
        raise ConfigError("%s: cannot read: %s" % (path, exc.strerror or exc))
    except ValueError as exc:
        raise ConfigError("%s: not valid JSON: %s" % (path, exc))
    if not isinstance(raw, dict):
        raise ConfigError("%s: expected a JSON object at the top level" % path)
    unknown = set(raw) - {"port"}
    if unknown:
        raise ConfigError("%s: unknown keys %s" % (path, ", ".join(sorted(unknown))))
    port = raw.get("port", DEFAULT_PORT)
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ConfigError("%s: port: expected 1..65535, got %r" % (path, port))
    return port


class ImageContext(ModbusBaseSlaveContext):
    """pymodbus datastore backed by the PLC image (reads) and the journal (writes)."""

    # Modbus table letter (pymodbus' decode(): d/c/i/h) -> (image table, journal type).
    _TABLES = {
        "d": ("bool_input", None),
        "c": ("bool_output", openplc_capsule.BOOL_OUTPUT),
        "i": ("int_input", None),
        "h": ("int_output", openplc_capsule.INT_OUTPUT),
    }

    def __init__(self, args):
        self._args = args

    def reset(self):
        """Nothing to reset: the image belongs to the runtime."""

    def _table(self, fc_as_hex):
        return self._TABLES[self.decode(fc_as_hex)]

    def _limit(self, table):
        bits = openplc_capsule.BITS_PER_SLOT if table.startswith("bool_") else 1
        return self._args.buffer_size * bits

    def validate(self, fc_as_hex, address, count=1):
        table, _journal = self._table(fc_as_hex)
        return count >= 1 and address >= 0 and address + count <= self._limit(table)

    def getValues(self, fc_as_hex, address, count=1):
        table, _journal = self._table(fc_as_hex)
        with self._args.image_locked():
            values = self._args.read_many(table, address, count)
        if table.startswith("bool_"):
            return [bool(v) for v in values]
        return [v or 0 for v in values]  # unmapped (None) reads as 0

    def setValues(self, fc_as_hex, address, values):
        table, journal = self._table(fc_as_hex)
        if journal is None:
            raise PermissionError("%s is read-only over Modbus" % table)
        if not isinstance(values, list):
            values = [values]
        bits = table.startswith("bool_")
        for offset, value in enumerate(values):
            location = address + offset
            if bits:
                index, bit = divmod(location, openplc_capsule.BITS_PER_SLOT)
                rc = self._args.write(journal, index, 1 if value else 0, bit=bit)
                where = "%%QX%d.%d" % (index, bit)
            else:
                rc = self._args.write(journal, location, value)
                where = "%%QW%d" % location
            if rc != 0:
                # pymodbus turns the exception into a "slave device failure" response.
                raise RuntimeError("journal rejected the write to %s (rc=%d)" % (where, rc))


class _ForwardToRuntimeLog(logging.Handler):
    """Routes pymodbus' own warnings and errors to the runtime's log.

    pymodbus logs every rejected client request at ERROR level (with a traceback for
    datastore failures). Those are the client's problem, answered with a Modbus
    exception: they are forwarded as warnings, first line only, and at most
    ``LOG_BURST`` messages per ``LOG_WINDOW_S`` so a misbehaving client cannot flood
    the PLC's log.
    """

    def __init__(self, args):
        super().__init__(level=logging.WARNING)
        self._args = args
        self._window_start = 0.0
        self._sent = 0
        self._dropped = 0

    def emit(self, record):
        try:
            now = time.monotonic()
            if now - self._window_start >= LOG_WINDOW_S:
                if self._dropped:
                    self._args.log("warn", "modbus_server: %d pymodbus messages suppressed" % self._dropped)
                self._window_start, self._sent, self._dropped = now, 0, 0
            if self._sent >= LOG_BURST:
                self._dropped += 1
                return
            self._sent += 1
            text = record.getMessage().split("; Traceback", 1)[0].splitlines()[0]
            per_request = text.startswith(("Exception response", "Datastore unable to fulfill request"))
            level = "error" if record.levelno >= logging.ERROR and not per_request else "warn"
            self._args.log(level, "modbus_server: pymodbus: " + text)
        except Exception:  # a log handler must never raise into pymodbus
            self.handleError(record)


def _bind_error(host, port):
    """Why binding ``host:port`` fails, as text (pymodbus only logs it as a warning)."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        # Same option asyncio uses, so the probe fails for the same reason.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))
        return "bind failed (see the pymodbus warning above)"
    except OSError as exc:
        return exc.strerror or str(exc)
    finally:
        probe.close()


class _ServerThread:
    """One pymodbus TCP server on a private event loop in a private thread.

    Not pymodbus' StartAsyncTcpServer/ServerAsyncStop: those keep the server in a
    class-level global and, in 3.6, wait forever if the port cannot be bound.
    """

    def __init__(self, args, port):
        self._args = args
        self._port = port
        self._loop = None
        self._stopping = None  # asyncio.Event, created on the server loop
        self._ready = threading.Event()
        self._error = None
        self._thread = threading.Thread(target=self._run, name="modbus_server", daemon=True)

    def start(self):
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT_S):
            self.stop()
            raise RuntimeError("modbus_server: %s:%d not listening after %g s" % (HOST, self._port, START_TIMEOUT_S))
        if self._error is not None:
            self._thread.join(JOIN_TIMEOUT_S)
            raise RuntimeError(self._error)

    def stop(self):
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._request_stop)
            except RuntimeError:  # loop closed in between: the thread is finishing
                pass
        self._thread.join(JOIN_TIMEOUT_S)
        return not self._thread.is_alive()

    def _request_stop(self):
        if self._stopping is not None:
            self._stopping.set()

    def _run(self):
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except Exception as exc:
            self._error = "modbus_server: server thread failed: %s: %s" % (type(exc).__name__, exc)
        finally:
            try:
                # Connection handler tasks of clients still connected at stop.
                pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
                for task in pending:
                    task.cancel()
                if pending:
                    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                asyncio.set_event_loop(None)
                loop.close()
                self._ready.set()

    async def _serve(self):
        self._stopping = asyncio.Event()
        context = ModbusServerContext(slaves=ImageContext(self._args), single=True)
        server = ModbusTcpServer(context, address=(HOST, self._port))
        try:
            if not await server.listen():
                self._error = "modbus_server: cannot listen on %s:%d: %s" % (HOST, self._port, _bind_error(HOST, self._port))
                return
            self._ready.set()
            await self._stopping.wait()
        finally:
            await server.shutdown()


def init(args):
    """Called once by the runtime with the ``openplc_runtime_args`` capsule."""
    global _args, _port
    _args = openplc_capsule.RuntimeArgs.from_capsule(args)
    path = _args.config_path_or(DEFAULT_CONFIG)
    _port = _load_config(path)
    _args.log("info", "modbus_server: loaded %s; will serve %d registers on %s:%d" % (path, _args.buffer_size, HOST, _port))


def start_loop():
    global _server, _log_handler
    if _server is not None:
        return
    if _log_handler is None:
        _log_handler = _ForwardToRuntimeLog(_args)
        logging.getLogger("pymodbus").addHandler(_log_handler)
    server = _ServerThread(_args, _port)
    try:
        server.start()
    except Exception as exc:
        _args.log("error", str(exc))
        raise
    _server = server
    _args.log("info", "modbus_server: listening on %s:%d" % (HOST, _port))


def stop_loop():
    global _server
    if _server is None:
        return
    stopped = _server.stop()
    _server = None
    if stopped:
        _args.log("info", "modbus_server: stopped")
    else:
        _args.log("error", "modbus_server: server thread did not stop within %g s" % JOIN_TIMEOUT_S)


def cleanup():
    global _args, _log_handler
    stop_loop()
    if _log_handler is not None:
        logging.getLogger("pymodbus").removeHandler(_log_handler)
        _log_handler = None
    # The capsule is only valid until cleanup() returns: drop every reference to it.
    _args = None
