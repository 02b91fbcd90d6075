"""`tfvae tune`: a Keras Tuner search over the latent size (and more)."""

import argparse
import os

from tfvae import settings
from tfvae.cli.train import add_train_arguments
from tfvae.cli.train import config_from_args
from tfvae.errors import TfvaeError
from tfvae.training.config import TrainConfig
from tfvae.tuning.search_config import SearchConfig

# Training flags that mean something else in a search: the latent size is
# searched (--latent-dims) and the best model goes to DIR/best (--dir).
REPLACED_TRAIN_FLAGS = {"latent_dim": "--latent-dims", "out": "--dir"}


def add_tune_parser(commands):
    parser = commands.add_parser(
        "tune",
        help="search the latent size (and more) with Keras Tuner; resumable",
        description="Runs, or continues, a Keras Tuner search. Every trial trains the "
        "run the training flags describe, with one choice of each searched setting. "
        "Prints a line per trial, then a table; writes DIR/trials.txt, trials.csv, "
        "objective_vs_latent_dim.png and the best model as the run directory DIR/best.",
        epilog="examples:\n"
        "  tfvae tune --dataset digits --latent-dims 2 4 8 16 --epochs 20 --dir searches/d\n"
        "  tfvae tune --betas 0.5 1 2 --tuner bayesian --max-trials 12\n"
        "  tfvae tune ... (the same flags again)       # resumes the search",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_train_arguments(parser, exclude=("checkpoint_steps",))
    # argparse has no public way to drop an inherited flag; hide it and refuse it.
    for action in parser._actions:
        if action.dest in REPLACED_TRAIN_FLAGS:
            action.help = argparse.SUPPRESS
            action.default = None
    settings.add_arguments(parser.add_argument_group("search"), search_settings())
    parser.set_defaults(handler=run_tune)


def search_config_from_args(args):
    for dest, replacement in REPLACED_TRAIN_FLAGS.items():
        if getattr(args, dest) is not None:
            flag = "--" + dest.replace("_", "-")
            raise TfvaeError(f"tfvae tune does not take {flag}; use {replacement}")
    train = config_from_args(args, latent_dim=TrainConfig.latent_dim, out=None)
    return SearchConfig(train=train, **settings.values_from_args(args, search_settings()))


def search_settings():
    return settings.settings_of(SearchConfig)


def run_tune(args):
    # Keras Tuner takes about 0.9 s to import: only `tfvae tune` pays for it.
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
