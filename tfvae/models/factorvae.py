"""FactorVAE: the VAE with a total-correlation penalty estimated by a discriminator."""

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae import checks
from tfvae.errors import TfvaeError
from tfvae.models import base
from tfvae.models import registry
from tfvae.models.vae import VAE
from tfvae.settings import Setting

tfd = tfp.distributions

# Folded into the noise key: the permutation draws from a stream apart from eps
# (stream 1 is the VAE's input dropout).
PERMUTATION_STREAM = 2
# The discriminator's Adam moments, as in Kim and Mnih (2018).
DISCRIMINATOR_BETAS = (0.5, 0.9)
REAL, PERMUTED = 0, 1


@keras.saving.register_keras_serializable(package="tfvae")
class FactorVAE(VAE):
    """FactorVAE (Kim and Mnih 2018): the ELBO plus a weighted total correlation, by density ratio.

    A discriminator `D` (a small MLP on `z`, two logits) learns to tell
    samples of the aggregate posterior `q(z)` from samples of the product of
    its marginals, made by permuting each latent unit across the batch. Its
    logit difference estimates `log q(z) / prod_d q(z_d)`, so the total
    correlation `TC(z) ~ E_q(z)[logit_real(z) - logit_permuted(z)]`. The
    model minimises per example

        -log p(x | z) + KL(q(z|x) || p(z)) + gamma * (logit_real(z) - logit_permuted(z))

    and, in the same `train_step`, the discriminator's cross-entropy on the
    batch's (stopped) samples and their permutation, with an optimizer of
    its own. `compile(optimizer, discriminator_optimizer=None)` makes that
    one (Adam at `discriminator_learning_rate`, moments 0.5 and 0.9) unless
    given; it is saved with the model in a `.keras` file and restored.

    `fit` and `evaluate` report `loss`, `reconstruction_loss`, `kl_loss`,
    `neg_elbo`, `total_correlation` (the discriminator's estimate) and
    `discriminator_loss`. The posterior, `score`, sampling and the exported
    functions are the `VAE`'s; the discriminator is used in training only.

    Args:
        encoder, decoder: as for `VAE`.
        tc_penalty: float >= 0. `gamma`, the weight of the estimated total
            correlation. Defaults to `10.0`.
        discriminator_units: tuple of int. Hidden layer widths of the
            discriminator. Defaults to `(256, 256)`.
        discriminator_learning_rate: float > 0. Step size of the
            discriminator's default optimizer. Defaults to `1e-4`.
        **kwargs: the other `VAE` arguments (`likelihood`, `seed`,
            `kl_warmup_steps`, `input_dropout`). `beta` (the KL weight) may
            differ from 1; `iwae_samples` must be 1.

    Example:

    >>> model = FactorVAE(Encoder(10, probabilistic=True), Decoder((32, 32, 1)), seed=0)
    >>> model.compile(optimizer=keras.optimizers.Adam(1e-3))
    >>> model.fit(x_train, batch_size=128, epochs=20)
    """

    def __init__(
        self,
        encoder,
        decoder,
        tc_penalty=10.0,
        discriminator_units=(256, 256),
        discriminator_learning_rate=1e-4,
        **kwargs,
    ):
        super().__init__(encoder, decoder, **kwargs)
        if self.iwae_samples != 1:
            raise TfvaeError(
                "FactorVAE trains on the ELBO: it takes iwae_samples=1. "
                f"Received: iwae_samples={self.iwae_samples}"
            )
        tc_penalty = checks.number_in("tc_penalty", tc_penalty, low=0)
        discriminator_units = checks.positive_ints(
            "discriminator_units", discriminator_units, allow_empty=False
        )
        discriminator_learning_rate = checks.number_in(
            "discriminator_learning_rate", discriminator_learning_rate, low=0, low_open=True
        )

        # === Layers ===
        # float32 whatever the run's precision: a small network whose logit
        # difference is a loss term.
        self.discriminator = keras.Sequential(
            [
                *(
                    keras.layers.Dense(units, activation="leaky_relu", dtype="float32")
                    for units in discriminator_units
                ),
                keras.layers.Dense(2, dtype="float32"),
            ],
            name="discriminator",
        )
        self.discriminator_optimizer = None

        # === Config ===
        self.tc_penalty = tc_penalty
        self.discriminator_units = discriminator_units
        self.discriminator_learning_rate = discriminator_learning_rate
        self.tc_tracker, self.discriminator_loss_tracker = base.mean_trackers(
            "total_correlation", "discriminator_loss"
        )

    @property
    def metrics(self):
        return [*super().metrics, self.tc_tracker, self.discriminator_loss_tracker]

    def build(self, input_shape):
        super().build(input_shape)
        self.discriminator.build((None, self.latent_dim))

    def compile(self, optimizer="rmsprop", discriminator_optimizer=None, **kwargs):
        """Keras's `compile`, and the discriminator's optimizer (Adam at
        `discriminator_learning_rate` unless `discriminator_optimizer` is given)."""
        super().compile(optimizer=optimizer, **kwargs)
        if discriminator_optimizer is None:
            discriminator_optimizer = keras.optimizers.Adam(
                self.discriminator_learning_rate,
                beta_1=DISCRIMINATOR_BETAS[0],
                beta_2=DISCRIMINATOR_BETAS[1],
                name="discriminator_adam",
            )
        self.discriminator_optimizer = keras.optimizers.get(discriminator_optimizer)
        if self.built:
            # Both built now, each on its own variables, so that a checkpoint
            # or a saved model loads into them (Keras would build the first
            # on every trainable variable, the discriminator's included).
            self.optimizer.build(self.model_variables)
            self.discriminator_optimizer.build(self.discriminator.trainable_variables)

    def get_compile_config(self):
        config = super().get_compile_config()
        if config and self.discriminator_optimizer is not None:
            config["discriminator_optimizer"] = keras.saving.serialize_keras_object(
                self.discriminator_optimizer
            )
        return config

    def compile_from_config(self, config):
        self.compile(**keras.saving.deserialize_keras_object(config))

    @property
    def model_variables(self):
        """The trainable variables of everything but the discriminator."""
        held = {id(v) for v in self.discriminator.trainable_variables}
        return [v for v in self.trainable_variables if id(v) not in held]

    def tc_estimate(self, z):
        """`logit_real(z) - logit_permuted(z)`, `[batch]`: the discriminator's `log q(z) / prod q(z_d)`."""
        logits = self.discriminator(tf.cast(z, tf.float32))
        return logits[:, REAL] - logits[:, PERMUTED]

    def permute_dims(self, z):
        """Each latent unit of `z` shuffled across the batch on its own: a draw of `prod_d q(z_d)`.

        The permutations come from `(seed, optimizer step)` like the
        training noise, from a stream of their own, or from the model's
        `SeedGenerator` without a seed.
        """
        shape = tf.shape(z)
        if self.seed is None or getattr(self, "optimizer", None) is None:
            uniform = keras.random.uniform(shape, seed=self.seed_generator)
        else:
            key = tf.random.experimental.stateless_fold_in(
                base.noise_key(self.seed, self.optimizer.iterations), PERMUTATION_STREAM
            )
            uniform = tf.random.stateless_uniform(shape, seed=key)
        order = tf.argsort(uniform, axis=0)
        # Row i of unit d takes z[order[i, d], d].
        return tf.transpose(tf.gather(tf.transpose(z), tf.transpose(order), batch_dims=1))

    def factor_losses(self, x, training=False, eps=None, encoder_input=None):
        """Per-example `loss` and its terms, and the samples `z` they were taken at.

        Returns:
            `(terms, z)`: a dict of float32 `[batch]` tensors, `loss`
            (`reconstruction + beta * KL + tc_penalty * TC estimate`),
            `reconstruction_loss`, `kl_loss` and `total_correlation`; and
            `z`, `[batch, latent_dim]`.
        """
        mu, sigma = self.encoder(x if encoder_input is None else encoder_input, training=training)
        posterior = tfd.Independent(tfd.Normal(loc=mu, scale=sigma), reinterpreted_batch_ndims=1)
        z = self.reparameterize(mu, sigma, eps)
        observation = self.observation_distribution(z, training=training)
        reconstruction = -observation.log_prob(tf.cast(x, tf.float32))
        kl = posterior.kl_divergence(self.prior())
        tc = self.tc_estimate(z)
        terms = {
            "loss": reconstruction + self.beta * kl + self.tc_penalty * tc,
            "reconstruction_loss": reconstruction,
            "kl_loss": kl,
            "total_correlation": tc,
        }
        return terms, z

    def discriminator_losses(self, z):
        """Per-example cross-entropy of the discriminator on `z` and its permutation, `[batch]`."""
        z = tf.stop_gradient(tf.cast(z, tf.float32))
        real = self.discriminator(z, training=True)
        permuted = self.discriminator(self.permute_dims(z), training=True)
        labels_real = tf.fill(tf.shape(real)[:1], REAL)
        labels_permuted = tf.fill(tf.shape(permuted)[:1], PERMUTED)
        return 0.5 * (
            tf.nn.sparse_softmax_cross_entropy_with_logits(labels_real, real)
            + tf.nn.sparse_softmax_cross_entropy_with_logits(labels_permuted, permuted)
        )

    def train_step(self, data):
        x, _, sample_weight = base.unpack_inputs(self, data)
        kl_weight = self.kl_weight(training=True)
        eps = self.training_noise(x, 1)[0]
        seen = self.dropped_input(x) if self.input_dropout else None
        with tf.GradientTape() as tape:
            terms, z = self.factor_losses(x, training=True, eps=eps, encoder_input=seen)
            objective = (
                terms["reconstruction_loss"]
                + kl_weight * terms["kl_loss"]
                + self.tc_penalty * terms["total_correlation"]
            )
            loss = base.average_over_global_batch(objective, x, sample_weight)
            loss += base.regularization_loss(self)
        scaled = self.optimizer.scale_loss(loss) if hasattr(self.optimizer, "scale_loss") else loss
        variables = self.model_variables
        self.optimizer.apply(tape.gradient(scaled, variables), variables)

        with tf.GradientTape() as tape:
            critic = self.discriminator_losses(z)
            critic_loss = base.average_over_global_batch(critic, x, sample_weight)
        variables = self.discriminator.trainable_variables
        self.discriminator_optimizer.apply(tape.gradient(critic_loss, variables), variables)
        return self._update_factor_metrics(terms, critic, sample_weight)

    def test_step(self, data):
        x, _, sample_weight = base.unpack_inputs(self, data)
        terms, z = self.factor_losses(x, training=False)
        return self._update_factor_metrics(terms, self.discriminator_losses(z), sample_weight)

    def _update_factor_metrics(self, terms, critic, sample_weight):
        self.tc_tracker.update_state(terms["total_correlation"], sample_weight=sample_weight)
        self.discriminator_loss_tracker.update_state(critic, sample_weight=sample_weight)
        return self._update_metrics(terms, sample_weight)

    def get_config(self):
        return {
            **super().get_config(),
            "tc_penalty": self.tc_penalty,
            "discriminator_units": list(self.discriminator_units),
            "discriminator_learning_rate": self.discriminator_learning_rate,
        }


