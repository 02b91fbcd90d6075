"""The VQ-VAE: a conv encoder to a grid of vectors, a codebook with EMA updates, a conv decoder."""

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from tfvae.errors import TfvaeError
from tfvae.math import vector_quantization as vq
from tfvae.models import base
from tfvae.models import registry
from tfvae.models.decoder import check_conv_shape
from tfvae.models.encoder import check_activation
from tfvae.models.encoder import check_positive_int
from tfvae.models.encoder import check_units
from tfvae.settings import Setting

# The restarts' draws are keyed by this plus the seed, and the update count.
RESTART_SEED = 7919
# The stride-2 convolutions when `--filters` is not given: a 7x7 map for 28x28 digits.
DEFAULT_FILTERS = (32, 64)


def _conv(filters, kernel, policy, name, activation=None, strides=1, transpose=False):
    conv = layers.Conv2DTranspose if transpose else layers.Conv2D
    return conv(
        filters,
        kernel,
        strides=strides,
        padding="same",
        activation=activation,
        dtype=policy,
        name=name,
    )


@keras.saving.register_keras_serializable(package="tfvae")
class VQEncoder(keras.Model):
    """Maps images to a grid of vectors: stride-2 convolutions, then a 3x3 and a 1x1 convolution.

    Args:
        latent_dim: int. Size of each vector of the grid (the code dimension).
        filters: tuple of int. Filters of the stride-2 convolutions; the grid
            is the image shrunk by `2 ** len(filters)`. Defaults to `(32, 64)`.
        activation: str. Nonlinearity of the hidden layers. Defaults to `"relu"`.
        **kwargs: Base `keras.Model` arguments such as `name` and `dtype`.
    """

    def __init__(self, latent_dim, filters=DEFAULT_FILTERS, activation="relu", **kwargs):
        super().__init__(**kwargs)
        check_positive_int("latent_dim", latent_dim)
        check_activation(activation)
        filters = check_units("filters", filters)
        if not filters:
            raise TfvaeError(
                "the VQ-VAE needs at least one stride-2 convolution. Received: filters=()"
            )
        policy = self.dtype_policy
        # === Layers ===
        self.body = [
            _conv(n, 3, policy, f"conv_{i}", activation, strides=2) for i, n in enumerate(filters)
        ]
        self.body.append(_conv(filters[-1], 3, policy, "conv_mix", activation))
        self.head = _conv(latent_dim, 1, policy, "head")
        # === Config ===
        self.latent_dim = latent_dim
        self.filters = filters
        self.activation = activation

    def build(self, input_shape):
        base.build_sequence([*self.body, self.head], input_shape)
        self.built = True

    def call(self, inputs, training=None):
        h = inputs
        for layer in self.body:
            h = layer(h, training=training)
        return tf.cast(self.head(h), tf.float32)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "latent_dim": self.latent_dim,
                "filters": list(self.filters),
                "activation": self.activation,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="tfvae")
class VQDecoder(keras.Model):
    """Maps a grid of vectors to the likelihood's parameters of an image: the encoder mirrored.

    Args:
        output_shape: tuple of int. `(height, width, channels)` of one image.
        filters: tuple of int. As for `VQEncoder`. Defaults to `(32, 64)`.
        activation: str. Defaults to `"relu"`.
        **kwargs: Base `keras.Model` arguments such as `name` and `dtype`.
    """

    def __init__(self, output_shape, filters=DEFAULT_FILTERS, activation="relu", **kwargs):
        super().__init__(**kwargs)
        output_shape = tuple(int(d) for d in output_shape)
        filters = check_units("filters", filters)
        check_activation(activation)
        if len(output_shape) != 3:
            raise TfvaeError(
                "the VQ-VAE takes images (height, width, channels). "
                f"Received: examples of shape {output_shape}"
            )
        check_conv_shape(output_shape, filters)
        policy = self.dtype_policy
        # === Layers ===
        self.body = [_conv(filters[-1], 3, policy, "conv_mix", activation)]
        self.body += [
            _conv(n, 3, policy, f"deconv_{i}", activation, strides=2, transpose=True)
            for i, n in enumerate(reversed(filters))
        ]
        self.output_layer = _conv(output_shape[-1], 3, policy, "output")
        # === Config ===
        self.data_shape = output_shape
        self.filters = filters
        self.activation = activation

    @property
    def grid_shape(self):
        """`(height, width)` of the code grid."""
        factor = 2 ** len(self.filters)
        return self.data_shape[0] // factor, self.data_shape[1] // factor

    def build(self, input_shape):
        base.build_sequence([*self.body, self.output_layer], input_shape)
        self.built = True

    def set_output_bias(self, params):
        """Sets the output bias (one per channel) to the spatial mean of `params`."""
        params = np.asarray(params, np.float32)
        kernel, _ = self.output_layer.get_weights()
        self.output_layer.set_weights([kernel, params.reshape(-1, params.shape[-1]).mean(axis=0)])

    def call(self, inputs, training=None):
        h = inputs
        for layer in self.body:
            h = layer(h, training=training)
        return self.output_layer(h)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "output_shape": list(self.data_shape),
                "filters": list(self.filters),
                "activation": self.activation,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="tfvae")
