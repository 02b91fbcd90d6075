"""`tfvae presets`: the trained presets that ship with tfvae."""

import argparse

from tfvae.presets import format_presets
from tfvae.presets import list_presets


def add_presets_parser(commands):
    parser = commands.add_parser(
        "presets",
        help="list the trained presets that ship with tfvae",
        description="Lists the presets inside the package: name, model family, training data, "
        "size on disk (parameters and weight dtype) and test metric, measured on the shipped "
        "weights. Any command that takes a run directory for sampling or export takes a preset "
        "name too.",
        epilog="examples:\n"
        "  tfvae presets\n"
        "  tfvae sample vae_dense_mnist5k --n 64 --out grid.png\n"
        "  tfvae export vae_conv_mnist5k --format tflite",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(handler=run_presets)


def run_presets(args):
    print(format_presets(list_presets()))
