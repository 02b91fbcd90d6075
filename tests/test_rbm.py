import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf
from model_test_case import run_model_saving_test
from model_test_case import run_serialization_test
from model_test_case import run_takes_no_labels_test
from scipy.special import expit
from scipy.special import logsumexp

from tfvae.errors import TfvaeError
from tfvae.math import rbm as rbm_math
from tfvae.models import RBM


def tiny_rbm(n_visible=6, n_hidden=4, seed=0):
    rng = np.random.default_rng(seed)
    return (
        rng.normal(0, 1.0, (n_visible, n_hidden)),
        rng.normal(0, 1.0, n_visible),
        rng.normal(0, 1.0, n_hidden),
    )


def all_binary(n):
    return np.array(list(itertools.product([0.0, 1.0], repeat=n)))


def log_joint(kernel, visible_bias, hidden_bias):
    """`-E(v, h)` for every `(v, h)`: `[2^D, 2^H]`."""
    v = all_binary(len(visible_bias))
    h = all_binary(len(hidden_bias))
    return (v @ visible_bias)[:, None] + (h @ hidden_bias)[None, :] + v @ kernel @ h.T


def test_free_energy_and_conditionals_match_enumeration():
    params = tiny_rbm()
    v, h = all_binary(6), all_binary(4)
    joint = log_joint(*params)
    free_energy = np.asarray(rbm_math.free_energy(v, *params))
    np.testing.assert_allclose(free_energy, -logsumexp(joint, axis=1), rtol=1e-12)
    # exp(-F) normalized by the enumerated partition function is a distribution.
    log_z = logsumexp(joint)
    assert np.exp(-free_energy - log_z).sum() == pytest.approx(1.0, rel=1e-12)
    # p(h_j = 1 | v) and p(v_i = 1 | h) as marginals of the enumerated joint.
    p_h_given_v = np.exp(joint - logsumexp(joint, axis=1, keepdims=True))
    np.testing.assert_allclose(
        rbm_math.hidden_probabilities(v, params[0], params[2]), p_h_given_v @ h, rtol=1e-10
    )
    p_v_given_h = np.exp(joint - logsumexp(joint, axis=0, keepdims=True))
    np.testing.assert_allclose(
        rbm_math.visible_probabilities(h, params[0], params[1]), p_v_given_h.T @ v, rtol=1e-10
    )


def test_pseudo_log_likelihood_matches_direct_conditionals():
    params = tiny_rbm(seed=1)
    v = all_binary(6)
    log_p = -np.asarray(rbm_math.free_energy(v, *params))  # log p(v) + log Z
    index = {tuple(row): n for n, row in enumerate(v)}
    conditionals = np.zeros((len(v), 6))
    for n, row in enumerate(v):
        for i in range(6):
            flipped = row.copy()
            flipped[i] = 1 - flipped[i]
            other = log_p[index[tuple(flipped)]]
            conditionals[n, i] = log_p[n] - np.logaddexp(log_p[n], other)
    # chunk=4 < 6 visible units: the chunked sum is checked too.
    np.testing.assert_allclose(
        rbm_math.pseudo_log_likelihood(v, *params, chunk=4), conditionals.sum(axis=1), rtol=1e-10
    )
    for i in range(6):
        units = np.full(len(v), i)
        np.testing.assert_allclose(
            rbm_math.stochastic_pseudo_log_likelihood(v, *params, units),
            6 * conditionals[:, i],
            rtol=1e-10,
        )


def test_reconstruction_errors_match_numpy(digits_binary):
    kernel, visible_bias, hidden_bias = tiny_rbm(64, 8, seed=2)
    v = digits_binary.x_test[:50].reshape(50, -1).astype(np.float64)
    hidden = expit(v @ kernel + hidden_bias)
    logits = hidden @ kernel.T + visible_bias
    np.testing.assert_allclose(
        rbm_math.reconstruction_error(v, kernel, visible_bias, hidden_bias),
        np.mean((v - expit(logits)) ** 2, axis=1),
        rtol=1e-10,
    )
    cross_entropy = -np.sum(v * np.log(expit(logits)) + (1 - v) * np.log(expit(-logits)), axis=1)
    np.testing.assert_allclose(
        rbm_math.reconstruction_error(v, kernel, visible_bias, hidden_bias, "cross_entropy"),
        cross_entropy,
        rtol=1e-10,
    )
    with pytest.raises(TfvaeError, match="unknown reconstruction error 'l1'"):
        rbm_math.reconstruction_error(v, kernel, visible_bias, hidden_bias, "l1")


