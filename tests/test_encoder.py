import json
import zipfile

import keras
import numpy as np
import pytest
from model_test_case import run_serialization_test

from tfvae.errors import TfvaeError
from tfvae.models import Encoder
from tfvae.models.encoder import conv_filters_for


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


@pytest.mark.parametrize(
    "shape,filters",
    [
        ((28, 28, 1), (32, 64)),
        ((8, 8, 1), (32, 64)),
        ((32, 32, 3), (32, 64, 128)),
        ((64, 64, 3), (32, 64, 128, 128)),
        ((128, 128, 3), (32, 64, 128, 128, 128)),
        ((28, 56, 1), (32, 64)),
        ((6, 6, 3), (32,)),
        ((27, 28, 3), ()),
    ],
)
def test_automatic_filters_follow_the_image_size(shape, filters):
    assert conv_filters_for(shape) == filters


@pytest.mark.parametrize("shape,bottom", [((32, 32, 3), (4, 4, 128)), ((64, 64, 3), (4, 4, 128))])
def test_automatic_conv_encoder_ends_in_a_small_map(shape, bottom, tmp_path):
    encoder = Encoder(5, arch="conv", hidden_units=(16,), filters=None, probabilistic=True)
    x = np.random.default_rng(0).uniform(size=(3, *shape)).astype(np.float32)
    mu, sigma = encoder(x)
    assert mu.shape == (3, 5) and np.all(sigma.numpy() > 0)
    assert encoder.stage_filters == conv_filters_for(shape)
    flatten = encoder.get_layer("flatten")
    assert tuple(flatten.compute_output_shape((None, *bottom))) == (None, int(np.prod(bottom)))
    # The dense layer after the convolutions reads the small map, not the image.
    kernel, _ = encoder.get_layer("dense_0").get_weights()
    assert kernel.shape == (int(np.prod(bottom)), 16)
    assert encoder.get_config()["filters"] is None
    path = tmp_path / "encoder.keras"
    encoder.save(path)
    restored = keras.models.load_model(path, safe_mode=True)
    assert restored.stage_filters == encoder.stage_filters
    for got, want in zip(restored(x), encoder(x), strict=True):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def test_automatic_encoder_at_28x28_is_the_default_layout(mnist5k_binary):
    automatic = Encoder(4, arch="conv", filters=None, probabilistic=True, name="encoder")
    explicit = Encoder(4, arch="conv", filters=(32, 64), probabilistic=True, name="encoder")
    x = mnist5k_binary.x_test[:2]
    automatic(x)
    explicit(x)
    assert [w.shape for w in automatic.weights] == [w.shape for w in explicit.weights]
    assert [w.path for w in automatic.weights] == [w.path for w in explicit.weights]


def test_automatic_encoder_refuses_odd_images_in_one_line():
    encoder = Encoder(2, arch="conv", filters=None)
    with pytest.raises(TfvaeError, match=r"even height and width.*shape=\(27, 28, 3\)"):
        encoder.build((None, 27, 28, 3))
