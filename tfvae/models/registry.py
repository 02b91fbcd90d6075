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
import math

from tfvae import memory
from tfvae.errors import TfvaeError
from tfvae.models.decoder import Decoder
from tfvae.models.encoder import Encoder
from tfvae.models.encoder import conv_filters_for

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
    # A codebook of discrete codes (the VQ-VAE): codebook usage, perplexity
    # and the usage histogram; `prior` (a learned prior over the codes) or None.
    "codebook",
)
# The settings of a run's networks that a saved encoder records (see `model_settings`).
NETWORK_SETTINGS = ("latent_dim", "arch", "hidden_units", "filters", "activation")
# float32 weights, their gradients and Adam's two moments.
BYTES_PER_TRAINED_PARAMETER = 16
# float32 weights, and the copy of the weights file read while loading.
BYTES_PER_LOADED_PARAMETER = 8


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
        check: callable or None. `check(options)` runs after each setting's
            own check, with the family's settings by name, and raises
            `TfvaeError` for a combination they cannot say alone.
        check_labels: callable or None. Set for a family whose models take
            class labels with their inputs (the conditional VAE): then its
            pipelines yield `(x, y)`, it is called on `(x, labels)` pairs
            (see `with_labels`), and `check_labels(config, labels, where)`
            raises `TfvaeError` unless the labels (a dict of split name ->
            int array or `None`) suit the model `config` describes.
            Defaults to `None`: the family takes no labels.
        objective: str or None. What a search ranks trials on by default;
            `None` is the tuner's own default (`val_loss`, or
            `val_neg_elbo` over betas). Defaults to `None`.
        arch: str or None. The network body the family always builds
            (the VQ-VAE's is convolutional), whatever `--arch` says: run
            names and reports show it (`TrainConfig.resolved_arch`).
            Defaults to `None`: the family builds the body `--arch` names.
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
    check: object = None
    check_labels: object = None
    objective: str | None = None
    arch: str | None = None

    def __post_init__(self):
        unknown = sorted(set(self.capabilities) - set(CAPABILITIES))
        if unknown:
            raise TfvaeError(
                f"unknown capabilities {unknown} for model family {self.name!r}; "
                f"expected some of {list(CAPABILITIES)}"
            )

    @property
    def needs_labels(self):
        """Whether the family's models take class labels with their inputs."""
        return self.check_labels is not None

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


def names_text(families):
    """The families' names as a phrase: `"vae"`, `"vae or cvae"`, `"vae, cvae or iaf"`."""
    names = [family.name for family in families]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


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


def with_labels(model, x, labels):
    """What `model` takes for examples `x`: `x`, or the pair `(x, labels)` if its family needs labels."""
    return (x, labels) if family_of(model).needs_labels else x


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
        activation=config.activation,
        dtype=policy,
        name="encoder",
    )
    decoder = Decoder(
        data_shape,
        arch=config.arch,
        hidden_units=config.hidden_units,
        filters=config.filters,
        activation=config.activation,
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
            warm-up) to optimizer steps. `None` builds the model without
            its training schedule: no default KL warm-up (an explicit
            `kl_warmup_epochs` then raises), for inference or a loop of
            your own.
    """
    family = get_family(config.model)
    check_trainable_size(config, data_shape)
    model = family.build(config, tuple(data_shape), steps_per_epoch)
    model.build((None, *data_shape))
    return model


def check_trainable_size(config, data_shape):
    """Raises `TfvaeError` if training the model `config` describes needs more memory than there is.

    Args:
        config: `TrainConfig`.
        data_shape: tuple of int. Shape of one example.
    """
    check_model_size(
        network_parameters(
            data_shape,
            config.latent_dim,
            config.arch,
            config.hidden_units,
            config.filters,
            probabilistic=get_family(config.model).can("prior"),
        ),
        BYTES_PER_TRAINED_PARAMETER,
        f"the {config.model} model (arch={config.arch}, latent_dim={config.latent_dim}, "
        f"hidden_units={list(config.hidden_units)}) for data of shape {tuple(data_shape)}",
        "train",
    )


def network_parameters(
    data_shape, latent_dim, arch="dense", hidden_units=(), filters=(), probabilistic=False
):
    """The number of weights of the `Encoder` and `Decoder` these settings describe.

    Counted from the settings alone, before anything is built: a model too
    large for memory is refused with its size instead of failing inside
    TensorFlow. Exact for the networks `build_networks` makes (a family's
    own few extra weights, such as the VAE's observation scale, are not
    counted).

    Args:
        data_shape: tuple of int. Shape of one example.
        latent_dim: int. Size of the code.
        arch: str. `"dense"` or `"conv"`. Defaults to `"dense"`.
        hidden_units, filters: tuples of int. As for `Encoder` (`filters`
            may be `None`: chosen from `data_shape`).
        probabilistic: bool. The encoder outputs a mean and a scale per
            latent unit. Defaults to `False`.
    """
    data_shape = tuple(int(d) for d in data_shape)
    features = math.prod(data_shape)
    if filters is None:
        filters = conv_filters_for(data_shape) if arch == "conv" and len(data_shape) == 3 else ()
    conv = arch == "conv" and len(data_shape) == 3 and len(filters) > 0
    total = 0
    width = features
    if conv:
        height, breadth, channels = data_shape
        for n in filters:
            total += 9 * channels * n + n
            height, breadth, channels = -(-height // 2), -(-breadth // 2), n
        width = height * breadth * channels
    for n in hidden_units:
        total += width * n + n
        width = n
    head = 2 * latent_dim if probabilistic else latent_dim
    total += width * head + head
    width = latent_dim
    for n in reversed(hidden_units):
        total += width * n + n
        width = n
    if not conv:
        return total + width * features + features
    factor = 2 ** len(filters)
    bottom = (data_shape[0] // factor) * (data_shape[1] // factor) * filters[-1]
    total += width * bottom + bottom
    channels = filters[-1]
    for n in reversed(filters):
        total += 9 * channels * n + n
        channels = n
    return total + 9 * channels * data_shape[2] + data_shape[2]


def parameter_summary(model):
    """One line: the number of weights of `model`, and of its encoder and decoder.

    Example: `"model: 2,483,396 parameters (encoder 1,175,168, decoder 1,308,227, other 1)"`.
    """
    total = model.count_params()
    networks = {
        name: getattr(model, name).count_params()
        for name in ("encoder", "decoder")
        if getattr(model, name, None) is not None
    }
    parts = [f"{name} {count:,}" for name, count in networks.items()]
    other = total - sum(networks.values())
    if parts and other:
        parts.append(f"other {other:,}")
    detail = f" ({', '.join(parts)})" if parts else ""
    return f"model: {total:,} parameters{detail}"


def check_model_size(parameters, bytes_per_parameter, what, purpose):
    """Raises `TfvaeError` when `parameters` would need more memory than is available.

    Args:
        parameters: int. The model's number of weights.
        bytes_per_parameter: int. Memory per weight for the task:
            `BYTES_PER_TRAINED_PARAMETER` to train, `BYTES_PER_LOADED_PARAMETER`
            to load.
        what: str. Names the model in the message.
        purpose: str. `"train"` or `"load"`, for the message.
    """
    needed = parameters * bytes_per_parameter
    available = memory.available_memory()
    if available is not None and needed > available:
        raise TfvaeError(
            f"{what} has {parameters:,} parameters: {memory.format_bytes(needed)} to {purpose} "
            f"({bytes_per_parameter} bytes per parameter), more than the "
            f"{memory.format_bytes(available)} of memory available"
        )


def saved_network_parameters(model_config):
    """`network_parameters` of a saved tfvae model's config (a `.keras` file's `config.json`).

    Returns `None` when `model_config` does not describe a tfvae
    encoder-decoder model, or describes it in a way it cannot be counted
    from (loading then decides).
    """
    try:
        inner = model_config["config"]
        encoder = inner["encoder"]["config"]
        decoder = inner["decoder"]["config"]
        data_shape = tuple(decoder["output_shape"])
        numbers = [encoder["latent_dim"], *data_shape, *encoder["hidden_units"]]
        filters = encoder.get("filters", ())
        numbers += list(filters or ())
        if not all(_is_size(n) for n in numbers):
            return None
        return network_parameters(
            data_shape,
            encoder["latent_dim"],
            encoder.get("arch", "dense"),
            tuple(encoder["hidden_units"]),
            None if filters is None else tuple(filters),
            probabilistic=encoder.get("probabilistic") is True,
        )
    except (KeyError, TypeError, AttributeError):
        return None


def model_settings(model):
    """The settings a loaded model embodies, named as in a run's `config.json`.

    `model` (its family's name), the networks' settings the encoder records
    (`latent_dim`, `arch`, `hidden_units`, `filters`, `activation`),
    `likelihood`, `data_shape` (the decoder's output), `input_shape` (what
    the encoder was built for, when recorded) and the family's own settings
    that the model records under the same name (the VAE's `beta`). A run
    directory is checked against these before its model is used.

    Raises:
        TfvaeError: if `model` is not of a registered family.
    """
    family = family_of(model)
    found = {"model": family.name}
    encoder_config = model.encoder.get_config()
    for name in NETWORK_SETTINGS:
        if name in encoder_config:
            value = encoder_config[name]
            found[name] = tuple(value) if isinstance(value, list) else value
    found["likelihood"] = model.likelihood.name
    found["data_shape"] = tuple(model.decoder.data_shape)
    build_config = model.encoder.get_build_config() or {}
    input_shape = build_config.get("input_shape")
    if isinstance(input_shape, (list, tuple)) and len(input_shape) > 1:
        found["input_shape"] = tuple(input_shape[1:])
        if family.needs_labels:
            # The encoder reads the example with its label appended.
            found["input_shape"] = model.data_shape_of_encoder_input(found["input_shape"])
    model_config = model.get_config()
    for spec in family.settings:
        if spec.name in model_config:
            found[spec.name] = model_config[spec.name]
    return found


def _is_size(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1
