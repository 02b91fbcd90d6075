"""What a run shows in TensorBoard besides Keras's scalars: images, the projector, hparams.

A run's `logs/` (a trial's `logs/<trial>/execution0/` in a search) holds
one TensorBoard run per directory:

    train/, validation/   Keras's `TensorBoard` callback: `epoch_<metric>` scalars
    images/               `ImageSummaries`: pictures of the model after every epoch
    projector/            `write_projector`: the test set's latent codes, with
                          `projector_config.pbtxt`, the checkpoint of the
                          `embedding` variable, `metadata.tsv` and `sprite.png`

and a search's `logs/` root holds the hparams experiment
(`write_hparams_config`) that TensorBoard's HParams tab compares the trials
with. The pictures are chosen by what the model's family declares
(`tfvae.models.registry`), as the run's PNG figures are.
"""

import math
import os

import keras
import numpy as np
import tensorflow as tf
from google.protobuf import text_format
from tensorboard.plugins import projector

from tfvae.evaluation import latent_pictures
from tfvae.io.atomic import write_bytes
from tfvae.io.atomic import write_text
from tfvae.models.registry import family_of
from tfvae.models.registry import with_labels

IMAGES_RUN = "images"
PROJECTOR_RUN = "projector"
# A fixed handful of test examples, so that an epoch's pictures cost little.
PICTURED_EXAMPLES = 8
PRIOR_SAMPLES = 16
MANIFOLD_SIDE = 10
PROJECTED_EXAMPLES = 10_000
# TensorBoard's projector refuses sprites larger than this on a side.
MAX_SPRITE_PIXELS = 8192
EMBEDDING_TENSOR = "embedding/.ATTRIBUTES/VARIABLE_VALUE"
EMBEDDING_CHECKPOINT = "embedding.ckpt"
METADATA_FILE = "metadata.tsv"
SPRITE_FILE = "sprite.png"
CODE_BATCH = 1024
# Grey between pictures in a grid: visible on white and on black backgrounds.
GAP_VALUE = 0.5


def picture_shape(data_shape):
    """`(height, width, channels)` of one example drawn as a picture, or `None`.

    Images (`[H, W]`, or `[H, W, C]` with 1, 3 or 4 channels) are drawn as
    they are; a flat vector whose length is a square number as a square
    grey picture (64 features as 8 x 8); other data has no picture.
    """
    data_shape = tuple(int(d) for d in data_shape)
    if len(data_shape) == 3 and data_shape[-1] in (1, 3, 4):
        return data_shape
    if len(data_shape) == 2:
        return (*data_shape, 1)
    if len(data_shape) == 1:
        side = math.isqrt(data_shape[0])
        if side * side == data_shape[0]:
            return (side, side, 1)
    return None


def tensorboard_callbacks(config, data, log_dir):
    """The callbacks that write a run's TensorBoard logs into `log_dir`.

    Keras's `TensorBoard` (scalars in `train/` and `validation/`) and
    `ImageSummaries` (pictures in `images/`).

    Args:
        config: `TrainConfig`. Its seed fixes the prior samples.
        data: `DataSplits`. The pictures show its test split.
        log_dir: str. The run's `logs/` directory.
    """
    return [
        keras.callbacks.TensorBoard(log_dir=log_dir),
        ImageSummaries(os.path.join(log_dir, IMAGES_RUN), data, seed=config.seed),
    ]


