"""Assertions of scripts/check-buildroot over what Buildroot computed.

Reads the output of one `make show-info printvars QUOTED_VARS=YES` run (the
show-info JSON on the first line, then NAME='value' assignments) and the
.config, and checks that the BR2_EXTERNAL tree's packages are selected, depend
on what they say and compute the values the project needs. Prints one
"ok - ..." / "not ok - ..." line per check; exit status 1 when any failed.
Also turns the runtime package's cargo environment and options into the
NUL-separated lists the in-tree build uses.
"""

import argparse
import json
import os
import re
import shlex
import sys
import tomllib

RUNTIME = "openplc-runtime"
PLUGINS = {
    # package: (plugin name, its directory in the project, config file)
    "openplc-plugin-ramp-writer": ("ramp_writer", "examples/plugins/ramp_writer", "config.yaml"),
    "openplc-plugin-image-logger": ("image_logger", "examples/plugins/image_logger", "config.json"),
    "openplc-plugin-modbus-server": ("modbus_server", "examples/plugins/modbus_server", "config.json"),
    "openplc-plugin-opcua-server": ("opcua_server", "examples/plugins/opcua_server", "config.json"),
}
# A plugin's own dependencies besides the plugin infrastructure's: what its
# sdists link and need to build (Buildroot's host packages).
PLUGIN_EXTRA_DEPENDENCIES = {
    "openplc-plugin-ramp-writer": {"libyaml", "host-python-setuptools", "host-python-cython"},
    "openplc-plugin-image-logger": set(),
    "openplc-plugin-modbus-server": set(),
    "openplc-plugin-opcua-server": {"libffi", "host-pkgconf", "host-python-setuptools"},
}
# METADATA licences that are prose, and their SPDX names in a package's
# _LICENSE (Buildroot's spelling: "or" in lower case).
LICENCE_SPDX = {
    "GNU Lesser General Public License v3 or later": "LGPL-3.0+",
    "Apache License, Version 2.0": "Apache-2.0",
    "Apache 2.0": "Apache-2.0",
}
# What every package gets from the generic infrastructure.
INFRA_DEPENDENCIES = {"skeleton", "toolchain", "host-skeleton", "host-tar"}
RUNTIME_DEPENDENCIES = {"host-python3", "python3", "host-rustc"}
PLUGIN_DEPENDENCIES = {"host-python3", "host-python-pip", "python3"}
# Keys of the cargo environment that name the cross target or Buildroot's
# directories: the in-tree check builds for the host instead.
CROSS_ONLY = re.compile(r"^(CARGO_HOME|CARGO_BUILD_TARGET|CARGO_HOST_RUSTFLAGS"
                        r"|CARGO_TARGET_[A-Z0-9_]+_(LINKER|RUSTFLAGS)|PYO3_.*)$")


class Report:
    def __init__(self):
        self.failed = 0

    def check(self, description, condition, evidence=""):
        if condition:
            print("ok - %s" % description)
        else:
            self.failed += 1
            print("not ok - %s" % description)
            if evidence:
                for line in str(evidence).splitlines()[:20]:
                    print("    # %s" % line)

    def equal(self, description, actual, wanted):
        self.check(description, actual == wanted, "got:    %r\nwanted: %r" % (actual, wanted))


def read_make_output(path):
    """Returns (show-info dict, {variable: value}) from the combined output."""
    with open(path, encoding="utf-8") as f:
        first, _, rest = f.read().partition("\n")
    info = json.loads(first)
    variables = {}
    for token in shlex.split(rest, posix=True):
        name, sep, value = token.partition("=")
        if sep and re.fullmatch(r"[A-Za-z0-9_]+", name):
            variables[name] = value
    return info, variables


def read_config(path):
    config = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            m = re.fullmatch(r"(BR2_\w+)=(.*)", line)
            if m:
                config[m.group(1)] = m.group(2)
            m = re.fullmatch(r"# (BR2_\w+) is not set", line)
            if m:
                config[m.group(1)] = "n"
    return config


