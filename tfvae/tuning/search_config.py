"""`SearchConfig`: what a hyperparameter search tries, how, and where it is kept."""

import dataclasses
import json
import math
import os

from tfvae.errors import TfvaeError
from tfvae.models import registry
from tfvae.settings import setting
from tfvae.training.config import TrainConfig

TUNER_NAMES = ("random", "bayesian", "hyperband")
DEFAULT_LATENT_DIMS = (2, 4, 8, 16, 32, 64)
# Objectives that weight the KL term by beta: a search over beta cannot rank on them.
BETA_WEIGHTED_OBJECTIVES = ("loss", "val_loss")
NEG_ELBO_OBJECTIVE = "val_neg_elbo"


def default_objective(betas):
    """The objective a search ranks on when none is given: one that beta does not weight."""
    return NEG_ELBO_OBJECTIVE if betas is not None else "val_loss"


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_choices(name, values, is_valid, allowed):
    values = tuple(values)
    if not values:
        raise TfvaeError(f"{name} needs at least one choice. Received: {name}=()")
    for value in values:
        if not is_valid(value):
            raise TfvaeError(
                f"{name} must hold {allowed}. Received: {name}={list(values)!r} "
                f"(bad value {value!r})"
            )
    repeated = sorted({v for v in values if values.count(v) > 1})
    if repeated:
        raise TfvaeError(
            f"{name} lists {repeated!r} more than once. Received: {name}={list(values)!r}"
        )
    return values


def _positive_int(value):
    return _is_number(value) and isinstance(value, int) and value >= 1


def _finite_non_negative(value):
    return _is_number(value) and math.isfinite(value) and value >= 0


def _finite_positive(value):
    return _is_number(value) and math.isfinite(value) and value > 0


