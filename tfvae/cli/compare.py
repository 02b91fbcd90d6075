"""`tfvae compare-pca`: PCA, AE and VAE test MSE against latent size."""

import os

from tfvae.apps import pca_comparison
from tfvae.apps.pca_comparison import DEFAULT_LATENT_DIMS
from tfvae.training.runs import check_new_run_dir


def add_compare_parser(commands):
    parser = commands.add_parser(
        "compare-pca", help="compare PCA, AE and VAE test reconstruction MSE across latent sizes"
    )
    parser.add_argument("--dataset", default="mnist5k", help="Default: %(default)s")
    parser.add_argument(
        "--latent-dims",
        type=int,
        nargs="+",
        default=list(DEFAULT_LATENT_DIMS),
        help="Default: %(default)s",
    )
    parser.add_argument("--epochs", type=int, default=30, help="Default: %(default)s")
    parser.add_argument("--seed", type=int, default=0, help="Default: %(default)s")
    parser.add_argument(
        "--out", default=None, help="Output directory (new). Default: saved_models/compare-pca-..."
    )
    parser.set_defaults(handler=run_compare)


def run_compare(args):
    out = args.out or pca_comparison.default_output_dir(args.dataset)
    check_new_run_dir(out)
    rows, data = pca_comparison.compare_with_pca(
        args.dataset, args.latent_dims, args.epochs, args.seed
    )
    print(pca_comparison.format_comparison(rows))
    pca_comparison.write_comparison_dir(rows, data, args.epochs, out)
    print(f"written: {', '.join(os.path.join(out, f) for f in pca_comparison.OUTPUT_FILES)}")
