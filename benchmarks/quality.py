"""Held-out quality: tfvae's VAE against the reference Keras-example VAE, same model, 50 epochs.

Both train binarized mnist5k (per class: first 360 rows train, last 100
test) with the MLP 784-512-(16 mean, 16 scale) / 16-512-784, a Bernoulli
likelihood, Adam 1e-3 and batch 128, for the same number of epochs. tfvae
trains once per recipe (`fast`, the defaults, and `quality`; see
`tfvae.training.recipes`), with the options given here overriding the
recipe's (the architecture and the epoch count stay the reference's). All
are scored on the 1,000 test digits: negative ELBO (the beta = 1 bound,
one sample) and importance-sampled -log p(x) with K = 1000, from the same
estimator code; each reports its training throughput (median of epochs 2..N).

Usage: python benchmarks/quality.py [--epochs 50] [--nll-samples 1000] [--recipes fast quality]
"""

import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import keras  # noqa: E402
import numpy as np  # noqa: E402
from common import BATCH_SIZE  # noqa: E402
from common import LATENT_DIM  # noqa: E402
from common import EpochTimer  # noqa: E402
from common import benchmark_data  # noqa: E402
from common import examples_per_second  # noqa: E402
from common import print_json_line  # noqa: E402
from common import reference_log_weights  # noqa: E402

from tfvae.evaluation.metrics import estimate_nll  # noqa: E402
from tfvae.evaluation.metrics import importance_sampled_nll  # noqa: E402
from tfvae.models.vae import kl_warmup_epochs  # noqa: E402
from tfvae.training.config import TrainConfig  # noqa: E402
from tfvae.training.recipe import build_compiled_model  # noqa: E402
from tfvae.training.recipe import count_steps_per_epoch  # noqa: E402
from tfvae.training.recipes import RECIPES  # noqa: E402
from tfvae.training.recipes import recipe_settings  # noqa: E402


def reference_negative_elbo(reference, x, seed=0):
    """One-sample negative ELBO under the reference's own loss, for the test set."""
    log_weights = reference_log_weights(reference)
    import tensorflow as tf

    eps = tf.random.stateless_normal((1, len(x), LATENT_DIM), seed=[seed, 1])
    return float(-np.mean(log_weights(tf.constant(x), eps).numpy()))


OPTIONS = (
    "iwae_samples",
    "kl_warmup_epochs",
    "input_dropout",
    "dreg",
    "weight_decay",
    "lr_schedule",
    "learning_rate",
    "precision",
)


def train_tfvae(recipe, data, args):
    """Trains tfvae's VAE under `recipe` (and the given overrides); returns its figures."""
    overrides = {name: getattr(args, name) for name in OPTIONS if getattr(args, name) is not None}
    config = TrainConfig(
        epochs=args.epochs,
        batch_size=BATCH_SIZE,
        latent_dim=LATENT_DIM,
        **{**recipe_settings(recipe), **overrides},
    )
    steps = count_steps_per_epoch(config, data)
    timer = EpochTimer()
    start = time.perf_counter()
    model = build_compiled_model(config, data.data_shape, steps, x_train=data.x_train)
    model.fit(
        data.pipeline("train", BATCH_SIZE, seed=0),
        epochs=args.epochs,
        verbose=0,
        shuffle=False,
        callbacks=[timer],
    )
    seconds = time.perf_counter() - start
    nll = importance_sampled_nll(model, data.x_test, args.nll_samples)
    test = data.pipeline("test", 500, shuffle=False)
    elbo = model.evaluate(test, verbose=0, return_dict=True)["neg_elbo"]
    print(
        f"tfvae {recipe}: -log p(x) {nll.mean():.2f}  negative ELBO {elbo:.2f}  "
        f"({seconds:.0f} s training)",
        flush=True,
    )
    options = {name: getattr(config, name) for name in OPTIONS}
    options.update(kl_warmup_epochs=kl_warmup_epochs(config), precision=config.resolved_precision)
    return {
        "nll": round(float(nll.mean()), 3),
        "neg_elbo": round(float(elbo), 3),
        "train_seconds": round(seconds, 1),
        "train_examples_per_s": round(
            examples_per_second(timer.seconds, len(data.x_train)) if args.epochs > 1 else 0.0
        ),
        "options": options,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--nll-samples", type=int, default=1000)
    parser.add_argument(
        "--recipes", nargs="+", choices=list(RECIPES), default=list(RECIPES), metavar="RECIPE"
    )
    # Overrides of what the recipes set (for experiments); unset by default.
    parser.add_argument("--iwae-samples", type=int)
    parser.add_argument("--kl-warmup-epochs", type=int)
    parser.add_argument("--input-dropout", type=float)
    parser.add_argument("--dreg", action=argparse.BooleanOptionalAction)
    parser.add_argument("--weight-decay", type=float)
    parser.add_argument("--lr-schedule", choices=["cosine", "constant"])
    parser.add_argument("--learning-rate", type=float)
    parser.add_argument("--precision")
    parser.add_argument("--skip-reference", action="store_true")
    args = parser.parse_args()

    data = benchmark_data()
    result = {"benchmark": "quality", "epochs": args.epochs, "nll_samples": args.nll_samples}

    if not args.skip_reference:
        from reference_vae import build_reference_vae

        keras.utils.set_random_seed(0)
        timer = EpochTimer()
        start = time.perf_counter()
        reference = build_reference_vae()
        reference.fit(
            data.x_train,
            epochs=args.epochs,
            batch_size=BATCH_SIZE,
            verbose=0,
            callbacks=[timer],
        )
        seconds = time.perf_counter() - start
        nll = estimate_nll(
            reference_log_weights(reference), LATENT_DIM, data.x_test, args.nll_samples
        )
        result["reference"] = {
            "nll": round(float(nll.mean()), 3),
            "neg_elbo": round(reference_negative_elbo(reference, data.x_test), 3),
            "train_seconds": round(seconds, 1),
            "train_examples_per_s": round(
                examples_per_second(timer.seconds, len(data.x_train)) if args.epochs > 1 else 0.0
            ),
        }
        print(
            f"reference: -log p(x) {nll.mean():.2f}  negative ELBO "
            f"{result['reference']['neg_elbo']:.2f}  ({seconds:.0f} s training)",
            flush=True,
        )

    for recipe in args.recipes:
        result[recipe] = train_tfvae(recipe, data, args)
        if "reference" in result:
            gain = round(result["reference"]["nll"] - result[recipe]["nll"], 3)
            result[recipe]["nll_gain_nats"] = gain
            print(f"tfvae {recipe}: test NLL {gain:.2f} nats lower than the reference's")
    print_json_line(result)


if __name__ == "__main__":
    main()
