#!/usr/bin/env python3
"""Runs a program recipe's do_compile and do_install, exactly as `bitbake -e`
expanded them from openplc-program.bbclass, outside bitbake: the build
directories are moved under --workdir, the tools of openplc-tools-native are
the repository's (laid out as that recipe installs them), the STruC++
output and the STruC++ tree are put where do_unpack puts them, and the
target's C++ compiler is Debian's cross g++ for the recipe's TARGET_ARCH
given the recipe's own flags: the words of bitbake's $CXX after the
compiler (-mcpu=..., without --sysroot), $CXXFLAGS and $LDFLAGS. So the
class's shell code, build-plc-program's compile and install-plugin's
staging run for real, for the target's CPU.
Then it checks what was staged as do_package and QA would: every file is
shipped by FILES:${PN}, the library is an ELF for the target's CPU, not
stripped, with a GNU hash section (QA ldflags: LDFLAGS reached the link),
exporting the program extension, and the drop-in is the type-1 line.
Run by scripts/check-yocto-layer, not by hand.

Exit 1 when a task fails or a check does not hold.
"""

import argparse
import fnmatch
import os
import shlex
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_recipe_files import decode, read_env  # noqa: E402
from run_plugin_tasks import ELF_MACHINE  # noqa: E402

PROG = "check-yocto-layer"
# Debian's cross compilers, by TARGET_ARCH.
CROSS_CXX = {"aarch64": "aarch64-linux-gnu-g++", "arm": "arm-linux-gnueabihf-g++", "x86_64": "g++"}
# Flags of oe-core's GCC (15) that Debian 12's cross g++ (12) does not know:
# left out here only (-fcanon-prefix-map, GCC 13: how debug prefix maps apply).
NEWER_GCC_ONLY = {"-fcanon-prefix-map"}


def main():
    p = argparse.ArgumentParser(prog=PROG + " (run_program_tasks.py)")
    p.add_argument("--env", required=True, help="the recipe's bitbake -e output")
    p.add_argument("--workdir", required=True, help="an empty directory for WORKDIR")
    p.add_argument("--repo", required=True, help="the repository (openplc-tools-native's source)")
    p.add_argument("--strucpp", required=True, help="STruC++ at the recipe's SRCREV (what do_unpack fetches)")
    p.add_argument("--programs", required=True, help="the directory file:// entries are found in")
    args = p.parse_args()

    env, functions = read_env(args.env)
    pn = env["PN"]
    workdir = os.path.abspath(args.workdir)

    def moved(path):
        return path.replace(env["WORKDIR"], workdir)

    # openplc-tools-native's layout (its do_install), from the repository.
    tools = os.path.join(workdir, "openplc-tools")
    os.makedirs(tools)
    os.symlink(os.path.join(args.repo, "scripts", "install-plugin"), os.path.join(tools, "install-plugin"))
    os.symlink(args.repo, os.path.join(tools, "program"))

    # do_unpack: file:// entries (with subdir) and the STruC++ git entry (destsuffix).
    unpackdir = moved(env["UNPACKDIR"])
    for url in env["SRC_URI"].split():
        scheme, path, params = decode(url)
        if scheme == "file":
            shutil.copytree(os.path.join(args.programs, path),
                            os.path.join(unpackdir, params.get("subdir", ""), path))
        elif scheme == "git" and params.get("name") == "strucpp":
            shutil.copytree(args.strucpp, os.path.join(unpackdir, params["destsuffix"]), symlinks=True)
        else:
            sys.stderr.write("%s: %s: unexpected SRC_URI entry %s\n" % (PROG, pn, url))
            return 1

    arch = env.get("TARGET_ARCH", "")
    cross = CROSS_CXX.get(arch)
    if cross is None or shutil.which(cross) is None:
        sys.stderr.write("%s: %s: no cross compiler for TARGET_ARCH %r (%s; scripts/install-deps --cross)\n"
                         % (PROG, pn, arch, cross))
        return 1
    bb_cxx = shlex.split(env["CXX"])
    cxx_flags = [w for w in bb_cxx[1:] if not w.startswith("--sysroot")]

    def supported(flags):
        return " ".join(w for w in flags.split() if w not in NEWER_GCC_ONLY)
    task_env = dict(os.environ, CXX=" ".join([cross] + cxx_flags), CXXFLAGS=supported(env.get("CXXFLAGS", "")),
                    LDFLAGS=supported(env.get("LDFLAGS", "")),
                    SOURCE_DATE_EPOCH=env.get("SOURCE_DATE_EPOCH_FALLBACK", "0"))
    replacements = sorted([(env["OPENPLC_TOOLS"], tools), (env["WORKDIR"], workdir)], key=lambda r: -len(r[0]))
    for task in ("do_compile", "do_install"):
        body = functions.get(task)
        if body is None:
            sys.stderr.write("%s: %s: no %s in %s\n" % (PROG, pn, task, args.env))
            return 1
        for old, new in replacements:
            body = body.replace(old, new)
        for d in (env["B"], env["D"]):
            os.makedirs(moved(d), exist_ok=True)
        script = "set -e\ncd %s\n%s\n" % (moved(env["B"]), body)
        result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=task_env)
        if result.returncode != 0:
            sys.stderr.write("%s: %s: %s failed (exit %d):\n%s%s" % (
                PROG, pn, task, result.returncode, result.stdout, result.stderr))
            return 1
    print("   %s: compiled with %s (bitbake's CXX: %s ...), bitbake's CXXFLAGS and LDFLAGS without %s"
          % (pn, task_env["CXX"], bb_cxx[0], " ".join(sorted(NEWER_GCC_ONLY))))
    return check_staged(env, moved(env["D"]))


