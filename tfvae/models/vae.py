"""The variational autoencoder."""

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae import checks
from tfvae.errors import TfvaeError
from tfvae.math.losses import dreg_surrogate
from tfvae.math.losses import dropout_drop_rate
from tfvae.math.losses import dropout_keep_mask
from tfvae.math.losses import importance_weighted_bound
from tfvae.math.losses import soft_clip
from tfvae.models import base
from tfvae.models import registry
from tfvae.settings import Setting

tfd = tfp.distributions

# The Gaussian likelihood's shared scale stays within [exp(-6), exp(6)], about
# 2.5e-3 to 400: a learned scale on data with constant pixels would otherwise
# shrink towards zero and the likelihood towards infinity.
LOG_SCALE_BOUNDS = (-6.0, 6.0)
# The weight stores log-scale / 10: Adam moves a weight by about the learning
# rate per step, and at 1e-3 an unscaled log-scale needs thousands of steps to
# reach typical values (log 0.1 = -2.3) while the decoder waits on it.
LOG_SCALE_PER_WEIGHT_UNIT = 10.0
# Folded into the noise key: input dropout draws from a stream apart from eps.
INPUT_DROPOUT_STREAM = 1


@keras.saving.register_keras_serializable(package="tfvae")
class VAE(base.EncoderDecoderModel):
    """Variational autoencoder trained on the evidence lower bound (ELBO).

    The encoder gives the posterior `q(z|x) = N(mu, diag(sigma^2))`; the
    prior is `p(z) = N(0, I)`; both are `tfp.distributions` objects. The train
    step draws `z = mu + sigma * eps`, `eps ~ N(0, I)` (the reparameterization
    trick, so gradients reach the encoder) from a `keras.random.SeedGenerator`
    seeded with `seed`, and minimises per example

        loss = -log p(x | z) + beta * KL(q(z|x) || p(z))

    with TFP's analytic KL. Per-example losses are averaged over the global
    batch (`tf.nn.compute_average_loss`), so the same code trains correctly
    under `tf.distribute` strategies. `fit`, `evaluate` and the progress bar
    report `loss`, `reconstruction_loss`, `kl_loss` and `neg_elbo` (the
    true negative ELBO, `reconstruction_loss + kl_loss`, whatever `beta`
    is), in nats per example.

    `call(x)` returns the likelihood's mean decoded from the posterior mean
    (deterministic), so `predict(x)` gives reconstructions. The model
    reconstructs its input and takes no labels: `fit(x, y)` with a `y` not
    shaped like `x` raises a `TfvaeError`. With `sample_weight` the loss is
    `sum(sample_weight * loss) / batch_size` and the reported metrics are
    weighted means.

    `score(x)` is the per-example score of evaluation, anomaly detection and
    the exported `score` signature (the negative ELBO at the posterior
    mean), and `serving_functions` lists the exported functions.

    Args:
        encoder: `Encoder`. Built with `probabilistic=True`.
        decoder: `Decoder`.
        beta: float. Weight of the KL term (beta-VAE). Defaults to `1.0`.
        likelihood: str. `"bernoulli"` (decoder gives logits) or
            `"gaussian"` (decoder gives the mean; a shared scale is
            learned). Defaults to `"bernoulli"`.
        seed: int or None. Seed of the noise `eps`. Defaults to `None`.
        iwae_samples: int. With `k > 1`, train on the importance-weighted
            bound with `k` samples per example (IWAE, Burda et al. 2016),
            which is tighter than the ELBO; `loss` then reports the negative
            bound. Defaults to `1` (the ELBO).
        kl_warmup_steps: int. Anneal the KL weight linearly from 0 to
            `beta` over this many optimizer steps (computed in the graph from
            `optimizer.iterations`, so it resumes exactly). Defaults to `0`.
        input_dropout: float in [0, 1). In training, the encoder sees the
            input with this fraction of its features dropped (zeroed, the
            rest scaled by `1 / (1 - rate)`), drawn like `eps`; the decoder
            still reconstructs the whole input. `q(z | x)` stays a valid
            posterior, so the objective is still a bound on `log p(x)`; it
            regularises the encoder against overfitting small data.
            Defaults to `0.0`.
        dreg: bool. With `iwae_samples > 1`, train the encoder on doubly
            reparameterized gradients of the bound (DReG, Tucker et al.
            2018; `tfvae.math.losses.dreg_surrogate`): the same expected
            gradient with a lower variance, which keeps the encoder
            learning as `k` grows. Costs one more pass back through the
            decoder. Defaults to `False`.
        latent_sampler: Keras layer or None. A sampler fitted after
            training (`tfvae fit-sampler`: `GaussianMixtureSampler`,
            `TwoStageSampler`) mapping `eps ~ N(0, I)` `[n, latent_dim]` to
            latent codes; `sample` and the exported `sample` then decode
            `latent_sampler(eps)` instead of `eps`. Defaults to `None`.
        **kwargs: Base `keras.Model` arguments such as `name`.

    Example:

    >>> vae = VAE(Encoder(16, probabilistic=True), Decoder((28, 28, 1)), seed=0)
    >>> vae.compile(optimizer=keras.optimizers.Adam(1e-3))
    >>> vae.fit(x_train, epochs=10, validation_data=(x_val,))
    >>> images = vae.sample(16)
    """

    serving_functions = {
        "reconstruct": base.ServingFunction(
            "x", "data", ("reconstruction",), "serving_reconstruct"
        ),
        "encode": base.ServingFunction("x", "data", ("mean", "scale"), "serving_encode"),
        "decode": base.ServingFunction("z", "latent", ("reconstruction",), "serving_decode"),
        "sample": base.ServingFunction("eps", "latent", ("sample",), "serving_sample"),
        "score": base.ServingFunction(
            "x", "data", ("score", "reconstruction_loss", "kl_loss"), "score"
        ),
    }

    def __init__(
        self,
        encoder,
        decoder,
        beta=1.0,
        likelihood="bernoulli",
        seed=None,
        iwae_samples=1,
        kl_warmup_steps=0,
        input_dropout=0.0,
        dreg=False,
        latent_sampler=None,
        **kwargs,
    ):
        super().__init__(encoder, decoder, likelihood, **kwargs)
        if not getattr(encoder, "probabilistic", False):
            raise TfvaeError("the VAE needs an Encoder built with probabilistic=True")
        beta = checks.number_in("beta", beta, low=0)
        iwae_samples = checks.positive_int("iwae_samples", iwae_samples)
        kl_warmup_steps = checks.non_negative_int("kl_warmup_steps", kl_warmup_steps)
        input_dropout = checks.number_in(
            "input_dropout", input_dropout, low=0, high=1, high_open=True
        )
        _check_settings({"dreg": checks.boolean("dreg", dreg), "iwae_samples": iwae_samples})

        # === Layers ===
        self.seed_generator = keras.random.SeedGenerator(seed, name="noise_seed")
        self.observation_log_scale = None
        if self.likelihood.has_scale:
            self.observation_log_scale = self.add_weight(
                shape=(), initializer="zeros", name="observation_log_scale"
            )
        self.latent_sampler = latent_sampler

        # === Config ===
        self.beta = beta
        self.seed = seed
        self.iwae_samples = iwae_samples
        self.kl_warmup_steps = kl_warmup_steps
        self.input_dropout = input_dropout
        self.dreg = bool(dreg)
        (
            self.loss_tracker,
            self.reconstruction_tracker,
            self.kl_tracker,
            self.neg_elbo_tracker,
        ) = base.mean_trackers("loss", "reconstruction_loss", "kl_loss", "neg_elbo")

    @property
    def metrics(self):
        return [
            self.loss_tracker,
            self.reconstruction_tracker,
            self.kl_tracker,
            self.neg_elbo_tracker,
        ]

    def observation_scale(self):
        """The Gaussian likelihood's learned scale, or `None` for Bernoulli."""
        if self.observation_log_scale is None:
            return None
        log_scale = LOG_SCALE_PER_WEIGHT_UNIT * tf.cast(self.observation_log_scale, tf.float32)
        return tf.exp(soft_clip(log_scale, *LOG_SCALE_BOUNDS))

    def prior(self):
        """`p(z) = N(0, I)` as a `tfp.distributions` object."""
        zeros = tf.zeros([self.latent_dim], tf.float32)
        return tfd.Independent(tfd.Normal(loc=zeros, scale=1.0), reinterpreted_batch_ndims=1)

    def posterior(self, x, training=False):
        """`q(z | x) = N(mu, diag(sigma^2))` as a `tfp.distributions` object."""
        mu, sigma = self.encoder(x, training=training)
        return tfd.Independent(tfd.Normal(loc=mu, scale=sigma), reinterpreted_batch_ndims=1)

    def observation_distribution(self, z, training=False):
        """`p(x | z)` as a `tfp.distributions` object."""
        params = self.decoder(z, training=training)
        return self.likelihood.distribution(params, self.observation_scale())

    def encode(self, x, training=False):
        """Returns the posterior's `(mu, sigma)` for inputs `x`."""
        return self.encoder(x, training=training)

    def reparameterize(self, mu, sigma, eps=None):
        """`z = mu + sigma * eps`; `eps ~ N(0, I)` from the model's seed unless given."""
        if eps is None:
            eps = keras.random.normal(tf.shape(mu), seed=self.seed_generator)
        return mu + sigma * eps

    def sample(self, n, eps=None):
        """Decodes draws `z = eps` from the prior `N(0, I)`, or `z = latent_sampler(eps)`.

        Args:
            n: int or None. Number of samples. May be `None` when `eps` is
                given; otherwise it must equal the number of rows of `eps`.
            eps: array or tensor `[n, latent_dim]` or None. The draws, to fix
                them. Defaults to `None`: drawn from the model's
                `SeedGenerator`.

        Returns:
            The likelihood's mean for each draw, `[n, ...]` in the data's shape.
        """
        if n is not None and (isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1):
            raise TfvaeError(f"n must be a positive integer or None. Received: n={n!r}")
        if eps is None:
            if n is None:
                raise TfvaeError("sample(n, eps) needs n, eps or both. Received: n=None, eps=None")
            eps = keras.random.normal((int(n), self.latent_dim), seed=self.seed_generator)
        eps = tf.convert_to_tensor(eps, tf.float32)
        if eps.shape.rank != 2 or eps.shape[-1] != self.latent_dim:
            raise TfvaeError(
                f"eps must have shape (n, latent_dim={self.latent_dim}). "
                f"Received: eps of shape {tuple(eps.shape)}"
            )
        if n is not None and eps.shape[0] is not None and eps.shape[0] != n:
            raise TfvaeError(
                "sample(n, eps) needs eps with n rows. "
                f"Received: n={n} and eps of shape {tuple(eps.shape)}"
            )
        if self.latent_sampler is not None:
            return self.decode(self.latent_sampler(eps))
        return self.decode(eps)

    @property
    def sample_source(self):
        if self.latent_sampler is not None:
            return type(self.latent_sampler).__name__
        return "prior"

    def latent_code(self, x):
        """The deterministic latent code of `x`: the posterior mean `mu`, `[batch, latent_dim]`."""
        return self.encode(x)[0]

    def score(self, x):
        """The per-example score of `x`: the negative ELBO at the posterior mean.

        `-log p(x | z = mu) + KL(q(z|x) || p(z))` in nats, with the
        expectation taken at `eps = 0`, so an input always gets the same
        score and an anomaly threshold stays put (a Monte Carlo estimate
        would need many noise draws per request). The KL term is exact and
        unweighted: `beta` weights training, not the bound.

        Returns:
            A dict of float32 `[batch]` tensors: `score`,
            `reconstruction_loss` and `kl_loss`.
        """
        eps = tf.zeros([tf.shape(x)[0], self.latent_dim], tf.float32)
        terms = self.per_example_losses(x, training=False, eps=eps)
        return {
            "score": terms["reconstruction_loss"] + terms["kl_loss"],
            "reconstruction_loss": terms["reconstruction_loss"],
            "kl_loss": terms["kl_loss"],
        }

    @property
    def score_description(self):
        """One line saying what `score` computes."""
        return (
            "negative ELBO (nats per example, beta = 1) at the posterior mean z = mu: "
            "-log p(x | mu) + KL(q(z | x) || p(z))"
        )

    def serving_encode(self, x):
        """`{"mean": mu, "scale": sigma}` of `q(z | x)`, the exported `encode` function."""
        mean, scale = self.encode(x)
        return {"mean": mean, "scale": scale}

    def serving_sample(self, eps):
        """`{"sample": sample(None, eps)}`: decoded prior draws `z = eps`, the exported `sample`."""
        return {"sample": self.sample(None, eps=eps)}

    def call(self, inputs, training=None):
        mu, _ = self.encode(inputs, training=training)
        return self.decode(mu, training=training)

    def kl_weight(self, training=False):
        """The KL weight in the training objective: `beta`, ramped up during warm-up."""
        if not training or not self.kl_warmup_steps or getattr(self, "optimizer", None) is None:
            return tf.constant(self.beta, tf.float32)
        progress = tf.cast(self.optimizer.iterations, tf.float32) / float(self.kl_warmup_steps)
        return self.beta * tf.minimum(progress, 1.0)

    def per_example_losses(self, x, training=False, eps=None, encoder_input=None):
        """Returns per-example `loss` (negative ELBO), `reconstruction_loss` and `kl_loss`.

        One posterior sample per example; `eps` fixes it. `loss` uses `beta`
        (not the warm-up weight), so it is comparable across epochs.
        `encoder_input` (default `x`) is what the encoder sees.
        """
        mu, sigma = self.encoder(x if encoder_input is None else encoder_input, training=training)
        posterior = tfd.Independent(tfd.Normal(loc=mu, scale=sigma), reinterpreted_batch_ndims=1)
        z = self.reparameterize(mu, sigma, eps)
        observation = self.observation_distribution(z, training=training)
        reconstruction = -observation.log_prob(tf.cast(x, tf.float32))
        kl = posterior.kl_divergence(self.prior())
        return {
            "loss": reconstruction + self.beta * kl,
            "reconstruction_loss": reconstruction,
            "kl_loss": kl,
        }

    def _log_weight_terms(self, x, eps, training=False, encoder_input=None):
        """Returns `(log p(x|z_k), log p(z_k) - log q(z_k|x), posterior)`, terms `[k, batch]`."""
        mu, sigma = self.encoder(x if encoder_input is None else encoder_input, training=training)
        posterior = tfd.Independent(tfd.Normal(loc=mu, scale=sigma), reinterpreted_batch_ndims=1)
        z = mu + sigma * tf.cast(eps, tf.float32)
        log_px_z = self._log_likelihood_of_samples(x, z, training=training)
        log_ratio = self.prior().log_prob(z) - posterior.log_prob(z)
        return log_px_z, log_ratio, posterior

    def _log_likelihood_of_samples(self, x, z, training=False):
        """`log p(x | z_k)`, `[k, batch]`, for samples `z` of shape `[k, batch, latent_dim]`."""
        k = tf.shape(z)[0]
        batch = tf.shape(z)[1]
        params = self.decoder(tf.reshape(z, [k * batch, self.latent_dim]), training=training)
        params = tf.reshape(params, tf.concat([[k, batch], tf.shape(params)[1:]], axis=0))
        observation = self.likelihood.distribution(
            params, self.observation_scale(), event_ndims=len(x.shape) - 1
        )
        return observation.log_prob(tf.broadcast_to(tf.cast(x, tf.float32), tf.shape(params)))

    def _dreg_objective(self, x, eps, kl_weight, encoder_input=None):
        """The DReG surrogate to minimise, `[batch]`, and `_log_weight_terms` at its samples.

        The log-weights are taken with q's mean and scale stopped, so the
        encoder is reached through the samples only; their gradient with
        respect to the samples comes from a tape of its own (one more pass
        back through the decoder). See `tfvae.math.losses.dreg_surrogate`.
        """
        mu, sigma = self.encoder(x if encoder_input is None else encoder_input, training=True)
        posterior = tfd.Independent(tfd.Normal(loc=mu, scale=sigma), reinterpreted_batch_ndims=1)
        held = tfd.Independent(
            tfd.Normal(loc=tf.stop_gradient(mu), scale=tf.stop_gradient(sigma)),
            reinterpreted_batch_ndims=1,
        )
        z = mu + sigma * tf.cast(eps, tf.float32)
        with tf.GradientTape() as tape:
            tape.watch(z)
            log_px_z = self._log_likelihood_of_samples(x, z, training=True)
            log_ratio = self.prior().log_prob(z) - held.log_prob(z)
            log_weights = log_px_z + kl_weight * log_ratio
        grad_z = tape.gradient(log_weights, z)
        objective = -dreg_surrogate(log_weights, z, grad_z)
        return objective, (log_px_z, log_ratio, posterior)

    def log_importance_weights(self, x, eps, training=False):
        """`log p(x, z_k) - log q(z_k | x)` for `z_k = mu + sigma * eps[k]`.

        Args:
            x: tensor `[batch, ...]`.
            eps: tensor `[k, batch, latent_dim]` of standard normal noise.

        Returns:
            A tensor `[k, batch]`. `logsumexp` over axis 0 minus `log k` is
            the importance-weighted bound on `log p(x)` (the ELBO for `k = 1`);
            `tfvae.evaluation.metrics` estimates `log p(x)` with it.
        """
        log_px_z, log_ratio, _ = self._log_weight_terms(x, eps, training=training)
        return log_px_z + log_ratio

    def training_noise(self, x, samples=1):
        """The train step's `eps`, `[samples, batch, latent_dim]`.

        With a seed, the noise is a pure function of `(seed, optimizer step,
        position in the global batch)`: drawn for the whole global batch from
        a stateless generator, then sliced to this replica's share. So a run
        resumed from a checkpoint, or split over `tf.distribute` replicas,
        draws exactly the noise of an uninterrupted single-device run.
        Without a seed it comes from the model's `SeedGenerator`.
        """
        local = tf.shape(x)[0]
        if self.seed is None or getattr(self, "optimizer", None) is None:
            return keras.random.normal((samples, local, self.latent_dim), seed=self.seed_generator)
        offset, total = base.global_batch_position(x)
        eps = tf.random.stateless_normal(
            [samples, total, self.latent_dim],
            seed=base.noise_key(self.seed, self.optimizer.iterations),
        )
        return eps[:, offset : offset + local]

    def dropped_input(self, x):
        """The encoder's training input: `x` with `input_dropout` of its features dropped.

        The mask is drawn like `training_noise` (from the seed, the step and
        the position in the global batch), from a stream of its own.
        """
        rate = self.input_dropout
        x = tf.cast(x, tf.float32)
        local = tf.shape(x)[0]
        if self.seed is None or getattr(self, "optimizer", None) is None:
            uniform = keras.random.uniform(tf.shape(x), seed=self.seed_generator)
            return x * tf.cast(uniform >= rate, tf.float32) / (1.0 - rate)
        offset, total = base.global_batch_position(x)
        key = tf.random.experimental.stateless_fold_in(
            base.noise_key(self.seed, self.optimizer.iterations), INPUT_DROPOUT_STREAM
        )
        shape = tf.concat([[total], tf.shape(x)[1:]], axis=0)
        keep = dropout_keep_mask(shape, key, rate)[offset : offset + local]
        return x * keep / (1.0 - dropout_drop_rate(rate))

    def _training_terms(self, x):
        """Per-example terms of the objective being minimised, and the terms to report."""
        kl_weight = self.kl_weight(training=True)
        eps = self.training_noise(x, self.iwae_samples)
        seen = self.dropped_input(x) if self.input_dropout else None
        if self.iwae_samples == 1:
            terms = self.per_example_losses(x, training=True, eps=eps[0], encoder_input=seen)
            return terms["reconstruction_loss"] + kl_weight * terms["kl_loss"], terms
        if self.dreg:
            objective, (log_px_z, log_ratio, posterior) = self._dreg_objective(
                x, eps, kl_weight, encoder_input=seen
            )
        else:
            log_px_z, log_ratio, posterior = self._log_weight_terms(
                x, eps, training=True, encoder_input=seen
            )
            objective = -importance_weighted_bound(log_px_z + kl_weight * log_ratio)
        terms = {
            "loss": -importance_weighted_bound(log_px_z + self.beta * log_ratio),
            "reconstruction_loss": -tf.reduce_mean(log_px_z, axis=0),
            "kl_loss": posterior.kl_divergence(self.prior()),
        }
        return objective, terms

    def _update_metrics(self, terms, sample_weight=None):
        self.loss_tracker.update_state(terms["loss"], sample_weight=sample_weight)
        self.reconstruction_tracker.update_state(
            terms["reconstruction_loss"], sample_weight=sample_weight
        )
        self.kl_tracker.update_state(terms["kl_loss"], sample_weight=sample_weight)
        # The true negative ELBO (KL weight 1) whatever beta and the warm-up
        # are: the number to compare across runs, and to tune on.
        self.neg_elbo_tracker.update_state(
            terms["reconstruction_loss"] + terms["kl_loss"], sample_weight=sample_weight
        )
        return base.metric_results(self)

    def train_step(self, data):
        # A target shaped like x is accepted and ignored: the VAE models x itself.
        x, _, sample_weight = base.unpack_inputs(self, data)
        with tf.GradientTape() as tape:
            objective, terms = self._training_terms(x)
            loss = base.average_over_global_batch(objective, x, sample_weight)
            loss += base.regularization_loss(self)
        base.apply_gradients(self, tape, loss)
        return self._update_metrics(terms, sample_weight)

    def test_step(self, data):
        x, _, sample_weight = base.unpack_inputs(self, data)
        return self._update_metrics(self.per_example_losses(x, training=False), sample_weight)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "beta": self.beta,
                "seed": self.seed,
                "iwae_samples": self.iwae_samples,
                "kl_warmup_steps": self.kl_warmup_steps,
                "input_dropout": self.input_dropout,
                "dreg": self.dreg,
            }
        )
        if self.latent_sampler is not None:
            # Only when set, so the configs of models without one stay as they were.
            config["latent_sampler"] = keras.layers.serialize(self.latent_sampler)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("latent_sampler"), dict):
            config["latent_sampler"] = keras.layers.deserialize(config["latent_sampler"])
        return super().from_config(config)


