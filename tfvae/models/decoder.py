"""The decoder network `z -> parameters of p(x | z)`."""

import math

import keras
import numpy as np
from keras import layers

from tfvae.models.base import build_sequence
from tfvae.models.encoder import check_activation
from tfvae.models.encoder import check_architecture
from tfvae.models.encoder import check_conv_shape
from tfvae.models.encoder import check_filters
from tfvae.models.encoder import check_positive_int
from tfvae.models.encoder import check_units
from tfvae.models.encoder import conv_filters_for

# Re-exported: the data and training layers check shapes with it.
__all__ = ["Decoder", "check_conv_shape"]


@keras.saving.register_keras_serializable(package="tfvae")
class Decoder(keras.Model):
    """Maps a latent code to the parameters of the likelihood, one per feature.

    The output has `output_shape` and no activation: logits for a Bernoulli
    likelihood, the mean for a Gaussian one (the likelihood applies any link
    function). The conv body mirrors the encoder with stride-2
    `Conv2DTranspose` layers.

    Args:
        output_shape: tuple of int. Shape of one example, e.g. `(28, 28, 1)`.
        arch: str. `"dense"` or `"conv"`. Defaults to `"dense"`.
        hidden_units: tuple of int. Widths of the hidden dense layers, in
            the order the encoder uses them (the decoder reverses them).
            Defaults to `(512,)`.
        filters: tuple of int or None. Encoder conv filters, reversed
            here. `None` chooses them from `output_shape` as the encoder
            does (`tfvae.models.encoder.conv_filters_for`). Defaults to
            `(32, 64)`.
        activation: str. Nonlinearity of the hidden layers (`"relu"`,
            `"tanh"`, `"elu"` or `"gelu"`); the output layer stays linear.
            Defaults to `"relu"`.
        **kwargs: Base `keras.Model` arguments such as `name` and `dtype`.

    Example:

    >>> decoder = Decoder(output_shape=(28, 28, 1))
    >>> decoder(np.zeros((3, 16))).shape
    TensorShape([3, 28, 28, 1])
    """

    def __init__(
        self,
        output_shape,
        arch="dense",
        hidden_units=(512,),
        filters=(32, 64),
        activation="relu",
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_architecture(arch)
        check_activation(activation)
        output_shape = tuple(int(d) for d in output_shape)
        for d in output_shape:
            check_positive_int("output_shape", d)
        hidden_units = check_units("hidden_units", hidden_units)
        filters = check_filters(filters)
        if arch == "conv":
            check_conv_shape(output_shape, filters)
        stage_filters = filters
        if arch == "conv" and filters is None:
            stage_filters = conv_filters_for(output_shape)

        # === Layers ===
        policy = self.dtype_policy
        self.body = [
            layers.Dense(n, activation=activation, dtype=policy, name=f"dense_{i}")
            for i, n in enumerate(reversed(hidden_units))
        ]
        if arch == "dense":
            self.body.append(
                layers.Dense(math.prod(output_shape), dtype=policy, name="output_dense")
            )
            self.body.append(layers.Reshape(output_shape, dtype=policy, name="reshape"))
        else:
            factor = 2 ** len(stage_filters)
            height, width, channels = output_shape
            bottom = (height // factor, width // factor, stage_filters[-1])
            self.body.append(
                layers.Dense(math.prod(bottom), activation=activation, dtype=policy, name="project")
            )
            self.body.append(layers.Reshape(bottom, dtype=policy, name="reshape"))
            for i, n in enumerate(reversed(stage_filters)):
                self.body.append(
                    layers.Conv2DTranspose(
                        n,
                        3,
                        strides=2,
                        padding="same",
                        activation=activation,
                        dtype=policy,
                        name=f"deconv_{i}",
                    )
                )
            self.body.append(
                layers.Conv2DTranspose(
                    channels, 3, padding="same", dtype=policy, name="output_conv"
                )
            )

        # === Config ===
        self.data_shape = output_shape
        self.arch = arch
        self.hidden_units = hidden_units
        self.filters = filters
        self.stage_filters = tuple(stage_filters or ()) if arch == "conv" else ()
        self.activation = activation

    def build(self, input_shape):
        build_sequence(self.body, input_shape)
        self.built = True

    def compute_output_shape(self, input_shape):
        """`(batch, *output_shape)`: one set of likelihood parameters per feature."""
        return (input_shape[0], *self.data_shape)

    def set_output_bias(self, params):
        """Sets the output layer's bias so that a zero hidden state decodes to `params`.

        `params` has the data's shape; a conv decoder has one bias per
        channel and takes the spatial mean.
        """
        params = np.asarray(params, np.float32)
        output = self.body[-2] if self.arch == "dense" else self.body[-1]
        kernel, _ = output.get_weights()
        bias = (
            params.reshape(-1)
            if self.arch == "dense"
            else params.reshape(-1, params.shape[-1]).mean(axis=0)
        )
        output.set_weights([kernel, bias])

    def call(self, inputs, training=None):
        h = inputs
        for layer in self.body:
            h = layer(h, training=training)
        return h

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "output_shape": list(self.data_shape),
                "arch": self.arch,
                "hidden_units": list(self.hidden_units),
                "filters": None if self.filters is None else list(self.filters),
                "activation": self.activation,
            }
        )
        return config
