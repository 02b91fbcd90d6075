"""`TrainConfig`: everything that defines a training run, with a JSON round trip."""

import dataclasses
import json
import math
import os

from tfvae.data.datasets import BUILTIN_DATASETS
from tfvae.data.datasets import is_array_file
from tfvae.errors import TfvaeError
from tfvae.training.distribute import STRATEGIES
from tfvae.training.precision import PRECISIONS

MODEL_NAMES = ("ae", "vae", "dae")
ARCH_NAMES = ("dense", "conv")
LIKELIHOOD_NAMES = ("auto", "bernoulli", "gaussian")
LR_SCHEDULES = ("cosine", "constant")


def _check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise TfvaeError(f"{name} must be a positive integer. Received: {name}={value!r}")


def _check_choice(name, value, allowed):
    if value not in allowed:
        raise TfvaeError(f"unknown {name} {value!r}; expected one of {list(allowed)}")


@dataclasses.dataclass
class TrainConfig:
    """A training run's settings; saved as `config.json` next to the model.

    Args:
        model: str. `"vae"`, `"ae"` or `"dae"` (denoising autoencoder).
            Defaults to `"vae"`.
        dataset: str. A bundled or TFDS name (`digits`, `mnist5k`, `mnist`,
            `fashion_mnist`) or the path of a `.npz` / `.npy` file.
            Defaults to `"mnist5k"`.
        arch: str. `"dense"` or `"conv"`. Defaults to `"dense"`.
        latent_dim: int. Size of `z`. Defaults to `16`.
        hidden_units: tuple of int. Hidden dense widths. Defaults to `(512,)`.
        filters: tuple of int. Conv filters (conv arch). Defaults to `(32, 64)`.
        epochs: int. Defaults to `50`.
        batch_size: int. Defaults to `128`.
        beta: float. KL weight (VAE). Defaults to `1.0`.
        learning_rate: float. Adam's (peak) step size. Defaults to `3e-3`.
        lr_schedule: str. `"cosine"` decays the step size to 0 over the
            run; `"constant"` keeps it. Defaults to `"cosine"`.
        weight_decay: float. Decoupled weight decay (AdamW); `0` is plain
            Adam. Defaults to `0.05`.
        likelihood: str. `"bernoulli"`, `"gaussian"`, or `"auto"`: Bernoulli
            for binarized data, Gaussian otherwise. Defaults to `"auto"`.
        binarize: bool or None. Threshold pixels at 0.5. `None` means yes
            for the VAE, no for the AE. Defaults to `None`.
        validation_fraction: float. Share of the training split held out
            for validation (user files and `digits`). Defaults to `0.1`.
        seed: int. Seeds weights, shuffling and the VAE's noise. Defaults
            to `0`.
        iwae_samples: int. Train the VAE on the importance-weighted bound
            with this many samples; `1` is the ELBO. Defaults to `1`.
        kl_warmup_epochs: int. Ramp the KL weight from 0 to `beta` over
            this many epochs. Defaults to `0`.
        noise_factor: float. Standard deviation of the Gaussian noise the
            denoising autoencoder adds to its inputs in training (`dae`
            only). Defaults to `0.2`.
        precision: str. `"float32"`, `"mixed_bfloat16"`,
            `"mixed_float16"` or `"auto"` (see `tfvae.training.precision`). Defaults
            to `"auto"`.
        jit_compile: bool. Compile train steps with XLA. Defaults to
            `False` (on CPU, XLA's matrix products are slower than oneDNN's).
        steps_per_execution: int. Train steps per call into the compiled
            graph; larger values remove per-step Python overhead. Defaults
            to `32`.
        strategy: str. `tf.distribute` strategy: `"one"`, `"mirrored"`,
            `"multiworker"` (from `TF_CONFIG`) or `"auto"` (see
            `tfvae.training.distribute.make_strategy`). Defaults to `"auto"`.
        deterministic: bool. Make training bitwise reproducible: seeds, and
            `tf.config.experimental.enable_op_determinism()` for the whole
            process once the model is built. Defaults to `False`.
        checkpoint_steps: int. Besides the checkpoint at the end of every
            epoch, save one every this many train steps of an epoch, so a
            killed run loses less; `0` saves at epoch ends only. A multiple
            of `steps_per_execution` (checkpoints fall between graph
            calls). Defaults to `0`.
        out: str or None. Run directory; `None` makes one under
            `saved_models/`. Defaults to `None`.
    """

    model: str = "vae"
    dataset: str = "mnist5k"
    arch: str = "dense"
    latent_dim: int = 16
    hidden_units: tuple = (512,)
    filters: tuple = (32, 64)
    epochs: int = 50
    batch_size: int = 128
    beta: float = 1.0
    learning_rate: float = 3e-3
    lr_schedule: str = "cosine"
    weight_decay: float = 0.05
    likelihood: str = "auto"
    binarize: bool | None = None
    validation_fraction: float = 0.1
    seed: int = 0
    iwae_samples: int = 1
    kl_warmup_epochs: int = 0
    noise_factor: float = 0.2
    precision: str = "auto"
    jit_compile: bool = False
    steps_per_execution: int = 32
    deterministic: bool = False
    strategy: str = "auto"
    checkpoint_steps: int = 0
    out: str | None = None

    def __post_init__(self):
        self.hidden_units = tuple(self.hidden_units)
        self.filters = tuple(self.filters)
        self.validate()

    def validate(self):
        """Raises `TfvaeError` naming the first invalid setting."""
        _check_choice("model", self.model, MODEL_NAMES)
        _check_choice("architecture", self.arch, ARCH_NAMES)
        _check_choice("likelihood", self.likelihood, LIKELIHOOD_NAMES)
        if not is_array_file(self.dataset):
            _check_choice("dataset", self.dataset, [*BUILTIN_DATASETS, "PATH.npz", "PATH.npy"])
        _check_positive_int("latent_dim", self.latent_dim)
        _check_positive_int("epochs", self.epochs)
        _check_positive_int("batch_size", self.batch_size)
        for units in self.hidden_units:
            _check_positive_int("hidden_units", units)
        for n in self.filters:
            _check_positive_int("filters", n)
        if self.arch == "conv" and not self.filters:
            raise TfvaeError("the conv architecture needs at least one filter count")
        if not (
            isinstance(self.beta, (int, float)) and math.isfinite(self.beta) and self.beta >= 0
        ):
            raise TfvaeError(f"beta must be a finite number >= 0. Received: beta={self.beta!r}")
        if not (
            isinstance(self.learning_rate, (int, float))
            and math.isfinite(self.learning_rate)
            and self.learning_rate > 0
        ):
            raise TfvaeError(
                f"learning_rate must be a positive number. Received: learning_rate={self.learning_rate!r}"
            )
        _check_choice("learning-rate schedule", self.lr_schedule, LR_SCHEDULES)
        if not (
            isinstance(self.weight_decay, (int, float))
            and math.isfinite(self.weight_decay)
            and self.weight_decay >= 0
        ):
            raise TfvaeError(
                f"weight_decay must be a finite number >= 0. Received: weight_decay={self.weight_decay!r}"
            )
        if not 0.0 < self.validation_fraction < 1.0:
            raise TfvaeError(
                "validation_fraction must be in (0, 1). "
                f"Received: validation_fraction={self.validation_fraction!r}"
            )
        _check_positive_int("iwae_samples", self.iwae_samples)
        _check_positive_int("steps_per_execution", self.steps_per_execution)
        if (
            isinstance(self.kl_warmup_epochs, bool)
            or not isinstance(self.kl_warmup_epochs, int)
            or self.kl_warmup_epochs < 0
        ):
            raise TfvaeError(
                "kl_warmup_epochs must be an integer >= 0. "
                f"Received: kl_warmup_epochs={self.kl_warmup_epochs!r}"
            )
        if not (
            isinstance(self.noise_factor, (int, float))
            and not isinstance(self.noise_factor, bool)
            and math.isfinite(self.noise_factor)
            and self.noise_factor >= 0
        ):
            raise TfvaeError(
                f"noise_factor must be a finite number >= 0. Received: noise_factor={self.noise_factor!r}"
            )
        if self.model != "vae" and (self.iwae_samples != 1 or self.kl_warmup_epochs):
            raise TfvaeError("iwae_samples and kl_warmup_epochs apply to --model vae only")
        _check_choice("precision", self.precision, PRECISIONS)
        if not isinstance(self.jit_compile, bool):
            raise TfvaeError(
                f"jit_compile must be true or false. Received: jit_compile={self.jit_compile!r}"
            )
        _check_choice("strategy", self.strategy, STRATEGIES)
        if not isinstance(self.deterministic, bool):
            raise TfvaeError(
                f"deterministic must be true or false. Received: deterministic={self.deterministic!r}"
            )
        if (
            isinstance(self.checkpoint_steps, bool)
            or not isinstance(self.checkpoint_steps, int)
            or self.checkpoint_steps < 0
        ):
            raise TfvaeError(
                "checkpoint_steps must be an integer >= 0. "
                f"Received: checkpoint_steps={self.checkpoint_steps!r}"
            )
        if self.checkpoint_steps % self.steps_per_execution:
            raise TfvaeError(
                "checkpoint_steps must be a multiple of steps_per_execution, as checkpoints "
                "are saved between graph calls of steps_per_execution steps. Received: "
                f"checkpoint_steps={self.checkpoint_steps} with "
                f"steps_per_execution={self.steps_per_execution}; use a steps_per_execution "
                "that divides it (1 always does)"
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise TfvaeError(f"seed must be an integer >= 0. Received: seed={self.seed!r}")

    @property
    def resolved_binarize(self):
        return self.model == "vae" if self.binarize is None else bool(self.binarize)

    @property
    def resolved_likelihood(self):
        if self.likelihood != "auto":
            return self.likelihood
        return "bernoulli" if self.resolved_binarize else "gaussian"

    @property
    def resolved_precision(self):
        from tfvae.training.precision import resolve_precision

        return resolve_precision(self.precision)

    def to_dict(self):
        data = dataclasses.asdict(self)
        data["hidden_units"] = list(self.hidden_units)
        data["filters"] = list(self.filters)
        return data

    def to_json(self):
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data):
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise TfvaeError(f"unknown config keys {unknown}; expected some of {sorted(known)}")
        return cls(**data)

    @classmethod
    def from_json(cls, text):
        return cls.from_dict(json.loads(text))

    @classmethod
    def load(cls, path):
        """Reads a config written by `save` (a run's `config.json`)."""
        path = os.fspath(path)
        try:
            with open(path) as f:
                return cls.from_json(f.read())
        except FileNotFoundError:
            raise TfvaeError(f"no config file at {path}") from None
        except (json.JSONDecodeError, TypeError) as error:
            raise TfvaeError(f"cannot read config {path}: {error}") from None
