"""`Scenario`: which examples are normal and how they are split, as one value to record and compare."""

import dataclasses
import os

from tfvae import checks
from tfvae.apps.anomaly.data import DEFAULT_CALIBRATION_FRACTION
from tfvae.apps.anomaly.data import DEFAULT_NORMAL_DIGIT
from tfvae.apps.anomaly.data import array_splits
from tfvae.apps.anomaly.data import check_calibration_fraction
from tfvae.apps.anomaly.data import class_splits
from tfvae.apps.anomaly.data import ecg5000_splits
from tfvae.errors import TfvaeError

SCENARIO_KINDS = ("class", "arrays", "ecg5000")


def same_source(a, b):
    """Whether two data names are the same data set or the same file."""
    if a == b:
        return True
    return os.path.exists(a) and os.path.exists(b) and os.path.samefile(a, b)


@dataclasses.dataclass(frozen=True)
class Scenario:
    """The data of an anomaly experiment: which examples are normal, and how they are split.

    A scenario builds its `DataSplits` (`splits`), is recorded in the
    `settings` of an anomaly output's `results.json` (`to_dict`), and tells
    whether a saved model was trained on its training examples
    (`trains_like`).

    Args:
        kind: str. `"class"`: one class of a labelled data set is normal;
            `"arrays"`: the user's normal examples and a labelled test file;
            `"ecg5000"`: the CSV of TensorFlow's autoencoder tutorial.
        source: str. The data set (`"class"`), the file of normal examples
            (`"arrays"`) or the CSV (`"ecg5000"`).
        normal_class: int or None. The normal class, for `"class"`;
            `None` there means `5`. Defaults to `None`.
        test_path: str or None. The labelled test file, for `"arrays"`.
            Defaults to `None`.
        calibration_fraction: float in (0, 1). Share of the normal training
            examples held out to set the threshold. Defaults to `0.2`.
        seed: int. Seeds the calibration split. Defaults to `0`.

    Example:

    >>> scenario = Scenario("class", "mnist5k", normal_class=5)
    >>> splits = scenario.splits()
    """

    kind: str
    source: str
    normal_class: int | None = None
    test_path: str | None = None
    calibration_fraction: float = DEFAULT_CALIBRATION_FRACTION
    seed: int = 0

    def __post_init__(self):
        checks.choice("scenario", self.kind, SCENARIO_KINDS)
        check_calibration_fraction(self.calibration_fraction)
        checks.non_negative_int("seed", self.seed)
        if self.kind == "class" and self.normal_class is None:
            object.__setattr__(self, "normal_class", DEFAULT_NORMAL_DIGIT)
        if self.kind == "arrays" and self.test_path is None:
            raise TfvaeError("an arrays scenario needs test_path, the labelled test file")

    def splits(self, binarize=False):
        """The `DataSplits` of this scenario (see `class_splits`, `array_splits`, `ecg5000_splits`)."""
        fraction, seed = self.calibration_fraction, self.seed
        if self.kind == "ecg5000":
            return ecg5000_splits(self.source, binarize, fraction, seed)
        if self.kind == "arrays":
            return array_splits(self.source, self.test_path, binarize, fraction, seed)
        return class_splits(self.source, self.normal_class, binarize, fraction, seed)

    @property
    def normal_data(self):
        """The normal examples in words: `"class 5 of mnist5k"`."""
        if self.kind == "class":
            return f"class {self.normal_class} of {self.source}"
        if self.kind == "arrays":
            return f"the normal examples of {self.source}"
        return f"the normal heartbeats of {self.source}"

    def trains_like(self, other):
        """Whether a model trained on `other`'s training examples was trained on this one's."""
        return self.same_normal_data(other) and (
            self.calibration_fraction == other.calibration_fraction and self.seed == other.seed
        )

    def same_normal_data(self, other):
        """Whether `other` takes its normal examples from the same data."""
        return (
            self.kind == other.kind
            and same_source(self.source, other.source)
            and self.normal_class == other.normal_class
        )

    def to_dict(self):
        """The scenario as recorded in `results.json`'s `settings`."""
        data = {
            "scenario": self.kind,
            "source": self.source,
            "calibration_fraction": self.calibration_fraction,
            "seed": self.seed,
        }
        if self.kind == "class":
            data["normal_digit"] = self.normal_class
        if self.kind == "arrays":
            data["test"] = self.test_path
        return data

    @classmethod
    def from_dict(cls, data, seed=0):
        """The scenario `to_dict` recorded; `seed` where the record has none (older outputs)."""
        return cls(
            kind=data["scenario"],
            source=data["source"],
            normal_class=data.get("normal_digit"),
            test_path=data.get("test", ""),
            calibration_fraction=data.get("calibration_fraction", DEFAULT_CALIBRATION_FRACTION),
            seed=data.get("seed", seed),
        )
