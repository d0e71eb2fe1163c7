#!/usr/bin/env bash
# Runs the test suite in .venv (created and filled on first use).
#   ./scripts/test.sh            the default suite (under 10 minutes on 2 CPU cores)
#   ./scripts/test.sh --slow     only the slow tests (multi-process, kill-and-resume, the
#                                TPU compile, ...)
#   ./scripts/test.sh ARGS       any other arguments go to pytest
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup_env.sh --with-tests

args=()
if [[ "${1:-}" == "--slow" ]]; then
  shift
  args+=(-m slow)
  # The TPU compiler (requirements-tpu.txt) for tests/test_aot.py, in a venv of its own
  # that sees .venv's packages: installed in .venv, every JAX start-up would probe for
  # a TPU.
  tpu_venv=.venv-tpu
  if ! "$tpu_venv/bin/python" -c "import libtpu" 2>/dev/null; then
    echo "Installing the TPU compiler into $tpu_venv..."
    python -m venv "$tpu_venv"
    site_of() { "$1" -c "import site; print(site.getsitepackages()[0])"; }
    site_of python > "$(site_of "$tpu_venv/bin/python")/bn_repro_venv.pth"
    "$tpu_venv/bin/python" -m pip install --quiet --no-deps -r requirements-tpu.txt
  fi
  export BN_REPRO_TPU_PYTHON=$PWD/$tpu_venv/bin/python
fi
exec python -m pytest "${args[@]}" "$@"
