"""Streamed TFRecord data at two sizes: peak memory, and throughput against the in-memory pipeline.

Writes synthetic 64 x 64 x 3 uint8 images (smooth colour fields with pixel
noise, about 12 KiB each as PNG) as TFRecord shards with
`tfvae.data.tfrecords.write_shards`, at each `--sizes` (default 10,000 and
100,000 examples, 32 shards each, plus the same 1,000 test records at every
size), then trains the conv VAE (`tfvae train --arch conv` defaults at
64 x 64 x 3: filters 32 64 128 128, one dense layer of 512, latent 16,
Gaussian likelihood) for a fixed `--steps` of `--batch-size` in a fresh
subprocess per measurement:

- **memory**: the streamed training split (`--stream --cache none`) at each
  size; the process's peak resident set size (`ru_maxrss`). Validation and
  test splits stay in memory under `--stream`: the validation fraction is
  0.5% and the test split the fixed 1,000 records, so what is held besides
  the stream differs by 450 examples (21 MiB) between 10k and 100k;
- **throughput**: at the smallest size, the streamed split against the
  same data loaded whole into memory (`DataSplits.pipeline`), in
  `--rounds` alternating rounds (streamed, in-memory, streamed, ...) so
  that load from other processes falls on both alike; examples per second
  over the steps after the first `--warmup`, the median over rounds.

The shards are written under `--root` (default: a temporary directory) and
deleted at the end. The last line printed is one JSON object.

Usage: python benchmarks/data_scaling.py [--sizes 10000 100000] [--steps 150]
                                         [--warmup 30] [--batch-size 64] [--rounds 3]
                                         [--root DIR]
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SHARDS = 32
TEST_RECORDS = 1000
VALIDATION_FRACTION = 0.005
SIDE = 64


class SyntheticImages:
    """`count` 64 x 64 x 3 uint8 images, made on demand in seeded chunks of `CHUNK`."""

    CHUNK = 500

    def __init__(self, count):
        self.count = count
        self._chunk = (None, None)

    def __len__(self):
        return self.count

    def __getitem__(self, i):
        number, images = self._chunk
        if number != i // self.CHUNK:
            number = i // self.CHUNK
            rng = np.random.default_rng(number)
            coarse = rng.uniform(0, 255, size=(self.CHUNK, 4, 4, 3)).astype(np.float32)
            field = coarse.repeat(SIDE // 4, axis=1).repeat(SIDE // 4, axis=2)
            noise = rng.normal(0, 12, size=field.shape).astype(np.float32)
            images = np.clip(field + noise, 0, 255).astype(np.uint8)
            self._chunk = (number, images)
        return images[i % self.CHUNK]


def write_data(root, size):
    """The glob of `size` training records and `TEST_RECORDS` test records under `root`."""
    from tfvae.data.tfrecords import write_shards

    out = os.path.join(root, f"images-{size}")
    if not os.path.isdir(out):
        images = SyntheticImages(size + TEST_RECORDS)
        splits = ["train"] * size + ["test"] * TEST_RECORDS
        write_shards(out, images, splits=splits, shards=SHARDS)
    return os.path.join(out, "*.tfrecord")


def child(pattern, mode, steps, warmup, batch_size):
    """Trains the conv VAE for `steps`; prints one JSON line: examples/s and peak RSS."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    from tfvae.training.config import TrainConfig
    from tfvae.training.recipe import build_compiled_model
    from tfvae.training.trainer import prepare

    config = TrainConfig(
        model="vae",
        arch="conv",
        dataset=pattern,
        stream=mode == "streamed",
        cache="none" if mode == "streamed" else "auto",
        batch_size=batch_size,
        latent_dim=16,
        validation_fraction=VALIDATION_FRACTION,
        steps_per_execution=1,
        tensorboard=False,
    )
    data = prepare(config)
    loaded_rss = _peak_rss_mib()
    model = build_compiled_model(
        config, data.data_shape, data.steps_per_epoch("train", batch_size), x_train=data.x_train
    )
    times = []

    class StepTimer(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            times.append(time.perf_counter())

    pipeline = data.pipeline("train", batch_size, seed=config.seed).repeat()
    model.fit(pipeline, steps_per_epoch=steps, epochs=1, verbose=0, callbacks=[StepTimer()])
    measured = times[warmup:]
    rate = batch_size * (len(measured) - 1) / (measured[-1] - measured[0])
    print(
        json.dumps(
            {
                "mode": mode,
                "train_examples": data.num_examples("train"),
                "examples_per_second": rate,
                "peak_rss_mib": _peak_rss_mib(),
                "rss_after_loading_mib": loaded_rss,
                "cache": data.stream.cache if data.stream is not None else "in memory",
            }
        ),
        flush=True,
    )


def _peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def measure(pattern, mode, args):
    command = [
        sys.executable,
        os.path.abspath(__file__),
        "--child",
        mode,
        "--pattern",
        pattern,
        "--steps",
        str(args.steps),
        "--warmup",
        str(args.warmup),
        "--batch-size",
        str(args.batch_size),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"{mode} run on {pattern} failed:\n{result.stderr[-3000:]}")
    line = json.loads(result.stdout.strip().splitlines()[-1])
    print(f"{mode:9} {pattern}: {json.dumps(line)}", file=sys.stderr, flush=True)
    return line


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10000, 100000])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--root", default=None)
    parser.add_argument("--child", choices=("streamed", "in_memory"), help=argparse.SUPPRESS)
    parser.add_argument("--pattern", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.pattern, args.child, args.steps, args.warmup, args.batch_size)
        return
    sys.path.insert(0, os.path.dirname(HERE))
    root = tempfile.mkdtemp(prefix="tfvae-data-scaling-", dir=args.root)
    started = time.perf_counter()
    try:
        patterns = {}
        for size in args.sizes:
            begin = time.perf_counter()
            patterns[size] = write_data(root, size)
            print(
                f"wrote {size:,} examples in {time.perf_counter() - begin:.0f} s", file=sys.stderr
            )
        disk = {
            size: sum(
                os.path.getsize(os.path.join(os.path.dirname(p), f))
                for f in os.listdir(os.path.dirname(p))
            )
            for size, p in patterns.items()
        }
        streamed = {size: measure(patterns[size], "streamed", args) for size in args.sizes}
        smallest = min(args.sizes)
        rounds = {"streamed": [], "in_memory": []}
        for _ in range(args.rounds):
            for mode in ("streamed", "in_memory"):
                rounds[mode].append(measure(patterns[smallest], mode, args))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    peak = {str(size): round(streamed[size]["peak_rss_mib"], 1) for size in args.sizes}
    growth = streamed[max(args.sizes)]["peak_rss_mib"] / streamed[smallest]["peak_rss_mib"] - 1
    rate = {mode: [r["examples_per_second"] for r in runs] for mode, runs in rounds.items()}
    ratio = float(np.median(rate["streamed"]) / np.median(rate["in_memory"]))
    print(
        json.dumps(
            {
                "sizes": args.sizes,
                "image_shape": [SIDE, SIDE, 3],
                "disk_mib": {str(s): round(b / 2**20, 1) for s, b in disk.items()},
                "steps": args.steps,
                "warmup_steps": args.warmup,
                "batch_size": args.batch_size,
                "streamed_cache": "none",
                "peak_rss_mib_streamed": peak,
                "peak_rss_growth": round(growth, 4),
                "peak_rss_growth_target_met": growth < 0.10,
                "peak_rss_mib_in_memory": round(
                    max(r["peak_rss_mib"] for r in rounds["in_memory"]), 1
                ),
                "examples_per_second": {m: [round(v, 1) for v in r] for m, r in rate.items()},
                "throughput_ratio_streamed_to_in_memory": round(ratio, 3),
                "throughput_target_met": ratio >= 0.9,
                "rounds": args.rounds,
                "cpus": os.cpu_count(),
                "seconds": round(time.perf_counter() - started),
            }
        )
    )


if __name__ == "__main__":
    main()
