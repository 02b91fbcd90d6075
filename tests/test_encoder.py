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
