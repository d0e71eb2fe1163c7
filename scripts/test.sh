#!/usr/bin/env bash
# Runs the test suite in .venv (created and filled on first use).
#   ./scripts/test.sh            the default suite (under 10 minutes on 2 CPU cores)
#   ./scripts/test.sh --slow     only the slow tests (multi-process, kill-and-resume, ...)
#   ./scripts/test.sh ARGS       any other arguments go to pytest
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup_env.sh --with-tests

args=()
if [[ "${1:-}" == "--slow" ]]; then
  shift
  args+=(-m slow)
fi
exec python -m pytest "${args[@]}" "$@"
