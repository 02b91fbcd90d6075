"""Helpers shared by the model tests, in the manner of keras-hub's TestCase."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfvae.errors import TfvaeError


def _as_json(config):
    return json.loads(json.dumps(config))


def run_serialization_test(model):
    """`get_config` -> `from_config` gives an equal config."""
    config = model.get_config()
    clone = model.__class__.from_config(config)
    assert _as_json(clone.get_config()) == _as_json(config)
    return clone


def run_model_saving_test(model, x, tmp_path):
    """A `.keras` round trip with `safe_mode=True` gives identical outputs."""
    path = str(tmp_path / "model.keras")
    model.save(path)
    restored = keras.models.load_model(path, safe_mode=True)
    assert type(restored) is type(model)
    np.testing.assert_array_equal(
        np.asarray(restored.predict(x, verbose=0)), np.asarray(model.predict(x, verbose=0))
    )
    assert _as_json(restored.get_config()) == _as_json(model.get_config())
    return restored


def run_serving_functions_test(model, x, latent):
    """Every entry of `model.serving_functions` returns exactly its named float32 outputs.

    Calls each function on `x` (`input_kind="data"`) or `latent`
    (`"latent"`) and returns `{signature: {output: numpy array}}`, for the
    caller to check the values against independent computations.
    """
    results = {}
    for name, function in model.serving_functions.items():
        inputs = x if function.input_kind == "data" else latent
        outputs = getattr(model, function.method)(tf.constant(inputs, tf.float32))
        assert tuple(outputs) == function.outputs, name
        for output, value in outputs.items():
            assert value.dtype == tf.float32, (name, output)
            assert value.shape[0] == len(inputs), (name, output)
        results[name] = {output: np.asarray(value) for output, value in outputs.items()}
    return results


def run_takes_no_labels_test(model, x, labels):
    """`fit`/`evaluate` with labels raise one-line `TfvaeError`s; input-only forms still train.

    Covers arrays (checked before tracing), a dataset of `(x, labels)`
    (checked while Keras traces the step) and the forms that must keep
    working: `fit(x)`, `fit((x,))`, a dataset of `x` or `(x,)`, and
    `validation_data=(x_val,)`.
    """
    name = type(model).__name__
    expected = (
        rf"{name} reconstructs its input and takes no labels.*Received: y of shape \(batch,\)"
    )
    labelled = tf.data.Dataset.from_tensor_slices((x, labels)).batch(16)
    attempts = [
        lambda: model.fit(x, labels, epochs=1, batch_size=16, verbose=0),
        lambda: model.fit(labelled, epochs=1, shuffle=False, verbose=0),
        lambda: model.fit(x, epochs=1, verbose=0, validation_data=(x, labels)),
        lambda: model.evaluate(x, labels, verbose=0),
    ]
    for attempt in attempts:
        with pytest.raises(TfvaeError, match=expected) as raised:
            attempt()
        assert "\n" not in str(raised.value)
    # A failed trace leaves no half-built step behind.
    for data, batch_size in (
        (x, 16),
        ((x,), 16),
        (tf.data.Dataset.from_tensor_slices(x).batch(16), None),
        (tf.data.Dataset.from_tensor_slices((x,)).batch(16), None),
    ):
        history = model.fit(
            data, epochs=1, batch_size=batch_size, shuffle=False, verbose=0, validation_data=(x,)
        )
        assert np.isfinite(history.history[f"val_{model.metrics[0].name}"][0])


def _weights(model):
    return [np.array(v) for v in model.trainable_variables]


def run_sample_weight_test(make_model, x, deterministic_metrics=None):
    """`sample_weight` gives the weighted mean of the per-example loss.

    `make_model()` returns a fresh compiled model, the same each call, with
    plain SGD at learning rate 1, so a step moves the weights by minus the
    gradient. Checks that all-ones weights train exactly as no weights (with
    `fit(..., sample_weight=w)` and with a dataset of `(x, x, w)`), and that
    zero weights on the second half of a batch give half the gradient of a
    step on the first half alone (the loss is divided by the whole batch)
    and report that half's mean loss, in `fit` and in `evaluate` (there for
    `deterministic_metrics`, default all: a VAE evaluates on fresh noise).
    """
    ones = np.ones(len(x), np.float32)
    plain = make_model()
    history = plain.fit(x, epochs=2, batch_size=32, shuffle=False, verbose=0).history
    weighted = make_model()
    weighted_history = weighted.fit(
        x, sample_weight=ones, epochs=2, batch_size=32, shuffle=False, verbose=0
    ).history
    triples = make_model()
    triples.fit(
        tf.data.Dataset.from_tensor_slices((x, x, ones)).batch(32),
        epochs=2,
        shuffle=False,
        verbose=0,
    )
    for a, b, c in zip(_weights(plain), _weights(weighted), _weights(triples), strict=True):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
    # Exactly equal, NaN included: SGD at step size 1 may diverge in the second epoch.
    np.testing.assert_equal(history, weighted_history)

    batch = x[:32]
    half = np.r_[np.ones(16), np.zeros(16)].astype(np.float32)
    masked, alone = make_model(), make_model()
    start = _weights(masked)
    masked_loss = masked.fit(
        batch, sample_weight=half, epochs=1, batch_size=32, shuffle=False, verbose=0
    ).history["loss"]
    alone_loss = alone.fit(batch[:16], epochs=1, batch_size=16, shuffle=False, verbose=0).history[
        "loss"
    ]
    for before, after_masked, after_alone in zip(
        start, _weights(masked), _weights(alone), strict=True
    ):
        np.testing.assert_allclose(
            after_masked - before, 0.5 * (after_alone - before), rtol=1e-4, atol=1e-6
        )
    np.testing.assert_allclose(masked_loss, alone_loss, rtol=1e-5)
    evaluated = masked.evaluate(batch, sample_weight=half, verbose=0, return_dict=True)
    first_half = masked.evaluate(batch[:16], verbose=0, return_dict=True)
    for name in deterministic_metrics or first_half:
        assert evaluated[name] == pytest.approx(first_half[name], rel=1e-5), name
