"""Feature extractors for the sample-quality metrics: images in, feature vectors out.

FID, KID and precision/recall compare two sets of images in the feature
space of a fixed network (`tfvae.evaluation.sample_quality`). Two are
offered, by name:

- `"mnist"`, the offline default: a small CNN the package ships
  (`assets/mnist_features.weights.h5`, about 230 KB), trained on the
  mnist5k training split by `benchmarks/train_feature_classifier.py`; the
  features are its penultimate layer (64 ReLU units). Its test accuracy is
  in `assets/mnist_features.json`. It takes greyscale digits: 28x28 as they
  are, 8x8 scikit-learn digits scaled into MNIST's 20x20 box with a 4-pixel
  border. Colour images and other sizes are refused.
- `"inception"`: InceptionV3's 2048-wide average pool from
  `keras.applications`, the features FID was defined with. Its ImageNet
  weights are read from the Keras cache only
  (`$KERAS_HOME/models/`, by default `~/.keras/models/`); tfvae never
  downloads them, so an offline machine gets a one-line error instead of a
  hanging download.

Any callable `images [n, h, w, c] in [0, 1] -> features [n, d]` can be
passed instead of a name.
"""

import dataclasses
import functools
import importlib.resources
import json
import os

import keras
import numpy as np
import tensorflow as tf

from tfvae import checks
from tfvae.errors import TfvaeError

DIGIT_WEIGHTS = "mnist_features.weights.h5"
DIGIT_METADATA = "mnist_features.json"
DIGIT_SIDE = 28
# MNIST's digits fill a 20x20 box centred in the 28x28 frame; scikit-learn's
# 8x8 digits fill their whole frame, so they are scaled into that box.
DIGIT_BOX = 20
SKLEARN_DIGIT_SIDE = 8
DIGIT_FEATURE_DIM = 64
# Built-in data sets whose images are not digits: the digit features mean
# nothing for them.
NOT_DIGITS = ("fashion_mnist",)

INCEPTION_WEIGHTS = "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"
INCEPTION_SIDE = 299
INCEPTION_FEATURE_DIM = 2048

EMBED_BATCH = 256
INCEPTION_BATCH = 32


@dataclasses.dataclass(frozen=True)
class FeatureExtractor:
    """A named map from images to feature vectors, for the sample-quality metrics.

    Args:
        name: str. `"mnist"`, `"inception"`, or a name of one's own.
        description: str. One line saying what the features are.
        embed: callable `images [n, h, w, c] float32 in [0, 1] -> [n, d]`.
        feature_dim: int or None. `d`, when known. Defaults to `None`.
        refused_datasets: tuple of str. Data sets whose images the features
            do not describe. Defaults to `()`.

    Example:

    >>> extractor = feature_extractor("mnist")
    >>> extractor(tfvae.load_dataset("digits").x_test).shape
    (359, 64)
    """

    name: str
    description: str
    embed: object
    feature_dim: int | None = None
    refused_datasets: tuple = ()

    def __call__(self, images):
        """The features of `images` (`[n, h, w, c]`, or `[n, d]` square greyscale), float64."""
        features = np.asarray(self.embed(as_images(images)), np.float64)
        if features.ndim != 2 or len(features) != len(images):
            raise TfvaeError(
                f"feature extractor {self.name!r} must return [n, d] features for n images. "
                f"Received: shape {features.shape} for {len(images)} images"
            )
        return features

    def check_dataset(self, dataset):
        """Raises unless the features describe the images of `dataset` (a data set name)."""
        if os.path.basename(str(dataset)) in self.refused_datasets:
            raise TfvaeError(
                f"the {self.name!r} features describe digits, not {dataset} images; "
                "use --features inception (features='inception')"
            )


def as_images(x):
    """`x` as float32 images `[n, h, w, c]`; square flat vectors become greyscale squares."""
    x = np.asarray(x, np.float32)
    if x.ndim == 2:
        side = int(round(np.sqrt(x.shape[1])))
        if side * side != x.shape[1]:
            raise TfvaeError(
                "flat examples must have a square number of features to be read as images. "
                f"Received: {x.shape[1]} features"
            )
        x = x.reshape((-1, side, side, 1))
    elif x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise TfvaeError(
            "expected images [n, height, width, channels] with 1 or 3 channels. "
            f"Received: shape {x.shape}"
        )
    if not np.all(np.isfinite(x)):
        raise TfvaeError("images contain NaN or Inf values")
    return x


