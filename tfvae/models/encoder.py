"""The encoder network `x -> z` (autoencoder) or `x -> (mu, sigma)` (VAE)."""

import keras
from keras import layers
from keras import ops

from tfvae import checks
from tfvae.errors import TfvaeError
from tfvae.math.losses import soft_clip
from tfvae.models.base import build_sequence

ARCHITECTURES = ("dense", "conv")
# The hidden layers' nonlinearity; the heads stay linear.
ACTIVATIONS = ("relu", "tanh", "elu", "gelu")

# The automatic conv body (`filters=None`): the first stride-2 stage has
# AUTO_FIRST_FILTERS filters and each later one twice as many, up to
# AUTO_MAX_FILTERS. Stages are added while the image's sides stay even and
# the larger side exceeds AUTO_BOTTOM_SIDE, and at least AUTO_MIN_STAGES are
# used where the sides allow: 28x28 gives (32, 64) down to 7x7, 32x32 gives
# (32, 64, 128) down to 4x4, 64x64 gives (32, 64, 128, 128) down to 4x4.
AUTO_FIRST_FILTERS = 32
AUTO_MAX_FILTERS = 128
AUTO_BOTTOM_SIDE = 7
AUTO_MIN_STAGES = 2

# Bounds of the posterior's log-variance: sigma stays within [exp(-8), exp(8)]
# (about 3e-4 to 3e3) however extreme the input, so exp never overflows.
LOG_VARIANCE_BOUNDS = (-16.0, 16.0)


def check_architecture(arch):
    if arch not in ARCHITECTURES:
        raise TfvaeError(f"unknown architecture {arch!r}; expected one of {list(ARCHITECTURES)}")


def check_activation(activation):
    return checks.choice("activation", activation, ACTIVATIONS)


def check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise TfvaeError(f"{name} must be a positive integer. Received: {name}={value!r}")


def check_units(name, values):
    values = tuple(values)
    for value in values:
        check_positive_int(name, value)
    return values


def check_filters(filters):
    """`filters` as a tuple of positive ints, or `None` (chosen from the image size)."""
    return None if filters is None else check_units("filters", filters)


def check_conv_shape(shape, filters):
    """Raises unless `shape` is an image the conv body of `filters` can halve at each stage.

    `filters=None` (chosen from the image size) needs even sides, so that
    there is at least one stage.
    """
    shape = tuple(shape)
    if len(shape) != 3:
        raise TfvaeError(
            "the conv architecture needs images of shape (height, width, channels). "
            f"Received: shape={shape}; use --arch dense for vector data"
        )
    if filters is None:
        if not conv_filters_for(shape):
            raise TfvaeError(
                "the conv architecture needs images of even height and width, to halve them "
                f"at least once. Received: shape={shape}; crop or pad the images, or use "
                "--arch dense"
            )
        return
    factor = 2 ** len(filters)
    if shape[0] % factor or shape[1] % factor:
        raise TfvaeError(
            f"the conv architecture with {len(filters)} stride-2 layers needs height "
            f"and width divisible by {factor}. Received: shape={shape}"
        )


def conv_filters_for(shape):
    """The filters of the automatic conv body for images of `shape`, one per stride-2 stage.

    Each stage halves the height and the width; stages are added while both
    stay even and the larger side is above `AUTO_BOTTOM_SIDE` (and until
    there are `AUTO_MIN_STAGES`), so the body ends in a small map whatever
    the image size and the dense layer after it stays small.

    Args:
        shape: tuple of int. `(height, width, channels)` of one image.

    Returns:
        A tuple of int, empty when a side is odd.
    """
    height, width = int(shape[0]), int(shape[1])
    filters = []
    while height % 2 == 0 and width % 2 == 0 and height > 1 and width > 1:
        if len(filters) >= AUTO_MIN_STAGES and max(height, width) <= AUTO_BOTTOM_SIDE:
            break
        filters.append(min(AUTO_FIRST_FILTERS * 2 ** len(filters), AUTO_MAX_FILTERS))
        height, width = height // 2, width // 2
    return tuple(filters)


