"""Resident memory over a long run: the default VAE trained for 200 epochs.

Trains the configuration `tfvae train` uses by default (dense VAE, latent
16, one hidden layer of 512, binarized mnist5k, batch 128, AdamW on a
cosine schedule) through `tfvae.training.trainer.train`, so everything a real run
does each epoch is included: a fresh pass of the seeded data pipeline,
validation, the divergence check, a checkpoint written and the older one
deleted, TensorBoard summaries. The process's resident set size (RSS) is
read before training, after every epoch and after the run directory is
written.

The first epochs trace the train and validation functions and fill
allocator pools, so growth is measured from the end of epoch `--warmup`
(default 5) to the end of the last epoch; the run passes when it stays
within `--bound-mib` (default 64 MiB, under 0.1 MiB per epoch over 200
epochs, while a leak of one checkpoint's tensors per epoch would add about
10 MiB each). The least-squares slope over the epochs after warm-up is
reported as well.

Usage: python benchmarks/memory_soak.py [--epochs 200] [--warmup 5] [--bound-mib 64]
                                        [--dataset mnist5k]

The last line printed is one JSON object; the exit status is 1 when the
growth exceeds the bound.
"""

import argparse
import os
import resource
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def resident_mib():
    """The current resident set size of this process, in MiB (Linux `/proc`, else psutil)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        import psutil

        return psutil.Process().memory_info().rss / 2**20


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--bound-mib", type=float, default=64.0)
    parser.add_argument("--dataset", default="mnist5k")
    args = parser.parse_args()
    if not 0 < args.warmup < args.epochs:
        parser.error(f"--warmup must be in [1, --epochs). Received: {args.warmup}")

    import keras
    import numpy as np
    from common import print_json_line

    from tfvae.training.config import TrainConfig
    from tfvae.training.trainer import train

    class ResidentMemory(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.per_epoch = []

        def on_epoch_end(self, epoch, logs=None):
            self.per_epoch.append(resident_mib())
            if (epoch + 1) % 20 == 0:
                print(f"epoch {epoch + 1}: RSS {self.per_epoch[-1]:.1f} MiB", flush=True)

    with tempfile.TemporaryDirectory() as root:
        config = TrainConfig(
            dataset=args.dataset, epochs=args.epochs, out=os.path.join(root, "run")
        )
        memory = ResidentMemory()
        before = resident_mib()
        start = time.perf_counter()
        result = train(config, verbose=0, callbacks=[memory])
        seconds = time.perf_counter() - start
        after_run_dir = resident_mib()

    rss = np.asarray(memory.per_epoch)
    warm = rss[args.warmup - 1]
    growth = float(rss[-1] - warm)
    epochs_after = np.arange(args.warmup, args.epochs) + 1
    slope = float(np.polyfit(epochs_after, rss[args.warmup :], 1)[0])
    ok = growth <= args.bound_mib
    print(
        f"RSS before training {before:.1f} MiB, after epoch {args.warmup} {warm:.1f} MiB, "
        f"after epoch {args.epochs} {rss[-1]:.1f} MiB: growth {growth:+.1f} MiB "
        f"(bound {args.bound_mib:g}), slope {slope * 100:+.2f} MiB per 100 epochs",
        flush=True,
    )
    print_json_line(
        {
            "benchmark": "memory_soak",
            "dataset": args.dataset,
            "epochs": args.epochs,
            "precision": config.resolved_precision,
            "seconds": round(seconds, 1),
            "final_val_loss": round(result.history["val_loss"][-1], 3),
            "rss_before_training_mib": round(before, 1),
            "rss_after_warmup_mib": round(float(warm), 1),
            "rss_end_mib": round(float(rss[-1]), 1),
            "rss_after_run_dir_mib": round(after_run_dir, 1),
            "rss_max_epoch_mib": round(float(rss.max()), 1),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
            "growth_mib": round(growth, 1),
            "slope_mib_per_100_epochs": round(slope * 100, 2),
            "bound_mib": args.bound_mib,
            "warmup_epochs": args.warmup,
            "ok": bool(ok),
        }
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
