"""Every row of the bad-input table in docs/bad_inputs.md, run as written.

Each row's command runs through `tfvae.cli.main` in a workspace holding the
files the table names; it must exit with status 2, print exactly one line,
`tfvae: error: ...` containing the row's expected text, and leave every file
of the workspace as it was (nothing written, nothing overwritten).
"""

import hashlib
import os
import re
import shlex

import numpy as np
import pytest

from tfvae.cli import main
from tfvae.training.config import TrainConfig

TABLE = os.path.join(os.path.dirname(__file__), os.pardir, "docs", "bad_inputs.md")
AREAS = ("cli", "data", "config", "model file", "export", "tuning")
ROW = re.compile(r"^\|\s*(\d+)\s*\|(.*)\|\s*$")


def table_rows():
    """`[(number, area, argv, expected)]` parsed from the markdown table."""
    rows = []
    with open(TABLE) as f:
        for line in f:
            match = ROW.match(line.strip())
            if not match:
                continue
            cells = [cell.strip() for cell in match.group(2).split("|")]
            area, command, _kind, _problem, expected = cells
            command = command.strip("`")
            expected = expected.strip("`")
            argv = shlex.split(command)
            assert argv[0] == "tfvae", line
            rows.append((int(match.group(1)), area, argv[1:], expected))
    return rows


ROWS = table_rows()


def _lambda_model(path):
    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Lambda(lambda x: x * 2.0)])
    model.save(path)


def _real_model_bytes(tmp):
    from tfvae.models import build_model

    path = os.path.join(tmp, "real.keras")
    model = build_model(TrainConfig(dataset="digits", hidden_units=(8,)), (8, 8, 1))
    model.save(path)
    with open(path, "rb") as f:
        data = f.read()
    os.unlink(path)
    return data


def build_workspace(root):
    """Writes the files the table's commands name (see the table's notes)."""
    rng = np.random.default_rng(0)
    np.savez(os.path.join(root, "nan.npz"), x=np.full((30, 8, 8), np.nan))
    inf = rng.random((30, 10))
    inf[3, 4] = np.inf
    np.save(os.path.join(root, "inf.npy"), inf)
    np.savez(os.path.join(root, "wide.npz"), x=np.linspace(-1, 2, 30 * 64).reshape(30, 8, 8))
    np.savez(os.path.join(root, "negative.npz"), x=rng.integers(-3, 200, size=(30, 6, 6)))
    np.savez(os.path.join(root, "empty.npz"), x=np.zeros((0, 4)))
    np.save(os.path.join(root, "flat.npy"), np.zeros(10))
    np.savez(os.path.join(root, "vectors.npz"), x=rng.random((30, 10)))
    np.savez(
        os.path.join(root, "mismatch.npz"), x_train=rng.random((20, 4)), x_test=rng.random((5, 5))
    )
    np.savez(os.path.join(root, "labels.npz"), x=rng.random((20, 4)), y=np.zeros(3))
    np.savez(os.path.join(root, "strings.npz"), x=np.array([["a", "b"]] * 5))
    np.save(os.path.join(root, "complex.npy"), rng.random((20, 4)) * 1j)
    with open(os.path.join(root, "broken.npz"), "wb") as f:
        f.write(b"not a numpy file at all")
    os.makedirs(os.path.join(root, "folder.npz"))
    np.savez(os.path.join(root, "twoarrays.npz"), a=np.zeros((5, 2)), b=np.zeros((5, 2)))
    np.savez(os.path.join(root, "tiny.npz"), x=rng.random((3, 4)))
    os.makedirs(os.path.join(root, "taken"))
    with open(os.path.join(root, "taken", "notes.txt"), "w") as f:
        f.write("mine")
    # An unfinished run of `--dataset digits --epochs 3 --out held`.
    os.makedirs(os.path.join(root, "held.partial"))
    with open(os.path.join(root, "held.partial", "config.json"), "w") as f:
        f.write(TrainConfig(dataset="digits", epochs=3, out="held").to_json())
    os.makedirs(os.path.join(root, "done"))
    real = _real_model_bytes(root)
    with open(os.path.join(root, "done", "model.keras"), "wb") as f:
        f.write(real)
    config = TrainConfig(dataset="digits", hidden_units=(8,)).to_json()
    for name, model in (
        ("badconfig", real),
        ("oddconfig", real),
        ("truncated", real[: len(real) // 2]),
        ("textmodel", b"this is not a model\n"),
        ("lambda", None),
        ("trainrun", real),
    ):
        run = os.path.join(root, name)
        os.makedirs(run)
        with open(os.path.join(run, "config.json"), "w") as f:
            f.write({"badconfig": "{not json", "oddconfig": '{"latent": 3}'}.get(name, config))
        if model is None:
            _lambda_model(os.path.join(run, "model.keras"))
        else:
            with open(os.path.join(run, "model.keras"), "wb") as f:
                f.write(model)
    _build_run_dir_files(root)
    _build_model_state_files(root)
    _build_export_files(root)
    _build_data_files(root)


# --- files for "Run directories and output targets" ---


def _build_run_dir_files(root):
    pass


# --- files for "Model files, runs and saved state" ---


def _build_model_state_files(root):
    pass


# --- files for "Export names and serving" ---


def _build_export_files(root):
    pass


# --- files for "Data, labels and config values" ---


def _build_data_files(root):
    pass


def snapshot(root):
    """Every file and directory under `root` with its size and content hash."""
    tree = {}
    for directory, dirs, files in os.walk(root):
        for name in dirs:
            tree[os.path.relpath(os.path.join(directory, name), root)] = "dir"
        for name in files:
            path = os.path.join(directory, name)
            with open(path, "rb") as f:
                tree[os.path.relpath(path, root)] = hashlib.sha256(f.read()).hexdigest()
    return tree


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad-inputs")
    build_workspace(str(root))
    return root


def test_the_table_has_every_area_and_numbered_rows():
    assert len(ROWS) >= 20
    numbers = [number for number, *_ in ROWS]
    # TEMPORARY while sections are filled in parallel: unique and increasing.
    assert numbers == sorted(set(numbers))
    assert {area for _, area, _, _ in ROWS} == set(AREAS)


@pytest.mark.parametrize(
    "argv,expected", [row[2:] for row in ROWS], ids=[f"row{row[0]}" for row in ROWS]
)
def test_row(workspace, monkeypatch, capsys, argv, expected):
    monkeypatch.chdir(workspace)
    before = snapshot(workspace)
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tfvae: error: "), captured.err
    assert expected in lines[0]
    assert captured.out == ""
    assert snapshot(workspace) == before
