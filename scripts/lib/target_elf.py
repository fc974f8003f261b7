#!/usr/bin/env python3
"""Checks that the compiled files of a wheel (or of a built venv) fit the target
CPU: ELF class and machine, and on 32-bit ARM the float ABI (hard/soft) and the
architecture level (armv6 code runs on an armv7 board, armv7 code does not run
on an armv6 one). Used by scripts/build-target-wheel (every wheel it builds) and
scripts/build-target-venv (every wheel it installs).

The ELF header and the ARM attributes section are read here with the standard
library only (no binutils needed, the same answer on every build host); the
tests check the same files with readelf independently.

Runs under the build host's python3 (3.7 or newer). Exit codes: 0 fits, 1
unexpected failure, 2 usage, 4 a file does not fit (the message names the
wheel and the file).
"""

import argparse
import os
import re
import struct
import sys
import zipfile

PROG = "target_elf.py"

# e_machine values (ELF gABI / each psABI).
EM = {3: "i386", 40: "ARM", 62: "x86-64", 183: "AArch64", 243: "RISC-V"}

# The CPU part of a wheel platform tag (linux_<arch>, manylinux_*_<arch>) ->
# (ELF class bits, e_machine, ARM architecture level or None).
ARCHES = {
    "aarch64": (64, 183, None),
    "x86_64": (64, 62, None),
    "i686": (32, 3, None),
    "riscv64": (64, 243, None),
    "armv6l": (32, 40, 6),
    "armv7l": (32, 40, 7),
}

# Tag_CPU_arch values of the ARM EABI attributes (addenda, 6.3) and the
# architecture level each needs; v6-M/v7-M profiles are not Linux targets.
CPU_ARCH_LEVEL = {0: 4, 1: 4, 2: 4, 3: 5, 4: 5, 5: 5, 6: 6, 7: 6, 8: 6, 9: 6, 10: 7,
                  13: 7, 14: 8, 15: 8, 16: 8, 17: 8, 20: 8, 21: 9}
CPU_ARCH_NAME = {0: "pre-v4", 1: "v4", 2: "v4T", 3: "v5T", 4: "v5TE", 5: "v5TEJ", 6: "v6",
                 7: "v6KZ", 8: "v6T2", 9: "v6K", 10: "v7", 13: "v7E-M", 14: "v8"}
EF_ARM_ABI_FLOAT_SOFT = 0x200
EF_ARM_ABI_FLOAT_HARD = 0x400
SHT_ARM_ATTRIBUTES = 0x70000003


class NotElf(Exception):
    pass


def fail(code, message):
    sys.stderr.write("%s: error: %s\n" % (PROG, message))
    sys.exit(code)


def uleb128(data, pos):
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def arm_attributes(data):
    """{tag: value} of the "aeabi" file-scope attributes of an ARM ELF (32-bit,
    little-endian), or {} when the file has none."""
    (e_shoff,) = struct.unpack_from("<I", data, 0x20)
    e_shentsize, e_shnum = struct.unpack_from("<HH", data, 0x2E)
    out = {}
    for i in range(e_shnum):
        sh = e_shoff + i * e_shentsize
        sh_type, = struct.unpack_from("<I", data, sh + 4)
        if sh_type != SHT_ARM_ATTRIBUTES:
            continue
        sh_offset, sh_size = struct.unpack_from("<II", data, sh + 16)
        sec = data[sh_offset:sh_offset + sh_size]
        if not sec or sec[0:1] != b"A":
            continue
        pos = 1
        while pos + 4 <= len(sec):
            (length,) = struct.unpack_from("<I", sec, pos)
            end = pos + length
            vendor_end = sec.index(b"\0", pos + 4)
            vendor = sec[pos + 4:vendor_end]
            sub = vendor_end + 1
            while vendor == b"aeabi" and sub < end:
                kind = sec[sub]
                (sub_len,) = struct.unpack_from("<I", sec, sub + 1)
                sub_end = sub + sub_len
                if kind == 1:  # Tag_File: attributes of the whole file
                    p = sub + 5
                    while p < sub_end:
                        tag, p = uleb128(sec, p)
                        # Strings: CPU_raw_name, CPU_name, conformance and odd
                        # tags above 32; Tag_compatibility is a number and a string.
                        if tag in (4, 5, 67) or (tag > 32 and tag % 2 == 1):
                            z = sec.index(b"\0", p)
                            out[tag] = sec[p:z].decode("ascii", "replace")
                            p = z + 1
                        elif tag == 32:
                            value, p = uleb128(sec, p)
                            p = sec.index(b"\0", p) + 1
                            out[tag] = value
                        else:
                            out[tag], p = uleb128(sec, p)
                sub = sub_end
            pos = end if length else len(sec)
    return out


