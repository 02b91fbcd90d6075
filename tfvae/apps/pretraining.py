"""The autoencoder as pretraining: few-label classification with learned features.

An encoder trained without labels (an autoencoder's, or a VAE's posterior
mean) is used as a feature extractor for a classifier trained on a few
labels per class, and compared with the same network trained from scratch
on those labels, and with two classical unsupervised feature extractors:
PCA and a restricted Boltzmann machine.

Every method ends in the same head: the features standardized with the
unlabeled training split's mean and variance (a fixed `Normalization`
layer), then one `Dense` softmax layer, a multinomial logistic regression.
A linear head measures what the features hold rather than what a second
network could learn from them. Every training run is Adam for the same
number of steps (`steps`, whatever the number of labels) on the same
labeled examples, and is scored on the whole test split: at
`head_learning_rate` when only the head learns, at `learning_rate` when an
encoder learns with it. Fine-tuning first fits the head on the frozen codes
(linear probing, then fine-tuning), so that the encoder's first updates do
not follow a random head.

| method | features | trained on the labels |
|---|---|---|
| `frozen` | pretrained encoder's codes | head |
| `fine-tuned` | pretrained encoder's codes | head, then encoder and head |
| `scratch` | the same encoder, freshly initialized | encoder and head |
| `pca` | PCA with as many components as the code | head |
| `rbm` | an RBM's hidden probabilities (PCD on the training split) | head |
"""

import dataclasses
import math
import os
import time

import numpy as np

from tfvae.errors import TfvaeError
from tfvae.training.config import TrainConfig

METHODS = ("frozen", "fine-tuned", "scratch", "pca", "rbm")
METHOD_TITLES = {
    "frozen": "pretrained encoder, frozen",
    "fine-tuned": "pretrained encoder, fine-tuned",
    "scratch": "same network from scratch",
    "pca": "PCA features",
    "rbm": "RBM features",
}
DEFAULT_LABELS_PER_CLASS = (10, 50, 100)
PREDICT_BATCH = 1024
STEPS_PER_EXECUTION = 100


def _check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise TfvaeError(f"{name} must be a positive integer. Received: {name}={value!r}")


def _check_positive_number(name, value):
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise TfvaeError(f"{name} must be a positive number. Received: {name}={value!r}")


