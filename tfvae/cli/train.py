"""`tfvae train` and `tfvae evaluate`, and the model flags every training command shares."""

import argparse
import os
import sys

import keras

from tfvae import settings
from tfvae.errors import TfvaeError
from tfvae.evaluation import sample_quality
from tfvae.evaluation.feature_extractors import FEATURE_EXTRACTORS
from tfvae.evaluation.feature_extractors import feature_extractor
from tfvae.evaluation.metrics import DEFAULT_NLL_SAMPLES
from tfvae.evaluation.metrics import format_metrics
from tfvae.io.atomic import write_json
from tfvae.models import registry
from tfvae.training.callbacks import latest_checkpoint
from tfvae.training.config import TrainConfig
from tfvae.training.config import train_settings
from tfvae.training.recipes import RECIPE_SETTINGS
from tfvae.training.recipes import RECIPES
from tfvae.training.recipes import recipe_settings
from tfvae.training.runs import evaluate_run
from tfvae.training.runs import load_run
from tfvae.training.runs import load_run_data
from tfvae.training.trainer import BACKUP_DIR
from tfvae.training.trainer import partial_dir
from tfvae.training.trainer import train

SAMPLE_QUALITY_FILE = "sample_quality.json"

TRAIN_EXAMPLES = """examples:
  tfvae train                                    # the default VAE on bundled MNIST digits
  tfvae train --model ae --arch conv --latent-dim 8 --epochs 20
  tfvae train --recipe quality                   # a better likelihood, slower
  tfvae train --dataset my_images.npz --out runs/mine
  tfvae train --out runs/long --resume           # continue a killed run
"""


def add_train_arguments(parser, exclude=(), defaults=None, families=None, unset=()):
    """Adds the flags of every `TrainConfig` setting, and each model family's own, to `parser`.

    Every command that trains a model calls this, so they all take the same
    model flags. A family's flags are listed under its own heading and left
    unset unless given (`config_from_args` refuses them for another family).

    Args:
        parser: `argparse.ArgumentParser`.
        exclude: names of settings this command sets itself (`tfvae tune`
            searches the latent size).
        defaults: dict or None. This command's own defaults.
        families: names of the families whose own settings to offer, or
            `None` for every registered family.
        unset: names of `TrainConfig` settings whose flag is left `None`
            unless given (their default still shows in `--help`), so that a
            given flag can be told from the default (`--recipe`).
    """
    common = [s for s in train_settings() if s.name not in exclude]
    settings.add_arguments(
        parser.add_argument_group("model and training"), common, defaults=defaults, unset=unset
    )
    declared = set()
    for family in registry.families():
        if families is not None and family.name not in families:
            continue
        own = [s for s in family.settings if s.name not in declared and s.name not in exclude]
        declared.update(s.name for s in own)
        if own:
            group = parser.add_argument_group(f"--model {family.name} ({family.description})")
            settings.add_arguments(group, own, unset={s.name for s in own})
    parser.add_argument("--quiet", action="store_true", help="No progress bars")


def family_settings():
    """Every family's own settings, each name once."""
    seen = {}
    for family in registry.families():
        for spec in family.settings:
            seen.setdefault(spec.name, spec)
    return tuple(seen.values())


def config_from_args(args, **overrides):
    """The `TrainConfig` of parsed flags; `overrides` replace what the command decides itself."""
    values = settings.values_from_args(args, (*train_settings(), *family_settings()))
    # An unset --binarize means "the family's choice", which is the config's None.
    values.setdefault("binarize", None)
    values.update(overrides)
    return TrainConfig(**values)