def effective_env(assignments):
    """The environment `VAR=x VAR=y cmd` gives cmd: the last assignment wins."""
    env = {}
    for word in shlex.split(assignments):
        name, sep, value = word.partition("=")
        if sep:
            env[name] = value
    return env


def upper(package):
    return package.upper().replace("-", "_")


def norm(path):
    return os.path.normpath(path) if path else path


def options(text):
    """Parses "--opt value --flag ..." into {opt: [values]}."""
    words = shlex.split(text)
    result = {}
    i = 0
    while i < len(words):
        word = words[i]
        if word.startswith("--"):
            if i + 1 < len(words) and not words[i + 1].startswith("--"):
                result.setdefault(word, []).append(words[i + 1])
                i += 2
                continue
            result.setdefault(word, []).append(None)
        i += 1
    return result


def features_glibc(path):
    """(major, minor) of glibc from a features.h, or None."""
    found = {}
    if path and os.path.isfile(path):
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                m = re.match(r"#\s*define\s+__GLIBC(_MINOR)?__\s+(\d+)", line)
                if m:
                    found[m.group(1) or ""] = int(m.group(2))
    return (found[""], found["_MINOR"]) if "" in found and "_MINOR" in found else None


def wheel_fits(filename, xy, arch, glibc=(2, 28)):
    """A wheel's tags accept CPython X.Y on manylinux <= GLIBC for ARCH."""
    parts = filename[:-len(".whl")].split("-")
    if len(parts) < 5:
        return False
    python, abi, platform = parts[-3], parts[-2], parts[-1]
    cp = "cp" + xy.replace(".", "")
    if not any(t in (cp, "py3") or (t.startswith("cp3") and abi == "abi3") for t in python.split(".")):
        return False
    if not any(t in (cp, "abi3", "none") for t in abi.split(".")):
        return False
    for tag in platform.split("."):
        if tag == "any":
            return True
        m = re.fullmatch(r"manylinux_(\d+)_(\d+)_(\w+)", tag) or re.fullmatch(r"manylinux(2014)_(\w+)", tag)
        if m and tag.startswith("manylinux2014") and m.group(2) == arch:
            return True
        tag_glibc = (int(m.group(1)), int(m.group(2))) if m and not tag.startswith("manylinux2014") else None
        if tag_glibc and m.group(3) == arch and tag_glibc <= glibc:
            return True
    return False


def hash_lines(paths):
    hashes = {}
    for path in paths:
        if not os.path.isfile(path):
            continue
        with open(path, encoding="utf-8") as f:
            for line in f:
                words = line.split()
                if len(words) == 3 and words[0] == "sha256":
                    hashes[words[2]] = words[1]
    return hashes


