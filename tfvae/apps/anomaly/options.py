"""`AnomalyOptions`: the settings of `tfvae anomaly` beyond the model's, each declared once."""

import dataclasses

from tfvae.apps.anomaly.data import DEFAULT_CALIBRATION_FRACTION
from tfvae.apps.anomaly.data import DEFAULT_NORMAL_DIGIT
from tfvae.apps.anomaly.scenario import Scenario
from tfvae.apps.anomaly.thresholds import DEFAULT_PERCENTILE
from tfvae.errors import TfvaeError
from tfvae.settings import check_fields
from tfvae.settings import setting

DATA_OPTIONS = ("normal_digit", "normal", "test", "ecg5000", "calibration_fraction")
THRESHOLD_OPTIONS = ("percentile", "fpr")


@dataclasses.dataclass
class AnomalyOptions:
    """Which data is normal, how the threshold is set, and which model scores.

    The model's own settings are a `TrainConfig`; these are the rest. Each
    field is a `tfvae.settings.setting`, so `tfvae anomaly`'s flags, help and
    checks come from here.

    Example:

    >>> options = AnomalyOptions(normal_digit=3, fpr=0.01)
    >>> scenario = options.scenario("mnist5k", seed=0)
    """

    normal_digit: int | None = setting(
        None,
        "With --dataset: the normal class; every other class is an anomaly. "
        f"Default: {DEFAULT_NORMAL_DIGIT}.",
        kind="int",
        minimum=0,
        optional=True,
    )
    normal: str | None = setting(
        None, ".npz (x) or .npy of normal examples only.", kind="str", optional=True, metavar="PATH"
    )
    test: str | None = setting(
        None,
        ".npz with x and y (1 = anomaly, 0 = normal).",
        kind="str",
        optional=True,
        metavar="PATH",
    )
    ecg5000: str | None = setting(
        None,
        "The tutorial's ecg.csv (140 samples and a label per row, 1 = normal).",
        kind="str",
        optional=True,
        metavar="PATH",
    )
    calibration_fraction: float = setting(
        DEFAULT_CALIBRATION_FRACTION,
        "Share of the normal training rows held out to set the threshold.",
        minimum=0,
        maximum=1,
        exclusive_minimum=True,
        exclusive_maximum=True,
    )
    percentile: float | None = setting(
        None,
        "Threshold at this percentile of the held-out normal scores. "
        f"Default: {DEFAULT_PERCENTILE:g}.",
        kind="float",
        optional=True,
        minimum=0,
        maximum=100,
        exclusive_minimum=True,
        exclusive_maximum=True,
    )
    fpr: float | None = setting(
        None,
        "Threshold flagging at most this share of the held-out normal examples.",
        kind="float",
        optional=True,
        minimum=0,
        maximum=1,
        exclusive_minimum=True,
        exclusive_maximum=True,
    )
    run: str | None = setting(
        None,
        "Score with the model of this tfvae anomaly output instead of training one.",
        kind="str",
        optional=True,
        metavar="RUN_DIR",
    )

    def __post_init__(self):
        check_fields(self)
        if self.percentile is not None and self.fpr is not None:
            raise TfvaeError("give a percentile or a false-positive rate, not both")

    def scenario(self, dataset, seed):
        """The `Scenario` these options name (one class of `dataset` unless files are given)."""
        fraction = self.calibration_fraction
        if self.ecg5000 is not None:
            if self.normal is not None or self.test is not None or self.normal_digit is not None:
                raise TfvaeError("--ecg5000 takes no --normal, --test or --normal-digit")
            return Scenario("ecg5000", self.ecg5000, calibration_fraction=fraction, seed=seed)
        if self.normal is not None or self.test is not None:
            if self.normal is None or self.test is None:
                raise TfvaeError(
                    "--normal and --test go together: normal examples and labelled tests"
                )
            if self.normal_digit is not None:
                raise TfvaeError("--normal-digit applies to --dataset, not to --normal/--test")
            return Scenario(
                "arrays", self.normal, test_path=self.test, calibration_fraction=fraction, seed=seed
            )
        return Scenario(
            "class",
            dataset,
            normal_class=self.normal_digit,
            calibration_fraction=fraction,
            seed=seed,
        )