class VectorQuantizer(keras.layers.Layer):
    """Replaces each vector by its nearest code; the codebook follows moving averages (EMA).

    In training, each call updates the exponential moving averages of how
    many vectors each code took and of their sum (van den Oord et al.,
    2017, appendix A.1); the codebook is their ratio. Under `tf.distribute`
    the counts and sums are summed over the replicas first, so every
    replica holds the codebook one device would. A code whose average count
    falls below `dead_code_threshold` is restarted at an encoder output of
    the global batch, drawn with a stateless generator (the same draw on
    every replica). The averages start at zero, so the first step starts
    every code that no vector chose at an encoder output.

    Args:
        codebook_size: int. Number of codes K.
        code_dim: int. Size of each code.
        decay: float. The moving averages' decay. Defaults to `0.99`.
        dead_code_threshold: float. Restart a code whose average count of
            vectors per step falls below this. Defaults to `1.0`.
        epsilon: float. Laplace smoothing of the counts. Defaults to `1e-5`.
        seed: int. Key of the restarts' draws. Defaults to `0`.
        **kwargs: Base `keras.layers.Layer` arguments such as `name`.

    Example:

    >>> quantizer = VectorQuantizer(32, 16)
    >>> quantized, indices, counts = quantizer(z, training=False)
    """

    def __init__(
        self,
        codebook_size,
        code_dim,
        decay=0.99,
        dead_code_threshold=1.0,
        epsilon=1e-5,
        seed=0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_positive_int("codebook_size", codebook_size)
        check_positive_int("code_dim", code_dim)
        # === Config ===
        self.codebook_size = codebook_size
        self.code_dim = code_dim
        self.decay = float(decay)
        self.dead_code_threshold = float(dead_code_threshold)
        self.epsilon = float(epsilon)
        self.seed = int(seed)

    def build(self, input_shape):
        shape = (self.codebook_size, self.code_dim)
        state = {"trainable": False, "aggregation": "only_first_replica"}
        self.codebook = self.add_weight(
            shape=shape, initializer="glorot_uniform", name="codebook", **state
        )
        self.ema_count = self.add_weight(
            shape=(self.codebook_size,), initializer="zeros", name="ema_count", **state
        )
        self.ema_sum = self.add_weight(shape=shape, initializer="zeros", name="ema_sum", **state)
        self.updates = self.add_weight(
            shape=(), initializer="zeros", dtype="int64", name="updates", **state
        )
        self.built = True

    def lookup(self, indices):
        """The codes of `indices` (int, any shape), with a last axis of `code_dim`."""
        return tf.gather(tf.convert_to_tensor(self.codebook), indices)

    def call(self, z, training=False):
        """Returns `(quantized, indices, counts)` for vectors `z` `[..., code_dim]`.

        `indices` (int32) has `z`'s shape without its last axis; `counts`
        `[K]` are the vectors each code took in the global batch (all
        replicas).
        """
        z = tf.cast(z, tf.float32)
        flat = tf.reshape(z, [-1, self.code_dim])
        indices = vq.nearest_codes(flat, self.codebook)
        counts, sums = vq.code_statistics(flat, indices, self.codebook_size)
        counts, sums = _sum_over_replicas(counts), _sum_over_replicas(sums)
        quantized = tf.reshape(self.lookup(indices), tf.shape(z))
        if training:
            self._update_codebook(flat, counts, sums)
        return quantized, tf.reshape(indices, tf.shape(z)[:-1]), counts

    def _update_codebook(self, flat, counts, sums):
        ema_count = vq.ema_update(self.ema_count, counts, self.decay)
        ema_sum = vq.ema_update(self.ema_sum, sums, self.decay)
        codebook = vq.codebook_from_ema(ema_count, ema_sum, self.epsilon)
        pool = _gather_over_replicas(flat)
        key = tf.stack(
            [tf.constant(self.seed + RESTART_SEED, tf.int64), tf.convert_to_tensor(self.updates)]
        )
        picks = tf.random.stateless_uniform(
            [self.codebook_size], seed=key, maxval=tf.shape(pool)[0], dtype=tf.int32
        )
        fresh = tf.gather(pool, picks)
        dead = ema_count < self.dead_code_threshold
        self.codebook.assign(tf.where(dead[:, None], fresh, codebook))
        self.ema_sum.assign(tf.where(dead[:, None], fresh, ema_sum))
        self.ema_count.assign(tf.where(dead, tf.ones_like(ema_count), ema_count))
        self.updates.assign_add(1)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape), tuple(input_shape[:-1]), (self.codebook_size,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "codebook_size": self.codebook_size,
                "code_dim": self.code_dim,
                "decay": self.decay,
                "dead_code_threshold": self.dead_code_threshold,
                "epsilon": self.epsilon,
                "seed": self.seed,
            }
        )
        return config


