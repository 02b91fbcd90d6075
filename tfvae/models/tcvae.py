"""beta-TCVAE: the VAE with its KL term split into three separately weighted parts."""

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae import checks
from tfvae.errors import TfvaeError
from tfvae.math.decomposition import ESTIMATORS
from tfvae.math.decomposition import decomposed_kl
from tfvae.models import base
from tfvae.models import registry
from tfvae.models.vae import VAE
from tfvae.settings import Setting

tfd = tfp.distributions

DECOMPOSITION_TERMS = ("mutual_information", "total_correlation", "dimensionwise_kl")


@keras.saving.register_keras_serializable(package="tfvae")
class TCVAE(VAE):
    """beta-TCVAE (Chen et al. 2018): the ELBO's KL term split and weighted part by part.

    The KL term of the ELBO, averaged over the data, is the index-code mutual
    information `I(z; n)`, plus the total correlation
    `KL(q(z) || prod_d q(z_d))`, plus the dimension-wise KL
    `sum_d KL(q(z_d) || p(z_d))`. The train step minimises per example

        -log p(x | z) + alpha * MI + beta * TC + gamma * dimension-wise KL

    with the three parts estimated on the minibatch
    (`tfvae.math.decomposition.decomposed_kl`, minibatch-weighted sampling
    by default). Penalising the total correlation alone (`beta > 1`, alpha
    = gamma = 1) pushes the aggregate posterior towards independent units:
    a disentangled code. With all three weights 1 the objective is the
    ELBO's, in expectation.

    `fit` and `evaluate` report `loss` (the weighted objective),
    `reconstruction_loss`, `kl_loss` (the exact KL, analytic),
    `neg_elbo` and the three estimates, `mutual_information`,
    `total_correlation` and `dimensionwise_kl`. Everything else (the
    posterior, `score`, sampling, the exported functions) is the `VAE`'s.

    Args:
        encoder, decoder: as for `VAE`.
        mi_weight: float >= 0. `alpha`, the weight of the index-code mutual
            information. Defaults to `1.0`.
        tc_weight: float >= 0. `beta`, the weight of the total correlation.
            Defaults to `6.0`.
        dimension_kl_weight: float >= 0. `gamma`, the weight of the
            dimension-wise KL. Defaults to `1.0`.
        dataset_size: int or None. `N`, the number of training examples the
            minibatches are drawn from. Defaults to `None`: each minibatch
            is taken as the whole data set.
        tc_estimator: str. `"mws"` (minibatch-weighted sampling) or
            `"mss"` (minibatch-stratified sampling). Defaults to `"mws"`.
        **kwargs: the other `VAE` arguments (`likelihood`, `seed`,
            `kl_warmup_steps`, which ramps all three weights up together,
            `input_dropout`). `beta` must stay 1 and `iwae_samples` 1: the
            split is of the ELBO's KL term.

    Example:

    >>> model = TCVAE(Encoder(10, probabilistic=True), Decoder((32, 32, 1)), tc_weight=6.0,
    ...               dataset_size=7200, seed=0)
    >>> model.compile(optimizer=keras.optimizers.Adam(1e-3))
    >>> model.fit(x_train, batch_size=128, epochs=20)
    """

    def __init__(
        self,
        encoder,
        decoder,
        mi_weight=1.0,
        tc_weight=6.0,
        dimension_kl_weight=1.0,
        dataset_size=None,
        tc_estimator="mws",
        **kwargs,
    ):
        super().__init__(encoder, decoder, **kwargs)
        if self.beta != 1.0 or self.iwae_samples != 1:
            raise TfvaeError(
                "TCVAE weights the parts of the ELBO's KL term with mi_weight, tc_weight and "
                "dimension_kl_weight; it takes beta=1 and iwae_samples=1. Received: "
                f"beta={self.beta}, iwae_samples={self.iwae_samples}"
            )
        # === Config ===
        self.mi_weight = checks.number_in("mi_weight", mi_weight, low=0)
        self.tc_weight = checks.number_in("tc_weight", tc_weight, low=0)
        self.dimension_kl_weight = checks.number_in(
            "dimension_kl_weight", dimension_kl_weight, low=0
        )
        self.dataset_size = (
            None if dataset_size is None else checks.positive_int("dataset_size", dataset_size)
        )
        self.tc_estimator = checks.choice("tc_estimator", tc_estimator, ESTIMATORS)
        self.decomposition_trackers = base.mean_trackers(*DECOMPOSITION_TERMS)

    @property
    def metrics(self):
        return [*super().metrics, *self.decomposition_trackers]

    def decomposed_losses(self, x, training=False, eps=None, encoder_input=None):
        """Per-example `loss` (the weighted objective), its terms and the KL's three parts.

        One posterior sample per example (`eps` fixes it); the parts are
        estimated over the examples of `x` taken together, so `x` should be
        a minibatch of the training data, not one example.

        Returns:
            dict of float32 `[batch]` tensors: `loss`,
            `reconstruction_loss`, `kl_loss` (analytic), and
            `mutual_information`, `total_correlation`, `dimensionwise_kl`.
        """
        mu, sigma = self.encoder(x if encoder_input is None else encoder_input, training=training)
        mu, sigma = tf.cast(mu, tf.float32), tf.cast(sigma, tf.float32)
        z = self.reparameterize(mu, sigma, eps)
        observation = self.observation_distribution(z, training=training)
        reconstruction = -observation.log_prob(tf.cast(x, tf.float32))
        posterior = tfd.Independent(tfd.Normal(loc=mu, scale=sigma), reinterpreted_batch_ndims=1)
        size = tf.shape(z)[0] if self.dataset_size is None else self.dataset_size
        parts = decomposed_kl(z, mu, sigma, size, self.tc_estimator)
        terms = {
            "reconstruction_loss": reconstruction,
            "kl_loss": posterior.kl_divergence(self.prior()),
            **{name: parts[name] for name in DECOMPOSITION_TERMS},
        }
        terms["loss"] = reconstruction + self.weighted_parts(terms)
        return terms

    def weighted_parts(self, terms):
        """`alpha * MI + beta * TC + gamma * dimension-wise KL`, per example."""
        return (
            self.mi_weight * terms["mutual_information"]
            + self.tc_weight * terms["total_correlation"]
            + self.dimension_kl_weight * terms["dimensionwise_kl"]
        )

    def _training_terms(self, x):
        # `kl_weight` is beta (1) times the warm-up's ramp: all three parts ramp together.
        ramp = self.kl_weight(training=True)
        eps = self.training_noise(x, 1)[0]
        seen = self.dropped_input(x) if self.input_dropout else None
        terms = self.decomposed_losses(x, training=True, eps=eps, encoder_input=seen)
        return terms["reconstruction_loss"] + ramp * self.weighted_parts(terms), terms

    def _update_metrics(self, terms, sample_weight=None):
        for name, tracker in zip(DECOMPOSITION_TERMS, self.decomposition_trackers, strict=True):
            tracker.update_state(terms[name], sample_weight=sample_weight)
        return super()._update_metrics(terms, sample_weight)

    def test_step(self, data):
        x, _, sample_weight = base.unpack_inputs(self, data)
        return self._update_metrics(self.decomposed_losses(x, training=False), sample_weight)

    def get_config(self):
        return {
            **super().get_config(),
            "mi_weight": self.mi_weight,
            "tc_weight": self.tc_weight,
            "dimension_kl_weight": self.dimension_kl_weight,
            "dataset_size": self.dataset_size,
            "tc_estimator": self.tc_estimator,
        }


