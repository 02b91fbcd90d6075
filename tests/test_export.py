"""SavedModel and TFLite exports, checked the way TF Serving and LiteRT will use them.

The TF Serving binary (and docker) cannot run on our machines. These tests
stand in for it with the tools that ship with TensorFlow: `saved_model_cli
show --all` and `saved_model_cli run` as subprocesses, and
`tf.saved_model.load` in a fresh Python process with no tfvae import.
`test_export_layout.py` parses `models.config` with TF Serving's own
`ModelServerConfig` proto.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from tfvae import TrainConfig
from tfvae.errors import TfvaeError
from tfvae.export import LiteRTModel
from tfvae.export import convert_model
from tfvae.export import convert_saved_model
from tfvae.export import export_run
from tfvae.export import export_saved_model
from tfvae.export import export_tflite
from tfvae.export import float32_model
from tfvae.export import write_saved_model
from tfvae.export.verification import TOLERANCES
from tfvae.models import build_model
from tfvae.training.runs import load_run
from tfvae.training.trainer import train

SUBPROCESS_ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}


def _train(tmp_path_factory, name, **settings):
    out = tmp_path_factory.mktemp("runs") / name
    train(TrainConfig(epochs=1, out=str(out), **settings), verbose=0)
    return str(out)


def _fitted(data, **settings):
    """A model from the registry `tfvae train` uses, fitted for one epoch on `data`."""
    config = TrainConfig(dataset=data.name, epochs=1, **settings)
    keras.utils.set_random_seed(config.seed)
    model = build_model(config, data.data_shape)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model.fit(data.x_train, epochs=1, batch_size=64, verbose=0)
    return model


def _int8_tolerance(*references):
    """The stated int8 bound on the 99.9th percentile: 0.07 + 3% of max|Keras output|."""
    return TOLERANCES["int8"].bound(dict(enumerate(references)))


def _p999(actual, expected):
    return float(np.quantile(np.abs(actual - expected), 0.999))


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory):
    """A dense VAE on real MNIST digits, large enough for weights to dominate file sizes."""
    return _train(
        tmp_path_factory, "vae-mnist5k-20250101-120000", hidden_units=(256,), latent_dim=8
    )


@pytest.fixture(scope="module")
def vae_export(vae_run, tmp_path_factory):
    base = tmp_path_factory.mktemp("export")
    result = export_run(vae_run, base_dir=str(base))
    return base, result


@pytest.fixture(scope="module")
def vae_model(vae_run):
    return float32_model(load_run(vae_run)[1])


@pytest.fixture(scope="module")
def heldout(mnist5k_binary):
    x = mnist5k_binary.x_test[::16]  # every class (the test split is sorted by class)
    return {"x": x, "eps": np.random.default_rng(1).standard_normal((len(x), 8)).astype("float32")}


@pytest.fixture(scope="module")
def keras_expected(vae_model, heldout):
    """Each signature's outputs computed directly with the float32 Keras model."""
    x, eps = heldout["x"], heldout["eps"]
    mean, scale = (np.asarray(t) for t in vae_model.encode(x))
    terms = vae_model.per_example_losses(x, eps=np.zeros_like(mean))
    reconstruction_loss = np.asarray(terms["reconstruction_loss"])
    kl_loss = np.asarray(terms["kl_loss"])
    return {
        "serving_default": {"reconstruction": vae_model.predict(x, verbose=0)},
        "encode": {"mean": mean, "scale": scale},
        "decode": {"reconstruction": np.asarray(vae_model.decode(mean))},
        "sample": {"sample": np.asarray(vae_model.sample(len(eps), eps=eps))},
        "score": {
            "score": reconstruction_loss + kl_loss,
            "reconstruction_loss": reconstruction_loss,
            "kl_loss": kl_loss,
        },
    }


SIGNATURE_INPUTS = {
    "serving_default": "x",
    "encode": "x",
    "decode": "z",
    "sample": "eps",
    "score": "x",
}

FRESH_LOAD = textwrap.dedent(
    """
    import sys
    import numpy as np
    import tensorflow as tf

    loaded = tf.saved_model.load(sys.argv[1])
    inputs = dict(np.load(sys.argv[2]))
    outputs = {}
    for name, function in loaded.signatures.items():
        (key,) = function.structured_input_signature[1]
        for output, value in function(**{key: tf.constant(inputs[key])}).items():
            outputs[f"{name}/{output}"] = value.numpy()
    outputs["imported_tfvae"] = np.array(any(m.startswith("tfvae") for m in sys.modules))
    np.savez(sys.argv[3], **outputs)
    """
)


