"""`MADE`: the autoregressive network of one IAF step."""

import keras
from keras import ops

from tfvae import checks
from tfvae.math.flows import made_degrees
from tfvae.models.masked_dense import MaskedDense


@keras.saving.register_keras_serializable(package="tfvae")
class MADE(keras.layers.Layer):
    """Masked autoencoder for distribution estimation (Germain et al. 2015), with a context.

    Maps `z` `[..., dim]` and an optional context `h` `[batch, context_dim]`
    to `(m, s)`, each `[..., dim]`, such that unit `i` of `m` and `s`
    depends on `h` and on the units of `z` before `i` in the layer's order
    only: hidden `MaskedDense` layers, then a strictly masked one with
    `2 * dim` outputs. The context enters the first hidden layer through a
    dense projection without mask (the whole context is allowed at every
    unit) and again, through a second projection, at the outputs (the
    first unit in the order sees no hidden unit). `z` may carry leading
    sample axes (`[k, batch, dim]`): the context broadcasts over them.

    Computes in float32 whatever the global precision: the flow's log
    density is summed over units and steps.

    Args:
        dim: int. Number of autoregressive units.
        hidden_units: tuple of int. Widths of the hidden layers (each at
            least `dim - 1` wide to represent every degree). Defaults to
            `(256, 256)`.
        context_dim: int. Width of the context `h`; `0` takes none.
            Defaults to `0`.
        reverse: bool. Reverse the order of the units. Defaults to `False`.
        activation: str. Nonlinearity of the hidden layers. Defaults to `"elu"`.
        **kwargs: Base `keras.layers.Layer` arguments such as `name`.

    Example:

    >>> made = MADE(4, hidden_units=(32,), context_dim=8)
    >>> shift, gate_logit = made(np.zeros((5, 4), "float32"), context=np.zeros((5, 8), "float32"))
    """

    def __init__(
        self,
        dim,
        hidden_units=(256, 256),
        context_dim=0,
        reverse=False,
        activation="elu",
        **kwargs,
    ):
        kwargs["dtype"] = "float32"
        super().__init__(**kwargs)
        dim = checks.positive_int("dim", dim)
        hidden_units = tuple(checks.positive_int("hidden_units", n) for n in hidden_units)
        context_dim = checks.non_negative_int("context_dim", context_dim)
        input_degrees, hidden_degrees = made_degrees(dim, hidden_units, reverse=reverse)

        # === Layers ===
        previous = input_degrees
        self.hidden = []
        for i, degrees in enumerate(hidden_degrees):
            self.hidden.append(MaskedDense(previous, degrees, dtype="float32", name=f"masked_{i}"))
            previous = degrees
        self.output_layer = MaskedDense(
            previous,
            [*input_degrees, *input_degrees],
            strict=True,
            # Small outputs: the flow starts close to the gate's initial value.
            kernel_initializer=keras.initializers.VarianceScaling(0.01),
            dtype="float32",
            name="shift_and_gate",
        )
        self.context_projection = None
        self.context_output = None
        if context_dim:
            if hidden_units:
                self.context_projection = keras.layers.Dense(
                    hidden_units[0], use_bias=False, dtype="float32", name="context"
                )
            # Straight to the outputs too: the first unit in the order sees no
            # hidden unit (nothing comes before it), and its m and s must still
            # depend on the context.
            self.context_output = keras.layers.Dense(
                2 * dim,
                use_bias=False,
                kernel_initializer=keras.initializers.VarianceScaling(0.01),
                dtype="float32",
                name="context_output",
            )
        self.hidden_activation = keras.activations.get(activation)

        # === Config ===
        self.dim = dim
        self.hidden_units = hidden_units
        self.context_dim = context_dim
        self.reverse = bool(reverse)
        self.activation = activation

    def build(self, input_shape):
        shape = (None, self.dim)
        for layer in self.hidden:
            layer.build(shape)
            shape = (None, layer.units)
        self.output_layer.build(shape)
        for layer in (self.context_projection, self.context_output):
            if layer is not None:
                layer.build((None, self.context_dim))
        self.built = True

    def call(self, inputs, context=None):
        h = ops.cast(inputs, "float32")
        for i, layer in enumerate(self.hidden):
            h = layer(h)
            if i == 0 and self.context_projection is not None and context is not None:
                h = h + self.context_projection(ops.cast(context, "float32"))
            h = self.hidden_activation(h)
        outputs = self.output_layer(h)
        if self.context_output is not None and context is not None:
            outputs = outputs + self.context_output(ops.cast(context, "float32"))
        shift, gate_logit = ops.split(outputs, 2, axis=-1)
        return shift, gate_logit

    def compute_output_shape(self, input_shape):
        return tuple(input_shape), tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "dim": self.dim,
                "hidden_units": list(self.hidden_units),
                "context_dim": self.context_dim,
                "reverse": self.reverse,
                "activation": self.activation,
            }
        )
        return config
