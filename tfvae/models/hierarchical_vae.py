"""A VAE with two stochastic layers: `x -> z1 -> z2` up, `z2 -> z1 -> x` down."""

import dataclasses

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae.errors import TfvaeError
from tfvae.math.losses import dreg_surrogate
from tfvae.math.losses import importance_weighted_bound
from tfvae.models import base
from tfvae.models import registry
from tfvae.models.encoder import Encoder
from tfvae.models.vae import VAE
from tfvae.models.vae import VAE_SETTINGS
from tfvae.models.vae import vae_arguments
from tfvae.settings import Setting

tfd = tfp.distributions

LAYER_KL_TERMS = ("kl_z1", "kl_z2")


def _gaussian(mean, scale):
    return tfd.Independent(tfd.Normal(loc=mean, scale=scale), reinterpreted_batch_ndims=1)


@keras.saving.register_keras_serializable(package="tfvae")
class HierarchicalVAE(VAE):
    """A VAE with two stochastic layers (Burda et al. 2016, section 5).

    The generative model goes down, `p(z2) p(z1 | z2) p(x | z1)`, with
    `p(z2) = N(0, I)` and `p(z1 | z2)` a diagonal Gaussian whose mean and
    scale a small network computes from `z2`; the posterior goes up,
    `q(z1 | x) q(z2 | z1)`, both diagonal Gaussians. The train step draws
    `z1 = mu1(x) + sigma1(x) * eps1` and `z2 = mu2(z1) + sigma2(z1) * eps2`
    and minimises per example

        -log p(x | z1) + beta * ([log q(z1|x) - log p(z1|z2)] + KL(q(z2|z1) || p(z2)))

    with the top layer's KL analytic given `z1` and the bottom layer's by
    Monte Carlo (there is no closed form: `p(z1 | z2)` depends on the
    sample `z2`). `fit` reports the VAE's metrics (`kl_loss` is the sum of
    both layers' terms) and each layer's, `kl_z1` and `kl_z2`. With
    `iwae_samples > 1` the model trains on the importance-weighted bound
    with log-weights `log p(x, z1, z2) - log q(z1, z2 | x)`, and `dreg`
    gives its doubly reparameterized gradient (Tucker et al. 2018) through
    both layers' samples.

    The model's latent space is the prior's noise: `latent_dim` is
    `z1`'s width plus `z2`'s, and a latent point `eps = [eps1, eps2]`
    (prior `N(0, I)`) stands for `z2 = eps2`, `z1 = m(z2) + s(z2) * eps1`,
    with `m, s` the mean and scale of `p(z1 | z2)`. `decode(eps)` and
    `sample(n, eps)` decode the mean of `p(x | z1)` at that point, so every
    picture of the latent space drawn against `N(0, I)` (samples, the
    manifold grid, traversals) is drawn against the real prior. `encode(x)`
    and `latent_code(x)` give the posterior means in the same coordinates:
    `z1 = mu1(x)`, `z2 = mu2(z1)`, whitened to `[(z1 - m(z2)) / s(z2), z2]`,
    so `decode(latent_code(x))` is the reconstruction; the scale returned
    beside the mean is `[sigma1(x) / s(z2), sigma2(z1)]`. `score(x)` is the
    negative ELBO at those means (all noise 0), and the eps of
    `log_importance_weights(x, eps)` is the posterior noise `[eps1, eps2]`.

    Args:
        encoder: `Encoder`, probabilistic: `q(z1 | x)`; its `latent_dim`
            is `z1`'s width.
        decoder: `Decoder`: `p(x | z1)`.
        top_encoder: `Encoder`, probabilistic, dense: `q(z2 | z1)`; its
            `latent_dim` is `z2`'s width.
        top_decoder: `Encoder`, probabilistic, dense, with `z1`'s width:
            `p(z1 | z2)` (an `Encoder` because it gives a Gaussian's mean
            and scale).
        **kwargs: the other `VAE` arguments (`beta`, `likelihood`, `seed`,
            `iwae_samples`, `kl_warmup_steps`, `input_dropout`, `dreg`).

    Example:

    >>> model = HierarchicalVAE(
    ...     Encoder(16, hidden_units=(512,), probabilistic=True),
    ...     Decoder((28, 28, 1), hidden_units=(512,)),
    ...     Encoder(8, hidden_units=(512,), probabilistic=True),
    ...     Encoder(16, hidden_units=(512,), probabilistic=True),
    ...     seed=0,
    ... )
    >>> model.compile(optimizer=keras.optimizers.Adam(1e-3))
    >>> model.fit(x_train, epochs=10)
    >>> images = model.sample(16)
    """

    # The int8 form of `score` converts, but LiteRT aborts the process running it.
    serving_functions = {
        **VAE.serving_functions,
        "score": dataclasses.replace(VAE.serving_functions["score"], full_integer=False),
    }

    def __init__(self, encoder, decoder, top_encoder, top_decoder, **kwargs):
        super().__init__(encoder, decoder, **kwargs)
        for name, network in (("top_encoder", top_encoder), ("top_decoder", top_decoder)):
            if not isinstance(network, Encoder) or not network.probabilistic:
                raise TfvaeError(
                    f"{name} must be an Encoder built with probabilistic=True. "
                    f"Received: {type(network).__name__}"
                )
            if network.arch != "dense":
                raise TfvaeError(
                    f"{name} maps one latent vector to another: it must be dense. "
                    f"Received: arch={network.arch!r}"
                )
        if top_decoder.latent_dim != encoder.latent_dim:
            raise TfvaeError(
                "top_decoder gives p(z1 | z2): its latent_dim must be z1's width, the encoder's "
                f"latent_dim={encoder.latent_dim}. Received: latent_dim={top_decoder.latent_dim}"
            )
        # === Layers ===
        self.top_encoder = top_encoder
        self.top_decoder = top_decoder
        self.layer_kl_trackers = base.mean_trackers(*LAYER_KL_TERMS)

    @property
    def bottom_latent_dim(self):
        """`z1`'s width."""
        return self.encoder.latent_dim

    @property
    def top_latent_dim(self):
        """`z2`'s width."""
        return self.top_encoder.latent_dim

    @property
    def latent_dim(self):
        """The width of the noise `[eps1, eps2]`: `z1`'s width plus `z2`'s."""
        return self.encoder.latent_dim + self.top_encoder.latent_dim

    @property
    def metrics(self):
        return [*super().metrics, *self.layer_kl_trackers]

    def build(self, input_shape):
        self.encoder.build(input_shape)
        self.decoder.build((None, self.bottom_latent_dim))
        self.top_encoder.build((None, self.bottom_latent_dim))
        self.top_decoder.build((None, self.top_latent_dim))
        self.built = True

    def posterior(self, x, training=False):
        """`q(z1 | x)`, the bottom layer's posterior (the top one's depends on a sample of `z1`)."""
        mu, sigma = self.encoder(x, training=training)
        return _gaussian(mu, sigma)

    def top_posterior(self, z1, training=False):
        """`q(z2 | z1)` as a `tfp.distributions` object, for `z1` of shape `[..., z1 width]`."""
        return _gaussian(*_apply(self.top_encoder, z1, training))

    def conditional_prior(self, z2, training=False):
        """`p(z1 | z2)` as a `tfp.distributions` object, for `z2` of shape `[..., z2 width]`."""
        return _gaussian(*_apply(self.top_decoder, z2, training))

    def _split(self, eps):
        eps = tf.cast(eps, tf.float32)
        return eps[..., : self.bottom_latent_dim], eps[..., self.bottom_latent_dim :]

    def encode(self, x, training=False):
        """The posterior means `[(z1 - m(z2)) / s(z2), z2]` at `z1 = mu1(x)`, `z2 = mu2(z1)`, and scales.

        Returns:
            `(mean, scale)`, each `[batch, latent_dim]`: the deterministic
            code in the prior's noise coordinates, and
            `[sigma1(x) / s(z2), sigma2(z1)]`.
        """
        mu1, sigma1 = self.encoder(x, training=training)
        mu2, sigma2 = _apply(self.top_encoder, mu1, training)
        mean, scale = _apply(self.top_decoder, mu2, training)
        return (
            tf.concat([(mu1 - mean) / scale, mu2], axis=-1),
            tf.concat([sigma1 / scale, sigma2], axis=-1),
        )

    def bottom_code(self, eps, training=False):
        """`z1 = m(z2) + s(z2) * eps1` with `z2 = eps2`: the prior's noise mapped to `z1`."""
        eps1, eps2 = self._split(eps)
        mean, scale = _apply(self.top_decoder, eps2, training)
        return mean + scale * eps1

    def decode(self, z, training=False):
        """The mean of `p(x | z1)` at the latent point `z = [eps1, eps2]` (see the class)."""
        return super().decode(self.bottom_code(z, training=training), training=training)

    def call(self, inputs, training=None):
        mu1, _ = self.encoder(inputs, training=training)
        return super().decode(mu1, training=training)

    @property
    def score_description(self):
        """One line saying what `score` computes."""
        return (
            "negative ELBO (nats per example, beta = 1) at the posterior means z1 = mu1(x), "
            "z2 = mu2(z1): -log p(x | z1) + log q(z1 | x) - log p(z1 | z2) + KL(q(z2 | z1) || p(z2))"
        )

    def _layers_at(self, x, eps, training=False, encoder_input=None):
        """Both layers' posteriors and samples for the noise `eps` `[k, batch, latent_dim]`."""
        mu1, sigma1 = self.encoder(x if encoder_input is None else encoder_input, training=training)
        eps1, eps2 = self._split(eps)
        z1 = mu1 + sigma1 * eps1
        mu2, sigma2 = _apply(self.top_encoder, z1, training)
        z2 = mu2 + sigma2 * eps2
        return (mu1, sigma1, z1), (mu2, sigma2, z2)

    def _log_joint(self, x, z1, z2, training=False):
        """`(log p(x | z1), log p(z1 | z2) + log p(z2))`, each `[k, batch]`."""
        log_px_z1 = self._log_likelihood_of_samples(x, z1, training=training)
        log_prior = self.conditional_prior(z2, training=training).log_prob(z1)
        log_prior += _gaussian(tf.zeros_like(z2), 1.0).log_prob(z2)
        return log_px_z1, log_prior

    def _log_likelihood_of_samples(self, x, z, training=False):
        """`log p(x | z1_k)`, `[k, batch]`, for samples `z1` of shape `[k, batch, z1 width]`."""
        params = _apply(self.decoder, z, training)
        observation = self.likelihood.distribution(
            params, self.observation_scale(), event_ndims=len(x.shape) - 1
        )
        return observation.log_prob(tf.broadcast_to(tf.cast(x, tf.float32), tf.shape(params)))

    def per_example_losses(self, x, training=False, eps=None, encoder_input=None):
        """Returns per-example `loss`, `reconstruction_loss`, `kl_loss`, `kl_z1` and `kl_z2`.

        One posterior sample per example: `eps` `[batch, latent_dim]` fixes
        it (`[eps1, eps2]`). `kl_z1` is `log q(z1|x) - log p(z1|z2)` at the
        sample, `kl_z2` the analytic `KL(q(z2|z1) || p(z2))` at the sample
        `z1`, `kl_loss` their sum, and `loss` uses `beta`.
        """
        if eps is None:
            eps = keras.random.normal((tf.shape(x)[0], self.latent_dim), seed=self.seed_generator)
        eps = tf.cast(eps, tf.float32)[None]
        (mu1, sigma1, z1), (mu2, sigma2, z2) = self._layers_at(
            x, eps, training=training, encoder_input=encoder_input
        )
        reconstruction = -self._log_likelihood_of_samples(x, z1, training=training)[0]
        bottom = _gaussian(mu1, sigma1).log_prob(z1)
        bottom -= self.conditional_prior(z2, training=training).log_prob(z1)
        top = _gaussian(mu2, sigma2).kl_divergence(_gaussian(tf.zeros_like(mu2), 1.0))
        kl = bottom[0] + top[0]
        return {
            "loss": reconstruction + self.beta * kl,
            "reconstruction_loss": reconstruction,
            "kl_loss": kl,
            "kl_z1": bottom[0],
            "kl_z2": top[0],
        }

    def _log_weight_terms(self, x, eps, training=False, encoder_input=None):
        """Returns `(log p(x|z1_k), log p(z1_k, z2_k) - log q(z1_k, z2_k|x), layer KLs)`, `[k, batch]`."""
        (mu1, sigma1, z1), (mu2, sigma2, z2) = self._layers_at(
            x, eps, training=training, encoder_input=encoder_input
        )
        log_px_z1, log_prior = self._log_joint(x, z1, z2, training=training)
        log_q1 = _gaussian(mu1, sigma1).log_prob(z1)
        log_q2 = _gaussian(mu2, sigma2).log_prob(z2)
        layer_kl = {
            "kl_z1": log_q1 - (log_prior - _gaussian(tf.zeros_like(z2), 1.0).log_prob(z2)),
            "kl_z2": _gaussian(mu2, sigma2).kl_divergence(_gaussian(tf.zeros_like(mu2), 1.0)),
        }
        return log_px_z1, log_prior - log_q1 - log_q2, layer_kl

    def _dreg_objective(self, x, eps, kl_weight, encoder_input=None):
        """The DReG surrogate to minimise, `[batch]`, and `_log_weight_terms` at its samples.

        The posterior's parameters are held in the log-weights, so the
        encoders are reached through the samples `z1, z2` only: `q(z1|x)`
        with its mean and scale stopped, and `q(z2|z1)` keeping its
        dependence on the sample `z1` while the gradient of its own
        weights at fixed samples (the score term) is taken out. The
        gradient with respect to the samples comes from a tape of its own
        over both, and `dreg_surrogate` carries it back through
        `z2 = mu2(z1) + sigma2(z1) * eps2` to both encoders.
        """
        (mu1, sigma1, z1), (mu2, sigma2, z2) = self._layers_at(
            x, eps, training=True, encoder_input=encoder_input
        )
        held_bottom = _gaussian(tf.stop_gradient(mu1), tf.stop_gradient(sigma1))
        score_term = self.top_posterior(tf.stop_gradient(z1), training=True).log_prob(
            tf.stop_gradient(z2)
        )
        with tf.GradientTape() as tape:
            tape.watch([z1, z2])
            log_px_z1, log_prior = self._log_joint(x, z1, z2, training=True)
            log_q1 = held_bottom.log_prob(z1)
            log_q2 = self.top_posterior(z1, training=True).log_prob(z2)
            log_q2 += tf.stop_gradient(score_term) - score_term
            log_ratio = log_prior - log_q1 - log_q2
            log_weights = log_px_z1 + kl_weight * log_ratio
        grad_z1, grad_z2 = tape.gradient(log_weights, [z1, z2])
        objective = -dreg_surrogate(
            log_weights, tf.concat([z1, z2], axis=-1), tf.concat([grad_z1, grad_z2], axis=-1)
        )
        layer_kl = {
            "kl_z1": log_q1 - (log_prior - _gaussian(tf.zeros_like(z2), 1.0).log_prob(z2)),
            "kl_z2": _gaussian(mu2, sigma2).kl_divergence(_gaussian(tf.zeros_like(mu2), 1.0)),
        }
        return objective, (log_px_z1, log_ratio, layer_kl)

    def _training_terms(self, x):
        kl_weight = self.kl_weight(training=True)
        eps = self.training_noise(x, self.iwae_samples)
        seen = self.dropped_input(x) if self.input_dropout else None
        if self.iwae_samples == 1:
            terms = self.per_example_losses(x, training=True, eps=eps[0], encoder_input=seen)
            return terms["reconstruction_loss"] + kl_weight * terms["kl_loss"], terms
        if self.dreg:
            objective, (log_px_z1, log_ratio, layer_kl) = self._dreg_objective(
                x, eps, kl_weight, encoder_input=seen
            )
        else:
            log_px_z1, log_ratio, layer_kl = self._log_weight_terms(
                x, eps, training=True, encoder_input=seen
            )
            objective = -importance_weighted_bound(log_px_z1 + kl_weight * log_ratio)
        layer_kl = {name: tf.reduce_mean(value, axis=0) for name, value in layer_kl.items()}
        terms = {
            "loss": -importance_weighted_bound(log_px_z1 + self.beta * log_ratio),
            "reconstruction_loss": -tf.reduce_mean(log_px_z1, axis=0),
            "kl_loss": layer_kl["kl_z1"] + layer_kl["kl_z2"],
            **layer_kl,
        }
        return objective, terms

    def _update_metrics(self, terms, sample_weight=None):
        for name, tracker in zip(LAYER_KL_TERMS, self.layer_kl_trackers, strict=True):
            tracker.update_state(terms[name], sample_weight=sample_weight)
        return super()._update_metrics(terms, sample_weight)

    def get_config(self):
        return {
            **super().get_config(),
            "top_encoder": keras.layers.serialize(self.top_encoder),
            "top_decoder": keras.layers.serialize(self.top_decoder),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["top_encoder"] = keras.layers.deserialize(config["top_encoder"])
        config["top_decoder"] = keras.layers.deserialize(config["top_decoder"])
        return super().from_config(config)


def _apply(network, z, training=False):
    """`network` on `z` of shape `[..., width]`, its outputs with the same leading axes.

    A `Decoder` gives one tensor, a probabilistic `Encoder` `(mean, scale)`
    as float32.
    """
    z = tf.convert_to_tensor(z)
    leading = tf.shape(z)[:-1]
    outputs = network(tf.reshape(z, [-1, z.shape[-1]]), training=training)

    def restore(t):
        return tf.reshape(t, tf.concat([leading, tf.shape(t)[1:]], axis=0))

    if isinstance(outputs, (tuple, list)):
        return tuple(restore(tf.cast(t, tf.float32)) for t in outputs)
    return restore(outputs)


_VAE_FAMILY = registry.get_family("vae")


def between_parameters(bottom_latent_dim, top_latent_dim, hidden_units):
    """The number of weights of `q(z2 | z1)` and `p(z1 | z2)`, the networks between the layers.

    Each is a dense `Encoder` with `hidden_units` whose head gives a mean
    and a scale: `z1 -> 2 * z2` and `z2 -> 2 * z1`.
    """

    def dense(width, out):
        total = 0
        for units in hidden_units:
            total += width * units + units
            width = units
        return total + width * out + out

    return dense(bottom_latent_dim, 2 * top_latent_dim) + dense(
        top_latent_dim, 2 * bottom_latent_dim
    )


def _check_size(config, data_shape):
    """Refuses networks between the layers that, with the others, would not fit in memory."""
    networks = registry.network_parameters(
        data_shape,
        config.latent_dim,
        config.arch,
        config.hidden_units,
        config.filters,
        probabilistic=True,
    )
    between = between_parameters(config.latent_dim, config.top_latent_dim, config.top_hidden_units)
    registry.check_model_size(
        networks + between,
        registry.BYTES_PER_TRAINED_PARAMETER,
        f"the hvae model (latent_dim={config.latent_dim}, top_latent_dim={config.top_latent_dim}, "
        f"top_hidden_units={list(config.top_hidden_units)}) for data of shape {tuple(data_shape)}",
        "train",
    )


def _build_hierarchical_vae(config, data_shape, steps_per_epoch):
    _check_size(config, data_shape)
    encoder, decoder = registry.build_networks(config, data_shape, probabilistic=True)

    def between(latent_dim, name):
        return Encoder(
            latent_dim,
            hidden_units=config.top_hidden_units,
            probabilistic=True,
            activation=config.activation,
            dtype=config.resolved_precision,
            name=name,
        )

    return HierarchicalVAE(
        encoder,
        decoder,
        between(config.top_latent_dim, "top_encoder"),
        between(config.latent_dim, "top_decoder"),
        **vae_arguments(config, steps_per_epoch),
        name="hvae",
    )


registry.register_family(
    registry.ModelFamily(
        name="hvae",
        model_class=HierarchicalVAE,
        description="VAE with two stochastic layers, z1 (--latent-dim) and z2 (--top-latent-dim)",
        build=_build_hierarchical_vae,
        settings=(
            Setting(
                "top_latent_dim",
                8,
                "Width of the top stochastic layer z2 (two-layer VAE); --latent-dim is z1's.",
                minimum=1,
            ),
            Setting(
                "top_hidden_units",
                (512,),
                "Hidden dense widths of the networks between z1 and z2, q(z2|z1) and "
                "p(z1|z2) (two-layer VAE; may be empty: linear Gaussian layers).",
                kind="ints",
                minimum=1,
            ),
            *(_VAE_FAMILY.setting(name) for name in VAE_SETTINGS),
        ),
        metrics=(*_VAE_FAMILY.metrics, *LAYER_KL_TERMS),
        binarize_by_default=True,
        capabilities=("prior", "likelihood_bound"),
        check=_VAE_FAMILY.check,
    )
)
