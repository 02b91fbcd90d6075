"""`train_prior(run_dir, config)`: the second stage of a VQ-VAE, a learned prior over its codes.

The run's model encodes its training, validation and test splits to code
maps; a `CodePrior` is fitted to the training maps and measured on the
test maps (negative log-likelihood in bits per position of the map). The
run then holds it:

    model.keras       the VQ-VAE with its prior (replaced atomically)
    prior/            config.json (the prior's settings), history.json,
                      metrics.json, samples.png, codebook_usage.png

`prior/` appears complete or not at all; a run has one prior (delete
`prior/` to train another).
"""

import dataclasses
import math
import os

import keras
import numpy as np

from tfvae import settings
from tfvae.errors import TfvaeError
from tfvae.evaluation.figures import write_codebook_figures
from tfvae.io.atomic import staged_dir
from tfvae.io.atomic import write_json
from tfvae.io.locks import claim_dir
from tfvae.io.model_files import save_model_file
from tfvae.models import registry
from tfvae.models.code_prior import CodePrior
from tfvae.training import runs
from tfvae.training.recipe import enable_determinism

PRIOR_DIR = "prior"
PRIOR_FILES = ("config.json", "history.json", "metrics.json", "samples.png", "codebook_usage.png")
ENCODE_BATCH = 500
SPLITS = ("train", "val", "test")


@dataclasses.dataclass
class PriorConfig:
    """The settings of a code prior and of its training (`tfvae train-prior`'s flags).

    Example:

    >>> config = PriorConfig(epochs=20, num_layers=3)
    """

    epochs: int = settings.setting(30, "Passes over the training code maps.", minimum=1)
    batch_size: int = settings.setting(128, "Code maps per training step.", minimum=1)
    learning_rate: float = settings.setting(
        1e-3, "Adam's step size.", minimum=0, exclusive_minimum=True
    )
    embed_dim: int = settings.setting(64, "Width of the prior's Transformer.", minimum=1)
    num_heads: int = settings.setting(4, "Attention heads of each block.", minimum=1)
    num_layers: int = settings.setting(2, "Transformer blocks.", minimum=1)
    dropout: float = settings.setting(
        0.1, "Dropout rate in training.", minimum=0, maximum=1, exclusive_maximum=True
    )
    seed: int = settings.setting(0, "Seeds the prior's weights and data order.", minimum=0)
    deterministic: bool = settings.setting(
        False, "Bitwise reproducible training: TensorFlow's op determinism for the process."
    )

    def __post_init__(self):
        self.validate()

    def validate(self):
        settings.check_fields(self)
        if self.num_heads > self.embed_dim:
            raise TfvaeError(
                "num_heads must not exceed embed_dim (each head needs at least one unit). "
                f"Received: num_heads={self.num_heads} with embed_dim={self.embed_dim}"
            )

    def to_dict(self):
        return dataclasses.asdict(self)


@dataclasses.dataclass
class PriorResult:
    """What `train_prior` returns: the run, its model with the prior, and what was measured."""

    run_dir: str
    model: object
    history: dict
    metrics: dict


def check_prior_target(run_dir):
    """Raises `TfvaeError` unless a prior can be trained for the run `run_dir`; writes nothing.

    Returns:
        `(run config, model)` of the run.
    """
    run_config, model = runs.load_run(run_dir)
    family = registry.family_of(model)
    if not family.can("codebook"):
        raise TfvaeError(
            f"tfvae train-prior learns a prior over the codes of a VQ-VAE; run {run_dir} holds "
            f"a {family.name} model ({family.description}). Train one with "
            "tfvae train --model vqvae"
        )
    _check_no_prior(os.path.join(run_dir, PRIOR_DIR))
    return run_config, model


def _check_no_prior(prior_dir):
    if os.path.lexists(prior_dir):
        raise TfvaeError(
            f"{prior_dir} already exists: the run has a prior; delete {prior_dir} to train another"
        )


def encode_all(model, x, batch_size=ENCODE_BATCH):
    """The code maps of `x`, int32 `[n, positions]`."""
    return np.concatenate(
        [np.asarray(model.encode(x[i : i + batch_size])) for i in range(0, len(x), batch_size)]
    ).astype(np.int32)


