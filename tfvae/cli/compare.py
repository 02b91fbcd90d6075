"""`tfvae compare-pca`: PCA, AE and VAE test MSE against latent size."""

import dataclasses
import datetime
import os

from tfvae.apps.pca_comparison import DEFAULT_LATENT_DIMS
from tfvae.errors import TfvaeError
from tfvae.training.runs import staged_output_dir


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
    from tfvae.apps.pca_comparison import compare_with_pca
    from tfvae.apps.pca_comparison import format_comparison
    from tfvae.evaluation import plots
    from tfvae.training.runs import check_new_run_dir
    from tfvae.training.runs import write_json

    if any(d < 1 for d in args.latent_dims):
        raise TfvaeError(f"latent sizes must be positive integers. Received: {args.latent_dims}")
    if args.epochs < 1:
        raise TfvaeError(f"--epochs must be a positive integer. Received: {args.epochs}")
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = args.out or os.path.join(
        "saved_models", f"compare-pca-{os.path.basename(args.dataset)}-{stamp}"
    )
    check_new_run_dir(out)
    rows, data = compare_with_pca(args.dataset, args.latent_dims, args.epochs, args.seed)
    print(format_comparison(rows))
    with staged_output_dir(out, prefix=".tmp-compare-") as staging:
        write_json(
            os.path.join(staging, "results.json"),
            {
                "protocol": data.protocol,
                "epochs": args.epochs,
                "rows": [dataclasses.asdict(r) for r in rows],
            },
        )
        dims = [r.latent_dim for r in rows]
        figure = plots.mse_vs_latent_figure(
            dims,
            {
                "PCA": [r.pca_mse for r in rows],
                "AE": [r.ae_mse for r in rows],
                "VAE (posterior mean)": [r.vae_mse for r in rows],
            },
            title=f"Test MSE against latent size: {data.name}",
        )
        plots.save_figure(figure, os.path.join(staging, "mse_vs_latent.png"))
    print(f"written: {out}/results.json, {out}/mse_vs_latent.png")
