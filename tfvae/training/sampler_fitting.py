"""`fit_sampler(run_dir, config)`: a latent sampler fitted after training, stored in the run.

A VAE's prior `N(0, I)` rarely matches its aggregate posterior (the codes
the training set actually occupies), so prior samples decode codes the
decoder has seldom seen and look worse than reconstructions. A sampler
fitted to the training set's codes after training draws where they lie:

- `gmm`: a Gaussian mixture (`GaussianMixtureSampler`) fitted by EM
  (scikit-learn's `GaussianMixture`, seeded) to the posterior means
  (Pythae's `GaussianMixtureSampler`);
- `two-stage`: a second, small dense VAE (`TwoStageSampler`) with a
  Gaussian likelihood and a learned scale, trained on posterior samples
  `z ~ q(z | x)` (Dai & Wipf, 2019); a draw is `u ~ N(0, I)`, then the
  mean of `p2(z | u)`.

The run then holds it:

    model.keras       the VAE with its `latent_sampler` (replaced atomically)
    samples.png       decoded draws of the sampler (regenerated)
    sampler.json      the sampler's settings and what was measured: the test
                      codes' negative log-density under the sampler and under
                      N(0, I), and the sample quality (FID, KID,
                      precision/recall) of prior and sampler samples

`sampler.json` is written last: a run killed before it keeps its old
model or holds the new one whole (each file is replaced atomically).
Fitting again replaces the sampler.
"""

import dataclasses
import math
import os

import keras
import numpy as np
import tensorflow as tf

from tfvae import settings
from tfvae.errors import TfvaeError
from tfvae.evaluation import plots
from tfvae.evaluation import sample_quality
from tfvae.evaluation.feature_extractors import feature_extractor
from tfvae.evaluation.figures import PRIOR_SAMPLES
from tfvae.io.atomic import write_json
from tfvae.io.locks import exclusive_lock
from tfvae.io.model_files import save_model_file
from tfvae.models import registry
from tfvae.models.decoder import Decoder
from tfvae.models.encoder import Encoder
from tfvae.models.gaussian_mixture_sampler import GaussianMixtureSampler
from tfvae.models.two_stage_sampler import TwoStageSampler
from tfvae.models.vae import VAE
from tfvae.training import runs

SAMPLERS = ("gmm", "two-stage")
COVARIANCES = ("full", "diag")
FEATURES = ("mnist", "inception")
SAMPLER_FILE = "sampler.json"
ENCODE_BATCH = 500
# EM's small addition to each covariance's diagonal: a collapsed latent
# unit (posterior means all near 0) would otherwise give a singular one.
REG_COVAR = 1e-6
EM_ITERATIONS = 200
NAMES = {"gmm": "Gaussian mixture", "two-stage": "two-stage VAE"}


@dataclasses.dataclass
class SamplerConfig:
    """The settings of a latent sampler and of its fitting (`tfvae fit-sampler`'s flags).

    Example:

    >>> config = SamplerConfig(sampler="gmm", components=20)
    """

    sampler: str = settings.setting(
        "gmm",
        "gmm: a Gaussian mixture on the posterior means; two-stage: a second VAE on the "
        "posterior samples (Dai & Wipf 2019).",
        choices=SAMPLERS,
    )
    components: int = settings.setting(10, "gmm: mixture components.", minimum=1)
    covariance: str = settings.setting(
        "full",
        "gmm: full covariances (the codes' correlations within a component) or diagonal ones.",
        choices=COVARIANCES,
    )
    epochs: int = settings.setting(
        100, "two-stage: passes of the second VAE over the training codes.", minimum=1
    )
    hidden_units: tuple = settings.setting(
        (256, 256),
        "two-stage: hidden widths of the second VAE's encoder and decoder.",
        kind="ints",
        minimum=1,
        allow_empty=False,
    )
    batch_size: int = settings.setting(128, "two-stage: codes per training step.", minimum=1)
    learning_rate: float = settings.setting(
        1e-3, "two-stage: Adam's (peak) step size.", minimum=0, exclusive_minimum=True
    )
    samples: int = settings.setting(
        1000,
        "Score this many prior samples and sampler samples against the test set (FID, KID, "
        "precision/recall); 0 skips it.",
        minimum=0,
    )
    features: str = settings.setting(
        "mnist", "Features for the sample quality (as tfvae evaluate --features).", choices=FEATURES
    )
    seed: int = settings.setting(0, "Seeds EM, the second VAE and the scored draws.", minimum=0)

    def __post_init__(self):
        self.validate()

    def validate(self):
        settings.check_fields(self)
        if self.samples:
            sample_quality.check_sample_count(self.samples, name="samples")

    def to_dict(self):
        return dataclasses.asdict(self)


