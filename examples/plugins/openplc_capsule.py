"""ctypes mirror of the runtime-args struct behind the ``openplc_runtime_args`` capsule.

A Python plugin's ``init(args)`` receives a PyCapsule named ``openplc_runtime_args``
that wraps a pointer to a C struct (the OpenPLC Runtime v4.1.4 layout, natural C
alignment). This module describes that struct with ctypes types only -- no
hard-coded offsets -- so the same file works on 64-bit (x86_64, aarch64) and 32-bit
(armv7) targets, and adds small helpers on top of it:

    args = openplc_capsule.RuntimeArgs.from_capsule(capsule)
    args.log("info", "hello")
    with args.image_locked():
        value = args.read("int_input", 3)
    args.write(openplc_capsule.INT_OUTPUT, 3, 1234)

The openplc-runtime appends an *extension block* (magic, version, size, and from
version 2 the plugin's writable state directory) after the OpenPLC fields so that a
plugin can tell which layout it was given; OpenPLC itself broke this layout silently
twice. A plugin written for plain OpenPLC never looks at it;
:meth:`RuntimeArgs.has_extension` tells whether it is there and
:meth:`RuntimeArgs.state_dir` where the plugin may write.

The debugger callbacks (``debug_read``, ``debug_write``, ...) address the image as
``(arr, elem)``: ``arr`` is the table's journal type code, ``elem`` the slot (bool
tables: ``slot * 8 + bit``). :func:`debug_address` turns ``"%QX0.1"`` into ``(1, 1)``;
:meth:`RuntimeArgs.debug_get` / :meth:`RuntimeArgs.debug_put` read and write one
element.

Reading the image: each table is an array of ``buffer_size`` pointers to the value
(bool tables: ``[8]`` pointers per slot, one per bit). On plain OpenPLC a slot whose
location the PLC program does not use may be NULL, so the readers return ``None``
for such a slot instead of crashing. Take :meth:`RuntimeArgs.image_locked` around
reads that must be consistent with one scan cycle.

Writing the image: never store through the table pointers. Writes go through the
journal (``journal_write_*``), which the scan loop applies before its next cycle;
the last write to a location wins. :meth:`RuntimeArgs.write` picks the right journal
function for a type code.

Dependency-free (stdlib ``ctypes`` only); works on CPython 3.9-3.13.
"""

import contextlib
import ctypes
import os
import re
from ctypes import (
    CFUNCTYPE,
    POINTER,
    Structure,
    c_bool,
    c_char,
    c_char_p,
    c_int,
    c_uint,
    c_uint8,
    c_uint16,
    c_uint32,
    c_uint64,
    c_ulonglong,
    c_void_p,
    py_object,
)

__all__ = [
    "CAPSULE_NAME",
    "EXT_MAGIC",
    "EXT_VERSION",
    "CONFIG_PATH_LEN",
    "BITS_PER_SLOT",
    "BOOL_INPUT",
    "BOOL_OUTPUT",
    "BOOL_MEMORY",
    "BYTE_INPUT",
    "BYTE_OUTPUT",
    "INT_INPUT",
    "INT_OUTPUT",
    "INT_MEMORY",
    "DINT_INPUT",
    "DINT_OUTPUT",
    "DINT_MEMORY",
    "LINT_INPUT",
    "LINT_OUTPUT",
    "LINT_MEMORY",
    "BOOL_IN",
    "BOOL_OUT",
    "BOOL_MEM",
    "BYTE_IN",
    "BYTE_OUT",
    "INT_IN",
    "INT_OUT",
    "INT_MEM",
    "DINT_IN",
    "DINT_OUT",
    "DINT_MEM",
    "LINT_IN",
    "LINT_OUT",
    "LINT_MEM",
    "JOURNAL_TYPE_NAMES",
    "TABLES",
    "LOG_LEVELS",
    "RuntimeArgs",
    "BoolTable",
    "ByteTable",
    "IntTable",
    "DintTable",
    "LintTable",
    "ImageLockFn",
    "DebugArrayCountFn",
    "DebugElemCountFn",
    "DebugSizeFn",
    "DebugReadFn",
    "DebugSetFn",
    "DebugWriteFn",
    "LogFn",
    "JournalWriteBoolFn",
    "JournalWriteByteFn",
    "JournalWriteIntFn",
    "JournalWriteDintFn",
    "JournalWriteLintFn",
    "RequestPlcStopFn",
    "parse_address",
    "format_address",
    "debug_address",
    "STATE_DIR_ENV",
    "STATE_DIR_LEN",
    "DEBUG_STATUS_OK",
    "DEBUG_STATUS_OUT_OF_BOUNDS",
    "DEBUG_STATUS_DATA_TOO_LARGE",
]

