"""Training throughput: tfvae's VAE against the reference Keras-example VAE, same model.

Both train binarized mnist5k (3,600 training digits) with an MLP
784-512-(16 mean, 16 scale) / 16-512-784 logits, a Bernoulli likelihood,
Adam 1e-3 and batch 128. Each model trains in its own subprocess, in rounds
that alternate the two, so both see the same machine conditions and their
peak memory is their own. Throughput is the median over epochs 2..N of all
rounds. The matmul FLOP rate at the model's shapes, measured in the same run,
turns throughput into a fraction of this machine's roofline.

Usage: python benchmarks/train_speed.py [--epochs 8] [--rounds 3]
"""

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

# Multiply-adds of one forward pass, counted as 2 FLOPs each; training costs
# about three forward passes (forward, and the two products of the backward pass).
FORWARD_FLOPS = 2 * (784 * 512 + 512 * 32 + 16 * 512 + 512 * 784)
TRAIN_FLOPS_PER_EXAMPLE = 3 * FORWARD_FLOPS


def run_worker(which, epochs):
    import keras
    import numpy as np
    from common import BATCH_SIZE
    from common import EpochTimer
    from common import benchmark_data
    from common import peak_rss_mb

    data = benchmark_data()
    keras.utils.set_random_seed(0)
    timer = EpochTimer()
    if which == "reference":
        from reference_vae import build_reference_vae

        model = build_reference_vae()
        model.fit(data.x_train, epochs=epochs, batch_size=BATCH_SIZE, callbacks=[timer], verbose=0)
        precision = "float32"
    else:
        from tfvae.training.config import TrainConfig
        from tfvae.training.recipe import build_compiled_model
        from tfvae.training.recipe import count_steps_per_epoch
        from tfvae.training.recipe import fit_on_splits

        # The reference's optimizer exactly: Adam 1e-3, constant; its
        # objective: the KL weighted 1 from the first step.
        config = TrainConfig(
            batch_size=BATCH_SIZE,
            epochs=epochs,
            learning_rate=1e-3,
            lr_schedule="constant",
            weight_decay=0.0,
            kl_warmup_epochs=0,
            seed=0,
        )
        precision = config.resolved_precision
        # Built and fitted as `tfvae train` does (no validation, like the reference).
        model = build_compiled_model(config, data.data_shape, count_steps_per_epoch(config, data))
        fit_on_splits(model, config, data, validation=False, callbacks=[timer], verbose=0)
    result = {
        "which": which,
        "epoch_seconds": timer.seconds,
        "examples": len(data.x_train),
        "peak_rss_mb": peak_rss_mb(),
        "precision": precision,
        "final_loss": float(
            np.mean(model.history.history.get("loss", model.history.history.get("total_loss"))[-1:])
        ),
    }
    print("RESULT " + json.dumps(result), flush=True)


def matmul_gflops(dtype_name, seconds=2.0):
    """FLOP rate of chained [128, 784] x [784, 512] and [128, 512] x [512, 784] products."""
    import tensorflow as tf

    dtype = tf.as_dtype(dtype_name)
    x0 = tf.cast(tf.random.normal([128, 784], seed=0) * 0.01, dtype)
    w = tf.cast(tf.random.normal([784, 512], seed=1) * 0.03, dtype)
    wt = tf.transpose(w)
    chain = 25

    @tf.function
    def products(x):
        for _ in range(chain):
            x = tf.matmul(tf.matmul(x, w), wt)
        return x

    products(x0).numpy()
    best, deadline = float("inf"), time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        products(x0).numpy()
        best = min(best, time.perf_counter() - start)
    return 2 * chain * 2 * 128 * 784 * 512 / best / 1e9


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--worker", choices=["reference", "tfvae"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        run_worker(args.worker, args.epochs)
        return

    import numpy as np
    from common import print_json_line

    runs = {"reference": [], "tfvae": []}
    for round_index in range(args.rounds):
        for which in ("reference", "tfvae"):
            output = subprocess.run(
                [sys.executable, __file__, "--worker", which, "--epochs", str(args.epochs)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            line = next(row for row in output.splitlines() if row.startswith("RESULT "))
            result = json.loads(line[len("RESULT ") :])
            runs[which].append(result)
            rate = result["examples"] / np.median(result["epoch_seconds"][1:])
            print(
                f"round {round_index + 1}  {which:9s}  {rate:9.0f} examples/s  "
                f"epochs {np.round(result['epoch_seconds'], 3).tolist()}",
                flush=True,
            )

    def summary(which):
        seconds = [s for r in runs[which] for s in r["epoch_seconds"][1:]]
        return runs[which][0]["examples"] / float(np.median(seconds)), max(
            r["peak_rss_mb"] for r in runs[which]
        )

    tfvae_rate, tfvae_rss = summary("tfvae")
    reference_rate, reference_rss = summary("reference")
    precision = runs["tfvae"][0]["precision"]
    fp32 = matmul_gflops("float32")
    bf16 = matmul_gflops("bfloat16")
    tfvae_peak = bf16 if precision == "mixed_bfloat16" else fp32
    flops = TRAIN_FLOPS_PER_EXAMPLE

    print()
    print(
        f"{'':10s} {'examples/s':>11s} {'GFLOP/s':>8s} {'of matmul peak':>15s} {'peak RSS':>9s}  precision"
    )
    print(
        f"{'reference':10s} {reference_rate:11.0f} {reference_rate * flops / 1e9:8.1f} "
        f"{reference_rate * flops / 1e9 / fp32:14.1%} {reference_rss:7.0f}MB  float32"
    )
    print(
        f"{'tfvae':10s} {tfvae_rate:11.0f} {tfvae_rate * flops / 1e9:8.1f} "
        f"{tfvae_rate * flops / 1e9 / tfvae_peak:14.1%} {tfvae_rss:7.0f}MB  {precision}"
    )
    print(
        f"speed ratio tfvae / reference: {tfvae_rate / reference_rate:.2f}x  "
        f"(matmul peak at these shapes: float32 {fp32:.0f}, bfloat16 {bf16:.0f} GFLOP/s)"
    )
    print_json_line(
        {
            "benchmark": "train_speed",
            "tfvae_ex_per_s": round(tfvae_rate, 1),
            "reference_ex_per_s": round(reference_rate, 1),
            "speed_ratio": round(tfvae_rate / reference_rate, 3),
            "tfvae_peak_rss_mb": round(tfvae_rss, 1),
            "reference_peak_rss_mb": round(reference_rss, 1),
            "tfvae_precision": precision,
            "matmul_gflops_float32": round(fp32, 1),
            "matmul_gflops_bfloat16": round(bf16, 1),
            "tfvae_fraction_of_matmul_peak": round(tfvae_rate * flops / 1e9 / tfvae_peak, 3),
            "reference_fraction_of_matmul_peak": round(reference_rate * flops / 1e9 / fp32, 3),
            "epochs": args.epochs,
            "rounds": args.rounds,
            "batch_size": 128,
        }
    )


if __name__ == "__main__":
    main()
