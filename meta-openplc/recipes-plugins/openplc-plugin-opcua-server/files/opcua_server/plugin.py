"""opcua_server -- an OpenPLC Python plugin serving image locations over OPC UA.

It reads and writes the PLC through the runtime-args *debugger* callbacks, as
OpenPLC's own OPC UA plugin does: every variable is an ``(arr, elem)`` pair.
On openplc-runtime the debugger arrays are the image tables:

    arr  = the table's journal type code (0 BOOL_IN ... 13 LINT_MEM)
    elem = the slot; for bool tables slot * 8 + bit

so ``%IW0`` is ``(5, 0)`` and ``%QX0.1`` is ``(1, 1)``. ``config.json`` names the
variables by IEC address (``"address": "%IW0"``) or by ``"arr"``/``"elem"``.

- PLC -> OPC UA: every ``poll_ms`` the plugin reads each variable with
  ``debug_read`` and, when it changed, updates the node (subscriptions see it).
- OPC UA -> PLC: a client's Write to a variable marked ``"writable": true`` is
  stored with ``debug_write``; it is in the image at once (the next scan cycle,
  the other plugins and the next read see it). Variables not marked writable are
  read-only for clients.

Listens where ``endpoint`` says (default ``opc.tcp://127.0.0.1:4840/openplc/``,
loopback only). The server offers the security policies listed in ``security``;
for the signed/encrypted ones it needs a certificate, which it creates on first
start in ``<state dir>/certs/`` (a self-signed RSA key and certificate), where
the state dir is the writable directory the runtime gives the plugin
(``RuntimeArgs.state_dir()``: ``/var/lib/openplc/plugins/<name>/``). Without one
(plain OpenPLC) it writes to ``certs/`` next to this file, which a read-only
image links to a writable place (``scripts/install-plugin --writable certs``).

Plugin API (OpenPLC v4): init(args) / start_loop() / stop_loop() / cleanup().
Needs asyncua (see requirements.txt).
"""

import asyncio
import json
import os
import struct
import sys
import threading

from asyncua import Server, ua
from asyncua.common.callback import CallbackType

# Shared helpers live one directory up, next to the plugin directories (OpenPLC style).
_HERE = os.path.dirname(os.path.abspath(__file__))
_HELPERS = os.path.join(_HERE, "..")
if _HELPERS not in sys.path and os.path.normpath(_HELPERS) not in sys.path:
    sys.path.insert(0, _HELPERS)
import openplc_capsule as oc  # noqa: E402

#: Used when plugins.conf gives no config_path.
DEFAULT_CONFIG = os.path.join(_HERE, "config.json")
DEFAULT_ENDPOINT = "opc.tcp://127.0.0.1:4840/openplc/"
DEFAULT_NAMESPACE = "urn:openplc-runtime:opcua-example"
DEFAULT_POLL_MS = 100
#: start_loop() waits this long for the server to listen, so that a bad endpoint
#: (port in use) fails start_loop. asyncua loads its standard address space and
#: the first start generates an RSA key: on a small or busy board that can take
#: longer, and the runtime gives start_loop only 10 s. Then start_loop returns
#: and the server thread logs "listening on" (or the error) when it gets there.
START_WAIT_S = 5.0
#: stop_loop() waits this long for the server thread: less than the runtime's
#: 5 s stop_loop budget, so a server still starting (asyncua loading its
#: address space can take half a minute on a slow board) is abandoned with a
#: log line instead of overrunning the budget. Its thread is a daemon.
JOIN_TIMEOUT_S = 3.0

#: IEC data type -> (bytes, OPC UA variant type, struct format or None for ints).
DATATYPES = {
    "BOOL": (1, ua.VariantType.Boolean, None),
    "BYTE": (1, ua.VariantType.Byte, None),
    "USINT": (1, ua.VariantType.Byte, None),
    "SINT": (1, ua.VariantType.SByte, "<b"),
    "WORD": (2, ua.VariantType.UInt16, None),
    "UINT": (2, ua.VariantType.UInt16, None),
    "INT": (2, ua.VariantType.Int16, "<h"),
    "DWORD": (4, ua.VariantType.UInt32, None),
    "UDINT": (4, ua.VariantType.UInt32, None),
    "DINT": (4, ua.VariantType.Int32, "<i"),
    "REAL": (4, ua.VariantType.Float, "<f"),
    "LWORD": (8, ua.VariantType.UInt64, None),
    "ULINT": (8, ua.VariantType.UInt64, None),
    "LINT": (8, ua.VariantType.Int64, "<q"),
    "LREAL": (8, ua.VariantType.Double, "<d"),
}
#: The data type of a variable whose config names none, by element size.
DEFAULT_DATATYPE = {1: "BYTE", 2: "UINT", 4: "UDINT", 8: "ULINT"}
SECURITY = {
    "None": ua.SecurityPolicyType.NoSecurity,
    "Basic256Sha256_Sign": ua.SecurityPolicyType.Basic256Sha256_Sign,
    "Basic256Sha256_SignAndEncrypt": ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
}

