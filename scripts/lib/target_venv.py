#!/usr/bin/env python3
"""The parts of scripts/build-target-venv and scripts/fetch-target-wheels that are
awkward in bash: wheel-tag checks, fixing up what `pip install --target` leaves
behind, RECORD rewriting and reading pip's JSON report.

It runs under the *build host's* python3 (3.7 or newer, stdlib only), never under
the target's Python: nothing here imports or compiles target code. Each
subcommand is a step of those scripts; run them, not this file, by hand.

Exit codes: 0 ok, 1 unexpected failure, 2 usage, 4 a wheel does not fit the
target (the message names the wheel).
"""

import argparse
import base64
import csv
import hashlib
import io
import json
import os
import re
import shutil
import sys
import urllib.parse

PROG = "target_venv.py"  # replaced by --prog: errors carry the calling script's name

# Legacy manylinux names and the glibc 2.N they stand for (PEP 600).
LEGACY_MANYLINUX = {"manylinux1": 5, "manylinux2010": 12, "manylinux2014": 17}

# Oldest glibc minor any manylinux tag names; expanding a target tag downwards
# stops here.
OLDEST_GLIBC_MINOR = 5

# A console script's shebang must stay below the kernel's limit (BINPRM_BUF_SIZE
# was 128 bytes before Linux 5.1, and boards run old kernels).
MAX_SHEBANG = 127


class Refused(Exception):
    """A wheel or an installed distribution does not fit the target."""


def fail(code, message):
    sys.stderr.write("%s: error: %s\n" % (PROG, message))
    sys.exit(code)


def normalize(name):
    """PEP 503 name: what pip compares, so `PyYAML` and `pyyaml` are one."""
    return re.sub(r"[-_.]+", "-", name).lower()


# --------------------------------------------------------------------------- tags


def parse_platform(tag):
    """(family, minor, arch) for manylinux/musllinux tags, else None."""
    m = re.fullmatch(r"(manylinux1|manylinux2010|manylinux2014)_(.+)", tag)
    if m:
        return ("manylinux", LEGACY_MANYLINUX[m.group(1)], m.group(2))
    m = re.fullmatch(r"manylinux_2_(\d+)_(.+)", tag)
    if m:
        return ("manylinux", int(m.group(1)), m.group(2))
    m = re.fullmatch(r"musllinux_1_(\d+)_(.+)", tag)
    if m:
        return ("musllinux", int(m.group(1)), m.group(2))
    return None


def expand_platforms(tags):
    """Every platform tag a target accepts, newest first.

    A target whose C library is glibc 2.36 runs wheels built for any older
    manylinux_2_N. pip only expands the legacy names (manylinux2014 and
    manylinux2010), not manylinux_2_N, so the scripts hand pip this whole list.
    """
    out = []
    for tag in tags:
        parsed = parse_platform(tag)
        if parsed is None:
            out.append(tag)
            continue
        family, minor, arch = parsed
        if family == "musllinux":
            out.extend("musllinux_1_%d_%s" % (n, arch) for n in range(minor, -1, -1))
            continue
        for n in range(minor, OLDEST_GLIBC_MINOR - 1, -1):
            out.append("manylinux_2_%d_%s" % (n, arch))
            for legacy, legacy_minor in LEGACY_MANYLINUX.items():
                if legacy_minor == n:
                    out.append("%s_%s" % (legacy, arch))
    seen = set()
    return [t for t in out if not (t in seen or seen.add(t))]


