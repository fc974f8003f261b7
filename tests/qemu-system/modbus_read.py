"""A tiny Modbus/TCP client (stdlib only) the qemu-system tier runs in the guest.

    python3 -I -B modbus_read.py ir START COUNT        read input registers (FC 4)
    python3 -I -B modbus_read.py hr START COUNT        read holding registers (FC 3)
    python3 -I -B modbus_read.py di START COUNT        read discrete inputs (FC 2)
    python3 -I -B modbus_read.py co START COUNT        read coils (FC 1)
    python3 -I -B modbus_read.py write-hr ADDR VALUE   write one holding register (FC 6)
    python3 -I -B modbus_read.py multi KIND:START:COUNT...
                                                       several reads back to back (KIND: ir, hr,
                                                       di, co), a JSON list of their value lists

Prints the values as a JSON list (the written value for write-hr); exits 1 with the
reason on an exception response or a malformed reply. Unit id 1, the
modbus_server example's address 127.0.0.1:5020 unless --port is given.
"""

import json
import socket
import struct
import sys

HOST = "127.0.0.1"
UNIT = 1
TIMEOUT_S = 5.0


def _recv_exactly(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("connection closed after %d of %d bytes" % (len(data), n))
        data += chunk
    return data


def request(port, function, payload, tid=1):
    pdu = bytes([function]) + payload
    adu = struct.pack(">HHHB", tid, 0, len(pdu) + 1, UNIT) + pdu
    with socket.create_connection((HOST, port), timeout=TIMEOUT_S) as sock:
        sock.sendall(adu)
        r_tid, proto, length, _unit = struct.unpack(">HHHB", _recv_exactly(sock, 7))
        body = _recv_exactly(sock, length - 1)
    if r_tid != tid or proto != 0:
        raise ValueError("reply with transaction %d protocol %d" % (r_tid, proto))
    if body[0] == function | 0x80:
        raise ValueError("exception response %d to function %d" % (body[1], function))
    if body[0] != function:
        raise ValueError("reply to function %d, asked %d" % (body[0], function))
    return body[1:]


def read_registers(port, function, start, count):
    body = request(port, function, struct.pack(">HH", start, count))
    if body[0] != 2 * count:
        raise ValueError("%d bytes of registers, wanted %d" % (body[0], 2 * count))
    return list(struct.unpack(">%dH" % count, body[1:1 + 2 * count]))


def read_bits(port, function, start, count):
    body = request(port, function, struct.pack(">HH", start, count))
    data = body[1:1 + body[0]]
    return [(data[i // 8] >> (i % 8)) & 1 for i in range(count)]


READS = {"ir": (read_registers, 4), "hr": (read_registers, 3), "di": (read_bits, 2), "co": (read_bits, 1)}


def main(argv):
    port = 5020
    if len(argv) >= 2 and argv[0] == "--port":
        port, argv = int(argv[1]), argv[2:]
    if argv[:1] == ["multi"] and len(argv) > 1:
        try:
            values = []
            for spec in argv[1:]:
                kind, start, count = spec.split(":")
                fn, function = READS[kind]
                values.append(fn(port, function, int(start), int(count)))
        except (OSError, ValueError, KeyError) as exc:
            print("modbus_read: multi %s on %s:%d: %s: %s"
                  % (" ".join(argv[1:]), HOST, port, type(exc).__name__, exc), file=sys.stderr)
            return 1
        print(json.dumps(values))
        return 0
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    what, a, b = argv[0], int(argv[1]), int(argv[2])
    try:
        if what == "ir":
            values = read_registers(port, 4, a, b)
        elif what == "hr":
            values = read_registers(port, 3, a, b)
        elif what == "di":
            values = read_bits(port, 2, a, b)
        elif what == "co":
            values = read_bits(port, 1, a, b)
        elif what == "write-hr":
            body = request(port, 6, struct.pack(">HH", a, b))
            values = [struct.unpack(">HH", body[:4])[1]]
        else:
            print("unknown request %r" % what, file=sys.stderr)
            return 2
    except (OSError, ValueError) as exc:
        print("modbus_read: %s %s %s on %s:%d: %s: %s" % (what, a, b, HOST, port, type(exc).__name__, exc), file=sys.stderr)
        return 1
    print(json.dumps(values))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