def assert_tree(args):
    r = Report()
    info, v = read_make_output(args.make_output)
    config = read_config(args.config)
    top = os.path.realpath(args.top)
    out = os.path.realpath(args.out)
    with open(os.path.join(top, "Cargo.toml"), "rb") as f:
        cargo = tomllib.load(f)

    # The defconfig: what the image promises.
    for symbol, wanted in [
        ("BR2_PACKAGE_OPENPLC_RUNTIME", "y"),
        ("BR2_PACKAGE_OPENPLC_RUNTIME_CHECKOUT", "y"),
        ("BR2_PACKAGE_OPENPLC_PLUGIN_RAMP_WRITER", "y"),
        ("BR2_PACKAGE_OPENPLC_PLUGIN_IMAGE_LOGGER", "y"),
        ("BR2_PACKAGE_PYTHON3", "y"),
        ("BR2_INIT_SYSTEMD", "y"),
        ("BR2_TARGET_GENERIC_REMOUNT_ROOTFS_RW", "n"),
        ("BR2_INIT_SYSTEMD_VAR_FACTORY", "y"),
        ("BR2_TOOLCHAIN_USES_GLIBC", "y"),
        ("BR2_TARGET_ROOTFS_EXT2_4", "y"),
        ("BR2_DOWNLOAD_FORCE_CHECK_HASHES", "y"),
    ]:
        r.equal(".config: %s=%s" % (symbol, wanted), config.get(symbol), wanted)
    size = config.get("BR2_TARGET_ROOTFS_EXT2_SIZE", '""').strip('"')
    m = re.fullmatch(r"(\d+)M", size)
    r.check(".config: ext4 rootfs of at least 256M for Python and the venvs (%s)" % size,
            m is not None and int(m.group(1)) >= 256, size)
    r.equal(".config: BR2_ROOTFS_OVERLAY is the board's (var-lib.mount only; the packages install the rest)",
            config.get("BR2_ROOTFS_OVERLAY"),
            '"$(BR2_EXTERNAL_OPENPLC_PATH)/board/openplc/qemu-aarch64/rootfs-overlay"')

    # The toolchain's glibc, as the plugin packages read it (features.h).
    glibc = features_glibc(v.get("OPENPLC_PLUGIN_FEATURES_H"))
    r.check("features.h %s gives a glibc version" % v.get("OPENPLC_PLUGIN_FEATURES_H"), glibc is not None)

    # show-info: the packages and their dependencies.
    runtime = info.get(RUNTIME)
    r.check("show-info: %s is selected" % RUNTIME, runtime is not None)
    if runtime:
        r.equal("show-info: %s is a target package built from the checkout" % RUNTIME,
                (runtime["type"], runtime["version"]), ("target", "custom"))
        r.equal("show-info: %s depends on host-python3, python3, host-rustc" % RUNTIME,
                set(runtime["dependencies"]) - INFRA_DEPENDENCIES, RUNTIME_DEPENDENCIES)
        r.equal("show-info: %s is downloaded from the checkout" % RUNTIME,
                [u for d in runtime["downloads"] for u in d["uris"] if u.startswith("local+")],
                ["local+" + top])
    for package, (name, srcdir, config_file) in PLUGINS.items():
        p = info.get(package)
        r.check("show-info: %s is selected" % package, p is not None)
        if not p:
            continue
        wanted_deps = PLUGIN_DEPENDENCIES | PLUGIN_EXTRA_DEPENDENCIES.get(package, set())
        r.equal("show-info: %s depends on %s" % (package, ", ".join(sorted(wanted_deps))),
                set(p["dependencies"]) - INFRA_DEPENDENCIES, wanted_deps)
        hashes = hash_lines(p["hashes"])
        project_version = cargo.get("package", {}).get("version")
        r.equal("show-info: %s has the project's version (Cargo.toml)" % package,
                p.get("version"), project_version)
        sources = [d["source"] for d in p["downloads"]]
        tarball = "%s-%s.tar.gz" % (package, project_version)
        r.check("show-info: %s downloads its source tarball %s, then wheels or sdists" % (package, tarball),
                sources[:1] == [tarball] and len(sources) > 1, sources)
        r.check("%s: %s has a sha256" % (package, tarball), tarball in hashes)
        prefix = upper(package)
        sdists = [os.path.basename(u) for u in v.get(prefix + "_SDISTS", "").split()]
        wheels = [w for w in sources[1:] if w not in sdists]
        r.check("show-info: %s's other downloads are wheels or its _SDISTS" % package,
                all(w.endswith(".whl") for w in wheels) and sorted(sources[1:]) == sorted(wheels + sdists), sources[1:])
        for sdist in sdists:
            r.check("%s: the sdist %s has a sha256 in %s" % (package, sdist, ", ".join(p["hashes"])),
                    sdist in hashes)
        for wheel in wheels:
            r.check("%s: %s has a sha256 in %s" % (package, wheel, ", ".join(p["hashes"])), wheel in hashes)
            r.check("%s: %s fits CPython %s on %s" % (package, wheel, v.get("PYTHON3_VERSION_MAJOR"),
                                                      v.get("OPENPLC_PLUGIN_WHEEL_ARCH")),
                    wheel_fits(wheel, v.get("PYTHON3_VERSION_MAJOR", ""), v.get("OPENPLC_PLUGIN_WHEEL_ARCH", ""),
                               glibc or (0, 0)))
        # Every pin of the requirements has its wheel or sdist among the downloads.
        requirements = v.get(prefix + "_PLUGIN_REQUIREMENTS", "")
        pins = []
        if os.path.isfile(requirements):
            with open(requirements, encoding="utf-8") as f:
                for line in f:
                    m = re.match(r"^\s*([A-Za-z0-9_.-]+)==([A-Za-z0-9_.+-]+)", line)
                    if m:
                        pins.append((re.sub(r"[-_.]+", "_", m.group(1)).lower(), m.group(2)))
        r.check("%s: requirements %s pin something" % (package, requirements), pins, requirements)
        for dist, version in pins:
            r.check("%s: the pin %s==%s has its wheel or sdist" % (package, dist, version),
                    any(w.lower().startswith("%s-%s-" % (dist, version)) for w in wheels)
                    or "%s-%s.tar.gz" % (dist, version) in [x.lower() for x in sdists], wheels + sdists)

        # printvars: the venv and the plugin's install.
        venv = options(v.get(prefix + "_PLUGIN_VENV_OPTS", ""))
        r.equal("%s: build-target-venv --name" % package, venv.get("--name"), [name])
        r.equal("%s: build-target-venv --python-version is the target's" % package,
                venv.get("--python-version"), [v.get("PYTHON3_VERSION")])
        r.equal("%s: build-target-venv --prefix" % package, venv.get("--prefix"),
                ["/usr/lib/openplc/venvs/" + name])
        r.equal("%s: build-target-venv --destdir is the target directory" % package,
                [norm(x) for x in venv.get("--destdir", [])], [os.path.join(out, "target")])
        r.equal("%s: build-target-venv runs and compiles with host-python3" % package,
                [norm(x) for x in venv.get("--host-python", []) + venv.get("--compile-python", [])],
                [os.path.join(out, "host/bin/python3")] * 2)
        # linux_<arch>: the wheels built from sdists; manylinux_<glibc>_<arch>
        # only for opt-in binary wheels, with the toolchain's glibc.
        binary = v.get(prefix + "_BINARY_WHEELS", "").split()
        r.equal("%s: build-target-venv --platform linux_%s%s" % (
                    package, v.get("OPENPLC_PLUGIN_TARGET_ARCH"),
                    ", manylinux with the toolchain's glibc %s (%s)" % (
                        ".".join(map(str, glibc or ())), v.get("OPENPLC_PLUGIN_FEATURES_H")) if binary else ""),
                venv.get("--platform"),
                ["linux_" + v.get("OPENPLC_PLUGIN_TARGET_ARCH", "?")]
                + (["manylinux_%d_%d_%s" % (glibc + (v.get("OPENPLC_PLUGIN_WHEEL_ARCH", "?"),))] if binary else []))
        r.equal("%s: build-target-venv --binary-wheels is the opt-in list" % package,
                venv.get("--binary-wheels"), [" ".join(binary)])
        r.equal("%s: build-target-venv --wheelhouse is in the build directory" % package,
                [norm(x) for x in venv.get("--wheelhouse", [])],
                [os.path.join(out, "build", "%s-%s" % (package, project_version), "wheelhouse")])
        inst = options(v.get(prefix + "_PLUGIN_INSTALL_OPTS", ""))
        r.equal("%s: install-plugin --source is the hashed tarball's files, unpacked afresh" % package,
                [norm(x) for x in inst.get("--source", [])],
                [os.path.join(out, "build", "%s-%s" % (package, project_version), ".openplc-plugin-files")])
        r.equal("%s: the tarball is made from the project's %s" % (package, srcdir),
                norm(v.get(prefix + "_PLUGIN_SRCDIR")), os.path.join(top, srcdir))
        r.equal("%s: install-plugin --name/--entry/--config/--venv" % package,
                (inst.get("--name"), inst.get("--entry"), inst.get("--config"), inst.get("--venv")),
                ([name], ["plugin.py"], [config_file], [None]))
        r.equal("%s: install-plugin --destdir is the target directory" % package,
                [norm(x) for x in inst.get("--destdir", [])], [os.path.join(out, "target")])
        for f in ("plugin.py", config_file):
            r.check("%s: %s/%s exists" % (package, srcdir, f), os.path.isfile(os.path.join(top, srcdir, f)))
    cmds = v.get("OPENPLC_PLUGIN_RAMP_WRITER_INSTALL_TARGET_CMDS", "")
    r.check("openplc-plugin-ramp-writer: the install step runs build-target-venv then install-plugin",
            re.search(r"/scripts/build-target-venv --name ramp_writer .*\n.*/scripts/install-plugin --destdir", cmds),
            cmds)

    # The runtime's cargo environment: pyo3's cross settings, and the crate's
    # own release profile winning over Buildroot's generic one.
    env = effective_env(v.get("PKG_CARGO_ENV", "") + " " + v.get("OPENPLC_RUNTIME_CARGO_ENV", ""))
    staging = v.get("STAGING_DIR", "")
    r.equal("cargo env: PYO3_CROSS_LIB_DIR is staging's python lib dir",
            norm(env.get("PYO3_CROSS_LIB_DIR")),
            norm(os.path.join(staging, "usr/lib/python" + v.get("PYTHON3_VERSION_MAJOR", "?"))))
    r.equal("cargo env: PYO3_CROSS_PYTHON_VERSION is the target's X.Y",
            env.get("PYO3_CROSS_PYTHON_VERSION"), v.get("PYTHON3_VERSION_MAJOR"))
    r.equal("cargo env: PYO3_PYTHON is host-python3",
            norm(env.get("PYO3_PYTHON")), os.path.join(out, "host/bin/python3"))
    r.equal("cargo env: PYO3_CROSS=1", env.get("PYO3_CROSS"), "1")
    profile = cargo.get("profile", {}).get("release", {})
    for key, field in [("OPT_LEVEL", "opt-level"), ("LTO", "lto"), ("CODEGEN_UNITS", "codegen-units")]:
        wanted = profile.get(field)
        wanted = str(wanted).lower() if wanted is not None else None
        r.equal("cargo env: CARGO_PROFILE_RELEASE_%s is Cargo.toml's %s" % (key, field),
                env.get("CARGO_PROFILE_RELEASE_" + key), wanted)
    srcdir = v.get("OPENPLC_RUNTIME_SRCDIR", "")
    r.equal("runtime: builds in %s" % os.path.join(out, "build/openplc-runtime-custom"),
            norm(srcdir), os.path.join(out, "build/openplc-runtime-custom"))
    r.equal("runtime: the in-tree source is the checkout",
            norm(v.get("OPENPLC_RUNTIME_OVERRIDE_SRCDIR")), top)
    r.check("runtime: rsync leaves out target/",
            "--exclude=/target" in v.get("OPENPLC_RUNTIME_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS", ""))
    for which in ("BUILD", "INSTALL"):
        opts = shlex.split(v.get("OPENPLC_RUNTIME_CARGO_%s_OPTS" % which, ""))
        r.equal("runtime: cargo %s uses the checkout's VENDOR/" % which.lower(),
                [o.replace("//", "/") for o in opts],
                ["--config", 'source.crates-io.replace-with="openplc-vendored"',
                 "--config", 'source.openplc-vendored.directory="%s"' % os.path.join(norm(srcdir), "VENDOR")])
    r.check("runtime: a pre-build hook checks VENDOR/ against Cargo.lock",
            "OPENPLC_RUNTIME_CHECK_VENDORED" in v.get("OPENPLC_RUNTIME_PRE_BUILD_HOOKS", "")
            and re.search(r"/scripts/vendor-crates --check --source " + re.escape(top) + r"\b",
                          v.get("OPENPLC_RUNTIME_CHECK_VENDORED", "")),
            v.get("OPENPLC_RUNTIME_CHECK_VENDORED"))
    # The files installed beside the binary: sources in the checkout (one
    # copy, ./ is the build directory), destinations on the target.
    installs = v.get("OPENPLC_RUNTIME_INSTALL_INIT_SYSTEMD", "") + "\n" + v.get("OPENPLC_RUNTIME_INSTALL_FILES", "")
    pairs = re.findall(r"install -D -m 0644\s+\./(\S+)\s+(\S+)", installs)
    target = os.path.join(out, "target")
    wanted_pairs = [
        ("rootfs-overlay/usr/lib/systemd/system/openplc-runtime.service",
         "/usr/lib/systemd/system/openplc-runtime.service"),
        ("rootfs-overlay/usr/lib/tmpfiles.d/openplc-runtime.conf", "/usr/lib/tmpfiles.d/openplc-runtime.conf"),
        ("rootfs-overlay/etc/openplc/plugins.conf", "/etc/openplc/plugins.conf"),
        ("examples/plugins/openplc_capsule.py", "/usr/lib/openplc/plugins/openplc_capsule.py"),
    ]
    r.equal("runtime: installs the unit, tmpfiles entry, plugins.conf and capsule helper",
            sorted((src, norm(dst)) for src, dst in pairs),
            sorted((src, target + dst) for src, dst in wanted_pairs))
    for src, _ in wanted_pairs:
        r.check("runtime: %s exists in the checkout" % src, os.path.isfile(os.path.join(top, src)))
    r.check("runtime: the unit goes in through _INSTALL_INIT_SYSTEMD",
            "openplc-runtime.service" in v.get("OPENPLC_RUNTIME_INSTALL_INIT_SYSTEMD", ""))

    # Rust: the crate's rust-version is what Buildroot's host Rust provides.
    rust = v.get("HOST_RUST_BIN_VERSION", "")
    declared = cargo.get("package", {}).get("rust-version", "")
    r.check("Cargo.toml rust-version %s is at most Buildroot's host Rust %s" % (declared, rust),
            version_tuple(declared) <= version_tuple(rust) and declared != "", (declared, rust))
    return 1 if r.failed else 0