class Target:
    def __init__(self, version, platforms):
        m = re.fullmatch(r"(\d+)\.(\d+)(\.\d+)?", version)
        if not m:
            raise ValueError("bad Python version %r (want X.Y)" % version)
        self.major, self.minor = int(m.group(1)), int(m.group(2))
        self.abi = "cp%d%d" % (self.major, self.minor)
        self.given_platforms = list(platforms)
        self.platforms = set(expand_platforms(platforms))

    def describe(self):
        return "CPython %d.%d (%s) on %s" % (
            self.major,
            self.minor,
            self.abi,
            " or ".join(self.given_platforms),
        )

    def python_ok(self, py, abi):
        """Whether interpreter tag `py` with ABI tag `abi` runs on the target.

        The rules CPython installers apply: cpXY with its own ABI; cp3N-abi3
        for any N up to the target's minor (the stable ABI); pure tags
        (py3, py3N with N <= minor, cpXY) with ABI `none`.
        """
        m = re.fullmatch(r"(py|cp)(\d)(\d*)", py)
        if not m:
            return False
        kind, major, minor = m.group(1), int(m.group(2)), m.group(3)
        minor = int(minor) if minor else None
        if major != self.major:
            return False
        if abi == self.abi:
            return kind == "cp" and minor == self.minor
        if abi == "abi3":
            return kind == "cp" and minor is not None and minor <= self.minor
        if abi == "none":
            if kind == "cp":
                return minor == self.minor
            return minor is None or minor <= self.minor
        return False

    def platform_ok(self, plat):
        return plat == "any" or plat in self.platforms

    def why_not(self, pys, abis, plats):
        """None if some tag triple fits, else the reason it does not."""
        for py in pys:
            for abi in abis:
                for plat in plats:
                    if self.python_ok(py, abi) and self.platform_ok(plat):
                        return None
        if not any(self.platform_ok(p) for p in plats):
            return "built for platform %s" % ".".join(plats)
        return "built for Python %s / ABI %s" % (".".join(pys), ".".join(abis))


def parse_wheel_name(filename):
    """(name, version, pys, abis, plats) from a wheel file name, or None."""
    if not filename.endswith(".whl"):
        return None
    parts = filename[: -len(".whl")].split("-")
    if len(parts) not in (5, 6):
        return None
    py, abi, plat = parts[-3:]
    return (parts[0], parts[1], py.split("."), abi.split("."), plat.split("."))


# ------------------------------------------------------------------ requirements


def read_requirements(path, seen=None):
    """Yield (name, version-or-None, wheel-path-or-None) for each requirement.

    Understands what pinned requirement files contain: `name==version`,
    extras, environment markers, `--hash` options, line continuations,
    comments, nested `-r FILE`, and direct paths to wheel files.
    """
    seen = seen if seen is not None else set()
    path = os.path.abspath(path)
    if path in seen:
        return
    seen.add(path)
    with open(path, encoding="utf-8") as f:
        text = f.read().replace("\\\n", " ")
    for line in text.splitlines():
        line = re.sub(r"(^|\s)#.*", "", line).strip()
        if not line:
            continue
        m = re.match(r"(-r|--requirement)(\s+|=)(\S+)", line)
        if m:
            nested = os.path.join(os.path.dirname(path), m.group(3))
            yield from read_requirements(nested, seen)
            continue
        if line.startswith("-"):
            continue
        first = line.split(";")[0].split()[0]
        if first.endswith(".whl"):
            parsed = parse_wheel_name(os.path.basename(first))
            if parsed:
                yield (parsed[0], parsed[1], first)
            continue
        m = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(===?\s*([^\s;,]+))?", line)
        if m:
            yield (m.group(1), m.group(4), None)


def cmd_platforms(args):
    for tag in expand_platforms(args.platform):
        print(tag)


def cmd_diagnose(args):
    """Explain why the wheelhouse has nothing pip could install.

    Called after pip failed; pip itself only says "no matching distribution",
    which does not tell a maintainer that the wheel is there but for the
    wrong CPU or Python.
    """
    target = Target(args.python_version, args.platform)
    wheels = sorted(f for f in os.listdir(args.wheelhouse) if f.endswith(".whl"))
    problems = []
    for name, version, direct in read_requirements(args.requirements):
        if direct:
            candidates = [os.path.basename(direct)]
        else:
            candidates = []
            for w in wheels:
                parsed = parse_wheel_name(w)
                if parsed and normalize(parsed[0]) == normalize(name):
                    if version is None or parsed[1] == version:
                        candidates.append(w)
        spec = name + ("==" + version if version else "")
        if not candidates:
            problems.append(
                "no wheel for %s in %s; fetch it with scripts/fetch-target-wheels"
                % (spec, args.wheelhouse)
            )
            continue
        reasons = []
        for w in candidates:
            _, _, pys, abis, plats = parse_wheel_name(w)
            why = target.why_not(pys, abis, plats)
            if why is None:
                reasons = None
                break
            reasons.append("%s (%s)" % (w, why))
        if reasons:
            problems.append(
                "refused for %s: %s; the target is %s; fetch the right wheel with "
                "scripts/fetch-target-wheels" % (spec, ", ".join(reasons), target.describe())
            )
    for p in problems:
        sys.stderr.write("%s: error: %s\n" % (PROG, p))
    return 4 if problems else 0


