"""The conditional variational autoencoder."""

import contextlib
import inspect
import math

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae import checks
from tfvae.errors import TfvaeError
from tfvae.math.losses import kl_diagonal_normals
from tfvae.math.losses import soft_clip
from tfvae.models import base
from tfvae.models import registry
from tfvae.models.encoder import LOG_VARIANCE_BOUNDS
from tfvae.models.vae import VAE
from tfvae.models.vae import vae_arguments
from tfvae.settings import Setting

tfd = tfp.distributions

# Marks the in-graph label check, so that `fit` can turn its failure into one line.
LABEL_CHECK_MARK = "tfvae: labels out of range"


def check_labels(labels, num_classes, where="labels", count=None):
    """Returns `labels` as an int32 array `[n]`; raises `TfvaeError` unless they are classes.

    Args:
        labels: array-like of shape `(n,)` (or `(n, 1)`): whole numbers in
            `[0, num_classes)`.
        num_classes: int. The number of classes the model was built for.
        where: str. Names the labels in messages. Defaults to `"labels"`.
        count: int or None. The number of examples they label, when known.
    """
    if labels is None:
        raise TfvaeError(
            f"the conditional VAE needs {where}: pass one class label per example "
            "(fit(x, y), model((x, y)), sample(labels))"
        )
    array = np.asarray(labels)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise TfvaeError(
            f"{where} must hold one class label per example, shape (n,). "
            f"Received: shape={array.shape}"
        )
    if count is not None and len(array) != count:
        raise TfvaeError(
            f"{where} must hold one class label per example: {count} examples. "
            f"Received: {len(array)} labels"
        )
    if array.dtype.kind not in "iuf" and array.dtype != np.bool_:
        raise TfvaeError(f"{where} must be integer class labels. Received dtype={array.dtype}")
    if array.dtype.kind == "f" and not np.all(np.isfinite(array) & (array == np.floor(array))):
        raise TfvaeError(f"{where} must be whole numbers (class labels); some are not")
    outside = np.flatnonzero((array < 0) | (array >= num_classes))
    if len(outside):
        value = array[outside[0]]
        raise TfvaeError(
            f"{where} must be classes in [0, {num_classes}) for a model of num_classes="
            f"{num_classes}; {len(outside)} are not, such as {value.item()!r}"
        )
    return array.astype(np.int32)


def _split_inputs(x, labels):
    """`(x, labels)` from `x, labels` or from a pair `(x, labels)` given as `x`."""
    if labels is None and isinstance(x, (tuple, list)) and len(x) == 2:
        return x[0], x[1]
    return x, labels


