import keras
import numpy as np
import pytest
from model_test_case import run_serialization_test

from tfvae.errors import TfvaeError
from tfvae.models import Decoder
from tfvae.models import Encoder
from tfvae.models.registry import network_parameters


@pytest.mark.parametrize(
    "arch,shape",
    [("dense", (8, 8, 1)), ("conv", (8, 8, 1)), ("conv", (28, 28, 1)), ("dense", (30,))],
)
def test_decoder_outputs_data_shape(arch, shape):
    decoder = Decoder(shape, arch=arch, hidden_units=(16,), filters=(4, 8))
    out = decoder(np.zeros((3, 5), np.float32))
    assert tuple(out.shape) == (3, *shape)
    run_serialization_test(decoder)


def test_conv_decoder_refuses_shapes_it_cannot_mirror():
    with pytest.raises(TfvaeError, match=r"divisible by 4. Received: shape=\(9, 9, 1\)"):
        Decoder((9, 9, 1), arch="conv")
    with pytest.raises(TfvaeError, match=r"needs images of shape \(height, width, channels\)"):
        Decoder((64,), arch="conv")


@pytest.mark.parametrize("arch", ["dense", "conv"])
def test_output_shape_matches_the_outputs_and_shows_in_the_summary(arch):
    decoder = Decoder((8, 8, 1), arch=arch, hidden_units=(16,), filters=(4, 8))
    decoder.build((None, 5))
    outputs = decoder(np.zeros((3, 5), np.float32))
    assert decoder.compute_output_shape((3, 5)) == tuple(outputs.shape) == (3, 8, 8, 1)
    lines = []
    decoder.summary(print_fn=lambda line, **kwargs: lines.append(line))
    text = "\n".join(lines)
    assert "?" not in text and "(None, 8, 8, 1)" in text


def test_tanh_decoder_computes_tanh_hidden_layers():
    decoder = Decoder((8, 8, 1), hidden_units=(16, 8), activation="tanh")
    z = np.random.default_rng(0).normal(size=(4, 5)).astype(np.float32)
    out = np.asarray(decoder(z))
    h = z
    # The decoder applies the encoder's widths reversed: dense_0 has 8 units.
    for i in range(2):
        kernel, bias = decoder.get_layer(f"dense_{i}").get_weights()
        h = np.tanh(h @ kernel + bias)
    kernel, bias = decoder.get_layer("output_dense").get_weights()
    np.testing.assert_allclose(out, (h @ kernel + bias).reshape(4, 8, 8, 1), rtol=1e-5, atol=1e-5)
    clone = run_serialization_test(decoder)
    assert clone.get_config()["activation"] == "tanh"


def test_conv_decoder_uses_the_activation_in_every_hidden_layer():
    decoder = Decoder((8, 8, 1), arch="conv", hidden_units=(16,), filters=(4, 8), activation="gelu")
    hidden = [layer for layer in decoder.body[:-1] if hasattr(layer, "activation")]
    assert [layer.name for layer in hidden] == ["dense_0", "project", "deconv_0", "deconv_1"]
    assert all(layer.activation is keras.activations.gelu for layer in hidden)
    assert decoder.body[-1].activation is keras.activations.linear


def test_config_without_activation_loads_as_relu():
    decoder = Decoder((8, 8, 1), hidden_units=(16,))
    decoder.build((None, 5))
    config = decoder.get_config()
    del config["activation"]  # as written before the activation setting
    restored = Decoder.from_config(config)
    assert restored.activation == "relu"
    assert restored.get_layer("dense_0").activation is keras.activations.relu
    with pytest.raises(TfvaeError, match="unknown activation 'swish'"):
        Decoder((8, 8, 1), activation="swish")


@pytest.mark.parametrize(
    "shape,filters",
    [((28, 28, 1), (32, 64)), ((32, 32, 3), (32, 64, 128)), ((64, 64, 3), (32, 64, 128, 128))],
)
def test_automatic_conv_decoder_mirrors_the_encoder_from_a_small_map(shape, filters, tmp_path):
    decoder = Decoder(shape, arch="conv", hidden_units=(16,), filters=None)
    z = np.random.default_rng(1).normal(size=(2, 5)).astype(np.float32)
    out = decoder(z)
    assert tuple(out.shape) == (2, *shape)
    assert decoder.stage_filters == filters
    side = shape[0] // 2 ** len(filters)
    kernel, _ = decoder.get_layer("project").get_weights()
    assert kernel.shape == (16, side * side * filters[-1])
    assert [decoder.get_layer(f"deconv_{i}").filters for i in range(len(filters))] == list(
        reversed(filters)
    )
    path = tmp_path / "decoder.keras"
    decoder.save(path)
    restored = keras.models.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(np.asarray(restored(z)), np.asarray(out))
    assert restored.get_config()["filters"] is None


@pytest.mark.parametrize("shape", [(28, 28, 1), (32, 32, 3), (64, 64, 3)])
def test_parameter_count_from_settings_matches_the_built_networks(shape):
    latent = 6
    encoder = Encoder(latent, arch="conv", hidden_units=(32,), filters=None, probabilistic=True)
    decoder = Decoder(shape, arch="conv", hidden_units=(32,), filters=None)
    encoder.build((None, *shape))
    decoder.build((None, latent))
    counted = network_parameters(shape, latent, "conv", (32,), None, probabilistic=True)
    assert counted == encoder.count_params() + decoder.count_params()


def test_automatic_networks_stay_small_at_64x64x3():
    # The fixed two-stage layout put 8.4 M weights in one dense layer here.
    fixed = network_parameters((64, 64, 3), 16, "conv", (512,), (32, 64), probabilistic=True)
    automatic = network_parameters((64, 64, 3), 16, "conv", (512,), None, probabilistic=True)
    assert fixed > 16_000_000
    assert automatic < 3_000_000


def test_automatic_conv_decoder_refuses_odd_sizes():
    with pytest.raises(TfvaeError, match=r"even height and width.*shape=\(9, 9, 1\)"):
        Decoder((9, 9, 1), arch="conv", filters=None)
