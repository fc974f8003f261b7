#!/usr/bin/env python3
"""The PLC program package checks of scripts/check-buildroot.

Reads one `make PKG=<program package> show-info printvars QUOTED_VARS=YES`
output and the .config, checks that the program package and openplc-strucpp
are selected and wired as they say, then runs the commands Buildroot expanded
for them, outside Buildroot: openplc-strucpp's INSTALL_STAGING_CMDS on the
STruC++ snapshot (the commit the package pins), the program's BUILD_CMDS on a
copy of its STruC++ output (what the local site method rsyncs), with
Debian's cross g++ for the target standing in for $(TARGET_CXX) and
Buildroot's own $(TARGET_CXXFLAGS)/$(TARGET_LDFLAGS), and its
INSTALL_TARGET_CMDS into a scratch target directory. What they stage is
checked: the library is an ELF for the target's CPU exporting the program
extension, beside debug-map.json, with the type-1 drop-in. Prints one
"ok - ..." / "not ok - ..." line per check; exit status 1 when any failed.
"""

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_buildroot import Report, hash_lines, read_config, read_make_output  # noqa: E402

STRUCPP = "openplc-strucpp"
# Debian's cross compilers, by Buildroot's ARCH, and what `file` says of their output.
CROSS = {"aarch64": ("aarch64-linux-gnu-g++", "ARM aarch64"), "arm": ("arm-linux-gnueabihf-g++", "ARM,")}


def upper(package):
    return package.upper().replace("-", "_")


def run_cmds(r, what, text, replacements, cwd):
    for old, new in sorted(replacements, key=lambda x: -len(x[0])):
        text = text.replace(old, new)
    result = subprocess.run(["bash", "-c", "set -e\n" + text], cwd=cwd, capture_output=True, text=True)
    r.check("%s ran" % what, result.returncode == 0,
            "exit %d\n%s\n%s%s" % (result.returncode, text, result.stdout, result.stderr))
    return result.returncode == 0


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--make-output", required=True)
    p.add_argument("--config", required=True)
    p.add_argument("--package", required=True, help="the program package, e.g. openplc-program-io-demo")
    p.add_argument("--top", required=True, help="the repository")
    p.add_argument("--strucpp", required=True, help="STruC++ at the pinned commit (the unpacked snapshot)")
    args = p.parse_args()
    r = Report()
    info, v = read_make_output(args.make_output)
    config = read_config(args.config)
    top = os.path.realpath(args.top)
    pkg = args.package
    up = upper(pkg)

    r.equal(".config: BR2_PACKAGE_%s=y" % up, config.get("BR2_PACKAGE_" + up), "y")
    r.equal(".config: BR2_INSTALL_LIBSTDCPP=y (the program is C++)", config.get("BR2_INSTALL_LIBSTDCPP"), "y")
    prog = info.get(pkg)
    strucpp = info.get(STRUCPP)
    r.check("show-info: %s and %s are selected" % (pkg, STRUCPP), prog is not None and strucpp is not None)
    if prog is None or strucpp is None:
        return 1
    r.check("show-info: %s depends on %s" % (pkg, STRUCPP), STRUCPP in prog["dependencies"], prog["dependencies"])
    output = v.get(up + "_PROGRAM_OUTPUT", "")
    r.equal("show-info: %s's source is its STruC++ output in the checkout" % pkg,
            [u for d in prog["downloads"] for u in d["uris"] if u.startswith("local+")], ["local+" + output])
    r.check("%s_PROGRAM_OUTPUT (%s) is in the checkout and holds generated.hpp" % (up, output),
            output.startswith(top + "/") and os.path.isfile(os.path.join(output, "generated.hpp")), output)
    version = v.get("OPENPLC_STRUCPP_VERSION", "")
    snapshot = os.path.basename(os.path.realpath(args.strucpp)).rsplit("-", 1)[-1]
    r.check("%s pins the full commit of the STruC++ snapshot (%s = %s...)" % (STRUCPP, version, snapshot),
            len(version) == 40 and version.startswith(snapshot))
    r.check("show-info: %s is a git download with a sha256 in its .hash" % STRUCPP,
            strucpp["downloads"] and strucpp["downloads"][0]["source"] in hash_lines(strucpp["hashes"])
            and any(u.startswith("git+") for u in strucpp["downloads"][0]["uris"]), strucpp["downloads"])
    hashes = hash_lines(strucpp["hashes"])
    for lic in ("COPYING", "COPYING.RUNTIME"):
        with open(os.path.join(args.strucpp, lic), "rb") as f:
            got = hashlib.sha256(f.read()).hexdigest()
        r.check("%s's .hash: %s has the snapshot's sha256" % (STRUCPP, lic), hashes.get(lic) == got,
                "%s in .hash, %s in the snapshot" % (hashes.get(lic), got))

    arch = v.get("ARCH", "")
    cross, machine = CROSS.get(arch, (None, None))
    if cross is None or shutil.which(cross) is None:
        r.check("a cross g++ for ARCH=%s (scripts/install-deps --cross)" % arch, False)
        return 1
    work = tempfile.mkdtemp(prefix="check-buildroot-program.")
    try:
        staging, target, build = (os.path.join(work, d) for d in ("staging", "target", "build"))
        os.makedirs(staging)
        os.makedirs(target)
        shutil.copytree(output, build)
        common = [(v["STAGING_DIR"], staging), (v["TARGET_DIR"], target)]
        ok = run_cmds(r, "%s's INSTALL_STAGING_CMDS (on the snapshot)" % STRUCPP,
                      v.get("OPENPLC_STRUCPP_INSTALL_STAGING_CMDS", "false"),
                      common + [(v["OPENPLC_STRUCPP_DIR"], args.strucpp)], work)
        build_cmds = v.get(up + "_BUILD_CMDS", "false")
        r.check("%s's BUILD_CMDS compile with $(TARGET_CXX) and $(TARGET_CXXFLAGS)" % pkg,
                v["TARGET_CXX"] in build_cmds and v.get("TARGET_CXXFLAGS", "") in build_cmds, build_cmds)
        ok = ok and run_cmds(r, "%s's BUILD_CMDS with %s for $(TARGET_CXX) (%s)" % (pkg, cross, v["TARGET_CXX"]),
                             build_cmds, common + [(v[up + "_DIR"], build), (v["TARGET_CXX"], cross)], work)
        ok = ok and run_cmds(r, "%s's INSTALL_TARGET_CMDS" % pkg, v.get(up + "_INSTALL_TARGET_CMDS", "false"),
                             common + [(v[up + "_DIR"], build)], work)
        if ok:
            check_staged(r, target, v[up + "_PROGRAM_NAME"], v.get(up + "_PROGRAM_ORDER", "50"), machine)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if r.failed else 0