def wheel_metadata(path):
    """(Name, licence, [licence file paths in the wheel]) from a wheel's METADATA."""
    import email.parser
    import zipfile
    with zipfile.ZipFile(path) as z:
        name = next(n for n in z.namelist() if re.fullmatch(r"[^/]+\.dist-info/METADATA", n))
        meta = email.parser.Parser().parsestr(z.read(name).decode("utf-8"), headersonly=True)
        info = name.split("/")[0]
        names = set(z.namelist())
    licence = meta.get("License-Expression") or meta.get("License") or ""
    files = []
    for f in meta.get_all("License-File") or []:
        for candidate in ("%s/licenses/%s" % (info, f), "%s/%s" % (info, f)):
            if candidate in names:
                files.append(candidate)
                break
        else:
            files.append("%s/licenses/%s (missing)" % (info, f))
    return meta.get("Name"), licence.strip(), files


def sdist_metadata(path):
    """(Name, licence, [licence file paths]) from an sdist's PKG-INFO, the
    paths as the plugin macro extracts them (NAME-VERSION/FILE)."""
    import email.parser
    import tarfile
    with tarfile.open(path) as t:
        member = next(m for m in t.getmembers() if re.fullmatch(r"[^/]+/PKG-INFO", m.name))
        meta = email.parser.Parser().parsestr(t.extractfile(member).read().decode("utf-8"), headersonly=True)
        names = set(t.getnames())
    top = member.name.split("/")[0]
    licence = meta.get("License-Expression") or meta.get("License") or ""
    files = ["%s/%s" % (top, f) + ("" if "%s/%s" % (top, f) in names else " (missing)")
             for f in meta.get_all("License-File") or []]
    return meta.get("Name"), licence.strip(), files