class _ReplayedUniforms:
    """A stand-in for scikit-learn's RandomState that hands out given uniform draws."""

    def __init__(self, draws):
        self.draws = list(draws)

    def uniform(self, size):
        draw = self.draws.pop(0)
        assert draw.shape == tuple(size)
        return draw


def test_update_is_scikit_learns_given_the_same_random_numbers(digits_binary):
    """Six PCD steps with plain SGD equal `BernoulliRBM._fit` fed the RBM's own draws."""
    from sklearn.neural_network import BernoulliRBM

    hidden, chains, seed, steps = 16, 10, 3, 6
    x = digits_binary.x_train.reshape(len(digits_binary.x_train), -1)[: chains * steps]
    rbm = RBM(hidden, chains=chains, seed=seed)
    rbm.compile(optimizer=keras.optimizers.SGD(0.1))
    rbm.build((None, 64))
    reference = BernoulliRBM(n_components=hidden, learning_rate=0.1, batch_size=chains)
    reference.components_ = rbm.kernel.numpy().T.astype(np.float64)
    reference.intercept_hidden_ = np.zeros(hidden)
    reference.intercept_visible_ = np.zeros(64)
    reference.h_samples_ = np.zeros((chains, hidden))
    # The RBM draws step s's visible, then hidden, samples from keys 1 and 2
    # of stateless_split([seed, s]); scikit-learn asks for them in that order.
    draws = []
    for step in range(1, steps + 1):
        keys = tf.random.experimental.stateless_split(tf.constant([seed, step], tf.int64), 4)
        for key, width in ((keys[1], 64), (keys[2], hidden)):
            draws.append(tf.random.stateless_uniform((chains, width), seed=key).numpy())
    replay = _ReplayedUniforms(np.asarray(d, np.float64) for d in draws)
    for i in range(steps):
        reference._fit(x[i * chains : (i + 1) * chains].astype(np.float64), replay)
    rbm.fit(x, epochs=1, batch_size=chains, shuffle=False, verbose=0)
    # Measured: at most 3.2e-8 apart (float32 against float64).
    np.testing.assert_allclose(rbm.kernel.numpy(), reference.components_.T, atol=1e-6)
    np.testing.assert_allclose(rbm.visible_bias.numpy(), reference.intercept_visible_, atol=1e-6)
    np.testing.assert_allclose(rbm.hidden_bias.numpy(), reference.intercept_hidden_, atol=1e-6)
    np.testing.assert_array_equal(rbm.persistent_hidden.numpy(), reference.h_samples_)
    assert np.abs(reference.components_).max() > 0.1  # the steps moved the weights


def test_trains_like_scikit_learn_on_digits(digits_binary):
    from sklearn.neural_network import BernoulliRBM

    # 1,280 examples: whole batches of 20, so scikit-learn's last batch is not
    # short; both visit the examples in file order (shuffle=False).
    x_train = digits_binary.x_train.reshape(len(digits_binary.x_train), -1)[:1280]
    x_test = digits_binary.x_test.reshape(len(digits_binary.x_test), -1)
    settings = {"n_hidden": 64, "learning_rate": 0.05, "batch_size": 20, "epochs": 20}
    reference = BernoulliRBM(
        n_components=64, learning_rate=0.05, batch_size=20, n_iter=20, random_state=0
    ).fit(x_train.astype(np.float64))
    reference_params = (
        reference.components_.T,
        reference.intercept_visible_,
        reference.intercept_hidden_,
    )
    rbm = RBM(settings["n_hidden"], chains=settings["batch_size"], seed=0)
    rbm.compile(optimizer=keras.optimizers.SGD(settings["learning_rate"]), steps_per_execution=64)
    history = rbm.fit(
        x_train, epochs=settings["epochs"], batch_size=20, shuffle=False, verbose=0
    ).history

    pll = float(np.mean(rbm.pseudo_log_likelihood(x_test)))
    reference_pll = float(np.mean(rbm_math.pseudo_log_likelihood(x_test, *reference_params)))
    error = float(np.mean(rbm_math.reconstruction_error(x_test, *rbm.parameters)))
    reference_error = float(np.mean(rbm_math.reconstruction_error(x_test, *reference_params)))
    # Measured over seeds 0-4 (test PLL, nats): scikit-learn -18.53 to -19.04,
    # tfvae -18.78 to -19.27; per seed at most 0.74 apart (seed 0). MSE within 5%.
    assert pll == pytest.approx(reference_pll, abs=1.5)
    assert error == pytest.approx(reference_error, rel=0.1)

    # For independent pixels the PLL is the log-likelihood: -24.09 nats here.
    p = np.clip(x_train.mean(axis=0), 1e-4, 1 - 1e-4)
    independent = float(np.mean((x_test * np.log(p) + (1 - x_test) * np.log1p(-p)).sum(axis=1)))
    assert independent == pytest.approx(-24.09, abs=0.05)
    untrained = RBM(64, seed=0)
    untrained.build((None, 64))
    assert float(np.mean(untrained.pseudo_log_likelihood(x_test))) < -40  # measured -44.4
    assert pll > independent + 4 and reference_pll > independent + 4
    # The stochastic PLL reported in fit rises from -27.6 to -17.5 (measured).
    assert history["pseudo_log_likelihood"][-1] > history["pseudo_log_likelihood"][0] + 4
    assert history["reconstruction_error"][-1] < history["reconstruction_error"][0]