@keras.saving.register_keras_serializable(package="tfvae")
class CVAE(VAE):
    """Conditional variational autoencoder: a VAE whose networks also see a class label.

    With `onehot(y)` the one-hot code of the label, the encoder gives
    `q(z | x, y)` and the decoder `p(x | z, y)`; the prior is `N(0, I)`, or
    with `conditional_prior=True` a learned `p(z | y) = N(mu_y, diag(s_y^2))`
    (one mean and scale per class, starting at `N(0, I)`). The loss per
    example is

        -log p(x | z, y) + beta * KL(q(z | x, y) || p(z | y))

    with the KL between the two diagonal Gaussians in closed form
    (`tfvae.math.losses.kl_diagonal_normals`). The decoder reads
    `concat(z, onehot(y))`. The encoder reads `concat(flatten(x), onehot(y))`
    with a dense body, and with a conv body the image with `num_classes`
    constant channels appended, one-hot, so that every convolution sees the
    label. Everything else (the reparameterized, seeded noise; KL warm-up;
    input dropout; global-batch averaging under `tf.distribute`) is the
    `VAE`'s.

    Labels go with the inputs: `fit(x, y)`, `fit` on a `tf.data.Dataset`
    of `(x, y)` (or `(x, y, sample_weight)`), `evaluate` alike, and
    `model((x, y))` / `predict((x, y))` reconstruct. Labels are integers in
    `[0, num_classes)`; missing, fractional or out-of-range labels raise a
    `TfvaeError` (for a dataset, when the step meets them). The methods
    that read examples (`encode`, `latent_code`, `score`,
    `reconstruct`) take `(x, labels)`, or the pair as one argument.

    Args:
        encoder: `Encoder`. Built with `probabilistic=True`.
        decoder: `Decoder`.
        num_classes: int >= 2. The number of classes. Defaults to `10`.
        conditional_prior: bool. Learn the prior `p(z | y)` instead of
            `N(0, I)`. Defaults to `False`.
        **kwargs: the `VAE`'s `beta`, `likelihood`, `seed`,
            `kl_warmup_steps`, `input_dropout`, and base `keras.Model`
            arguments such as `name`. (`iwae_samples` must stay 1.)

    Example:

    >>> cvae = CVAE(Encoder(16, probabilistic=True), Decoder((28, 28, 1)), num_classes=10)
    >>> cvae.compile(optimizer=keras.optimizers.Adam(1e-3))
    >>> cvae.fit(x_train, y_train, epochs=10)
    >>> sevens = cvae.sample([7] * 16)
    >>> as_threes = cvae.transfer(x_test, y_test, [3] * len(x_test))
    """

    serving_functions = {
        "reconstruct": base.ServingFunction(
            "x", "data", ("reconstruction",), "serving_reconstruct", labels=True
        ),
        "encode": base.ServingFunction(
            "x", "data", ("mean", "scale"), "serving_encode", labels=True
        ),
        "decode": base.ServingFunction(
            "z", "latent", ("reconstruction",), "serving_decode", labels=True
        ),
        "sample": base.ServingFunction("eps", "latent", ("sample",), "serving_sample", labels=True),
        "score": base.ServingFunction(
            "x", "data", ("score", "reconstruction_loss", "kl_loss"), "serving_score", labels=True
        ),
    }

    def __init__(self, encoder, decoder, num_classes=10, conditional_prior=False, **kwargs):
        super().__init__(encoder, decoder, **kwargs)
        num_classes = checks.positive_int("num_classes", num_classes)
        if num_classes < 2:
            raise TfvaeError(f"num_classes must be at least 2. Received: num_classes={num_classes}")
        if self.iwae_samples != 1:
            raise TfvaeError(
                "the conditional VAE trains on the ELBO: iwae_samples must be 1. "
                f"Received: iwae_samples={self.iwae_samples}"
            )
        conditional_prior = checks.boolean("conditional_prior", conditional_prior)

        # === Layers ===
        self.prior_network = None
        if conditional_prior:
            # On a one-hot input each class owns one row: its prior's mean
            # and log-variance, starting at N(0, I).
            self.prior_network = keras.layers.Dense(
                2 * self.latent_dim,
                use_bias=False,
                kernel_initializer="zeros",
                dtype="float32",
                name="conditional_prior",
            )

        # === Config ===
        self.num_classes = num_classes
        self.conditional_prior = conditional_prior

    # --- Labels and the networks' inputs ---

    def one_hot(self, labels, checked=True):
        """`onehot(labels)`, float32 `[batch, num_classes]`.

        Concrete labels are checked with `check_labels`; inside a traced
        step a failed check stops the step (`fit` reports it in one line).
        The exported functions pass `checked=False` (no assertion ops in
        the graph, so that TFLite converts with builtin ops): the caller
        passes classes in range.
        """
        if labels is None:
            check_labels(None, self.num_classes)
        if checked and (not tf.is_tensor(labels) or tf.executing_eagerly()):
            labels = check_labels(np.asarray(labels), self.num_classes)
        labels = tf.reshape(tf.convert_to_tensor(labels), [-1])
        if not labels.dtype.is_integer:
            labels = tf.cast(labels, tf.int32)
        if checked and not tf.executing_eagerly():
            inside = tf.reduce_all((labels >= 0) & (labels < self.num_classes))
            check = tf.debugging.Assert(
                inside, [f"{LABEL_CHECK_MARK} [0, {self.num_classes})", labels]
            )
            with tf.control_dependencies([check]):
                labels = tf.identity(labels)
        # Rows of the identity rather than `tf.one_hot`: LiteRT's int8 ONE_HOT
        # copies its off value unrequantized (0 becomes 0.19), a GATHER of a
        # constant is exact.
        return tf.gather(tf.eye(self.num_classes), tf.cast(labels, tf.int32))

    def _conv_conditioning(self):
        return self.encoder.arch == "conv" and len(self.decoder.data_shape) == 3

    def encoder_input(self, x, onehot):
        """The encoder's input: `x` with its one-hot label appended (see the class docstring)."""
        x = tf.cast(x, tf.float32)
        if self._conv_conditioning():
            planes = onehot[:, None, None, :] * tf.ones_like(x[..., :1])
            return tf.concat([x, planes], axis=-1)
        features = math.prod(self.decoder.data_shape)
        return tf.concat([tf.reshape(x, [-1, features]), onehot], axis=-1)

    def data_shape_of_encoder_input(self, shape):
        """The example shape behind an encoder input shape (the label's part removed)."""
        shape = tuple(shape)
        data_shape = tuple(self.decoder.data_shape)
        if self._conv_conditioning() and shape[:-1] == data_shape[:-1]:
            return (*shape[:-1], shape[-1] - self.num_classes)
        if shape == (math.prod(data_shape) + self.num_classes,):
            return data_shape
        return shape

    def _decoder_input(self, z, onehot):
        return tf.concat([tf.cast(z, tf.float32), onehot], axis=-1)

    # --- Distributions ---

    def prior_parameters(self, onehot):
        """The prior's `(mean, scale)` for labels coded as `onehot`, each `[batch, latent_dim]`."""
        if self.prior_network is None:
            zeros = tf.zeros([tf.shape(onehot)[0], self.latent_dim], tf.float32)
            return zeros, tf.ones_like(zeros)
        mean, raw = tf.split(self.prior_network(onehot), 2, axis=-1)
        return mean, tf.exp(0.5 * soft_clip(raw, *LOG_VARIANCE_BOUNDS))

    def prior(self, labels=None):
        """`p(z | y)` for `labels` as a `tfp.distributions` object (`N(0, I)` without a learned prior)."""
        if labels is None and self.prior_network is None:
            return super().prior()
        mean, scale = self.prior_parameters(self.one_hot(labels))
        return tfd.Independent(tfd.Normal(loc=mean, scale=scale), reinterpreted_batch_ndims=1)

    def _posterior_parameters(self, x, onehot, training=False):
        return self.encoder(self.encoder_input(x, onehot), training=training)

    def posterior(self, x, labels=None, training=False):
        """`q(z | x, y)` as a `tfp.distributions` object."""
        x, labels = _split_inputs(x, labels)
        mu, sigma = self._posterior_parameters(x, self.one_hot(labels), training)
        return tfd.Independent(tfd.Normal(loc=mu, scale=sigma), reinterpreted_batch_ndims=1)

    def observation_distribution(self, z, labels=None, training=False):
        """`p(x | z, y)` as a `tfp.distributions` object."""
        params = self.decoder(self._decoder_input(z, self.one_hot(labels)), training=training)
        return self.likelihood.distribution(params, self.observation_scale())

    # --- What a user calls ---

    def encode(self, x, labels=None, training=False):
        """Returns the posterior's `(mu, sigma)` for inputs `x` with their `labels`."""
        x, labels = _split_inputs(x, labels)
        return self._posterior_parameters(x, self.one_hot(labels), training)

    def _decode_onehot(self, z, onehot, training=False):
        params = self.decoder(self._decoder_input(z, onehot), training=training)
        return self.likelihood.mean(tf.cast(params, tf.float32))

    def decode(self, z, labels=None, training=False):
        """The likelihood's mean for latent codes `z` decoded with `labels`."""
        return self._decode_onehot(z, self.one_hot(labels), training)

    def reconstruct(self, x, labels=None):
        """Decodes the posterior mean of `x` given its `labels`: `model((x, labels))`."""
        x, labels = _split_inputs(x, labels)
        return self((x, labels), training=False)

    def transfer(self, x, labels, new_labels):
        """Style transfer: encodes `x` with `labels`, decodes the same `z = mu` with `new_labels`.

        The latent code keeps what the label does not say (a digit's slant
        and stroke), so `transfer(x, y, [3] * n)` draws each `x` as a 3.
        """
        mu, _ = self.encode(x, labels)
        return self.decode(mu, new_labels)

    def sample(self, labels, eps=None):
        """Decodes draws from the prior `p(z | y)` for each label.

        Args:
            labels: array-like `[n]` of classes in `[0, num_classes)`: one
                sample per label.
            eps: array or tensor `[n, latent_dim]` or None. The standard
                normal draws, to fix them (`z = mean_y + scale_y * eps`).
                Defaults to `None`: drawn from the model's `SeedGenerator`.

        Returns:
            The likelihood's mean for each draw, `[n, ...]` in the data's shape.
        """
        if labels is None or np.ndim(labels) == 0:
            raise TfvaeError(
                "sample(labels) takes one class label per sample, e.g. sample([7] * 16). "
                f"Received: labels={labels!r}"
            )
        onehot = self.one_hot(labels)
        n = int(onehot.shape[0])
        if eps is None:
            eps = keras.random.normal((n, self.latent_dim), seed=self.seed_generator)
        eps = tf.convert_to_tensor(eps, tf.float32)
        if eps.shape.rank != 2 or tuple(eps.shape) != (n, self.latent_dim):
            raise TfvaeError(
                f"eps must have shape (n={n} labels, latent_dim={self.latent_dim}). "
                f"Received: eps of shape {tuple(eps.shape)}"
            )
        return self._sample_onehot(eps, onehot)

    def _sample_onehot(self, eps, onehot):
        mean, scale = self.prior_parameters(onehot)
        return self._decode_onehot(mean + scale * eps, onehot)

    def latent_code(self, x, labels=None):
        """The deterministic latent code of `x` given `labels`: the posterior mean."""
        return self.encode(x, labels)[0]

    def score(self, x, labels=None):
        """The per-example negative ELBO at the posterior mean, as the `VAE`'s, given `labels`.

        Returns:
            A dict of float32 `[batch]` tensors: `score`,
            `reconstruction_loss` and `kl_loss`.
        """
        x, labels = _split_inputs(x, labels)
        return self._score_onehot(x, self.one_hot(labels))

    def _score_onehot(self, x, onehot):
        eps = tf.zeros([tf.shape(x)[0], self.latent_dim], tf.float32)
        terms = self._losses_onehot(x, onehot, training=False, eps=eps)
        return {
            "score": terms["reconstruction_loss"] + terms["kl_loss"],
            "reconstruction_loss": terms["reconstruction_loss"],
            "kl_loss": terms["kl_loss"],
        }

    @property
    def score_description(self):
        """One line saying what `score` computes."""
        return (
            "negative ELBO (nats per example, beta = 1) at the posterior mean z = mu, given the "
            "label y: -log p(x | mu, y) + KL(q(z | x, y) || p(z | y))"
        )

    # --- Exported functions: labels as int32 `y`, unchecked (no assertions in the graph) ---

    def serving_reconstruct(self, x, y):
        """`{"reconstruction": ...}`: `x` decoded from its posterior mean given `y`."""
        onehot = self.one_hot(y, checked=False)
        mu, _ = self._posterior_parameters(x, onehot)
        return {"reconstruction": self._decode_onehot(mu, onehot)}

    def serving_encode(self, x, y):
        """`{"mean": mu, "scale": sigma}` of `q(z | x, y)`."""
        mean, scale = self._posterior_parameters(x, self.one_hot(y, checked=False))
        return {"mean": mean, "scale": scale}

    def serving_decode(self, z, y):
        """`{"reconstruction": decode(z, y)}`."""
        return {"reconstruction": self._decode_onehot(z, self.one_hot(y, checked=False))}

    def serving_sample(self, eps, y):
        """`{"sample": ...}`: decoded prior draws `z = mean_y + scale_y * eps`."""
        return {"sample": self._sample_onehot(eps, self.one_hot(y, checked=False))}

    def serving_score(self, x, y):
        """`score(x, y)` without the label check: the exported `score` function."""
        return self._score_onehot(x, self.one_hot(y, checked=False))

    # --- Training ---

    def __call__(self, inputs, *args, **kwargs):
        # Checked before Keras, which would wrap the error in lines of context.
        if not isinstance(inputs, (tuple, list)) or len(inputs) != 2:
            check_labels(None, self.num_classes)
        x, labels = inputs
        if not tf.is_tensor(labels) or tf.executing_eagerly():
            count = int(x.shape[0]) if getattr(x, "shape", None) is not None else None
            check_labels(np.asarray(labels), self.num_classes, count=count)
        return super().__call__(inputs, *args, **kwargs)

    def call(self, inputs, training=None):
        x, labels = inputs
        onehot = self.one_hot(labels)
        mu, _ = self._posterior_parameters(x, onehot, training)
        return self._decode_onehot(mu, onehot, training)

    def per_example_losses(self, x, labels=None, training=False, eps=None, encoder_input=None):
        """Per-example `loss` (with `beta`), `reconstruction_loss` and `kl_loss`, given `labels`."""
        x, labels = _split_inputs(x, labels)
        return self._losses_onehot(x, self.one_hot(labels), training, eps, encoder_input)

    def _losses_onehot(self, x, onehot, training=False, eps=None, encoder_input=None):
        seen = x if encoder_input is None else encoder_input
        mu, sigma = self._posterior_parameters(seen, onehot, training)
        z = self.reparameterize(mu, sigma, eps)
        params = self.decoder(self._decoder_input(z, onehot), training=training)
        observation = self.likelihood.distribution(params, self.observation_scale())
        reconstruction = -observation.log_prob(tf.cast(x, tf.float32))
        prior_mean, prior_scale = self.prior_parameters(onehot)
        kl = kl_diagonal_normals(mu, sigma, prior_mean, prior_scale)
        return {
            "loss": reconstruction + self.beta * kl,
            "reconstruction_loss": reconstruction,
            "kl_loss": kl,
        }

    def log_importance_weights(self, x, eps, labels=None, training=False):
        """`log p(x, z_k | y) - log q(z_k | x, y)`, `[k, batch]`, for `z_k = mu + sigma * eps[k]`.

        `tfvae.evaluation.metrics` estimates `-log p(x | y)` with it.
        """
        x, labels = _split_inputs(x, labels)
        onehot = self.one_hot(labels)
        mu, sigma = self._posterior_parameters(x, onehot, training)
        posterior = tfd.Independent(tfd.Normal(loc=mu, scale=sigma), reinterpreted_batch_ndims=1)
        prior_mean, prior_scale = self.prior_parameters(onehot)
        prior = tfd.Independent(
            tfd.Normal(loc=prior_mean, scale=prior_scale), reinterpreted_batch_ndims=1
        )
        z = mu + sigma * tf.cast(eps, tf.float32)
        k, batch = tf.shape(z)[0], tf.shape(z)[1]
        tiled = tf.reshape(tf.broadcast_to(onehot, [k, batch, self.num_classes]), [k * batch, -1])
        flat_z = tf.reshape(z, [k * batch, self.latent_dim])
        params = self.decoder(self._decoder_input(flat_z, tiled), training=training)
        params = tf.reshape(params, tf.concat([[k, batch], tf.shape(params)[1:]], axis=0))
        observation = self.likelihood.distribution(
            params, self.observation_scale(), event_ndims=len(x.shape) - 1
        )
        log_px_z = observation.log_prob(tf.broadcast_to(tf.cast(x, tf.float32), tf.shape(params)))
        return log_px_z + prior.log_prob(z) - posterior.log_prob(z)

    def _unpack(self, data):
        """`(x, labels, sample_weight)` from what `fit`, `evaluate` or `predict` pass to a step."""
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(
            tuple(data) if isinstance(data, list) else data
        )
        if isinstance(x, (tuple, list)) and len(x) == 2:
            (x, y), sample_weight = x, (y if sample_weight is None else sample_weight)
        elif isinstance(x, (tuple, list)) and len(x) == 1:
            x = x[0]
        if y is None:
            # Raised while tracing: the next call must trace afresh.
            self.train_function = self.test_function = self.predict_function = None
            check_labels(None, self.num_classes)
        return x, y, base._per_example_weights(sample_weight)

    def train_step(self, data):
        x, labels, sample_weight = self._unpack(data)
        onehot = self.one_hot(labels)
        with tf.GradientTape() as tape:
            eps = self.training_noise(x, 1)[0]
            seen = self.dropped_input(x) if self.input_dropout else None
            terms = self._losses_onehot(x, onehot, training=True, eps=eps, encoder_input=seen)
            objective = (
                terms["reconstruction_loss"] + self.kl_weight(training=True) * terms["kl_loss"]
            )
            loss = base.average_over_global_batch(objective, x, sample_weight)
            loss += base.regularization_loss(self)
        base.apply_gradients(self, tape, loss)
        return self._update_metrics(terms, sample_weight)

    def test_step(self, data):
        x, labels, sample_weight = self._unpack(data)
        terms = self._losses_onehot(x, self.one_hot(labels), training=False)
        return self._update_metrics(terms, sample_weight)

    def predict_step(self, data):
        x, labels, _ = self._unpack(data)
        return self((x, labels), training=False)

    def fit(self, *args, **kwargs):
        bound = inspect.signature(keras.Model.fit).bind(self, *args, **kwargs)
        self._check_array_labels(bound.arguments.get("x"), bound.arguments.get("y"), "y")
        validation = bound.arguments.get("validation_data")
        if isinstance(validation, (tuple, list)) and 1 <= len(validation) <= 3:
            self._check_array_labels(
                validation[0], validation[1] if len(validation) > 1 else None, "validation y"
            )
        with self._label_errors():
            # Past the no-labels check every other model runs.
            return super(base.TakesNoLabelsMixin, self).fit(*bound.args[1:], **bound.kwargs)

    def evaluate(self, *args, **kwargs):
        bound = inspect.signature(keras.Model.evaluate).bind(self, *args, **kwargs)
        self._check_array_labels(bound.arguments.get("x"), bound.arguments.get("y"), "y")
        with self._label_errors():
            return super(base.TakesNoLabelsMixin, self).evaluate(*bound.args[1:], **bound.kwargs)

    def predict(self, x, *args, **kwargs):
        self._check_array_labels(x, None, "labels")
        with self._label_errors():
            return super().predict(x, *args, **kwargs)

    def _check_array_labels(self, x, y, where):
        """Checks labels given as arrays before Keras traces anything."""
        x, y = _split_inputs(x, y)
        if not hasattr(x, "shape") or isinstance(x, tf.data.Dataset):
            return
        check_labels(y, self.num_classes, where=where, count=int(x.shape[0]))

    @contextlib.contextmanager
    def _label_errors(self):
        try:
            yield
        except tf.errors.InvalidArgumentError as error:
            if LABEL_CHECK_MARK not in str(error):
                raise
            raise TfvaeError(
                f"labels must be classes in [0, {self.num_classes}) for a model of "
                f"num_classes={self.num_classes}; the data holds others"
            ) from None

    def build(self, input_shape):
        if input_shape and isinstance(input_shape[0], (tuple, list)):
            input_shape = input_shape[0]  # (x shape, labels shape)
        data_shape = tuple(input_shape[1:])
        if self._conv_conditioning():
            encoder_shape = (None, *data_shape[:-1], data_shape[-1] + self.num_classes)
        else:
            encoder_shape = (None, math.prod(data_shape) + self.num_classes)
        self.encoder.build(encoder_shape)
        self.decoder.build((None, self.latent_dim + self.num_classes))
        if self.prior_network is not None and not self.prior_network.built:
            self.prior_network.build((None, self.num_classes))
        self.built = True

    def get_config(self):
        config = super().get_config()
        config.update(
            {"num_classes": self.num_classes, "conditional_prior": self.conditional_prior}
        )
        return config


