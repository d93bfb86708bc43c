#!/usr/bin/env bash
# Create the project's virtualenv ($1, default .venv) and install opsbook into it with the
# extras given in $2 (e.g. "test"). On a fresh Debian, python3 -m venv needs python3-venv:
# installed here when we are root.
set -euo pipefail
venv=${1:-.venv}
extras=${2:-}
python=${PYTHON:-python3}
if [ ! -x "$venv/bin/python" ]; then
    if ! "$python" -m venv "$venv" 2>/dev/null; then
        rm -rf "$venv"
        if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
            ver=$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
            DEBIAN_FRONTEND=noninteractive apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "python${ver}-venv" >/dev/null \
                || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
            "$python" -m venv "$venv"
        else
            echo "cannot create a virtualenv: install python3-venv (apt-get install python3-venv)" >&2
            exit 1
        fi
    fi
fi
spec="."
[ -n "$extras" ] && spec=".[${extras}]"
# Strict editable mode: a tree of links under build/ and a plain path entry, so that only the
# package `opsbook` is importable (not the repository's cli/, runbooks/ or tests/ folders) and
# no import hook runs at every start (the lenient mode's finder costs ~20 ms per call). Every
# `make` target re-runs this, so files added since the last install are linked in too.
"$venv/bin/python" -m pip install -q --disable-pip-version-check -e "$spec" --config-settings editable_mode=strict