def _sum_over_replicas(value):
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return value
    return context.all_reduce(tf.distribute.ReduceOp.SUM, value)


def _gather_over_replicas(value):
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return value
    return context.all_gather(value, axis=0)


@keras.saving.register_keras_serializable(package="tfvae")
class VQVAE(base.EncoderDecoderModel):
    """Vector-quantised autoencoder (VQ-VAE) with an optional learned prior over its codes.

    `x -> z_e = encoder(x)` (a grid of vectors) `-> z_q` (each vector
    replaced by its nearest code) `-> decoder(z_q)`. Trained on the
    reconstruction error plus `commitment_cost * ||z_e - sg(z_q)||^2`, with
    the straight-through gradient through the quantizer; the codebook is
    not trained by gradients but follows moving averages (see
    `VectorQuantizer`). `fit` and `evaluate` report `loss`,
    `reconstruction_loss`, `commitment_loss`, `perplexity` (the codes in
    effective use in a batch: `exp` of the entropy of their frequencies)
    and `codebook_usage` (the fraction of codes a batch used).

    A code is an integer map: `encode(x)` returns the indices of the codes,
    `[batch, positions]` in raster order, and `decode(indices)` the
    reconstruction; `latent_dim` is the number of positions. After
    `tfvae train-prior`, `prior` holds a `CodePrior` over the index maps
    and `sample` draws from it.

    Args:
        encoder: `VQEncoder`.
        decoder: `VQDecoder`.
        quantizer: `VectorQuantizer`.
        likelihood: str. `"gaussian"` (mean squared error) or `"bernoulli"`.
            Defaults to `"gaussian"`.
        commitment_cost: float. Weight of the commitment loss. Defaults to `0.25`.
        prior: `CodePrior` or None. Defaults to `None`.
        **kwargs: Base `keras.Model` arguments such as `name`.

    Example:

    >>> vqvae = VQVAE(VQEncoder(16), VQDecoder((28, 28, 1)), VectorQuantizer(32, 16))
    >>> vqvae.compile(optimizer="adam")
    >>> vqvae.fit(x_train, epochs=5)
    >>> indices = vqvae.encode(x_test)  # int32 [n, 49]
    """

    serving_functions = {
        "reconstruct": base.ServingFunction(
            "x", "data", ("reconstruction",), "serving_reconstruct", on_device=False
        ),
        "encode": base.ServingFunction("x", "data", ("codes",), "serving_encode"),
        "decode": base.ServingFunction("z", "latent", ("reconstruction",), "serving_decode"),
        "score": base.ServingFunction("x", "data", ("score",), "score", on_device=False),
        "sample": base.ServingFunction("eps", "latent", ("sample",), "serving_sample", "prior"),
    }

    def __init__(
        self,
        encoder,
        decoder,
        quantizer,
        likelihood="gaussian",
        commitment_cost=0.25,
        prior=None,
        **kwargs,
    ):
        super().__init__(encoder, decoder, likelihood, **kwargs)
        # === Layers ===
        self.quantizer = quantizer
        self.prior = prior
        # === Config ===
        self.commitment_cost = float(commitment_cost)
        self.trackers = base.mean_trackers(
            "loss", "reconstruction_loss", "commitment_loss", "perplexity", "codebook_usage"
        )

    @property
    def metrics(self):
        return list(self.trackers)

    @property
    def grid_shape(self):
        """`(height, width)` of the code map."""
        return self.decoder.grid_shape

    @property
    def latent_dim(self):
        """Positions of the code map: the length of the index vectors `decode` takes."""
        height, width = self.grid_shape
        return height * width

    @property
    def codebook_size(self):
        return self.quantizer.codebook_size

    def build(self, input_shape):
        grid = (None, *self.grid_shape, self.encoder.latent_dim)
        for layer, shape in (
            (self.encoder, input_shape),
            (self.quantizer, grid),
            (self.decoder, grid),
        ):
            if not layer.built:
                layer.build(shape)
        if self.prior is not None and not self.prior.built:
            self.prior.build((None, self.latent_dim))
        self.built = True

    def encode(self, x, training=False):
        """The code indices of `x`: int32 `[batch, positions]`, the grid in raster order."""
        _, indices, _ = self.quantizer(self.encoder(x, training=training))
        return tf.reshape(indices, [tf.shape(indices)[0], -1])

    def decode(self, indices, training=False):
        """The reconstruction from code indices `[batch, positions]` (int, or floats holding integers)."""
        indices = tf.convert_to_tensor(indices)
        if indices.dtype.is_floating:
            indices = tf.round(indices)
        indices = tf.clip_by_value(tf.cast(indices, tf.int32), 0, self.codebook_size - 1)
        grid = tf.reshape(indices, [-1, *self.grid_shape])
        params = self.decoder(self.quantizer.lookup(grid), training=training)
        return self.likelihood.mean(tf.cast(params, tf.float32))

    def latent_code(self, x):
        """The quantised vectors of `x` averaged over the grid, `[batch, code_dim]` (for pictures)."""
        quantized, _, _ = self.quantizer(self.encoder(x))
        return tf.reduce_mean(quantized, axis=[1, 2])

    def code_counts(self, x, batch_size=500):
        """How many positions of `x`'s code maps took each code, numpy `[codebook_size]`."""
        counts = np.zeros(self.codebook_size, np.int64)
        for start in range(0, len(x), batch_size):
            indices = np.asarray(self.encode(x[start : start + batch_size])).reshape(-1)
            counts += np.bincount(indices, minlength=self.codebook_size)
        return counts

    def sample(self, num_samples=None, seed=0, noise=None):
        """Images decoded from code maps drawn from the learned prior.

        Args:
            num_samples: int or None. How many; `None` takes `noise`'s batch.
            seed: int. Key of the draw when `noise` is `None`. Defaults to `0`.
            noise: array or None. Uniform noise in [0, 1), `[n, positions]`,
                for inverse-CDF sampling position by position.

        Returns:
            `(images, indices)`.
        """
        self._check_prior()
        if noise is None:
            noise = tf.random.stateless_uniform([num_samples, self.latent_dim], seed=[seed, 0])
        indices = self.prior.sample_codes(noise)
        return self.decode(indices), indices

    def serving_sample(self, eps):
        """`{"sample": ...}` from standard normal `eps` `[batch, positions]`, the exported `sample`.

        Each `eps` becomes the uniform noise `Phi(eps)` of inverse-CDF
        sampling at its position, so a caller draws normal noise as for a VAE.
        """
        uniform = 0.5 * (1.0 + tf.math.erf(tf.cast(eps, tf.float32) / np.sqrt(2.0)))
        return {"sample": self.decode(self.prior.sample_codes(uniform))}

    def serving_encode(self, x):
        """`{"codes": encode(x)}`, the exported `encode` function."""
        return {"codes": self.encode(x)}

    def with_prior(self, prior):
        """A VQ-VAE sharing this one's networks and codebook, with `prior` as its prior."""
        model = VQVAE(
            self.encoder,
            self.decoder,
            self.quantizer,
            likelihood=self.likelihood.name,
            commitment_cost=self.commitment_cost,
            prior=prior,
            name=self.name,
        )
        model.build((None, *self.decoder.data_shape))
        return model

    def _check_prior(self):
        if self.prior is None:
            raise TfvaeError(
                "this VQ-VAE has no prior over its codes yet; train one with "
                "tfvae train-prior RUN_DIR"
            )

    def call(self, inputs, training=None):
        quantized, _, _ = self.quantizer(self.encoder(inputs, training=training))
        params = self.decoder(quantized, training=training)
        return self.likelihood.mean(tf.cast(params, tf.float32))

    def per_example_losses(self, x, target=None, training=False):
        """The loss terms, each `[batch]`, and the global batch's code `counts` `[K]`."""
        target = x if target is None else target
        z = self.encoder(x, training=training)
        quantized, _, counts = self.quantizer(z, training=training)
        params = self.decoder(vq.straight_through(z, quantized), training=training)
        reconstruction = self.likelihood.reconstruction_error(target, params)
        commitment = vq.commitment_loss(z, quantized)
        return {
            "loss": reconstruction + self.commitment_cost * commitment,
            "reconstruction_loss": reconstruction,
            "commitment_loss": commitment,
            "counts": counts,
        }

    def score(self, x):
        """The per-example score of `x`: `{"score": reconstruction error}`, float32 `[batch]`."""
        return {"score": self.per_example_losses(x)["reconstruction_loss"]}

    @property
    def score_description(self):
        """One line saying what `score` computes."""
        return "reconstruction error from the quantised code"

    def _update_metrics(self, terms):
        loss, reconstruction, commitment, perplexity, usage = self.trackers
        loss.update_state(terms["loss"])
        reconstruction.update_state(terms["reconstruction_loss"])
        commitment.update_state(terms["commitment_loss"])
        perplexity.update_state(vq.perplexity(terms["counts"]))
        usage.update_state(vq.codebook_usage(terms["counts"]))
        return base.metric_results(self)

    def train_step(self, data):
        x, target, _ = base.unpack_inputs(self, data, weighted=False)
        with tf.GradientTape() as tape:
            terms = self.per_example_losses(x, target, training=True)
            loss = base.average_over_global_batch(terms["loss"], x)
            loss += base.regularization_loss(self)
        base.apply_gradients(self, tape, loss)
        return self._update_metrics(terms)

    def test_step(self, data):
        x, target, _ = base.unpack_inputs(self, data, weighted=False)
        return self._update_metrics(self.per_example_losses(x, target, training=False))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "quantizer": keras.layers.serialize(self.quantizer),
                "commitment_cost": self.commitment_cost,
                "prior": None if self.prior is None else keras.layers.serialize(self.prior),
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["quantizer"] = keras.layers.deserialize(config["quantizer"])
        if config.get("prior") is not None:
            config["prior"] = keras.layers.deserialize(config["prior"])
        return super().from_config(config)


