"""The tutorial notebooks in `notebooks/`: executed top to bottom, and committed without outputs.

Each notebook runs in a fresh `python3` kernel in quick mode
(`TFVAE_NOTEBOOK_QUICK=1`: one or two epochs, a cheap likelihood estimate, a
two-trial search), with its working directory and `TMPDIR` in the test's
`tmp_path`, so nothing is written into the repository. The assertions read the
numbers the notebooks print.
"""

import pathlib
import re

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS_DIR = pathlib.Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = (
    "01_autoencoder.ipynb",
    "02_vae.ipynb",
    "03_anomaly_detection.ipynb",
    "04_tuning_and_export.ipynb",
)
QUICK_LINE = 'QUICK = os.environ.get("TFVAE_NOTEBOOK_QUICK") == "1"'
# Figures each notebook shows in quick mode (counted as image/png outputs).
FIGURES = {
    "01_autoencoder.ipynb": 6,
    "02_vae.ipynb": 7,
    "03_anomaly_detection.ipynb": 5,
    "04_tuning_and_export.ipynb": 2,
}


def _execute(name, tmp_path, monkeypatch):
    """Runs the notebook in quick mode in `tmp_path`; returns `(stdout text, figure count)`."""
    # The kernel is a child process: it inherits these.
    monkeypatch.setenv("TFVAE_NOTEBOOK_QUICK", "1")
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.delenv("TFVAE_ECG5000_CSV", raising=False)
    notebook = nbformat.read(NOTEBOOKS_DIR / name, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()
    stdout, figures = [], 0
    for cell in notebook.cells:
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            assert output.output_type != "error", f"{output.ename}: {output.evalue}"
            if output.output_type == "stream" and output.name == "stdout":
                stdout.append(output.text)
            if output.output_type in ("display_data", "execute_result"):
                figures += "image/png" in output.data
    return "".join(stdout), figures


def _number(pattern, text):
    match = re.search(pattern, text)
    assert match, f"no line matching {pattern!r} in the notebook's output"
    return float(match.group(1))


# Slow: the autoencoder, PCA and denoising paths run in the default suite (test_autoencoder, test_comparison, test_denoising_autoencoder).
@pytest.mark.slow
def test_01_autoencoder_runs_and_beats_the_mean_image(tmp_path, monkeypatch):
    out, figures = _execute("01_autoencoder.ipynb", tmp_path, monkeypatch)
    assert figures >= FIGURES["01_autoencoder.ipynb"]
    # PCA is deterministic: measured 0.0281471 with 16 components.
    assert _number(r"PCA\s+(\d\.\d+)", out) == pytest.approx(0.02815, abs=1e-5)
    # One epoch: measured 0.0439; predicting the mean training image scores 0.0692.
    assert _number(r"autoencoder\s+(\d\.\d+)\s+\(", out) < 0.06
    assert re.search(r"PCA components needed to reach the autoencoder's test MSE: \d+", out)
    assert "DenoisingAutoencoder -> " in out
    # The noisy inputs themselves: measured 0.02125 (noise 0.2, clipped to [0, 1]).
    assert _number(r"noisy input itself\s+(\d\.\d+)", out) == pytest.approx(0.0212, abs=0.002)


def test_02_vae_runs_and_its_likelihood_bound_beats_the_baseline(tmp_path, monkeypatch):
    out, figures = _execute("02_vae.ipynb", tmp_path, monkeypatch)
    assert figures >= FIGURES["02_vae.ipynb"]
    assert "sampled directly: dL/dmu = None  dL/dsigma = None" in out
    elbo = _number(r"test negative ELBO (\d+\.\d+) nats, -log p\(x\)", out)
    nll = _number(r"-log p\(x\) <= (\d+\.\d+) nats \(K = 10\)", out)
    baseline = _number(r"independent-pixel baseline NLL: (\d+\.\d+)", out)
    # One epoch: measured ELBO 193.8, K = 10 estimate 191.1, baseline 211.2 nats.
    assert nll < elbo < baseline - 5
    assert re.search(r"vae-run\n\[.*'manifold.png'.*'traversal.png'", out)


# Slow: the anomaly scores and thresholds are tested in the default suite (test_anomaly).
@pytest.mark.slow
def test_03_anomaly_detection_runs_and_ranks_anomalies_above_normals(tmp_path, monkeypatch):
    out, figures = _execute("03_anomaly_detection.ipynb", tmp_path, monkeypatch)
    assert figures >= FIGURES["03_anomaly_detection.ipynb"]
    assert "test: (1000, 28, 28, 1) anomalies: 900" in out
    # Two epochs on 320 fives: measured ROC-AUC 0.793 (0.5 is chance).
    assert _number(r"ROC-AUC (\d\.\d+)\s+PR-AUC", out) > 0.7
    assert re.search(r"95th percentile \(default\)\s+\d\.\d+\s+\d\.\d+", out)
    assert "ecg.csv not found: skipping ECG5000" in out


# Slow: searches and exports are checked against Keras in the default suite (test_tuning, test_export).
@pytest.mark.slow
def test_04_tuning_and_export_runs_and_exports_agree_with_keras(tmp_path, monkeypatch):
    out, figures = _execute("04_tuning_and_export.ipynb", tmp_path, monkeypatch)
    assert figures >= FIGURES["04_tuning_and_export.ipynb"]
    assert re.search(r"best latent size: (2|8) ->", out)
    assert 'name: "vae"' in out  # models.config
    # Measured: SavedModel 0.0 and float32 TFLite 3.3e-07 from Keras.
    assert _number(r"SavedModel max error vs Keras: (\S+)", out) <= 1e-5
    assert _number(r"float32 TFLite max error vs Keras: (\S+)", out) <= 1e-5
    # Measured int8 reconstruction error 6.2e-03 on digits; the export bound is 0.095.
    assert _number(r"int8\s+\S+ KiB\s+reconstruction max \|error\| (\S+)", out) < 0.095
    assert not list(tmp_path.glob("saved_models"))


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_notebook_has_no_outputs(name):
    notebook = nbformat.read(NOTEBOOKS_DIR / name, as_version=4)
    nbformat.validate(notebook)
    assert notebook.nbformat == 4
    assert notebook.metadata["kernelspec"]["name"] == "python3"
    assert "widgets" not in notebook.metadata
    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert QUICK_LINE in code_cells[0].source
    for cell in code_cells:
        assert cell.outputs == []
        assert cell.execution_count is None
        assert "widgets" not in cell.metadata


def test_every_notebook_is_tested():
    assert sorted(path.name for path in NOTEBOOKS_DIR.glob("*.ipynb")) == list(NOTEBOOKS)
