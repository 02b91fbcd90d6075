"""The TFLite `score` signature: held where it converts with builtin ops, left out (and said) where not.

Each exported score is run in LiteRT (`ai_edge_litert`) and compared with
the Keras model's own `score` on held-out real data: binarized mnist5k
digits, scikit-learn's sample photos cut into colour patches, the digits
with their labels for the conditional VAE.
"""

import json
import os

import keras
import numpy as np
import pytest
from colour_patches import sample_image_patches

from tfvae import TrainConfig
from tfvae.export import LiteRTModel
from tfvae.export import export_tflite
from tfvae.export import float32_model
from tfvae.export.tflite import convert_signatures
from tfvae.export.tflite import left_out_lines
from tfvae.export.verification import TOLERANCES
from tfvae.models import build_model
from tfvae.training.trainer import train


def _fitted(x, y=None, **settings):
    """A registry-built model fitted for one epoch on `x` (and labels `y`)."""
    config = TrainConfig(epochs=1, **settings)
    keras.utils.set_random_seed(config.seed)
    model = build_model(config, x.shape[1:])
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model.fit(*((x,) if y is None else (x, y)), epochs=1, batch_size=64, verbose=0)
    return float32_model(model)


def _keras_score(model, *inputs):
    return {k: np.asarray(v) for k, v in model.score(*inputs).items()}


def _check_score(path, quantization, expected, **feed):
    actual = LiteRTModel(path)("score", **feed)
    assert set(actual) == set(expected)
    bound = TOLERANCES[quantization].bound(expected)
    errors = [np.abs(actual[k] - expected[k]) for k in expected]
    if quantization == "int8":
        assert max(float(np.quantile(e, 0.999)) for e in errors) <= bound
    else:
        assert max(float(e.max()) for e in errors) <= bound
    return max(float(e.max()) for e in errors)


def test_dense_vae_score_on_mnist_digits_in_every_format(mnist5k_binary, tmp_path):
    data = mnist5k_binary
    model = _fitted(data.x_train, hidden_units=(64,), latent_dim=8)
    x = data.x_test[:300]
    result = export_tflite(model, data.x_train, x, base_dir=str(tmp_path), model_name="vae")
    assert result.left_out == {}
    checked = {(r.format, r.signature) for r in result.verification}
    assert {("float32", "score"), ("dynamic_range", "score"), ("int8", "score")} <= checked
    record = json.loads((tmp_path / "vae" / "tflite" / "1" / "verification.json").read_text())
    assert record["left_out"] == {}
    assert record["signatures"]["int8"] == ["encode", "decode", "reconstruct", "score"]
    expected = _keras_score(model, x)
    # Negative ELBOs of real digits, in nats: tens to hundreds.
    assert 20 < np.median(expected["score"]) < 1000
    errors = {q: _check_score(path, q, expected, x=x) for q, path in result.files.items()}
    assert errors["float32"] <= 1e-5 * np.max(expected["score"])
    assert errors["int8"] > 1e-3  # a real full-integer model: quantization moves the score
    np.testing.assert_allclose(
        expected["score"], expected["reconstruction_loss"] + expected["kl_loss"], rtol=1e-6
    )


# Slow: the default suite checks score in every format on mnist digits (dense VAE).
@pytest.mark.slow
def test_colour_patch_score_is_held_except_in_the_int8_file(tmp_path):
    x_train, x_test = (
        p.astype(np.float32) / 255.0 for p in sample_image_patches(8, stride=8, limit=2000)
    )
    model = _fitted(
        x_train,
        arch="conv",
        filters=(8, 16),
        hidden_units=(32,),
        latent_dim=8,
        likelihood="discretized_logistic",
    )
    x = x_test[:200]
    result = export_tflite(model, x_train, x, base_dir=str(tmp_path), model_name="patches")
    assert list(result.left_out) == ["score"] and list(result.left_out["score"]) == ["int8"]
    assert "8-bit bins" in result.left_out["score"]["int8"]
    assert "score" not in LiteRTModel(result.files["int8"]).signatures
    expected = _keras_score(model, x)
    for quantization in ("float32", "dynamic_range"):
        _check_score(result.files[quantization], quantization, expected, x=x)
    assert left_out_lines(result.left_out) == [
        "TFLite files leave out score (int8): the discretized_logistic likelihood's 8-bit "
        "bins are finer than int8 activations resolve"
    ]


def test_autoencoder_and_conditional_vae_scores_convert(digits, digits_binary, tmp_path):
    ae = _fitted(digits.x_train, model="ae", hidden_units=(32,), latent_dim=4)
    conversion = convert_signatures(ae, ["float32"])
    assert conversion.signatures["float32"] == ("encode", "decode", "reconstruct", "score")
    x = digits.x_test
    _check_score(conversion.files["float32"], "float32", _keras_score(ae, x), x=x)

    data = digits_binary
    cvae = _fitted(data.x_train, data.y_train, model="cvae", hidden_units=(32,), latent_dim=4)
    conversion = convert_signatures(cvae, ["float32", "int8"], data.x_train)
    assert conversion.left_out == {}
    x, y = data.x_test, data.y_test.astype(np.int32)
    expected = {k: np.asarray(v) for k, v in cvae.serving_score(x, y).items()}
    for quantization, content in conversion.files.items():
        path = tmp_path / f"{quantization}.tflite"
        path.write_bytes(content)
        _check_score(str(path), quantization, expected, x=x, y=y)
    # The labels matter: another class gives another score.
    other = LiteRTModel(str(tmp_path / "float32.tflite"))("score", x=x, y=(y + 1) % 10)
    assert np.mean(np.abs(other["score"] - expected["score"])) > 0.1