#: Name of the PyCapsule handed to ``init(args)``; PyCapsule_GetPointer checks it.
CAPSULE_NAME = b"openplc_runtime_args"

#: ``ext_magic`` value of the openplc-runtime extension block ("OPLC" as a big-endian u32).
EXT_MAGIC = 0x4F504C43
#: Extension layout version this module understands (newer versions only append).
#: 1: magic, version, size. 2: + ``plugin_state_dir``.
EXT_VERSION = 2
#: Size of ``plugin_state_dir`` in the extension block (255 bytes + NUL).
STATE_DIR_LEN = 256
#: Environment variable holding the state directory in a worker process
#: (``--isolation process``); not set in shared isolation (one process, one
#: environment for all plugins): use :meth:`RuntimeArgs.state_dir`.
STATE_DIR_ENV = "OPENPLC_PLUGIN_STATE_DIR"

#: Status codes of ``debug_write`` / ``debug_set`` (OpenPLC v4's).
DEBUG_STATUS_OK = 0x7E
#: No such ``arr``/``elem``; also ``debug_set``'s answer: forcing is not supported.
DEBUG_STATUS_OUT_OF_BOUNDS = 0x81
#: The value's length is not the element's size.
DEBUG_STATUS_DATA_TOO_LARGE = 0x82

#: Size of ``plugin_specific_config_file_path`` in the C struct (OpenPLC: 256 bytes).
CONFIG_PATH_LEN = 256
#: Pointers per slot in a bool table (one per bit of a byte).
BITS_PER_SLOT = 8

# --------------------------------------------------------------------------------------
# Journal type codes (OpenPLC's journal_buffer_type_t). The first argument of every
# journal_write_* callback.
# --------------------------------------------------------------------------------------
BOOL_INPUT = 0
BOOL_OUTPUT = 1
BOOL_MEMORY = 2
BYTE_INPUT = 3
BYTE_OUTPUT = 4
INT_INPUT = 5
INT_OUTPUT = 6
INT_MEMORY = 7
DINT_INPUT = 8
DINT_OUTPUT = 9
DINT_MEMORY = 10
LINT_INPUT = 11
LINT_OUTPUT = 12
LINT_MEMORY = 13

# Short aliases matching the names used in OpenPLC's documentation.
BOOL_IN, BOOL_OUT, BOOL_MEM = BOOL_INPUT, BOOL_OUTPUT, BOOL_MEMORY
BYTE_IN, BYTE_OUT = BYTE_INPUT, BYTE_OUTPUT
INT_IN, INT_OUT, INT_MEM = INT_INPUT, INT_OUTPUT, INT_MEMORY
DINT_IN, DINT_OUT, DINT_MEM = DINT_INPUT, DINT_OUTPUT, DINT_MEMORY
LINT_IN, LINT_OUT, LINT_MEM = LINT_INPUT, LINT_OUTPUT, LINT_MEMORY

#: Journal type code -> image-table field name.
JOURNAL_TYPE_NAMES = {
    BOOL_INPUT: "bool_input",
    BOOL_OUTPUT: "bool_output",
    BOOL_MEMORY: "bool_memory",
    BYTE_INPUT: "byte_input",
    BYTE_OUTPUT: "byte_output",
    INT_INPUT: "int_input",
    INT_OUTPUT: "int_output",
    INT_MEMORY: "int_memory",
    DINT_INPUT: "dint_input",
    DINT_OUTPUT: "dint_output",
    DINT_MEMORY: "dint_memory",
    LINT_INPUT: "lint_input",
    LINT_OUTPUT: "lint_output",
    LINT_MEMORY: "lint_memory",
}