def describe(data):
    """(bits, machine, arm_level or None, float_abi or None, arch name) of an ELF image."""
    if data[:4] != b"\x7fELF":
        raise NotElf()
    bits = {1: 32, 2: 64}.get(data[4], 0)
    endian = "<" if data[5] == 1 else ">"
    (machine,) = struct.unpack_from(endian + "H", data, 0x12)
    level = float_abi = None
    arch_name = EM.get(machine, "machine %d" % machine)
    if machine == 40 and bits == 32 and endian == "<":
        (flags,) = struct.unpack_from("<I", data, 0x24)
        attrs = arm_attributes(data)
        if flags & EF_ARM_ABI_FLOAT_HARD:
            float_abi = "hard"
        elif flags & EF_ARM_ABI_FLOAT_SOFT:
            float_abi = "soft"
        else:
            # Tag_ABI_VFP_args: 1 = arguments in VFP registers.
            float_abi = "hard" if attrs.get(28) == 1 else "soft"
        cpu_arch = attrs.get(6)
        if cpu_arch is not None:
            level = CPU_ARCH_LEVEL.get(cpu_arch, 99)
            arch_name = "ARM %s" % CPU_ARCH_NAME.get(cpu_arch, "arch %d" % cpu_arch)
    return bits, machine, level, float_abi, arch_name


def why_not(data, arch, float_abi):
    """None when the ELF image runs on the target, else why not."""
    want_bits, want_machine, want_level = ARCHES[arch]
    bits, machine, level, fabi, name = describe(data)
    if machine != want_machine or bits != want_bits:
        return "%d-bit %s code, the target is %s" % (bits, name, arch)
    if want_level is not None:
        if level is not None and level > want_level:
            return "%s code, the target is %s (ARMv%d)" % (name, arch, want_level)
        if fabi != float_abi:
            return "%s-float ABI, the target is %s-float" % (fabi, float_abi)
    return None


def check_tree(label, files, arch, float_abi):
    """files: iterable of (name, reader). Returns the problems, one per file."""
    problems = []
    count = 0
    for name, read in files:
        data = read()
        if data[:4] != b"\x7fELF":
            continue
        count += 1
        why = why_not(data, arch, float_abi)
        if why:
            problems.append("%s: %s is %s" % (label, name, why))
    return problems, count


def wheel_files(path):
    with zipfile.ZipFile(path) as z:
        for info in z.infolist():
            if not info.is_dir():
                yield info.filename, (lambda i=info: z.read(i))


def site_files(site):
    for top, _, names in os.walk(site):
        for n in sorted(names):
            p = os.path.join(top, n)
            if os.path.isfile(p) and not os.path.islink(p):
                yield os.path.relpath(p, site), (lambda p=p: open(p, "rb").read())


def target_of(arch, float_abi):
    if arch not in ARCHES:
        fail(2, "unknown target CPU %r; one of %s" % (arch, ", ".join(sorted(ARCHES))))
    if ARCHES[arch][2] is None:
        return None
    if float_abi not in ("hard", "soft"):
        fail(2, "a 32-bit ARM target (%s) needs --float-abi hard or soft" % arch)
    return float_abi


def arch_of_platform(tag):
    """The CPU of a platform tag (manylinux_2_36_armv7l -> armv7l), or None."""
    for arch in sorted(ARCHES, key=len, reverse=True):
        if tag.endswith("_" + arch):
            return arch
    return None


