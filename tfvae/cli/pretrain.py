"""`tfvae pretrain`: the autoencoder as a pretrained feature extractor, against PCA and an RBM."""

import datetime
import os

from tfvae.apps.pretraining import DEFAULT_LABELS_PER_CLASS
from tfvae.apps.pretraining import PretrainConfig
from tfvae.errors import TfvaeError
from tfvae.training.runs import staged_output_dir

RESULTS_FILE = "results.json"
CSV_FILE = "accuracy.csv"
FIGURE_FILE = "accuracy_vs_labels.png"


def add_pretrain_parser(commands):
    defaults = PretrainConfig()
    parser = commands.add_parser(
        "pretrain",
        help="few-label classification: pretrained encoder (frozen, fine-tuned) against "
        "the same network from scratch, PCA and RBM features",
        description="Trains a classifier head on a few labels per class on top of the "
        "encoder of RUN_DIR (or of an autoencoder trained first on the unlabeled training "
        "split), and compares it with the same network from scratch, PCA features and RBM "
        "features. Prints the test accuracy table and writes results.json, accuracy.csv "
        "and accuracy_vs_labels.png into a new directory.",
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
        "--dataset",
        default=None,
        help=f"data set without RUN_DIR. Default: {defaults.dataset}",
    )
    parser.add_argument(
        "--labels-per-class",
        type=int,
        nargs="+",
        default=list(DEFAULT_LABELS_PER_CLASS),
        help="Default: %(default)s",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=defaults.repeats,
        help="label draws per setting, averaged. Default: %(default)s",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=defaults.pretrain_epochs,
        help="epochs of the unsupervised training: the autoencoder (without RUN_DIR) and "
        "the RBM. Default: %(default)s",
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=defaults.steps,
        help="optimizer steps of each supervised training. Default: %(default)s",
    )
    parser.add_argument(
        "--latent-dim",
        type=int,
        default=None,
        help=f"code size of the autoencoder trained without RUN_DIR. Default: {defaults.latent_dim}",
    )
    parser.add_argument(
        "--rbm-hidden",
        type=int,
        default=defaults.rbm_hidden,
        help="hidden units of the RBM. Default: %(default)s",
    )
    parser.add_argument("--seed", type=int, default=defaults.seed, help="Default: %(default)s")
    parser.add_argument(
        "--out", default=None, help="Output directory (new). Default: saved_models/pretrain-..."
    )
    parser.set_defaults(handler=run_pretrain)


def config_from_args(args):
    if args.run_dir is not None:
        given = [
            flag
            for flag, value in (("--dataset", args.dataset), ("--latent-dim", args.latent_dim))
            if value is not None
        ]
        if given:
            raise TfvaeError(
                f"{' and '.join(given)} {'is' if len(given) == 1 else 'are'} only used "
                f"without RUN_DIR; the encoder of {args.run_dir} is used with its own data"
            )
    if args.epochs < 1:
        raise TfvaeError(f"--epochs must be a positive integer. Received: {args.epochs}")
    defaults = PretrainConfig()
    return PretrainConfig(
        run_dir=args.run_dir,
        dataset=args.dataset or defaults.dataset,
        labels_per_class=tuple(args.labels_per_class),
        repeats=args.repeats,
        pretrain_epochs=args.epochs,
        steps=args.steps,
        latent_dim=args.latent_dim or defaults.latent_dim,
        rbm_hidden=args.rbm_hidden,
        seed=args.seed,
    )


def default_out(config):
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    if config.run_dir is not None:
        name = os.path.basename(os.path.normpath(config.run_dir))
    else:
        name = os.path.splitext(os.path.basename(config.dataset))[0]
    return os.path.join("saved_models", f"pretrain-{name}-{stamp}")


def write_results(result, config, out):
    """Writes results.json, accuracy.csv and the figure into the new directory `out`, atomically."""
    from tfvae.apps.pretraining import METHOD_TITLES
    from tfvae.apps.pretraining import write_csv
    from tfvae.evaluation import plots
    from tfvae.training.runs import write_json

    with staged_output_dir(out, prefix=".tmp-pretrain-") as staging:
        write_json(
            os.path.join(staging, RESULTS_FILE),
            {
                "protocol": result.data.protocol,
                "encoder": result.encoder_source,
                "latent_dim": result.latent_dim,
                "config": config.to_dict(),
                "methods": {
                    m: METHOD_TITLES[m] for m in dict.fromkeys(r.method for r in result.rows)
                },
                "rows": [r.to_dict() for r in result.rows],
                "seconds": result.seconds,
            },
        )
        write_csv(result, os.path.join(staging, CSV_FILE))
        labels = sorted({r.labels_per_class for r in result.rows})
        series = {}
        for method in dict.fromkeys(r.method for r in result.rows):
            cells = [result.row(method, n) for n in labels]
            series[METHOD_TITLES[method]] = ([c.mean for c in cells], [c.std for c in cells])
        figure = plots.accuracy_vs_labels_figure(
            labels,
            series,
            title=f"Few-label test accuracy, {result.data.name} ({config.repeats} label draws)",
        )
        plots.save_figure(figure, os.path.join(staging, FIGURE_FILE))


def run_pretrain(args):
    from tfvae.apps.pretraining import compare_pretraining
    from tfvae.apps.pretraining import format_table
    from tfvae.training.runs import check_new_run_dir

    config = config_from_args(args)
    out = args.out or default_out(config)
    check_new_run_dir(out)
    result = compare_pretraining(config)
    print(format_table(result))
    write_results(result, config, out)
    print(f"written: {out}/{RESULTS_FILE}, {out}/{CSV_FILE}, {out}/{FIGURE_FILE}")