@dataclasses.dataclass
class SamplerResult:
    """What `fit_sampler` returns: the run, its model with the sampler, and what was measured."""

    run_dir: str
    model: object
    metrics: dict


def with_latent_sampler(model, sampler):
    """A copy of the VAE `model` holding `sampler` as its `latent_sampler` (`None`: none).

    The copy is made from `model`'s config and takes its weight values, so
    every family built on `VAE` keeps its own settings; `model` is unchanged.
    """
    config = {**model.get_config(), "latent_sampler": sampler}
    if sampler is None:
        config.pop("latent_sampler")
    copy = type(model).from_config(config)
    copy.build((None, *model.decoder.data_shape))
    for target, source in zip(_own_weights(copy), _own_weights(model), strict=True):
        target.assign(source)
    return copy


def _own_weights(model):
    """`model.weights` without those of its `latent_sampler`, in order."""
    sampler = getattr(model, "latent_sampler", None)
    held = {id(v) for v in sampler.weights} if sampler is not None else set()
    return [v for v in model.weights if id(v) not in held]


def check_sampler_target(run_dir):
    """Raises `TfvaeError` unless a sampler can be fitted for the run `run_dir`; writes nothing.

    Returns:
        `(run config, model)` of the run.
    """
    run_config, model = runs.load_run(run_dir)
    family = registry.family_of(model)
    offered = [f.name for f in registry.families() if f.can("prior") and not f.needs_labels]
    if not family.can("prior") or family.needs_labels:
        why = "its samples take class labels" if family.needs_labels else "it has no prior"
        raise TfvaeError(
            f"tfvae fit-sampler replaces the N(0, I) prior of a VAE's samples; run {run_dir} "
            f"holds a {family.name} model ({family.description}) and {why}. It applies to "
            f"{', '.join(offered)}"
        )
    _check_decodes_sampler_codes(run_dir, family, model)
    return run_config, model


def _check_decodes_sampler_codes(run_dir, family, model):
    """Refuses a family whose `sample` does not decode `latent_sampler(eps)`."""
    probe = GaussianMixtureSampler(model.latent_dim, components=1, name="latent_sampler")
    probe.set_mixture([1.0], np.full((1, model.latent_dim), 3.0), [np.eye(model.latent_dim)])
    eps = np.random.default_rng(0).standard_normal((4, model.latent_dim)).astype(np.float32)
    expected = np.asarray(model.decode(probe(eps)))
    try:
        drawn = np.asarray(with_latent_sampler(model, probe).sample(None, eps=eps))
    except (TypeError, ValueError):
        drawn = None
    if drawn is None or not np.allclose(drawn, expected, atol=1e-5):
        raise TfvaeError(
            f"run {run_dir} holds a {family.name} model, whose samples are not decoded "
            "N(0, I) draws; tfvae fit-sampler cannot replace its prior"
        )


def posterior_moments(model, x, batch_size=ENCODE_BATCH):
    """The posterior means and scales of `x`, float32 numpy arrays `[n, latent_dim]`."""
    means, scales = [], []
    for i in range(0, len(x), batch_size):
        mean, scale = model.encode(x[i : i + batch_size])
        means.append(np.asarray(mean, np.float32))
        scales.append(np.asarray(scale, np.float32))
    return np.concatenate(means), np.concatenate(scales)


def fit_gaussian_mixture(codes, config):
    """A `GaussianMixtureSampler` fitted by EM to `codes` `[n, latent_dim]`."""
    from sklearn.mixture import GaussianMixture  # only this command needs scikit-learn here

    codes = np.asarray(codes, np.float64)
    if config.components > len(codes):
        raise TfvaeError(
            f"components must be at most the number of training examples ({len(codes)}). "
            f"Received: components={config.components}"
        )
    mixture = GaussianMixture(
        n_components=config.components,
        covariance_type=config.covariance,
        reg_covar=REG_COVAR,
        max_iter=EM_ITERATIONS,
        random_state=config.seed,
    ).fit(codes)
    sampler = GaussianMixtureSampler(
        codes.shape[1], components=config.components, name="latent_sampler"
    )
    sampler.set_mixture(mixture.weights_, mixture.means_, mixture.covariances_)
    return sampler, mixture


