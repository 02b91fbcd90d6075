"""Trains the digit classifier whose penultimate layer gives the `"mnist"` sample-quality features.

The classifier (`tfvae.evaluation.feature_extractors.build_digit_classifier`:
two small convolutions, a 64-unit feature layer, 10 logits) trains on the
mnist5k training split (per class the first 360 rows), each digit three
times: in grey levels; binarized at 0.5, since tfvae's VAE models binarized
digits and its samples are compared with them; and at 8x8 resolution (its
20x20 box shrunk to 8x8 and scaled back, as the extractor scales
scikit-learn's 8x8 digits), so that blurred digits keep their class. The validation split picks nothing;
the test split (the last 100 rows per class) is only scored, in grey levels,
binarized, and as scikit-learn's 8x8 digits test split scaled into the
28x28 frame. The weights (`mnist_features.weights.h5`) and what was measured
(`mnist_features.json`) are written into `tfvae/evaluation/assets/`, which
the package ships. Seeded and deterministic: about a minute on 2 CPU cores.

Usage: python benchmarks/train_feature_classifier.py [--epochs 20] [--out DIR]
"""

import argparse
import hashlib
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from common import print_json_line  # noqa: E402

from tfvae.data.datasets import BINARIZE_THRESHOLD  # noqa: E402
from tfvae.data.datasets import load_dataset  # noqa: E402
from tfvae.evaluation import feature_extractors  # noqa: E402
from tfvae.io.atomic import write_bytes  # noqa: E402
from tfvae.io.atomic import write_json  # noqa: E402

ASSETS = os.path.join(os.path.dirname(HERE), "tfvae", "evaluation", "assets")
MAX_WEIGHT_BYTES = 1_000_000
BATCH_SIZE = 64
LEARNING_RATE = 1e-3


def binarized(x):
    return (x > BINARIZE_THRESHOLD).astype(np.float32)


def low_resolution(x):
    """MNIST digits at scikit-learn's 8x8 resolution, back in the 28x28 frame."""
    border = (feature_extractors.DIGIT_SIDE - feature_extractors.DIGIT_BOX) // 2
    box = x[:, border:-border, border:-border]
    side = feature_extractors.SKLEARN_DIGIT_SIDE
    return feature_extractors.to_digit_frame(tf.image.resize(box, (side, side), "area").numpy())


def accuracy(classifier, x, y):
    logits = classifier.predict(feature_extractors.to_digit_frame(x), batch_size=512, verbose=0)
    return float(np.mean(np.argmax(logits, axis=1) == y))


def feature_scale(classifier, x):
    """The features' root mean square over `x`: the extractor divides by it, so KID's x . y / d ~ 1."""
    features = feature_extractors.feature_layer(classifier).predict(x, batch_size=512, verbose=0)
    return float(np.sqrt(np.mean(features.astype(np.float64) ** 2)))


def train_classifier(epochs, seed):
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    data = load_dataset("mnist5k")
    x_train = np.concatenate([data.x_train, binarized(data.x_train), low_resolution(data.x_train)])
    y_train = np.tile(data.y_train, 3)
    classifier = feature_extractors.build_digit_classifier()
    classifier.compile(
        optimizer=keras.optimizers.Adam(LEARNING_RATE),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    start = time.perf_counter()
    history = classifier.fit(
        x_train,
        y_train,
        batch_size=BATCH_SIZE,
        epochs=epochs,
        validation_data=(data.x_val, data.y_val),
        shuffle=True,
        verbose=2,
    )
    seconds = time.perf_counter() - start
    digits = load_dataset("digits")
    measured = {
        "test_accuracy": accuracy(classifier, data.x_test, data.y_test),
        "test_accuracy_binarized": accuracy(classifier, binarized(data.x_test), data.y_test),
        "test_accuracy_8x8": accuracy(classifier, low_resolution(data.x_test), data.y_test),
        "digits_8x8_test_accuracy": accuracy(classifier, digits.x_test, digits.y_test),
        "validation_accuracy": float(history.history["val_accuracy"][-1]),
        "feature_scale": feature_scale(classifier, data.x_train),
        "train_seconds": round(seconds, 1),
    }
    return classifier, data, measured


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=ASSETS, help="Default: tfvae/evaluation/assets")
    args = parser.parse_args(argv)

    classifier, data, measured = train_classifier(args.epochs, args.seed)
    # An uncompiled copy, so that the optimizer's state stays out of the file.
    shipped = feature_extractors.build_digit_classifier()
    shipped.set_weights(classifier.get_weights())
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, feature_extractors.DIGIT_WEIGHTS)
        shipped.save_weights(path)
        with open(path, "rb") as f:
            weights = f.read()
    if len(weights) > MAX_WEIGHT_BYTES:
        raise SystemExit(f"the weights take {len(weights)} bytes, over {MAX_WEIGHT_BYTES}")
    os.makedirs(args.out, exist_ok=True)
    write_bytes(os.path.join(args.out, feature_extractors.DIGIT_WEIGHTS), weights)
    metadata = {
        "name": "mnist",
        "weights": feature_extractors.DIGIT_WEIGHTS,
        "weights_bytes": len(weights),
        "weights_sha256": hashlib.sha256(weights).hexdigest(),
        "parameters": int(classifier.count_params()),
        "layers": "conv3x3(16)-maxpool-conv3x3(32)-maxpool-dropout(0.25)-dense(64, relu: "
        "the features)-dropout(0.25)-dense(10)",
        "feature_layer": "features",
        "feature_dim": feature_extractors.DIGIT_FEATURE_DIM,
        "training_data": f"mnist5k training split ({len(data.x_train)} digits), each in grey "
        f"levels, binarized at {BINARIZE_THRESHOLD} and at 8x8 resolution",
        "protocol": data.protocol,
        "test_examples": int(len(data.x_test)),
        "epochs": args.epochs,
        "batch_size": BATCH_SIZE,
        "optimizer": f"Adam({LEARNING_RATE})",
        "seed": args.seed,
        "keras_version": keras.__version__,
        "tensorflow_version": tf.__version__,
        "script": "benchmarks/train_feature_classifier.py",
        **measured,
    }
    write_json(os.path.join(args.out, feature_extractors.DIGIT_METADATA), metadata)
    print_json_line(metadata)


if __name__ == "__main__":
    main()
