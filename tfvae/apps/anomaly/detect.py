"""The whole experiment: train on normal data, calibrate a threshold, measure detection."""

import dataclasses

import numpy as np

from tfvae.apps.anomaly.metrics import detection_metrics
from tfvae.apps.anomaly.scores import anomaly_scores
from tfvae.apps.anomaly.scores import score_description
from tfvae.apps.anomaly.thresholds import calibrate
from tfvae.apps.anomaly.thresholds import check_false_positive_rate
from tfvae.apps.anomaly.thresholds import check_percentile
from tfvae.apps.anomaly.thresholds import false_positive_rate_at
from tfvae.errors import TfvaeError
from tfvae.training.recipe import fit_model
from tfvae.training.trainer import check_data


def check_model_fits(config, splits):
    """Raises `TfvaeError` unless the model `config` describes can train on `splits`."""
    check_data(config, splits)


def train_on_normal(config, splits, verbose="auto"):
    """Trains the model `config` describes on `splits.x_train` (normal examples only).

    Trains as `tfvae train` does (`tfvae.training.recipe.fit_model`: the
    seeded model and data order); validation loss is reported on the
    calibration examples.

    Returns:
        `(model, history)`: the trained model and its per-epoch metrics.
    """
    check_model_fits(config, splits)
    return fit_model(config, splits, verbose=verbose)


@dataclasses.dataclass
class AnomalyResult:
    """What `detect_anomalies` measured, and the model that scored.

    `calibration_scores` and `test_scores` are the scores of the calibration
    (normal) and test examples; `metrics` is `detection_metrics` on the test
    set plus `calibration_false_positive_rate`.
    """

    splits: object
    model: object
    settings: dict
    threshold_rule: str
    threshold: float
    calibration_scores: np.ndarray
    test_scores: np.ndarray
    metrics: dict
    score: str
    history: dict | None = None

    def to_dict(self):
        return {
            "protocol": self.splits.protocol,
            "data": self.splits.name,
            "settings": self.settings,
            "score": self.score,
            "threshold_rule": self.threshold_rule,
            "threshold": self.threshold,
            "metrics": self.metrics,
            "history": self.history,
        }


def detect_anomalies(
    config,
    splits,
    percentile=None,
    false_positive_rate=None,
    model=None,
    verbose="auto",
    settings=None,
):
    """Trains on normal data, calibrates a threshold, and measures detection on the test set.

    Args:
        config: `TrainConfig` of the model to train (its `dataset` is not
            read: the data is `splits`).
        splits: `DataSplits` from `class_splits`, `array_splits` or
            `ecg5000_splits` (or `Scenario.splits`).
        percentile: float in (0, 100) or None. Threshold at this percentile
            of the calibration scores; the default rule (95) when neither
            this nor `false_positive_rate` is given.
        false_positive_rate: float in (0, 1) or None. Threshold flagging at
            most this share of the calibration examples.
        model: a trained model, or None to train one with `config`.
            Defaults to `None`.
        verbose: Keras `fit` verbosity. Defaults to `"auto"`.
        settings: dict or None. Recorded in the results as they are.

    Returns:
        An `AnomalyResult`.

    Example:

    >>> splits = class_splits("mnist5k", normal_class=5)
    >>> result = detect_anomalies(TrainConfig(model="ae", epochs=10), splits)
    >>> print(format_report(result))
    """
    if percentile is not None:
        check_percentile(percentile)
    if false_positive_rate is not None:
        check_false_positive_rate(false_positive_rate)
    history = None
    if model is None:
        model, history = train_on_normal(config, splits, verbose=verbose)
    else:
        expected = tuple(model.decoder.data_shape)
        if expected != splits.data_shape:
            raise TfvaeError(
                f"the model was trained on examples of shape {expected}; this data's are "
                f"{splits.data_shape}"
            )
    calibration_scores = anomaly_scores(model, splits.x_val)
    test_scores = anomaly_scores(model, splits.x_test)
    threshold, rule = calibrate(calibration_scores, percentile, false_positive_rate)
    metrics = detection_metrics(splits.y_test, test_scores, threshold)
    metrics["calibration_false_positive_rate"] = false_positive_rate_at(
        calibration_scores, threshold
    )
    return AnomalyResult(
        splits=splits,
        model=model,
        settings=dict(settings or {}),
        threshold_rule=rule,
        threshold=threshold,
        calibration_scores=calibration_scores,
        test_scores=test_scores,
        metrics=metrics,
        score=score_description(model),
        history=history,
    )


def format_report(result, protocol=True):
    """The protocol (unless `protocol=False`), the threshold and the metrics table as text."""
    m = result.metrics
    rows = [
        ("ROC-AUC", m["roc_auc"]),
        ("PR-AUC (average precision)", m["average_precision"]),
        ("precision", m["precision"]),
        ("recall", m["recall"]),
        ("F1", m["f1"]),
        ("false-positive rate (test normals)", m["false_positive_rate"]),
        ("false-positive rate (calibration)", m["calibration_false_positive_rate"]),
    ]
    lines = [
        *([f"protocol: {result.splits.protocol}"] if protocol else []),
        f"score: {result.score}",
        f"threshold: {result.threshold:.6g} ({result.threshold_rule})",
        "",
        "test-set detection, positive class = anomaly",
        *(f"  {name:<36} {value:.4f}" for name, value in rows),
        f"  {'confusion (TP FP TN FN)':<36} {m['true_positives']} {m['false_positives']} "
        f"{m['true_negatives']} {m['false_negatives']}",
        f"  {'share of anomalies in the test set':<36} {m['anomaly_rate']:.4f}",
    ]
    return "\n".join(lines)
