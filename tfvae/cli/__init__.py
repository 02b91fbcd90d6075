"""The `tfvae` command line: parses arguments, builds a config, calls the library."""

import argparse
import sys

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


def build_parser():
    parser = _Parser(prog="tfvae", description=__doc__)
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
