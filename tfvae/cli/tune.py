"""`tfvae tune`: a Keras Tuner search over the latent size (and more)."""

import argparse
import os

from tfvae.cli.train import add_train_arguments
from tfvae.cli.train import config_from_args
from tfvae.errors import TfvaeError
from tfvae.training.config import TrainConfig
from tfvae.tuning.search_config import DEFAULT_LATENT_DIMS
from tfvae.tuning.search_config import TUNER_NAMES
from tfvae.tuning.search_config import SearchConfig

# Training flags that mean something else in a search: the latent size is
# searched (--latent-dims) and the best model goes to DIR/best (--dir).
REPLACED_TRAIN_FLAGS = {"latent_dim": "--latent-dims", "out": "--dir"}


def _integer(text):
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer. Received: {text!r}") from None


def _number(text):
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number. Received: {text!r}") from None


def add_tune_parser(commands):
    parser = commands.add_parser(
        "tune",
        help="search the latent size (and more) with Keras Tuner; resumable",
        description="Runs, or continues, a Keras Tuner search. Every trial trains the "
        "run the training flags describe, with one choice of each searched setting. "
        "Prints a line per trial, then a table; writes DIR/trials.txt, trials.csv, "
        "objective_vs_latent_dim.png and the best model as the run directory DIR/best.",
    )
    add_train_arguments(parser)
    # argparse has no public way to drop an inherited flag; hide it and refuse it.
    for action in parser._actions:
        if action.dest in REPLACED_TRAIN_FLAGS:
            action.help = argparse.SUPPRESS
            action.default = None
    parser.add_argument(
        "--latent-dims",
        type=_integer,
        nargs="*",
        default=list(DEFAULT_LATENT_DIMS),
        help="Latent sizes to try. Default: %(default)s",
    )
    parser.add_argument(
        "--betas", type=_number, nargs="*", default=None, help="VAE: KL weights to try"
    )
    parser.add_argument(
        "--learning-rates", type=_number, nargs="*", default=None, help="Adam step sizes to try"
    )
    parser.add_argument(
        "--widths",
        type=_integer,
        nargs="*",
        default=None,
        help="Widths to try for every hidden dense layer (--hidden-units sets how many)",
    )
    parser.add_argument(
        "--tuner", choices=TUNER_NAMES, default="random", help="Default: %(default)s"
    )
    parser.add_argument(
        "--max-trials",
        type=int,
        default=SearchConfig.max_trials,
        help="Trials at most; the search also ends when every combination was tried. "
        "Default: %(default)s",
    )
    parser.add_argument(
        "--objective",
        default=SearchConfig.objective,
        help="Metric to minimise: val_loss, val_reconstruction_loss, val_kl_loss (vae) or "
        "a training twin. Default: %(default)s",
    )
    parser.add_argument(
        "--dir",
        default=None,
        help="Search directory; rerunning with the same flags resumes it. "
        "Default: saved_models/tune-<model>-<dataset>-<arch>",
    )
    parser.set_defaults(handler=run_tune)


def search_config_from_args(args):
    for dest, replacement in REPLACED_TRAIN_FLAGS.items():
        if getattr(args, dest) is not None:
            flag = "--" + dest.replace("_", "-")
            raise TfvaeError(f"tfvae tune does not take {flag}; use {replacement}")
    args.latent_dim = TrainConfig.latent_dim
    return SearchConfig(
        train=config_from_args(args),
        latent_dims=tuple(args.latent_dims),
        betas=None if args.betas is None else tuple(args.betas),
        learning_rates=None if args.learning_rates is None else tuple(args.learning_rates),
        widths=None if args.widths is None else tuple(args.widths),
        tuner=args.tuner,
        max_trials=args.max_trials,
        objective=args.objective,
        directory=args.dir,
    )


def run_tune(args):
    from tfvae.tuning import tune
    from tfvae.tuning.report import format_value
    from tfvae.tuning.search import BEST_DIR
    from tfvae.tuning.search import FIGURE_FILE

    config = search_config_from_args(args)
    result = tune(config, progress=not args.quiet)
    if result.role == "worker":
        print(
            f"worker {os.environ.get('KERASTUNER_TUNER_ID')} finished; the chief writes "
            f"the report in {result.directory}"
        )
        return
    best = result.best
    choices = ", ".join(f"{name}={format_value(best[name])}" for name in config.searched())
    print(result.table)
    print(
        f"best: trial {best['trial']} ({choices}) {config.objective}="
        f"{format_value(best[config.objective])} at epoch {best['best epoch']}"
    )
    print(f"figure: {os.path.join(result.directory, FIGURE_FILE)}")
    print(
        f"best model: {result.best_run_dir} (tfvae evaluate {os.path.join(result.directory, BEST_DIR)})"
    )
