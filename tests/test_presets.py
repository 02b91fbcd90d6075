"""Presets: the shipped ones load safely and measure what they state; every family round-trips."""

import hashlib
import json
import os
import shutil

import h5py
import keras
import numpy as np
import pytest
from test_registry import SPARSE

import tfvae
from tfvae import presets
from tfvae.cli import main
from tfvae.data.datasets import load_dataset
from tfvae.errors import TfvaeError
from tfvae.models import RBM
from tfvae.models import VAE
from tfvae.models import Autoencoder
from tfvae.models import registry
from tfvae.models.base import EncoderDecoderModel
from tfvae.presets import catalog
from tfvae.training.config import TrainConfig
from tfvae.training.runs import load_run

SHIPPED = ("ae_dense_mnist5k", "vae_conv_mnist5k", "vae_dense_mnist5k")
# The shipped presets' test metric must reproduce within this many nats.
NATS_TOLERANCE = 0.5
# ... and a per-feature MSE within this fraction of itself.
MSE_RELATIVE_TOLERANCE = 0.01
# The presets' files together; the wheel may grow by less than 10 MB.
MAX_SHIPPED_BYTES = 6_000_000


def _one_line(error):
    text = str(error.value)
    assert "\n" not in text, text
    return text


def _small_model(family, arch="dense"):
    config = TrainConfig(
        model=family,
        dataset="digits",
        arch=arch,
        latent_dim=3,
        hidden_units=(16,),
        filters=(4,),
        precision="float32",
    )
    return config, registry.build_model(config, (8, 8, 1))


@pytest.fixture
def sparse_family():
    registry.register_family(SPARSE)
    yield SPARSE
    registry.unregister_family(SPARSE.name)


# === The shipped presets ===