@keras.saving.register_keras_serializable(package="tfvae")
class Encoder(keras.Model):
    """Maps inputs to a latent code.

    A dense body flattens the input and applies `Dense` layers; a conv body
    applies stride-2 `Conv2D` layers to `(height, width, channels)` images.
    With `probabilistic=True` (the VAE's encoder) the head returns the
    posterior's mean `mu` and a strictly positive scale `sigma`, from a
    soft-clipped log-variance so that `sigma` is finite for any input.
    Otherwise it returns the code `z`.

    Args:
        latent_dim: int. Size of the latent code.
        arch: str. `"dense"` or `"conv"`. Defaults to `"dense"`.
        hidden_units: tuple of int. Widths of the dense body's hidden
            layers, or of the dense layer after the conv body (may be
            empty). Defaults to `(512,)`.
        filters: tuple of int or None. Filters of the conv body's stride-2
            convolutions, one per down-sampling stage. `None` chooses them
            from the input's size when the encoder is built
            (`conv_filters_for`: as many stages as bring the image down to
            a side of about 4 to 7). Defaults to `(32, 64)`.
        probabilistic: bool. Return `(mu, sigma)` instead of `z`.
            Defaults to `False`.
        activation: str. Nonlinearity of the hidden layers: `"relu"`,
            `"tanh"`, `"elu"` or `"gelu"`. Defaults to `"relu"`.
        **kwargs: Base `keras.Model` arguments such as `name` and `dtype`.

    Example:

    >>> encoder = Encoder(latent_dim=2, probabilistic=True)
    >>> mu, sigma = encoder(np.zeros((3, 28, 28, 1)))
    >>> mu.shape
    TensorShape([3, 2])
    """

    def __init__(
        self,
        latent_dim,
        arch="dense",
        hidden_units=(512,),
        filters=(32, 64),
        probabilistic=False,
        activation="relu",
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_positive_int("latent_dim", latent_dim)
        check_architecture(arch)
        check_activation(activation)
        hidden_units = check_units("hidden_units", hidden_units)
        filters = check_filters(filters)

        # === Layers ===
        # With filters=None and a conv body the layers are made in `build`,
        # once the image size is known (in the same order, so the weights
        # are listed as an encoder of explicit filters lists them).
        self.body = []
        self.head = None
        if arch != "conv" or filters is not None:
            self._make_layers(
                filters or (), latent_dim, arch, hidden_units, probabilistic, activation
            )

        # === Config ===
        self.latent_dim = latent_dim
        self.arch = arch
        self.hidden_units = hidden_units
        self.filters = filters
        self.probabilistic = probabilistic
        self.activation = activation

    @property
    def stage_filters(self):
        """The filters of the conv body's stages as built (`()` for a dense encoder)."""
        return tuple(layer.filters for layer in self.body if isinstance(layer, layers.Conv2D))

    def _make_layers(self, filters, latent_dim, arch, hidden_units, probabilistic, activation):
        policy = self.dtype_policy
        body = []
        if arch == "conv":
            body += [
                layers.Conv2D(
                    n,
                    3,
                    strides=2,
                    padding="same",
                    activation=activation,
                    dtype=policy,
                    name=f"conv_{i}",
                )
                for i, n in enumerate(filters)
            ]
        body.append(layers.Flatten(dtype=policy, name="flatten"))
        body += [
            layers.Dense(n, activation=activation, dtype=policy, name=f"dense_{i}")
            for i, n in enumerate(hidden_units)
        ]
        self.body = body
        head_units = 2 * latent_dim if probabilistic else latent_dim
        self.head = layers.Dense(head_units, dtype=policy, name="head")

    def build(self, input_shape):
        if self.head is None:
            image_shape = tuple(input_shape[1:])
            check_conv_shape(image_shape, None)
            self._make_layers(
                conv_filters_for(image_shape),
                self.latent_dim,
                self.arch,
                self.hidden_units,
                self.probabilistic,
                self.activation,
            )
        build_sequence([*self.body, self.head], input_shape)
        self.built = True

    def compute_output_shape(self, input_shape):
        """`(batch, latent_dim)`, or that shape twice, for `(mu, sigma)`, when probabilistic."""
        code_shape = (input_shape[0], self.latent_dim)
        return (code_shape, code_shape) if self.probabilistic else code_shape

    def compute_output_spec(self, inputs):
        # `call` casts the posterior's parameters to float32 under a mixed policy.
        shape = self.compute_output_shape(inputs.shape)
        if self.probabilistic:
            return tuple(keras.KerasTensor(part, dtype="float32") for part in shape)
        return keras.KerasTensor(shape, dtype=self.compute_dtype)

    def call(self, inputs, training=None):
        h = inputs
        for layer in self.body:
            h = layer(h, training=training)
        h = self.head(h)
        if not self.probabilistic:
            return h
        mu, raw = ops.split(h, 2, axis=-1)
        log_variance = soft_clip(ops.cast(raw, "float32"), *LOG_VARIANCE_BOUNDS)
        sigma = ops.exp(0.5 * log_variance)
        return ops.cast(mu, "float32"), sigma

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "latent_dim": self.latent_dim,
                "arch": self.arch,
                "hidden_units": list(self.hidden_units),
                "filters": None if self.filters is None else list(self.filters),
                "probabilistic": self.probabilistic,
                "activation": self.activation,
            }
        )
        return config