def cmd_check_wheel(args):
    float_abi = target_of(args.arch, args.float_abi)
    problems = []
    total = 0
    for w in args.wheel:
        found, count = check_tree(os.path.basename(w), wheel_files(w), args.arch, float_abi)
        problems += found
        total += count
    for p in problems:
        sys.stderr.write("%s: error: %s\n" % (PROG, p))
    if problems:
        fail(4, "refused: compiled code for another CPU or float ABI than the target "
             "(%s%s)" % (args.arch, ", %s-float" % float_abi if float_abi else ""))
    if args.verbose:
        sys.stderr.write("%s: %d ELF file(s) fit %s%s\n" % (
            PROG, total, args.arch, ", %s-float" % float_abi if float_abi else ""))
    return 0


def dist_of_wheel(filename):
    return re.sub(r"[-_.]+", "-", filename.split("-")[0]).lower()


def cmd_check_site(args):
    """After pip: every ELF file under the venv's site-packages fits the
    target, and each distribution that ships one was either built from its
    sdist here (a linux_<arch> wheel: PyPI refuses that tag, so it cannot come
    from an index) or is in the opt-in list."""
    float_abi = target_of(args.arch, args.float_abi)
    problems = []
    site = args.site
    allowed = {dist_of_wheel(n) for n in args.binary_wheels.split()} if args.binary_wheels is not None else None
    for info in sorted(d for d in os.listdir(site) if d.endswith(".dist-info")):
        dist = dist_of_wheel(info)
        tags = []
        with open(os.path.join(site, info, "WHEEL"), encoding="utf-8") as f:
            tags = [ln.split(":", 1)[1].strip() for ln in f if ln.lower().startswith("tag:")]
        record = os.path.join(site, info, "RECORD")
        files = []
        with open(record, encoding="utf-8") as f:
            for line in f:
                rel = line.rsplit(",", 2)[0].strip('"')
                p = os.path.normpath(os.path.join(site, rel))
                if os.path.isfile(p) and not os.path.islink(p):
                    files.append((rel, lambda p=p: open(p, "rb").read()))
        found, count = check_tree(info, files, args.arch, float_abi)
        problems += found
        compiled = count > 0 or any(not t.endswith("-none-any") for t in tags)
        from_source = tags and all(t.split("-")[-1].startswith("linux_") for t in tags)
        if compiled and not from_source and allowed is not None and dist not in allowed:
            problems.append(
                "%s is a compiled wheel (%s) from an index; build it from its sdist "
                "(scripts/build-target-wheel; Yocto: the sdist in SRC_URI with "
                "subdir=sdists, Buildroot: <PKG>_SDISTS), or opt in to the binary wheel: "
                "--binary-wheels %s (Yocto: OPENPLC_PLUGIN_BINARY_WHEELS, Buildroot: "
                "<PKG>_BINARY_WHEELS)" % (info, ", ".join(tags) or "no tag", dist))
    for p in problems:
        sys.stderr.write("%s: error: %s\n" % (PROG, p))
    return 4 if problems else 0


def main(argv):
    global PROG
    parser = argparse.ArgumentParser(prog="target_elf.py", description=__doc__)
    parser.add_argument("--prog", default=PROG)
    sub = parser.add_subparsers(dest="command")
    sub.required = True

    def target(p):
        p.add_argument("--arch", required=True, help="aarch64, armv7l, armv6l, x86_64, ...")
        p.add_argument("--float-abi", default="", help="hard or soft (32-bit ARM)")

    p = sub.add_parser("check-wheel", help="every ELF file of the wheels fits the target")
    target(p)
    p.add_argument("--verbose", action="store_true")
    p.add_argument("wheel", nargs="+")
    p.set_defaults(func=cmd_check_wheel)

    p = sub.add_parser("check-site", help="installed distributions fit the target and the opt-in list")
    target(p)
    p.add_argument("--site", required=True)
    p.add_argument("--binary-wheels", default=None)
    p.set_defaults(func=cmd_check_site)

    p = sub.add_parser("arch-of", help="the CPU of a platform tag")
    p.add_argument("tag")
    p.set_defaults(func=lambda a: print(arch_of_platform(a.tag) or "") or 0)

    args = parser.parse_args(argv)
    PROG = args.prog
    try:
        return args.func(args) or 0
    except (struct.error, IndexError, ValueError, zipfile.BadZipFile) as e:
        fail(4, "cannot read an ELF file or wheel: %s" % e)
    except OSError as e:
        fail(1, "%s: %s" % (getattr(e, "filename", "") or "", e.strerror or e))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
