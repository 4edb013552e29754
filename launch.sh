#!/usr/bin/env bash
# svcover launcher for Linux/macOS: finds a 64-bit CPython 3.11-3.13 and hands every argument to the
# shared bootstrap (core/bootstrap.py), which creates .venv, installs what this machine needs and starts:
#   ./launch.sh [app options]   install (first run only) and start the web UI, e.g. ./launch.sh --port 7861
#   ./launch.sh test [...]      install test tools too and run the test suite (extra args go to pytest)
#   ./launch.sh cli ...         run python -m core ... inside the venv
#   ./launch.sh plan            print the install plan as one JSON line; installs nothing
set -euo pipefail
cd "$(dirname "$0")"

if [ -x .venv/bin/python ]; then
  exec .venv/bin/python -m core.bootstrap "$@"
fi
# SVCOVER_PYTHON picks the interpreter; otherwise the first that the bootstrap accepts (3.11: what CI tests).
for cand in "${SVCOVER_PYTHON:-}" python3.11 python3.12 python3.13 python3; do
  [ -n "$cand" ] && command -v "$cand" >/dev/null 2>&1 || continue
  if "$cand" -m core.bootstrap probe >/dev/null 2>&1; then
    exec "$cand" -m core.bootstrap "$@"
  fi
done
echo "error: no 64-bit Python 3.11-3.13 found. Install Python 3.11 (python.org or your package manager) and run again." >&2
for cand in "${SVCOVER_PYTHON:-}" python3; do  # say why the Python that is there was refused
  [ -n "$cand" ] && command -v "$cand" >/dev/null 2>&1 && { "$cand" -m core.bootstrap probe || true; break; }
done
exit 1