def dist_infos(site):
    return sorted(
        os.path.join(site, d) for d in os.listdir(site) if d.endswith(".dist-info")
    )


def cmd_check_installed(args):
    """Second line of defence after pip: every installed wheel's own WHEEL file
    must name a tag the target runs (catches a wheel pip took for a direct
    path or URL requirement, and any disagreement between pip's rules and
    ours)."""
    target = Target(args.python_version, args.platform)
    bad = []
    for info in dist_infos(args.site):
        tags = []
        with open(os.path.join(info, "WHEEL"), encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("tag:"):
                    tags.append(line.split(":", 1)[1].strip())
        if not tags:
            # Very old wheels carry no Tag lines; pip already matched the file name.
            continue
        fits = any(
            target.why_not([py], [abi], [plat]) is None
            for py, abi, plat in (t.split("-") for t in tags)
        )
        if not fits:
            bad.append("%s (wheel tags %s)" % (os.path.basename(info), ", ".join(tags)))
    if bad:
        fail(4, "installed wheels that do not fit %s: %s" % (target.describe(), "; ".join(bad)))


# ------------------------------------------------------------------ RECORD fixups


def record_hash(data):
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def read_record(path):
    with open(path, newline="", encoding="utf-8") as f:
        return [row for row in csv.reader(f) if row]


def write_record(path, rows):
    """Sorted, with pip's line ending, so two builds write the same bytes."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    for row in sorted(rows, key=lambda r: r[0]):
        writer.writerow(row)
    with open(path, "w", newline="", encoding="utf-8") as f:
        f.write(buf.getvalue())


def rewrite_shebang(path, interpreter):
    """Point a script that pip wrote for the build host's Python at the venv's
    python on the target. Returns True if the file changed."""
    with open(path, "rb") as f:
        data = f.read()
    # When the build host's interpreter path is too long for #! (a Yocto native
    # sysroot easily is), pip writes a /bin/sh launcher of three lines instead:
    # "#!/bin/sh", "'''exec' /long/path/python3 "$0" "$@"" and "' '''". The
    # target's path is short, so one plain #! line replaces all three.
    launcher = re.match(rb"#!/bin/sh\n'''exec' [^\n]*\n' '''\n", data)
    if launcher:
        rest, nl = data[launcher.end():], b"\n"
    elif data.startswith(b"#!"):
        first, nl, rest = data.partition(b"\n")
        if b"python" not in first:
            return False
    else:
        return False
    new = b"#!" + interpreter.encode() + nl + rest
    if new == data:
        return False
    with open(path, "wb") as f:
        f.write(new)
    return True


def cmd_relocate(args):
    """Turn pip's `--target` layout into a venv's.

    `pip install --target SITE` puts scripts (and other .data files) into
    SITE/bin, SITE/share, ... and records them in RECORD as `../../bin/x`,
    relative to a scratch directory. In a venv they belong in PREFIX/bin,
    three levels above site-packages. pip also wrote the build host's Python
    into each script's shebang, and `direct_url.json` (a file:// URL of the
    build host) for requirements given as paths.
    """
    site, venv = args.site, args.venv
    interpreter = args.prefix.rstrip("/") + "/bin/python3"
    if len(interpreter) + 2 > MAX_SHEBANG:
        fail(2, "--prefix %s is too long for a script's #! line (%d bytes at most)"
             % (args.prefix, MAX_SHEBANG - len("/bin/python3") - 2))
    moved_tops = set()
    for info in dist_infos(site):
        record_path = os.path.join(info, "RECORD")
        rows = read_record(record_path)
        out = []
        for row in rows:
            rel = row[0]
            if rel.endswith("direct_url.json") and os.path.dirname(rel) == os.path.basename(info):
                os.unlink(os.path.join(site, rel))
                continue
            if rel.startswith("../../"):
                inner = rel[len("../../"):]
                src = os.path.join(site, inner)
                dst = os.path.join(venv, inner)
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                shutil.move(src, dst)
                moved_tops.add(inner.split("/")[0])
                rel = "../../../" + inner
                row = [rel] + row[1:]
                if inner.startswith("bin/") and rewrite_shebang(dst, interpreter):
                    with open(dst, "rb") as f:
                        data = f.read()
                    row = [rel, record_hash(data), str(len(data))]
            out.append(row)
        write_record(record_path, out)
    # The scratch directories pip left inside site-packages are empty now.
    for top in sorted(moved_tops):
        path = os.path.join(site, top)
        for root, dirs, files in os.walk(path, topdown=False):
            if files:
                fail(1, "%s still has files RECORD does not list: %s" % (root, files))
            os.rmdir(root)


def cmd_record_pyc(args):
    """List the .pyc files compiled for the target in each RECORD (as pip does
    when it compiles), so tools that read RECORD see every installed file."""
    site = args.site
    for info in dist_infos(site):
        record_path = os.path.join(info, "RECORD")
        rows = read_record(record_path)
        listed = {r[0] for r in rows}
        for rel in sorted(listed):
            if not rel.endswith(".py") or rel.startswith("../"):
                continue
            d, base = os.path.split(rel)
            pyc = "/".join(p for p in (d, "__pycache__", base[:-3] + "." + args.cache_tag + ".pyc") if p)
            if pyc not in listed and os.path.exists(os.path.join(site, pyc)):
                rows.append([pyc, "", ""])
        write_record(record_path, rows)


# ------------------------------------------------------------------- pip report


def cmd_report(args):
    """Print the wheels of a `pip install --dry-run --report` resolution, with
    sha256 and URL, in the formats the image recipes take."""
    with open(args.report, encoding="utf-8") as f:
        report = json.load(f)
    entries = []
    for item in report.get("install", []):
        info = item.get("download_info", {})
        url = info.get("url", "")
        filename = urllib.parse.unquote(os.path.basename(urllib.parse.urlparse(url).path))
        local = os.path.join(args.wheelhouse, filename)
        if not os.path.exists(local):
            fail(1, "pip resolved %s but it is not in %s; run scripts/fetch-target-wheels again"
                 % (filename, args.wheelhouse))
        with open(local, "rb") as f:
            actual = hashlib.sha256(f.read()).hexdigest()
        hashes = info.get("archive_info", {}).get("hashes", {})
        expected = hashes.get("sha256")
        if expected and expected != actual:
            fail(1, "%s in %s has sha256 %s but the index says %s; delete it and fetch again"
                 % (filename, args.wheelhouse, actual, expected))
        name = normalize(item.get("metadata", {}).get("name", filename.split("-")[0]))
        entries.append((args.name_prefix + name, filename, actual, url))
    print_entries(sorted(entries), args.format, args.subdir)


def print_entries(entries, format, subdir):
    """Prints (name, filename, sha256, url) entries in the recipes' formats."""
    args = argparse.Namespace(format=format)
    formats = ["sha256sum", "bitbake", "buildroot"] if args.format == "all" else [args.format]
    for fmt in formats:
        if args.format == "all":
            print("# %s" % {"sha256sum": "sha256sum -c (run in the wheelhouse)",
                            "bitbake": "BitBake recipe (SRC_URI)",
                            "buildroot": "Buildroot package (.hash)"}[fmt])
        for name, filename, digest, url in entries:
            remote = url.startswith(("https://", "http://"))
            if fmt == "sha256sum":
                print("%s  %s" % (digest, filename))
            elif fmt == "bitbake":
                if not remote:
                    print("# %s came from %s, not an index: no URL for SRC_URI" % (filename, url))
                    continue
                # unpack=0: a wheel is a zip, and the venv builder wants the file.
                print('SRC_URI += "%s;name=%s;downloadfilename=%s;unpack=0;subdir=%s"'
                      % (url, name, filename, subdir))
                print('SRC_URI[%s.sha256sum] = "%s"' % (name, digest))
            elif fmt == "buildroot":
                print("# %s" % url)
                print("sha256  %s  %s" % (digest, filename))
        if args.format == "all" and fmt != formats[-1]:
            print()