_args = None
_cfg = None
_server = None


class ConfigError(ValueError):
    """A bad config file; the message names the file and the key."""


class Variable:
    """One served image location: an IEC address read from and written to the
    image itself (``addr``: table, index, bit), or a debugger (arr, elem)."""

    def __init__(self, name, arr, elem, datatype, writable, addr=None):
        self.name, self.arr, self.elem = name, arr, elem
        self.datatype, self.writable = datatype, writable
        self.addr = addr
        self.size, self.vtype, self.fmt = DATATYPES[datatype]
        self.node = None
        self.last = None

    def from_raw(self, raw):
        """The debugger's unsigned little-endian value -> the Python value."""
        if self.datatype == "BOOL":
            return bool(raw)
        if self.fmt is None:
            return raw
        return struct.unpack(self.fmt, raw.to_bytes(self.size, "little"))[0]

    def to_raw(self, value):
        """A client's value -> the unsigned value debug_write stores."""
        if self.datatype == "BOOL":
            return 1 if value else 0
        if self.fmt is None:
            return int(value) & ((1 << (8 * self.size)) - 1)
        return int.from_bytes(struct.pack(self.fmt, value), "little")


def _load_config(path):
    """Reads and checks config.json; every error names the file and the key."""
    try:
        with open(path, "r", encoding="utf-8") as f:
            raw = json.load(f)
    except OSError as exc:
        raise ConfigError("%s: cannot read: %s" % (path, exc.strerror or exc))
    except ValueError as exc:
        raise ConfigError("%s: not valid JSON: %s" % (path, exc))
    if not isinstance(raw, dict):
        raise ConfigError("%s: expected a JSON object at the top level" % path)
    known = {"endpoint", "namespace_uri", "server_name", "poll_ms", "security", "variables"}
    unknown = set(raw) - known
    if unknown:
        raise ConfigError("%s: unknown keys %s" % (path, ", ".join(sorted(unknown))))
    cfg = {
        "endpoint": raw.get("endpoint", DEFAULT_ENDPOINT),
        "namespace_uri": raw.get("namespace_uri", DEFAULT_NAMESPACE),
        "server_name": raw.get("server_name", "openplc-runtime OPC UA example"),
        "poll_ms": raw.get("poll_ms", DEFAULT_POLL_MS),
        "security": raw.get("security", ["None"]),
    }
    if not isinstance(cfg["endpoint"], str) or not cfg["endpoint"].startswith("opc.tcp://"):
        raise ConfigError("%s: endpoint: expected opc.tcp://HOST:PORT/PATH, got %r" % (path, cfg["endpoint"]))
    poll = cfg["poll_ms"]
    if isinstance(poll, bool) or not isinstance(poll, int) or not 10 <= poll <= 60000:
        raise ConfigError("%s: poll_ms: expected 10..60000, got %r" % (path, poll))
    sec = cfg["security"]
    if not isinstance(sec, list) or not sec or any(s not in SECURITY for s in sec):
        raise ConfigError("%s: security: expected a list of %s, got %r" % (path, ", ".join(SECURITY), sec))
    variables = raw.get("variables")
    if not isinstance(variables, list) or not variables:
        raise ConfigError("%s: variables: expected a non-empty list" % path)
    cfg["variables"] = [_variable(path, i, v) for i, v in enumerate(variables)]
    names = [v[0] for v in cfg["variables"]]
    for n in names:
        if names.count(n) > 1:
            raise ConfigError("%s: variables: the name %r is used twice" % (path, n))
    return cfg


def _variable(path, i, v):
    where = "%s: variables[%d]" % (path, i)
    if not isinstance(v, dict):
        raise ConfigError("%s: expected an object" % where)
    unknown = set(v) - {"name", "address", "arr", "elem", "datatype", "writable"}
    if unknown:
        raise ConfigError("%s: unknown keys %s" % (where, ", ".join(sorted(unknown))))
    name = v.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError("%s.name: expected a non-empty string" % where)
    if "address" in v:
        if "arr" in v or "elem" in v:
            raise ConfigError("%s: give either address or arr/elem, not both" % where)
        try:
            arr, elem = oc.debug_address(v["address"])
            addr = oc.parse_address(v["address"])
        except ValueError as exc:
            raise ConfigError("%s.address: %s" % (where, exc))
    else:
        addr = None
        arr, elem = v.get("arr"), v.get("elem")
        for key, val, top in (("arr", arr, 255), ("elem", elem, 65535)):
            if isinstance(val, bool) or not isinstance(val, int) or not 0 <= val <= top:
                raise ConfigError("%s.%s: expected 0..%d, got %r" % (where, key, top, val))
    datatype = v.get("datatype")
    if datatype is not None and datatype not in DATATYPES:
        raise ConfigError("%s.datatype: expected one of %s, got %r" % (where, ", ".join(DATATYPES), datatype))
    writable = v.get("writable", False)
    if not isinstance(writable, bool):
        raise ConfigError("%s.writable: expected true or false" % where)
    return (name, arr, elem, datatype, writable, where, addr)