@dataclasses.dataclass
class PretrainConfig:
    """Settings of a pretraining comparison (`tfvae pretrain`).

    Args:
        run_dir: str or None. A run written by `tfvae train` whose encoder
            is the pretrained one (its data settings are used). `None`
            trains an autoencoder (`--model ae`, `latent_dim`,
            `pretrain_epochs`) on the unlabeled training split first.
            Defaults to `None`.
        dataset: str. The data set when `run_dir` is `None`. Defaults to
            `"mnist5k"`.
        labels_per_class: tuple of int. Labeled training examples per
            class. Defaults to `(10, 50, 100)`.
        repeats: int. Draws of the labeled examples per setting (seeds
            `seed`, `seed + 1`, ...); accuracies are averaged over them.
            Defaults to `3`.
        steps: int. Optimizer steps of supervised training, whatever the
            number of labels. Defaults to `1000`.
        batch_size: int. Batch size of supervised training. Defaults to
            `32`.
        learning_rate: float. Adam's step size when an encoder is trained
            with the head (`fine-tuned`, `scratch`). Defaults to `1e-3`.
        head_learning_rate: float. Adam's step size when the head alone is
            trained (`frozen`, `pca`, `rbm`): a linear model on fixed
            features reaches in 300 steps at 1e-2 the accuracy it needs
            3,000 for at 1e-3. Defaults to `1e-2`.
        pretrain_epochs: int. Epochs of the default autoencoder (no
            `run_dir`) and of the RBM. Defaults to `30`.
        latent_dim: int. Code size of the default autoencoder. Defaults to
            `16`.
        rbm_hidden: int. Hidden units of the RBM. Defaults to `256`.
        rbm_learning_rate: float. The RBM's SGD step size. Defaults to
            `0.05`.
        rbm_batch_size: int. The RBM's batch size and number of persistent
            chains. Defaults to `20`.
        seed: int. Seeds the label draws, initializations and shuffling.
            Defaults to `0`.
    """

    run_dir: str | None = None
    dataset: str = "mnist5k"
    labels_per_class: tuple = DEFAULT_LABELS_PER_CLASS
    repeats: int = 3
    steps: int = 1000
    batch_size: int = 32
    learning_rate: float = 1e-3
    head_learning_rate: float = 1e-2
    pretrain_epochs: int = 30
    latent_dim: int = 16
    rbm_hidden: int = 256
    rbm_learning_rate: float = 0.05
    rbm_batch_size: int = 20
    seed: int = 0

    def __post_init__(self):
        self.labels_per_class = tuple(self.labels_per_class)
        self.validate()

    def validate(self):
        """Raises `TfvaeError` naming the first invalid setting."""
        if not self.labels_per_class:
            raise TfvaeError("labels_per_class must name at least one number of labels")
        for n in self.labels_per_class:
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                raise TfvaeError(
                    "labels_per_class must hold positive integers. "
                    f"Received: labels_per_class={list(self.labels_per_class)}"
                )
        if len(set(self.labels_per_class)) != len(self.labels_per_class):
            raise TfvaeError(
                "labels_per_class must not repeat a number. "
                f"Received: labels_per_class={list(self.labels_per_class)}"
            )
        for name in (
            "repeats",
            "steps",
            "batch_size",
            "pretrain_epochs",
            "latent_dim",
            "rbm_hidden",
            "rbm_batch_size",
        ):
            _check_positive_int(name, getattr(self, name))
        _check_positive_number("learning_rate", self.learning_rate)
        _check_positive_number("head_learning_rate", self.head_learning_rate)
        _check_positive_number("rbm_learning_rate", self.rbm_learning_rate)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise TfvaeError(f"seed must be an integer >= 0. Received: seed={self.seed!r}")

    def to_dict(self):
        data = dataclasses.asdict(self)
        data["labels_per_class"] = list(self.labels_per_class)
        return data


@dataclasses.dataclass
class PretrainRow:
    """Test accuracies of one method at one number of labels per class."""

    method: str
    labels_per_class: int
    accuracies: list
    seeds: list

    @property
    def mean(self):
        return float(np.mean(self.accuracies))

    @property
    def std(self):
        return float(np.std(self.accuracies))

    def to_dict(self):
        return {**dataclasses.asdict(self), "mean": self.mean, "std": self.std}


@dataclasses.dataclass
class PretrainResult:
    """What `compare_pretraining` returns: the rows, the data and the features' provenance."""

    rows: list
    data: object
    encoder_source: str
    latent_dim: int
    seconds: float

    def row(self, method, labels_per_class):
        for r in self.rows:
            if r.method == method and r.labels_per_class == labels_per_class:
                return r
        raise KeyError((method, labels_per_class))


def draw_labeled_subset(y, labels_per_class, seed):
    """Indices of `labels_per_class` examples of each class of `y`, drawn without replacement.

    Stratified and reproducible: each class's examples are permuted by a
    generator seeded with `seed`, and the first `labels_per_class` kept.
    The indices come back sorted.

    Raises:
        TfvaeError: if a class has fewer than `labels_per_class` examples.
    """
    y = np.asarray(y)
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    if labels_per_class > counts.min():
        raise TfvaeError(
            f"labels_per_class={labels_per_class} is more than the training split holds: "
            f"class {classes[np.argmin(counts)]} has {counts.min()} examples"
        )
    picks = [rng.permutation(np.flatnonzero(y == c))[:labels_per_class] for c in classes]
    return np.sort(np.concatenate(picks))


