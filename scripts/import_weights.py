"""Imports published BN-Inception weights into a workdir our evaluator and trainer read.

  python scripts/import_weights.py --format=tfslim --source=inception_v2.ckpt \
      --workdir=runs/tfslim_inception_v2 [--config=configs/pretrained_tfslim.py]
  python scripts/import_weights.py --format=pytorch --source=bn_inception-52deb4733.pth \
      --workdir=runs/caffe_bninception [--config=configs/pretrained_caffe.py]

``--format=tfslim`` reads a TF checkpoint (the prefix, e.g. inception_v2.ckpt);
``--format=pytorch`` a state_dict file, with torch.load(weights_only=True) (needs
torch). The config defaults to the format's configs/pretrained_*.py; overrides such
as ``--config.data_dir=...`` are recorded in the workdir's config.json. Every source
tensor is mapped by name (bn_repro/published_weights.py); those not used are listed.
Then: python -m bn_repro.evaluate --workdir=DIR (README "Published weights").
"""

import importlib
import sys
import time

from absl import app, flags
from ml_collections import config_flags

from bn_repro import config_checks, published_weights
from bn_repro.console import quiet_logs, say

DEFAULT_CONFIGS = {
    "tfslim": "bn_repro.configs.pretrained_tfslim",
    "pytorch": "bn_repro.configs.pretrained_caffe",
}

FLAGS = flags.FLAGS
flags.DEFINE_enum("format", None, list(published_weights.FORMATS), "Source format.")
flags.DEFINE_string("source", None, "TF checkpoint prefix or PyTorch state_dict file.")
flags.DEFINE_string("workdir", None, "New workdir to write (config.json + checkpoint).")
config_flags.DEFINE_config_file("config", None, "Default: the format's configs/pretrained_*.py.")
flags.mark_flags_as_required(["format", "source", "workdir"])


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    quiet_logs()
    config = FLAGS.config or importlib.import_module(DEFAULT_CONFIGS[FLAGS.format]).get_config()
    start = time.perf_counter()
    try:
        unused = published_weights.import_weights(FLAGS.format, FLAGS.source, FLAGS.workdir, config)
    except (KeyError, ValueError, ImportError, FileExistsError) as error:
        sys.exit(f"error: {error}")
    if unused:
        say(f"{len(unused)} source tensors not used: {', '.join(unused)}")
    say(f"Imported {FLAGS.source} into {FLAGS.workdir} in {time.perf_counter() - start:.1f} s.")


if __name__ == "__main__":
    app.run(main, flags_parser=config_checks.parse_flags)
