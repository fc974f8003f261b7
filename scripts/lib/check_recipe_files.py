#!/usr/bin/env python3
"""Checks, from a recipe's `bitbake -e` output, that every file the recipe
references exists: each file:// SRC_URI entry is found on FILESPATH (as
bitbake's local fetcher would find it), each LIC_FILES_CHKSUM file exists and
has the md5 the recipe states (over beginline..endline, as insane.bbclass
computes it), and each ${S}/... path named in do_install is one the fetched
files provide. Run by scripts/check-yocto-layer, not by hand.

Exit codes: 0 all found, 1 something is missing or differs, 2 usage error.
"""

import argparse
import hashlib
import os
import re
import sys

PROG = "check-yocto-layer"


def read_env(path):
    """Variables and shell functions of a `bitbake -e` dump."""
    variables = {}
    functions = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = f.read().split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        m = re.match(r'^(?:export )?([A-Za-z0-9_:${}.+/-]+)="(.*)"$', line)
        if m:
            variables[m.group(1)] = m.group(2).replace('\\"', '"').replace("\\\\", "\\")
        m = re.match(r"^([A-Za-z0-9_:-]+)\(\) \{$", line)
        if m:
            body = []
            i += 1
            while i < len(lines) and lines[i] != "}":
                body.append(lines[i])
                i += 1
            functions[m.group(1)] = "\n".join(body)
        i += 1
    return variables, functions


def decode(url):
    """(scheme, path, params) of a bitbake URL."""
    head, _, rest = url.partition(";")
    scheme, _, path = head.partition("://")
    params = dict(p.split("=", 1) for p in rest.split(";") if "=" in p)
    return scheme, path, params


def md5_lines(path, begin, end):
    """What insane.bbclass's populate_lic_qa_checksum compares."""
    m = hashlib.md5()
    with open(path, "rb") as f:
        if not begin and not end:
            m.update(f.read())
            return m.hexdigest()
        for number, line in enumerate(f, 1):
            if number < begin:
                continue
            if end and number > end:
                break
            m.update(line)
    return m.hexdigest()


def main():
    parser = argparse.ArgumentParser(prog=PROG + " (check_recipe_files.py)")
    parser.add_argument("--env", required=True, help="the recipe's bitbake -e output")
    parser.add_argument("--map", action="append", default=[], metavar="FROM=TO",
                        help="show paths under FROM as under TO in messages")
    parser.add_argument("--git", action="append", default=[], metavar="NAME=DIR",
                        help="DIR holds what the git SRC_URI entry name=NAME fetches (its pinned commit)")
    args = parser.parse_args()
    gits = dict(g.split("=", 1) for g in args.git if "=" in g)
    maps = [m.split("=", 1) for m in args.map if "=" in m]

    def shown(path):
        for src, dst in maps:
            if path == src or path.startswith(src.rstrip("/") + "/"):
                return dst + path[len(src):]
        return path

    env, functions = read_env(args.env)
    pn = env.get("PN", os.path.basename(args.env))
    errors = []
    filespath = [p for p in env.get("FILESPATH", "").split(":") if p]
    unpackdir = env.get("UNPACKDIR", "")
    s_dir = env.get("S", "")

    # Where each fetched local file lands (dest) and where it comes from (local).
    fetched = []
    for url in env.get("SRC_URI", "").split():
        scheme, path, params = decode(url)
        if scheme == "git" and params.get("name") in gits:
            # The git fetcher unpacks into UNPACKDIR/destsuffix.
            dest = os.path.normpath(os.path.join(unpackdir, params.get("destsuffix", "git")))
            fetched.append((dest, os.path.normpath(gits[params["name"]])))
            continue
        if scheme != "file":
            continue
        if os.path.isabs(path):
            local = path if os.path.exists(path) else None
        else:
            local = next((os.path.join(d, path) for d in filespath
                          if os.path.exists(os.path.join(d, path))), None)
        if local is None:
            errors.append("%s: SRC_URI entry file://%s: no such file on FILESPATH (%s, ...)"
                          % (pn, path, ", ".join(shown(d) for d in filespath[:3])))
            continue
        subdir = params.get("subdir", "")
        dest = os.path.normpath(os.path.join(unpackdir, subdir, path.lstrip("/")))
        fetched.append((dest, os.path.normpath(local)))

    def source_of(path):
        """The local file that becomes PATH (under UNPACKDIR) after do_unpack."""
        path = os.path.normpath(path)
        for dest, local in fetched:
            if path == dest:
                return local
            if path.startswith(dest + "/"):
                return local + path[len(dest):]
        return None

    for url in env.get("LIC_FILES_CHKSUM", "").split():
        scheme, path, params = decode(url)
        target = path if os.path.isabs(path) else source_of(os.path.join(s_dir, path))
        if target is None:
            errors.append("%s: LIC_FILES_CHKSUM %s: no SRC_URI entry provides ${S}/%s" % (pn, url, path))
            continue
        if not os.path.isfile(target):
            errors.append("%s: LIC_FILES_CHKSUM %s: %s does not exist" % (pn, url, shown(target)))
            continue
        want = params.get("md5", "")
        got = md5_lines(target, int(params.get("beginline", 0)), int(params.get("endline", 0)))
        if want != got:
            errors.append("%s: LIC_FILES_CHKSUM %s: md5 of %s (lines %s-%s) is %s"
                          % (pn, url, shown(target), params.get("beginline", "1"),
                             params.get("endline", "end"), got))

    # ${S}/... paths the install step reads must come out of do_unpack.
    for task in ("do_install", "do_compile", "do_configure"):
        body = functions.get(task, "")
        if not s_dir:
            break
        for path in sorted(set(re.findall(re.escape(s_dir) + r"/[^\s\"';|&)]+", body))):
            local = source_of(path)
            if local is None or not os.path.exists(local):
                errors.append("%s: %s reads %s, which no SRC_URI file:// entry provides%s"
                              % (pn, task, "${S}" + path[len(s_dir):],
                                 "" if local is None else " (%s is missing)" % shown(local)))

    for error in errors:
        sys.stderr.write("%s: %s\n" % (PROG, error))
    if not errors:
        print("   ok: %s: %d local sources, %d licence files" % (
            pn, len(fetched), len(env.get("LIC_FILES_CHKSUM", "").split())))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
