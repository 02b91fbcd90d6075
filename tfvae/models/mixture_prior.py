"""`MixturePrior`: the weights of a learned mixture of diagonal Gaussians over the code."""

import keras
import tensorflow as tf

from tfvae import checks
from tfvae.math.losses import soft_clip

# The components' scales stay within [exp(-5), exp(3)], about 0.007 to 20:
# a component that shrank onto one posterior mean would otherwise make
# log p(z) unbounded.
LOG_SCALE_BOUNDS = (-5.0, 3.0)


@keras.saving.register_keras_serializable(package="tfvae")
class MixturePrior(keras.layers.Layer):
    """The means, log-scales and mixture logits of `K` diagonal Gaussians in `dims` dimensions.

    `p(z) = sum_k softmax(logits)_k N(z; means_k, diag(exp(log_scales_k))^2)`.
    `call()` returns `(locs [K, dims], scales [K, dims], logits [K])` for
    `tfvae.math.mixtures`; the scales are soft-clipped to
    `LOG_SCALE_BOUNDS`. The means start as seeded `N(0, 1)` draws (so the
    mixture starts spread like the standard normal prior), the scales at
    about 1 and the weights equal.

    Args:
        components: int. Number of components `K`.
        dims: int. Dimension of the code.
        seed: int or None. Seed of the initial means. Defaults to `None`.
        **kwargs: Base `keras.layers.Layer` arguments such as `name`.

    Example:

    >>> locs, scales, logits = MixturePrior(20, 16, seed=0)(None)
    """

    def __init__(self, components, dims, seed=None, **kwargs):
        super().__init__(**kwargs)
        # === Config ===
        self.components = checks.positive_int("components", components)
        self.dims = checks.positive_int("dims", dims)
        self.seed = checks.optional_seed("seed", seed)
        # === Layers ===
        self.means = self.add_weight(
            shape=(self.components, self.dims),
            initializer=keras.initializers.RandomNormal(stddev=1.0, seed=self.seed),
            name="means",
        )
        self.log_scales = self.add_weight(
            shape=(self.components, self.dims), initializer="zeros", name="log_scales"
        )
        self.logits = self.add_weight(shape=(self.components,), initializer="zeros", name="logits")

    def call(self, inputs=None):
        log_scales = soft_clip(tf.cast(self.log_scales, tf.float32), *LOG_SCALE_BOUNDS)
        return (
            tf.cast(self.means, tf.float32),
            tf.exp(log_scales),
            tf.cast(self.logits, tf.float32),
        )

    def compute_output_shape(self, input_shape=None):
        return (self.components, self.dims), (self.components, self.dims), (self.components,)

    def get_config(self):
        return {
            **super().get_config(),
            "components": self.components,
            "dims": self.dims,
            "seed": self.seed,
        }
