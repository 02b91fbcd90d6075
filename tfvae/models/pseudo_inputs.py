"""`PseudoInputs`: the learned inputs whose posteriors make the VampPrior."""

import keras
import tensorflow as tf

from tfvae import checks

SQUASHES = ("sigmoid", "none")
# The weights store logits / 10: Adam moves a weight by about the learning
# rate per step, and at 1e-3 a pseudo-pixel stored as a plain logit would
# move by under 0.3 in 1,000 steps, not enough to leave its initial noise.
LOGITS_PER_WEIGHT_UNIT = 10.0


@keras.saving.register_keras_serializable(package="tfvae")
class PseudoInputs(keras.layers.Layer):
    """`count` learned inputs of the data's shape (Tomczak & Welling 2018).

    The VampPrior is `p(z) = 1/K sum_k q(z | u_k)`: the encoder's posterior
    at each pseudo-input `u_k`. This layer holds the `u_k` as weights and
    returns them, `[count, *data_shape]`, whatever it is called on. With
    `squash="sigmoid"` each value is the sigmoid of a free weight (times
    10, see `LOGITS_PER_WEIGHT_UNIT`), so the pseudo-inputs stay in (0, 1)
    like binarized or grey-level data; with `"none"` they are the weights
    themselves, for real-valued data. The weights start as seeded noise:
    logits `N(0, 1)`, or values `N(0, 1)`.

    Args:
        count: int. Number of pseudo-inputs `K`.
        data_shape: tuple of int. Shape of one example.
        squash: str. `"sigmoid"` (values in (0, 1)) or `"none"`.
            Defaults to `"sigmoid"`.
        seed: int or None. Seed of the initial values. Defaults to `None`.
        **kwargs: Base `keras.layers.Layer` arguments such as `name`.

    Example:

    >>> pseudo = PseudoInputs(500, (28, 28, 1), seed=0)
    >>> mu, sigma = encoder(pseudo(None))   # the prior's 500 components
    """

    def __init__(self, count, data_shape, squash="sigmoid", seed=None, **kwargs):
        super().__init__(**kwargs)
        # === Config ===
        self.count = checks.positive_int("count", count)
        self.data_shape = tuple(checks.positive_ints("data_shape", data_shape, allow_empty=False))
        self.squash = checks.choice("squash", squash, SQUASHES)
        self.seed = checks.optional_seed("seed", seed)
        # === Layers ===
        scale = 1.0 / LOGITS_PER_WEIGHT_UNIT if self.squash == "sigmoid" else 1.0
        self.values = self.add_weight(
            shape=(self.count, *self.data_shape),
            initializer=keras.initializers.RandomNormal(stddev=scale, seed=self.seed),
            name="values",
        )

    def call(self, inputs=None):
        values = tf.cast(self.values, tf.float32)
        if self.squash == "sigmoid":
            return tf.sigmoid(LOGITS_PER_WEIGHT_UNIT * values)
        return values

    def compute_output_shape(self, input_shape=None):
        return (self.count, *self.data_shape)

    def get_config(self):
        return {
            **super().get_config(),
            "count": self.count,
            "data_shape": list(self.data_shape),
            "squash": self.squash,
            "seed": self.seed,
        }