def legal(args):
    """legal-info's manifest, sources and licences for the runtime and the plugins."""
    import csv
    import tarfile
    r = Report()
    _, v = read_make_output(args.make_output)
    with open(os.path.join(args.top, "Cargo.toml"), "rb") as f:
        version = tomllib.load(f)["package"]["version"]
    with open(os.path.join(args.legal_info, "manifest.csv"), encoding="utf-8") as f:
        # Per-package legal-info appends rows without the header line.
        columns = ("PACKAGE", "VERSION", "LICENSE", "LICENSE FILES", "SOURCE ARCHIVE", "SOURCE SITE")
        manifest = {row[0]: dict(zip(columns, row)) for row in csv.reader(f) if row and row[0] != "PACKAGE"}
    for package in PLUGINS:
        row = manifest.get(package)
        r.check("legal-info: %s is in manifest.csv" % package, row is not None, sorted(manifest))
        if not row:
            continue
        r.equal("legal-info: %s's version" % package, row["VERSION"], version)
        prefix = upper(package)
        declared = v.get(prefix + "_LICENSE", "")
        files = v.get(prefix + "_LICENSE_FILES", "").split()
        r.equal("legal-info: %s's licence is the declared one" % package, row["LICENSE"], declared)
        sources = os.path.join(args.legal_info, "sources", "%s-%s" % (package, version))
        saved = sorted(os.listdir(sources)) if os.path.isdir(sources) else []
        wheels = [w for w in saved if w.endswith(".whl")]
        sdists = [os.path.basename(u) for u in v.get(prefix + "_SDISTS", "").split()]
        r.check("legal-info: %s's sources hold its tarball, wheels and sdists" % package,
                "%s-%s.tar.gz" % (package, version) in saved and (wheels or sdists)
                and set(sdists) <= set(saved), saved)
        r.check("%s: the plugin's licence and LICENSE are declared" % package,
                declared.startswith("Apache-2.0 or MIT (plugin)") and "LICENSE" in files, (declared, files))
        dists = [(w, wheel_metadata(os.path.join(sources, w))) for w in wheels]
        dists += [(s, sdist_metadata(os.path.join(sources, s))) for s in sdists if s in saved]
        for wheel, (name, licence, licence_files) in dists:
            spdx = LICENCE_SPDX.get(licence, licence).replace(" OR ", " or ")
            r.check("%s: declares %s's licence from its metadata, '%s (%s)'" % (package, wheel, licence, name),
                    "%s (%s)" % (licence, name) in declared or "%s (%s)" % (spdx, name) in declared, declared)
            for lf in licence_files:
                r.check("%s: saves %s's licence file %s" % (package, name, lf),
                        lf in files and os.path.isfile(os.path.join(
                            args.legal_info, "licenses", "%s-%s" % (package, version), lf)), files)
    row = manifest.get(RUNTIME)
    r.check("legal-info: %s is in manifest.csv" % RUNTIME, row is not None, sorted(manifest))
    archive = os.path.join(args.legal_info, "sources", "openplc-runtime-custom", "openplc-runtime-custom.tar.gz")
    r.check("legal-info: the runtime's sources are archived", os.path.isfile(archive), archive)
    if os.path.isfile(archive):
        with tarfile.open(archive) as t:
            names = t.getnames()
        top_dirs = {n.split("/")[1] for n in names if n.count("/") >= 1}
        r.check("legal-info: the runtime's archive holds the source (Cargo.toml, src/)",
                {"Cargo.toml", "src"} <= top_dirs, sorted(top_dirs))
        r.check("legal-info: the runtime's archive has no target/ nor venvs/",
                not top_dirs & {"target", "venvs"}, sorted(top_dirs & {"target", "venvs"}))
    r.check("legal-info: the runtime's licence file is saved",
            os.path.isfile(os.path.join(args.legal_info, "licenses", "openplc-runtime-custom", "LICENSE")))
    return 1 if r.failed else 0


