"""Run directories and output targets: one writer each, readable by others, refused in one line.

The mistakes that fit a table row (read-only targets, a path below a file,
a link to a directory, `--out ''`) are in docs/bad_inputs.md; this file
holds what a row cannot show: two processes at once, a lock held by
another process, a dangling link, and the modes of what a run, a search
and an export write.
"""

import hashlib
import json
import os
import stat
import subprocess
import sys

import pytest

from tfvae.cli import main
from tfvae.io.locks import exclusive_lock

SMALL = ["--dataset", "digits", "--epochs", "1", "--hidden-units", "8", "--quiet"]


def _snapshot(root):
    """Every path under `root` (links not followed) with its content hash."""
    tree = {}
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(directory, name)
            if os.path.islink(path):
                tree[os.path.relpath(path, root)] = "-> " + os.readlink(path)
            elif os.path.isdir(path):
                tree[os.path.relpath(path, root)] = "dir"
            else:
                with open(path, "rb") as f:
                    tree[os.path.relpath(path, root)] = hashlib.sha256(f.read()).hexdigest()
    return tree


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def _one_error_line(capsys):
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tfvae: error: "), captured.err
    return lines[0]


def _train_process(out, seed, cwd):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.Popen(
        [sys.executable, "-m", "tfvae.cli", "train", *SMALL, "--out", out, "--seed", str(seed)],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _race_two_trainings(root):
    """Starts two `tfvae train --out same` at once; checks that exactly one writes it."""
    processes = [_train_process("same", seed, root) for seed in (0, 1)]
    results = [(p.wait(timeout=600), *p.communicate()) for p in processes]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 2], results
    winner = next(seed for seed, (code, _, _) in enumerate(results) if code == 0)
    _, loser_out, loser_err = results[1 - winner]
    errors = [line for line in loser_err.splitlines() if line.startswith("tfvae: error: ")]
    assert len(errors) == 1 and loser_out == "", loser_err
    # Usually still running; had it finished first, its directory is what stops the other.
    refusals = ("same is being written by process", "output directory same already exists")
    assert any(refusal in errors[0] for refusal in refusals), errors[0]
    assert "run directory: same" in results[winner][1]
    assert sorted(os.listdir(root)) == ["same"]
    with open(os.path.join(root, "same", "config.json")) as f:
        assert json.load(f)["seed"] == winner
    assert {"model.keras", "metrics.json", "history.json"} <= set(os.listdir(root / "same"))


# Slow: two training processes; the default suite tests the lock that decides the race in-process.
@pytest.mark.slow
def test_two_trainings_into_one_directory_one_wins(tmp_path):
    _race_two_trainings(tmp_path)


@pytest.mark.slow
def test_two_trainings_into_one_directory_one_wins_five_times(tmp_path):
    for attempt in range(5):
        root = tmp_path / str(attempt)
        root.mkdir()
        _race_two_trainings(root)


@pytest.mark.parametrize(
    "argv,target",
    [
        (["train", *SMALL, "--out", "out"], "out"),
        (["tune", *SMALL, "--latent-dims", "2", "--max-trials", "1", "--dir", "out"], "out"),
        (["compare-pca", *SMALL, "--latent-dims", "2", "--out", "out"], "out"),
        (["anomaly", *SMALL, "--out", "out"], "out"),
        (["pretrain", "--dataset", "digits", "--epochs", "1", "--out", "out"], "out"),
        (["train", *SMALL, "--out", "runs/new/out"], "runs/new/out"),
    ],
    ids=["train", "tune", "compare-pca", "anomaly", "pretrain", "train-new-parents"],
)
def test_a_directory_being_written_is_refused_and_left_alone(
    tmp_path, monkeypatch, capsys, argv, target
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "keep.txt").write_text("mine")
    with exclusive_lock(target):
        before = _snapshot(tmp_path)
        assert main(argv) == 2
        assert _snapshot(tmp_path) == before
    line = _one_error_line(capsys)
    assert f"{target} is being written by process {os.getpid()}" in line
    # The holder cleans up: its lock file and the parents it made are gone.
    assert sorted(os.listdir(tmp_path)) == ["keep.txt"]


@pytest.mark.parametrize("link_to", ["nowhere", "empty"], ids=["dangling", "to-empty-dir"])
def test_a_symlinked_out_is_refused_before_training(tmp_path, monkeypatch, capsys, link_to):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty").mkdir()
    os.symlink(link_to, tmp_path / "link")
    before = _snapshot(tmp_path)
    assert main(["train", *SMALL, "--out", "link"]) == 2
    line = _one_error_line(capsys)
    assert f"--out link is a symbolic link (to {link_to})" in line
    assert _snapshot(tmp_path) == before


def test_a_search_directory_is_readable_by_other_users(tmp_path, monkeypatch, capsys):
    from tfvae.tuning.search import BEST_DIR
    from tfvae.tuning.search import SETTINGS_FILE

    old = os.umask(0o022)
    try:
        argv = ["tune", *SMALL, "--latent-dims", "2", "--max-trials", "1", "--dir"]
        assert main([*argv, str(tmp_path / "search")]) == 0
    finally:
        os.umask(old)
    capsys.readouterr()
    search = tmp_path / "search"
    for name in ("", BEST_DIR, os.path.join(BEST_DIR, "logs")):
        assert _mode(search / name) == 0o755, name
    for name in (SETTINGS_FILE, "trials.txt", "trials.csv"):
        assert _mode(search / name) == 0o644, name
    for name in ("model.keras", "config.json", "metrics.json", "history.json"):
        assert _mode(search / BEST_DIR / name) == 0o644, name
    assert sorted(os.listdir(tmp_path)) == ["search"]


def test_an_export_is_readable_by_other_users(tmp_path):
    from tfvae.export.run import export_run
    from tfvae.training.config import TrainConfig
    from tfvae.training.trainer import train

    old = os.umask(0o022)
    try:
        run = str(tmp_path / "run")
        train(TrainConfig(dataset="digits", epochs=1, hidden_units=(8,), out=run), verbose=0)
        base = tmp_path / "exports"
        export_run(run, export_format="saved_model", base_dir=str(base), model_name="m")
    finally:
        os.umask(old)
    assert _mode(base / "models.config") == 0o644
    checked = 0
    for directory, _, files in os.walk(base / "m"):
        assert _mode(directory) == 0o755, directory
        for name in files:
            assert _mode(os.path.join(directory, name)) & 0o044 == 0o044, name
            checked += 1
    assert checked >= 2 and os.path.isfile(base / "m" / "1" / "saved_model.pb")