def load_pretrained(config, verbose=0):
    """`(encoder, data, source)`: the pretrained encoder, its data, and where it came from.

    From `config.run_dir` when given (the run's own data settings), else an
    autoencoder trained here on the unlabeled training split.
    """
    from tfvae.training.trainer import prepare

    if config.run_dir is not None:
        from tfvae.training.runs import load_run

        train_config, model = load_run(config.run_dir)
        data = prepare(train_config)
        _check_labels(data, config)
        return model.encoder, data, f"run {config.run_dir}"
    train_config = TrainConfig(
        model="ae",
        dataset=config.dataset,
        latent_dim=config.latent_dim,
        epochs=config.pretrain_epochs,
        seed=config.seed,
    )
    data = prepare(train_config)
    _check_labels(data, config)
    model = _train_autoencoder(train_config, data, verbose)
    return (
        model.encoder,
        data,
        f"autoencoder (latent {config.latent_dim}, {config.pretrain_epochs} epochs) "
        "trained on the unlabeled training split",
    )


def _check_labels(data, config):
    if data.y_train is None or data.y_test is None:
        raise TfvaeError(f"{data.name} has no labels; the pretraining comparison needs them")
    for n in config.labels_per_class:
        draw_labeled_subset(data.y_train, n, config.seed)


def _train_autoencoder(train_config, data, verbose):
    from tfvae.training.trainer import build_compiled_model
    from tfvae.training.trainer import count_steps_per_epoch

    model = build_compiled_model(
        train_config,
        data.data_shape,
        count_steps_per_epoch(train_config, data),
        x_train=data.x_train,
    )
    model.fit(
        data.pipeline("train", train_config.batch_size, seed=train_config.seed),
        epochs=train_config.epochs,
        verbose=verbose,
        shuffle=False,  # the pipeline shuffles, seeded
    )
    return model


def _codes(encoder, x):
    """The encoder's codes of `x` (a VAE encoder's posterior means), float32."""
    outputs = [
        encoder(x[i : i + PREDICT_BATCH], training=False) for i in range(0, len(x), PREDICT_BATCH)
    ]
    if encoder.probabilistic:
        outputs = [mu for mu, _ in outputs]
    return np.concatenate([np.asarray(o, np.float32) for o in outputs])


def _clone(encoder, data_shape, fresh):
    """A copy of `encoder`: with its weights, or freshly initialized (`fresh=True`)."""
    import keras

    clone = keras.layers.deserialize(keras.layers.serialize(encoder))
    clone.build((None, *data_shape))
    if not fresh:
        clone.set_weights(encoder.get_weights())
    return clone


def _head(features_train, n_classes):
    """The shared head: fixed standardization with the training split's statistics, then softmax."""
    import keras

    return [
        keras.layers.Normalization(
            mean=features_train.mean(axis=0), variance=features_train.var(axis=0)
        ),
        keras.layers.Dense(n_classes, activation="softmax"),
    ]


def _classifier(input_shape, n_classes, features_train, encoder=None):
    """`input -> [encoder] -> head`; the encoder's codes are cast to float32."""
    import keras

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
    import keras
    import tensorflow as tf

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


def train_rbm(x_train, config, verbose=0):
    """An `RBM` with `config.rbm_hidden` units trained by PCD on `x_train` (values in [0, 1])."""
    import keras

    from tfvae.models.rbm import RBM

    x_train = np.asarray(x_train, np.float32).reshape(len(x_train), -1)
    rbm = RBM(config.rbm_hidden, chains=config.rbm_batch_size, seed=config.seed)
    rbm.compile(
        optimizer=keras.optimizers.SGD(config.rbm_learning_rate),
        steps_per_execution=math.ceil(len(x_train) / config.rbm_batch_size),
    )
    rbm.fit(
        x_train,
        epochs=config.pretrain_epochs,
        batch_size=config.rbm_batch_size,
        shuffle=True,
        verbose=verbose,
    )
    return rbm


