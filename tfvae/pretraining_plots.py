"""The figure of the pretraining comparison: test accuracy against labels per class.

Saved with `tfvae.plots.save_figure`.
"""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def accuracy_vs_labels_figure(
    labels_per_class, series, title="Test accuracy against labeled examples per class"
):
    """Lines of mean test accuracy with standard-deviation error bars, one per method.

    Args:
        labels_per_class: sequence of int. The x values.
        series: dict. Method name -> `(means, stds)`, one value per x.
        title: str. Defaults to a description of the axes.
    """
    figure, axis = plt.subplots(figsize=(6.5, 4.2))
    for name, (means, stds) in series.items():
        axis.errorbar(labels_per_class, means, yerr=stds, marker="o", capsize=3, label=name)
    axis.set_xscale("log")
    axis.set_xticks(labels_per_class, [str(n) for n in labels_per_class])
    axis.minorticks_off()
    axis.set_xlabel("labeled training examples per class")
    axis.set_ylabel("test accuracy")
    axis.set_title(title, fontsize=10)
    axis.grid(True, alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    return figure