def fit_prior(model, codes_train, codes_val, config, verbose="auto"):
    """A `CodePrior` for `model`'s codes, fitted to `codes_train`; returns `(prior, history)`."""
    if config.deterministic:
        enable_determinism()
    keras.utils.set_random_seed(config.seed)
    prior = CodePrior(
        model.codebook_size,
        model.latent_dim,
        embed_dim=config.embed_dim,
        num_heads=config.num_heads,
        num_layers=config.num_layers,
        dropout=config.dropout,
        name="code_prior",
    )
    prior.build((None, model.latent_dim))
    steps = math.ceil(len(codes_train) / config.batch_size) * config.epochs
    prior.compile(
        optimizer=keras.optimizers.Adam(
            keras.optimizers.schedules.CosineDecay(config.learning_rate, steps)
        ),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    validation = (codes_val, codes_val) if len(codes_val) else None
    history = prior.fit(
        codes_train,
        codes_train,
        validation_data=validation,
        epochs=config.epochs,
        batch_size=config.batch_size,
        shuffle=True,
        verbose=verbose,
    )
    # Keras reports nats per position; the bits are what is compared.
    curves = {
        f"{name}_bits_per_dim": [float(v) / math.log(2.0) for v in values]
        for name, values in history.history.items()
    }
    # An uncompiled copy: a compiled sub-model would save its optimizer's
    # state into the VQ-VAE's `.keras` file, where loading cannot place it.
    trained = CodePrior.from_config(prior.get_config())
    trained.build((None, model.latent_dim))
    trained.set_weights(prior.get_weights())
    return trained, curves


def prior_bits_per_dim(prior, codes, batch_size=ENCODE_BATCH):
    """The mean of `-log2 p(codes)` per position, over the code maps `codes`."""
    return float(
        np.mean(
            np.concatenate(
                [
                    np.asarray(prior.bits_per_dim(codes[i : i + batch_size]))
                    for i in range(0, len(codes), batch_size)
                ]
            )
        )
    )


def train_prior(run_dir, config=None, verbose="auto"):
    """Trains a code prior for the VQ-VAE of `run_dir` and stores it in the run.

    Args:
        run_dir: str. A run directory of `tfvae train --model vqvae`.
        config: `PriorConfig` or None. Defaults to `PriorConfig()`.
        verbose: Keras `fit` verbosity. Defaults to `"auto"`.

    Returns:
        A `PriorResult`; its `metrics` hold `test_bits_per_dim` (the test
        code maps' negative log2-likelihood per position),
        `uniform_bits_per_dim` (`log2` of the codebook size, what a prior
        that knows nothing pays) and the sizes.
    """
    config = PriorConfig() if config is None else config
    config.validate()
    run_config, model = check_prior_target(run_dir)
    prior_dir = os.path.join(run_dir, PRIOR_DIR)
    with claim_dir(prior_dir, check=_check_no_prior, flag="RUN_DIR"):
        data = runs.load_run_data(run_dir, run_config, model)
        codes = {split: encode_all(model, data.arrays(split)[0]) for split in SPLITS}
        prior, history = fit_prior(model, codes["train"], codes["val"], config, verbose)
        metrics = {
            "test_bits_per_dim": prior_bits_per_dim(prior, codes["test"]),
            "train_bits_per_dim": prior_bits_per_dim(prior, codes["train"]),
            "uniform_bits_per_dim": math.log2(model.codebook_size),
            "positions": int(model.latent_dim),
            "grid_shape": list(model.grid_shape),
            "codebook_size": int(model.codebook_size),
            "test_examples": int(len(codes["test"])),
        }
        with_prior = model.with_prior(prior)
        with staged_dir(prior_dir) as staging:
            write_json(os.path.join(staging, "config.json"), config.to_dict())
            write_json(os.path.join(staging, "history.json"), history)
            write_json(os.path.join(staging, "metrics.json"), metrics)
            seeded = dataclasses.replace(run_config, seed=config.seed)
            write_codebook_figures(with_prior, seeded, data.arrays("test")[0], staging)
            save_model_file(with_prior, os.path.join(run_dir, runs.MODEL_FILE))
    return PriorResult(run_dir=run_dir, model=with_prior, history=history, metrics=metrics)


def format_prior_metrics(metrics):
    """Human-readable report of `train_prior`'s metrics."""
    return "\n".join(
        [
            f"code map: {metrics['grid_shape'][0]}x{metrics['grid_shape'][1]} positions, "
            f"{metrics['codebook_size']} codes",
            f"test NLL of the codes: {metrics['test_bits_per_dim']:.4f} bits/dim "
            f"(train {metrics['train_bits_per_dim']:.4f}; a uniform prior: "
            f"{metrics['uniform_bits_per_dim']:.4f})",
        ]
    )
