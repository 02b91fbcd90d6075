"""The comparison: every method at every number of labels, averaged over label draws."""

import dataclasses
import time

import numpy as np

from tfvae.apps.pretraining.classifier import evaluate_method
from tfvae.apps.pretraining.config import METHOD_TITLES
from tfvae.apps.pretraining.config import METHODS
from tfvae.apps.pretraining.features import draw_labeled_subset
from tfvae.apps.pretraining.features import load_pretrained
from tfvae.apps.pretraining.features import unsupervised_features
from tfvae.errors import TfvaeError


@dataclasses.dataclass
class PretrainRow:
    """Test accuracies of one method at one number of labels per class."""

    method: str
    labels_per_class: int
    accuracies: list
    seeds: list

    @property
    def mean(self):
        return float(np.mean(self.accuracies))

    @property
    def std(self):
        return float(np.std(self.accuracies))

    def to_dict(self):
        return {**dataclasses.asdict(self), "mean": self.mean, "std": self.std}


@dataclasses.dataclass
class PretrainResult:
    """What `compare_pretraining` returns: the rows, the data and the features' provenance."""

    rows: list
    data: object
    encoder_source: str
    latent_dim: int
    seconds: float

    def row(self, method, labels_per_class):
        for r in self.rows:
            if r.method == method and r.labels_per_class == labels_per_class:
                return r
        raise KeyError((method, labels_per_class))

    @property
    def methods(self):
        """The methods compared, in order."""
        return list(dict.fromkeys(r.method for r in self.rows))

    @property
    def labels_per_class(self):
        """The numbers of labels per class, ascending."""
        return sorted({r.labels_per_class for r in self.rows})


def compare_pretraining(config, methods=METHODS, progress=print, verbose=0):
    """Few-label test accuracy of each method, averaged over `config.repeats` label draws.

    Args:
        config: `PretrainConfig`.
        methods: sequence of str. Some of `METHODS`. Defaults to all.
        progress: callable taking a line of text, or None. Called once the
            unsupervised models are ready and after each method and
            number of labels. Defaults to `print`.
        verbose: Keras `fit` verbosity of the unsupervised training.
            Defaults to `0`.

    Returns:
        A `PretrainResult`.

    Example:

    >>> result = compare_pretraining(PretrainConfig(dataset="digits", labels_per_class=(5,)))
    >>> print(format_table(result))
    """
    config.validate()
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise TfvaeError(f"unknown methods {unknown}; expected some of {list(METHODS)}")
    start = time.perf_counter()
    encoder, data, source = load_pretrained(config, verbose)
    features = unsupervised_features(encoder, data, config, verbose)
    if progress:
        progress(
            f"features ready: {source}; PCA {encoder.latent_dim}; RBM {config.rbm_hidden} "
            f"hidden ({time.perf_counter() - start:.0f} s)"
        )
    seeds = [config.seed + r for r in range(config.repeats)]
    rows = []
    for n in config.labels_per_class:
        draws = [draw_labeled_subset(data.y_train, n, s) for s in seeds]
        for method in methods:
            began = time.perf_counter()
            accuracies = [
                evaluate_method(method, encoder, features, data, config, labeled, s)
                for labeled, s in zip(draws, seeds, strict=True)
            ]
            rows.append(PretrainRow(method, n, accuracies, seeds))
            if progress:
                progress(
                    f"{n:4d} labels/class  {method:<10}  accuracy {rows[-1].mean:.4f} "
                    f"± {rows[-1].std:.4f}  ({time.perf_counter() - began:.0f} s)"
                )
    return PretrainResult(
        rows=rows,
        data=data,
        encoder_source=source,
        latent_dim=int(encoder.latent_dim),
        seconds=time.perf_counter() - start,
    )


def format_table(result):
    """The accuracy table: a row per method, a column per number of labels per class."""
    labels = result.labels_per_class
    methods = result.methods
    width = max(len(METHOD_TITLES[m]) for m in methods)
    header = f"{'test accuracy (mean ± std)':<{width}}" + "".join(
        f"  {f'{n} labels/class':>17}" for n in labels
    )
    lines = [header]
    for method in methods:
        cells = [result.row(method, n) for n in labels]
        lines.append(
            f"{METHOD_TITLES[method]:<{width}}"
            + "".join(f"  {f'{c.mean:.4f} ± {c.std:.4f}':>17}" for c in cells)
        )
    return "\n".join(lines)
