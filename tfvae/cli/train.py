"""`tfvae train` and `tfvae evaluate`."""

import argparse

from tfvae.errors import TfvaeError
from tfvae.training.config import ARCH_NAMES
from tfvae.training.config import LIKELIHOOD_NAMES
from tfvae.training.config import LR_SCHEDULES
from tfvae.training.config import MODEL_NAMES
from tfvae.training.config import TrainConfig
from tfvae.training.distribute import STRATEGIES
from tfvae.training.precision import PRECISIONS

DEFAULT_NLL_SAMPLES = 1000


def _integer(text):
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer. Received: {text!r}") from None


def add_train_arguments(parser):
    defaults = TrainConfig()
    parser.add_argument(
        "--model",
        choices=MODEL_NAMES,
        default=defaults.model,
        help="vae (variational), ae (deterministic) or dae (denoising). Default: %(default)s",
    )
    parser.add_argument(
        "--dataset",
        default=defaults.dataset,
        help="digits, mnist5k (bundled), mnist, fashion_mnist (tfds, online) "
        "or a .npz / .npy file. Default: %(default)s",
    )
    parser.add_argument(
        "--arch", choices=ARCH_NAMES, default=defaults.arch, help="Default: %(default)s"
    )
    parser.add_argument(
        "--latent-dim",
        type=int,
        default=defaults.latent_dim,
        help="Size of z. Default: %(default)s",
    )
    parser.add_argument(
        "--hidden-units",
        type=_integer,
        nargs="*",
        default=list(defaults.hidden_units),
        help="Hidden dense widths. Default: %(default)s",
    )
    parser.add_argument(
        "--filters",
        type=_integer,
        nargs="+",
        default=list(defaults.filters),
        help="Conv filters (--arch conv). Default: %(default)s",
    )
    parser.add_argument("--epochs", type=int, default=defaults.epochs, help="Default: %(default)s")
    parser.add_argument(
        "--batch-size", type=int, default=defaults.batch_size, help="Default: %(default)s"
    )
    parser.add_argument(
        "--beta",
        type=float,
        default=defaults.beta,
        help="KL weight of the VAE. Default: %(default)s",
    )
    parser.add_argument(
        "--learning-rate",
        type=float,
        default=defaults.learning_rate,
        help="Adam's (peak) step size. Default: %(default)s",
    )
    parser.add_argument(
        "--lr-schedule",
        choices=LR_SCHEDULES,
        default=defaults.lr_schedule,
        help="cosine: decay the step size to 0 over the run. Default: %(default)s",
    )
    parser.add_argument(
        "--weight-decay",
        type=float,
        default=defaults.weight_decay,
        help="AdamW's decoupled weight decay; 0 for Adam. Default: %(default)s",
    )
    parser.add_argument(
        "--likelihood",
        choices=LIKELIHOOD_NAMES,
        default=defaults.likelihood,
        help="auto: bernoulli for binarized data, gaussian otherwise. Default: %(default)s",
    )
    parser.add_argument(
        "--binarize",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="Threshold pixels at 0.5. Default: on for vae, off for ae",
    )
    parser.add_argument(
        "--iwae-samples",
        type=int,
        default=defaults.iwae_samples,
        help="VAE: train on the importance-weighted bound with K samples. Default: %(default)s",
    )
    parser.add_argument(
        "--kl-warmup-epochs",
        type=int,
        default=defaults.kl_warmup_epochs,
        help="VAE: ramp the KL weight from 0 to beta over N epochs. Default: %(default)s",
    )
    parser.add_argument(
        "--noise-factor",
        type=float,
        default=None,
        help="dae: standard deviation of the Gaussian noise added to training inputs. "
        f"Default: {defaults.noise_factor}",
    )
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=defaults.precision,
        help="auto: mixed_bfloat16 on CPUs with native bf16, else float32. Default: %(default)s",
    )
    parser.add_argument(
        "--jit-compile",
        action=argparse.BooleanOptionalAction,
        default=defaults.jit_compile,
        help="Compile train steps with XLA. Default: off",
    )
    parser.add_argument(
        "--steps-per-execution",
        type=int,
        default=defaults.steps_per_execution,
        help="Train steps per graph call. Default: %(default)s",
    )
    parser.add_argument(
        "--strategy",
        choices=STRATEGIES,
        default=defaults.strategy,
        help="tf.distribute strategy; auto: multiworker under TF_CONFIG, mirrored with "
        "several GPUs, else one device. Default: %(default)s",
    )
    parser.add_argument("--seed", type=int, default=defaults.seed, help="Default: %(default)s")
    parser.add_argument(
        "--deterministic",
        action="store_true",
        help="Bitwise reproducible training: seeds and TensorFlow's op determinism "
        "(enable_op_determinism)",
    )
    parser.add_argument(
        "--out", default=None, help="Run directory (new or empty). Default: saved_models/<run name>"
    )
    parser.add_argument("--quiet", action="store_true", help="No progress bars")


