"""`tfvae anomaly`: train on normal data, calibrate a threshold, detect anomalies."""

import argparse
import dataclasses
import os

from tfvae import settings
from tfvae.apps import anomaly
from tfvae.apps.anomaly.options import DATA_OPTIONS
from tfvae.apps.anomaly.options import THRESHOLD_OPTIONS
from tfvae.apps.anomaly.options import AnomalyOptions
from tfvae.cli.train import add_train_arguments
from tfvae.cli.train import config_from_args
from tfvae.data.datasets import is_array_file
from tfvae.io.locks import claim_dir
from tfvae.training.runs import check_new_run_dir

# The demo trains an autoencoder for 30 epochs.
TRAIN_DEFAULTS = {"model": "ae", "epochs": 30}


def add_anomaly_parser(commands):
    parser = commands.add_parser(
        "anomaly",
        help="anomaly detection: train on normal data only, flag examples the model explains badly",
        description="Trains an AE (or VAE) on normal examples, sets the threshold on held-out "
        "normal examples and reports precision, recall, F1, ROC-AUC and PR-AUC on the test set "
        "(positive class = anomaly). Data: one digit of --dataset is normal (default), or "
        "--normal/--test arrays, or the ECG5000 CSV of TensorFlow's autoencoder tutorial.",
        epilog="examples:\n"
        "  tfvae anomaly                                   # digit 5 of mnist5k is normal\n"
        "  tfvae anomaly --normal-digit 3 --fpr 0.01 --model vae\n"
        "  tfvae anomaly --normal normal.npz --test test.npz\n"
        "  tfvae anomaly --ecg5000 ecg.csv --arch dense --hidden-units 32 16 --latent-dim 8",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    declared = {s.name: s for s in settings.settings_of(AnomalyOptions)}
    settings.add_arguments(
        parser.add_argument_group(
            "data (one digit of --dataset, or --normal/--test, or --ecg5000)"
        ),
        [declared[name] for name in DATA_OPTIONS],
    )
    settings.add_arguments(
        parser.add_mutually_exclusive_group(), [declared[name] for name in THRESHOLD_OPTIONS]
    )
    settings.add_arguments(parser, [declared["run"]])
    add_train_arguments(parser, exclude=("checkpoint_steps",), defaults=TRAIN_DEFAULTS)
    parser.set_defaults(handler=run_anomaly)


def run_anomaly(args):
    # Heartbeat signals, not pixels: the ECG scenario is binarized only when asked.
    unbinarized = {"binarize": False} if args.ecg5000 is not None and args.binarize is None else {}
    config = config_from_args(args, **unbinarized)
    options = AnomalyOptions(
        **settings.values_from_args(args, settings.settings_of(AnomalyOptions))
    )
    scenario = options.scenario(config.dataset, config.seed)
    if args.out is not None:
        check_new_run_dir(args.out)

    if options.run is None:
        model = None
        if is_array_file(scenario.source):
            config = dataclasses.replace(config, dataset=scenario.source)
        run_settings = {**config.to_dict(), "dataset": scenario.source}
        trained_on = (
            f"training {config.model} ({config.family.description}) on the normal training "
            "examples only"
        )
    else:
        model, run_settings = anomaly.load_scoring_run(options.run)
        trained_on = anomaly.check_scoring_run(options.run, run_settings, scenario)
    splits = scenario.splits(anomaly.resolved_binarize(run_settings))
    if model is None:
        anomaly.check_model_fits(config, splits)
    out = args.out
    if out is None:
        out = anomaly.default_output_dir(splits, run_settings.get("model", "model"))
    with claim_dir(out, check=check_new_run_dir):
        print(f"protocol: {splits.protocol}")
        print(trained_on)
        recorded = scenario.to_dict()
        if options.run is not None:
            recorded["run"] = options.run
        result = anomaly.detect_anomalies(
            config,
            splits,
            percentile=options.percentile,
            false_positive_rate=options.fpr,
            model=model,
            verbose=0 if args.quiet else "auto",
            settings=recorded,
        )
        print(anomaly.format_report(result, protocol=False))
        anomaly.write_anomaly_dir(result, out, run_settings)
    print(f"written: {', '.join(os.path.join(out, f) for f in anomaly.OUTPUT_FILES)}")
