"""An anomaly output directory: results, figures, the model and its config."""

import os

from tfvae.apps.anomaly.metrics import roc_points
from tfvae.evaluation import plots
from tfvae.io.atomic import staged_dir
from tfvae.io.atomic import timestamped_dir
from tfvae.io.atomic import write_json
from tfvae.io.model_files import save_model_file
from tfvae.training.runs import CONFIG_FILE
from tfvae.training.runs import MODEL_FILE
from tfvae.training.runs import check_new_run_dir

RESULTS_FILE = "results.json"
HISTOGRAM_FILE = "scores_histogram.png"
ROC_FILE = "roc.png"
OUTPUT_FILES = (RESULTS_FILE, HISTOGRAM_FILE, ROC_FILE, MODEL_FILE, CONFIG_FILE)


def default_output_dir(splits, model_name, root="saved_models"):
    """`<root>/anomaly-<data>-<model>-<YYYYmmdd-HHMMSS>`."""
    return timestamped_dir(root, "anomaly", os.path.splitext(splits.name)[0], model_name)


def write_anomaly_dir(result, out, config_dict):
    """Writes `results.json`, the two figures, `model.keras` and `config.json` into `out`.

    The directory is built under a temporary name and renamed when
    complete, so `out` is either complete or absent.

    Args:
        result: `AnomalyResult`.
        out: str. A new or empty directory.
        config_dict: dict. The model's settings, written as `config.json`.

    Returns:
        `out`.
    """
    check_new_run_dir(out)
    with staged_dir(out, prefix=".tmp-anomaly-") as staging:
        write_json(os.path.join(staging, RESULTS_FILE), result.to_dict())
        write_json(os.path.join(staging, CONFIG_FILE), config_dict)
        save_model_file(result.model, os.path.join(staging, MODEL_FILE))
        labels = result.splits.y_test
        plots.save_figure(
            plots.anomaly_scores_figure(
                result.test_scores[labels == 0],
                result.test_scores[labels == 1],
                result.threshold,
                title=f"Test scores, {result.splits.name}: {result.score.split(' (')[0]}",
            ),
            os.path.join(staging, HISTOGRAM_FILE),
        )
        fpr, tpr = roc_points(labels, result.test_scores)
        plots.save_figure(
            plots.roc_figure(
                fpr,
                tpr,
                result.metrics["roc_auc"],
                operating_point=(result.metrics["false_positive_rate"], result.metrics["recall"]),
                title=f"ROC of the anomaly score, {result.splits.name}",
            ),
            os.path.join(staging, ROC_FILE),
        )
    return out
