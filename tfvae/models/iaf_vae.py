"""The VAE with an inverse-autoregressive-flow posterior (Kingma et al. 2016)."""

import math

import keras
import tensorflow as tf
import tensorflow_probability as tfp
from keras import ops

from tfvae import checks
from tfvae.errors import TfvaeError
from tfvae.math.flows import flow_log_density
from tfvae.math.flows import iaf_bijector
from tfvae.math.flows import iaf_step
from tfvae.math.losses import importance_weighted_bound
from tfvae.math.losses import soft_clip
from tfvae.models import registry
from tfvae.models.encoder import LOG_VARIANCE_BOUNDS
from tfvae.models.encoder import conv_filters_for
from tfvae.models.made import MADE
from tfvae.models.vae import VAE
from tfvae.models.vae import VAE_SETTINGS
from tfvae.models.vae import vae_arguments
from tfvae.settings import Setting

tfd = tfp.distributions
tfb = tfp.bijectors

# Added to each step's gate logit: sigmoid(1) = 0.73, so a new flow keeps most
# of z and mixes in a little of m (the paper's "forget gate" bias, which
# keeps the early steps close to the identity).
GATE_BIAS = 1.0
# `score`'s KL term: the Monte Carlo mean of log q(z|x) - log p(z) over this
# many fixed noise draws (antithetic pairs eps, -eps), so an input always gets
# the same score.
SCORE_KL_SAMPLES = 64
SCORE_NOISE_SEED = (15, 4)


