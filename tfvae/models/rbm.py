"""The Bernoulli-Bernoulli restricted Boltzmann machine, trained by contrastive divergence."""

import math

import keras
import numpy as np
import tensorflow as tf

from tfvae.errors import TfvaeError
from tfvae.math import rbm as rbm_math
from tfvae.models import base
from tfvae.models.encoder import check_positive_int

# Examples scored at once by `RBM.pseudo_log_likelihood`.
PLL_BATCH = 256


def _flatten(x):
    """`[batch, ...]` -> `[batch, features]` float32, keeping the static feature count."""
    x = tf.cast(tf.convert_to_tensor(x), tf.float32)
    return tf.reshape(x, [-1, math.prod(x.shape[1:])])


@keras.saving.register_keras_serializable(package="tfvae")
class RBM(base.PresetMixin, base.TakesNoLabelsMixin, keras.Model):
    """Bernoulli-Bernoulli restricted Boltzmann machine.

    Binary visible units (the flattened input, values in [0, 1]) and binary
    hidden units, coupled by a weight matrix `kernel` (visible x hidden) with
    a bias on each side. `call(x)` returns the hidden probabilities
    `p(h = 1 | x)`, the RBM's features, so `predict` is `transform`.

    `fit(x)` trains by contrastive divergence in a custom `train_step`: the
    gradient of the log-likelihood is the data's statistics `<v h>` under
    `p(h | v)` minus the model's, estimated from `k` steps of block Gibbs
    sampling (CD-k). With `persistent=True` (PCD, as scikit-learn's
    `BernoulliRBM`) the chains are not restarted at the data: `chains`
    hidden states live in a non-trainable variable and carry on from one
    step to the next. The negative of that gradient goes to the compiled
    optimizer, so plain SGD with the same step size, batch size and
    `chains = batch_size` is scikit-learn's update rule. Each epoch reports
    the mean-field reconstruction MSE (`reconstruction_error`) and
    scikit-learn's one-flip estimate of the pseudo-log-likelihood
    (`pseudo_log_likelihood`, nats per example); the exact one is
    `pseudo_log_likelihood(x)`. Sampling uses stateless random ops keyed by
    `(seed, training step)`, so a run is reproducible. Like the
    autoencoders it takes no labels: `fit(x, y)` with `y` not shaped like `x`
    and `sample_weight` raise a `TfvaeError`.

    Args:
        n_hidden: int. Number of hidden units.
        k: int. Gibbs steps per update (CD-k / PCD-k). Defaults to `1`.
        persistent: bool. Persistent chains (PCD) instead of chains
            restarted at each batch (CD). Defaults to `True`.
        chains: int. Number of persistent chains (PCD only). Defaults to
            `64`.
        seed: int. Seeds the initial weights and the sampling. Defaults to
            `0`.
        **kwargs: Base `keras.Model` arguments such as `name`.

    Example:

    >>> rbm = RBM(n_hidden=64, chains=10, seed=0)
    >>> rbm.compile(optimizer=keras.optimizers.SGD(0.1))
    >>> rbm.fit(x_train, epochs=20, batch_size=10)
    >>> features = rbm.predict(x_test)
    """

    def __init__(self, n_hidden, k=1, persistent=True, chains=64, seed=0, **kwargs):
        super().__init__(**kwargs)
        check_positive_int("n_hidden", n_hidden)
        check_positive_int("k", k)
        check_positive_int("chains", chains)
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise TfvaeError(f"seed must be an integer >= 0. Received: seed={seed!r}")
        # === Config ===
        self.n_hidden = n_hidden
        self.k = k
        self.persistent = bool(persistent)
        self.chains = chains
        self.seed = seed
        self.reconstruction_tracker, self.pll_tracker = base.mean_trackers(
            "reconstruction_error", "pseudo_log_likelihood"
        )

    @property
    def metrics(self):
        return [self.reconstruction_tracker, self.pll_tracker]

    def build(self, input_shape):
        self.n_visible = int(math.prod(input_shape[1:]))
        # scikit-learn's start: weights N(0, 0.01^2), biases zero, chains at h = 0.
        self.kernel = self.add_weight(
            shape=(self.n_visible, self.n_hidden),
            initializer=keras.initializers.RandomNormal(stddev=0.01, seed=self.seed),
            name="kernel",
        )
        self.visible_bias = self.add_weight(
            shape=(self.n_visible,), initializer="zeros", name="visible_bias"
        )
        self.hidden_bias = self.add_weight(
            shape=(self.n_hidden,), initializer="zeros", name="hidden_bias"
        )
        self.sampling_step = self.add_weight(
            shape=(), initializer="zeros", dtype="int64", trainable=False, name="sampling_step"
        )
        if self.persistent:
            self.persistent_hidden = self.add_weight(
                shape=(self.chains, self.n_hidden),
                initializer="zeros",
                trainable=False,
                name="persistent_hidden",
            )
        self.built = True

    @property
    def parameters(self):
        """`(kernel, visible_bias, hidden_bias)`, the arguments of `tfvae.math.rbm`."""
        return self.kernel.value, self.visible_bias.value, self.hidden_bias.value

    def call(self, inputs, training=None):
        return rbm_math.hidden_probabilities(_flatten(inputs), self.kernel, self.hidden_bias)

    def transform(self, x, batch_size=1024):
        """The hidden probabilities `p(h = 1 | x)` of `x`, as a NumPy array."""
        return np.asarray(self.predict(x, batch_size=batch_size, verbose=0))

    def reconstruct(self, x):
        """The one-step mean-field reconstruction `p(v' = 1 | p(h | x))`, flattened."""
        return rbm_math.mean_field_reconstruction(_flatten(x), *self.parameters)

    def free_energy(self, x):
        """`F(x)` per example: `p(x) = exp(-F(x)) / Z`."""
        return rbm_math.free_energy(_flatten(x), *self.parameters)

    def pseudo_log_likelihood(self, x):
        """The exact pseudo-log-likelihood of each example of `x` (nats), as a NumPy array."""
        x = np.asarray(x, np.float32).reshape(len(x), -1)
        return np.concatenate(
            [
                np.asarray(rbm_math.pseudo_log_likelihood(x[i : i + PLL_BATCH], *self.parameters))
                for i in range(0, len(x), PLL_BATCH)
            ]
        )

    def _sample(self, probabilities, key):
        noise = tf.random.stateless_uniform(tf.shape(probabilities), seed=key)
        return tf.cast(noise < probabilities, probabilities.dtype)

    def _update_metrics(self, v, key):
        units = tf.random.stateless_uniform(
            [tf.shape(v)[0]], seed=key, maxval=self.n_visible, dtype=tf.int32
        )
        self.reconstruction_tracker.update_state(rbm_math.reconstruction_error(v, *self.parameters))
        self.pll_tracker.update_state(
            rbm_math.stochastic_pseudo_log_likelihood(v, *self.parameters, units)
        )
        return base.metric_results(self)

    def _unpack(self, data):
        return _flatten(base.unpack_inputs(self, data, weighted=False)[0])

    def train_step(self, data):
        v_positive = self._unpack(data)
        # Calling the model builds it on the first batch, as Keras does for `call`.
        h_positive = self(v_positive, training=True)
        kernel, visible_bias, hidden_bias = self.parameters
        step = self.sampling_step.assign_add(1)
        keys = tf.random.experimental.stateless_split(
            tf.stack([tf.constant(self.seed, tf.int64), step]), num=2 * self.k + 2
        )
        if self.persistent:
            hidden = self.persistent_hidden.value
        else:
            hidden = self._sample(h_positive, keys[0])
        for i in range(self.k):
            v_negative = self._sample(
                rbm_math.visible_probabilities(hidden, kernel, visible_bias), keys[2 * i + 1]
            )
            h_negative = rbm_math.hidden_probabilities(v_negative, kernel, hidden_bias)
            hidden = self._sample(h_negative, keys[2 * i + 2])
        if self.persistent:
            self.persistent_hidden.assign(hidden)
        metrics = self._update_metrics(v_positive, keys[-1])

        # Statistics averaged over the global batch: under tf.distribute the
        # optimizer sums the replicas' gradients.
        examples = tf.cast(base.global_batch_size(v_positive), v_positive.dtype)

        def mean_outer(v, h):
            return tf.matmul(v, h, transpose_a=True) / examples

        def mean(t):
            return tf.reduce_sum(t, axis=0) / examples

        # Optimizers minimize: hand them minus the log-likelihood gradient.
        gradients = [
            mean_outer(v_negative, h_negative) - mean_outer(v_positive, h_positive),
            mean(v_negative) - mean(v_positive),
            mean(h_negative) - mean(h_positive),
        ]
        self.optimizer.apply(gradients, [self.kernel, self.visible_bias, self.hidden_bias])
        return metrics

    def test_step(self, data):
        v = self._unpack(data)
        self(v)
        key = tf.constant([self.seed, -1], tf.int64)
        return self._update_metrics(v, key)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "n_hidden": self.n_hidden,
                "k": self.k,
                "persistent": self.persistent,
                "chains": self.chains,
                "seed": self.seed,
            }
        )
        return config