KILLED_EXPORT = textwrap.dedent(
    """
    import os, signal, sys
    from tfvae.export import export_run, verification

    def die(path, *args):
        # The SavedModel is complete in its staging directory; the process
        # dies before the rename, as a machine losing power would.
        assert os.path.isfile(os.path.join(path, "saved_model.pb"))
        os.kill(os.getpid(), signal.SIGKILL)

    verification.verify_saved_model = die
    export_run(sys.argv[1], base_dir=sys.argv[2])
    """
)


def _run_together(work, commands):
    """Runs `{name: (command, expected exit code)}` in parallel; returns `{name: stdout}`."""
    processes = {
        name: subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=SUBPROCESS_ENV,
            cwd=work,
        )
        for name, (command, _) in commands.items()
    }
    finished = {}
    for name, process in processes.items():
        stdout, stderr = process.communicate(timeout=300)
        assert process.returncode == commands[name][1], f"{name} failed:\n{stderr[-3000:]}"
        finished[name] = stdout
    return finished


def _saved_model_cli_run(work, path, name):
    key = SIGNATURE_INPUTS[name]
    command = [
        "saved_model_cli", "run", "--dir", path, "--tag_set", "serve",
        "--signature_def", name, "--inputs", f"{key}={work / (key + '.npy')}",
        "--outdir", str(work / name), "--overwrite",
    ]  # fmt: skip
    return command, 0


@pytest.fixture(scope="module")
def runtime_work(vae_export, vae_model, heldout, tmp_path_factory):
    """A folder with every signature's inputs as `.npy` files, and the SavedModel path."""
    _, result = vae_export
    work = tmp_path_factory.mktemp("runtime")
    mean = np.asarray(vae_model.encode(heldout["x"])[0])
    inputs = {"x": heldout["x"], "z": mean, "eps": heldout["eps"]}
    for key, value in inputs.items():
        np.save(work / f"{key}.npy", value)
    np.savez(work / "inputs.npz", **inputs)
    (work / "load.py").write_text(FRESH_LOAD)
    return work, result.saved_model_path


@pytest.fixture(scope="module")
def runtime_results(runtime_work):
    """`saved_model_cli show --all`, `saved_model_cli run` on `score`, and a fresh-process load."""
    work, path = runtime_work
    finished = _run_together(
        work,
        {
            "show": (["saved_model_cli", "show", "--all", "--dir", path], 0),
            "score": _saved_model_cli_run(work, path, "score"),
            "fresh": ([sys.executable, "load.py", path, "inputs.npz", "fresh.npz"], 0),
        },
    )
    return work, finished


def test_saved_model_cli_lists_every_signature_with_named_inputs_and_outputs(runtime_results):
    _, finished = runtime_results
    show = finished["show"]
    expected = {
        "serving_default": ("x", ["reconstruction"]),
        "encode": ("x", ["mean", "scale"]),
        "decode": ("z", ["reconstruction"]),
        "sample": ("eps", ["sample"]),
        "score": ("x", ["kl_loss", "reconstruction_loss", "score"]),
    }
    blocks = {
        block.split("']", 1)[0]: block
        for block in show.split("signature_def['")[1:]
        if "Method name is: tensorflow/serving/predict" in block
    }
    assert set(blocks) == set(expected)
    for name, (input_name, outputs) in expected.items():
        block = blocks[name]
        assert f"inputs['{input_name}'] tensor_info" in block
        assert block.count("inputs['") == 1
        assert sorted(o.split("'")[0] for o in block.split("outputs['")[1:]) == outputs
        assert "output_0" not in block
        assert "shape: (-1," in block or "shape: (-1)" in block  # dynamic batch size
    assert "shape: (-1, 28, 28, 1)" in blocks["serving_default"]
    assert "shape: (-1, 8)" in blocks["decode"] and "shape: (-1)" in blocks["score"]


def _check_saved_model_cli_outputs(work, name, outputs):
    for output, expected in outputs.items():
        actual = np.load(work / name / f"{output}.npy")
        assert actual.shape == expected.shape, (name, output)
        np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-5, err_msg=name)


def test_saved_model_cli_run_score_agrees_with_keras(runtime_results, keras_expected):
    work, _ = runtime_results
    _check_saved_model_cli_outputs(work, "score", keras_expected["score"])


@pytest.mark.slow
def test_saved_model_cli_run_agrees_with_keras_on_every_signature(runtime_work, keras_expected):
    work, path = runtime_work
    _run_together(work, {name: _saved_model_cli_run(work, path, name) for name in SIGNATURE_INPUTS})
    for name, outputs in keras_expected.items():
        _check_saved_model_cli_outputs(work, name, outputs)


