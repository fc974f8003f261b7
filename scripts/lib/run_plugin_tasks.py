#!/usr/bin/env python3
"""Runs a plugin recipe's do_compile and do_install, exactly as `bitbake -e`
expanded them from openplc-plugin-venv.bbclass, outside bitbake: the build
directories are moved under --workdir, the scripts of openplc-tools-native are
the repository's, and python3-native is a Python of this host. So the class's
shell code, its options to build-target-venv and install-plugin, and what it
stages into ${D} are exercised for real (the target's Python version is
replaced by the host Python's, since its .pyc files are compiled by it).
Then it checks what was staged the way do_package and QA would see it:
every file is shipped by FILES:${PN} (installed-vs-shipped), the venv's
pyvenv.cfg and .pyc files are there, the drop-in names the plugin, and every
ELF file is for the target's CPU (arch) and not already stripped unless the
recipe skips already-stripped (QA strips and splits it otherwise).
Run by scripts/check-yocto-layer, not by hand.

Exit 1 when a task fails or a check does not hold.
"""

import argparse
import fnmatch
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_recipe_files import read_env  # noqa: E402

PROG = "check-yocto-layer"


def main():
    p = argparse.ArgumentParser(prog=PROG + " (run_plugin_tasks.py)")
    p.add_argument("--env", required=True, help="the recipe's bitbake -e output")
    p.add_argument("--workdir", required=True, help="an empty directory for WORKDIR")
    p.add_argument("--tools", required=True, help="the repository's scripts/ directory")
    p.add_argument("--python", required=True, help="the host Python standing in for python3-native")
    p.add_argument("--plugin-dir", required=True, help="the plugin's files (what do_unpack fetches)")
    p.add_argument("--wheelhouse", required=True, help="the wheels (what do_unpack fetches)")
    args = p.parse_args()

    env, functions = read_env(args.env)
    pn = env["PN"]
    version = subprocess.run([args.python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    workdir = os.path.abspath(args.workdir)
    # Longest first: the tools and the Python live under WORKDIR too.
    replacements = sorted([
        (env["OPENPLC_TOOLS"], os.path.abspath(args.tools)),
        (env["PYTHON"], args.python),
        (env["WORKDIR"], workdir),
    ], key=lambda r: -len(r[0]))
    replacements.append(("--python-version " + env["PYTHON_BASEVERSION"], "--python-version " + version))

    unpackdir = env["UNPACKDIR"].replace(env["WORKDIR"], workdir)
    name = env["OPENPLC_PLUGIN_NAME"]
    shutil.copytree(args.plugin_dir, os.path.join(unpackdir, name))
    shutil.copytree(args.wheelhouse, os.path.join(unpackdir, "wheelhouse"))

    for task in ("do_compile", "do_install"):
        body = functions.get(task)
        if body is None:
            sys.stderr.write("%s: %s: no %s in %s\n" % (PROG, pn, task, args.env))
            return 1
        for old, new in replacements:
            body = body.replace(old, new)
        for d in (env["B"], env["D"]):
            os.makedirs(d.replace(env["WORKDIR"], workdir), exist_ok=True)
        script = "set -e\ncd %s\n%s\n" % (env["B"].replace(env["WORKDIR"], workdir), body)
        result = subprocess.run(["bash", "-c", script], capture_output=True, text=True,
                                env=dict(os.environ, SOURCE_DATE_EPOCH=env.get("SOURCE_DATE_EPOCH_FALLBACK", "0")))
        if result.returncode != 0:
            sys.stderr.write("%s: %s: %s failed (exit %d):\n%s%s" % (
                PROG, pn, task, result.returncode, result.stdout, result.stderr))
            return 1
    return check_staged(env, env["D"].replace(env["WORKDIR"], workdir), version)


# What `file` says about an ELF file of each TARGET_ARCH.
ELF_MACHINE = {"aarch64": "ARM aarch64", "x86_64": "x86-64", "arm": "ARM,", "riscv64": "RISC-V"}


def check_staged(env, dest, version):
    pn = env["PN"]
    name = env["OPENPLC_PLUGIN_NAME"]
    errors = []
    files = []
    for top, dirs, names in os.walk(dest):
        # A writable subpath is a symlink to a directory: a file of the package too.
        links = [d for d in dirs if os.path.islink(os.path.join(top, d))]
        files.extend(os.path.relpath(os.path.join(top, f), dest) for f in names + links)
    patterns = env.get("FILES:" + pn, "").split()

    def shipped(rel):
        path = "/" + rel
        return any(path == p or path.startswith(p.rstrip("/") + "/") or fnmatch.fnmatch(path, p)
                   for p in patterns)
    unshipped = [f for f in files if not shipped(f)]
    if unshipped:
        errors.append("installed but not shipped in FILES:%s: %s" % (pn, " ".join(sorted(unshipped)[:5])))

    venv = os.path.join(dest, env["OPENPLC_VENV"].lstrip("/"))
    if env.get("OPENPLC_PLUGIN_REQUIREMENTS", "").split():
        cfg = os.path.join(venv, "pyvenv.cfg")
        if not os.path.isfile(cfg):
            errors.append("no venv at %s" % env["OPENPLC_VENV"])
        else:
            with open(cfg) as f:
                text = f.read()
            if "version = %s" % version not in text or "home = /usr/bin" not in text:
                errors.append("%s/pyvenv.cfg is not the target's: %r" % (env["OPENPLC_VENV"], text))
        site = os.path.join(venv, "lib", "python" + version, "site-packages")
        for top, _, names in os.walk(site):
            for f in names:
                if f.endswith(".py") and "__pycache__" not in top:
                    stem = f[:-3]
                    cache = os.path.join(top, "__pycache__")
                    if not (os.path.isdir(cache) and any(c.startswith(stem + ".") and c.endswith(".pyc")
                                                         for c in os.listdir(cache))):
                        errors.append("no .pyc for %s" % os.path.relpath(os.path.join(top, f), dest))
                        break
    entry = env.get("OPENPLC_PLUGIN_ENTRY", "")
    config = env.get("OPENPLC_PLUGIN_CONFIG", "")
    base = "/usr/lib/openplc/plugins/%s/" % name
    has_venv = bool(env.get("OPENPLC_PLUGIN_REQUIREMENTS", "").split())
    want = "%s,%s%s,%s,0,%s,%s" % (
        name, base, entry, "0" if env.get("OPENPLC_PLUGIN_ENABLED") == "0" else "1",
        base + config if config else "", env["OPENPLC_VENV"] if has_venv else "")
    dropin = os.path.join(dest, "usr/lib/openplc/plugins.conf.d",
                          "%s-%s.conf" % (env.get("OPENPLC_PLUGIN_ORDER", "50"), name))
    lines = []
    if os.path.isfile(dropin):
        with open(dropin) as f:
            lines = [line.strip() for line in f if line.strip() and not line.startswith("#")]
    if lines != [want]:
        errors.append("drop-in %s holds %r, wanted %r" % (os.path.relpath(dropin, dest), lines, want))

    skips = env.get("INSANE_SKIP:" + pn, "").split() + env.get("INSANE_SKIP", "").split()
    machine = ELF_MACHINE.get(env.get("TARGET_ARCH", ""))
    elves = 0
    for rel in files:
        path = os.path.join(dest, rel)
        if os.path.islink(path) or not os.path.isfile(path):
            continue
        with open(path, "rb") as f:
            if f.read(4) != b"\x7fELF":
                continue
        elves += 1
        what = subprocess.run(["file", "-b", path], capture_output=True, text=True).stdout
        if machine and machine not in what:
            errors.append("%s is not for %s: %s" % (rel, env.get("TARGET_ARCH"), what.strip()))
        if "not stripped" not in what and "already-stripped" not in skips:
            errors.append("%s is already stripped (QA already-stripped): add "
                          "INSANE_SKIP:%s = \"already-stripped\" with the reason" % (rel, pn))
        if "not stripped" in what and "already-stripped" in skips:
            errors.append("%s is not stripped, yet the recipe skips already-stripped: drop that skip" % rel)

    for error in errors:
        sys.stderr.write("%s: %s: %s\n" % (PROG, pn, error))
    if not errors:
        print("   ok: %s: do_compile + do_install staged %d files (%d ELF), all shipped; drop-in: %s"
              % (pn, len(files), elves, want))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
