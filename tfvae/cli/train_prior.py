"""`tfvae train-prior`: the second stage of a VQ-VAE run, a learned prior over its codes."""

import argparse

from tfvae import settings
from tfvae.training.prior_training import PRIOR_DIR
from tfvae.training.prior_training import PriorConfig
from tfvae.training.prior_training import format_prior_metrics
from tfvae.training.prior_training import train_prior


def add_train_prior_parser(commands):
    parser = commands.add_parser(
        "train-prior",
        help="train an autoregressive prior over the codes of a VQ-VAE run",
        description="Encodes the data of a `tfvae train --model vqvae` run to code maps, fits "
        "a small causal Transformer to them, reports the test NLL of the codes in bits per "
        f"position, and stores the prior in the run: model.keras then samples, and RUN_DIR/"
        f"{PRIOR_DIR}/ holds its settings, history, metrics and samples.",
        epilog="examples:\n"
        "  tfvae train --model vqvae --epochs 30 --out runs/vq\n"
        "  tfvae train-prior runs/vq --epochs 40",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run_dir", help="a directory written by `tfvae train --model vqvae`")
    settings.add_arguments(parser, settings.settings_of(PriorConfig))
    parser.add_argument("--quiet", action="store_true", help="No progress bars")
    parser.set_defaults(handler=run_train_prior)


def run_train_prior(args):
    config = PriorConfig(**settings.values_from_args(args, settings.settings_of(PriorConfig)))
    result = train_prior(args.run_dir, config, verbose=0 if args.quiet else "auto")
    print(format_prior_metrics(result.metrics))
    print(f"prior stored in {args.run_dir} (model.keras, {PRIOR_DIR}/)")