def test_the_shipped_presets_are_listed_with_their_test_metric(capsys):
    infos = {info.name: info for info in presets.list_presets()}
    assert tuple(sorted(infos)) == SHIPPED
    assert {name: infos[name].family for name in SHIPPED} == {
        "ae_dense_mnist5k": "ae",
        "vae_conv_mnist5k": "vae",
        "vae_dense_mnist5k": "vae",
    }
    for info in infos.values():
        assert info.data == "mnist5k" and info.weights_dtype == "float16"
        # float16 weights: two bytes a parameter, and HDF5 headers, JSON and history.
        assert 2 * info.parameters < info.size_bytes < 2 * info.parameters + 80_000
    assert infos["vae_dense_mnist5k"].test_metric["name"] == "nll"
    assert infos["ae_dense_mnist5k"].test_metric["name"] == "reconstruction_mse"
    assert sum(info.size_bytes for info in infos.values()) < MAX_SHIPPED_BYTES
    assert main(["presets"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["name", "family", "data", "size"]
    assert [line.split()[0] for line in lines[1:]] == list(SHIPPED)
    assert "nll (K=1000)" in lines[3] and "nats/example" in lines[3]


# The conv VAE's K = 1000 bound takes about a minute on 2 cores: it runs with `-m slow`.
@pytest.mark.parametrize(
    "name",
    [
        pytest.param(name, marks=pytest.mark.slow) if name == "vae_conv_mnist5k" else name
        for name in SHIPPED
    ],
)
def test_a_shipped_preset_loads_safely_and_reproduces_its_test_metric(name):
    directory = os.path.join(catalog.shipped_root(), name)
    with open(os.path.join(directory, "metadata.json")) as f:
        metadata = json.load(f)
    with h5py.File(os.path.join(directory, "model.weights.h5")) as weights:
        dtypes = set()
        weights.visititems(lambda _, item: dtypes.add(getattr(item, "dtype", None)))
    assert np.dtype("float16") in dtypes and np.dtype("float32") not in dtypes
    # Built by Keras itself from config.json with safe_mode=True, as from_preset does.
    with open(os.path.join(directory, "config.json")) as f:
        rebuilt = keras.saving.deserialize_keras_object(json.load(f), safe_mode=True)
    rebuilt.load_weights(os.path.join(directory, "model.weights.h5"))

    stated = metadata["test_metric"]
    model, metrics = presets.evaluate_preset(name, nll_samples=stated.get("samples", 1))
    assert type(model).__name__ == metadata["class_name"]
    assert all(w.dtype == "float32" for w in model.weights if "float" in w.dtype)
    x = load_dataset("mnist5k").x_test[:8]
    np.testing.assert_array_equal(model.predict_on_batch(x), rebuilt.predict_on_batch(x))
    if stated["unit"] == "nats/example":
        assert abs(metrics[stated["name"]] - stated["value"]) < NATS_TOLERANCE
        assert abs(metrics["neg_elbo"] - metadata["metrics"]["neg_elbo"]) < NATS_TOLERANCE
        # A trained model: far better than independent pixels.
        assert metrics["nll"] < metrics["baseline_nll"] - 80
    else:
        assert metrics[stated["name"]] == pytest.approx(stated["value"], rel=MSE_RELATIVE_TOLERANCE)
        assert metrics["reconstruction_mse"] < 0.03
    assert metrics["protocol"] == metadata["metrics"]["protocol"]


def test_the_base_class_returns_whichever_family_a_preset_holds():
    assert type(EncoderDecoderModel.from_preset("ae_dense_mnist5k")) is Autoencoder
    assert type(tfvae.from_preset("vae_dense_mnist5k")) is VAE
    assert type(VAE.from_preset("vae_conv_mnist5k")) is VAE


def test_a_class_refuses_a_preset_of_another_family():
    with pytest.raises(TfvaeError) as error:
        VAE.from_preset("ae_dense_mnist5k")
    assert "holds a Autoencoder (family 'ae'), not a VAE" in _one_line(error)
    with pytest.raises(TfvaeError) as error:
        RBM.from_preset("vae_dense_mnist5k")
    assert "not a RBM" in _one_line(error)


def test_sample_writes_a_grid_from_a_preset_and_refuses_a_family_without_prior(tmp_path, capsys):
    out = tmp_path / "grid.png"
    assert main(["sample", "vae_dense_mnist5k", "--n", "16", "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    samples = presets.write_prior_samples("vae_dense_mnist5k", str(tmp_path / "b.png"), n=16)
    assert samples.shape == (16, 28, 28, 1) and 0 <= samples.min() and samples.max() <= 1
    # Seeded: the same draws as the grid's, decoded again.
    again = presets.write_prior_samples("vae_dense_mnist5k", str(tmp_path / "c.png"), n=16)
    np.testing.assert_array_equal(samples, again)
    capsys.readouterr()
    assert main(["sample", "ae_dense_mnist5k", "--out", str(tmp_path / "ae.png")]) == 2
    message = capsys.readouterr().err.strip()
    assert "\n" not in message and "has no prior to sample from" in message
    assert not (tmp_path / "ae.png").exists()
    assert main(["sample", "vae_dense_mnist5k", "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err


def test_a_preset_stands_for_a_run_directory(tmp_path, capsys):
    with presets.resolve_run_or_preset("vae_conv_mnist5k") as run_dir:
        assert os.path.basename(run_dir) == "vae_conv_mnist5k"
        config, model = load_run(run_dir)
        assert (config.model, config.arch, tuple(config.filters)) == ("vae", "conv", (8, 16))
        kept = run_dir
    assert not os.path.exists(kept)
    base = tmp_path / "served"
    args = ["export", "ae_dense_mnist5k", "--format", "saved_model", "--base", str(base)]
    assert main(args) == 0
    assert "model ae_dense_mnist5k, version 1" in capsys.readouterr().out
    assert (base / "ae_dense_mnist5k" / "1" / "saved_model.pb").is_file()
    # Neither a run nor a preset: export's own message.
    assert main(["export", str(tmp_path / "nowhere"), "--base", str(base)]) == 2
    assert "run directory not found" in capsys.readouterr().err


# === Saved, then loaded ===

FAMILIES = [("vae", "dense"), ("vae", "conv"), ("ae", "dense"), ("dae", "dense")]


@pytest.mark.parametrize("family, arch", FAMILIES)
def test_a_saved_preset_loads_with_identical_outputs(family, arch, tmp_path, digits):
    config, model = _small_model(family, arch)
    x = digits.x_test[:16]
    model.save_to_preset(tmp_path / "p", train_config=config, metrics={"neg_elbo": 1.0})
    loaded = EncoderDecoderModel.from_preset(str(tmp_path / "p"))
    assert type(loaded) is type(model)
    np.testing.assert_array_equal(model.predict_on_batch(x), loaded.predict_on_batch(x))
    np.testing.assert_array_equal(model.score(x)["score"], loaded.score(x)["score"])
    with open(tmp_path / "p" / "metadata.json") as f:
        metadata = json.load(f)
    assert metadata["family"] == family and metadata["training"]["model"] == family
    assert metadata["test_metric"] == {"name": "neg_elbo", "value": 1.0, "unit": "nats/example"}


def test_float16_weights_are_rounded_once_and_kept(tmp_path, digits):
    _, model = _small_model("vae")
    model.save_to_preset(tmp_path / "half", weights_dtype="float16")
    loaded = VAE.from_preset(str(tmp_path / "half"))
    for original, restored in zip(model.weights, loaded.weights, strict=True):
        expected = np.asarray(original)
        if expected.dtype == np.float32:
            expected = expected.astype(np.float16).astype(np.float32)
        np.testing.assert_array_equal(np.asarray(restored), expected)
    loaded.save_to_preset(tmp_path / "again", weights_dtype="float16")
    again = VAE.from_preset(str(tmp_path / "again"))
    x = digits.x_test[:8]
    np.testing.assert_array_equal(loaded.predict_on_batch(x), again.predict_on_batch(x))


def test_the_rbm_round_trips_and_is_refused_where_a_family_is_expected(tmp_path, digits):
    rbm = RBM(n_hidden=8, chains=4, seed=1)
    rbm.build((None, 64))
    rbm.kernel.assign(np.random.default_rng(0).normal(size=(64, 8)).astype("float32"))
    rbm.save_to_preset(tmp_path / "rbm")
    loaded = RBM.from_preset(str(tmp_path / "rbm"))
    x = digits.x_test[:8]
    np.testing.assert_array_equal(rbm.predict_on_batch(x), loaded.predict_on_batch(x))
    assert type(presets.from_preset(str(tmp_path / "rbm"))) is RBM
    with pytest.raises(TfvaeError) as error:
        EncoderDecoderModel.from_preset(str(tmp_path / "rbm"))
    assert "holds a RBM, not a EncoderDecoderModel" in _one_line(error)
    with pytest.raises(TfvaeError) as error:
        presets.write_prior_samples(str(tmp_path / "rbm"), str(tmp_path / "x.png"))
    assert "no prior to sample from" in _one_line(error)


def test_a_family_registered_elsewhere_round_trips(sparse_family, tmp_path, digits):
    config, model = _small_model("sae")
    model.save_to_preset(tmp_path / "sae", train_config=config)
    loaded = Autoencoder.from_preset(str(tmp_path / "sae"))
    assert type(loaded).__name__ == "SparseAutoencoder"
    x = digits.x_test[:8]
    np.testing.assert_array_equal(model.predict_on_batch(x), loaded.predict_on_batch(x))


# === Bad inputs, one line each ===


@pytest.fixture
def saved(tmp_path):
    config, model = _small_model("ae")
    return model.save_to_preset(tmp_path / "ae_preset", train_config=config)


def _rewrite_json(path, change):
    with open(path) as f:
        data = json.load(f)
    change(data)
    with open(path, "w") as f:
        json.dump(data, f)


def _record_hash(preset_dir, name):
    with open(os.path.join(preset_dir, name), "rb") as f:
        data = f.read()
    record = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    _rewrite_json(
        os.path.join(preset_dir, "metadata.json"), lambda m: m["files"].update({name: record})
    )


def test_an_unknown_preset_name_is_refused(tmp_path):
    with pytest.raises(TfvaeError) as error:
        tfvae.from_preset("vae_mnist_huge")
    assert "no preset 'vae_mnist_huge'" in _one_line(error) and "vae_dense_mnist5k" in str(
        error.value
    )
    (tmp_path / "file").write_text("x")
    with pytest.raises(TfvaeError) as error:
        tfvae.from_preset(str(tmp_path / "file"))
    assert "is a file" in _one_line(error)
    with pytest.raises(TfvaeError) as error:
        tfvae.from_preset(3)
    assert "Received: 3" in _one_line(error)


@pytest.mark.parametrize("missing", ["config.json", "model.weights.h5", "metadata.json"])
def test_a_directory_missing_a_file_is_refused(saved, missing):
    os.unlink(os.path.join(saved, missing))
    with pytest.raises(TfvaeError) as error:
        Autoencoder.from_preset(saved)
    assert f"it has no {missing}" in _one_line(error)


def test_an_empty_directory_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(TfvaeError) as error:
        tfvae.from_preset(str(tmp_path / "empty"))
    assert "it has no config.json or model.weights.h5 or metadata.json" in _one_line(error)


@pytest.mark.parametrize(
    "change, expected",
    [
        (lambda m: m.update(family="vae"), "names family 'vae' but its config.json holds a"),
        (lambda m: m.update(family="gan"), "family 'gan', which is not registered"),
        (lambda m: m.update(format="keras-hub"), "does not describe a tfvae preset"),
        (lambda m: m.update(format_version=7), "has format_version 7"),
        (lambda m: m.pop("files"), "does not record the size and sha256"),
        (lambda m: m.update(weights_dtype="int8"), "has weights_dtype 'int8'"),
    ],
)
def test_a_tampered_metadata_is_refused(saved, change, expected):
    _rewrite_json(os.path.join(saved, "metadata.json"), change)
    with pytest.raises(TfvaeError) as error:
        presets.from_preset(saved)
    assert expected in _one_line(error)


def test_a_tampered_training_config_is_refused_where_it_is_read(saved):
    _rewrite_json(
        os.path.join(saved, "metadata.json"), lambda m: m["training"].update(latent_dim=0)
    )
    assert isinstance(presets.from_preset(saved), Autoencoder)  # the model needs no recipe
    with pytest.raises(TfvaeError) as error:
        with presets.resolve_run_or_preset(saved):
            pass
    assert "its metadata.json has a bad training config (latent_dim" in _one_line(error)


def test_a_metadata_that_is_not_json_is_refused(saved):
    with open(os.path.join(saved, "metadata.json"), "w") as f:
        f.write("{not json")
    with pytest.raises(TfvaeError) as error:
        presets.from_preset(saved)
    assert "its metadata.json is not valid JSON" in _one_line(error)


def test_a_changed_file_is_refused_by_its_recorded_hash(saved):
    _rewrite_json(os.path.join(saved, "config.json"), lambda c: c["config"].update(name="renamed"))
    with pytest.raises(TfvaeError) as error:
        presets.from_preset(saved)
    assert "its config.json is not the file metadata.json records" in _one_line(error)


@pytest.mark.parametrize(
    "change, expected",
    [
        # The hash updated too: the weights no longer fit the model described.
        (
            lambda c: c["config"]["encoder"]["config"].update(latent_dim=5),
            "does not fit the model",
        ),
        (lambda c: c.update(registered_name="keras>Sequential"), "not a tfvae model"),
        (lambda c: c.update(registered_name="tfvae>VAE"), "names family 'ae' but"),
        (lambda c: c.pop("build_config"), "has no build_config"),
        (lambda c: c["config"].update(likelihood="poisson"), "does not describe a model"),
    ],
)
def test_a_tampered_config_is_refused(saved, change, expected):
    _rewrite_json(os.path.join(saved, "config.json"), change)
    _record_hash(saved, "config.json")
    with pytest.raises(TfvaeError) as error:
        presets.from_preset(saved)
    assert expected in _one_line(error)


def test_weights_of_another_model_are_refused(saved, tmp_path):
    wider = registry.build_model(
        TrainConfig(model="ae", dataset="digits", latent_dim=3, hidden_units=(17,)), (8, 8, 1)
    )
    wider.save_to_preset(tmp_path / "wider")
    shutil.copy(tmp_path / "wider" / "model.weights.h5", os.path.join(saved, "model.weights.h5"))
    _record_hash(saved, "model.weights.h5")
    with pytest.raises(TfvaeError) as error:
        Autoencoder.from_preset(saved)
    assert "cannot load preset" in _one_line(error)


@pytest.mark.parametrize(
    "handle, expected",
    [
        ("hf://someone/tfvae-vae", "huggingface_hub is not installed (pip install"),
        ("kaggle://someone/tfvae/keras/vae", "kagglehub is not installed"),
        ("s3://bucket/vae", "unknown hub 's3'"),
        ("hf://", "names no repository"),
    ],
)
def test_a_hub_handle_fails_offline_in_one_line(handle, expected, monkeypatch):
    monkeypatch.setattr(presets.hubs.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(TfvaeError) as error:
        tfvae.from_preset(handle)
    assert _one_line(error).startswith(f"cannot download {handle}: ")
    assert expected in str(error.value)


def test_an_unreachable_hub_fails_at_once(monkeypatch):
    monkeypatch.setattr(presets.hubs.importlib.util, "find_spec", lambda name: object())
    monkeypatch.setattr(presets.hubs, "reachable", lambda host: False)
    with pytest.raises(TfvaeError) as error:
        tfvae.from_preset("hf://someone/tfvae-vae")
    assert "huggingface.co cannot be reached" in _one_line(error)


def test_bad_save_arguments_are_refused(tmp_path, saved):
    _, model = _small_model("ae")
    with pytest.raises(TfvaeError) as error:
        model.save_to_preset(saved)
    assert "already exists" in _one_line(error)
    with pytest.raises(TfvaeError) as error:
        model.save_to_preset(tmp_path / "x", weights_dtype="int8")
    assert "weights_dtype" in _one_line(error)
    vae_config, _ = _small_model("vae")
    with pytest.raises(TfvaeError) as error:
        model.save_to_preset(tmp_path / "x", train_config=vae_config)
    assert "train_config does not describe the model: model ('vae'" in _one_line(error)
    with pytest.raises(TfvaeError) as error:
        presets.save_to_preset(keras.Sequential([keras.layers.Dense(2)]), tmp_path / "x")
    assert "save_to_preset takes a tfvae model" in _one_line(error)
    unbuilt = RBM(n_hidden=4)
    with pytest.raises(TfvaeError) as error:
        unbuilt.save_to_preset(tmp_path / "x")
    assert "is not built" in _one_line(error)
    with pytest.raises(TfvaeError) as error:
        model.save_to_preset(tmp_path / "x", assets={"../escape": b""})
    assert "named like a plain file" in _one_line(error)
    assert not (tmp_path / "x").exists()


def test_bad_sample_arguments_are_refused(tmp_path):
    for kwargs, expected in [
        ({"n": 0}, "n must be a positive integer"),
        ({"n": 401}, "n must be at most 400"),
        ({"seed": -1}, "seed must be an integer >= 0"),
    ]:
        with pytest.raises(TfvaeError) as error:
            presets.write_prior_samples("vae_dense_mnist5k", str(tmp_path / "g.png"), **kwargs)
        assert expected in _one_line(error)
    with pytest.raises(TfvaeError) as error:
        presets.write_prior_samples("vae_dense_mnist5k", str(tmp_path / "g.jpg"))
    assert "must name a .png file" in _one_line(error)
    with pytest.raises(TfvaeError) as error:
        presets.write_prior_samples("vae_dense_mnist5k", str(tmp_path / "no" / "g.png"))
    assert "is not a directory" in _one_line(error)