def keras_cache_dir():
    """Where Keras keeps downloaded weights: `$KERAS_HOME/models`, by default `~/.keras/models`.

    As Keras decides it: `KERAS_HOME`, else `~/.keras`, else `/tmp/.keras`
    when the home directory is not writable.
    """
    home = os.environ.get("KERAS_HOME")
    if home is None:
        base = os.path.expanduser("~")
        home = os.path.join(base if os.access(base, os.W_OK) else "/tmp", ".keras")
    return os.path.join(home, "models")


def digit_metadata():
    """The shipped digit classifier's metadata (training data, test accuracy, layers), a dict."""
    return json.loads(_asset(DIGIT_METADATA).read_text(encoding="utf-8"))


def build_digit_classifier():
    """The digit classifier whose penultimate layer gives the `"mnist"` features.

    Two 3x3 convolutions (16 and 32 filters, each max-pooled), a 64-unit
    ReLU layer called `features`, and 10 logits: 57,226 parameters.
    `benchmarks/train_feature_classifier.py` trains it.
    """
    inputs = keras.Input((DIGIT_SIDE, DIGIT_SIDE, 1), name="image")
    x = keras.layers.Conv2D(16, 3, activation="relu", name="conv1")(inputs)
    x = keras.layers.MaxPooling2D(2, name="pool1")(x)
    x = keras.layers.Conv2D(32, 3, activation="relu", name="conv2")(x)
    x = keras.layers.MaxPooling2D(2, name="pool2")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dropout(0.25, name="dropout1")(x)
    features = keras.layers.Dense(DIGIT_FEATURE_DIM, activation="relu", name="features")(x)
    x = keras.layers.Dropout(0.25, name="dropout2")(features)
    logits = keras.layers.Dense(10, name="logits")(x)
    return keras.Model(inputs, logits, name="digit_classifier")


def to_digit_frame(images):
    """Greyscale digits `[n, h, w, 1]` as 28x28 MNIST frames, clipped to [0, 1].

    28x28 passes unchanged; 8x8 scikit-learn digits are scaled into the
    central 20x20 box, as MNIST's digits were. Other sizes and colour
    images are refused.
    """
    images = as_images(images)
    _, height, width, channels = images.shape
    if channels != 1:
        raise TfvaeError(
            "the 'mnist' features take greyscale digits, not colour images; use "
            f"--features inception (features='inception'). Received: shape {images.shape}"
        )
    # Decoders with a Gaussian likelihood may step a little outside [0, 1].
    images = np.clip(images, 0.0, 1.0)
    if (height, width) == (DIGIT_SIDE, DIGIT_SIDE):
        return images
    if (height, width) == (SKLEARN_DIGIT_SIDE, SKLEARN_DIGIT_SIDE):
        box = tf.image.resize(images, (DIGIT_BOX, DIGIT_BOX), method="bilinear").numpy()
        border = (DIGIT_SIDE - DIGIT_BOX) // 2
        return np.pad(np.clip(box, 0.0, 1.0), ((0, 0), (border, border), (border, border), (0, 0)))
    raise TfvaeError(
        "the 'mnist' features take 28x28 MNIST digits or 8x8 scikit-learn digits; use "
        f"--features inception (features='inception') for other images. Received: "
        f"{height}x{width} images"
    )


@functools.cache
def _digit_feature_model():
    classifier = build_digit_classifier()
    with importlib.resources.as_file(_asset(DIGIT_WEIGHTS)) as path:
        classifier.load_weights(path)
    return feature_layer(classifier)


def digit_class_probabilities(images, batch_size=EMBED_BATCH):
    """The shipped digit classifier's class probabilities of greyscale digits, `[n, 10]`.

    Images go through `to_digit_frame` first (28x28 as they are, 8x8
    scikit-learn digits scaled into the MNIST frame).
    """
    classifier = build_digit_classifier()
    with importlib.resources.as_file(_asset(DIGIT_WEIGHTS)) as path:
        classifier.load_weights(path)
    logits = _in_batches(classifier, to_digit_frame(images), batch_size)
    return np.asarray(tf.nn.softmax(logits, axis=-1))


