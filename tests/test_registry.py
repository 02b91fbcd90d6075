"""The model registry: a new family, defined in this file only, goes through every command.

`SparseAutoencoder` is registered here and nowhere else. Without any other
file changing, it appears in `tfvae train --help`, trains, evaluates, runs
a tuner trial and exports with its signatures verified, because every
command reads the registration.
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfvae.cli import main
from tfvae.errors import TfvaeError
from tfvae.models import Autoencoder
from tfvae.models import registry
from tfvae.settings import Setting
from tfvae.training.config import TrainConfig

SMALL = ["--dataset", "digits", "--hidden-units", "32", "--quiet"]


@keras.saving.register_keras_serializable(package="tfvae_test")
class SparseAutoencoder(Autoencoder):
    """An autoencoder whose loss adds `sparsity * mean |z|` per example."""

    def __init__(self, encoder, decoder, sparsity=0.01, **kwargs):
        super().__init__(encoder, decoder, **kwargs)
        self.sparsity = float(sparsity)

    def per_example_losses(self, x, target=None, training=False):
        target = x if target is None else target
        z = self.encoder(x, training=training)
        error = self.likelihood.reconstruction_error(target, self.decoder(z, training=training))
        penalty = self.sparsity * tf.reduce_mean(tf.abs(tf.cast(z, tf.float32)), axis=-1)
        return {"reconstruction_loss": error + penalty}

    def get_config(self):
        return {**super().get_config(), "sparsity": self.sparsity}


def _build(config, data_shape, steps_per_epoch):
    encoder, decoder = registry.build_networks(config, data_shape)
    return SparseAutoencoder(
        encoder, decoder, sparsity=config.sparsity, likelihood=config.resolved_likelihood
    )


SPARSE = registry.ModelFamily(
    name="sae",
    model_class=SparseAutoencoder,
    description="sparse autoencoder (an L1 penalty on the code)",
    build=_build,
    settings=(Setting("sparsity", 0.01, "Weight of the L1 penalty on the code.", minimum=0),),
)


@pytest.fixture
def sparse_family():
    registry.register_family(SPARSE)
    yield SPARSE
    registry.unregister_family(SPARSE.name)


def test_the_family_is_in_train_help_with_its_setting(sparse_family, capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    # Every registered family, in the order of registration: `sae` last.
    names = ",".join(family.name for family in registry.families())
    assert names.endswith(",sae") and f"--model {{{names}}}" in text
    assert "--model sae (sparse autoencoder (an L1 penalty on the code))" in text
    assert "--sparsity SPARSITY" in text and "Weight of the L1 penalty on the code." in text


def test_the_family_trains_evaluates_tunes_and_exports(sparse_family, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--model", "sae", "--sparsity", "0.5", "--epochs", "3", *SMALL, "--latent-dim", "4",
                 "--out", str(run)]) == 0  # fmt: skip
    config = json.loads((run / "config.json").read_text())
    assert config["model"] == "sae" and config["sparsity"] == 0.5 and "beta" not in config
    history = json.loads((run / "history.json").read_text())
    assert history["loss"][-1] < history["loss"][0]
    assert main(["evaluate", str(run)]) == 0
    report = capsys.readouterr().out
    assert "model: sae" in report and "reconstruction loss (mean squared error" in report

    # The setting reached the model: the penalty is part of the loss it reports.
    _, model = __import__("tfvae").load_run(str(run))
    assert isinstance(model, SparseAutoencoder) and model.sparsity == 0.5
    x = np.asarray(__import__("tfvae").load_dataset("digits").x_test[:64])
    z = np.asarray(model.encode(x))
    plain = np.asarray(Autoencoder.per_example_losses(model, x)["reconstruction_loss"])
    penalized = np.asarray(model.score(x)["score"])
    # bfloat16 codes on CPUs with native bf16: three significant digits.
    np.testing.assert_allclose(penalized - plain, 0.5 * np.abs(z).mean(axis=-1), rtol=2e-2)

    search = tmp_path / "search"
    assert main(["tune", "--model", "sae", "--epochs", "1", "--latent-dims", "3",
                 "--max-trials", "1", *SMALL, "--dir", str(search)]) == 0  # fmt: skip
    best = json.loads((search / "best" / "config.json").read_text())
    assert best["model"] == "sae" and best["latent_dim"] == 3 and best["sparsity"] == 0.01

    exported = __import__("tfvae").export(str(run), base_dir=str(tmp_path / "exports"))
    checked = {(row.format, row.signature) for row in exported.verification}
    for signature in ("serving_default", "encode", "decode", "score"):
        assert ("saved_model", signature) in checked
    for quantization in ("float32", "dynamic_range", "int8"):
        for signature in ("encode", "decode", "reconstruct"):
            assert (quantization, signature) in checked
    # Every exported form agreed with Keras within its tolerance (else export_run raises).
    assert all(row.gated_error <= row.tolerance for row in exported.verification)
    assert os.path.isfile(os.path.join(exported.saved_model_path, "saved_model.pb"))


def test_settings_of_another_family_are_refused_and_defaults_filled(sparse_family):
    assert TrainConfig(model="sae").sparsity == 0.01
    assert TrainConfig(model="sae", sparsity=0.2).options == {"sparsity": 0.2}
    with pytest.raises(TfvaeError, match="--sparsity applies to --model sae only"):
        TrainConfig(model="vae", sparsity=0.2)
    with pytest.raises(
        TfvaeError, match="--beta applies to --model vae, cvae, hvae, iaf or vamp only"
    ):
        TrainConfig(model="sae", beta=0.5)
    with pytest.raises(TfvaeError, match="sparsity must be a finite number >= 0"):
        TrainConfig(model="sae", sparsity=-1.0)


def test_unregistered_names_and_models_are_refused():
    with pytest.raises(TfvaeError, match="unknown model 'sae'"):
        TrainConfig(model="sae")
    with pytest.raises(TfvaeError, match="Received: Sequential"):
        registry.family_of(keras.Sequential([keras.layers.Dense(1)]))
    with pytest.raises(TfvaeError, match="unknown capabilities"):
        registry.ModelFamily("x", Autoencoder, "x", _build, capabilities=("flight",))


def test_every_family_declares_what_its_model_reports():
    for family in registry.families():
        model = registry.build_model(
            TrainConfig(model=family.name, hidden_units=(8,), latent_dim=2), (8, 8, 1)
        )
        assert registry.family_of(model) is family
        assert tuple(m.name for m in model.metrics) == family.metrics
        x = np.zeros((2, 8, 8, 1), np.float32)
        scores = model.score(registry.with_labels(model, x, np.zeros(2, np.int32)))
        assert tuple(scores)[0] == "score"


def test_import_tfvae_is_enough_to_load_a_saved_model(tmp_path):
    from tfvae.models import build_model

    path = str(tmp_path / "model.keras")
    build_model(TrainConfig(dataset="digits", hidden_units=(8,)), (8, 8, 1)).save(path)
    code = (
        "import tfvae\nimport keras\n"
        f"model = keras.models.load_model({path!r}, safe_mode=True)\n"
        "print(type(model).__name__, model.latent_dim)\n"
        "import pkgutil, sys, tfvae.models\n"
        "names = [m.name for m in pkgutil.iter_modules(tfvae.models.__path__)]\n"
        "assert all(f'tfvae.models.{n}' in sys.modules for n in names), names\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert result.returncode == 0, result.stderr
    # Every module of tfvae.models was imported: a family in a new file registers itself.
    assert result.stdout.strip() == "VAE 16"
    # `import tfvae` holds back TensorFlow's native start-up log.
    assert "absl::InitializeLog" not in result.stderr