def training_set_size(config, steps_per_epoch):
    """The number of training examples, from the steps per epoch: `None` outside training.

    `steps * batch_size` overstates it by less than one batch, which moves
    `log N` by less than `batch_size / N`.
    """
    return steps_per_epoch * config.batch_size if steps_per_epoch else None


def _build_tcvae(config, data_shape, steps_per_epoch):
    encoder, decoder = registry.build_networks(config, data_shape, probabilistic=True)
    return TCVAE(
        encoder,
        decoder,
        mi_weight=config.mi_weight,
        tc_weight=config.tc_weight,
        dimension_kl_weight=config.dimension_kl_weight,
        dataset_size=training_set_size(config, steps_per_epoch),
        tc_estimator=config.tc_estimator,
        likelihood=config.resolved_likelihood,
        seed=config.seed,
        name="tcvae",
    )


registry.register_family(
    registry.ModelFamily(
        name="tcvae",
        model_class=TCVAE,
        description="beta-TCVAE: the KL term split into mutual information, total "
        "correlation and dimension-wise KL, each weighted",
        build=_build_tcvae,
        settings=(
            Setting(
                "mi_weight", 1.0, "Weight of the index-code mutual information (alpha).", minimum=0
            ),
            Setting("tc_weight", 6.0, "Weight of the total correlation (beta).", minimum=0),
            Setting(
                "dimension_kl_weight", 1.0, "Weight of the dimension-wise KL (gamma).", minimum=0
            ),
            Setting(
                "tc_estimator",
                "mws",
                "Minibatch estimate of q(z): mws (minibatch-weighted sampling) or mss "
                "(minibatch-stratified sampling).",
                choices=ESTIMATORS,
            ),
        ),
        metrics=("loss", "reconstruction_loss", "kl_loss", "neg_elbo", *DECOMPOSITION_TERMS),
        binarize_by_default=True,
        capabilities=("prior", "likelihood_bound"),
        # The estimated parts carry constants that grow with the latent size
        # (see `tfvae.math.decomposition`): a search ranks on the exact bound.
        objective="val_neg_elbo",
    )
)
