"""`tfvae anomaly`: train on normal data, calibrate a threshold, detect anomalies."""

import dataclasses
import os

from tfvae.apps import anomaly
from tfvae.apps.anomaly import DEFAULT_CALIBRATION_FRACTION
from tfvae.apps.anomaly import DEFAULT_NORMAL_DIGIT
from tfvae.apps.anomaly import DEFAULT_PERCENTILE
from tfvae.apps.anomaly import Scenario
from tfvae.cli.train import config_from_args
from tfvae.data.datasets import is_array_file
from tfvae.errors import TfvaeError
from tfvae.training.runs import check_new_run_dir

DEFAULT_EPOCHS = 30


def add_anomaly_parser(commands):
    from tfvae.cli.train import add_train_arguments

    parser = commands.add_parser(
        "anomaly",
        help="anomaly detection: train on normal data only, flag examples the model explains badly",
        description="Trains an AE (or VAE) on normal examples, sets the threshold on held-out "
        "normal examples and reports precision, recall, F1, ROC-AUC and PR-AUC on the test set "
        "(positive class = anomaly). Data: one digit of --dataset is normal (default), or "
        "--normal/--test arrays, or the ECG5000 CSV of TensorFlow's autoencoder tutorial.",
    )
    data = parser.add_argument_group(
        "data (one digit of --dataset, or --normal/--test, or --ecg5000)"
    )
    data.add_argument(
        "--normal-digit",
        type=int,
        default=None,
        help=f"With --dataset: the normal class; every other class is an anomaly. "
        f"Default: {DEFAULT_NORMAL_DIGIT}",
    )
    data.add_argument(
        "--normal", metavar="PATH", default=None, help=".npz (x) or .npy of normal examples only"
    )
    data.add_argument(
        "--test", metavar="PATH", default=None, help=".npz with x and y (1 = anomaly, 0 = normal)"
    )
    data.add_argument(
        "--ecg5000",
        metavar="PATH",
        default=None,
        help="the tutorial's ecg.csv (140 samples and a label per row, 1 = normal)",
    )
    data.add_argument(
        "--calibration-fraction",
        type=float,
        default=DEFAULT_CALIBRATION_FRACTION,
        help="Share of the normal training rows held out to set the threshold. Default: %(default)s",
    )
    threshold = parser.add_mutually_exclusive_group()
    threshold.add_argument(
        "--percentile",
        type=float,
        default=None,
        help=f"Threshold at this percentile of the held-out normal scores. Default: "
        f"{DEFAULT_PERCENTILE:g}",
    )
    threshold.add_argument(
        "--fpr",
        type=float,
        default=None,
        help="Threshold flagging at most this share of the held-out normal examples",
    )
    parser.add_argument(
        "--run",
        metavar="RUN_DIR",
        default=None,
        help="Score with this run's model instead of training one (training options are ignored)",
    )
    add_train_arguments(parser)
    parser.set_defaults(handler=run_anomaly, model="ae", epochs=DEFAULT_EPOCHS)


def _scenario(args, seed):
    """The `Scenario` the data arguments name; raises on conflicting ones."""
    fraction = args.calibration_fraction
    if args.ecg5000 is not None:
        if args.normal is not None or args.test is not None or args.normal_digit is not None:
            raise TfvaeError("--ecg5000 takes no --normal, --test or --normal-digit")
        return Scenario("ecg5000", args.ecg5000, calibration_fraction=fraction, seed=seed)
    if args.normal is not None or args.test is not None:
        if args.normal is None or args.test is None:
            raise TfvaeError("--normal and --test go together: normal examples and labelled tests")
        if args.normal_digit is not None:
            raise TfvaeError("--normal-digit applies to --dataset, not to --normal/--test")
        return Scenario(
            "arrays", args.normal, test_path=args.test, calibration_fraction=fraction, seed=seed
        )
    return Scenario(
        "class",
        args.dataset,
        normal_class=args.normal_digit,
        calibration_fraction=fraction,
        seed=seed,
    )


def run_anomaly(args):
    # Heartbeat signals, not pixels: the ECG scenario is binarized only when asked.
    unbinarized = {"binarize": False} if args.ecg5000 is not None and args.binarize is None else {}
    config = config_from_args(args, **unbinarized)
    scenario = _scenario(args, config.seed)
    if args.percentile is not None and not 0 < args.percentile < 100:
        raise TfvaeError(f"--percentile must be in (0, 100). Received: {args.percentile:g}")
    if args.fpr is not None and not 0 < args.fpr < 1:
        raise TfvaeError(f"--fpr must be in (0, 1). Received: {args.fpr:g}")
    if args.out:
        check_new_run_dir(args.out)

    if args.run is None:
        model = None
        if is_array_file(scenario.source):
            config = dataclasses.replace(config, dataset=scenario.source)
        settings = {**config.to_dict(), "dataset": scenario.source}
        trained_on = (
            f"training {config.model} ({config.family.description}) on the normal training "
            "examples only"
        )
    else:
        model, settings = anomaly.load_scoring_run(args.run)
        trained_on = anomaly.check_scoring_run(args.run, settings, scenario)
    splits = scenario.splits(anomaly.resolved_binarize(settings))
    if model is None:
        anomaly.check_model_fits(config, splits)
    out = args.out or anomaly.default_output_dir(splits, settings.get("model", "model"))
    check_new_run_dir(out)

    print(f"protocol: {splits.protocol}")
    print(trained_on)
    recorded = scenario.to_dict()
    if args.run is not None:
        recorded["run"] = args.run
    result = anomaly.detect_anomalies(
        config,
        splits,
        percentile=args.percentile,
        false_positive_rate=args.fpr,
        model=model,
        verbose=0 if args.quiet else "auto",
        settings=recorded,
    )
    print(anomaly.format_report(result, protocol=False))
    anomaly.write_anomaly_dir(result, out, settings)
    print(f"written: {', '.join(os.path.join(out, f) for f in anomaly.OUTPUT_FILES)}")