def test_fresh_process_load_gives_the_same_numbers(runtime_results, keras_expected):
    work, _ = runtime_results
    fresh = np.load(work / "fresh.npz")
    assert not fresh["imported_tfvae"]  # the SavedModel stands alone
    assert {k.split("/")[0] for k in fresh.files} - {"imported_tfvae"} == set(keras_expected)
    for name, outputs in keras_expected.items():
        for output, expected in outputs.items():
            np.testing.assert_allclose(
                fresh[f"{name}/{output}"], expected, rtol=0, atol=1e-5, err_msg=name
            )


def test_score_is_the_deterministic_negative_elbo(runtime_results, keras_expected):
    work, _ = runtime_results
    score = np.load(work / "score" / "score.npy")
    # A plausible number of nats for binarized 28x28 digits, identical on every call.
    assert np.all(score > 0) and np.all(score < 784 * np.log(2) * 2)
    fresh = np.load(work / "fresh.npz")
    np.testing.assert_array_equal(fresh["score/score"], score)


def test_export_run_writes_a_verified_version_of_every_format(vae_export):
    base, result = vae_export
    name = "vae-mnist5k"  # the run directory's name without its timestamp
    assert (result.model_name, result.version) == (name, 1)
    assert sorted(os.listdir(base)) == ["models.config", name]
    assert sorted(os.listdir(base / name)) == ["1", "tflite"]
    assert os.path.isfile(base / name / "1" / "saved_model.pb")
    assert sorted(os.listdir(base / name / "tflite" / "1")) == [
        "dynamic_range.tflite",
        "float32.tflite",
        "int8.tflite",
        "verification.json",
    ]
    assert f'base_path: "/models/{name}"' in (base / "models.config").read_text()
    formats = {(r.format, r.signature) for r in result.verification}
    assert len(formats) == 5 + 3 * 4
    assert all(r.gated_error <= r.tolerance for r in result.verification)
    assert {r.statistic for r in result.verification if r.format == "int8"} == {"p99.9"}
    assert {r.statistic for r in result.verification if r.format != "int8"} == {"max"}
    record = json.loads((base / name / "tflite" / "1" / "verification.json").read_text())
    assert len(record["rows"]) == 12 and record["left_out"] == {}
    assert record["signatures"] == {
        q: ["encode", "decode", "reconstruct", "score"]
        for q in ("float32", "dynamic_range", "int8")
    }


def test_tflite_models_agree_with_keras_by_signature(vae_export, vae_model, heldout):
    _, result = vae_export
    x = heldout["x"]
    mean, scale = (np.asarray(t) for t in vae_model.encode(x))
    expected = {
        "encode": {"mean": mean, "scale": scale},
        "decode": {"reconstruction": np.asarray(vae_model.decode(mean))},
        "reconstruct": {"reconstruction": vae_model.predict(x, verbose=0)},
        "score": {k: np.asarray(v) for k, v in vae_model.score(x).items()},
    }
    feeds = {"encode": {"x": x}, "decode": {"z": mean}, "reconstruct": {"x": x}, "score": {"x": x}}
    errors, p999 = {}, {}
    for quantization, path in result.tflite_files.items():
        lite = LiteRTModel(path)
        assert set(lite.signatures) == {"encode", "decode", "reconstruct", "score"}
        for name, outputs in expected.items():
            actual = lite(name, **feeds[name])
            assert set(actual) == set(outputs)
            errors[quantization, name] = max(
                float(np.max(np.abs(actual[k] - outputs[k]))) for k in outputs
            )
            p999[quantization, name] = max(_p999(actual[k], outputs[k]) for k in outputs)
    assert max(errors["float32", name] for name in expected if name != "score") <= 1e-5
    # The score sums hundreds of per-pixel terms: float32 agrees to its rounding of the sum.
    assert errors["float32", "score"] <= 1e-6 * np.max(expected["score"]["score"]) + 1e-5
    for name, outputs in expected.items():
        assert p999["int8", name] <= _int8_tolerance(*outputs.values()), name
    # Quantization does change the numbers: these are real int8 models.
    assert errors["int8", "reconstruct"] > 1e-4
    full_integer = LiteRTModel(result.tflite_files["int8"])
    assert full_integer.runner("encode").get_input_details()["x"]["dtype"] == np.int8


