import numpy as np
import pytest
from model_test_case import run_serialization_test

from tfvae.errors import TfvaeError
from tfvae.models import Decoder


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
