#!/usr/bin/env bash
# svcover launcher for Linux/macOS.
#   ./launch.sh            install into .venv (first run only) and start the web UI
#   ./launch.sh test [...] install test tools too and run the test suite (extra args go to pytest)
#   ./launch.sh cli ...    run python -m core ... inside the venv
# Idempotent: a second run skips installation (a stamp records what was installed).
set -euo pipefail
cd "$(dirname "$0")"

mode="${1:-run}"
[ $# -gt 0 ] && shift

TORCH_VERSION="2.13.0"
VENV=".venv"

find_python() {
  for cand in "${SVCOVER_PYTHON:-}" python3.11 python3.12 python3.10 python3; do
    [ -n "$cand" ] || continue
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; sys.exit(0 if (3,10) <= sys.version_info[:2] <= (3,12) else 1)' 2>/dev/null; then
      echo "$cand"; return 0
    fi
  done
  return 1
}

if [ ! -x "$VENV/bin/python" ]; then
  if ! PY="$(find_python)"; then
    echo "error: no Python 3.10-3.12 found. Install Python 3.11 (python.org or your package manager) and run again." >&2
    exit 1
  fi
  echo "[svcover] creating $VENV with $PY"
  "$PY" -m venv "$VENV"
fi
PYBIN="$VENV/bin/python"

want_files="requirements.txt requirements-nodeps.txt"
[ "$mode" = "test" ] && want_files="requirements.txt requirements-nodeps.txt requirements-test.txt"

install_torch() {
  if "$PYBIN" -c "import torch, sys; sys.exit(0 if torch.__version__.split('+')[0] == '$TORCH_VERSION' else 1)" 2>/dev/null; then
    return 0
  fi
  local index="${SVCOVER_TORCH_INDEX:-}"
  if [ -n "$index" ]; then
    "$PYBIN" -m pip install "torch==$TORCH_VERSION" --index-url "$index" && return 0
  fi
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    echo "[svcover] NVIDIA GPU found: installing the CUDA build of torch $TORCH_VERSION"
    "$PYBIN" -m pip install "torch==$TORCH_VERSION" && return 0
  fi
  # No NVIDIA GPU: prefer the small CPU build from PyTorch's CPU index; fall back to the default index.
  echo "[svcover] installing torch $TORCH_VERSION (CPU)"
  "$PYBIN" -m pip install --retries 0 --timeout 15 "torch==$TORCH_VERSION" --index-url https://download.pytorch.org/whl/cpu 2>/dev/null \
    || "$PYBIN" -m pip install "torch==$TORCH_VERSION"
}

# One stamp per requirements file: the sha256 of what was installed from it. Same hash => skip pip.
installed_any=0
for f in $want_files; do
  stamp="$VENV/.svcover-installed-$f"
  want="$("$PYBIN" -c 'import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest())' "$f") torch=$TORCH_VERSION"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "[svcover] installing $f (first run or it changed)"
    [ "$installed_any" = 1 ] || { "$PYBIN" -m pip install --upgrade --quiet pip || true; install_torch; }
    nodeps=""; [ "$f" = "requirements-nodeps.txt" ] && nodeps="--no-deps"
    "$PYBIN" -m pip install $nodeps -r "$f"
    echo "$want" > "$stamp"
    installed_any=1
  fi
done
if [ "$installed_any" = 1 ]; then
  # Separation runs on onnxruntime: swap in the CUDA build when an NVIDIA GPU is present
  # (audio-separator's [gpu] extra). Both builds provide the same module, so only one may be installed.
  if [ -z "${SVCOVER_NO_GPU_ORT:-}" ] && command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    ort="$(grep -E '^onnxruntime==' requirements.txt | cut -d= -f3)"
    "$PYBIN" -m pip uninstall -y onnxruntime >/dev/null 2>&1 || true
    "$PYBIN" -m pip install "onnxruntime-gpu==$ort" || "$PYBIN" -m pip install "onnxruntime==$ort"
  fi
  "$PYBIN" -m core doctor || echo "[svcover] doctor reported problems (see above); the app starts anyway"
fi

case "$mode" in
  run)  exec "$PYBIN" app.py --inbrowser "$@" ;;
  test) exec "$PYBIN" -m pytest tests "$@" ;;
  cli)  exec "$PYBIN" -m core "$@" ;;
  *) echo "usage: ./launch.sh [run|test|cli] [args...]" >&2; exit 2 ;;
esac