# The default KL warm-up: the first fifth of the run (10 of the benchmark's 50 epochs).
KL_WARMUP_FRACTION = 0.2
# The default input dropout (benchmarks/quality.py: with the warm-up, 5 nats
# better test NLL than neither on mnist5k; docs/benchmarks.md).
INPUT_DROPOUT = 0.1


def kl_warmup_epochs(config):
    """The epochs of `config`'s KL warm-up: its setting, or by default a fifth of the run."""
    if config.kl_warmup_epochs is not None:
        return config.kl_warmup_epochs
    return int(config.epochs * KL_WARMUP_FRACTION)


def kl_warmup_steps(config, steps_per_epoch):
    """The train steps of `config`'s KL warm-up; 0 for a model built outside training."""
    if config.kl_warmup_epochs and not steps_per_epoch:
        raise TfvaeError("a KL warm-up needs steps_per_epoch to convert epochs to steps")
    if not steps_per_epoch:
        return 0  # built outside training, where the default warm-up has no steps
    return kl_warmup_epochs(config) * steps_per_epoch


# The VAE's own settings, which the families built on it take (each family
# lists those it accepts, a subset of these, once, for its settings and its build).
VAE_SETTINGS = ("beta", "iwae_samples", "kl_warmup_epochs", "input_dropout", "dreg")


