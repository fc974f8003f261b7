"""An OPC UA client the qemu-system tier runs in the guest, with the opcua_server
example's venv (asyncua is there):

    /usr/lib/openplc/venvs/opcua_server/bin/python3 -I -B opcua_read.py \
        ENDPOINT NAMESPACE_URI GAP_S NAME... [NAME=INTEGER...]

Connects (security None), reads each variable NAME of the namespace (the
example's string node ids, ns=<index of NAMESPACE_URI>), waits GAP_S seconds
and reads them again; then writes each NAME=INTEGER (as the node's own data
type). Prints one JSON object on stdout: {"first": {NAME: value}, "second":
{NAME: value}, "wrote": {NAME: value}, "connect_s": s, "read_s": s}.
Exits 1 with the reason on stderr when the server cannot be reached or a node
cannot be read.
"""

import asyncio
import json
import sys
import time

from asyncua import Client, ua

TIMEOUT_S = 30


async def _read(client, idx, names):
    out = {}
    for name in names:
        out[name] = await client.get_node(ua.NodeId(name, idx)).read_value()
    return out


async def _write(client, idx, writes):
    for name, value in writes.items():
        node = client.get_node(ua.NodeId(name, idx))
        vtype = await node.read_data_type_as_variant_type()
        await node.write_value(ua.DataValue(ua.Variant(value, vtype)))
    return writes


async def _main(endpoint, uri, gap, names, writes):
    t0 = time.monotonic()
    client = Client(endpoint, timeout=TIMEOUT_S)
    async with client:
        t1 = time.monotonic()
        idx = await client.get_namespace_index(uri)
        first = await _read(client, idx, names)
        t2 = time.monotonic()
        await asyncio.sleep(gap)
        second = await _read(client, idx, names)
        wrote = await _write(client, idx, writes)
    return {"first": first, "second": second, "wrote": wrote,
            "connect_s": round(t1 - t0, 3), "read_s": round(t2 - t1, 3)}


def main(argv):
    if len(argv) < 5:
        print("usage: opcua_read.py ENDPOINT NAMESPACE_URI GAP_S NAME... [NAME=INTEGER...]", file=sys.stderr)
        return 2
    endpoint, uri, gap = argv[1], argv[2], float(argv[3])
    names = [a for a in argv[4:] if "=" not in a]
    writes = {a.split("=", 1)[0]: int(a.split("=", 1)[1]) for a in argv[4:] if "=" in a}
    try:
        result = asyncio.run(_main(endpoint, uri, gap, names, writes))
    except Exception as exc:
        print("opcua_read.py: %s: %s: %s" % (endpoint, type(exc).__name__, exc), file=sys.stderr)
        return 1
    print(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
