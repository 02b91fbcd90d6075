"""The supervised side: one classifier per method, trained on a few labels, scored on the test split."""

import keras
import numpy as np
import tensorflow as tf

from tfvae.apps.pretraining.config import METHODS
from tfvae.apps.pretraining.features import PREDICT_BATCH
from tfvae.apps.pretraining.features import codes
from tfvae.errors import TfvaeError

STEPS_PER_EXECUTION = 100


def _clone(encoder, data_shape, fresh):
    """A copy of `encoder`: with its weights, or freshly initialized (`fresh=True`)."""
    clone = keras.layers.deserialize(keras.layers.serialize(encoder))
    clone.build((None, *data_shape))
    if not fresh:
        clone.set_weights(encoder.get_weights())
    return clone


def _head(features_train, n_classes):
    """The shared head: fixed standardization with the training split's statistics, then softmax."""
    return [
        keras.layers.Normalization(
            mean=features_train.mean(axis=0), variance=features_train.var(axis=0)
        ),
        keras.layers.Dense(n_classes, activation="softmax"),
    ]


def _classifier(input_shape, n_classes, features_train, encoder=None):
    """`input -> [encoder] -> head`; the encoder's codes are cast to float32."""
    inputs = keras.Input(input_shape)
    h = inputs
    if encoder is not None:
        h = encoder(h)
        if encoder.probabilistic:
            h = h[0]
        h = keras.ops.cast(h, "float32")
    for layer in _head(features_train, n_classes):
        h = layer(h)
    return keras.Model(inputs, h)


def _fit(model, learning_rate, config, x_train, y_train, seed):
    """Trains `model` with Adam for `config.steps` steps on the labeled examples."""
    # A fixed number of steps, not epochs: 10 and 100 labels per class get
    # the same optimization budget. One repeated, reshuffled stream of
    # batches and one `fit` epoch keep Keras's per-epoch overhead out.
    batches = (
        tf.data.Dataset.from_tensor_slices((x_train, y_train))
        .shuffle(len(x_train), seed=seed, reshuffle_each_iteration=True)
        .repeat()
        .batch(config.batch_size)
    )
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="sparse_categorical_crossentropy",
        steps_per_execution=min(config.steps, STEPS_PER_EXECUTION),
    )
    model.fit(batches, epochs=1, steps_per_epoch=config.steps, shuffle=False, verbose=0)


def _accuracy(model, x, y):
    predictions = np.concatenate(
        [
            np.argmax(model(x[i : i + PREDICT_BATCH], training=False), axis=-1)
            for i in range(0, len(x), PREDICT_BATCH)
        ]
    )
    return float(np.mean(predictions == y))


def evaluate_method(method, encoder, features, data, config, labeled, seed):
    """Test accuracy of `method` trained on the examples `labeled` of the training split.

    Args:
        method: str. One of `METHODS`.
        encoder: the pretrained `Encoder` (copied, never changed).
        features: dict. `unsupervised_features`' result; only the
            head-only methods read it.
        data: `DataSplits` with labels.
        config: `PretrainConfig`.
        labeled: int array. Indices into the training split.
        seed: int. Seeds the head's (and a fresh encoder's) initialization
            and the batch order.
    """
    keras.utils.set_random_seed(seed)
    n_classes = int(max(data.y_train.max(), data.y_test.max())) + 1
    y_train = data.y_train[labeled]
    if method in features:
        train, test = features[method]
        model = _classifier(train.shape[1:], n_classes, train)
        _fit(model, config.head_learning_rate, config, train[labeled], y_train, seed)
        return _accuracy(model, test, data.y_test)
    if method not in ("fine-tuned", "scratch"):
        raise TfvaeError(f"unknown method {method!r}; expected one of {list(METHODS)}")
    network = _clone(encoder, data.data_shape, fresh=method == "scratch")
    model = _classifier(data.data_shape, n_classes, codes(network, data.x_train), network)
    x_labeled = data.x_train[labeled]
    if method == "fine-tuned":
        # Fit the head on the frozen codes first (linear probing, then
        # fine-tuning): the encoder's first updates then follow a trained
        # head, not a random one that would scramble the pretrained features.
        network.trainable = False
        _fit(model, config.head_learning_rate, config, x_labeled, y_train, seed)
        network.trainable = True
    _fit(model, config.learning_rate, config, x_labeled, y_train, seed)
    return _accuracy(model, data.x_test, data.y_test)