def check_staged(env, dest):
    pn = env["PN"]
    name = env["OPENPLC_PROGRAM_NAME"]
    errors = []
    files = []
    for top, _dirs, names in os.walk(dest):
        files.extend(os.path.relpath(os.path.join(top, f), dest) for f in names)
    patterns = env.get("FILES:" + pn, "").split()

    def shipped(rel):
        path = "/" + rel
        return any(path == p or path.startswith(p.rstrip("/") + "/") or fnmatch.fnmatch(path, p)
                   for p in patterns)
    unshipped = [f for f in files if not shipped(f)]
    if unshipped:
        errors.append("installed but not shipped in FILES:%s: %s" % (pn, " ".join(sorted(unshipped)[:5])))

    base = "/usr/lib/openplc/plugins/%s/" % name
    lib = "libplc_%s.so" % name
    want = "%s,%s%s,%s,1,," % (name, base, lib, "0" if env.get("OPENPLC_PROGRAM_ENABLED") == "0" else "1")
    dropin = os.path.join(dest, "usr/lib/openplc/plugins.conf.d",
                          "%s-%s.conf" % (env.get("OPENPLC_PROGRAM_ORDER", "50"), name))
    lines = []
    if os.path.isfile(dropin):
        with open(dropin) as f:
            lines = [line.strip() for line in f if line.strip() and not line.startswith("#")]
    if lines != [want]:
        errors.append("drop-in %s holds %r, wanted %r" % (os.path.relpath(dropin, dest), lines, want))
    if not os.path.isfile(os.path.join(dest, base.lstrip("/"), "debug-map.json")):
        errors.append("no %sdebug-map.json" % base)

    so = os.path.join(dest, base.lstrip("/"), lib)
    if not os.path.isfile(so):
        errors.append("no %s%s" % (base, lib))
    else:
        what = subprocess.run(["file", "-b", so], capture_output=True, text=True).stdout
        machine = ELF_MACHINE.get(env.get("TARGET_ARCH", ""))
        if machine and machine not in what:
            errors.append("%s is not for %s: %s" % (lib, env.get("TARGET_ARCH"), what.strip()))
        if "not stripped" not in what:
            errors.append("%s is already stripped (QA already-stripped): %s" % (lib, what.strip()))
        sections = subprocess.run(["readelf", "-SW", so], capture_output=True, text=True).stdout
        if ".gnu.hash" not in sections:
            errors.append("%s has no .gnu.hash: LDFLAGS (--hash-style=gnu) did not reach the link (QA ldflags)"
                          % lib)
        syms = subprocess.run(["nm", "-D", "--defined-only", so], capture_output=True, text=True).stdout
        for sym in ("openplc_program_abi", "openplc_program_run_task", "openplc_program_vars", "init"):
            if not any(line.split()[-1:] == [sym] for line in syms.splitlines()):
                errors.append("%s does not export %s" % (lib, sym))
    for error in errors:
        sys.stderr.write("%s: %s: %s\n" % (PROG, pn, error))
    if not errors:
        print("   ok: %s: do_compile + do_install staged %d files, all shipped; %s for %s; drop-in: %s"
              % (pn, len(files), lib, env.get("TARGET_ARCH"), want))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