def cmd_fetch_sdist(args):
    """Download the sdist of NAME==VERSION from a PEP 691 (JSON) simple index,
    check its sha256 against the index, and print it like `report` does. pip
    has no way to download an sdist without running its build backend."""
    import urllib.request
    entries = []
    for spec in args.sdist:
        m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!_-]+)", spec)
        if not m:
            fail(2, "--sdist %r is not NAME==VERSION" % spec)
        name, version = normalize(m.group(1)), m.group(2)
        index = args.index_url.rstrip("/") + "/" + name + "/"
        req = urllib.request.Request(index, headers={"Accept": "application/vnd.pypi.simple.v1+json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                files = json.load(r).get("files", [])
        except (OSError, ValueError) as e:
            fail(1, "cannot read %s: %s" % (index, e))
        stem = re.sub(r"[-_.]+", "_", name).lower() + "-" + version
        found = [f for f in files if f.get("filename", "").lower() in
                 (stem + ".tar.gz", stem.replace("_", "-") + ".tar.gz", stem + ".zip")]
        if not found:
            fail(1, "%s has no sdist of %s %s" % (index, name, version))
        f = found[0]
        filename, url = f["filename"], urllib.parse.urljoin(index, f["url"])
        expected = f.get("hashes", {}).get("sha256")
        if not expected:
            fail(1, "%s gives no sha256 for %s" % (index, filename))
        local = os.path.join(args.dest, filename)
        if not os.path.exists(local):
            sys.stderr.write("%s: downloading %s\n" % (PROG, url))
            with urllib.request.urlopen(url, timeout=300) as r, open(local + ".part", "wb") as out:
                shutil.copyfileobj(r, out)
            os.replace(local + ".part", local)
        with open(local, "rb") as fh:
            actual = hashlib.sha256(fh.read()).hexdigest()
        if actual != expected:
            fail(1, "%s has sha256 %s but the index says %s; delete it and fetch again"
                 % (local, actual, expected))
        entries.append((name + "-sdist", filename, actual, url.split("#")[0]))
    print_entries(sorted(entries), args.format, args.subdir)


# -------------------------------------------------------------------------- main


def main(argv):
    global PROG
    parser = argparse.ArgumentParser(prog="target_venv.py", description=__doc__)
    parser.add_argument("--prog", default=PROG, help="name to put in front of errors")
    sub = parser.add_subparsers(dest="command")
    sub.required = True

    def targeted(p):
        p.add_argument("--python-version", required=True)
        p.add_argument("--platform", action="append", required=True)

    p = sub.add_parser("platforms", help="the platform tags a target accepts")
    p.add_argument("--platform", action="append", required=True)
    p.set_defaults(func=cmd_platforms)

    p = sub.add_parser("diagnose", help="explain wheels that do not fit the target")
    targeted(p)
    p.add_argument("--wheelhouse", required=True)
    p.add_argument("--requirements", required=True)
    p.set_defaults(func=cmd_diagnose)

    p = sub.add_parser("check-installed", help="check installed wheels' tags")
    targeted(p)
    p.add_argument("--site", required=True)
    p.set_defaults(func=cmd_check_installed)

    p = sub.add_parser("relocate", help="move pip --target output into venv layout")
    p.add_argument("--site", required=True)
    p.add_argument("--venv", required=True)
    p.add_argument("--prefix", required=True)
    p.set_defaults(func=cmd_relocate)

    p = sub.add_parser("record-pyc", help="add compiled .pyc files to RECORD")
    p.add_argument("--site", required=True)
    p.add_argument("--cache-tag", required=True)
    p.set_defaults(func=cmd_record_pyc)

    p = sub.add_parser("report", help="print wheels of a pip report with sha256")
    p.add_argument("--report", required=True)
    p.add_argument("--wheelhouse", required=True)
    p.add_argument("--format", choices=["all", "sha256sum", "bitbake", "buildroot"], default="all")
    p.add_argument("--subdir", default="wheelhouse", help="SRC_URI subdir= of the files")
    p.add_argument("--name-prefix", default="", help="put in front of each SRC_URI name=")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("fetch-sdist", help="download sdists, check and print their sha256")
    p.add_argument("--sdist", action="append", required=True, help="NAME==VERSION")
    p.add_argument("--dest", required=True)
    p.add_argument("--index-url", default="https://pypi.org/simple")
    p.add_argument("--format", choices=["all", "sha256sum", "bitbake", "buildroot"], default="all")
    p.add_argument("--subdir", default="sdists")
    p.set_defaults(func=cmd_fetch_sdist)

    args = parser.parse_args(argv)
    PROG = args.prog
    try:
        return args.func(args) or 0
    except ValueError as e:
        fail(2, str(e))
    except OSError as e:
        fail(1, "%s: %s" % (getattr(e, "filename", "") or "", e.strerror or e))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
