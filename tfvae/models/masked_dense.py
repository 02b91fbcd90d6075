"""`MaskedDense`: a dense layer whose connections follow MADE degrees."""

import keras
from keras import ops

from tfvae.errors import TfvaeError
from tfvae.math.flows import made_mask


@keras.saving.register_keras_serializable(package="tfvae")
class MaskedDense(keras.layers.Layer):
    """Dense layer with a fixed 0/1 mask on its kernel, for autoregressive networks.

    Output `j` is connected to input `i` only when the output's degree is at
    least the input's (`strict=False`) or above it (`strict=True`), as in
    MADE (Germain et al. 2015; see `tfvae.math.flows.made_mask`). The mask
    is a constant made from the degrees, which are the layer's config; the
    kernel keeps its full shape, so the masked entries are weights that
    never receive a gradient.

    Args:
        input_degrees: list of int. The degree of each input unit.
        output_degrees: list of int. The degree of each output unit; their
            number is the layer's width.
        strict: bool. Connect only inputs of strictly lower degree (the
            layer that gives the autoregressive outputs). Defaults to `False`.
        activation: str or None. Defaults to `None`.
        kernel_initializer: str. Defaults to `"glorot_uniform"`.
        **kwargs: Base `keras.layers.Layer` arguments such as `name`.

    Example:

    >>> layer = MaskedDense([1, 2, 3], [1, 2, 1, 2], activation="elu")
    >>> layer(np.zeros((5, 3), "float32")).shape
    TensorShape([5, 4])
    """

    def __init__(
        self,
        input_degrees,
        output_degrees,
        strict=False,
        activation=None,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        input_degrees = [int(d) for d in input_degrees]
        output_degrees = [int(d) for d in output_degrees]
        if not input_degrees or not output_degrees:
            raise TfvaeError(
                "MaskedDense needs at least one input and one output degree. Received: "
                f"input_degrees={input_degrees}, output_degrees={output_degrees}"
            )
        # === Config ===
        self.input_degrees = input_degrees
        self.output_degrees = output_degrees
        self.strict = bool(strict)
        self.activation = keras.activations.get(activation)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.mask = made_mask(input_degrees, output_degrees, strict=self.strict)

    @property
    def units(self):
        return len(self.output_degrees)

    def build(self, input_shape):
        if input_shape[-1] != len(self.input_degrees):
            raise TfvaeError(
                f"MaskedDense has {len(self.input_degrees)} input degrees. "
                f"Received: inputs of shape {tuple(input_shape)}"
            )
        self.kernel = self.add_weight(
            shape=self.mask.shape, initializer=self._masked_initializer, name="kernel"
        )
        self.bias = self.add_weight(shape=(self.units,), initializer="zeros", name="bias")
        self.built = True

    def _masked_initializer(self, shape, dtype=None):
        # The masked entries start at zero too, so the saved kernel is the effective one.
        return self.kernel_initializer(shape, dtype=dtype) * ops.convert_to_tensor(
            self.mask, dtype=dtype
        )

    def call(self, inputs):
        kernel = self.kernel * ops.cast(self.mask, self.kernel.dtype)
        outputs = ops.matmul(
            ops.cast(inputs, self.compute_dtype), ops.cast(kernel, self.compute_dtype)
        )
        return self.activation(outputs + ops.cast(self.bias, self.compute_dtype))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "input_degrees": list(self.input_degrees),
                "output_degrees": list(self.output_degrees),
                "strict": self.strict,
                "activation": keras.activations.serialize(self.activation),
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config
