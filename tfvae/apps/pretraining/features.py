"""The unsupervised side: the pretrained encoder and its data, label draws, PCA and RBM features."""

import math

import keras
import numpy as np
from sklearn.decomposition import PCA

from tfvae.errors import TfvaeError
from tfvae.models.rbm import RBM
from tfvae.training.recipe import fit_model
from tfvae.training.runs import check_run_data
from tfvae.training.runs import load_run
from tfvae.training.trainer import prepare

PREDICT_BATCH = 1024


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
    autoencoder trained here on the unlabeled training split (as
    `tfvae train --model ae` would train it).
    """
    if config.run_dir is not None:
        train_config, model = load_run(config.run_dir)
        data = prepare(train_config)
        check_run_data(config.run_dir, train_config, model, data)
        _check_labels(data, config)
        return model.encoder, data, f"run {config.run_dir}"
    train_config = config.autoencoder_config()
    data = prepare(train_config)
    _check_labels(data, config)
    model, _ = fit_model(train_config, data, validation=False, verbose=verbose)
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


def codes(encoder, x):
    """The encoder's codes of `x` (a probabilistic encoder's posterior means), float32."""
    outputs = [
        encoder(x[i : i + PREDICT_BATCH], training=False) for i in range(0, len(x), PREDICT_BATCH)
    ]
    if encoder.probabilistic:
        outputs = [mu for mu, _ in outputs]
    return np.concatenate([np.asarray(o, np.float32) for o in outputs])


def train_rbm(x_train, config, verbose=0):
    """An `RBM` with `config.rbm_hidden` units trained by PCD on `x_train` (values in [0, 1])."""
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
        "frozen": (codes(encoder, data.x_train), codes(encoder, data.x_test)),
        "pca": (
            pca.transform(x_train).astype(np.float32),
            pca.transform(x_test).astype(np.float32),
        ),
        "rbm": (rbm.transform(x_train), rbm.transform(x_test)),
    }