def add_train_parser(commands):
    parser = commands.add_parser(
        "train",
        help="train a model and write a run directory (model, metrics, figures, logs)",
        description="Trains a model family on a data set and writes a run directory: "
        "model.keras, config.json, metrics.json, history.json, figures and TensorBoard logs. "
        "A killed run keeps its last checkpoint; --resume continues it.",
        epilog=TRAIN_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    # The recipes' settings are told apart from their defaults: a given flag wins.
    add_train_arguments(parser, unset=RECIPE_SETTINGS)
    parser.add_argument(
        "--resume",
        action="store_true",
        help="Continue the killed run of --out DIR from its last checkpoint (kept in "
        "DIR.partial), or start it if there is none",
    )
    parser.add_argument(
        "--recipe",
        choices=list(RECIPES),
        default=None,
        help="A VAE training recipe: "
        + "; ".join(f"{r.name}: {r.summary}" for r in RECIPES.values())
        + ". Flags given explicitly win over the recipe's. Default: fast",
    )
    parser.set_defaults(handler=run_train)


def add_evaluate_parser(commands):
    parser = commands.add_parser(
        "evaluate",
        help="print a run's test metrics",
        description="Loads a run directory and prints its model's test metrics on the test "
        "split of the data it was trained on.",
        epilog="example:\n  tfvae evaluate saved_models/vae-mnist5k-dense-z16-20260101-120000",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run_dir", help="a directory written by `tfvae train`")
    parser.add_argument(
        "--nll-samples",
        type=int,
        default=DEFAULT_NLL_SAMPLES,
        help="VAE: importance samples for -log p(x); 0 skips it. Default: %(default)s",
    )
    parser.add_argument(
        "--samples",
        type=int,
        default=0,
        help="Sample quality: FID, KID and precision/recall of N prior samples and of the "
        "test reconstructions against the test set, written to RUN_DIR/"
        f"{SAMPLE_QUALITY_FILE}; 0 skips it. Default: %(default)s",
    )
    parser.add_argument(
        "--features",
        choices=list(FEATURE_EXTRACTORS),
        default="mnist",
        help="Features for --samples: the shipped digit classifier's (offline) or "
        "InceptionV3's (weights from the Keras cache, never downloaded). Default: %(default)s",
    )
    parser.set_defaults(handler=run_evaluate)


def train_config_from_args(args):
    """The `TrainConfig` of `tfvae train`'s flags, with `--recipe`'s settings where not given."""
    config = config_from_args(args)
    if args.recipe is None:
        return config
    explicit = {
        name: value
        for name, value in settings.values_from_args(
            args, (*train_settings(), *family_settings())
        ).items()
        if name in RECIPE_SETTINGS
    }
    recipe = recipe_settings(args.recipe, config.model)
    return TrainConfig(**{**config.to_dict(), **recipe, **explicit})


class _ParameterCount(keras.callbacks.Callback):
    """Prints the model's number of weights once, when training begins."""

    def __init__(self):
        super().__init__()
        self.printed = False

    def on_train_begin(self, logs=None):
        if not self.printed:
            print(registry.parameter_summary(self.model), flush=True)
            self.printed = True


def run_train(args):
    config = train_config_from_args(args)
    try:
        result = train(
            config,
            verbose=0 if args.quiet else "auto",
            resume=args.resume,
            callbacks=[] if args.quiet else [_ParameterCount()],
        )
    except KeyboardInterrupt:
        _say_how_to_resume(config, sys.stderr)
        raise
    if result.resumed_from is not None:
        epoch, batch = result.resumed_from
        where = f"in epoch {epoch + 1} after step {batch}" if batch else f"after epoch {epoch}"
        print(f"resumed from the checkpoint {where}")
    print(format_metrics(config, result.test_metrics))
    for notice in result.notices:
        print(notice)
    print(f"run directory: {result.run_dir}")


def _say_how_to_resume(config, stream):
    if config.out and latest_checkpoint(os.path.join(partial_dir(config.out), BACKUP_DIR)):
        print(
            f"tfvae: the last checkpoint is kept in {partial_dir(config.out)}; run the same "
            "command with --resume to continue",
            file=stream,
        )


def run_evaluate(args):
    if args.nll_samples < 0:
        raise TfvaeError(f"--nll-samples must be >= 0. Received: {args.nll_samples}")
    if args.samples < 0:
        raise TfvaeError(f"--samples must be >= 0. Received: {args.samples}")
    features = None
    if args.samples:
        # Before the evaluation, so that a bad count or absent InceptionV3 weights fail at once.
        sample_quality.check_sample_count(args.samples, name="--samples")
        features = feature_extractor(args.features)
    config, metrics = evaluate_run(args.run_dir, nll_samples=args.nll_samples, verbose=True)
    print(format_metrics(config, metrics))
    if args.samples:
        _evaluate_sample_quality(args.run_dir, args.samples, features)


def _evaluate_sample_quality(run_dir, samples, features):
    config, model = load_run(run_dir)
    data = load_run_data(run_dir, config, model)
    quality = sample_quality.sample_quality(model, data, samples, features=features)
    print(sample_quality.format_sample_quality(quality))
    path = os.path.join(run_dir, SAMPLE_QUALITY_FILE)
    try:
        write_json(path, quality)
    except OSError as error:
        print(f"tfvae: could not write {path}: {error}", file=sys.stderr)
        return
    print(f"sample quality written to {path}")