def _build_factorvae(config, data_shape, steps_per_epoch):
    encoder, decoder = registry.build_networks(config, data_shape, probabilistic=True)
    return FactorVAE(
        encoder,
        decoder,
        tc_penalty=config.tc_penalty,
        discriminator_units=config.discriminator_units,
        discriminator_learning_rate=config.discriminator_learning_rate,
        likelihood=config.resolved_likelihood,
        seed=config.seed,
        name="factorvae",
    )


registry.register_family(
    registry.ModelFamily(
        name="factorvae",
        model_class=FactorVAE,
        description="FactorVAE: the ELBO plus a total-correlation penalty that a "
        "discriminator estimates",
        build=_build_factorvae,
        settings=(
            Setting(
                "tc_penalty",
                10.0,
                "Weight of the discriminator's total-correlation estimate (gamma).",
                minimum=0,
            ),
            Setting(
                "discriminator_units",
                (256, 256),
                "Hidden layer widths of the discriminator.",
                kind="ints",
                allow_empty=False,
                minimum=1,
            ),
            Setting(
                "discriminator_learning_rate",
                1e-4,
                "Adam step size of the discriminator.",
                minimum=0,
                exclusive_minimum=True,
            ),
        ),
        metrics=(
            "loss",
            "reconstruction_loss",
            "kl_loss",
            "neg_elbo",
            "total_correlation",
            "discriminator_loss",
        ),
        binarize_by_default=True,
        capabilities=("prior", "likelihood_bound"),
        objective="val_neg_elbo",
    )
)