def mixture_log_density(sampler, codes):
    """`log` of the sampler's mixture density at `codes` `[n, d]`, float64 `[n]`."""
    from scipy.special import logsumexp
    from scipy.stats import multivariate_normal

    weights, means, covariances = sampler.mixture()
    per_component = np.stack(
        [
            multivariate_normal(means[k], covariances[k]).logpdf(codes).reshape(-1)
            for k in range(len(weights))
        ],
        axis=1,
    )
    return logsumexp(per_component + np.log(weights), axis=1)


def _noisy_codes(means, scales, batch_size, seed):
    """Batches of posterior samples `mu + sigma * eps`, fresh each epoch, seeded, repeated."""
    pairs = tf.data.Dataset.from_tensor_slices((means, scales))
    batches = (
        pairs.shuffle(len(means), seed=seed, reshuffle_each_iteration=True)
        .batch(batch_size)
        .repeat()
        .enumerate()
    )

    def draw(step, pair):
        mean, scale = pair
        noise = tf.random.stateless_normal(
            tf.shape(mean), seed=tf.stack([tf.constant(seed, tf.int64), step])
        )
        return mean + scale * noise

    return batches.map(draw).prefetch(tf.data.AUTOTUNE)


def fit_two_stage(means, scales, config, verbose=0):
    """A `TwoStageSampler`: a second VAE trained on posterior samples; returns `(sampler, history)`."""
    keras.utils.set_random_seed(config.seed)
    latent_dim = means.shape[1]
    stage_two = VAE(
        Encoder(latent_dim, hidden_units=config.hidden_units, probabilistic=True, name="encoder"),
        Decoder((latent_dim,), hidden_units=config.hidden_units, name="decoder"),
        likelihood="gaussian",
        seed=config.seed,
        name="stage_two",
    )
    stage_two.build((None, latent_dim))
    steps = math.ceil(len(means) / config.batch_size)
    stage_two.compile(
        optimizer=keras.optimizers.Adam(
            keras.optimizers.schedules.CosineDecay(config.learning_rate, steps * config.epochs)
        )
    )
    history = stage_two.fit(
        _noisy_codes(means, scales, config.batch_size, config.seed),
        epochs=config.epochs,
        steps_per_epoch=steps,
        shuffle=False,  # the pipeline shuffles, seeded
        verbose=verbose,
    ).history
    # An uncompiled copy: a compiled sub-model would save its optimizer's
    # state into the first stage's `.keras` file, where loading cannot place it.
    trained = VAE.from_config(stage_two.get_config())
    trained.build((None, latent_dim))
    trained.set_weights(stage_two.get_weights())
    return TwoStageSampler(trained, name="latent_sampler"), history


def _standard_normal_nll(codes):
    return float(
        np.mean(0.5 * np.sum(codes**2, axis=1) + 0.5 * codes.shape[1] * math.log(2 * math.pi))
    )


def _stage_two_nll(sampler, codes):
    """The second stage's negative ELBO of `codes`, an upper bound on `-log p2(codes)`."""
    stage_two = sampler.stage_two
    eps = tf.random.stateless_normal(codes.shape, seed=[0, 0])
    terms = stage_two.per_example_losses(tf.constant(codes), eps=eps)
    return float(np.mean(terms["reconstruction_loss"] + terms["kl_loss"]))


def score_samples(plain, fitted, data, config, extractor):
    """Sample quality of `config.samples` draws of `plain` (the prior) and of `fitted`, same eps."""
    real = extractor(data.x_test)
    rows = {}
    for key, model in (("prior_samples", plain), ("sampler_samples", fitted)):
        images = sample_quality.prior_samples(model, config.samples, config.seed)
        rows[key] = sample_quality.compare_features(real, extractor(images), seed=config.seed)
    return {
        "features": extractor.name,
        "reference_examples": int(len(real)),
        "k": sample_quality.DEFAULT_K,
        **rows,
    }


