"""Detection quality with the anomaly as the positive class.

Precision is the share of flagged examples that are anomalies, recall the
share of anomalies flagged, and the false-positive rate the share of normal
examples flagged.
"""

import numpy as np
from sklearn import metrics

from tfvae.apps.anomaly.scores import check_scores
from tfvae.errors import TfvaeError


def _check_labels(labels, n):
    labels = np.asarray(labels)
    if labels.shape != (n,):
        raise TfvaeError(
            f"labels must be one per score. Received: shape={labels.shape} for {n} scores"
        )
    if not np.isin(labels, (0, 1)).all():
        raise TfvaeError(
            f"labels must be 0 (normal) or 1 (anomaly). Received: values {sorted(set(labels.tolist()))[:5]}"
        )
    if labels.min() == labels.max():
        raise TfvaeError("the test data needs both normal (0) and anomalous (1) examples")
    return labels.astype(np.int64)


def detection_metrics(labels, scores, threshold):
    """Detection quality with the anomaly as the positive class.

    An example is flagged when its score is above `threshold`.

    Args:
        labels: 1-D array of 0 (normal) and 1 (anomaly).
        scores: 1-D array. Anomaly scores; larger is more anomalous.
        threshold: float.

    Returns:
        A dict: `threshold`; the confusion counts `true_positives`,
        `false_positives`, `true_negatives`, `false_negatives`; `precision`,
        `recall`, `f1` and `false_positive_rate` at the threshold (precision
        is 0 when nothing is flagged); the threshold-free `roc_auc` and
        `average_precision` (area under the precision-recall curve, as
        scikit-learn computes it); `n_normal`, `n_anomalous` and
        `anomaly_rate`, the precision of flagging everything.
    """
    scores = check_scores(scores)
    labels = _check_labels(labels, len(scores))
    flagged = (scores > threshold).astype(np.int64)
    tn, fp, fn, tp = (
        int(v) for v in metrics.confusion_matrix(labels, flagged, labels=[0, 1]).ravel()
    )
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "threshold": float(threshold),
        "true_positives": tp,
        "false_positives": fp,
        "true_negatives": tn,
        "false_negatives": fn,
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "false_positive_rate": fp / (fp + tn),
        "roc_auc": float(metrics.roc_auc_score(labels, scores)),
        "average_precision": float(metrics.average_precision_score(labels, scores)),
        "n_normal": int(np.sum(labels == 0)),
        "n_anomalous": int(np.sum(labels == 1)),
        "anomaly_rate": float(np.mean(labels)),
    }


def roc_points(labels, scores):
    """`(false_positive_rates, true_positive_rates)` of the ROC curve (anomaly = positive)."""
    scores = check_scores(scores)
    labels = _check_labels(labels, len(scores))
    fpr, tpr, _ = metrics.roc_curve(labels, scores)
    return fpr, tpr
