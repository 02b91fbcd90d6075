import json
import os

import numpy as np
import pytest

from tfvae.apps.pca_comparison import compare_with_pca
from tfvae.cli import main
from tfvae.errors import TfvaeError
from tfvae.evaluation.baselines import pca_reconstruction_mse
from tfvae.training.config import TrainConfig
from tfvae.training.recipe import build_compiled_model
from tfvae.training.recipe import count_steps_per_epoch


def test_pca_mse_matches_a_truncated_svd(digits):
    x_train = digits.x_train.reshape(len(digits.x_train), -1).astype(np.float64)
    x_test = digits.x_test.reshape(len(digits.x_test), -1).astype(np.float64)
    mean = x_train.mean(axis=0)
    _, _, components = np.linalg.svd(x_train - mean, full_matrices=False)
    basis = components[:5]
    reconstruction = (x_test - mean) @ basis.T @ basis + mean
    expected = np.mean((reconstruction - x_test) ** 2)
    assert pca_reconstruction_mse(digits.x_train, digits.x_test, 5) == pytest.approx(
        expected, rel=1e-9
    )
    with pytest.raises(TfvaeError, match="n_components must be in"):
        pca_reconstruction_mse(digits.x_train, digits.x_test, 65)


def test_linear_autoencoder_trained_to_convergence_matches_pca(digits):
    """PCA is the optimal linear autoencoder: a converged linear AE must equal it."""
    config = TrainConfig(
        model="ae",
        dataset="digits",
        latent_dim=8,
        hidden_units=(),
        precision="float32",
        learning_rate=1e-2,
        weight_decay=0.0,
        batch_size=128,
        epochs=500,
    )
    model = build_compiled_model(config, digits.data_shape, count_steps_per_epoch(config, digits))
    model.fit(digits.pipeline("train", 128), epochs=config.epochs, verbose=0, shuffle=False)
    ae_mse = float(np.mean((model.predict(digits.x_test, verbose=0) - digits.x_test) ** 2))
    pca_mse = pca_reconstruction_mse(digits.x_train, digits.x_test, 8)
    # Measured: 0.02502 against PCA's 0.02498 (+0.2%).
    assert ae_mse == pytest.approx(pca_mse, rel=0.01)


def test_nonlinear_ae_and_vae_beat_pca_at_latent_16():
    rows, _ = compare_with_pca("mnist5k", [16], epochs=10, progress=None)
    (row,) = rows
    # Measured at 10 epochs: PCA 0.0282, AE about 0.022, VAE about 0.021.
    assert row.pca_mse == pytest.approx(0.0282, abs=5e-4)
    assert row.ae_mse < 0.9 * row.pca_mse
    assert row.vae_mse < 0.9 * row.pca_mse


def test_compare_pca_command_writes_table_and_figure(tmp_path, capsys):
    out = tmp_path / "cmp"
    assert (
        main(
            [
                "compare-pca",
                "--dataset",
                "digits",
                "--latent-dims",
                "2",
                "4",
                "--epochs",
                "1",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert sorted(os.listdir(out)) == ["mse_vs_latent.png", "results.json"]
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert [r["latent_dim"] for r in rows] == [2, 4]
    assert rows[1]["pca_mse"] < rows[0]["pca_mse"]
    assert "AE/PCA" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args,message",
    [
        (["--latent-dims", "0"], "latent sizes must be positive integers"),
        (["--latent-dims", "100", "--dataset", "digits"], "exceed the data's dimension (64)"),
        (["--dataset", "nope"], "unknown dataset 'nope'"),
    ],
)
def test_compare_pca_bad_input(tmp_path, capsys, args, message):
    assert main(["compare-pca", *args, "--out", str(tmp_path / "x")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