#: Image-table field name -> (value kind, journal type code).
#: The kind is one of "bool", "byte", "int", "dint", "lint".
TABLES = {name: (name.split("_")[0], code) for code, name in JOURNAL_TYPE_NAMES.items()}

# --------------------------------------------------------------------------------------
# C types of the struct members.
# --------------------------------------------------------------------------------------
#: ``uint8_t *(*)[8]`` -- a bool table: pointer to arrays of 8 pointers to a byte.
BoolTable = POINTER(POINTER(c_uint8) * BITS_PER_SLOT)
#: ``uint8_t **`` -- a byte table.
ByteTable = POINTER(POINTER(c_uint8))
#: ``uint16_t **`` -- an INT/WORD table.
IntTable = POINTER(POINTER(c_uint16))
#: ``uint32_t **`` -- a DINT/DWORD table.
DintTable = POINTER(POINTER(c_uint32))
#: ``uint64_t **`` -- a LINT/LWORD table.
LintTable = POINTER(POINTER(c_uint64))

# CFUNCTYPE (not PYFUNCTYPE): ctypes releases the GIL for the duration of the call, so
# a plugin thread blocked in image_lock() does not stall the other Python threads.
ImageLockFn = CFUNCTYPE(None)
DebugArrayCountFn = CFUNCTYPE(c_uint8)
DebugElemCountFn = CFUNCTYPE(c_uint16, c_uint8)
DebugSizeFn = CFUNCTYPE(c_uint16, c_uint8, c_uint16)
DebugReadFn = CFUNCTYPE(c_uint16, c_uint8, c_uint16, POINTER(c_uint8))
DebugSetFn = CFUNCTYPE(c_uint8, c_uint8, c_uint16, c_bool, POINTER(c_uint8), c_uint16)
DebugWriteFn = CFUNCTYPE(c_uint8, c_uint8, c_uint16, POINTER(c_uint8), c_uint16)
#: ``void (*)(const char *)``. OpenPLC declares these variadic (printf-style); the
#: fixed first argument is passed the same way on the ABIs this runs on.
LogFn = CFUNCTYPE(None, c_char_p)
JournalWriteBoolFn = CFUNCTYPE(c_int, c_int, c_int, c_int, c_int)
JournalWriteByteFn = CFUNCTYPE(c_int, c_int, c_int, c_int)
JournalWriteIntFn = CFUNCTYPE(c_int, c_int, c_int, c_int)
JournalWriteDintFn = CFUNCTYPE(c_int, c_int, c_int, c_uint)
JournalWriteLintFn = CFUNCTYPE(c_int, c_int, c_int, c_ulonglong)
RequestPlcStopFn = CFUNCTYPE(None, c_char_p)

_KIND_TO_VALUE_BITS = {"bool": 1, "byte": 8, "int": 16, "dint": 32, "lint": 64}

#: Accepted ``level`` values of :meth:`RuntimeArgs.log` -> struct field.
LOG_LEVELS = {
    "debug": "log_debug",
    "info": "log_info",
    "warn": "log_warn",
    "warning": "log_warn",
    "error": "log_error",
}


