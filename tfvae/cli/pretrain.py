"""`tfvae pretrain`: the autoencoder as a pretrained feature extractor, against PCA and an RBM."""

import argparse
import os

from tfvae import settings
from tfvae.apps import pretraining
from tfvae.apps.pretraining import PretrainConfig
from tfvae.cli.train import add_train_arguments
from tfvae.cli.train import config_from_args as train_config_from_args
from tfvae.errors import TfvaeError
from tfvae.io.locks import claim_dir
from tfvae.training.runs import check_new_run_dir

# The pretrained autoencoder's own settings come from PretrainConfig; its
# other settings are tfvae train's flags.
SET_BY_PRETRAINING = ("model", "dataset", "latent_dim", "epochs", "seed", "out", "checkpoint_steps")
PREFIX = "pretrain_"


def add_pretrain_parser(commands):
    parser = commands.add_parser(
        "pretrain",
        help="few-label classification: pretrained encoder (frozen, fine-tuned) against "
        "the same network from scratch, PCA and RBM features",
        description="Trains a classifier head on a few labels per class on top of the "
        "encoder of RUN_DIR (or of an autoencoder trained first on the unlabeled training "
        "split), and compares it with the same network from scratch, PCA features and RBM "
        "features. Prints the test accuracy table and writes results.json, accuracy.csv "
        "and accuracy_vs_labels.png into a new directory.",
        epilog="examples:\n"
        "  tfvae pretrain                                  # an AE on mnist5k first\n"
        "  tfvae pretrain saved_models/<run> --labels-per-class 10 100\n"
        "  tfvae pretrain --dataset digits --arch conv --filters 16 --hidden-units",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "run_dir",
        nargs="?",
        default=None,
        metavar="RUN_DIR",
        help="a run of `tfvae train` (AE or VAE) whose encoder is pretrained. "
        "Default: train an autoencoder first",
    )
    parser.add_argument(
        "--out", default=None, help="Output directory (new). Default: saved_models/pretrain-..."
    )
    settings.add_arguments(
        parser.add_argument_group("pretraining"),
        settings.settings_of(PretrainConfig),
        unset=WITHOUT_RUN_DIR,
        prefix=PREFIX,
    )
    add_train_arguments(parser, exclude=SET_BY_PRETRAINING, families=())
    parser.set_defaults(handler=run_pretrain)


# Settings of the autoencoder that RUN_DIR replaces.
WITHOUT_RUN_DIR = ("dataset", "latent_dim")


def config_from_args(args):
    values = settings.values_from_args(args, settings.settings_of(PretrainConfig), PREFIX)
    autoencoder = train_config_from_args(args, model="ae", out=None)
    if args.run_dir is not None:
        given = [f"--{name.replace('_', '-')}" for name in WITHOUT_RUN_DIR if name in values]
        if given:
            raise TfvaeError(
                f"{' and '.join(given)} {'is' if len(given) == 1 else 'are'} only used "
                f"without RUN_DIR; the encoder of {args.run_dir} is used with its own data"
            )
        if autoencoder != _default_autoencoder():
            raise TfvaeError(
                "the model flags (--arch, --hidden-units, ...) are only used without RUN_DIR; "
                f"the encoder of {args.run_dir} is the model it was trained with"
            )
    return PretrainConfig(run_dir=args.run_dir, autoencoder=autoencoder, **values)


def _default_autoencoder():
    """The autoencoder's settings when no model flag is given."""
    parser = argparse.ArgumentParser()
    add_train_arguments(parser, exclude=SET_BY_PRETRAINING, families=())
    return train_config_from_args(parser.parse_args([]), model="ae")


def run_pretrain(args):
    config = config_from_args(args)
    out = pretraining.default_output_dir(config) if args.out is None else args.out
    with claim_dir(out, check=check_new_run_dir):
        result = pretraining.compare_pretraining(config)
        print(pretraining.format_table(result))
        pretraining.write_pretrain_dir(result, config, out)
    print(f"written: {', '.join(os.path.join(out, f) for f in pretraining.OUTPUT_FILES)}")