def _check_family_labels(config, labels, where):
    """The run's labels: every split labelled, each label a class of `config.num_classes`."""
    for split, y in labels.items():
        if y is None:
            raise TfvaeError(
                f"the conditional VAE needs labels, and {where} gives none for its {split} "
                "split: train it on labelled data (digits, mnist5k, a .npz holding y); "
                "tfvae anomaly trains on unlabelled data and cannot use it"
            )
        check_labels(
            y,
            config.num_classes,
            where=f"{where} {split} labels (--num-classes {config.num_classes})",
        )


# The VAE settings the conditional VAE takes: it trains on the ELBO (no IWAE, no DReG).
CVAE_SETTINGS = ("beta", "kl_warmup_epochs", "input_dropout")


def _build_cvae(config, data_shape, steps_per_epoch):
    encoder, decoder = registry.build_networks(config, data_shape, probabilistic=True)
    return CVAE(
        encoder,
        decoder,
        num_classes=config.num_classes,
        conditional_prior=config.conditional_prior,
        **vae_arguments(config, steps_per_epoch, CVAE_SETTINGS),
        name="cvae",
    )


_VAE_FAMILY = registry.get_family("vae")

registry.register_family(
    registry.ModelFamily(
        name="cvae",
        model_class=CVAE,
        description="conditional variational autoencoder (labels condition encoder and decoder)",
        build=_build_cvae,
        settings=(
            Setting(
                "num_classes",
                10,
                "Number of classes of the labels (conditional VAE); labels are 0 to N-1.",
                minimum=2,
            ),
            Setting(
                "conditional_prior",
                False,
                "Learn the prior p(z | y), one Gaussian per class, instead of N(0, I) "
                "(conditional VAE).",
            ),
            *(_VAE_FAMILY.setting(name) for name in CVAE_SETTINGS),
        ),
        metrics=_VAE_FAMILY.metrics,
        binarize_by_default=True,
        capabilities=("likelihood_bound",),
        check_labels=_check_family_labels,
    )
)