def add_train_parser(commands):
    parser = commands.add_parser("train", help="train an AE or a VAE and write a run directory")
    add_train_arguments(parser)
    parser.add_argument(
        "--checkpoint-steps",
        type=int,
        default=TrainConfig.checkpoint_steps,
        help="Also checkpoint every N train steps of an epoch (a multiple of "
        "--steps-per-execution); 0: at epoch ends only. Default: %(default)s",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="Continue the killed run of --out DIR from its last checkpoint (kept in "
        "DIR.partial), or start it if there is none",
    )
    parser.set_defaults(handler=run_train)


def add_evaluate_parser(commands):
    parser = commands.add_parser("evaluate", help="print a run's test metrics")
    parser.add_argument("run_dir", help="a directory written by `tfvae train`")
    parser.add_argument(
        "--nll-samples",
        type=int,
        default=DEFAULT_NLL_SAMPLES,
        help="VAE: importance samples for -log p(x); 0 skips it. Default: %(default)s",
    )
    parser.set_defaults(handler=run_evaluate)


def config_from_args(args):
    if args.noise_factor is not None and args.model != "dae":
        raise TfvaeError(
            f"--noise-factor applies to --model dae only. Received: --model {args.model}"
        )
    return TrainConfig(
        model=args.model,
        dataset=args.dataset,
        arch=args.arch,
        latent_dim=args.latent_dim,
        hidden_units=tuple(args.hidden_units),
        filters=tuple(args.filters),
        epochs=args.epochs,
        batch_size=args.batch_size,
        beta=args.beta,
        learning_rate=args.learning_rate,
        lr_schedule=args.lr_schedule,
        weight_decay=args.weight_decay,
        likelihood=args.likelihood,
        binarize=args.binarize,
        seed=args.seed,
        strategy=args.strategy,
        iwae_samples=args.iwae_samples,
        kl_warmup_epochs=args.kl_warmup_epochs,
        noise_factor=TrainConfig.noise_factor if args.noise_factor is None else args.noise_factor,
        precision=args.precision,
        jit_compile=args.jit_compile,
        steps_per_execution=args.steps_per_execution,
        deterministic=args.deterministic,
        # Only `tfvae train` checkpoints; a search keeps its own (Keras Tuner's).
        checkpoint_steps=getattr(args, "checkpoint_steps", TrainConfig.checkpoint_steps),
        out=args.out,
    )


def run_train(args):
    import sys

    from tfvae.evaluation.metrics import format_metrics
    from tfvae.training.trainer import train

    config = config_from_args(args)
    try:
        result = train(config, verbose=0 if args.quiet else "auto", resume=args.resume)
    except KeyboardInterrupt:
        _say_how_to_resume(config, sys.stderr)
        raise
    if result.resumed_from is not None:
        epoch, batch = result.resumed_from
        where = f"in epoch {epoch + 1} after step {batch}" if batch else f"after epoch {epoch}"
        print(f"resumed from the checkpoint {where}")
    print(format_metrics(config, result.test_metrics))
    print(f"run directory: {result.run_dir}")


def _say_how_to_resume(config, stream):
    import os

    from tfvae.training.callbacks import latest_checkpoint
    from tfvae.training.trainer import BACKUP_DIR
    from tfvae.training.trainer import partial_dir

    if config.out and latest_checkpoint(os.path.join(partial_dir(config.out), BACKUP_DIR)):
        print(
            f"tfvae: the last checkpoint is kept in {partial_dir(config.out)}; run the same "
            "command with --resume to continue",
            file=stream,
        )


def run_evaluate(args):
    from tfvae.evaluation.metrics import format_metrics
    from tfvae.training.runs import evaluate_run

    if args.nll_samples < 0:
        raise TfvaeError(f"--nll-samples must be >= 0. Received: {args.nll_samples}")
    config, metrics = evaluate_run(args.run_dir, nll_samples=args.nll_samples, verbose=True)
    print(format_metrics(config, metrics))
