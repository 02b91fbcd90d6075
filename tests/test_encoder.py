import json
import zipfile

import keras
import numpy as np
import pytest
from model_test_case import run_serialization_test

from tfvae.errors import TfvaeError
from tfvae.models import Encoder


@pytest.mark.parametrize("arch", ["dense", "conv"])
def test_probabilistic_encoder_shapes_and_positive_scale(arch, digits):
    encoder = Encoder(3, arch=arch, hidden_units=(32,), filters=(8, 16), probabilistic=True)
    mu, sigma = encoder(digits.x_test[:5])
    assert mu.shape == (5, 3) and sigma.shape == (5, 3)
    assert np.all(sigma.numpy() > 0)
    run_serialization_test(encoder)


@pytest.mark.parametrize("arch", ["dense", "conv"])
def test_scale_is_finite_and_positive_for_extreme_inputs(arch, digits):
    encoder = Encoder(4, arch=arch, hidden_units=(32,), filters=(8, 16), probabilistic=True)
    for factor in (1e6, -1e6, 1e20):
        mu, sigma = encoder(digits.x_test[:4] * factor)
        sigma = sigma.numpy()
        assert np.all(np.isfinite(sigma)) and np.all(sigma > 0), factor
        assert np.all(sigma <= np.exp(8.0) + 1e-3)


def test_deterministic_encoder_returns_codes(digits):
    codes = Encoder(2, hidden_units=(16,))(digits.x_test[:7])
    assert codes.shape == (7, 2)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"latent_dim": 0}, "latent_dim must be a positive integer. Received: latent_dim=0"),
        ({"latent_dim": 2, "arch": "rnn"}, "unknown architecture 'rnn'"),
        ({"latent_dim": 2, "hidden_units": (0,)}, "hidden_units must be a positive integer"),
        (
            {"latent_dim": 2, "activation": "sigmoid"},
            r"unknown activation 'sigmoid'; expected one of \['relu', 'tanh', 'elu', 'gelu'\]",
        ),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(TfvaeError, match=match):
        Encoder(**kwargs)


@pytest.mark.parametrize("arch", ["dense", "conv"])
@pytest.mark.parametrize("probabilistic", [True, False])
def test_output_shape_matches_the_outputs_and_shows_in_the_summary(arch, probabilistic, digits):
    encoder = Encoder(3, arch=arch, hidden_units=(16,), filters=(4, 8), probabilistic=probabilistic)
    encoder.build((None, 8, 8, 1))
    outputs = encoder(digits.x_test[:5])
    shapes = encoder.compute_output_shape((5, 8, 8, 1))
    assert shapes == keras.tree.map_structure(lambda t: tuple(t.shape), outputs)
    symbolic = encoder(keras.Input((8, 8, 1)))
    assert keras.tree.map_structure(lambda t: t.shape, symbolic) == encoder.compute_output_shape(
        (None, 8, 8, 1)
    )
    lines = []
    encoder.summary(print_fn=lambda line, **kwargs: lines.append(line))
    assert "?" not in "\n".join(lines)


def test_tanh_encoder_computes_tanh_hidden_layers(digits):
    encoder = Encoder(3, hidden_units=(16, 8), activation="tanh")
    x = digits.x_test[:6]
    codes = np.asarray(encoder(x))
    h = x.reshape(len(x), -1)
    for i in range(2):
        kernel, bias = encoder.get_layer(f"dense_{i}").get_weights()
        h = np.tanh(h @ kernel + bias)
    kernel, bias = encoder.get_layer("head").get_weights()
    np.testing.assert_allclose(codes, h @ kernel + bias, rtol=1e-5, atol=1e-5)
    clone = run_serialization_test(encoder)
    assert clone.get_config()["activation"] == "tanh"


def test_conv_encoder_uses_the_activation_in_every_hidden_layer():
    encoder = Encoder(3, arch="conv", hidden_units=(16,), filters=(4, 8), activation="elu")
    hidden = [layer for layer in encoder.body if hasattr(layer, "activation")]
    assert [layer.name for layer in hidden] == ["conv_0", "conv_1", "dense_0"]
    assert all(layer.activation is keras.activations.elu for layer in hidden)
    assert encoder.head.activation is keras.activations.linear


def test_keras_file_written_before_the_activation_setting_loads_as_relu(digits, tmp_path):
    encoder = Encoder(3, hidden_units=(16,), probabilistic=True)
    x = digits.x_test[:5]
    expected = encoder(x)
    path = tmp_path / "encoder.keras"
    encoder.save(path)
    old = tmp_path / "old.keras"
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(old, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename == "config.json":
                config = json.loads(data)
                del config["config"]["activation"]
                data = json.dumps(config).encode()
            target.writestr(item, data)
    restored = keras.models.load_model(old, safe_mode=True)
    assert restored.activation == "relu"
    for got, want in zip(restored(x), expected, strict=True):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
