"""`tfvae export`: a run directory to a TF Serving SavedModel and verified TFLite files."""

import argparse
import os
import shlex

from tfvae._startup import native_stderr_captured
from tfvae.export import export_run
from tfvae.export import format_table
from tfvae.export.layout import DEFAULT_BASE_DIR
from tfvae.export.layout import DEFAULT_SERVER_BASE_PATH
from tfvae.export.run import EXPORT_FORMATS
from tfvae.export.tflite import left_out_lines
from tfvae.io.interrupts import exit_on_interrupt
from tfvae.presets import resolve_run_or_preset


def add_export_parser(commands):
    parser = commands.add_parser(
        "export",
        help="export a run for TensorFlow Serving (SavedModel) and devices (TFLite)",
        description="Exports a run as a TF Serving model version (SavedModel with named "
        "signatures) and as float32, dynamic-range and int8 TFLite files, checks every "
        "exported form against the Keras model on held-out data, and rewrites models.config.",
        epilog="examples:\n"
        "  tfvae export saved_models/<run>                   # SavedModel + TFLite, next version\n"
        "  tfvae export saved_models/<run> --format tflite --base served\n"
        '  docker run -p 8501:8501 -v "$PWD/saved_models:/models" tensorflow/serving \\\n'
        "      --model_config_file=/models/models.config",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "run_dir", help="a directory written by `tfvae train`, or a preset (tfvae presets)"
    )
    parser.add_argument(
        "--format",
        choices=EXPORT_FORMATS,
        default="all",
        help="SavedModel for TF Serving, TFLite (float32, dynamic_range, int8), or both. "
        "Default: %(default)s",
    )
    parser.add_argument(
        "--base",
        default=DEFAULT_BASE_DIR,
        help="Parent of the model directories and models.config. Default: %(default)s",
    )
    parser.add_argument(
        "--name",
        default=None,
        help="TF Serving model name. Default: the run directory's name without its timestamp",
    )
    parser.add_argument(
        "--version", type=int, default=None, help="Version number. Default: the next free one"
    )
    parser.add_argument("--overwrite", action="store_true", help="Replace an existing --version")
    parser.add_argument(
        "--server-base",
        default=DEFAULT_SERVER_BASE_PATH,
        help="--base as TF Serving sees it, for models.config. Default: %(default)s "
        "(the docker image's model directory)",
    )
    parser.set_defaults(handler=run_export)


def run_export(args):

    # Ctrl-C removes what the export has written and ends the process at
    # once (see `tfvae.io.interrupts`). The TFLite converter and LiteRT log
    # from C++ (MLIR passes, XNNPACK); the table below is the report.
    with (
        exit_on_interrupt("tfvae: interrupted"),
        native_stderr_captured(),
        resolve_run_or_preset(args.run_dir) as run_dir,
    ):
        result = export_run(
            run_dir,
            export_format=args.format,
            base_dir=args.base,
            model_name=args.name,
            version=args.version,
            overwrite=args.overwrite,
            server_base_path=args.server_base,
        )
    print(f"model {result.model_name}, version {result.version}")
    for entry in result.left_out:
        print(
            f"models.config leaves out {os.path.join(args.base, entry)!r}: "
            "TF Serving rejects its name as a model name"
        )
    written = {}
    if result.saved_model_path:
        written["SavedModel"] = result.saved_model_path
        written["models.config"] = result.model_config_path
    for quantization, path in result.tflite_files.items():
        written[f"TFLite {quantization}"] = path
    for label, path in written.items():
        print(f"{label + ':':22s} {path}")
    for line in left_out_lines(result.tflite_left_out):
        print(line)
    print()
    print(format_table(result.verification))
    if result.saved_model_path:
        print()
        mount = shlex.quote(f"{os.path.abspath(args.base)}:{args.server_base}")
        config = shlex.quote(f"--model_config_file={args.server_base.rstrip('/')}/models.config")
        print(f"serve: docker run --rm -p 8501:8501 -v {mount} tensorflow/serving {config}")
