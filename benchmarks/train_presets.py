"""Trains the presets that ship in `tfvae/presets/assets/`, and measures them as shipped.

Each preset is `tfvae train` of a recipe below: `TrainConfig`'s defaults
(mnist5k, 50 epochs, batch 128, AdamW 3e-3 with a cosine schedule, seed 0)
unless the recipe says otherwise. Every recipe fixes `precision="float32"`
so that a preset computes the same on every machine (`auto` would train in
bfloat16 on CPUs that have it). Then, for each:

1. the trained model is saved as a preset with float16 weights;
2. that preset is loaded back, which is the model that ships, and
   evaluated on the test split of its training config by
   `tfvae.presets.evaluate_preset` (`evaluate_model`, and the importance-
   sampled `-log p(x)` with K = 1000 for the VAEs): the metrics are the
   shipped weights', not the float32 ones';
3. it is written into `tfvae/presets/assets/<name>/` with those metrics
   and its training history (`assets/history.json`), and read back to
   check that its weights are the ones measured.

About 1.5 minutes on 2 CPU cores, most of it the conv VAE and its K = 1000
bound.

Usage: python benchmarks/train_presets.py [--only NAME ...] [--out DIR] [--epochs N]
"""

import argparse
import json
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402
from common import print_json_line  # noqa: E402

import tfvae  # noqa: E402
from tfvae.evaluation.metrics import DEFAULT_NLL_SAMPLES  # noqa: E402
from tfvae.presets import catalog  # noqa: E402
from tfvae.presets import evaluate_preset  # noqa: E402
from tfvae.presets import from_preset  # noqa: E402
from tfvae.presets import save_to_preset  # noqa: E402
from tfvae.training.runs import HISTORY_FILE  # noqa: E402

ASSETS = os.path.join(os.path.dirname(HERE), "tfvae", "presets", "assets")
WEIGHTS_DTYPE = "float16"
PORTABLE = {"precision": "float32"}

# name -> (description, the settings that differ from TrainConfig's defaults)
RECIPES = {
    "vae_dense_mnist5k": (
        "VAE, dense 784-512-16, Bernoulli, binarized mnist5k",
        {"model": "vae", "latent_dim": 16, **PORTABLE},
    ),
    "vae_conv_mnist5k": (
        "VAE, conv (8, 16 filters) + 256 dense, latent 16, Bernoulli, binarized mnist5k",
        {"model": "vae", "arch": "conv", "filters": (8, 16), "hidden_units": (256,), **PORTABLE},
    ),
    "ae_dense_mnist5k": (
        "autoencoder, dense 784-512-16, Gaussian (MSE), grey-level mnist5k",
        {"model": "ae", "latent_dim": 16, **PORTABLE},
    ),
}


def train_preset(name, out_root, epochs=None, verbose=0):
    """Trains the recipe `name` and writes its preset into `out_root/<name>`; returns its record."""
    description, settings = RECIPES[name]
    if epochs is not None:
        settings = {**settings, "epochs": epochs}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"tfvae-{name}-") as work:
        config = tfvae.TrainConfig(**settings, out=os.path.join(work, "run"))
        result = tfvae.train(config, verbose=verbose)
        trained_s = time.perf_counter() - started
        with open(os.path.join(result.run_dir, HISTORY_FILE), encoding="utf-8") as f:
            history = f.read()
        rounded = os.path.join(work, name)
        save_to_preset(result.model, rounded, train_config=config, weights_dtype=WEIGHTS_DTYPE)
        shipped, metrics = evaluate_preset(rounded, nll_samples=DEFAULT_NLL_SAMPLES)
        final = os.path.join(out_root, name)
        save_to_preset(
            shipped,
            final,
            train_config=config,
            metrics=metrics,
            description=description,
            assets={HISTORY_FILE: history},
            weights_dtype=WEIGHTS_DTYPE,
            overwrite=True,
        )
    reloaded = from_preset(final)
    for measured, written in zip(shipped.weights, reloaded.weights, strict=True):
        if not np.array_equal(np.asarray(measured), np.asarray(written)):
            raise SystemExit(f"{name}: the written weights are not the measured ones")
    with open(os.path.join(final, "metadata.json"), encoding="utf-8") as f:
        metadata = json.load(f)
    return {
        "preset": name,
        "test_metric": metadata["test_metric"],
        "float32_test_metrics": {
            key: result.test_metrics[key]
            for key in ("neg_elbo", "reconstruction_mse")
            if key in result.test_metrics
        },
        "parameters": metadata["parameter_count"],
        "bytes": catalog.preset_size(final),
        "seconds": round(time.perf_counter() - started, 1),
        "train_seconds": round(trained_s, 1),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=sorted(RECIPES), default=sorted(RECIPES))
    parser.add_argument("--out", default=ASSETS, help="Default: %(default)s (the package)")
    parser.add_argument(
        "--epochs", type=int, default=None, help="Override the recipes' epochs (a quick try)"
    )
    args = parser.parse_args()
    for name in args.only:
        print_json_line(train_preset(name, args.out, args.epochs))


if __name__ == "__main__":
    main()
