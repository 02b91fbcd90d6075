"""The `tfvae` command line: one module per command, each a thin layer over the library."""

import argparse
import sys

from tfvae import __version__
from tfvae.cli import anomaly
from tfvae.cli import compare
from tfvae.cli import export
from tfvae.cli import pretrain
from tfvae.cli import train
from tfvae.cli import tune
from tfvae.errors import TfvaeError

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, as tfvae's own errors are."""

    def error(self, message):
        raise TfvaeError(message)


# Each function adds one subcommand and sets its `handler`.
SUBCOMMANDS = [
    train.add_train_parser,
    train.add_evaluate_parser,
    compare.add_compare_parser,
    tune.add_tune_parser,
    export.add_export_parser,
    anomaly.add_anomaly_parser,
    pretrain.add_pretrain_parser,
]


DESCRIPTION = """Autoencoders and variational autoencoders for TensorFlow / Keras.

Train a model on bundled MNIST digits or your own arrays, read its test
metrics, compare it with PCA, search its latent size, export it for TF
Serving and devices, detect anomalies with it, or use its encoder as a
pretrained feature extractor."""

EXAMPLES = """examples:
  tfvae train                                   # VAE on 5,000 bundled MNIST digits
  tfvae evaluate saved_models/<run>             # its test metrics and -log p(x)
  tfvae tune --dataset digits --max-trials 6    # search the latent size
  tfvae export saved_models/<run>               # SavedModel + verified TFLite
  tfvae anomaly                                 # digit 5 normal, the others anomalies
  tfvae <command> --help                        # every flag of a command
"""


def build_parser():
    parser = _Parser(
        prog="tfvae",
        description=DESCRIPTION,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"tfvae {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for add_parser in SUBCOMMANDS:
        add_parser(commands)
    return parser


def main(argv=None):
    """Entry point of the `tfvae` console script; returns the exit status."""
    try:
        args = build_parser().parse_args(argv)
        args.handler(args)
    except TfvaeError as error:
        print(f"tfvae: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("tfvae: interrupted", file=sys.stderr)
        return 130
    return 0
