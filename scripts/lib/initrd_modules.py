"""Load order of kernel modules for a tiny initrd (used by scripts/make-qemu-image).

    python3 initrd_modules.py MODULES_DIR NAME...

Reads MODULES_DIR/modules.dep (the kernel's, as depmod writes it) and prints,
one per line, the module files (paths relative to MODULES_DIR) that loading
every NAME needs, each after the modules it depends on, each once. A NAME with
no module file is built into the kernel and is skipped (reported on stderr).
Names match with "-" and "_" alike, as modprobe does; compressed modules
(.ko.xz, .ko.zst, .ko.gz) count. Exits 1 when modules.dep cannot be read.
"""

import os
import sys


def module_name(path):
    base = os.path.basename(path)
    return base.split(".ko")[0].replace("-", "_")


def load_order(modules_dep_text, names):
    """(ordered module paths, names not found) for `names`."""
    deps = {}
    for line in modules_dep_text.splitlines():
        path, sep, rest = line.partition(":")
        if sep:
            deps[path.strip()] = rest.split()
    by_name = {module_name(p): p for p in deps}
    order = []

    def visit(path, seen):
        if path in order or path in seen:
            return
        seen.add(path)
        # modules.dep lists the deepest dependency last: load it first.
        for dep in reversed(deps.get(path, [])):
            visit(dep, seen)
        order.append(path)

    missing = []
    for name in names:
        path = by_name.get(name.replace("-", "_"))
        if path is None:
            missing.append(name)
        else:
            visit(path, set())
    return order, missing


def main(argv):
    if len(argv) < 2 or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    modules_dir, names = argv[0], argv[1:]
    path = os.path.join(modules_dir, "modules.dep")
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        print("initrd_modules: cannot read %s: %s" % (path, exc.strerror or exc), file=sys.stderr)
        return 1
    order, missing = load_order(text, names)
    for name in missing:
        print("initrd_modules: %s: no module file in %s (built into the kernel)" % (name, path), file=sys.stderr)
    for p in order:
        print(p)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