def feature_layer(classifier):
    """The model from the digit classifier's input to its `features` layer."""
    return keras.Model(classifier.input, classifier.get_layer("features").output)


def digit_features():
    """The `"mnist"` `FeatureExtractor`: the shipped digit classifier's penultimate layer.

    Divided by the metadata's `feature_scale`, the root mean square of the
    features over the mnist5k training digits.
    """
    metadata = digit_metadata()
    model = _digit_feature_model()
    # Fixed units, so that x . y / d is about 1 in KID's kernel (x . y / d + 1)^3.
    scale = metadata["feature_scale"]

    def embed(images):
        return _in_batches(model, to_digit_frame(images), EMBED_BATCH) / scale

    return FeatureExtractor(
        name="mnist",
        description=(
            f"penultimate layer ({DIGIT_FEATURE_DIM} units) of the shipped mnist5k digit "
            f"classifier (test accuracy {metadata['test_accuracy']:.2%})"
        ),
        embed=embed,
        feature_dim=DIGIT_FEATURE_DIM,
        refused_datasets=NOT_DIGITS,
    )


def inception_weights_path():
    """The cached InceptionV3 weights; raises a one-line `TfvaeError` when they are absent."""
    path = os.path.join(keras_cache_dir(), INCEPTION_WEIGHTS)
    if not os.path.isfile(path):
        raise TfvaeError(
            f"the InceptionV3 weights are not in the Keras cache ({path}) and tfvae does not "
            'download them; on a machine with internet run `python -c "import keras; '
            'keras.applications.InceptionV3(include_top=False)"` and copy the file there, '
            "or use --features mnist"
        )
    return path


def inception_features():
    """The `"inception"` `FeatureExtractor`: InceptionV3's 2048-wide pool, ImageNet weights."""
    path = inception_weights_path()
    model = keras.applications.InceptionV3(
        include_top=False,
        weights=None,
        input_shape=(INCEPTION_SIDE, INCEPTION_SIDE, 3),
        pooling="avg",
    )
    model.load_weights(path)

    def embed(images):
        # Resized one batch at a time: 1,000 images at 299x299x3 would take 1 GB.
        def features(batch):
            batch = tf.image.resize(np.clip(batch, 0.0, 1.0), (INCEPTION_SIDE, INCEPTION_SIDE))
            if batch.shape[-1] == 1:
                batch = tf.repeat(batch, 3, axis=-1)
            # InceptionV3's preprocessing: [0, 1] to [-1, 1].
            return model(batch * 2.0 - 1.0, training=False)

        return np.concatenate(
            [
                np.asarray(features(images[i : i + INCEPTION_BATCH]))
                for i in range(0, len(images), INCEPTION_BATCH)
            ]
        )

    return FeatureExtractor(
        name="inception",
        description="InceptionV3 average pool (2048 units), ImageNet weights",
        embed=embed,
        feature_dim=INCEPTION_FEATURE_DIM,
    )


FEATURE_EXTRACTORS = {"mnist": digit_features, "inception": inception_features}


def feature_extractor(features):
    """The `FeatureExtractor` called `features` (`"mnist"` or `"inception"`), or a wrapped callable.

    Args:
        features: str, `FeatureExtractor` or callable
            `images [n, h, w, c] in [0, 1] -> [n, d]`.
    """
    if isinstance(features, FeatureExtractor):
        return features
    if isinstance(features, str):
        checks.choice("features", features, list(FEATURE_EXTRACTORS))
        return FEATURE_EXTRACTORS[features]()
    if callable(features):
        return FeatureExtractor(
            name=getattr(features, "__name__", "custom"),
            description="user-supplied features",
            embed=features,
        )
    raise TfvaeError(
        f"features must be one of {list(FEATURE_EXTRACTORS)} or a callable. "
        f"Received: features={features!r}"
    )


def _asset(name):
    return importlib.resources.files("tfvae.evaluation").joinpath("assets", name)


def _in_batches(model, x, batch_size):
    return np.concatenate(
        [
            np.asarray(model(x[i : i + batch_size], training=False))
            for i in range(0, len(x), batch_size)
        ]
    )
