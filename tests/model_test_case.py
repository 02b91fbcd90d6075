"""Helpers shared by the model tests, in the manner of keras-hub's TestCase."""

import json

import keras
import numpy as np


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