#: Bytes of one slot of each kind of image table.
_SLOT_BYTES = {"bool": 1, "byte": 1, "int": 2, "dint": 4, "lint": 8}


def _bind(args, cfg, path):
    """Checks every variable: an address against the image's tables (it is read
    and written there, whatever the debugger maps: a PLC program's variables
    when one is loaded), an (arr, elem) against the debugger's arrays."""
    if any(v[6] is None for v in cfg["variables"]) and args.debug_array_count() == 0:
        raise ConfigError(
            "%s: the runtime exposes no debugger arrays (debug_array_count() is 0): "
            "no PLC program loaded, or a runtime without debugger support" % path)
    out = []
    for name, arr, elem, datatype, writable, where, addr in cfg["variables"]:
        if addr is not None:
            table, index, _bit = addr
            if not 0 <= index < args.buffer_size:
                raise ConfigError("%s.address: slot %d is beyond the image's %d slots"
                                  % (where, index, args.buffer_size))
            size = _SLOT_BYTES[oc.TABLES[table][0]]
        else:
            size = args.debug_size(arr, elem)
        if size == 0:
            raise ConfigError("%s: (arr %d, elem %d) does not exist in the runtime "
                              "(%d arrays; array %d has %d elements)"
                              % (where, arr, elem, args.debug_array_count(), arr, args.debug_elem_count(arr)))
        if datatype is None:
            datatype = "BOOL" if arr <= oc.BOOL_MEMORY and size == 1 else DEFAULT_DATATYPE.get(size)
        if datatype is None or DATATYPES[datatype][0] != size:
            raise ConfigError("%s.datatype: %s is not %d byte(s) wide, the size of (arr %d, elem %d)"
                              % (where, datatype, size, arr, elem))
        out.append(Variable(name, arr, elem, datatype, writable, addr))
    return out


def _state_dir(args):
    """Where the plugin may write: the runtime's per-plugin directory, else this
    plugin's own directory (made writable by packaging on a read-only image)."""
    return args.state_dir() or _HERE