def vae_arguments(config, steps_per_epoch, settings=VAE_SETTINGS):
    """The `VAE` constructor arguments a family's `build` reads from `config`.

    Args:
        config: `TrainConfig`.
        steps_per_epoch: int or None. Converts the KL warm-up's epochs to steps.
        settings: tuple of str. The names in `VAE_SETTINGS` the family takes.
            Defaults to all of them.

    Returns:
        dict: `likelihood`, `seed` and the arguments of `settings`
        (`kl_warmup_epochs` becomes `kl_warmup_steps`).
    """
    arguments = {"likelihood": config.resolved_likelihood, "seed": config.seed}
    for name in settings:
        if name == "kl_warmup_epochs":
            arguments["kl_warmup_steps"] = kl_warmup_steps(config, steps_per_epoch)
        else:
            arguments[name] = getattr(config, name)
    return arguments


def _check_settings(settings):
    """Refuses the VAE settings that do not go together."""
    if settings["dreg"] and settings["iwae_samples"] == 1:
        raise TfvaeError(
            "dreg is a gradient of the importance-weighted bound: it needs iwae_samples > 1. "
            "Received: dreg=True with iwae_samples=1"
        )


def _build_vae(config, data_shape, steps_per_epoch):
    encoder, decoder = registry.build_networks(config, data_shape, probabilistic=True)
    return VAE(encoder, decoder, **vae_arguments(config, steps_per_epoch), name="vae")


