"""The VAE with a learned mixture prior: the VampPrior or a mixture of Gaussians."""

import math

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae import checks
from tfvae.math.losses import importance_weighted_bound
from tfvae.math.mixtures import diagonal_gaussian_mixture
from tfvae.math.mixtures import mixture_draw
from tfvae.models import registry
from tfvae.models.mixture_prior import MixturePrior
from tfvae.models.pseudo_inputs import PseudoInputs
from tfvae.models.vae import VAE
from tfvae.models.vae import VAE_SETTINGS
from tfvae.models.vae import vae_arguments
from tfvae.settings import Setting

tfd = tfp.distributions

PRIOR_KINDS = ("vamp", "mog")
# The default number of components, for both kinds: on the zoo's protocol
# (mnist5k, 50 epochs) the test NLL was best at 100 for both, and 500
# pseudo-inputs (Tomczak & Welling's choice for the 50,000 MNIST digits) did
# 1.1 nats worse (docs/models.md, "VampPrior and mixture priors").
DEFAULT_COMPONENTS = 100
# Likelihoods of real-valued data: their pseudo-inputs are not squashed into [0, 1].
UNBOUNDED_LIKELIHOODS = ("gaussian",)


@keras.saving.register_keras_serializable(package="tfvae")
class VampVAE(VAE):
    """A VAE whose prior is a learned mixture: the VampPrior or a mixture of Gaussians.

    With `prior_kind="vamp"` (Tomczak & Welling 2018) the prior is the
    encoder's posterior averaged over `K` learned pseudo-inputs `u_k`
    (`PseudoInputs`): `p(z) = 1/K sum_k q(z | u_k)`. With `"mog"` it is a
    mixture of `K` diagonal Gaussians whose means, scales and weights are
    learned (`MixturePrior`). Either is a `tfd.MixtureSameFamily`
    (`prior()`, from `tfvae.math.mixtures.diagonal_gaussian_mixture`).

    The KL term has no closed form, so the train step estimates it at the
    sampled `z`: `log q(z|x) - log p(z)` (one sample per example, the same
    `eps` as the reconstruction term; `kl_loss` reports this estimate).
    `log_importance_weights` uses the mixture's exact log density, so the
    importance-sampled `-log p(x)` of evaluation is exact for this prior.

    `sample(n, eps)` and the exported `sample` map standard normal `eps`
    `[n, latent_dim]` to exact prior draws, deterministically
    (`tfvae.math.mixtures.mixture_draw`), and decode them. `score(x)` is
    the negative ELBO at the posterior mean, its KL term taken at `z = mu`:
    `log q(mu|x) - log p(mu)`.

    Args:
        encoder, decoder: as for `VAE`.
        prior_kind: str. `"vamp"` or `"mog"`. Defaults to `"vamp"`.
        prior_components: int. Number of components `K` (pseudo-inputs or
            Gaussians). Defaults to `100`.
        **kwargs: the other `VAE` arguments (`beta`, `likelihood`, `seed`,
            `iwae_samples`, `kl_warmup_steps`, `input_dropout`, `dreg`).
            The seed also draws the initial pseudo-inputs or means.

    Example:

    >>> model = VampVAE(Encoder(16, probabilistic=True), Decoder((28, 28, 1)),
    ...                 prior_kind="vamp", prior_components=100, seed=0)
    >>> model.compile(optimizer=keras.optimizers.Adam(1e-3))
    >>> model.fit(x_train, batch_size=128, epochs=50)
    >>> images = model.sample(16)
    """

    def __init__(
        self, encoder, decoder, prior_kind="vamp", prior_components=DEFAULT_COMPONENTS, **kwargs
    ):
        super().__init__(encoder, decoder, **kwargs)
        prior_kind = checks.choice("prior_kind", prior_kind, PRIOR_KINDS)
        components = checks.positive_int("prior_components", prior_components)

        # === Layers ===
        self.pseudo_inputs = None
        self.mixture_prior = None
        if prior_kind == "vamp":
            squash = "none" if self.likelihood.name in UNBOUNDED_LIKELIHOODS else "sigmoid"
            self.pseudo_inputs = PseudoInputs(
                components, decoder.data_shape, squash=squash, seed=self.seed, name="pseudo_inputs"
            )
        else:
            self.mixture_prior = MixturePrior(
                components, encoder.latent_dim, seed=self.seed, name="mixture_prior"
            )

        # === Config ===
        self.prior_kind = prior_kind
        self.prior_components = components

    def prior_parameters(self, training=False):
        """The mixture's `(locs [K, latent_dim], scales [K, latent_dim], logits [K])`, float32."""
        if self.pseudo_inputs is not None:
            mu, sigma = self.encoder(self.pseudo_inputs(None), training=training)
            logits = tf.zeros([self.prior_components], tf.float32)
            return tf.cast(mu, tf.float32), tf.cast(sigma, tf.float32), logits
        return self.mixture_prior(None)

    def prior(self, training=False):
        """`p(z)`, the learned mixture, as a `tfd.MixtureSameFamily`."""
        return diagonal_gaussian_mixture(*self.prior_parameters(training=training))

    def prior_draws(self, eps):
        """Exact draws from `p(z)` made from standard normal `eps [n, latent_dim]`."""
        return mixture_draw(eps, *self.prior_parameters())

    def sample(self, n, eps=None):
        """Decodes prior draws made from `eps` (see `prior_draws`).

        Args and returns as for `VAE.sample`: `eps [n, latent_dim]` is
        standard normal noise, drawn from the model's seed when not given.
        """
        if getattr(self, "latent_sampler", None) is not None:
            return super().sample(n, eps)  # a sampler fitted after training replaces the prior
        if eps is None:
            if n is None or isinstance(n, bool) or not checks.is_integer(n) or n < 1:
                return super().sample(n)  # raises the VAE's error for n
            eps = keras.random.normal((int(n), self.latent_dim), seed=self.seed_generator)
        eps = tf.convert_to_tensor(eps, tf.float32)
        if eps.shape.rank != 2 or eps.shape[-1] != self.latent_dim:
            return super().sample(n, eps)  # raises the VAE's error for eps
        return super().sample(n, self.prior_draws(eps))

    @property
    def score_description(self):
        return (
            "negative ELBO (nats per example, beta = 1) at the posterior mean z = mu: "
            "-log p(x | mu) + log q(mu | x) - log p(mu), with p(z) the learned mixture prior"
        )

    def per_example_losses(self, x, training=False, eps=None, encoder_input=None):
        """Per-example `loss`, `reconstruction_loss` and `kl_loss` (estimated at the sample).

        As `VAE.per_example_losses`, with the KL term `log q(z|x) - log p(z)`
        at the one sampled `z` (`eps` fixes it).
        """
        mu, sigma = self.encoder(x if encoder_input is None else encoder_input, training=training)
        mu, sigma = tf.cast(mu, tf.float32), tf.cast(sigma, tf.float32)
        posterior = tfd.Independent(tfd.Normal(loc=mu, scale=sigma), reinterpreted_batch_ndims=1)
        z = self.reparameterize(mu, sigma, eps)
        observation = self.observation_distribution(z, training=training)
        reconstruction = -observation.log_prob(tf.cast(x, tf.float32))
        kl = posterior.log_prob(z) - self.prior(training=training).log_prob(z)
        return {
            "loss": reconstruction + self.beta * kl,
            "reconstruction_loss": reconstruction,
            "kl_loss": kl,
        }

    def _training_terms(self, x):
        if self.iwae_samples == 1:
            return super()._training_terms(x)
        # The VAE's importance-weighted objective, with `kl_loss` estimated
        # at the k samples (its analytic KL does not exist for a mixture).
        kl_weight = self.kl_weight(training=True)
        eps = self.training_noise(x, self.iwae_samples)
        seen = self.dropped_input(x) if self.input_dropout else None
        if self.dreg:
            objective, (log_px_z, log_ratio, _) = self._dreg_objective(
                x, eps, kl_weight, encoder_input=seen
            )
        else:
            log_px_z, log_ratio, _ = self._log_weight_terms(
                x, eps, training=True, encoder_input=seen
            )
            objective = -importance_weighted_bound(log_px_z + kl_weight * log_ratio)
        terms = {
            "loss": -importance_weighted_bound(log_px_z + self.beta * log_ratio),
            "reconstruction_loss": -tf.reduce_mean(log_px_z, axis=0),
            "kl_loss": -tf.reduce_mean(log_ratio, axis=0),
        }
        return objective, terms

    def build(self, input_shape):
        super().build(input_shape)
        for layer in (self.pseudo_inputs, self.mixture_prior):
            if layer is not None and not layer.built:
                layer.build(None)

    def get_config(self):
        return {
            **super().get_config(),
            "prior_kind": self.prior_kind,
            "prior_components": self.prior_components,
        }


