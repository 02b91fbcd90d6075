"""The `tfvae` command line: parses arguments, builds a config, calls the library."""

import argparse
import contextlib
import os
import sys
import tempfile

from tfvae.config import ARCH_NAMES
from tfvae.config import LIKELIHOOD_NAMES
from tfvae.config import MODEL_NAMES
from tfvae.config import TrainConfig
from tfvae.errors import TfvaeError

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, as tfvae's own errors are."""

    def error(self, message):
        raise TfvaeError(message)


def _positive_units(text):
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer. Received: {text!r}") from None


def _add_train_arguments(parser):
    defaults = TrainConfig()
    parser.add_argument(
        "--model",
        choices=MODEL_NAMES,
        default=defaults.model,
        help="vae (variational) or ae (deterministic). Default: %(default)s",
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
        type=_positive_units,
        nargs="*",
        default=list(defaults.hidden_units),
        help="Hidden dense widths. Default: %(default)s",
    )
    parser.add_argument(
        "--filters",
        type=_positive_units,
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
        help="Adam step size. Default: %(default)s",
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
    parser.add_argument("--seed", type=int, default=defaults.seed, help="Default: %(default)s")
    parser.add_argument(
        "--out", default=None, help="Run directory (new or empty). Default: saved_models/<run name>"
    )
    parser.add_argument("--quiet", action="store_true", help="No progress bars")


def build_parser():
    parser = _Parser(prog="tfvae", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    train = commands.add_parser("train", help="train an AE or a VAE and write a run directory")
    _add_train_arguments(train)
    evaluate = commands.add_parser("evaluate", help="print a run's test loss terms")
    evaluate.add_argument("run_dir", help="a directory written by `tfvae train`")
    return parser


def config_from_args(args):
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
        likelihood=args.likelihood,
        binarize=args.binarize,
        seed=args.seed,
        out=args.out,
    )


def run_train(args):
    from tfvae.evaluation import format_metrics
    from tfvae.training import train

    config = config_from_args(args)
    result = train(config, verbose=0 if args.quiet else "auto")
    print(format_metrics(config, result.test_metrics))
    print(f"run directory: {result.run_dir}")


def run_evaluate(args):
    from tfvae.evaluation import evaluate_run
    from tfvae.evaluation import format_metrics

    config, metrics = evaluate_run(args.run_dir)
    print(format_metrics(config, metrics))


@contextlib.contextmanager
def _native_stderr_captured():
    """Holds back what native code writes to file descriptor 2 inside the block.

    TensorFlow's C++ runtime logs CUDA probing and oneDNN notices through
    absl before its log level applies; they would bury the one-line errors
    and progress bars. The text is replayed if the block raises.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _start_tensorflow():
    with _native_stderr_captured():
        import tensorflow as tf

        tf.config.list_physical_devices()
        tf.constant(0.0)


COMMANDS = {"train": run_train, "evaluate": run_evaluate}


def main(argv=None):
    """Entry point of the `tfvae` console script; returns the exit status."""
    try:
        args = build_parser().parse_args(argv)
        _start_tensorflow()
        COMMANDS[args.command](args)
    except TfvaeError as error:
        print(f"tfvae: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("tfvae: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