def check_staged(r, target, name, order, machine):
    base = "usr/lib/openplc/plugins/%s" % name
    lib = os.path.join(target, base, "libplc_%s.so" % name)
    what = subprocess.run(["file", "-b", lib], capture_output=True, text=True).stdout.strip()
    r.check("/%s/libplc_%s.so is an ELF for the target (%s)" % (base, name, what), machine in what, what)
    syms = subprocess.run(["nm", "-D", "--defined-only", lib], capture_output=True, text=True).stdout
    names = {line.split()[-1] for line in syms.splitlines() if line.split()}
    want = {"openplc_program_abi", "openplc_program_run_task", "openplc_program_vars", "init", "cleanup"}
    r.check("libplc_%s.so exports the native plugin ABI and the program extension" % name, want <= names,
            sorted(want - names))
    r.check("/%s/debug-map.json is installed beside it" % base,
            os.path.isfile(os.path.join(target, base, "debug-map.json")))
    dropin = os.path.join(target, "usr/lib/openplc/plugins.conf.d", "%s-%s.conf" % (order, name))
    lines = []
    if os.path.isfile(dropin):
        with open(dropin) as f:
            lines = [ln.strip() for ln in f if ln.strip() and not ln.startswith("#")]
    line = "%s,/%s/libplc_%s.so,1,1,," % (name, base, name)
    r.equal("the drop-in %s-%s.conf is the type-1 line" % (order, name), lines, [line])


if __name__ == "__main__":
    sys.exit(main())