class ImageSummaries(keras.callbacks.Callback):
    """Writes pictures of the model at the end of every epoch, for TensorBoard's Images tab.

    Each epoch adds one picture per tag, at step `epoch` (as Keras's
    `epoch_*` scalars):

    - `reconstructions`: 8 fixed test examples above their reconstructions;
    - `samples` (families with a prior): 16 decoded draws of fixed noise;
    - `manifold` (a prior and a 2-D latent space): the decoded 10 x 10 grid
      of prior quantiles;
    - `denoising` (denoising families): fixed noisy inputs, their denoised
      outputs and the clean originals.

    The model must be of a registered family (`tfvae.models.registry`).
    Data without a picture shape (see `picture_shape`) writes nothing. The
    pictures are computed on the CPU by calling the model directly, outside
    any `tf.distribute` machinery. Data in [0, 1] is drawn as it is; other
    data is scaled by the training split's range.

    Args:
        log_dir: str. The directory of the event file, a TensorBoard run of
            its own (`logs/images`).
        data: `DataSplits`. The pictured examples are evenly spaced over
            its test split.
        seed: int. Fixes the prior noise and the denoising noise. Defaults
            to `0`.

    Example:

    >>> model.fit(x, epochs=2, callbacks=[ImageSummaries("logs/images", data)])
    """

    def __init__(self, log_dir, data, seed=0):
        super().__init__()
        x_test, y_test = data.arrays("test")
        # === Config ===
        self.log_dir = log_dir
        self.seed = seed
        self.shape = picture_shape(data.data_shape)
        step = max(1, len(x_test) // PICTURED_EXAMPLES)
        self.examples = np.asarray(x_test[::step][:PICTURED_EXAMPLES], np.float32)
        # Their labels, for a model that takes labels with its inputs.
        self.labels = None if y_test is None else np.asarray(y_test[::step][:PICTURED_EXAMPLES])
        self.value_range = _display_range(data.x_train)
        self._prior_noise = None
        self._manifold = False
        self._noisy = None
        self._writer = None

    def on_train_begin(self, logs=None):
        if self.shape is None:
            return
        family = family_of(self.model)
        if family.can("prior"):
            self._prior_noise = (
                np.random.default_rng(self.seed)
                .standard_normal((PRIOR_SAMPLES, self.model.latent_dim))
                .astype(np.float32)
            )
        self._manifold = family.can("prior") and self.model.latent_dim == 2
        if family.can("denoising"):
            self._noisy = _numpy(self.model.add_noise(self.examples, seed=self.seed))
        self._writer = tf.summary.create_file_writer(self.log_dir)

    def on_epoch_end(self, epoch, logs=None):
        if self._writer is None:
            return
        with tf.device("/CPU:0"), self._writer.as_default(step=epoch):
            for tag, rows in self.pictures().items():
                tf.summary.image(tag, self._grid(rows)[None], max_outputs=1)
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def pictures(self):
        """`{tag: rows}` of the current model: each row an array `[n, *data_shape]`."""
        model = self.model
        reconstructions = _numpy(model(with_labels(model, self.examples, self.labels)))
        pictures = {"reconstructions": [self.examples, reconstructions]}
        if self._prior_noise is not None:
            samples = _numpy(model.sample(None, eps=self._prior_noise))
            half = PRIOR_SAMPLES // 2
            pictures["samples"] = [samples[:half], samples[half:]]
        if self._manifold:
            images, _ = latent_pictures.manifold_grid(model, n=MANIFOLD_SIDE)
            pictures["manifold"] = list(images)
        if self._noisy is not None:
            pictures["denoising"] = [self._noisy, _numpy(model(self._noisy)), self.examples]
        return pictures

    def _grid(self, rows):
        """One `[H', W', C]` float picture in [0, 1] of rows of examples, one pixel apart."""
        height, width, channels = self.shape
        columns = max(len(row) for row in rows)
        grid = np.full(
            (len(rows) * (height + 1) - 1, columns * (width + 1) - 1, channels),
            GAP_VALUE,
            np.float32,
        )
        for i, row in enumerate(rows):
            for j, example in enumerate(self._as_pictures(row)):
                top, left = i * (height + 1), j * (width + 1)
                grid[top : top + height, left : left + width] = example
        return grid

    def _as_pictures(self, x):
        low, high = self.value_range
        pictures = (np.asarray(x, np.float32).reshape(-1, *self.shape) - low) / (high - low)
        return np.clip(pictures, 0.0, 1.0)


def write_projector(model, data, log_dir):
    """Writes the embedding projector of the test set's latent codes into `log_dir/projector`.

    The codes are the model's `latent_code(x)` (the posterior means of a
    VAE) of the first test examples (at most 10,000, fewer for large
    pictures). The directory becomes a TensorBoard run of its own holding
    the checkpoint of a variable `embedding`, `projector_config.pbtxt`,
    `metadata.tsv` (one label per line, with a header `label	class` when
    the labels have names; no file without labels), `sprite.png` (the
    examples as pictures; none for data without a picture shape) and a
    text summary saying what the points are.

    Args:
        model: a trained model of a registered family.
        data: `DataSplits`.
        log_dir: str. The run's `logs/` directory.

    Returns:
        The projector's directory.
    """
    family = family_of(model)
    x_test, y_test = data.arrays("test")
    shape = picture_shape(data.data_shape)
    count = min(len(x_test), PROJECTED_EXAMPLES)
    if shape is not None:
        per_side = MAX_SPRITE_PIXELS // max(shape[:2])
        count = min(count, per_side * per_side)
    x = np.asarray(x_test[:count], np.float32)
    y = None if y_test is None else y_test[:count]
    codes = np.concatenate(
        [
            _numpy(
                model.latent_code(
                    with_labels(
                        model, x[i : i + CODE_BATCH], None if y is None else y[i : i + CODE_BATCH]
                    )
                )
            )
            for i in range(0, count, CODE_BATCH)
        ]
    )
    directory = os.path.join(log_dir, PROJECTOR_RUN)
    os.makedirs(directory, exist_ok=True)
    tf.train.Checkpoint(embedding=tf.Variable(codes, name="embedding")).save(
        os.path.join(directory, EMBEDDING_CHECKPOINT)
    )
    config = projector.ProjectorConfig()
    embedding = config.embeddings.add()
    embedding.tensor_name = EMBEDDING_TENSOR
    what = "posterior means" if family.can("prior") else "codes"
    if y_test is not None:
        write_text(
            os.path.join(directory, METADATA_FILE), _metadata(y_test[:count], data.class_names)
        )
        embedding.metadata_path = METADATA_FILE
    if shape is not None:
        low, high = _display_range(data.x_train)
        pictures = np.clip((x.reshape(-1, *shape) - low) / (high - low), 0.0, 1.0)
        write_bytes(os.path.join(directory, SPRITE_FILE), _sprite_png(pictures))
        embedding.sprite.image_path = SPRITE_FILE
        embedding.sprite.single_image_dim.extend([shape[1], shape[0]])
    write_text(
        os.path.join(directory, projector.metadata.PROJECTOR_FILENAME),
        text_format.MessageToString(config),
    )
    # A directory is a TensorBoard run only when it holds an event file.
    writer = tf.summary.create_file_writer(directory)
    with writer.as_default(step=0):
        tf.summary.text(
            PROJECTOR_RUN,
            f"Latent {what} ({codes.shape[1]} dimensions) of the first {count} test "
            f"examples of {data.name}"
            + (", labelled" if y_test is not None else "")
            + ("; sprite: the examples" if shape is not None else ""),
        )
    writer.close()
    return directory


def write_hparams_config(log_dir, hparams, metrics):
    """Writes the hparams experiment of a search at its logs root, for TensorBoard's HParams tab.

    Each trial's own log directory holds its choices (Keras Tuner writes
    them with the hparams plugin's Keras callback) and Keras's
    `epoch_<metric>` scalars in `train/` and `validation/`; this declares
    the searched settings and those metrics, so the tab lists every trial
    with its choices and its last epoch's metrics.

    Args:
        log_dir: str. The search's `logs/` directory.
        hparams: dict. `{name: the values searched}` (see
            `HyperAutoencoder.search_space`).
        metrics: sequence of str. The names `fit` reports (the model
            family's `metrics`), without their `val_` twins.
    """
    from tensorboard.plugins.hparams import api as hp

    declared = [hp.HParam(name, hp.Discrete(list(values))) for name, values in hparams.items()]
    measured = [
        hp.Metric(f"epoch_{name}", group=group, display_name=f"{prefix}{name}")
        for name in metrics
        for group, prefix in (("validation", "val_"), ("train", ""))
    ]
    writer = tf.summary.create_file_writer(log_dir)
    with writer.as_default():
        hp.hparams_config(hparams=declared, metrics=measured)
    writer.close()


def _numpy(tensor):
    """A float32 NumPy array (networks may compute in bfloat16 or float16)."""
    return np.asarray(keras.ops.convert_to_numpy(tensor)).astype(np.float32)


def _display_range(x_train):
    """`(low, high)` mapped to black and white: `(0, 1)`, widened to the data's range."""
    return min(0.0, float(np.min(x_train))), max(1.0, float(np.max(x_train)))


def _metadata(labels, class_names):
    labels = np.asarray(labels).reshape(len(labels), -1)[:, 0]
    if class_names is None:
        # A single column has no header line.
        return "".join(f"{label}\n" for label in labels)
    # A tab or a line break in a name would shift the columns.
    names = [" ".join(str(name).split()) for name in class_names]
    rows = [f"{int(label)}\t{names[int(label)]}" for label in labels]
    return "label\tclass\n" + "".join(f"{row}\n" for row in rows)


def _sprite_png(pictures):
    """The PNG of `pictures` `[n, H, W, C]` in [0, 1] tiled row by row in a square grid."""
    count, height, width, channels = pictures.shape
    side = math.ceil(math.sqrt(count))
    sprite = np.zeros((side * height, side * width, channels), np.uint8)
    for index, picture in enumerate(np.round(pictures * 255).astype(np.uint8)):
        top, left = (index // side) * height, (index % side) * width
        sprite[top : top + height, left : left + width] = picture
    return tf.io.encode_png(sprite).numpy()