def fit_sampler(run_dir, config=None, verbose=0):
    """Fits a latent sampler to the training codes of the VAE of `run_dir` and stores it in the run.

    Args:
        run_dir: str. A run directory of `tfvae train` with a VAE family.
        config: `SamplerConfig` or None. Defaults to `SamplerConfig()`.
        verbose: Keras `fit` verbosity of the second VAE. Defaults to `0`.

    Returns:
        A `SamplerResult`; its `metrics` hold `test_code_nll` (the test
        codes' mean negative log-density under the sampler, nats; an upper
        bound for the two-stage VAE) and `test_code_nll_prior` (under
        `N(0, I)`), and with `samples > 0` `sample_quality`: FID, KID and
        precision/recall of prior and sampler draws from the same `eps`.
    """
    config = SamplerConfig() if config is None else config
    config.validate()
    run_config, model = check_sampler_target(run_dir)
    extractor = None
    if config.samples:
        extractor = feature_extractor(config.features)
        extractor.check_dataset(run_config.dataset)
    data = runs.load_run_data(run_dir, run_config, model)
    x_train, x_test = data.arrays("train")[0], data.arrays("test")[0]
    if extractor is not None:
        sample_quality.check_sample_count(len(x_test), name="test examples")
    if config.sampler == "gmm" and config.components > len(x_train):
        raise TfvaeError(
            f"components must be at most the number of training examples ({len(x_train)}). "
            f"Received: components={config.components}"
        )
    plain = with_latent_sampler(model, None) if model.latent_sampler is not None else model
    with exclusive_lock(run_dir):
        train_means, train_scales = posterior_moments(plain, x_train)
        test_means, test_scales = posterior_moments(plain, x_test)
        if config.sampler == "gmm":
            sampler, mixture = fit_gaussian_mixture(train_means, config)
            codes = test_means
            metrics = {
                "codes": "posterior means",
                "test_code_nll": float(-np.mean(mixture_log_density(sampler, codes))),
                "em_converged": bool(mixture.converged_),
                "em_iterations": int(mixture.n_iter_),
            }
        else:
            sampler, history = fit_two_stage(train_means, train_scales, config, verbose)
            noise = np.random.default_rng(config.seed).standard_normal(test_means.shape)
            codes = (test_means + test_scales * noise).astype(np.float32)
            metrics = {
                "codes": "posterior samples",
                "test_code_nll": _stage_two_nll(sampler, codes),
                "stage_two_final_loss": float(history["loss"][-1]),
            }
        metrics["test_code_nll_prior"] = _standard_normal_nll(codes)
        metrics["training_examples"] = int(len(x_train))
        metrics["test_examples"] = int(len(x_test))
        fitted = with_latent_sampler(plain, sampler)
        if extractor is not None:
            metrics["sample_quality"] = score_samples(plain, fitted, data, config, extractor)
        eps = keras.random.normal((PRIOR_SAMPLES, fitted.latent_dim), seed=run_config.seed)
        title = f"Decoded samples from the fitted {NAMES[config.sampler]}"
        plots.save_figure(
            plots.grid_figure(np.asarray(fitted.sample(None, eps=eps)), title),
            os.path.join(run_dir, "samples.png"),
        )
        save_model_file(fitted, os.path.join(run_dir, runs.MODEL_FILE))
        write_json(
            os.path.join(run_dir, SAMPLER_FILE), {"settings": config.to_dict(), "metrics": metrics}
        )
    return SamplerResult(run_dir=run_dir, model=fitted, metrics=metrics)


def format_sampler_metrics(config, metrics):
    """Human-readable report of `fit_sampler`'s metrics."""
    name = NAMES[config.sampler]
    what = f"{config.components} components, {config.covariance} covariances"
    if config.sampler == "two-stage":
        what = f"hidden units {list(config.hidden_units)}, {config.epochs} epochs"
    bound = " (an upper bound)" if config.sampler == "two-stage" else ""
    lines = [
        f"{name} ({what}) fitted to {metrics['training_examples']} training codes",
        f"test {metrics['codes']}: -log density {metrics['test_code_nll']:.3f} nats under the "
        f"sampler{bound}, {metrics['test_code_nll_prior']:.3f} under N(0, I)",
    ]
    quality = metrics.get("sample_quality")
    if quality:
        lines.append(
            f"sample quality against the {quality['reference_examples']} test examples "
            f"({quality['features']!r} features, same eps):"
        )
        lines.append(f"  {'':18}{'FID':>10}{'KID (s.e.)':>22}{'precision':>11}{'recall':>8}")
        for key, label in (("prior_samples", "prior N(0, I)"), ("sampler_samples", name)):
            row = quality[key]
            kid = f"{row['kid']:.4f} ({row['kid_std_error']:.4f})"
            lines.append(
                f"  {label:18}{row['fid']:10.2f}{kid:>22}{row['precision']:11.3f}{row['recall']:8.3f}"
            )
    return "\n".join(lines)
