#!/usr/bin/env python3
"""Checks a recipe's python3-* RDEPENDS against what its Python code imports,
with oe-core's split of the standard library (python3-manifest.json).

It builds a standard library that holds only the files of the named packages
(and the packages they RDEPEND on, as the manifest says), from a Python of the
build host, and runs the code under test with nothing else on sys.path
(frozen modules off, so `os` and friends come from that directory too):
  runtime  the helper module src/python.rs runs in the embedded interpreter
           (HELPER_SRC, the very text), its functions called as the runtime
           calls them, then `traceback`, which the runtime imports on errors;
  plugin   a plugin file loaded as the runtime loads it (the helper's
           load_plugin), its wheels on the path, its config file parsed.
Then, for each package the recipe names itself, the same run without that
package's own files must fail: a listed package nothing imports is an error,
so the set is minimal as well as sufficient. Run by scripts/check-yocto-layer.

Exit codes: 0 the set is sufficient and minimal, 1 it is not, 2 usage error.
"""

import argparse
import glob
import json
import os
import re
import subprocess
import sys
import tempfile

PROG = "check-yocto-layer"


def load_manifest(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    # The file starts with a comment block ended by "# EOC" (python3's recipe
    # reads it the same way).
    return json.loads(text[text.index("# EOC") + 6:])


def closure(manifest, packages):
    """Manifest keys of PACKAGES (python3-X) and everything they RDEPEND on."""
    todo = [p[len("python3-"):] for p in packages if p.startswith("python3-")]
    unknown = [p for p in todo if p not in manifest]
    seen = set()
    while todo:
        key = todo.pop()
        if key in seen or key not in manifest:
            continue
        seen.add(key)
        todo.extend(manifest[key].get("rdepends", []))
    return seen, ["python3-" + u for u in unknown]


def stdlib_of(python):
    out = subprocess.run([python, "-I", "-c",
                          "import sysconfig; print(sysconfig.get_paths()['stdlib'])"],
                         check=True, capture_output=True, text=True).stdout.strip()
    return out


def populate(manifest, keys, stdlib, dest, drop_own=None):
    """Links the host stdlib files of manifest KEYS into DEST."""
    prefix = "${libdir}/python${PYTHON_MAJMIN}/"
    os.makedirs(os.path.join(dest, "lib-dynload"), exist_ok=True)
    for key in sorted(keys):
        if key == drop_own:
            continue
        for pattern in manifest[key]["files"]:
            if not pattern.startswith(prefix):
                continue
            rel_pattern = pattern[len(prefix):]
            paths = glob.glob(os.path.join(stdlib, rel_pattern))
            # A module that became a package in the manifest's Python (3.14:
            # string/__init__.py) is still X.py in an older host Python.
            if not paths and rel_pattern.endswith("/__init__.py"):
                paths = glob.glob(os.path.join(stdlib, rel_pattern[:-len("/__init__.py")] + ".py"))
            for path in paths:
                rel = os.path.relpath(path, stdlib)
                target = os.path.join(dest, rel)
                if os.path.lexists(target):
                    continue
                os.makedirs(os.path.dirname(target), exist_ok=True)
                os.symlink(path, target)


def helper_source(python_rs):
    """The HELPER_SRC raw string of src/python.rs."""
    with open(python_rs, encoding="utf-8") as f:
        text = f.read()
    m = re.search(r'const HELPER_SRC: &CStr = cr#"(.*?)"#;', text, re.S)
    if not m:
        sys.exit("%s: error: no HELPER_SRC in %s" % (PROG, python_rs))
    return m.group(1)


DRIVER = r'''
import sys
stdlib, helper_file, mode = sys.argv[1], sys.argv[2], sys.argv[3]
sys.path[:] = [stdlib, stdlib + "/lib-dynload"]
helper = {}
exec(compile(open(helper_file).read(), "src/python.rs:HELPER_SRC", "exec"), helper)
print(sorted(helper["info"]().items()))
helper["set_paths"]([], [], False)
helper["flush_stdio"]()
import traceback  # what the runtime imports to format a plugin's exception
traceback.format_exception(ValueError("x"))
if mode == "plugin":
    name, path, config, extra = sys.argv[4], sys.argv[5], sys.argv[6], sys.argv[7:]
    helper["set_paths"](extra, [], False)
    module = helper["load_plugin"]("openplc_plugin_" + name, path)
    if config.endswith((".yaml", ".yml")):
        import yaml
        print(yaml.safe_load(open(config)))
    elif config.endswith(".json"):
        import json
        print(json.load(open(config)))
    if name == "image_logger":
        import tabulate
        print(tabulate.tabulate([["%IW0", 1]], headers=["address", "value"]))
'''


def run(python, stdlib_dir, helper_file, mode, plugin_args):
    cmd = [python, "-I", "-S", "-X", "frozen_modules=off", "-c", DRIVER,
           stdlib_dir, helper_file, mode] + plugin_args
    return subprocess.run(cmd, capture_output=True, text=True)


def main():
    p = argparse.ArgumentParser(prog=PROG + " (check_python_rdepends.py)")
    p.add_argument("--manifest", required=True)
    p.add_argument("--python", required=True, help="a Python of the build host")
    p.add_argument("--python-rs", required=True, help="src/python.rs")
    p.add_argument("--label", required=True, help="what is checked, for messages")
    p.add_argument("--rdepends", required=True, help="the recipe's own RDEPENDS")
    p.add_argument("--given", default="", help="packages pulled in by other dependencies")
    p.add_argument("--plugin", nargs=3, metavar=("NAME", "FILE", "CONFIG"))
    p.add_argument("--path", action="append", default=[],
                   help="more sys.path entries for the plugin (wheels, the capsule)")
    args = p.parse_args()

    manifest = load_manifest(args.manifest)
    own = list(dict.fromkeys(x for x in args.rdepends.split() if x.startswith("python3-")))
    given_all = set(args.given.split())
    given = [x for x in dict.fromkeys(args.given.split()) if x.startswith("python3-") and x not in own]
    keys, unknown = closure(manifest, own + given)
    if unknown:
        print("%s: %s: RDEPENDS names %s, which oe-core's python3 does not provide"
              % (PROG, args.label, " ".join(unknown)), file=sys.stderr)
        return 1
    stdlib = stdlib_of(args.python)
    mode = "plugin" if args.plugin else "runtime"
    plugin_args = list(args.plugin or []) + args.path

    with tempfile.TemporaryDirectory() as tmp:
        helper_file = os.path.join(tmp, "helper.py")
        with open(helper_file, "w", encoding="utf-8") as f:
            f.write(helper_source(args.python_rs))

        full = os.path.join(tmp, "full")
        populate(manifest, keys, stdlib, full)
        result = run(args.python, full, helper_file, mode, plugin_args)
        if result.returncode != 0:
            last = (result.stderr.strip().splitlines() or ["(no output)"])[-1]
            print("%s: %s: does not run with only %s installed: %s"
                  % (PROG, args.label, " ".join(sorted("python3-" + k for k in keys)), last),
                  file=sys.stderr)
            print(result.stderr, file=sys.stderr)
            return 1

        errors = 0
        for package in own:
            key = package[len("python3-"):]
            if key == "core":
                continue  # the interpreter itself: nothing runs without it
            if package in given_all:
                # Its dependencies need it anyway: dropping it proves nothing.
                print("   %s: names %s, which its dependencies need too" % (args.label, package))
                continue
            without = os.path.join(tmp, "without-" + key)
            populate(manifest, keys, stdlib, without, drop_own=key)
            result = run(args.python, without, helper_file, mode, plugin_args)
            if result.returncode == 0:
                print("%s: %s: RDEPENDS names %s, but nothing imports from it" % (
                    PROG, args.label, package), file=sys.stderr)
                errors += 1
            else:
                last = (result.stderr.strip().splitlines() or [""])[-1]
                print("   %s: needs %s (without it: %s)" % (args.label, package, last))
        if errors:
            return 1
    also = " (and %s from its dependencies)" % " ".join(given) if given else ""
    print("   ok: %s runs with %s%s" % (args.label, " ".join(own), also))
    return 0


if __name__ == "__main__":
    sys.exit(main())
