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
        filters: tuple of int. Filters of the conv body's stride-2
            convolutions. Defaults to `(32, 64)`.
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
        filters = check_units("filters", filters)

        # === Layers ===
        self.body = []
        if arch == "conv":
            for i, n in enumerate(filters):
                self.body.append(
                    layers.Conv2D(
                        n,
                        3,
                        strides=2,
                        padding="same",
                        activation=activation,
                        dtype=self.dtype_policy,
                        name=f"conv_{i}",
                    )
                )
        self.body.append(layers.Flatten(dtype=self.dtype_policy, name="flatten"))
        for i, n in enumerate(hidden_units):
            self.body.append(
                layers.Dense(n, activation=activation, dtype=self.dtype_policy, name=f"dense_{i}")
            )
        head_units = 2 * latent_dim if probabilistic else latent_dim
        self.head = layers.Dense(head_units, dtype=self.dtype_policy, name="head")

        # === Config ===
        self.latent_dim = latent_dim
        self.arch = arch
        self.hidden_units = hidden_units
        self.filters = filters
        self.probabilistic = probabilistic
        self.activation = activation

    def build(self, input_shape):
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
                "filters": list(self.filters),
                "probabilistic": self.probabilistic,
                "activation": self.activation,
            }
        )
        return config