class RuntimeArgs(Structure):
    """The runtime-args struct (OpenPLC v4.1.4 layout + openplc-runtime extension).

    Instances are views onto memory owned by the runtime; get one with
    :meth:`from_capsule`. The memory stays valid until the plugin's ``cleanup()`` has
    returned, so do not keep using it after that.
    """

    _fields_ = [
        # 1. Image tables, in OpenPLC's order (bool_memory last: it was added later).
        ("bool_input", BoolTable),
        ("bool_output", BoolTable),
        ("byte_input", ByteTable),
        ("byte_output", ByteTable),
        ("int_input", IntTable),
        ("int_output", IntTable),
        ("dint_input", DintTable),
        ("dint_output", DintTable),
        ("lint_input", LintTable),
        ("lint_output", LintTable),
        ("int_memory", IntTable),
        ("dint_memory", DintTable),
        ("lint_memory", LintTable),
        ("bool_memory", BoolTable),
        # 2. Image lock, taken around reads.
        ("image_lock", ImageLockFn),
        ("image_unlock", ImageLockFn),
        # 3. Debugger access (may report 0 arrays).
        ("debug_array_count", DebugArrayCountFn),
        ("debug_elem_count", DebugElemCountFn),
        ("debug_size", DebugSizeFn),
        ("debug_read", DebugReadFn),
        ("debug_set", DebugSetFn),
        ("debug_write", DebugWriteFn),
        # 4. The config_path field of plugins.conf, NUL-terminated.
        ("plugin_specific_config_file_path", c_char * CONFIG_PATH_LEN),
        # 5. Table geometry.
        ("buffer_size", c_int),
        ("bits_per_buffer", c_int),
        # 6. Logging.
        ("log_info", LogFn),
        ("log_debug", LogFn),
        ("log_warn", LogFn),
        ("log_error", LogFn),
        # 7. Journal writes: 0 = accepted, non-zero = rejected or journal full.
        ("journal_write_bool", JournalWriteBoolFn),
        ("journal_write_byte", JournalWriteByteFn),
        ("journal_write_int", JournalWriteIntFn),
        ("journal_write_dint", JournalWriteDintFn),
        ("journal_write_lint", JournalWriteLintFn),
        # 8. Ask the runtime to stop the PLC.
        ("request_plc_stop", RequestPlcStopFn),
        # 9. Scan period.
        ("base_tick_ns", c_ulonglong),
        # openplc-runtime extension (absent on plain OpenPLC).
        ("ext_magic", c_uint32),
        ("ext_version", c_uint32),
        ("ext_size", c_uint32),
        ("ext_reserved", c_uint32),
        # ext_version 2: the plugin's writable directory, NUL-terminated ("" = none).
        ("plugin_state_dir", c_char * STATE_DIR_LEN),
    ]

    # ----------------------------------------------------------------------------------
    # Construction
    # ----------------------------------------------------------------------------------
    @classmethod
    def from_capsule(cls, capsule):
        """Return the struct behind ``capsule`` (the object passed to ``init``).

        Raises ``TypeError`` if ``capsule`` is not a PyCapsule and ``ValueError`` if
        it carries another name or a NULL pointer. The returned view keeps a
        reference to the capsule so that the capsule outlives it.
        """
        if not _capsule_is_valid(capsule):
            raise TypeError(
                "expected a PyCapsule named %r, got %s"
                % (CAPSULE_NAME.decode(), type(capsule).__name__)
            )
        address = _capsule_get_pointer(capsule, CAPSULE_NAME)
        if not address:
            raise ValueError("capsule %r holds a NULL pointer" % CAPSULE_NAME.decode())
        args = cls.from_address(address)
        args._capsule = capsule
        return args

    # ----------------------------------------------------------------------------------
    # Layout / extension
    # ----------------------------------------------------------------------------------
    def has_extension(self):
        """True if the openplc-runtime extension block is present and complete.

        On plain OpenPLC the bytes after ``base_tick_ns`` are not part of the
        struct; the magic number makes a false positive practically impossible.
        Version 1 blocks (older runtimes) count as present; fields of later
        versions are read only when ``ext_version`` and ``ext_size`` cover them.
        """
        return (self.ext_magic == EXT_MAGIC
                and self.ext_size >= RuntimeArgs.plugin_state_dir.offset)

    def state_dir(self):
        """The plugin's writable directory, ``""`` if the runtime gives none.

        The openplc-runtime creates ``<state>/plugins/<name>/`` (``$STATE_DIRECTORY``,
        normally ``/var/lib/openplc``; mode 0750) before ``init`` and passes it in the
        extension block (every isolation mode). Without the block (plain OpenPLC, an
        older runtime) the ``OPENPLC_PLUGIN_STATE_DIR`` environment variable is used
        if set. The root filesystem may be read-only: write here, not next to the
        plugin's own files.
        """
        if (self.has_extension() and self.ext_version >= 2
                and self.ext_size >= ctypes.sizeof(RuntimeArgs)):
            return self.plugin_state_dir.decode("utf-8", errors="surrogateescape")
        return os.environ.get(STATE_DIR_ENV, "")

    # ----------------------------------------------------------------------------------
    # Debugger access: (arr, elem) addressing, as OpenPLC's OPC UA plugin uses it
    # ----------------------------------------------------------------------------------
    def debug_get(self, arr, elem):
        """Read element ``(arr, elem)`` through ``debug_read``: an unsigned ``int``, or
        ``None`` when the runtime has no such element (``debug_read`` answered 0).
        Takes the image lock itself: do not call it while holding it."""
        # With a PLC program loaded a STRING element is 127 bytes: the buffer
        # must hold debug_size() bytes, whatever the element.
        buf = (c_uint8 * max(8, self.debug_size(arr, elem)))()
        n = self.debug_read(arr, elem, ctypes.cast(buf, POINTER(c_uint8)))
        if n == 0 or n > 8:
            return None
        return int.from_bytes(bytes(buf[:n]), "little")

    def debug_put(self, arr, elem, value):
        """Write ``value`` (an int, masked to the element's width) to ``(arr, elem)``
        through ``debug_write``; returns its status (``DEBUG_STATUS_OK`` = stored).
        The value is in the image at once (the next read and scan cycle see it)."""
        size = self.debug_size(arr, elem)
        if size == 0:
            return DEBUG_STATUS_OUT_OF_BOUNDS
        raw = (int(value) & ((1 << (8 * size)) - 1)).to_bytes(size, "little")
        buf = (c_uint8 * size).from_buffer_copy(raw)
        return self.debug_write(arr, elem, ctypes.cast(buf, POINTER(c_uint8)), size)

    def extension(self):
        """``(ext_version, ext_size)`` if the extension is present, else ``None``."""
        if not self.has_extension():
            return None
        return (self.ext_version, self.ext_size)

    def config_path(self):
        """The plugin's config file path (the config_path field), ``""`` if none."""
        return self.plugin_specific_config_file_path.decode("utf-8", errors="replace")

    def config_path_or(self, default):
        """:meth:`config_path`, or ``default`` when plugins.conf gave no config_path."""
        return self.config_path() or default

    def scan_period_s(self):
        """The runtime's scan period in seconds (``base_tick_ns`` / 1e9)."""
        return self.base_tick_ns / 1e9

    # ----------------------------------------------------------------------------------
    # Image access
    # ----------------------------------------------------------------------------------
    @contextlib.contextmanager
    def image_locked(self):
        """Context manager holding the image lock (``image_lock`` / ``image_unlock``).

        Keep the locked section short: the scan loop waits for it.
        """
        self.image_lock()
        try:
            yield self
        finally:
            self.image_unlock()

    def read(self, table, index, bit=None):
        """Read one location of an image table.

        ``table`` is a field name (``"int_input"``, ``"bool_output"``, ...) or a
        journal type code. For bool tables ``bit`` (0-7) is required; for the others
        it must be ``None``. Returns an ``int`` (0/1 for bools), or ``None`` if the
        slot is not mapped (NULL pointer, possible on plain OpenPLC). Raises
        ``IndexError`` outside ``0 <= index < buffer_size`` and ``KeyError`` for an
        unknown table. Does not take the image lock.
        """
        name, kind = _resolve_table(table)
        self._check_index(name, index)
        slots = getattr(self, name)
        if not slots:
            return None
        if kind == "bool":
            if bit is None or not 0 <= bit < BITS_PER_SLOT:
                raise IndexError("%s: bit must be 0..%d, got %r" % (name, BITS_PER_SLOT - 1, bit))
            ptr = slots[index][bit]
            return (ptr[0] & 1) if ptr else None
        if bit is not None:
            raise TypeError("%s is not a bool table: bit must be None" % name)
        ptr = slots[index]
        return ptr[0] if ptr else None

    def read_many(self, table, start, count):
        """Read ``count`` consecutive locations starting at ``start``.

        For word tables (byte/int/dint/lint) the locations are slots. For bool tables
        they are *flat bit addresses* ``slot * 8 + bit`` (the Modbus coil numbering),
        bounded by ``buffer_size * 8``. Unmapped locations read as ``None``.
        Does not take the image lock.
        """
        name, kind = _resolve_table(table)
        if count < 0:
            raise ValueError("count must be >= 0")
        limit = self.buffer_size * (BITS_PER_SLOT if kind == "bool" else 1)
        if start < 0 or start + count > limit:
            raise IndexError(
                "%s: locations %d..%d outside 0..%d" % (name, start, start + count - 1, limit - 1)
            )
        slots = getattr(self, name)
        if not slots:
            return [None] * count
        values = []
        for location in range(start, start + count):
            if kind == "bool":
                ptr = slots[location // BITS_PER_SLOT][location % BITS_PER_SLOT]
                values.append((ptr[0] & 1) if ptr else None)
            else:
                ptr = slots[location]
                values.append(ptr[0] if ptr else None)
        return values

    def write(self, type_code, index, value, bit=None):
        """Queue a write through the journal; returns the callback's int (0 = ok).

        ``type_code`` is one of the journal type constants (``INT_OUTPUT`` ...) or a
        table name. For bool types ``bit`` (0-7) is required. ``value`` is masked
        to the width of the location (so ``-1`` writes 0xFFFF to an INT). The value
        becomes visible in the image after the scan loop applied the journal.
        """
        if isinstance(type_code, str):
            if type_code not in TABLES:
                raise KeyError("unknown image table %r" % type_code)
            type_code = TABLES[type_code][1]
        if type_code not in JOURNAL_TYPE_NAMES:
            raise KeyError("unknown journal type code %r" % type_code)
        name = JOURNAL_TYPE_NAMES[type_code]
        kind = TABLES[name][0]
        self._check_index(name, index)
        value = int(value) & ((1 << _KIND_TO_VALUE_BITS[kind]) - 1)
        if kind == "bool":
            if bit is None or not 0 <= bit < BITS_PER_SLOT:
                raise IndexError("%s: bit must be 0..%d, got %r" % (name, BITS_PER_SLOT - 1, bit))
            return self.journal_write_bool(type_code, index, bit, value)
        if bit is not None:
            raise TypeError("%s is not a bool table: bit must be None" % name)
        return getattr(self, "journal_write_" + kind)(type_code, index, value)

    def _check_index(self, name, index):
        if not 0 <= index < self.buffer_size:
            raise IndexError("%s: index %r outside 0..%d" % (name, index, self.buffer_size - 1))

    # ----------------------------------------------------------------------------------
    # Logging and control
    # ----------------------------------------------------------------------------------
    def log(self, level, msg):
        """Log ``msg`` (any object, converted with ``str``) at ``level``.

        ``level`` is "debug", "info", "warn"/"warning" or "error". The message is
        encoded to UTF-8. The openplc-runtime treats the message as plain text; plain
        OpenPLC passes it to a printf-style function, so there (no extension block)
        ``%`` is doubled to be printed literally.
        """
        try:
            field = LOG_LEVELS[level]
        except KeyError:
            raise ValueError("unknown log level %r (use one of %s)" % (level, sorted(LOG_LEVELS)))
        text = str(msg)
        if not self.has_extension():
            text = text.replace("%", "%%")
        fn = getattr(self, field)
        if fn:
            fn(text.encode("utf-8", errors="replace").replace(b"\0", b"\\0"))

    def stop_plc(self, reason):
        """Ask the runtime to stop the PLC (``request_plc_stop``), giving a reason."""
        if self.request_plc_stop:
            self.request_plc_stop(str(reason).encode("utf-8", errors="replace"))


# --------------------------------------------------------------------------------------
# Capsule access through the C API (ctypes.pythonapi holds the GIL and raises the
# Python error a failing call leaves set).
# --------------------------------------------------------------------------------------
_capsule_get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
_capsule_get_pointer.restype = c_void_p
_capsule_get_pointer.argtypes = [py_object, c_char_p]

_capsule_is_valid_fn = ctypes.pythonapi.PyCapsule_IsValid
_capsule_is_valid_fn.restype = c_int
_capsule_is_valid_fn.argtypes = [py_object, c_char_p]


def _capsule_is_valid(obj):
    return type(obj).__name__ == "PyCapsule" and _capsule_is_valid_fn(obj, CAPSULE_NAME) == 1


# IEC 61131-3 located-variable prefixes (%IX0.0, %QW3, %MD1 ...) of each table.
_AREA = {"I": "input", "Q": "output", "M": "memory"}
_SIZE = {"X": "bool", "B": "byte", "W": "int", "D": "dint", "L": "lint"}
_ADDRESS_RE = re.compile(r"^%([IQM])([XBWDL])(\d+)(?:\.([0-7]))?$")


def parse_address(text):
    """Parse an IEC located address into ``(table, index, bit)``.

    ``"%IW3"`` -> ``("int_input", 3, None)``, ``"%QX0.5"`` -> ``("bool_output", 0, 5)``,
    ``"%MD2"`` -> ``("dint_memory", 2, None)``. Bool addresses (``X``) need the
    ``.bit`` part, the others must not have it. Raises ``ValueError`` otherwise,
    and for tables OpenPLC does not have (``%MB``: no byte memory).
    """
    match = _ADDRESS_RE.match(text.strip().upper()) if isinstance(text, str) else None
    if match is None:
        raise ValueError("%r is not an IEC address like %%IW0 or %%QX0.1" % (text,))
    area, size, index, bit = match.groups()
    kind = _SIZE[size]
    if (kind == "bool") != (bit is not None):
        raise ValueError("%r: a bit number (.0-.7) goes with X addresses only, and they need one" % text)
    table = "%s_%s" % (kind, _AREA[area])
    if table not in TABLES:
        raise ValueError("%r: OpenPLC has no %s table" % (text, table))
    return table, int(index), (int(bit) if bit is not None else None)


def format_address(table, index, bit=None):
    """Inverse of :func:`parse_address`: ``("int_input", 3)`` -> ``"%IW3"``."""
    name, kind = _resolve_table(table)
    area = {v: k for k, v in _AREA.items()}[name.split("_")[1]]
    size = {v: k for k, v in _SIZE.items()}[kind]
    suffix = ".%d" % bit if kind == "bool" else ""
    return "%%%s%s%d%s" % (area, size, index, suffix)


def debug_address(text):
    """An IEC address as the debugger's ``(arr, elem)``: ``arr`` is the table's
    journal type code, ``elem`` the slot, or ``slot * 8 + bit`` for bool tables.

    ``"%IW0"`` -> ``(5, 0)``, ``"%QX0.1"`` -> ``(1, 1)``, ``"%MD2"`` -> ``(10, 2)``.
    """
    table, index, bit = parse_address(text)
    code = TABLES[table][1]
    return code, (index * BITS_PER_SLOT + bit) if bit is not None else index


def _resolve_table(table):
    """Table name or journal type code -> (field name, kind)."""
    if isinstance(table, int) and not isinstance(table, bool):
        if table not in JOURNAL_TYPE_NAMES:
            raise KeyError("unknown journal type code %r" % table)
        table = JOURNAL_TYPE_NAMES[table]
    if table not in TABLES:
        raise KeyError("unknown image table %r (known: %s)" % (table, ", ".join(TABLES)))
    return table, TABLES[table][0]


# --------------------------------------------------------------------------------------
# Layout self-check. A wrong field type shifts everything after it; the runtime's C/Rust
# side is built from the same numbers, so fail at import rather than read garbage.
# Not `assert`: that disappears under `python -O`.
# --------------------------------------------------------------------------------------
_EXPECTED_LAYOUT = {
    # pointer size: (offset of base_tick_ns, offset of ext_magic, sizeof)
    8: (520, 528, 800),  # x86_64, aarch64
    4: (392, 400, 672),  # armv7 (EABI: 8-byte aligned u64), i386
}


def _check_layout():
    expected = _EXPECTED_LAYOUT.get(ctypes.sizeof(c_void_p))
    if expected is None:
        raise ImportError("openplc_capsule: unsupported pointer size %d" % ctypes.sizeof(c_void_p))
    actual = (RuntimeArgs.base_tick_ns.offset, RuntimeArgs.ext_magic.offset, ctypes.sizeof(RuntimeArgs))
    if actual != expected:
        raise ImportError(
            "openplc_capsule: RuntimeArgs layout mismatch: (base_tick_ns, ext_magic, size) = %r, expected %r"
            % (actual, expected)
        )


_check_layout()
