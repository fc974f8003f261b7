#!/usr/bin/env python3
"""Runs a plugin recipe's do_compile and do_install, exactly as `bitbake -e`
expanded them from openplc-plugin-venv.bbclass, outside bitbake: the build
directories are moved under --workdir, the scripts of openplc-tools-native are
the repository's, and python3-native is a Python of this host. So the class's
shell code, its options to build-target-wheel, build-target-venv and
install-plugin, and what it stages into ${D} are exercised for real. do_fetch
and do_unpack are stood in for: every http(s) SRC_URI entry is downloaded once
into --downloads, checked against the recipe's sha256, and put where
";subdir=" says. For a recipe with sdists the target's toolchain is Debian's
cross gcc for TARGET_ARCH with the recipe's own flags (bitbake's CC without its
--sysroot, CFLAGS, LDFLAGS) and --sysroot, and the target's sysconfigdata is
the sysroot's, staged as oe-core stages it (python-sysconfigdata/
_sysconfigdata.py with the sysroot's paths); --python must then be of the
target's X.Y. Without sdists the target's Python version may be replaced by
the host Python's (its .pyc files are compiled by it).
Then it checks what was staged the way do_package and QA would see it:
every file is shipped by FILES:${PN} (installed-vs-shipped), the venv's
pyvenv.cfg and .pyc files are there, LICENSE names the plugin's licence and
that of every distribution in the venv (from its METADATA; recipe_licences.py),
the drop-in names the plugin, and every
ELF file is for the target's CPU (arch) and not already stripped unless the
recipe skips already-stripped (QA strips and splits it otherwise).
Run by scripts/check-yocto-layer, not by hand.

Exit 1 when a task fails or a check does not hold.
"""

import argparse
import fnmatch
import hashlib
import os
import re
import shlex
import shutil
import subprocess
import sys
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_recipe_files import decode, read_env  # noqa: E402
from recipe_licences import check_venv  # noqa: E402

PROG = "check-yocto-layer"
# Debian's cross C compilers, by TARGET_ARCH, and their sysroots' triplets.
CROSS_CC = {"aarch64": ("aarch64-linux-gnu-gcc", "aarch64-linux-gnu"),
            "arm": ("arm-linux-gnueabihf-gcc", "arm-linux-gnueabihf")}
# Flags of oe-core's GCC (15) that Debian 12's cross gcc (12) does not know.
NEWER_GCC_ONLY = {"-fcanon-prefix-map"}


def layer_exports(path):
    """The variables the layer (class or recipe) exports: their `bitbake -e`
    history names a file under meta-openplc."""
    out = {}
    block = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("#"):
                block.append(line)
                continue
            m = re.match(r'^export ([A-Za-z_][A-Za-z0-9_]*)="(.*)"$', line.rstrip("\n"))
            if m and any("/meta-openplc/" in b for b in block):
                out[m.group(1)] = m.group(2).replace('\\"', '"')
            block = []
    return out


