"""What a plugin recipe ships against what its LICENSE declares (issue: the
licences of everything in the venv, from the distributions' own metadata).

oe-core's SPDX output (create-spdx) takes a package's declared licence from
the recipe's LICENSE, so a distribution whose licence is missing there is
missing from the SBOM too. check_venv() reads every *.dist-info/METADATA a
staged venv holds (what pip installed: wheels and sdist builds alike) and
returns one error per distribution whose licence has an identifier that
LICENSE does not name. Used by run_plugin_tasks.py (check-yocto-layer step 6).
"""

import email.parser
import os
import re

# METADATA licences that are prose, and their SPDX identifiers as oe-core
# spells them (meta/files/common-licenses).
PROSE = {
    "GNU Lesser General Public License v3 or later": "LGPL-3.0-or-later",
    "Apache License, Version 2.0": "Apache-2.0",
    "Apache 2.0": "Apache-2.0",
}
# Trove classifiers, for a METADATA without License-Expression or License.
CLASSIFIERS = {
    "License :: OSI Approved :: MIT License": "MIT",
    "License :: OSI Approved :: Apache Software License": "Apache-2.0",
    "License :: OSI Approved :: BSD License": "BSD-3-Clause",
    "License :: OSI Approved :: Python Software Foundation License": "PSF-2.0",
}
# The project's own licence: every plugin recipe ships the plugin's files.
PROJECT = ("Apache-2.0", "MIT")


def identifiers(expression):
    """The licence identifiers of an SPDX or bitbake expression."""
    words = re.split(r"[\s()&|]+|\bOR\b|\bAND\b|\bWITH\b", expression)
    return {w for w in words if w and w not in ("OR", "AND", "WITH")}


def declared_by(meta):
    """(identifiers, where they came from) for one METADATA."""
    text = (meta.get("License-Expression") or "").strip()
    if text:
        return identifiers(text), "License-Expression %r" % text
    text = (meta.get("License") or "").strip()
    if text:
        if text in PROSE:
            return {PROSE[text]}, "License %r" % text
        if "\n" not in text and len(text) < 80:
            return identifiers(text), "License %r" % text
    found = {CLASSIFIERS[c] for c in meta.get_all("Classifier") or [] if c in CLASSIFIERS}
    if found:
        return found, "its licence classifiers"
    return set(), "no licence that can be read (License-Expression, License or a known classifier)"


def check_venv(site_packages, licence):
    """Errors (strings) for the venv at site_packages against LICENSE."""
    named = identifiers(licence)
    errors = []
    missing = [p for p in PROJECT if p not in named]
    if missing:
        errors.append("LICENSE %r does not name the plugin's own licence (Apache-2.0 | MIT): %s missing"
                      % (licence, ", ".join(missing)))
    if not os.path.isdir(site_packages):
        return errors
    for entry in sorted(os.listdir(site_packages)):
        path = os.path.join(site_packages, entry, "METADATA")
        if not entry.endswith(".dist-info") or not os.path.isfile(path):
            continue
        with open(path, encoding="utf-8") as f:
            meta = email.parser.Parser().parse(f, headersonly=True)
        dist = "%s %s" % (meta.get("Name"), meta.get("Version"))
        ids, source = declared_by(meta)
        if not ids:
            errors.append("%s has %s: add it to scripts/lib/recipe_licences.py" % (dist, source))
            continue
        absent = sorted(ids - named)
        if absent:
            errors.append("%s is %s (%s), but LICENSE %r does not name %s"
                          % (dist, " / ".join(sorted(ids)), source, licence, ", ".join(absent)))
    return errors