class _ServerThread:
    """The asyncua server on a private event loop in a private thread."""

    def __init__(self, args, cfg, variables):
        self._args, self._cfg, self._vars = args, cfg, variables
        self._by_node = {}
        self._loop = None
        self._task = None
        self._stopping = None
        self._ready = threading.Event()
        self._error = None
        self._thread = threading.Thread(target=self._run, name="opcua_server", daemon=True)

    def start(self):
        """Starts the thread; raises if the server failed within START_WAIT_S."""
        self._thread.start()
        if not self._ready.wait(START_WAIT_S):
            self._args.log("info", "opcua_server: still starting; it logs 'listening on' when ready")
            return
        if self._error is not None:
            self._thread.join(JOIN_TIMEOUT_S)
            raise RuntimeError(self._error)

    def stop(self):
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._request_stop)
            except RuntimeError:  # loop closed in between
                pass
        self._thread.join(JOIN_TIMEOUT_S)
        return not self._thread.is_alive()

    def _request_stop(self):
        # Still starting: cancel the start-up (it stops at its next await)
        # rather than wait for a server that would then be stopped at once.
        if not self._ready.is_set() and self._task is not None:
            self._task.cancel()
        elif self._stopping is not None:
            self._stopping.set()

    def _run(self):
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        try:
            self._task = loop.create_task(self._serve())
            loop.run_until_complete(self._task)
        except asyncio.CancelledError:
            self._args.log("info", "opcua_server: start-up cancelled by stop_loop")
        except Exception as exc:
            self._error = "opcua_server: server thread failed: %s: %s" % (type(exc).__name__, exc)
        finally:
            if self._error is not None:
                self._args.log("error", self._error)
            try:
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

    async def _certificates(self, server):
        """Creates (first start) and loads the server's key and certificate."""
        from pathlib import Path

        from asyncua.crypto.cert_gen import setup_self_signed_certificate
        from cryptography.x509.oid import ExtendedKeyUsageOID

        certs = os.path.join(_state_dir(self._args), "certs")
        os.makedirs(certs, mode=0o700, exist_ok=True)
        key, cert = Path(certs, "server_key.pem"), Path(certs, "server_cert.der")
        host = self._cfg["endpoint"].split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)[0]
        await setup_self_signed_certificate(
            key, cert, self._cfg["namespace_uri"], host,
            [ExtendedKeyUsageOID.SERVER_AUTH], {"commonName": self._cfg["server_name"]})
        os.chmod(key, 0o600)
        await server.load_certificate(str(cert))
        await server.load_private_key(str(key))
        self._args.log("info", "opcua_server: server certificate %s" % cert)

    async def _serve(self):
        self._stopping = asyncio.Event()
        server = Server()
        await server.init()
        server.set_endpoint(self._cfg["endpoint"])
        server.set_server_name(self._cfg["server_name"])
        policies = [SECURITY[s] for s in self._cfg["security"]]
        server.set_security_policy(policies)
        if any(p != ua.SecurityPolicyType.NoSecurity for p in policies):
            await self._certificates(server)
        idx = await server.register_namespace(self._cfg["namespace_uri"])
        plc = await server.nodes.objects.add_object(idx, "PLC")
        for v in self._vars:
            raw = self._args.debug_get(v.arr, v.elem)
            v.last = v.from_raw(raw or 0)
            v.node = await plc.add_variable(ua.NodeId(v.name, idx), v.name, ua.Variant(v.last, v.vtype))
            if v.writable:
                await v.node.set_writable()
            self._by_node[v.node.nodeid] = v
        server.subscribe_server_callback(CallbackType.PostWrite, self._client_wrote)
        try:
            await server.start()
        except OSError as exc:
            self._error = "opcua_server: cannot listen on %s: %s" % (self._cfg["endpoint"], exc.strerror or exc)
            return
        try:
            self._ready.set()
            self._args.log("info", "opcua_server: listening on %s" % self._cfg["endpoint"])
            period = self._cfg["poll_ms"] / 1000.0
            while not self._stopping.is_set():
                await self._poll(server)
                try:
                    await asyncio.wait_for(self._stopping.wait(), period)
                except asyncio.TimeoutError:
                    pass
        finally:
            await server.stop()

    async def _poll(self, server):
        """PLC -> OPC UA: pushes the values that changed since the last poll."""
        for v in self._vars:
            if v.addr is not None:
                with self._args.image_locked():
                    raw = self._args.read(*v.addr)
            else:
                raw = self._args.debug_get(v.arr, v.elem)
            if raw is None:
                continue
            value = v.from_raw(raw)
            if value != v.last:
                v.last = value
                await server.write_attribute_value(v.node.nodeid, ua.DataValue(ua.Variant(value, v.vtype)))

    def _client_wrote(self, event, _dispatcher):
        """OPC UA -> PLC: a client's accepted Write of a writable variable."""
        if not event.is_external:
            return
        results = event.response_params or []
        for i, wv in enumerate(event.request_params.NodesToWrite):
            v = self._by_node.get(wv.NodeId)
            if v is None or not v.writable or wv.AttributeId != ua.AttributeIds.Value:
                continue
            if i < len(results) and not results[i].is_good():
                continue
            value = wv.Value.Value.Value
            if v.addr is not None:
                table, index, bit = v.addr
                rc = self._args.write(table, index, v.to_raw(value), bit)
                if rc == 0:
                    v.last = v.from_raw(v.to_raw(value))
                else:
                    self._args.log("warn", "opcua_server: %s: the journal refused the write (%d); the PLC keeps its value"
                                   % (v.name, rc))
                continue
            status = self._args.debug_put(v.arr, v.elem, v.to_raw(value))
            if status == oc.DEBUG_STATUS_OK:
                v.last = v.from_raw(v.to_raw(value))
            else:
                self._args.log("warn", "opcua_server: %s: debug_write(%d, %d) answered %#x; the PLC keeps its value"
                               % (v.name, v.arr, v.elem, status))


def init(args):
    """Called once by the runtime with the ``openplc_runtime_args`` capsule."""
    global _args, _cfg
    _args = oc.RuntimeArgs.from_capsule(args)
    path = _args.config_path_or(DEFAULT_CONFIG)
    cfg = _load_config(path)
    cfg["bound"] = _bind(_args, cfg, path)
    _cfg = cfg
    _args.log("info", "opcua_server: loaded %s; %d variable(s), state in %s"
              % (path, len(cfg["bound"]), _state_dir(_args)))


def start_loop():
    global _server
    if _server is not None:
        return
    server = _ServerThread(_args, _cfg, _cfg["bound"])
    try:
        server.start()
    except Exception as exc:
        _args.log("error", str(exc))
        raise
    _server = server


def stop_loop():
    global _server
    if _server is None:
        return
    stopped = _server.stop()
    _server = None
    if stopped:
        _args.log("info", "opcua_server: stopped")
    else:
        _args.log("error", "opcua_server: server thread did not stop within %g s" % JOIN_TIMEOUT_S)


def cleanup():
    global _args
    stop_loop()
    # The capsule is only valid until cleanup() returns: drop every reference to it.
    _args = None