def test_int8_is_at_most_a_third_of_float32(vae_export):
    _, result = vae_export
    sizes = {q: os.path.getsize(p) for q, p in result.tflite_files.items()}
    # Measured on this model: int8 29.9% of float32 with encode, decode and reconstruct,
    # 32.4% with score too (each signature keeps its own int32 biases and per-channel
    # quantization parameters; the int8 weights are shared).
    assert sizes["int8"] <= 0.34 * sizes["float32"]
    assert sizes["dynamic_range"] <= 0.34 * sizes["float32"]


def test_second_export_takes_the_next_version_and_keeps_the_first(vae_model, tmp_path):
    first = export_saved_model(vae_model, str(tmp_path), "vae")
    second = export_saved_model(vae_model, str(tmp_path), "vae")
    assert (first.version, second.version) == (1, 2)
    assert first.path == str(tmp_path / "vae" / "1")
    assert sorted(os.listdir(tmp_path / "vae")) == ["1", "2"]
    with pytest.raises(TfvaeError, match="version 2 already exists"):
        export_saved_model(vae_model, str(tmp_path), "vae", version=2)
    stamp = os.stat(tmp_path / "vae" / "2" / "saved_model.pb").st_ino
    replaced = export_saved_model(vae_model, str(tmp_path), "vae", version=2, overwrite=True)
    assert replaced.version == 2
    assert os.stat(tmp_path / "vae" / "2" / "saved_model.pb").st_ino != stamp
    assert sorted(os.listdir(tmp_path / "vae")) == ["1", "2"]


def test_interrupted_export_leaves_no_version(vae_model, heldout, tmp_path, monkeypatch):
    from tfvae.export import verification

    def interrupt(path, *args):
        assert os.path.isfile(os.path.join(path, "saved_model.pb"))
        raise KeyboardInterrupt  # Ctrl-C after the SavedModel is written, before the rename

    monkeypatch.setattr(verification, "verify_saved_model", interrupt)
    with pytest.raises(KeyboardInterrupt):
        export_saved_model(vae_model, str(tmp_path), "vae", verification_data=heldout["x"])
    assert os.listdir(tmp_path / "vae") == []
    assert not os.path.exists(tmp_path / "models.config")


@pytest.mark.slow
def test_killed_export_leaves_no_version_and_the_next_export_is_version_1(
    vae_run, vae_model, tmp_path
):
    (tmp_path / "killed.py").write_text(KILLED_EXPORT)
    base = tmp_path / "base"
    command = [sys.executable, "killed.py", vae_run, str(base)]
    _run_together(tmp_path, {"killed": (command, -signal.SIGKILL)})
    leftovers = os.listdir(base / "vae-mnist5k")
    assert leftovers and all(entry.startswith(".tmp-") for entry in leftovers)
    assert not os.path.exists(base / "models.config")
    result = export_saved_model(vae_model, str(base), "vae-mnist5k")
    assert result.version == 1
    assert "vae-mnist5k" in (base / "models.config").read_text()


def test_sample_signature_converts_to_tflite_with_builtin_ops(vae_export, vae_model, heldout):
    _, result = vae_export
    content = convert_saved_model(result.saved_model_path, ["sample"])
    eps = heldout["eps"]
    actual = LiteRTModel(content)("sample", eps=eps)["sample"]
    np.testing.assert_allclose(
        actual, np.asarray(vae_model.sample(len(eps), eps=eps)), rtol=0, atol=1e-5
    )


def test_in_graph_noise_fails_at_conversion_not_on_the_device(vae_model, tmp_path):
    import tensorflow as tf

    archive = keras.export.ExportArchive()
    archive.add_endpoint(
        "sample",
        lambda n: {"sample": vae_model.sample(8)},  # keras.random draws inside the graph
        [tf.TensorSpec((), tf.int32, name="n")],
    )
    archive.write_out(str(tmp_path / "noisy"), verbose=False)
    with pytest.raises(TfvaeError, match="Flex.*StatelessRandomNormalV2"):
        convert_saved_model(str(tmp_path / "noisy"), ["sample"])


def test_conv_vae_tflite_formats_verify(digits, tmp_path):
    model = _fitted(digits, arch="conv", filters=(8, 16), hidden_units=(32,), latent_dim=4)
    result = export_tflite(
        model, digits.x_train, digits.x_test, base_dir=str(tmp_path), model_name="conv"
    )
    assert result.path == str(tmp_path / "conv" / "tflite" / "1")
    rows = {(r.format, r.signature): r for r in result.verification}
    assert len(rows) == 12
    assert max(r.max_abs_error for (q, _), r in rows.items() if q == "float32") <= 1e-5
    reference = float32_model(model).predict(digits.x_test, verbose=0)
    lite = LiteRTModel(result.files["int8"])
    int8 = lite("reconstruct", x=digits.x_test)["reconstruction"]
    assert int8.shape == digits.x_test.shape  # the whole test split in one batch
    assert _p999(int8, reference) <= _int8_tolerance(reference)
    assert lite("reconstruct", x=digits.x_test[:1])["reconstruction"].shape == (1, 8, 8, 1)


