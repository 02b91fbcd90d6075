"""Throughput of the default VAE on one device and replicated with MirroredStrategy.

On a CPU-only machine the CPU is split into two logical devices, so
MirroredStrategy runs two replicas on the same cores: this measures the
strategy's overhead, and no speed-up is expected on 2 cores. Where GPUs are
visible the same script measures one GPU and, with several, all of them.

Usage: python benchmarks/distributed_speed.py [--epochs 6]
"""

import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import tensorflow as tf  # noqa: E402

# Must happen before TensorFlow initialises its devices.
_GPUS = tf.config.list_physical_devices("GPU")
if not _GPUS:
    tf.config.set_logical_device_configuration(
        tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 2
    )

from common import EpochTimer  # noqa: E402
from common import benchmark_data  # noqa: E402
from common import examples_per_second  # noqa: E402
from common import print_json_line  # noqa: E402

from tfvae.training.config import TrainConfig  # noqa: E402
from tfvae.training.recipe import build_compiled_model  # noqa: E402
from tfvae.training.recipe import count_steps_per_epoch  # noqa: E402


def throughput(strategy, data, epochs):
    config = TrainConfig(epochs=epochs)
    with strategy.scope():
        model = build_compiled_model(
            config, data.data_shape, count_steps_per_epoch(config, data), x_train=data.x_train
        )
    timer = EpochTimer()
    history = model.fit(
        data.pipeline("train", config.batch_size, seed=0),
        epochs=epochs,
        callbacks=[timer],
        verbose=0,
        shuffle=False,
    )
    return (
        examples_per_second(timer.seconds, len(data.x_train)),
        history.history["loss"][-1],
        config,
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6)
    args = parser.parse_args()
    data = benchmark_data()
    if _GPUS:
        one = tf.distribute.OneDeviceStrategy("/gpu:0")
        many = tf.distribute.MirroredStrategy() if len(_GPUS) > 1 else None
        devices = f"{len(_GPUS)} GPU(s)"
    else:
        cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
        one = tf.distribute.OneDeviceStrategy(cpus[0])
        many = tf.distribute.MirroredStrategy(cpus)
        devices = "CPU split into 2 logical devices"
    result = {"benchmark": "distributed_speed", "devices": devices, "epochs": args.epochs}
    rate, loss, config = throughput(one, data, args.epochs)
    result.update(one_replica_ex_per_s=round(rate, 1), one_replica_loss=round(float(loss), 3))
    result["precision"] = config.resolved_precision
    print(
        f"one replica:  {rate:9.0f} examples/s  (final loss {loss:.3f}, {config.resolved_precision})"
    )
    if many is not None:
        rate_many, loss_many, _ = throughput(many, data, args.epochs)
        result.update(
            replicas=many.num_replicas_in_sync,
            mirrored_ex_per_s=round(rate_many, 1),
            mirrored_loss=round(float(loss_many), 3),
            mirrored_over_one=round(rate_many / rate, 3),
        )
        print(
            f"{many.num_replicas_in_sync} replicas:   {rate_many:9.0f} examples/s  "
            f"(final loss {loss_many:.3f}); ratio {rate_many / rate:.2f}x  [{devices}]"
        )
    print_json_line(result)


if __name__ == "__main__":
    main()
