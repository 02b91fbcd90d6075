"""`tfvae compare-pca`: PCA, AE and VAE test MSE against latent size."""

import argparse
import os

from tfvae.apps import pca_comparison
from tfvae.apps.pca_comparison import DEFAULT_LATENT_DIMS
from tfvae.cli.train import add_train_arguments
from tfvae.cli.train import config_from_args
from tfvae.io.locks import claim_dir
from tfvae.training.runs import check_new_run_dir

# The comparison trains one AE and one VAE per latent size, on grey levels.
SET_BY_THE_COMPARISON = ("model", "latent_dim", "binarize", "likelihood", "checkpoint_steps", "out")


def add_compare_parser(commands):
    parser = commands.add_parser(
        "compare-pca",
        help="compare PCA, AE and VAE test reconstruction MSE across latent sizes",
        description="Trains an autoencoder and a VAE at each latent size on grey-level data "
        "and compares their test reconstruction MSE with PCA's at the same size. Prints the "
        "table and writes results.json and mse_vs_latent.png into a new directory. The model "
        "flags are tfvae train's.",
        epilog="examples:\n"
        "  tfvae compare-pca --latent-dims 2 4 8 16 32\n"
        "  tfvae compare-pca --dataset digits --arch conv --filters 16 --hidden-units --epochs 20",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--latent-dims",
        type=int,
        nargs="+",
        default=list(DEFAULT_LATENT_DIMS),
        help="Latent sizes to compare. Default: %(default)s",
    )
    parser.add_argument(
        "--out", default=None, help="Output directory (new). Default: saved_models/compare-pca-..."
    )
    add_train_arguments(
        parser, exclude=SET_BY_THE_COMPARISON, defaults={"epochs": 30}, families=("vae",)
    )
    parser.set_defaults(handler=run_compare)


def run_compare(args):
    base = config_from_args(args, model="vae", binarize=False, out=None)
    out = pca_comparison.default_output_dir(base.dataset) if args.out is None else args.out
    with claim_dir(out, check=check_new_run_dir):
        rows, data = pca_comparison.compare_with_pca(
            latent_dims=args.latent_dims, verbose=0 if args.quiet else "auto", base=base
        )
        print(pca_comparison.format_comparison(rows))
        pca_comparison.write_comparison_dir(rows, data, base.epochs, out)
    print(f"written: {', '.join(os.path.join(out, f) for f in pca_comparison.OUTPUT_FILES)}")