def unsupervised_features(encoder, data, config, verbose=0):
    """`{method: (train features, test features)}` of the head-only methods.

    The pretrained encoder's codes, PCA with as many components as the
    code, and the hidden probabilities of an RBM trained on the training
    split. All fitted without labels.
    """
    import keras
    from sklearn.decomposition import PCA

    x_train = data.x_train.reshape(len(data.x_train), -1)
    x_test = data.x_test.reshape(len(data.x_test), -1)
    low, high = float(x_train.min()), float(x_train.max())
    if low < 0.0 or high > 1.0:
        raise TfvaeError(
            f"the RBM needs {data.name} data in [0, 1]. Received values in [{low:g}, {high:g}]"
        )
    latent_dim = int(encoder.latent_dim)
    if latent_dim > min(x_train.shape):
        raise TfvaeError(
            f"PCA cannot have {latent_dim} components (the code size) for data of "
            f"shape {x_train.shape}"
        )
    pca = PCA(n_components=latent_dim, svd_solver="full", random_state=config.seed).fit(x_train)
    keras.utils.set_random_seed(config.seed)
    rbm = train_rbm(x_train, config, verbose)
    return {
        "frozen": (_codes(encoder, data.x_train), _codes(encoder, data.x_test)),
        "pca": (
            pca.transform(x_train).astype(np.float32),
            pca.transform(x_test).astype(np.float32),
        ),
        "rbm": (rbm.transform(x_train), rbm.transform(x_test)),
    }


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
    import keras

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
    model = _classifier(data.data_shape, n_classes, _codes(network, data.x_train), network)
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


def compare_pretraining(config, methods=METHODS, progress=print, verbose=0):
    """Few-label test accuracy of each method, averaged over `config.repeats` label draws.

    Args:
        config: `PretrainConfig`.
        methods: sequence of str. Some of `METHODS`. Defaults to all.
        progress: callable taking a line of text, or None. Called once the
            unsupervised models are ready and after each method and
            number of labels. Defaults to `print`.
        verbose: Keras `fit` verbosity of the unsupervised training.
            Defaults to `0`.

    Returns:
        A `PretrainResult`.
    """
    config.validate()
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise TfvaeError(f"unknown methods {unknown}; expected some of {list(METHODS)}")
    start = time.perf_counter()
    encoder, data, source = load_pretrained(config, verbose)
    features = unsupervised_features(encoder, data, config, verbose)
    if progress:
        progress(
            f"features ready: {source}; PCA {encoder.latent_dim}; RBM {config.rbm_hidden} "
            f"hidden ({time.perf_counter() - start:.0f} s)"
        )
    seeds = [config.seed + r for r in range(config.repeats)]
    rows = []
    for n in config.labels_per_class:
        draws = [draw_labeled_subset(data.y_train, n, s) for s in seeds]
        for method in methods:
            began = time.perf_counter()
            accuracies = [
                evaluate_method(method, encoder, features, data, config, labeled, s)
                for labeled, s in zip(draws, seeds, strict=True)
            ]
            rows.append(PretrainRow(method, n, accuracies, seeds))
            if progress:
                progress(
                    f"{n:4d} labels/class  {method:<10}  accuracy {rows[-1].mean:.4f} "
                    f"± {rows[-1].std:.4f}  ({time.perf_counter() - began:.0f} s)"
                )
    return PretrainResult(
        rows=rows,
        data=data,
        encoder_source=source,
        latent_dim=int(encoder.latent_dim),
        seconds=time.perf_counter() - start,
    )


def format_table(result):
    """The accuracy table: a row per method, a column per number of labels per class."""
    labels = sorted({r.labels_per_class for r in result.rows})
    methods = list(dict.fromkeys(r.method for r in result.rows))
    width = max(len(METHOD_TITLES[m]) for m in methods)
    header = f"{'test accuracy (mean ± std)':<{width}}" + "".join(
        f"  {f'{n} labels/class':>17}" for n in labels
    )
    lines = [header]
    for method in methods:
        cells = [result.row(method, n) for n in labels]
        lines.append(
            f"{METHOD_TITLES[method]:<{width}}"
            + "".join(f"  {f'{c.mean:.4f} ± {c.std:.4f}':>17}" for c in cells)
        )
    return "\n".join(lines)


def write_csv(result, path):
    """One line per method, labels per class and label draw: `accuracy.csv`."""
    import csv

    tmp = os.path.join(os.path.dirname(os.path.abspath(path)), f".tmp-{os.path.basename(path)}")
    with open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["method", "labels_per_class", "label_seed", "accuracy"])
        for row in result.rows:
            for seed, accuracy in zip(row.seeds, row.accuracies, strict=True):
                writer.writerow([row.method, row.labels_per_class, seed, f"{accuracy:.6f}"])
    os.replace(tmp, path)
