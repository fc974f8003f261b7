# shellcheck shell=bash
# Sourced by the project's scripts: builds embed Debian's python3 (the one
# whose libpython the binary loads at run time and whose venvs it accepts),
# not whatever python3 comes first on PATH (pyenv's, on these machines).
if [ -z "${PYO3_PYTHON:-}" ] && [ -x /usr/bin/python3 ]; then
    export PYO3_PYTHON=/usr/bin/python3
fi