def test_a_family_whose_score_needs_tensorflow_ops_converts_without_it(digits_binary):
    config = TrainConfig(model="vamp", hidden_units=(32,), latent_dim=4)
    model = build_model(config, digits_binary.data_shape)
    conversion = convert_signatures(model, ["float32", "dynamic_range"])
    for content in conversion.files.values():
        assert set(LiteRTModel(content).signatures) == {"encode", "decode", "reconstruct"}
    assert set(conversion.signatures.values()) == {("encode", "decode", "reconstruct")}
    [line] = left_out_lines(conversion.left_out)
    assert line.startswith(
        "TFLite files leave out score (float32, dynamic_range): its graph needs TensorFlow ops ("
    )


@pytest.mark.slow
def test_a_family_whose_score_needs_tensorflow_ops_exports_without_it(tmp_path, capsys):
    from tfvae.cli import main

    run = str(tmp_path / "vamp-digits")
    config = TrainConfig(model="vamp", dataset="digits", epochs=1, hidden_units=(32,), out=run)
    train(config, verbose=0)
    base = str(tmp_path / "served")
    assert main(["export", run, "--format", "tflite", "--base", base]) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if "leave out" in line]
    assert len(lines) == 1
    assert lines[0].startswith(
        "TFLite files leave out score (float32, dynamic_range, int8): "
        "its graph needs TensorFlow ops ("
    )
    version = os.path.join(base, "vamp-digits", "tflite", "1")
    for quantization in ("float32", "dynamic_range", "int8"):
        lite = LiteRTModel(os.path.join(version, f"{quantization}.tflite"))
        assert set(lite.signatures) == {"encode", "decode", "reconstruct"}
    record = json.loads(open(os.path.join(version, "verification.json")).read())
    assert set(record["left_out"]["score"]) == {"float32", "dynamic_range", "int8"}
    assert "score" not in {row["signature"] for row in record["rows"]}


def test_a_declared_full_integer_exception_keeps_score_from_the_int8_file(digits_binary):
    config = TrainConfig(model="hvae", hidden_units=(32,), latent_dim=4)
    model = build_model(config, digits_binary.data_shape)
    conversion = convert_signatures(model, ["int8"], digits_binary.x_train)
    assert conversion.signatures["int8"] == ("encode", "decode", "reconstruct")
    assert conversion.left_out == {
        "score": {"int8": "HierarchicalVAE declares its score unfit for full-integer arithmetic"}
    }


@pytest.mark.slow
def test_conv_vae_score_on_32_pixel_colour_patches_in_float32_and_dynamic_range(tmp_path):
    x_train, x_test = (p.astype(np.float32) / 255.0 for p in sample_image_patches(32))
    model = _fitted(
        x_train, arch="conv", filters=(16, 32), latent_dim=16, likelihood="discretized_logistic"
    )
    result = export_tflite(model, x_train, x_test, base_dir=str(tmp_path), model_name="p32")
    expected = _keras_score(model, x_test)
    for quantization in ("float32", "dynamic_range"):
        _check_score(result.files[quantization], quantization, expected, x=x_test)


def test_only_score_may_be_left_out(digits_binary):
    from tfvae.errors import TfvaeError

    model = build_model(TrainConfig(hidden_units=(16,), latent_dim=2), digits_binary.data_shape)
    with pytest.raises(TfvaeError, match="Received: leave_out=.'encode'"):
        convert_signatures(model, ["float32"], leave_out={"encode": {"float32": "why"}})
    conversion = convert_signatures(model, ["float32"], leave_out={"score": {"float32": "why"}})
    assert conversion.signatures == {"float32": ("encode", "decode", "reconstruct")}
    assert conversion.left_out == {"score": {"float32": "why"}}


@pytest.mark.slow
def test_an_int8_score_out_of_tolerance_is_left_out_of_that_file_only(tmp_path, capsys):
    """The default mnist5k VAE (2 epochs): its int8 score sums 784 rounded terms."""
    from tfvae.cli import main

    run = str(tmp_path / "vae-default")
    train(TrainConfig(epochs=2, out=run), verbose=0)
    base = str(tmp_path / "served")
    assert main(["export", run, "--format", "tflite", "--base", base]) == 0
    [line] = [line for line in capsys.readouterr().out.splitlines() if "leave out" in line]
    assert line.startswith(
        "TFLite files leave out score (int8): its int8 form disagrees with Keras on held-out "
        "data: p99.9 |error| "
    )
    version = os.path.join(base, "vae-default", "tflite", "1")
    held = {
        q: set(LiteRTModel(os.path.join(version, f"{q}.tflite")).signatures)
        for q in ("float32", "dynamic_range", "int8")
    }
    assert held["int8"] == {"encode", "decode", "reconstruct"}
    assert held["float32"] == held["dynamic_range"] == held["int8"] | {"score"}
    record = json.loads(open(os.path.join(version, "verification.json")).read())
    assert all(row["signature"] != "score" for row in record["rows"] if row["format"] == "int8")
    assert {row["format"] for row in record["rows"] if row["signature"] == "score"} == {
        "float32",
        "dynamic_range",
    }
