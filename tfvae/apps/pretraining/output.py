"""A pretraining output directory: `results.json`, `accuracy.csv` and the figure."""

import csv
import io
import os

from tfvae.apps.pretraining.config import METHOD_TITLES
from tfvae.evaluation import plots
from tfvae.io.atomic import staged_dir
from tfvae.io.atomic import timestamped_dir
from tfvae.io.atomic import write_json
from tfvae.io.atomic import write_text
from tfvae.training.runs import check_new_run_dir

RESULTS_FILE = "results.json"
CSV_FILE = "accuracy.csv"
FIGURE_FILE = "accuracy_vs_labels.png"
OUTPUT_FILES = (RESULTS_FILE, CSV_FILE, FIGURE_FILE)


def default_output_dir(config, root="saved_models"):
    """`<root>/pretrain-<run or data set>-<YYYYmmdd-HHMMSS>`."""
    if config.run_dir is not None:
        name = os.path.basename(os.path.normpath(config.run_dir))
    else:
        name = os.path.splitext(os.path.basename(config.dataset))[0]
    return timestamped_dir(root, "pretrain", name)


def write_csv(result, path):
    """One line per method, labels per class and label draw: `accuracy.csv`, written atomically."""
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(["method", "labels_per_class", "label_seed", "accuracy"])
    for row in result.rows:
        for seed, accuracy in zip(row.seeds, row.accuracies, strict=True):
            writer.writerow([row.method, row.labels_per_class, seed, f"{accuracy:.6f}"])
    write_text(path, text.getvalue())


def write_pretrain_dir(result, config, out):
    """Writes `results.json`, `accuracy.csv` and `accuracy_vs_labels.png` into the new directory `out`.

    The directory is built under a temporary name and renamed when
    complete, so `out` is either complete or absent.

    Args:
        result: `PretrainResult`.
        config: `PretrainConfig`, recorded in `results.json`.
        out: str. A new or empty directory.

    Returns:
        `out`.
    """
    check_new_run_dir(out)
    with staged_dir(out, prefix=".tmp-pretrain-") as staging:
        write_json(
            os.path.join(staging, RESULTS_FILE),
            {
                "protocol": result.data.protocol,
                "encoder": result.encoder_source,
                "latent_dim": result.latent_dim,
                "config": config.to_dict(),
                "methods": {m: METHOD_TITLES[m] for m in result.methods},
                "rows": [r.to_dict() for r in result.rows],
                "seconds": result.seconds,
            },
        )
        write_csv(result, os.path.join(staging, CSV_FILE))
        labels = result.labels_per_class
        series = {}
        for method in result.methods:
            cells = [result.row(method, n) for n in labels]
            series[METHOD_TITLES[method]] = ([c.mean for c in cells], [c.std for c in cells])
        figure = plots.accuracy_vs_labels_figure(
            labels,
            series,
            title=f"Few-label test accuracy, {result.data.name} ({config.repeats} label draws)",
        )
        plots.save_figure(figure, os.path.join(staging, FIGURE_FILE))
    return out