registry.register_family(
    registry.ModelFamily(
        name="vae",
        model_class=VAE,
        description="variational autoencoder",
        build=_build_vae,
        settings=(
            Setting("beta", 1.0, "Weight of the KL term (beta-VAE).", minimum=0),
            Setting(
                "iwae_samples",
                1,
                "Train on the importance-weighted bound with this many samples; 1 is the ELBO.",
                minimum=1,
            ),
            Setting(
                "kl_warmup_epochs",
                None,
                "Ramp the KL weight from 0 to beta over this many epochs. "
                "Default: the first fifth of the run (10 of 50 epochs).",
                kind="int",
                minimum=0,
                optional=True,
            ),
            Setting(
                "input_dropout",
                INPUT_DROPOUT,
                "Drop this fraction of input features before the encoder in training "
                "(a regulariser; the whole input is still reconstructed).",
                minimum=0,
                maximum=1,
                exclusive_maximum=True,
            ),
            Setting(
                "dreg",
                False,
                "With --iwae-samples K > 1: train the encoder on doubly reparameterized "
                "gradients (DReG), the same expected gradient with a lower variance.",
            ),
        ),
        metrics=("loss", "reconstruction_loss", "kl_loss", "neg_elbo"),
        binarize_by_default=True,
        capabilities=("prior", "likelihood_bound"),
        check=_check_settings,
    )
)
