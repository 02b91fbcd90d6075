"""Held-out quality: tfvae's VAE against the reference Keras-example VAE, same model, 50 epochs.

Both train binarized mnist5k (per class: first 360 rows train, last 100
test) with the MLP 784-512-(16 mean, 16 scale) / 16-512-784, a Bernoulli
likelihood, Adam 1e-3 and batch 128, for the same number of epochs. tfvae
trains with its own defaults plus the training options given here (the
architecture and the epoch count stay the reference's). Both are scored on
the 1,000 test digits: negative ELBO and importance-sampled -log p(x) with
K = 1000, from the same estimator code.

Usage: python benchmarks/quality.py [--epochs 50] [--nll-samples 1000]
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
from common import benchmark_data  # noqa: E402
from common import print_json_line  # noqa: E402
from common import reference_log_weights  # noqa: E402

from tfvae.evaluation.metrics import estimate_nll  # noqa: E402
from tfvae.evaluation.metrics import importance_sampled_nll  # noqa: E402
from tfvae.training.config import TrainConfig  # noqa: E402
from tfvae.training.recipe import build_compiled_model  # noqa: E402
from tfvae.training.recipe import count_steps_per_epoch  # noqa: E402


def reference_negative_elbo(reference, x, seed=0):
    """One-sample negative ELBO under the reference's own loss, for the test set."""
    log_weights = reference_log_weights(reference)
    import tensorflow as tf

    eps = tf.random.stateless_normal((1, len(x), LATENT_DIM), seed=[seed, 1])
    return float(-np.mean(log_weights(tf.constant(x), eps).numpy()))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--nll-samples", type=int, default=1000)
    parser.add_argument("--iwae-samples", type=int, default=TrainConfig().iwae_samples)
    parser.add_argument("--kl-warmup-epochs", type=int, default=TrainConfig().kl_warmup_epochs)
    parser.add_argument("--precision", default=TrainConfig().precision)
    parser.add_argument("--skip-reference", action="store_true")
    args = parser.parse_args()

    data = benchmark_data()
    x_test = data.x_test
    result = {"benchmark": "quality", "epochs": args.epochs, "nll_samples": args.nll_samples}

    if not args.skip_reference:
        from reference_vae import build_reference_vae

        keras.utils.set_random_seed(0)
        start = time.perf_counter()
        reference = build_reference_vae()
        reference.fit(data.x_train, epochs=args.epochs, batch_size=BATCH_SIZE, verbose=0)
        seconds = time.perf_counter() - start
        nll = estimate_nll(reference_log_weights(reference), LATENT_DIM, x_test, args.nll_samples)
        result.update(
            reference_nll=round(float(nll.mean()), 3),
            reference_neg_elbo=round(reference_negative_elbo(reference, x_test), 3),
            reference_train_seconds=round(seconds, 1),
        )
        print(
            f"reference: -log p(x) {nll.mean():.2f}  negative ELBO {result['reference_neg_elbo']:.2f}  "
            f"({seconds:.0f} s training)",
            flush=True,
        )

    config = TrainConfig(
        epochs=args.epochs,
        batch_size=BATCH_SIZE,
        latent_dim=LATENT_DIM,
        iwae_samples=args.iwae_samples,
        kl_warmup_epochs=args.kl_warmup_epochs,
        precision=args.precision,
    )
    start = time.perf_counter()
    model = build_compiled_model(
        config, data.data_shape, count_steps_per_epoch(config, data), x_train=data.x_train
    )
    model.fit(
        data.pipeline("train", BATCH_SIZE, seed=0), epochs=args.epochs, verbose=0, shuffle=False
    )
    seconds = time.perf_counter() - start
    nll = importance_sampled_nll(model, x_test, args.nll_samples)
    elbo = model.evaluate(data.pipeline("test", 500, shuffle=False), verbose=0, return_dict=True)[
        "loss"
    ]
    result.update(
        tfvae_nll=round(float(nll.mean()), 3),
        tfvae_neg_elbo=round(float(elbo), 3),
        tfvae_train_seconds=round(seconds, 1),
        tfvae_options={
            "iwae_samples": config.iwae_samples,
            "kl_warmup_epochs": config.kl_warmup_epochs,
            "precision": config.resolved_precision,
        },
    )
    print(
        f"tfvae:     -log p(x) {nll.mean():.2f}  negative ELBO {elbo:.2f}  ({seconds:.0f} s training)"
    )
    if "reference_nll" in result:
        result["nll_gain_nats"] = round(result["reference_nll"] - result["tfvae_nll"], 3)
        print(f"tfvae's test NLL is {result['nll_gain_nats']:.2f} nats lower than the reference's")
    print_json_line(result)


if __name__ == "__main__":
    main()
