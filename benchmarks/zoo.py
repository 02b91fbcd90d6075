"""Every registered model family on one protocol, one JSON line.

Each family in `tfvae.models.registry.families()` trains on binarized
mnist5k (per class: first 360 rows train, 40 validation, last 100 test)
with batch 128 and latent size 16 for `--epochs` epochs (50 by default),
through the same recipe `tfvae train` runs (`tfvae.training.recipe`), each
family with its own defaults otherwise. Each is then scored on the 1,000
test digits by `tfvae.evaluation.metrics.evaluate_model`:

- `nll`: importance-sampled -log p(x) with K = `--nll-samples` (1000),
  where the family defines a likelihood bound;
- `neg_elbo`: the negative ELBO (the beta = 1 bound), where defined;
- `reconstruction_mse`: per feature, of the deterministic reconstruction;
- `active_units`: for families with a prior;
- `train_examples_per_s`: median over epochs 2..N;
- `extra`: the family's own test metrics (codebook perplexity, ...).

Metrics a family does not define are `null`.

- `mig_shapes2d`: for families with a prior over a continuous code (the
  `prior` capability, no labels), the mutual information gap of the
  posterior means on `shapes2d` (known factors), from a second run on the
  disentanglement protocol of `tests/test_tcvae.py`: `shapes2d:10000`,
  MLP 256-256, latent size 6, batch 128, step size 1e-3, `--mig-epochs`
  (30) epochs, seed `--seed`, the family's defaults otherwise. The test
  split's 2,000 images are scored.

Usage: python benchmarks/zoo.py [--epochs 50] [--nll-samples 1000] [--mig-epochs 30]
                                [--families vae ae ...] [--set NAME=VALUE ...]

`--set` gives family settings to every config, e.g. `--families vamp --set
prior_kind=mog --set prior_components=50`; the JSON line records them.
"""

import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from common import BATCH_SIZE  # noqa: E402
from common import LATENT_DIM  # noqa: E402
from common import EpochTimer  # noqa: E402
from common import examples_per_second  # noqa: E402
from common import print_json_line  # noqa: E402

from tfvae.evaluation.metrics import evaluate_model  # noqa: E402
from tfvae.models import registry  # noqa: E402
from tfvae.training.config import TrainConfig  # noqa: E402
from tfvae.training.recipe import fit_model  # noqa: E402
from tfvae.training.trainer import prepare  # noqa: E402

CORE = ("nll", "neg_elbo", "reconstruction_mse", "active_units")
# Bookkeeping keys of `evaluate_model`, not measurements of the model.
NOT_METRICS = {"protocol", "test_examples", "latent_dim", "nll_samples", "baseline_nll"}


# Family settings given with --set (NAME=VALUE), in every config the benchmark makes.
SETTINGS = {}


def family_config(name, epochs, seed):
    """The benchmark's config for family `name`: the shared protocol, the family's own defaults."""
    return TrainConfig(
        model=name,
        dataset="mnist5k",
        binarize=True,
        epochs=epochs,
        batch_size=BATCH_SIZE,
        latent_dim=LATENT_DIM,
        seed=seed,
        **SETTINGS,
    )


# The disentanglement protocol (tests/test_tcvae.py::disentanglement_run).
MIG_DATASET = "shapes2d:10000"
MIG_SETTINGS = {"hidden_units": (256, 256), "latent_dim": 6, "learning_rate": 1e-3}


def has_mig(name):
    """Whether MIG applies to family `name`: a prior over a continuous code, no labels."""
    family = registry.get_family(name)
    return family.can("prior") and not family.needs_labels


def shapes2d_mig(name, epochs, seed):
    """The test MIG of family `name` trained on `MIG_DATASET` for `epochs` epochs."""
    config = TrainConfig(
        model=name,
        dataset=MIG_DATASET,
        binarize=True,
        epochs=epochs,
        batch_size=BATCH_SIZE,
        seed=seed,
        **MIG_SETTINGS,
        **SETTINGS,
    )
    data = prepare(config)
    model, _ = fit_model(config, data, validation=False, verbose=0)
    return evaluate_model(model, data, config.resolved_likelihood)["mig"]


def run_family(name, epochs, nll_samples, seed=0, mig_epochs=30):
    """Trains family `name` on the protocol and returns its row."""
    config = family_config(name, epochs, seed)
    data = prepare(config)
    timer = EpochTimer()
    start = time.perf_counter()
    model, _ = fit_model(config, data, validation=False, callbacks=[timer], verbose=0)
    train_seconds = time.perf_counter() - start
    metrics = evaluate_model(model, data, config.resolved_likelihood, nll_samples=nll_samples)
    row = {key: metrics.get(key) for key in CORE}
    row["train_examples_per_s"] = examples_per_second(timer.seconds, len(data.x_train))
    row["train_seconds"] = round(train_seconds, 1)
    row["parameters"] = int(model.count_params())
    # The VQ-VAE's networks are convolutional whatever --arch says.
    row["arch"] = getattr(model.encoder, "arch", "conv")
    row["likelihood"] = config.resolved_likelihood
    row["mig_shapes2d"] = (
        round(shapes2d_mig(name, mig_epochs, seed), 4) if mig_epochs and has_mig(name) else None
    )
    row["extra"] = {
        key: value
        for key, value in metrics.items()
        if key not in CORE and key not in NOT_METRICS and isinstance(value, (int, float))
    }
    return row


def main(argv=None):
    names = [family.name for family in registry.families()]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--nll-samples", type=int, default=1000)
    parser.add_argument("--families", nargs="+", default=names, choices=names)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--mig-epochs", type=int, default=30, help="epochs of the shapes2d run for MIG; 0 skips it"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a family setting for every family run, e.g. --set prior_kind=mog",
    )
    args = parser.parse_args(argv)
    for item in args.set:
        name, _, value = item.partition("=")
        try:
            SETTINGS[name] = json.loads(value)
        except json.JSONDecodeError:
            SETTINGS[name] = value
    rows = {}
    for name in args.families:
        print(f"{name}: training {args.epochs} epochs ...", file=sys.stderr, flush=True)
        rows[name] = run_family(name, args.epochs, args.nll_samples, args.seed, args.mig_epochs)
        print(f"{name}: {rows[name]}", file=sys.stderr, flush=True)
    print_json_line(
        {
            "benchmark": "zoo",
            "data": "binarized mnist5k (3,600 train, 1,000 test)",
            "epochs": args.epochs,
            "batch_size": BATCH_SIZE,
            "latent_dim": LATENT_DIM,
            "nll_samples": args.nll_samples,
            **({"settings": SETTINGS} if SETTINGS else {}),
            "mig": f"{MIG_DATASET}, MLP 256-256, latent 6, {args.mig_epochs} epochs",
            "families": rows,
        }
    )


if __name__ == "__main__":
    main()
