"""The `tfvae` command line: one module per command, each a thin layer over the library."""

import argparse
import contextlib
import logging
import sys
import warnings

from tfvae import __version__
from tfvae.cli import anomaly
from tfvae.cli import compare
from tfvae.cli import data
from tfvae.cli import export
from tfvae.cli import fit_sampler
from tfvae.cli import presets
from tfvae.cli import pretrain
from tfvae.cli import sample
from tfvae.cli import train
from tfvae.cli import train_prior
from tfvae.cli import tune
from tfvae.errors import TfvaeError
from tfvae.io.interrupts import EXIT_INTERRUPTED

EXIT_USAGE = 2
# Loggers with their own stderr handlers (TensorFlow adds one); the root
# logger's handlers and logging's last resort are held back too.
LOGGERS_HELD_BACK = ("tensorflow", "absl")


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
    presets.add_presets_parser,
    sample.add_sample_parser,
    data.add_data_parser,
    train_prior.add_train_prior_parser,
    fit_sampler.add_fit_sampler_parser,
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


class _HeldBack(logging.Filter):
    """A log filter that holds every record back, for its handler to emit later."""

    def __init__(self, handler):
        super().__init__()
        self.handler = handler
        self.records = []

    def filter(self, record):
        self.records.append(record)
        return False

    def replay(self):
        for record in self.records:
            self.handler.handle(record)


class _HeldAtRoot(logging.Handler):
    """The root logger's handler while a command runs: holds what reaches the root.

    Being a handler, it also keeps `logging.warning()` from adding a
    stderr handler to the root (`basicConfig`) and logging's last resort
    from printing records of loggers without handlers.
    """

    def __init__(self):
        super().__init__()
        self.records = []

    def emit(self, record):
        self.records.append(record)

    def replay(self):
        root = logging.getLogger()
        for record in self.records:
            if root.handlers:
                for handler in root.handlers:
                    if record.levelno >= handler.level:
                        handler.handle(record)
            elif not _has_handlers_below_root(record.name) and logging.lastResort:
                if record.levelno >= logging.lastResort.level:
                    logging.lastResort.handle(record)


def _has_handlers_below_root(name):
    logger = logging.getLogger(name)
    while logger is not None and logger is not logging.getLogger():
        if logger.handlers:
            return True
        logger = logger.parent
    return False


@contextlib.contextmanager
def _warnings_held_back():
    """Holds back Python warnings and log records; yields a function that emits them.

    A failing command prints one line, so what Keras and TensorFlow warned
    on the way is dropped; a command that succeeds (or crashes with a
    traceback) gets it all after its own output, when it calls the yielded
    function.
    """
    filters = [
        _HeldBack(handler)
        for name in LOGGERS_HELD_BACK
        for handler in logging.getLogger(name).handlers
    ]
    for filter_ in filters:
        filter_.handler.addFilter(filter_)
    at_root = _HeldAtRoot()
    logging.getLogger().addHandler(at_root)
    recorder = warnings.catch_warnings(record=True)
    caught = recorder.__enter__()
    state = {"open": True}

    def release():
        if state["open"]:
            state["open"] = False
            recorder.__exit__(None, None, None)
            logging.getLogger().removeHandler(at_root)
            for filter_ in filters:
                filter_.handler.removeFilter(filter_)

    def replay():
        if not state["open"]:
            return
        release()
        for held in (*filters, at_root):
            held.replay()
        for warning in caught:
            warnings.showwarning(
                warning.message, warning.category, warning.filename, warning.lineno, warning.file
            )

    try:
        yield replay
    finally:
        release()


def main(argv=None):
    """Entry point of the `tfvae` console script; returns the exit status.

    A mistake ends the command with exit status 2 and one line on stderr,
    `tfvae: error: ...`: the warnings raised on the way are dropped. They
    are shown when the command succeeds.
    """
    with _warnings_held_back() as replay:
        try:
            args = build_parser().parse_args(argv)
            args.handler(args)
        except TfvaeError as error:
            print(f"tfvae: error: {error}", file=sys.stderr)
            return EXIT_USAGE
        except KeyboardInterrupt:
            print("tfvae: interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        except BaseException:
            replay()
            raise
        replay()
    return 0