@dataclasses.dataclass
class SearchConfig:
    """A hyperparameter search: the base run, the choices, the tuner, the directory.

    Every trial trains `train` with the latent size, and optionally the KL
    weight, the learning rate and the hidden width, replaced by one choice of
    each. A choice list of `None` leaves that setting at `train`'s value.

    Args:
        train: `TrainConfig`. The run every trial starts from; its `out`
            must be `None` (the best model goes to `directory/best`).
        latent_dims: tuple of int. Latent sizes to try. Defaults to
            `(2, 4, 8, 16, 32, 64)`.
        betas: tuple of float or None. KL weights to try (VAE only).
            Defaults to `None`.
        learning_rates: tuple of float or None. Adam step sizes to try.
            Defaults to `None`.
        widths: tuple of int or None. Widths to try for every hidden dense
            layer of `train.hidden_units`. Defaults to `None`.
        tuner: str. `"random"`, `"bayesian"` or `"hyperband"`. Defaults to
            `"random"`.
        max_trials: int. Trials to run at most; a search also ends when
            every combination has been tried. Defaults to `10`.
        objective: str or None. The metric to minimise, one the model
            reports in `fit` (`val_loss`, `val_reconstruction_loss`,
            `val_kl_loss`, `val_neg_elbo` for the VAE, or their training
            twins). A search over `betas` must not rank on `loss` or
            `val_loss`, which weight the KL term by the searched beta.
            Defaults to `None`: `"val_neg_elbo"` when `betas` are searched,
            else `"val_loss"`.
        directory: str or None. Where the search lives; `None` means
            `saved_models/tune-<model>-<dataset>-<arch>`. Defaults to `None`.

    Example:

    >>> config = SearchConfig(TrainConfig(dataset="digits", epochs=5), max_trials=6)
    >>> result = tfvae.tuning.tune(config)
    >>> result.best["latent_dim"], result.best_run_dir
    """

    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    latent_dims: tuple = setting(
        DEFAULT_LATENT_DIMS, "Latent sizes to try.", kind="ints", distinct=True
    )
    betas: tuple | None = setting(
        None, "KL weights to try (families with a beta setting: vae).", kind="floats", optional=True
    )
    learning_rates: tuple | None = setting(
        None, "Adam step sizes to try.", kind="floats", optional=True
    )
    widths: tuple | None = setting(
        None,
        "Widths to try for every hidden dense layer (--hidden-units sets how many).",
        kind="ints",
        optional=True,
    )
    tuner: str = setting("random", "Keras Tuner's search algorithm.", choices=TUNER_NAMES)
    max_trials: int = setting(
        10, "Trials at most; the search also ends when every combination was tried.", minimum=1
    )
    objective: str | None = setting(
        None,
        "Metric to minimise: one the model family reports in fit (val_loss, "
        "val_reconstruction_loss, val_kl_loss, val_neg_elbo for vae) or a training twin. "
        "Default: val_neg_elbo when --betas is searched, else val_loss.",
        optional=True,
    )
    directory: str | None = setting(
        None,
        "Search directory; rerunning with the same flags resumes it. "
        "Default: saved_models/tune-<model>-<dataset>-<arch>.",
        optional=True,
        flag="--dir",
    )

    def __post_init__(self):
        if isinstance(self.train, dict):
            self.train = TrainConfig.from_dict(self.train)
        for name in ("latent_dims", "betas", "learning_rates", "widths"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                setattr(self, name, tuple(value))
        if self.objective is None and isinstance(self.train, TrainConfig):
            self.objective = self.train.family.objective or default_objective(self.betas)
        self.validate()

    def validate(self):
        """Raises `TfvaeError` naming the first invalid setting."""
        if not isinstance(self.train, TrainConfig):
            raise TfvaeError(f"train must be a TrainConfig. Received: train={self.train!r}")
        self.train.validate()
        if self.train.out is not None:
            raise TfvaeError(
                "the best model of a search is written to <directory>/best; "
                f"leave train.out unset. Received: train.out={self.train.out!r}"
            )
        _check_choices("latent_dims", self.latent_dims, _positive_int, "positive integers")
        if self.betas is not None:
            if self.train.family.setting("beta") is None:
                owners = registry.names_text(registry.owners_of("beta")[0])
                raise TfvaeError(
                    f"betas (the KL weight) apply to --model {owners} only. Received: betas="
                    f"{list(self.betas)!r} with model={self.train.model!r}"
                )
            _check_choices("betas", self.betas, _finite_non_negative, "finite numbers >= 0")
        if self.learning_rates is not None:
            _check_choices(
                "learning_rates", self.learning_rates, _finite_positive, "finite numbers > 0"
            )
        if self.widths is not None:
            _check_choices("widths", self.widths, _positive_int, "positive integers")
            if not self.train.hidden_units:
                raise TfvaeError(
                    "widths set the size of every hidden dense layer, but there is none. "
                    f"Received: widths={list(self.widths)!r} with hidden_units=()"
                )
        if self.tuner not in TUNER_NAMES:
            raise TfvaeError(f"unknown tuner {self.tuner!r}; expected one of {list(TUNER_NAMES)}")
        if isinstance(self.max_trials, bool) or not isinstance(self.max_trials, int):
            raise TfvaeError(
                f"max_trials must be a positive integer. Received: max_trials={self.max_trials!r}"
            )
        if self.max_trials < 1:
            raise TfvaeError(
                f"max_trials must be a positive integer. Received: max_trials={self.max_trials!r}"
            )
        allowed = self.train.family.reported_metrics()
        if self.objective not in allowed:
            raise TfvaeError(
                f"objective {self.objective!r} is not reported by the {self.train.model} model; "
                f"expected one of {list(allowed)}"
            )
        if self.betas is not None and self.objective in BETA_WEIGHTED_OBJECTIVES:
            raise TfvaeError(
                f"objective {self.objective!r} weights the KL term by the searched beta, so the "
                f"smallest beta wins by construction; rank a search over betas on "
                f"{NEG_ELBO_OBJECTIVE} (the true negative ELBO, the default with --betas)"
            )

    @property
    def resolved_directory(self):
        if self.directory is not None:
            return os.fspath(self.directory)
        dataset = os.path.splitext(os.path.basename(self.train.dataset))[0]
        return os.path.join(
            "saved_models", f"tune-{self.train.model}-{dataset}-{self.train.resolved_arch}"
        )

    def searched(self):
        """`{name: choices}` of the settings this search varies, in table order."""
        space = {"latent_dim": self.latent_dims}
        for name, choices in (
            ("beta", self.betas),
            ("learning_rate", self.learning_rates),
            ("width", self.widths),
        ):
            if choices is not None:
                space[name] = choices
        return space

    def settings(self):
        """What must not change when a search is resumed: all but `max_trials` and `directory`.

        `max_trials` may grow to extend a finished search.
        """
        data = self.to_dict()
        del data["max_trials"], data["directory"]
        return data

    def to_dict(self):
        data = dataclasses.asdict(self)
        data["train"] = self.train.to_dict()
        for name in ("latent_dims", "betas", "learning_rates", "widths"):
            if data[name] is not None:
                data[name] = list(data[name])
        return data

    def to_json(self):
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data):
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise TfvaeError(f"unknown search keys {unknown}; expected some of {sorted(known)}")
        return cls(**data)
