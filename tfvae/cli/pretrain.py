"""`tfvae pretrain`: the autoencoder as a pretrained feature extractor, against PCA and an RBM."""

import os

from tfvae.apps import pretraining
from tfvae.apps.pretraining import DEFAULT_LABELS_PER_CLASS
from tfvae.apps.pretraining import PretrainConfig
from tfvae.errors import TfvaeError
from tfvae.training.runs import check_new_run_dir


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


def run_pretrain(args):
    config = config_from_args(args)
    out = args.out or pretraining.default_output_dir(config)
    check_new_run_dir(out)
    result = pretraining.compare_pretraining(config)
    print(pretraining.format_table(result))
    pretraining.write_pretrain_dir(result, config, out)
    print(f"written: {', '.join(os.path.join(out, f) for f in pretraining.OUTPUT_FILES)}")
