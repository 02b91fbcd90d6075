"""Model families: one registration each, read by every command.

A family is registered once, in the file of its model class, with
`register_family(ModelFamily(...))`. The registration declares the family's
name, how it is built from a `TrainConfig`, its own settings, the metrics
it reports, the data it needs and what it can do (its capabilities). The
command line, config validation, the tuner's objectives, evaluation,
anomaly scoring and export all read it: none of them asks for a model's
class. The per-example score and the export signatures are methods and a
table of the model class itself (`score`, `serving_functions`).

Example: a family in one file.

>>> @keras.saving.register_keras_serializable(package="mine")
... class SparseAutoencoder(Autoencoder):
...     ...
>>> register_family(ModelFamily(
...     name="sae",
...     model_class=SparseAutoencoder,
...     description="autoencoder with an L1 penalty on its code",
...     build=lambda config, shape, steps: SparseAutoencoder(
...         *build_networks(config, shape), sparsity=config.sparsity),
...     settings=(Setting("sparsity", 1e-3, "Weight of the L1 penalty.", minimum=0),),
... ))
"""

import dataclasses

from tfvae.errors import TfvaeError
from tfvae.models.decoder import Decoder
from tfvae.models.encoder import Encoder

# What a family can declare it can do; evaluation and the figures offer the
# matching extras.
CAPABILITIES = (
    # q(z|x) and a N(0, I) prior: samples, manifold, interpolation and
    # traversal figures, active units.
    "prior",
    # log_importance_weights(x, eps): importance-sampled -log p(x).
    "likelihood_bound",
    # add_noise(x, seed): denoising metrics and figure.
    "denoising",
)


@dataclasses.dataclass(frozen=True)
class ModelFamily:
    """A model family: everything tfvae needs to know to train, evaluate and export it.

    Args:
        name: str. The `--model` value.
        model_class: type. The registered Keras model class. Its instances
            provide `score(x)`, `score_description`, `latent_code(x)` and
            the `serving_functions` table (see `tfvae.models.base`).
        description: str. A few words for `--help`.
        build: callable `(config, data_shape, steps_per_epoch) -> model`.
            `config` is a `TrainConfig`; the family's own settings are its
            attributes (`config.beta`).
        settings: tuple of `tfvae.settings.Setting`. The family's own
            settings: flags, defaults and checks. Defaults to `()`.
        metrics: tuple of str. What `fit` reports (their `val_` twins come
            from validation). Defaults to `("loss", "reconstruction_loss")`.
        binarize_by_default: bool. Whether `binarize=None` means binarized
            data. Defaults to `False`.
        value_range: tuple or None. The range the data must lie in,
            e.g. `(0.0, 1.0)`; `None` takes any real values. Defaults to
            `None`.
        capabilities: tuple of str. Among `CAPABILITIES`. Defaults to `()`.
    """

    name: str
    model_class: type
    description: str
    build: object
    settings: tuple = ()
    metrics: tuple = ("loss", "reconstruction_loss")
    binarize_by_default: bool = False
    value_range: tuple | None = None
    capabilities: tuple = ()

    def __post_init__(self):
        unknown = sorted(set(self.capabilities) - set(CAPABILITIES))
        if unknown:
            raise TfvaeError(
                f"unknown capabilities {unknown} for model family {self.name!r}; "
                f"expected some of {list(CAPABILITIES)}"
            )

    def can(self, capability):
        """Whether the family declares `capability` (one of `CAPABILITIES`)."""
        return capability in self.capabilities

    def reported_metrics(self):
        """The names `fit` logs for this family, validation twins included."""
        return (*self.metrics, *(f"val_{name}" for name in self.metrics))

    def setting(self, name):
        """The family's own `Setting` called `name`, or `None`."""
        return next((s for s in self.settings if s.name == name), None)


_FAMILIES = {}


def register_family(family):
    """Adds `family` to the registry (replacing one of the same name) and returns it."""
    if not isinstance(family, ModelFamily):
        raise TfvaeError(f"register_family takes a ModelFamily. Received: {family!r}")
    _FAMILIES[family.name] = family
    return family


def unregister_family(name):
    """Removes the family called `name` (for tests that register a toy family)."""
    _FAMILIES.pop(name, None)


def names():
    """The registered family names, in registration order."""
    return tuple(_FAMILIES)


def families():
    """The registered families, in registration order."""
    return tuple(_FAMILIES.values())


def get_family(name):
    """The family called `name`; raises `TfvaeError` naming the registered ones."""
    if name not in _FAMILIES:
        raise TfvaeError(f"unknown model {name!r}; expected one of {list(_FAMILIES)}")
    return _FAMILIES[name]


def family_of(model):
    """The family whose model class `model` is (the nearest registered base class)."""
    for cls in type(model).__mro__:
        for family in _FAMILIES.values():
            if family.model_class is cls:
                return family
    raise TfvaeError(
        "expected a model of a registered tfvae family "
        f"({', '.join(f.model_class.__name__ for f in _FAMILIES.values())}). "
        f"Received: {type(model).__name__}"
    )


def owners_of(setting_name):
    """The families that declare a setting called `setting_name`, and its first declaration."""
    owners = [f for f in _FAMILIES.values() if f.setting(setting_name) is not None]
    return owners, (owners[0].setting(setting_name) if owners else None)


def build_networks(config, data_shape, probabilistic=False):
    """The `(Encoder, Decoder)` pair a config describes, in the run's precision.

    The networks compute in the run's dtype policy; the models' own loss
    arithmetic (KL, log-likelihoods) stays float32.
    """
    policy = config.resolved_precision
    encoder = Encoder(
        config.latent_dim,
        arch=config.arch,
        hidden_units=config.hidden_units,
        filters=config.filters,
        probabilistic=probabilistic,
        dtype=policy,
        name="encoder",
    )
    decoder = Decoder(
        data_shape,
        arch=config.arch,
        hidden_units=config.hidden_units,
        filters=config.filters,
        dtype=policy,
        name="decoder",
    )
    return encoder, decoder


def build_model(config, data_shape, steps_per_epoch=None):
    """Returns the built (weights created) model of the family `config.model` names.

    Args:
        config: `TrainConfig`.
        data_shape: tuple of int. Shape of one example.
        steps_per_epoch: int or None. Converts epoch counts (the VAE's KL
            warm-up) to optimizer steps.
    """
    family = get_family(config.model)
    model = family.build(config, tuple(data_shape), steps_per_epoch)
    model.build((None, *data_shape))
    return model