def _check_prior_size(config, data_shape):
    """Refuses a prior whose weights, with the networks', would not fit in memory."""
    components = config.prior_components
    per_component = (
        math.prod(data_shape) if config.prior_kind == "vamp" else 2 * config.latent_dim + 1
    )
    networks = registry.network_parameters(
        data_shape,
        config.latent_dim,
        config.arch,
        config.hidden_units,
        config.filters,
        probabilistic=True,
    )
    registry.check_model_size(
        networks + components * per_component,
        registry.BYTES_PER_TRAINED_PARAMETER,
        f"the vamp model with {components:,} {config.prior_kind} prior components "
        f"(latent_dim={config.latent_dim}) for data of shape {tuple(data_shape)}",
        "train",
    )


def _build_vamp(config, data_shape, steps_per_epoch):
    _check_prior_size(config, data_shape)
    encoder, decoder = registry.build_networks(config, data_shape, probabilistic=True)
    return VampVAE(
        encoder,
        decoder,
        prior_kind=config.prior_kind,
        prior_components=config.prior_components,
        **vae_arguments(config, steps_per_epoch),
        name="vamp",
    )


_VAE_FAMILY = registry.get_family("vae")

registry.register_family(
    registry.ModelFamily(
        name="vamp",
        model_class=VampVAE,
        description="VAE with a learned mixture prior: the VampPrior (pseudo-inputs) or a "
        "mixture of Gaussians",
        build=_build_vamp,
        settings=(
            Setting(
                "prior_kind",
                "vamp",
                "The learned prior: vamp (the encoder's posteriors at learned pseudo-inputs, "
                "VampPrior) or mog (a mixture of diagonal Gaussians).",
                choices=PRIOR_KINDS,
            ),
            Setting(
                "prior_components",
                DEFAULT_COMPONENTS,
                "Components of the mixture prior: pseudo-inputs (vamp) or Gaussians (mog).",
                minimum=1,
            ),
            *(_VAE_FAMILY.setting(name) for name in VAE_SETTINGS),
        ),
        metrics=_VAE_FAMILY.metrics,
        binarize_by_default=True,
        capabilities=("prior", "likelihood_bound"),
        check=_VAE_FAMILY.check,
    )
)
