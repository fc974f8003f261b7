"""Step 1c of the qemu-system tier (drive.py): the example PLC program.

examples/programs/io_demo, compiled for arm64 from its committed STruC++
output by scripts/build-plc-program and installed by scripts/install-plugin
(scripts/make-qemu-image), runs in the image as a type-1 plugin. Its task
(every 20 ms) computes, from ramp_writer's inputs (%IX0.0 toggled every
100 ms, %IW0 a ramp 0..1000 over 10 s):
    %QW10 task runs (+1 per run, wrapping at 30000)
    %QW11 rising edges of %IX0.0 (wrapping at 30000)
    %QW12 2 x %IW0
    %QX0.1 %IW0 > 500
A Modbus client in the guest (modbus_read.py, the modbus_server example on
127.0.0.1:5020: holding registers = %QW, coils = %QX slot*8+bit, input
registers = %IW) reads them twice, 1.5 s apart, and checks they change and
agree with the inputs read in the same connection burst.
"""

import json
import time

PROGRAM = "io_demo"
PROGRAM_DIR = "/usr/lib/openplc/plugins/io_demo"
DROPIN = "/usr/lib/openplc/plugins.conf.d/50-io_demo.conf"
DROPIN_LINE = "io_demo,%s/libplc_io_demo.so,1,1,," % PROGRAM_DIR
#: One ramp_writer step (its period is 100 ms; 1000 units per 10 s): the
#: program may have computed %QW12 from the value before the one read.
RAMP_STEP = 10
WRAP = 30001


def sample(g, tools):
    """ir0, [QW10, QW11, QW12], [QX0.1], ir0 in one guest process (one burst)."""
    rc, out, err = g.sh("python3 -I -B %s/modbus_read.py multi ir:0:1 hr:10:3 co:1:1 ir:0:1" % tools)
    if rc != 0:
        return None, "rc %d: %s%s" % (rc, out, err)
    before, regs, coils, after = json.loads(out)
    return {"ir_before": before[0], "regs": regs, "high": coils[0], "ir_after": after[0]}, out


def consistent(s):
    """(checked, ok, why) for %QW12 = 2 x %IW0 and %QX0.1 = %IW0 > 500, given
    %IW0 read just before and after (a ramp wrap in between: not checked)."""
    lo, hi = s["ir_before"], s["ir_after"]
    if hi < lo:
        return False, True, "the ramp wrapped between the reads"
    lo, hi = max(0, lo - RAMP_STEP), hi + RAMP_STEP
    doubled = s["regs"][2]
    ok = doubled % 2 == 0 and 2 * lo <= doubled <= 2 * hi
    why = "%%QW12=%d, %%IW0 in [%d, %d]" % (doubled, s["ir_before"], s["ir_after"])
    if hi <= 500 or lo > 500:
        ok = ok and s["high"] == (1 if lo > 500 else 0)
        why += ", %%QX0.1=%d" % s["high"]
    return True, ok, why


def run(g, r, tools):
    rc, out, err = g.sh("grep -v '^#' %s; ls %s" % (DROPIN, PROGRAM_DIR))
    lines = out.splitlines()
    r.check("program: %s is the type-1 line (%s), %s holds libplc_io_demo.so and debug-map.json"
            % (DROPIN, DROPIN_LINE, PROGRAM_DIR),
            rc == 0 and lines[:1] == [DROPIN_LINE] and "libplc_io_demo.so" in lines and "debug-map.json" in lines,
            out + err)
    first, ev1 = sample(g, tools)
    t_first = time.monotonic()
    time.sleep(1.5)
    second, ev2 = sample(g, tools)
    between = time.monotonic() - t_first
    evidence = "first: %s\nsecond: %s" % (ev1, ev2)
    if not r.check("program: Modbus reads of %QW10..12, %QX0.1 and %IW0 in the guest", first and second, evidence):
        return
    a, b = first["regs"], second["regs"]
    runs = (b[0] - a[0]) % WRAP
    r.check("program: %%QW10 (task runs) advances: %d -> %d" % (a[0], b[0]), 0 < runs, evidence)
    r.check("program: %%QW11 (rising edges of ramp_writer's %%IX0.0) advances: %d -> %d" % (a[1], b[1]),
            (b[1] - a[1]) % WRAP > 0, evidence)
    results = [consistent(s) for s in (first, second)]
    checked = [res for res in results if res[0]]
    r.check("program: %%QW12 = 2 x %%IW0 and %%QX0.1 = (%%IW0 > 500) as computed by the program (%s)"
            % "; ".join(res[2] for res in results),
            checked and all(res[1] for res in checked), evidence)
    r.info("program: %d task runs between the reads, %.1f s apart on the host (the 20 ms task on time: %d)"
           % (runs, between, between / 0.02))