def fetch(env_path, env, unpackdir, downloads):
    """do_fetch + do_unpack of the http(s) entries: (count of sdists, files)."""
    with open(env_path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    sums = dict(re.findall(r'\[([A-Za-z0-9_.+-]+)\.sha256sum\] "([0-9a-f]{64})"', text))
    sdists = 0
    placed = []
    for url in env["SRC_URI"].split():
        scheme, path, params = decode(url)
        if scheme not in ("http", "https"):
            continue
        name = params.get("name", "default")
        want = sums.get(name)
        if not want:
            raise RuntimeError("SRC_URI entry %s has no SRC_URI[%s.sha256sum]" % (url, name))
        filename = params.get("downloadfilename", os.path.basename(path))
        cached = os.path.join(downloads, filename)
        if not os.path.exists(cached):
            os.makedirs(downloads, exist_ok=True)
            with urllib.request.urlopen(url.split(";")[0], timeout=300) as r, open(cached + ".part", "wb") as out:
                shutil.copyfileobj(r, out)
            os.replace(cached + ".part", cached)
        with open(cached, "rb") as f:
            got = hashlib.sha256(f.read()).hexdigest()
        if got != want:
            raise RuntimeError("%s has sha256 %s, the recipe pins %s" % (cached, got, want))
        dest = os.path.join(unpackdir, params.get("subdir", ""))
        os.makedirs(dest, exist_ok=True)
        shutil.copy(cached, os.path.join(dest, filename))
        placed.append(os.path.join(params.get("subdir", ""), filename))
        sdists += params.get("subdir") == "sdists"
    return sdists, placed


def main():
    p = argparse.ArgumentParser(prog=PROG + " (run_plugin_tasks.py)")
    p.add_argument("--env", required=True, help="the recipe's bitbake -e output")
    p.add_argument("--workdir", required=True, help="an empty directory for WORKDIR")
    p.add_argument("--tools", required=True, help="the repository's scripts/ directory")
    p.add_argument("--python", required=True, help="the host Python standing in for python3-native")
    p.add_argument("--plugin-dir", required=True, help="the plugin's files (what do_unpack fetches)")
    p.add_argument("--downloads", required=True, help="DL_DIR: the SRC_URI files, fetched once")
    p.add_argument("--sysroot", help="the target's Debian sysroot (scripts/make-sysroot), for sdists")
    args = p.parse_args()

    env, functions = read_env(args.env)
    pn = env["PN"]
    version = subprocess.run([args.python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    workdir = os.path.abspath(args.workdir)

    def moved(path):
        return path.replace(env["WORKDIR"], workdir)
    unpackdir = moved(env["UNPACKDIR"])
    name = env["OPENPLC_PLUGIN_NAME"]
    shutil.copytree(args.plugin_dir, os.path.join(unpackdir, name))
    try:
        sdists, placed = fetch(args.env, env, unpackdir, args.downloads)
    except (OSError, RuntimeError) as e:
        sys.stderr.write("%s: %s: fetching SRC_URI: %s\n" % (PROG, pn, e))
        return 1
    task_env = dict(os.environ, SOURCE_DATE_EPOCH=env.get("SOURCE_DATE_EPOCH_FALLBACK", "0"))
    task_env.update(layer_exports(args.env))
    # Longest first: the tools and the Python live under WORKDIR too.
    replacements = sorted([
        (env["OPENPLC_TOOLS"], os.path.abspath(args.tools)),
        (env["PYTHON"], args.python),
        (env["WORKDIR"], workdir),
    ], key=lambda r: -len(r[0]))
    if sdists:
        if version != env["PYTHON_BASEVERSION"]:
            sys.stderr.write("%s: %s: --python %s is Python %s, the target's is %s: sdists are built by "
                             "the target's X.Y\n" % (PROG, pn, args.python, version, env["PYTHON_BASEVERSION"]))
            return 1
        compiler = toolchain(env, args.sysroot, moved)
        if isinstance(compiler, str):
            sys.stderr.write("%s: %s: %s\n" % (PROG, pn, compiler))
            return 1
        task_env.update(compiler)
        print("   %s: %d sdist(s) built with %s (bitbake's CC flags, CFLAGS, LDFLAGS), Python %s, "
              "the sysroot's sysconfigdata" % (pn, sdists, task_env["CC"].split()[0], version))
    else:
        replacements.append(("--python-version " + env["PYTHON_BASEVERSION"], "--python-version " + version))

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
        result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=task_env)
        if result.returncode != 0:
            sys.stderr.write("%s: %s: %s failed (exit %d):\n%s%s" % (
                PROG, pn, task, result.returncode, result.stdout, result.stderr))
            return 1
    status = check_staged(env, env["D"].replace(env["WORKDIR"], workdir), version)
    if sdists and status == 0:
        status = check_built(env, moved(env["D"]))
    return status


def toolchain(env, sysroot, moved):
    """The compiler variables of the task, or a message saying what is missing."""
    arch = env.get("TARGET_ARCH", "")
    cross = CROSS_CC.get(arch)
    if cross is None or shutil.which(cross[0]) is None:
        return "no Debian cross compiler for TARGET_ARCH %r (scripts/install-deps --cross)" % arch
    if not sysroot:
        return "sdists need --sysroot (scripts/make-sysroot)"
    triplet = cross[1]
    found = os.path.join(sysroot, "usr/lib/python%s/_sysconfigdata__linux_%s.py"
                         % (env["PYTHON_BASEVERSION"], triplet))
    if not os.path.isfile(found):
        return "no %s: the sysroot's Python is not %s" % (found, env["PYTHON_BASEVERSION"])
    # oe-core stages the target's sysconfigdata as python-sysconfigdata/_sysconfigdata.py
    # with the recipe sysroot's paths: the same, made from Debian's.
    staged = os.path.join(moved(env["STAGING_LIBDIR"]), "python-sysconfigdata")
    os.makedirs(staged, exist_ok=True)
    with open(found, encoding="utf-8") as f:
        text = f.read()
    text = text.replace("'/usr/", "'%s/usr/" % sysroot).replace(" -I/usr/", " -I%s/usr/" % sysroot)
    with open(os.path.join(staged, "_sysconfigdata.py"), "w", encoding="utf-8") as f:
        f.write(text)

    def supported(flags):
        return " ".join(w for w in flags.split() if w not in NEWER_GCC_ONLY)
    cc_flags = [w for w in shlex.split(env["CC"])[1:] if not w.startswith("--sysroot")]
    cc = " ".join([cross[0]] + cc_flags + ["--sysroot=" + sysroot])
    return {"CC": cc, "CCLD": cc, "LDSHARED": cc + " -shared", "CFLAGS": supported(env.get("CFLAGS", "")),
            "CPPFLAGS": env.get("CPPFLAGS", ""), "LDFLAGS": supported(env.get("LDFLAGS", ""))}


def check_built(env, dest):
    """The venv's compiled files (built here or opted in) are the target's: readelf's view
    of ELF machine and (ARM) float ABI and architecture."""
    pn = env["PN"]
    venv = os.path.join(dest, env["OPENPLC_VENV"].lstrip("/"))
    sos = sorted(os.path.join(top, n) for top, _, names in os.walk(venv) for n in names if n.endswith(".so"))
    if not sos:
        sys.stderr.write("%s: %s: the venv has no compiled file, though sdists were built\n" % (PROG, pn))
        return 1
    want = {"aarch64": ["Machine:                           AArch64"],
            "arm": ["Machine:                           ARM"]}.get(env["TARGET_ARCH"], [])
    if env["TARGET_ARCH"] == "arm":
        want.append("hard-float ABI" if env.get("TARGET_FPU") == "hard" else "soft-float ABI")
    # An ARMv7 tune (the class's OPENPLC_WHEEL_ARCH) builds ARMv7 code.
    v7 = env.get("OPENPLC_WHEEL_ARCH") == "armv7l"
    if v7:
        want.append("Tag_CPU_arch: v7")
    errors = []
    for so in sos:
        out = subprocess.run(["readelf", "-hA", so], capture_output=True, text=True).stdout
        missing = [w for w in want if w not in out]
        if missing:
            errors.append("%s: readelf does not show %s" % (os.path.relpath(so, dest), ", ".join(missing)))
    for e in errors:
        sys.stderr.write("%s: %s: %s\n" % (PROG, pn, e))
    if not errors:
        shown = [w.split()[-1] if w.startswith("Machine") else w for w in want]
        print("   ok: %s: %s (built from sdists here or from opted-in binary wheels: %s) %s %s (readelf)"
              % (pn, ", ".join(os.path.basename(s) for s in sos),
                 env.get("OPENPLC_PLUGIN_BINARY_WHEELS", "").strip() or "none",
                 "is" if len(sos) == 1 else "are", ", ".join(shown)))
    return 1 if errors else 0


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
        # Every distribution in the venv is named by LICENSE (what create-spdx
        # writes as the package's declared licence).
        errors.extend(check_venv(site, env.get("LICENSE", "")))
    else:
        errors.extend(check_venv(os.path.join(venv, "no-venv"), env.get("LICENSE", "")))
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
