import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tfvae.cli import main

RUN_FILES = {
    "model.keras",
    "config.json",
    "history.json",
    "metrics.json",
    "reconstructions.png",
    "latent_space.png",
    "samples.png",
    "training_curves.png",
    "logs",
}


def test_train_writes_every_file_and_evaluate_reads_it(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--epochs", "2", "--out", str(out), "--quiet"]) == 0
    assert RUN_FILES <= set(os.listdir(out))
    assert os.listdir(out / "logs")  # TensorBoard event files
    history = json.loads((out / "history.json").read_text())
    assert len(history["loss"]) == 2 and "val_kl_loss" in history
    config = json.loads((out / "config.json").read_text())
    assert config["model"] == "vae" and config["dataset"] == "mnist5k" and config["epochs"] == 2
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["loss"] < metrics["baseline_nll"]
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tmp")]
    capsys.readouterr()
    assert main(["evaluate", str(out)]) == 0
    report = capsys.readouterr().out
    assert "negative ELBO" in report and "KL(q(z|x) || p(z))" in report
    # The run's own test metrics and a fresh evaluation agree on the deterministic terms.
    assert f"{metrics['reconstruction_mse']:.5f}" in report


def test_train_conv_autoencoder_on_digits(tmp_path, capsys):
    out = tmp_path / "ae"
    code = main(
        [
            "train",
            "--model",
            "ae",
            "--dataset",
            "digits",
            "--arch",
            "conv",
            "--latent-dim",
            "2",
            "--filters",
            "8",
            "16",
            "--hidden-units",
            "32",
            "--epochs",
            "2",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    files = set(os.listdir(out))
    assert RUN_FILES - {"samples.png"} <= files and "samples.png" not in files
    assert json.loads((out / "config.json").read_text())["likelihood"] == "auto"
    assert "reconstruction loss (mean squared error" in capsys.readouterr().out


def _bad_files(tmp_path):
    np.savez(tmp_path / "nan.npz", x=np.full((30, 8, 8), np.nan))
    np.savez(tmp_path / "wide.npz", x=np.linspace(-1, 2, 30 * 64).reshape(30, 8, 8))
    np.savez(tmp_path / "vectors.npz", x=np.random.default_rng(0).random((30, 10)))
    (tmp_path / "broken.npz").write_bytes(b"not a numpy file at all")


BAD_INPUTS = [
    (["--dataset", "cifar"], "unknown dataset 'cifar'"),
    (["--model", "gan"], "argument --model: invalid choice: 'gan'"),
    (["--arch", "rnn"], "argument --arch: invalid choice: 'rnn'"),
    (["--latent-dim", "0"], "latent_dim must be a positive integer. Received: latent_dim=0"),
    (["--dataset", "{tmp}/nan.npz"], "contains 1920 NaN or Inf values"),
    (
        ["--dataset", "{tmp}/wide.npz", "--no-binarize", "--likelihood", "bernoulli"],
        "bernoulli likelihood needs",
    ),
    (["--dataset", "{tmp}/vectors.npz", "--arch", "conv"], "conv architecture needs images"),
    (["--dataset", "{tmp}/missing.npz"], "data file not found"),
    (["--dataset", "{tmp}/broken.npz"], "cannot read data file"),
    (["--epochs", "zero"], "argument --epochs: invalid int value"),
]


@pytest.mark.parametrize("args,message", BAD_INPUTS)
def test_bad_input_is_one_line_nonzero_and_writes_nothing(tmp_path, capsys, args, message):
    _bad_files(tmp_path)
    out = tmp_path / "run"
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    before = set(os.listdir(tmp_path))
    assert main(["train", *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tfvae: error: "), err
    assert message in lines[0]
    assert set(os.listdir(tmp_path)) == before


def test_existing_output_and_missing_run_dir(tmp_path, capsys):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    assert main(["train", "--out", str(tmp_path / "taken"), "--epochs", "1"]) == 2
    assert "already exists and is not empty" in capsys.readouterr().err
    assert os.listdir(tmp_path / "taken") == ["keep.txt"]
    assert main(["evaluate", str(tmp_path / "nowhere")]) == 2
    assert "run directory not found" in capsys.readouterr().err


def test_corrupt_model_file_gives_a_clear_error(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text('{"dataset": "digits"}')
    (run / "model.keras").write_bytes(b"PK\x03\x04 truncated")
    assert main(["evaluate", str(run)]) == 2
    assert "truncated or corrupt" in capsys.readouterr().err


def test_console_script_prints_no_traceback(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tfvae.cli",
            "train",
            "--latent-dim",
            "-3",
            "--out",
            str(tmp_path / "r"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == "tfvae: error: latent_dim must be a positive integer. Received: latent_dim=-3"
    )
    assert not (tmp_path / "r").exists()


WARNING_SCRIPT = """
import logging, sys, warnings
from tfvae.cli import export, main
from tfvae.errors import TfvaeError

def run(args):
    warnings.warn("Skipping variable loading", UserWarning, stacklevel=1)
    logging.getLogger("tensorflow").warning("a TensorFlow warning")
    logging.getLogger("keras.some.module").warning("a Keras log warning")
    if sys.argv[1] == "fail":
        raise TfvaeError("the run is damaged")
    print("done")

export.run_export = run
sys.exit(main(["export", "somewhere"]))
"""


@pytest.mark.parametrize("outcome", ["fail", "succeed"])
def test_warnings_of_a_failing_command_do_not_add_lines(tmp_path, outcome):
    """Keras warns, then tfvae refuses: one line. A command that succeeds shows the warnings."""
    script = tmp_path / "warn.py"
    script.write_text(WARNING_SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script), outcome], capture_output=True, text=True, timeout=300
    )
    if outcome == "fail":
        assert (done.returncode, done.stderr) == (2, "tfvae: error: the run is damaged\n")
        return
    assert (done.returncode, done.stdout) == (0, "done\n")
    for text in ("UserWarning: Skipping", "tensorflow:a TensorFlow warning", "a Keras log warning"):
        assert done.stderr.count(text) == 1, done.stderr
