"""Anomaly detection with a model trained on normal data only.

The recipe of TensorFlow's autoencoder tutorial (ECG5000): train on normal
examples, score every example by how badly the model explains it, and call it
an anomaly when its score is above a threshold calibrated on held-out normal
examples. The positive class is the anomaly throughout.

The modules, each using only those listed before it:

- `scores`: per-example scores, the model's own `score` (the autoencoder's
  reconstruction error, the VAE's negative ELBO at the posterior mean).
- `thresholds`: a threshold at a percentile of held-out normal scores, or
  at a target false-positive rate.
- `metrics`: precision, recall, F1, ROC-AUC, PR-AUC, with anomaly = positive.
- `data`: the data scenarios (`class_splits`, `array_splits`,
  `ecg5000_splits`); `scenario`: a `Scenario` that names one, to record
  and compare.
- `detect`: the whole experiment, `detect_anomalies`, and its report.
- `output`: the output directory; `scoring_run`: scoring with a saved
  model, which must have been trained on the scenario's normal data.

Example:

>>> from tfvae.apps import anomaly
>>> splits = anomaly.class_splits("mnist5k", normal_class=5)
>>> result = anomaly.detect_anomalies(TrainConfig(model="ae", epochs=10), splits)
>>> print(anomaly.format_report(result))
"""

from tfvae.apps.anomaly.data import DEFAULT_CALIBRATION_FRACTION
from tfvae.apps.anomaly.data import DEFAULT_NORMAL_DIGIT
from tfvae.apps.anomaly.data import ECG5000_FEATURES
from tfvae.apps.anomaly.data import ECG5000_URL
from tfvae.apps.anomaly.data import array_splits
from tfvae.apps.anomaly.data import class_splits
from tfvae.apps.anomaly.data import ecg5000_splits
from tfvae.apps.anomaly.data import load_ecg5000_csv
from tfvae.apps.anomaly.data import min_max_scale
from tfvae.apps.anomaly.detect import AnomalyResult
from tfvae.apps.anomaly.detect import check_model_fits
from tfvae.apps.anomaly.detect import detect_anomalies
from tfvae.apps.anomaly.detect import format_report
from tfvae.apps.anomaly.detect import train_on_normal
from tfvae.apps.anomaly.metrics import detection_metrics
from tfvae.apps.anomaly.metrics import roc_points
from tfvae.apps.anomaly.output import HISTOGRAM_FILE
from tfvae.apps.anomaly.output import OUTPUT_FILES
from tfvae.apps.anomaly.output import RESULTS_FILE
from tfvae.apps.anomaly.output import ROC_FILE
from tfvae.apps.anomaly.output import default_output_dir
from tfvae.apps.anomaly.output import write_anomaly_dir
from tfvae.apps.anomaly.scenario import Scenario
from tfvae.apps.anomaly.scores import SCORE_BATCH_SIZE
from tfvae.apps.anomaly.scores import anomaly_scores
from tfvae.apps.anomaly.scores import score_description
from tfvae.apps.anomaly.scoring_run import check_scoring_run
from tfvae.apps.anomaly.scoring_run import load_scoring_run
from tfvae.apps.anomaly.scoring_run import resolved_binarize
from tfvae.apps.anomaly.thresholds import DEFAULT_PERCENTILE
from tfvae.apps.anomaly.thresholds import calibrate
from tfvae.apps.anomaly.thresholds import false_positive_rate_at
from tfvae.apps.anomaly.thresholds import threshold_at_percentile
from tfvae.apps.anomaly.thresholds import threshold_for_false_positive_rate

__all__ = [
    "AnomalyResult",
    "DEFAULT_CALIBRATION_FRACTION",
    "DEFAULT_NORMAL_DIGIT",
    "DEFAULT_PERCENTILE",
    "ECG5000_FEATURES",
    "ECG5000_URL",
    "HISTOGRAM_FILE",
    "OUTPUT_FILES",
    "RESULTS_FILE",
    "ROC_FILE",
    "SCORE_BATCH_SIZE",
    "Scenario",
    "anomaly_scores",
    "array_splits",
    "calibrate",
    "check_model_fits",
    "check_scoring_run",
    "class_splits",
    "default_output_dir",
    "detect_anomalies",
    "detection_metrics",
    "ecg5000_splits",
    "false_positive_rate_at",
    "format_report",
    "load_ecg5000_csv",
    "load_scoring_run",
    "min_max_scale",
    "resolved_binarize",
    "roc_points",
    "score_description",
    "threshold_at_percentile",
    "threshold_for_false_positive_rate",
    "train_on_normal",
    "write_anomaly_dir",
]