def test_autoencoder_signatures_have_no_sample_and_score_its_error(digits, tmp_path):
    import tensorflow as tf

    model = float32_model(_fitted(digits, model="ae", hidden_units=(32,), latent_dim=4))
    x = digits.x_test
    exported = export_saved_model(
        model, str(tmp_path), "ae", verification_data=x, server_base_path="/srv"
    )
    assert exported.path == str(tmp_path / "ae" / "1")
    assert {r.signature for r in exported.verification} == {
        "serving_default",
        "encode",
        "decode",
        "score",
    }
    assert 'base_path: "/srv/ae"' in open(exported.model_config_path).read()
    loaded = tf.saved_model.load(exported.path)
    assert set(loaded.signatures) == {"serving_default", "encode", "decode", "score"}
    outputs = loaded.signatures["encode"](x=tf.constant(x))
    np.testing.assert_allclose(outputs["z"], model.encode(x), atol=1e-5, rtol=0)
    score = loaded.signatures["score"](x=tf.constant(x))["score"].numpy()
    mse = np.mean(np.square(x - model.predict(x, verbose=0)).reshape(len(x), -1), axis=1)
    np.testing.assert_allclose(score, mse, atol=1e-6, rtol=1e-5)


def test_mixed_precision_model_exports_as_float32_with_the_same_weights(digits):
    from tfvae.models import VAE
    from tfvae.models import Decoder
    from tfvae.models import Encoder

    model = VAE(
        Encoder(4, hidden_units=(16,), probabilistic=True, dtype="mixed_bfloat16"),
        Decoder((8, 8, 1), hidden_units=(16,), dtype="mixed_bfloat16"),
        likelihood="gaussian",
    )
    model.build((None, 8, 8, 1))
    copy = float32_model(model)
    assert copy is not model and float32_model(copy) is copy
    assert copy.encoder.dtype_policy.name == "float32"
    for a, b in zip(copy.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    x = digits.x_test[:32]
    # Same function, bfloat16 rounding apart (8 mantissa bits).
    np.testing.assert_allclose(copy.predict(x, verbose=0), model.predict(x, verbose=0), atol=0.05)
    float32_file = convert_model(model, formats=["float32"])["float32"]
    np.testing.assert_allclose(
        LiteRTModel(float32_file)("reconstruct", x=x)["reconstruction"],
        copy.predict(x, verbose=0),
        atol=1e-5,
        rtol=0,
    )


def test_write_saved_model_refuses_other_models(tmp_path):
    with pytest.raises(TfvaeError, match="Received: Sequential"):
        write_saved_model(keras.Sequential([keras.layers.Dense(1)]), str(tmp_path))


def test_cli_export_prints_the_table_and_refuses_an_existing_version(vae_run, tmp_path, capsys):
    from tfvae.cli import main

    base = str(tmp_path / "serving")
    args = ["export", vae_run, "--format", "saved_model", "--base", base]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "model vae-mnist5k, version 1" in out
    assert "max |err| vs Keras" in out and "latency/example" in out
    assert [line.split()[:2] for line in out.splitlines() if line.startswith("saved_model ")] == [
        ["saved_model", name] for name in ("serving_default", "encode", "decode", "sample", "score")
    ]
    assert "--model_config_file=/models/models.config" in out
    assert main([*args, "--version", "1"]) == 2
    captured = capsys.readouterr()
    assert captured.err.strip().splitlines() == [
        f"tfvae: error: version 1 already exists at {base}/vae-mnist5k/1; pass --overwrite "
        "to replace it, or leave out --version to take the next free number"
    ]
    assert main(["export", vae_run, "--base", base, "--name", "no good"]) == 2
    assert "Received: name='no good'" in capsys.readouterr().err
    runs_dir, run_name = os.path.split(vae_run)
    assert main(["export", vae_run, "--base", runs_dir, "--name", run_name]) == 2
    assert "would be written inside the run directory" in capsys.readouterr().err
    assert main(["export", os.path.join(runs_dir, "missing"), "--base", base]) == 2
    assert "run directory not found" in capsys.readouterr().err
    assert sorted(os.listdir(os.path.join(base, "vae-mnist5k"))) == ["1"]
