import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfvae.training.fused_adam import FusedAdam


def _train(optimizer, steps=20, seed=0):
    """Applies the same random gradients to the same start weights; returns the weights."""
    rng = np.random.RandomState(seed)
    start = [rng.randn(50, 30).astype("float32"), rng.randn(30).astype("float32")]
    grads = [
        [tf.constant(rng.randn(*w.shape).astype("float32")) for w in start] for _ in range(steps)
    ]
    variables = [keras.Variable(w) for w in start]

    @tf.function
    def step(g):
        optimizer.apply(g, variables)

    for g in grads:
        step(g)
    return start, [v.numpy() for v in variables]


@pytest.mark.parametrize("kwargs", [{}, {"weight_decay": 0.05}, {"beta_1": 0.5, "epsilon": 1e-3}])
def test_matches_keras_adam(kwargs):
    start, expected = _train(keras.optimizers.Adam(1e-2, **kwargs))
    _, fused = _train(FusedAdam(1e-2, **kwargs))
    for s, e, f in zip(start, expected, fused, strict=True):
        # The weights move by 0.09-0.16; the two differ only by float32 rounding
        # (measured 1.7e-6).
        assert np.max(np.abs(e - s)) > 0.05
        np.testing.assert_allclose(f, e, atol=1e-5)


def test_amsgrad_falls_back_to_keras():
    _, expected = _train(keras.optimizers.Adam(1e-2, amsgrad=True))
    _, fused = _train(FusedAdam(1e-2, amsgrad=True))
    for e, f in zip(expected, fused, strict=True):
        np.testing.assert_array_equal(f, e)


def test_schedule_and_config_round_trip():
    schedule = keras.optimizers.schedules.CosineDecay(3e-3, decay_steps=100)
    optimizer = FusedAdam(schedule, weight_decay=0.05, beta_2=0.99)
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert isinstance(restored, FusedAdam)
    assert restored.weight_decay == 0.05 and restored.beta_2 == 0.99
    start, a = _train(optimizer)
    _, b = _train(restored)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


def test_saved_run_model_loads_in_a_fresh_process(tmp_path, digits_binary):
    """A compiled model names FusedAdam; loading it must not need the training modules."""
    from tfvae.io.model_files import save_model_file
    from tfvae.training.config import TrainConfig
    from tfvae.training.recipe import build_compiled_model

    config = TrainConfig(dataset="digits", epochs=1, lr_schedule="constant")
    model = build_compiled_model(config, digits_binary.data_shape)
    model.fit(digits_binary.x_train[:256], epochs=1, batch_size=128, verbose=0)
    path = str(tmp_path / "model.keras")
    save_model_file(model, path)
    script = (
        "from tfvae.io.model_files import load_model_file; "
        f"m = load_model_file({path!r}); print(type(m.optimizer).__name__, int(m.optimizer.iterations))"
    )
    output = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    assert output.split() == ["FusedAdam", "2"]