def version_tuple(text):
    return tuple(int(x) for x in re.findall(r"\d+", text)[:3]) + (0,) * (3 - len(re.findall(r"\d+", text)[:3]))


def cargo_env(args):
    """NUL-separated NAME=VALUE: the package's cargo env minus cross-only keys."""
    _, v = read_make_output(args.make_output)
    env = effective_env(v.get("PKG_CARGO_ENV", "") + " " + v.get("OPENPLC_RUNTIME_CARGO_ENV", ""))
    sys.stdout.write("".join("%s=%s\0" % (k, val) for k, val in env.items() if not CROSS_ONLY.match(k)))
    return 0


def cargo_opts(args):
    """NUL-separated cargo options of the package, its build dir mapped to SRCDIR."""
    _, v = read_make_output(args.make_output)
    build = norm(v.get("OPENPLC_RUNTIME_SRCDIR", ""))
    words = shlex.split(v.get("OPENPLC_RUNTIME_CARGO_%s_OPTS" % args.which.upper(), ""))
    mapped = (w.replace("//", "/").replace(build, args.srcdir) for w in words)
    sys.stdout.write("".join(w + "\0" for w in mapped))
    return 0


def msrv(args):
    """The crate's rust-version covers its (normal and build) dependencies' on Linux."""
    r = Report()
    with open(args.metadata, encoding="utf-8") as f:
        meta = json.load(f)
    packages = {p["id"]: p for p in meta["packages"]}
    nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
    root = meta["resolve"]["root"]
    seen, todo = set(), [root]
    while todo:
        node = nodes[todo.pop()]
        for dep in node["deps"]:
            kinds = {k["kind"] for k in dep["dep_kinds"]}
            if kinds & {None, "build"} and dep["pkg"] not in seen:
                seen.add(dep["pkg"])
                todo.append(dep["pkg"])
    needs = sorted(((version_tuple(packages[i].get("rust_version") or "0"), packages[i]["name"]) for i in seen),
                   reverse=True)
    declared = packages[root].get("rust_version") or ""
    top = needs[0] if needs else ((0, 0, 0), "-")
    print("# highest rust-version among %d dependencies: %s (%s)" % (len(seen), ".".join(map(str, top[0])), top[1]))
    r.check("Cargo.toml rust-version %s is at least every dependency's (%s needs %s)"
            % (declared, top[1], ".".join(map(str, top[0]))),
            declared and version_tuple(declared) >= top[0])
    return 1 if r.failed else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    a = sub.add_parser("assert", help="check the defconfig, show-info and printvars")
    a.add_argument("--make-output", required=True)
    a.add_argument("--config", required=True)
    a.add_argument("--top", required=True)
    a.add_argument("--out", required=True)
    a.set_defaults(func=assert_tree)
    e = sub.add_parser("cargo-env", help="the runtime package's cargo environment, for a host build")
    e.add_argument("--make-output", required=True)
    e.set_defaults(func=cargo_env)
    o = sub.add_parser("cargo-opts", help="the runtime package's cargo options")
    o.add_argument("--make-output", required=True)
    o.add_argument("--which", choices=("build", "install"), required=True)
    o.add_argument("--srcdir", required=True)
    o.set_defaults(func=cargo_opts)
    m = sub.add_parser("msrv", help="rust-version against the dependencies' (cargo metadata JSON)")
    m.add_argument("--metadata", required=True)
    m.set_defaults(func=msrv)
    lg = sub.add_parser("legal", help="check legal-info's manifest, sources and licences")
    lg.add_argument("--make-output", required=True)
    lg.add_argument("--legal-info", required=True)
    lg.add_argument("--top", required=True)
    lg.set_defaults(func=legal)
    args = parser.parse_args()
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