def test_contrastive_divergence_learns_from_images_and_is_reproducible(digits_binary):
    """CD-2 (restarted chains) on (N, 8, 8, 1) images; the seed fixes the result."""

    def trained(seed, validation_data=None):
        keras.utils.set_random_seed(0)  # fit's shuffling; the RBM's own draws use `seed`
        rbm = RBM(32, k=2, persistent=False, seed=seed)
        rbm.compile(optimizer=keras.optimizers.SGD(0.1), steps_per_execution=32)
        history = rbm.fit(
            digits_binary.x_train,
            epochs=5,
            batch_size=20,
            validation_data=validation_data,
            verbose=0,
        ).history
        return rbm, history

    first, history = trained(seed=0, validation_data=(digits_binary.x_val,))
    again, _ = trained(seed=0)
    other, _ = trained(seed=1)
    np.testing.assert_array_equal(first.kernel.numpy(), again.kernel.numpy())
    assert not np.allclose(first.kernel.numpy(), other.kernel.numpy())
    assert set(history) == {
        "reconstruction_error",
        "pseudo_log_likelihood",
        "val_reconstruction_error",
        "val_pseudo_log_likelihood",
    }
    assert first.n_visible == 64 and not hasattr(first, "persistent_hidden")
    # Measured: test PLL -20.67 after 5 epochs (-20.67 with seed 1 too), against
    # -24.09 for independent pixels.
    assert float(np.mean(first.pseudo_log_likelihood(digits_binary.x_test))) > -23.0
    features = first.predict(digits_binary.x_test[:7], verbose=0)
    assert features.shape == (7, 32) and 0 < features.min() and features.max() < 1


def test_keras_round_trip_gives_identical_outputs(digits_binary, tmp_path):
    rbm = RBM(16, k=2, chains=8, seed=4)
    rbm.compile(optimizer=keras.optimizers.SGD(0.05))
    rbm.fit(digits_binary.x_train[:160], epochs=1, batch_size=16, verbose=0)
    run_serialization_test(rbm)
    restored = run_model_saving_test(rbm, digits_binary.x_test[:20], tmp_path)
    assert (restored.n_hidden, restored.k, restored.persistent, restored.chains) == (16, 2, True, 8)
    np.testing.assert_array_equal(restored.persistent_hidden.numpy(), rbm.persistent_hidden.numpy())
    assert int(restored.sampling_step.numpy()) == 10
    np.testing.assert_array_equal(
        restored.pseudo_log_likelihood(digits_binary.x_test),
        rbm.pseudo_log_likelihood(digits_binary.x_test),
    )


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"n_hidden": 0}, "n_hidden must be a positive integer. Received: n_hidden=0"),
        ({"n_hidden": 4, "k": 0}, "k must be a positive integer. Received: k=0"),
        ({"n_hidden": 4, "chains": -1}, "chains must be a positive integer"),
        ({"n_hidden": 4, "seed": -2}, "seed must be an integer >= 0. Received: seed=-2"),
    ],
)
def test_bad_arguments_name_the_value(kwargs, message):
    with pytest.raises(TfvaeError, match=message):
        RBM(**kwargs)


def test_labels_and_sample_weights_are_refused(digits_binary):
    rbm = RBM(8, chains=16, seed=0)
    rbm.compile(optimizer=keras.optimizers.SGD(0.05))
    x = digits_binary.x_train[:64]
    run_takes_no_labels_test(rbm, x, digits_binary.y_train[:64])
    before = [np.array(v) for v in rbm.weights]
    with pytest.raises(TfvaeError, match="RBM trains on unweighted examples"):
        rbm.fit(x, sample_weight=np.ones(64), epochs=1, verbose=0)
    for a, b in zip(before, rbm.weights, strict=True):
        np.testing.assert_array_equal(a, b)