def _build_vqvae(config, data_shape, steps_per_epoch):
    if len(data_shape) != 3:
        raise TfvaeError(
            "the VQ-VAE takes images (height, width, channels). "
            f"Received: examples of shape {tuple(data_shape)}"
        )
    policy = config.resolved_precision
    filters = DEFAULT_FILTERS if config.filters is None else tuple(config.filters)
    check_conv_shape(data_shape, filters)
    encoder = VQEncoder(config.latent_dim, filters, config.activation, dtype=policy, name="encoder")
    decoder = VQDecoder(data_shape, filters, config.activation, dtype=policy, name="decoder")
    quantizer = VectorQuantizer(
        config.codebook_size,
        config.latent_dim,
        decay=config.ema_decay,
        dead_code_threshold=config.dead_code_threshold,
        seed=config.seed,
        name="quantizer",
    )
    return VQVAE(
        encoder,
        decoder,
        quantizer,
        likelihood=config.resolved_likelihood,
        commitment_cost=config.commitment_cost,
        name="vqvae",
    )


registry.register_family(
    registry.ModelFamily(
        name="vqvae",
        model_class=VQVAE,
        description="vector-quantised autoencoder (VQ-VAE; --latent-dim is the code dimension)",
        build=_build_vqvae,
        settings=(
            Setting("codebook_size", 32, "Number of codes in the VQ-VAE's codebook.", minimum=2),
            Setting(
                "commitment_cost",
                0.25,
                "Weight of the VQ-VAE's commitment loss ||z_e - sg(z_q)||^2.",
                minimum=0,
            ),
            Setting(
                "ema_decay",
                0.99,
                "Decay of the moving averages the VQ-VAE's codebook follows.",
                minimum=0,
                maximum=1,
                exclusive_maximum=True,
            ),
            Setting(
                "dead_code_threshold",
                1.0,
                "Restart a VQ-VAE code at an encoder output when its moving-average count "
                "of vectors per step falls below this.",
                minimum=0,
            ),
        ),
        metrics=("loss", "reconstruction_loss", "commitment_loss", "perplexity", "codebook_usage"),
        capabilities=("codebook",),
        objective="val_reconstruction_loss",
        arch="conv",
    )
)