@keras.saving.register_keras_serializable(package="tfvae")
class IAFVAE(VAE):
    """VAE whose posterior is a Gaussian followed by inverse autoregressive flow steps.

    The encoder gives `mu`, `sigma_0` and a context `h` (the features its
    heads read); `z_0 = mu + sigma_0 * eps` then goes through `flow_steps`
    IAF steps, each a `MADE` conditioned on `h`, giving `(m_t, s_t)`, and
    the gated update of Kingma et al. (2016):

        sigma_t = sigmoid(s_t),   z_t = sigma_t * z_{t-1} + (1 - sigma_t) * m_t

    with the order of the units reversed from one step to the next. At its
    own sample the posterior's log density is exact
    (`tfvae.math.flows.flow_log_density`):

        log q(z_T | x) = log N(eps) - sum log sigma_0 - sum_t sum log sigma_t

    The prior stays `N(0, I)`, and the KL term is a Monte Carlo estimate,
    `log q(z_T | x) - log p(z_T)` at the sample (it has no closed form).
    With `flow_steps=0` the model is the `VAE` with the KL estimated by
    Monte Carlo instead of analytically: equal in expectation.

    `log_importance_weights(x, eps)` pushes each `eps` through the flow, so
    evaluation's importance-sampled `-log p(x)` is that of this posterior.
    The deterministic code (`latent_code`, `encode`'s first output, what
    `call` decodes) is the flow applied to the base mean, `eps = 0`;
    `encode` returns it with the base scale `sigma_0`. `posterior(x)` is
    the flow as a `tfp.distributions.TransformedDistribution` (through
    `tfp.bijectors`), for a density anywhere, not only at its own samples.
    `score(x)` is `-log p(x | z(eps = 0))` plus the KL term averaged over
    `SCORE_KL_SAMPLES` fixed noise draws. Sampling and `decode` are the
    `VAE`'s: `z ~ N(0, I)`.

    The flow computes in float32 whatever the precision of the networks.
    `dreg` is refused: its gradient stops q's parameters, which here
    include the flow's.

    Args:
        encoder, decoder: as for `VAE`.
        flow_steps: int >= 0. `T`, the number of IAF steps. Defaults to `4`.
        made_units: int. Width of each MADE's two hidden layers (below
            `latent_dim - 1`, some units cannot see all those before
            them: still a valid flow, a less flexible one). Defaults to `128`.
        **kwargs: the other `VAE` arguments (`beta`, `likelihood`, `seed`,
            `iwae_samples`, `kl_warmup_steps`, `input_dropout`).

    Example:

    >>> model = IAFVAE(Encoder(16, probabilistic=True), Decoder((28, 28, 1)),
    ...                flow_steps=4, made_units=128, seed=0)
    >>> model.compile(optimizer=keras.optimizers.Adam(1e-3))
    >>> model.fit(x_train, batch_size=128, epochs=50)
    """

    def __init__(self, encoder, decoder, flow_steps=4, made_units=128, **kwargs):
        super().__init__(encoder, decoder, **kwargs)
        if self.dreg:
            raise TfvaeError(
                "dreg stops the gradient of q's parameters, which the IAF posterior's flow "
                "does not expose; train iaf without dreg. Received: dreg=True"
            )
        flow_steps = checks.non_negative_int("flow_steps", flow_steps)
        made_units = checks.positive_int("made_units", made_units)
        # === Layers ===
        # Made in `build`: each MADE's context is the encoder's features, whose
        # width is known once the encoder is built.
        self.flow = []
        # === Config ===
        self.flow_steps = flow_steps
        self.made_units = made_units

    def build(self, input_shape):
        super().build(input_shape)
        if len(self.flow) != self.flow_steps:
            shape = tuple(input_shape)
            for layer in self.encoder.body:
                shape = tuple(layer.compute_output_shape(shape))
            self.flow = [
                MADE(
                    self.latent_dim,
                    hidden_units=(self.made_units, self.made_units),
                    context_dim=int(shape[-1]),
                    reverse=step % 2 == 1,
                    name=f"iaf_step_{step}",
                )
                for step in range(self.flow_steps)
            ]
            for made in self.flow:
                made.build((None, self.latent_dim))
        self.built = True

    def base_posterior(self, x, training=False):
        """`(mu, sigma_0, h)`: the base Gaussian's parameters and the context of the flow.

        The encoder's own layers, run once: `h` is what its head reads, and
        `(mu, sigma_0)` are exactly `encoder(x)`.
        """
        if len(self.flow) != self.flow_steps:
            self.build(tuple(x.shape))
        features = x
        for layer in self.encoder.body:
            features = layer(features, training=training)
        mu, raw = ops.split(self.encoder.head(features), 2, axis=-1)
        log_variance = soft_clip(ops.cast(raw, "float32"), *LOG_VARIANCE_BOUNDS)
        return ops.cast(mu, "float32"), ops.exp(0.5 * log_variance), ops.cast(features, "float32")

    def _flow(self, z, context):
        """`(z_T, [log |det| of each step])` for `z_0 = z`."""
        log_dets = []
        for made in self.flow:
            shift, gate_logit = made(z, context=context)
            z, log_det = iaf_step(z, shift, gate_logit + GATE_BIAS)
            log_dets.append(log_det)
        return z, log_dets

    def sample_posterior(self, x, eps, training=False):
        """`(z_T, log q(z_T | x))` for `z_0 = mu + sigma_0 * eps`; `eps` `[batch, d]` or `[k, batch, d]`."""
        mu, sigma, context = self.base_posterior(x, training=training)
        eps = tf.cast(eps, tf.float32)
        z, log_dets = self._flow(mu + sigma * eps, context)
        return z, flow_log_density(eps, tf.math.log(sigma), log_dets)

    def posterior(self, x, training=False):
        """`q(z | x)` as a `tfp.distributions.TransformedDistribution`: the base Gaussian and the flow."""
        mu, sigma, context = self.base_posterior(x, training=training)
        base = tfd.Independent(tfd.Normal(loc=mu, scale=sigma), reinterpreted_batch_ndims=1)
        steps = []
        for made in self.flow:

            def shift_and_gate(z, made=made):
                shift, gate_logit = made(z, context=context)
                return shift, gate_logit + GATE_BIAS

            steps.append(iaf_bijector(shift_and_gate))
        # `Chain` applies its last bijector first.
        return tfd.TransformedDistribution(base, tfb.Chain(steps[::-1]))

    def encode(self, x, training=False):
        """`(code, sigma_0)`: the flow at `eps = 0` (the deterministic code) and the base scale."""
        mu, sigma, context = self.base_posterior(x, training=training)
        code, _ = self._flow(mu, context)
        return code, sigma

    def per_example_losses(self, x, training=False, eps=None, encoder_input=None):
        """Per-example `loss`, `reconstruction_loss` and `kl_loss` (Monte Carlo, at the sample).

        One posterior sample per example; `eps` `[batch, latent_dim]` fixes
        it. `kl_loss` is `log q(z|x) - log p(z)` at the sample.
        """
        if eps is None:
            eps = keras.random.normal((tf.shape(x)[0], self.latent_dim), seed=self.seed_generator)
        seen = x if encoder_input is None else encoder_input
        z, log_q = self.sample_posterior(seen, eps, training=training)
        observation = self.observation_distribution(z, training=training)
        reconstruction = -observation.log_prob(tf.cast(x, tf.float32))
        kl = log_q - self.prior().log_prob(z)
        return {
            "loss": reconstruction + self.beta * kl,
            "reconstruction_loss": reconstruction,
            "kl_loss": kl,
        }

    def _log_weight_terms(self, x, eps, training=False, encoder_input=None):
        seen = x if encoder_input is None else encoder_input
        z, log_q = self.sample_posterior(seen, eps, training=training)
        log_px_z = self._log_likelihood_of_samples(x, z, training=training)
        return log_px_z, self.prior().log_prob(z) - log_q, None

    def _training_terms(self, x):
        if self.iwae_samples == 1:
            return super()._training_terms(x)
        kl_weight = self.kl_weight(training=True)
        eps = self.training_noise(x, self.iwae_samples)
        seen = self.dropped_input(x) if self.input_dropout else None
        log_px_z, log_ratio, _ = self._log_weight_terms(x, eps, training=True, encoder_input=seen)
        objective = -importance_weighted_bound(log_px_z + kl_weight * log_ratio)
        terms = {
            "loss": -importance_weighted_bound(log_px_z + self.beta * log_ratio),
            "reconstruction_loss": -tf.reduce_mean(log_px_z, axis=0),
            "kl_loss": -tf.reduce_mean(log_ratio, axis=0),
        }
        return objective, terms

    def score(self, x):
        """The per-example score: `-log p(x | z(eps = 0))` plus the KL term over fixed draws.

        The KL term is the mean of `log q(z|x) - log p(z)` over
        `SCORE_KL_SAMPLES` noise draws fixed once and for all (antithetic
        pairs), so the score of an input never changes.

        Returns:
            A dict of float32 `[batch]` tensors: `score`,
            `reconstruction_loss` and `kl_loss`.
        """
        code, _ = self.encode(x)
        reconstruction = -self.observation_distribution(code).log_prob(tf.cast(x, tf.float32))
        half = tf.random.stateless_normal(
            [SCORE_KL_SAMPLES // 2, 1, self.latent_dim], seed=SCORE_NOISE_SEED
        )
        eps = tf.concat([half, -half], axis=0) + tf.zeros([1, tf.shape(x)[0], 1])
        z, log_q = self.sample_posterior(x, eps)
        kl = tf.reduce_mean(log_q - self.prior().log_prob(z), axis=0)
        return {
            "score": reconstruction + kl,
            "reconstruction_loss": reconstruction,
            "kl_loss": kl,
        }

    @property
    def score_description(self):
        """One line saying what `score` computes."""
        return (
            "negative ELBO (nats per example, beta = 1): -log p(x | z) at the flow's code for "
            f"eps = 0, plus log q(z | x) - log p(z) averaged over {SCORE_KL_SAMPLES} fixed draws"
        )

    def get_config(self):
        return {
            **super().get_config(),
            "flow_steps": self.flow_steps,
            "made_units": self.made_units,
        }


def flow_parameters(latent_dim, made_units, flow_steps, context_dim):
    """The number of weights of the flow's `flow_steps` MADEs, counted from the settings."""
    per_step = (
        context_dim * made_units  # context into the first hidden layer
        + context_dim * 2 * latent_dim  # context straight to the outputs
        + latent_dim * made_units
        + made_units
        + made_units * made_units
        + made_units
        + made_units * 2 * latent_dim
        + 2 * latent_dim
    )
    return flow_steps * per_step


def _context_width(config, data_shape):
    """The width of the encoder's features, the flow's context: its last hidden layer's."""
    if config.hidden_units:
        return config.hidden_units[-1]
    if config.arch == "conv" and len(data_shape) == 3:
        filters = config.filters or conv_filters_for(data_shape)
        if filters:
            factor = 2 ** len(filters)
            return -(-data_shape[0] // factor) * -(-data_shape[1] // factor) * filters[-1]
    return math.prod(data_shape)


def _check_flow_size(config, data_shape):
    """Refuses a flow whose weights, with the networks', would not fit in memory."""
    networks = registry.network_parameters(
        data_shape,
        config.latent_dim,
        config.arch,
        config.hidden_units,
        config.filters,
        probabilistic=True,
    )
    flow = flow_parameters(
        config.latent_dim,
        config.made_units,
        config.flow_steps,
        _context_width(config, data_shape),
    )
    registry.check_model_size(
        networks + flow,
        registry.BYTES_PER_TRAINED_PARAMETER,
        f"the iaf model with {config.flow_steps} flow steps of {config.made_units:,} MADE units "
        f"(latent_dim={config.latent_dim}) for data of shape {tuple(data_shape)}",
        "train",
    )


# The VAE settings the IAF takes: all but dreg (its flow hides q's parameters).
IAF_VAE_SETTINGS = tuple(name for name in VAE_SETTINGS if name != "dreg")


def _build_iaf_vae(config, data_shape, steps_per_epoch):
    _check_flow_size(config, data_shape)
    encoder, decoder = registry.build_networks(config, data_shape, probabilistic=True)
    return IAFVAE(
        encoder,
        decoder,
        flow_steps=config.flow_steps,
        made_units=config.made_units,
        **vae_arguments(config, steps_per_epoch, IAF_VAE_SETTINGS),
        name="iaf",
    )


_VAE_FAMILY = registry.get_family("vae")

registry.register_family(
    registry.ModelFamily(
        name="iaf",
        model_class=IAFVAE,
        description="VAE with an inverse-autoregressive-flow posterior (MADE steps)",
        build=_build_iaf_vae,
        settings=(
            Setting(
                "flow_steps",
                4,
                "Number of inverse autoregressive flow steps after the encoder's Gaussian "
                "(IAF posterior); 0 is the VAE with a Monte Carlo KL.",
                minimum=0,
            ),
            Setting(
                "made_units",
                128,
                "Width of the two hidden layers of each flow step's MADE (IAF posterior).",
                minimum=1,
            ),
            *(_VAE_FAMILY.setting(name) for name in IAF_VAE_SETTINGS),
        ),
        metrics=_VAE_FAMILY.metrics,
        binarize_by_default=True,
        capabilities=("prior", "likelihood_bound"),
    )
)
