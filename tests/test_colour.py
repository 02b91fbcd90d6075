"""Colour images: real RGB patches through the conv VAE, the 8-bit likelihoods and the figures.

The pixels are patches of scikit-learn's two sample photos (see
`colour_patches.py`), stored as `k / 255` in [0, 1].
"""

import json
import math
import os
import re

import keras
import matplotlib.image
import numpy as np
import pytest
from colour_patches import sample_image_patches
from colour_patches import write_patches

from tfvae import TrainConfig
from tfvae.cli import main
from tfvae.data.datasets import load_dataset
from tfvae.evaluation.baselines import independent_features_nll
from tfvae.evaluation.figures import write_figures
from tfvae.models import build_model

FIGURES = (
    "reconstructions.png",
    "samples.png",
    "manifold.png",
    "interpolation.png",
    "traversal.png",
    "latent_space.png",
    "training_curves.png",
)
# Figures drawn from the model's decoded pictures: they must show colour.
PICTURE_FIGURES = ("reconstructions.png", "samples.png", "manifold.png", "traversal.png")


@pytest.fixture(scope="module")
def patches32(tmp_path_factory):
    path = tmp_path_factory.mktemp("colour") / "patches32.npz"
    write_patches(path, size=32, stride=8, limit=1500)
    return str(path)


@pytest.fixture(scope="module")
def patches64(tmp_path_factory):
    path = tmp_path_factory.mktemp("colour") / "patches64.npz"
    write_patches(path, size=64, stride=16)
    return str(path)


def test_patches_are_real_8_bit_colour_held_out_by_position():
    x_train, x_test = sample_image_patches(size=32, stride=8)
    assert x_train.shape[1:] == x_test.shape[1:] == (32, 32, 3)
    assert x_train.dtype == np.uint8 and len(x_train) > 5000 and len(x_test) > 100
    # Colour, not grey: the channels differ.
    assert np.mean(np.abs(x_train[..., 0].astype(int) - x_train[..., 2])) > 10
    # No test patch occurs among the training patches.
    train_rows = {patch.tobytes() for patch in x_train}
    assert not any(patch.tobytes() in train_rows for patch in x_test)


def _is_colour_png(path):
    image = matplotlib.image.imread(path)[..., :3]
    return float(np.abs(image[..., 0] - image[..., 2]).max()) > 0.05


def _metrics(run):
    with open(os.path.join(run, "metrics.json")) as f:
        return json.load(f)


def test_colour_run_reports_bits_per_dim_and_draws_colour_figures(patches32, tmp_path, capsys):
    run = tmp_path / "run"
    argv = ["train", "--dataset", patches32, "--arch", "conv", "--likelihood"]
    argv += ["discretized_logistic", "--latent-dim", "8", "--hidden-units", "64"]
    argv += ["--epochs", "4", "--batch-size", "64", "--no-tensorboard", "--out", str(run)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    model = keras.models.load_model(run / "model.keras", safe_mode=True)
    # The parameter count is printed before the first epoch, and is the model's.
    count = re.search(r"model: ([\d,]+) parameters", out)
    assert count and out.index(count.group(0)) < out.index("Epoch 1/4")
    assert int(count.group(1).replace(",", "")) == model.count_params()
    assert model.encoder.stage_filters == (32, 64, 128)
    metrics = _metrics(run)
    assert metrics["dimensions"] == 32 * 32 * 3
    for name in ("neg_elbo", "baseline_nll"):
        assert metrics[f"{name}_bits_per_dim"] == pytest.approx(
            metrics[name] / (3072 * math.log(2))
        )
    # Better than a uniform guess over the 256 levels (8 bits), and the test
    # baseline is the histogram of the training levels, checked here by hand.
    assert metrics["neg_elbo_bits_per_dim"] < 8.0
    data = load_dataset(patches32)
    assert metrics["baseline_nll"] == pytest.approx(
        independent_features_nll(data.x_train, data.x_test, "discretized_logistic")
    )
    assert f"({metrics['neg_elbo_bits_per_dim']:.4f} bits/dim)" in out
    for name in FIGURES:
        assert os.path.getsize(run / name) > 1000, name
    for name in PICTURE_FIGURES:
        assert _is_colour_png(run / name), name
    assert main(["evaluate", str(run), "--nll-samples", "20"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"-log p\(x\).*nats/example \(\d\.\d{4} bits/dim\)", out)


def test_every_figure_draws_64x64_colour(patches64, tmp_path):
    config = TrainConfig(arch="conv", dataset=patches64, latent_dim=4, hidden_units=(16,))
    data = load_dataset(patches64)
    assert data.data_shape == (64, 64, 3)
    model = build_model(config, data.data_shape)
    model.initialize_output_bias(data.x_train)
    write_figures(model, config, data, str(tmp_path))
    for name in FIGURES[:-1]:
        assert os.path.getsize(tmp_path / name) > 1000, name
    for name in PICTURE_FIGURES:
        assert _is_colour_png(tmp_path / name), name


def test_histogram_baseline_matches_direct_counting():
    rng = np.random.default_rng(0)
    x_train = rng.integers(0, 4, size=(50, 3)) / 255.0
    x_test = np.array([[0, 1, 200], [3, 3, 3]]) / 255.0
    nll = independent_features_nll(x_train, x_test, "discretized_gaussian")
    levels = np.rint(x_train * 255).astype(int)
    expected = 0.0
    for row in np.rint(x_test * 255).astype(int):
        for j, level in enumerate(row):
            expected -= np.log((np.sum(levels[:, j] == level) + 1) / (50 + 256))
    assert nll == pytest.approx(expected / 2)


@pytest.mark.slow
@pytest.mark.parametrize(
    "fixture,likelihood",
    [("patches64", "discretized_gaussian"), ("patches32", "discretized_logistic")],
)
def test_longer_colour_run_beats_the_histogram_baseline(fixture, likelihood, request, tmp_path):
    path = request.getfixturevalue(fixture)
    run = tmp_path / "run"
    argv = ["train", "--dataset", path, "--arch", "conv", "--likelihood", likelihood]
    argv += ["--latent-dim", "32", "--epochs", "15", "--no-tensorboard", "--out", str(run)]
    argv += ["--quiet"]
    assert main(argv) == 0
    metrics = _metrics(run)
    assert metrics["neg_elbo_bits_per_dim"] < metrics["baseline_nll_bits_per_dim"] - 0.5
    for name in PICTURE_FIGURES:
        assert _is_colour_png(run / name), name
