"""Killed and resumed runs, determinism, divergence, atomic files and safe loading.

The runs that need `--deterministic` (process-wide op determinism) or a
SIGKILL run `tfvae train` in subprocesses; the rest call the library.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
import zipfile

import keras
import numpy as np
import pytest

from tfvae.cli import main
from tfvae.errors import TfvaeError
from tfvae.io.atomic import read_json
from tfvae.io.atomic import write_json
from tfvae.io.model_files import load_model_file
from tfvae.io.model_files import save_model_file
from tfvae.training import runs
from tfvae.training.callbacks import TrainingBackup
from tfvae.training.callbacks import latest_checkpoint
from tfvae.training.config import TrainConfig
from tfvae.training.recipe import count_steps_per_epoch
from tfvae.training.trainer import prepare
from tfvae.training.trainer import train

# 1,295 training digits in batches of 32: 41 steps per epoch, run 4 at a time
# (the last group of an epoch is 1 step), checkpointed every 8 steps.
RUN_ARGS = [
    "--dataset",
    "digits",
    "--hidden-units",
    "32",
    "--epochs",
    "3",
    "--batch-size",
    "32",
    "--steps-per-execution",
    "4",
    "--checkpoint-steps",
    "8",
    "--deterministic",
    "--quiet",
]
KILL_TIMEOUT_S = 120


def _train_command(out, *extra):
    return [sys.executable, "-m", "tfvae.cli", "train", *RUN_ARGS, "--out", str(out), *extra]


def _run(out, *extra):
    result = subprocess.run(
        _train_command(out, *extra), capture_output=True, text=True, timeout=KILL_TIMEOUT_S
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def _model_state(run_dir):
    model = load_model_file(os.path.join(run_dir, runs.MODEL_FILE))
    return [np.asarray(v) for v in model.weights], [
        np.asarray(v) for v in model.optimizer.variables
    ]


def _assert_same_run(a, b):
    weights_a, optimizer_a = _model_state(a)
    weights_b, optimizer_b = _model_state(b)
    for x, y in zip(weights_a + optimizer_a, weights_b + optimizer_b, strict=True):
        np.testing.assert_array_equal(x, y)
    for name in (runs.HISTORY_FILE, runs.METRICS_FILE):
        assert read_json(os.path.join(a, name)) == read_json(os.path.join(b, name))


@pytest.fixture(scope="module")
def deterministic_runs(tmp_path_factory):
    """Two uninterrupted `--deterministic` runs of the same command, run side by side."""
    root = tmp_path_factory.mktemp("deterministic")
    outs = [root / "first", root / "second"]
    processes = [
        subprocess.Popen(_train_command(out), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for out in outs
    ]
    for process in processes:
        _, err = process.communicate(timeout=KILL_TIMEOUT_S)
        assert process.returncode == 0, err.decode()[-3000:]
    return outs


def test_two_deterministic_runs_agree_exactly(deterministic_runs):
    first, second = deterministic_runs
    _assert_same_run(first, second)
    assert read_json(os.path.join(first, runs.CONFIG_FILE))["deterministic"] is True
    history = read_json(os.path.join(first, runs.HISTORY_FILE))
    assert len(history["loss"]) == 3 and history["loss"][-1] < history["loss"][0]
    assert not os.path.exists(f"{first}.partial")


def _newest_checkpoint(backup_dir):
    try:
        return latest_checkpoint(backup_dir)
    except TfvaeError:  # the run deleted it between the listing and the read
        return None


def _kill_inside_an_epoch(process, backup_dir):
    """SIGKILLs `process` once its newest checkpoint lies inside epoch 2 or later.

    The process is stopped (SIGSTOP) while the checkpoint is checked, so it
    is killed where it was seen.
    """
    deadline = time.monotonic() + KILL_TIMEOUT_S
    while time.monotonic() < deadline:
        assert process.poll() is None, "the run ended before it could be killed"
        state = _newest_checkpoint(backup_dir)
        if state and state["epoch"] >= 1 and state["batch"] > 0:
            process.send_signal(signal.SIGSTOP)
            state = _newest_checkpoint(backup_dir)
            if state and state["epoch"] >= 1 and state["batch"] > 0:
                process.kill()
                process.wait()
                return state
            process.send_signal(signal.SIGCONT)
        time.sleep(0.002)
    raise AssertionError("no checkpoint inside an epoch appeared")


def test_run_killed_inside_an_epoch_resumes_to_the_uninterrupted_weights(
    deterministic_runs, tmp_path
):
    out = tmp_path / "killed"
    partial = tmp_path / "killed.partial"
    process = subprocess.Popen(
        _train_command(out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    state = _kill_inside_an_epoch(process, str(partial / "backup"))
    assert process.returncode == -signal.SIGKILL
    # Nothing half-written where the run will go; everything is in .partial.
    assert not out.exists()
    assert sorted(os.listdir(partial)) == ["backup", "config.json", "run"]
    assert 0 < state["batch"] < 41 and state["batch"] % 8 == 0
    assert len(state["history"]["loss"]) == state["epoch"]

    resumed = _run(out, "--resume")
    assert (
        f"resumed from the checkpoint in epoch {state['epoch'] + 1} after step {state['batch']}"
        in resumed.stdout
    )
    assert not partial.exists()
    _assert_same_run(deterministic_runs[0], out)


def test_interrupted_run_keeps_its_checkpoint_and_resume_finishes_it(tmp_path):
    config = TrainConfig(dataset="digits", hidden_units=(16,), epochs=3, out=str(tmp_path / "run"))

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(config, verbose=0, callbacks=[Interrupt()])
    state = latest_checkpoint(str(tmp_path / "run.partial" / "backup"))
    assert (state["epoch"], state["batch"]) == (2, 0)
    assert not (tmp_path / "run").exists()
    with pytest.raises(TfvaeError, match="holds an unfinished run of .*rerun with --resume"):
        train(config, verbose=0)

    result = train(config, verbose=0, resume=True)
    assert result.resumed_from == (2, 0)
    history = read_json(os.path.join(result.run_dir, runs.HISTORY_FILE))
    assert len(history["loss"]) == 3 and history["loss"][:2] == state["history"]["loss"]
    assert not (tmp_path / "run.partial").exists()
    assert sorted(os.listdir(tmp_path)) == ["run"]


def test_a_run_with_a_capped_batch_size_resumes_with_the_settings_it_was_asked(tmp_path):
    # digits: 1,293 training examples, fewer than the batch size asked for.
    config = TrainConfig(
        dataset="digits", hidden_units=(8,), epochs=2, batch_size=5000, out=str(tmp_path / "run")
    )

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(TrainConfig.from_dict(config.to_dict()), verbose=0, callbacks=[Interrupt()])
    result = train(TrainConfig.from_dict(config.to_dict()), verbose=0, resume=True)
    assert result.resumed_from == (1, 0)
    # The finished run records the batch size it trained with: the training split.
    used = read_json(os.path.join(result.run_dir, runs.CONFIG_FILE))["batch_size"]
    assert 1000 < used < 1797
    assert any(notice.endswith(f"; using {used}") for notice in result.notices)


def test_resume_without_a_checkpoint_starts_the_run(tmp_path, capsys):
    out = tmp_path / "fresh"
    args = ["train", "--dataset", "digits", "--hidden-units", "8", "--epochs", "1", "--quiet"]
    assert main([*args, "--out", str(out), "--resume"]) == 0
    assert "resumed" not in capsys.readouterr().out
    assert (out / runs.MODEL_FILE).is_file() and not (tmp_path / "fresh.partial").exists()


def test_divergence_from_the_first_steps_names_the_epoch_and_writes_nothing(tmp_path, capsys):
    args = ["train", "--dataset", "digits", "--hidden-units", "16", "--epochs", "2"]
    args += ["--learning-rate", "1e30", "--lr-schedule", "constant", "--quiet"]
    assert main([*args, "--out", str(tmp_path / "run")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("tfvae: error: training diverged: ")
    # The first check, after the first group of 32 steps: the whole 11-step epoch.
    assert re.search(r"is (nan|inf|-inf) at epoch 1, steps 1-11 of 11", lines[0]), lines[0]
    assert "no checkpoint had been saved yet" in lines[0]
    assert os.listdir(tmp_path) == []


def test_divergence_keeps_the_last_good_checkpoint_and_model(tmp_path):
    """The step size jumps to 1e30 after epoch 1: within a few steps the loss is not finite."""
    config = TrainConfig(
        dataset="digits",
        hidden_units=(16,),
        epochs=3,
        lr_schedule="constant",
        steps_per_execution=1,
        out=str(tmp_path / "r"),
    )

    class StepSizeBlowUp(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                self.model.optimizer.learning_rate.assign(1e30)

    with pytest.raises(TfvaeError) as error:
        train(config, verbose=0, callbacks=[StepSizeBlowUp()])
    message = str(error.value)
    assert message.startswith("training diverged: ")
    assert re.search(r"is (nan|inf|-inf) at epoch 2, step ([2-9]|1[01]) of 11", message), message
    partial = tmp_path / "r.partial"
    assert f"the last good checkpoint (end of epoch 1) is kept in {partial / 'backup'}" in message
    assert not (tmp_path / "r").exists()
    state = latest_checkpoint(str(partial / "backup"))
    assert (state["epoch"], state["batch"]) == (1, 0)
    last_good = load_model_file(str(partial / "last_good.keras"))
    assert all(np.all(np.isfinite(np.asarray(v))) for v in last_good.weights)
    data = prepare(config)
    loss = last_good.evaluate(data.x_val, verbose=0, return_dict=True)["reconstruction_loss"]
    assert np.isfinite(loss) and loss == pytest.approx(
        state["history"]["val_reconstruction_loss"][0], rel=0.05
    )


def test_pipeline_order_depends_only_on_seed_and_epoch(digits):
    def passes(dataset, count):
        return [np.concatenate(list(dataset.as_numpy_iterator())) for _ in range(count)]

    from_start = passes(digits.pipeline("train", 100, seed=3), 3)
    from_epoch_2 = passes(digits.pipeline("train", 100, seed=3, first_epoch=2), 1)
    np.testing.assert_array_equal(from_start[2], from_epoch_2[0])
    assert not np.array_equal(from_start[0], from_start[1])
    rows = sorted(map(bytes, digits.x_train.reshape(len(digits.x_train), -1)))
    for order in from_start:  # every pass is a permutation of the split's rows
        assert sorted(map(bytes, order.reshape(len(order), -1))) == rows
    rest = digits.pipeline("train", 100, seed=3, first_epoch=2, skip_batches=4)
    assert int(rest.cardinality()) == 13 - 4
    np.testing.assert_array_equal(passes(rest, 1)[0], from_start[2][400:])
    with pytest.raises(TfvaeError, match=r"skip_batches must be in \[0, 13\)"):
        digits.pipeline("train", 100, skip_batches=13)


def test_a_save_killed_halfway_leaves_the_previous_checkpoint(tmp_path, digits_binary):
    from tfvae.training.recipe import build_compiled_model

    config = TrainConfig(dataset="digits", hidden_units=(8,), epochs=2)
    steps = count_steps_per_epoch(config, digits_binary)
    model = build_compiled_model(config, digits_binary.data_shape, steps)
    model.fit(digits_binary.pipeline("train", 128), epochs=1, verbose=0, shuffle=False)
    backup = TrainingBackup(str(tmp_path), steps)
    backup.set_model(model)
    backup._save(1, 0)
    saved = [np.asarray(v) for v in model.weights]
    # What a kill during the next save leaves: a staging directory with half a weights file.
    stale = tmp_path / ".tmp-abc123"
    stale.mkdir()
    with open(tmp_path / "step-000000011" / "checkpoint.weights.h5", "rb") as f:
        (stale / "checkpoint.weights.h5").write_bytes(f.read()[:1000])

    fresh = build_compiled_model(config, digits_binary.data_shape, steps)
    state = TrainingBackup(str(tmp_path), steps).restore(fresh)
    assert (state["epoch"], state["batch"]) == (1, 0)
    for x, y in zip(saved, fresh.weights, strict=True):
        np.testing.assert_array_equal(x, np.asarray(y))
    assert int(fresh.optimizer.iterations) == steps
    backup._save(2, 0)  # the next save clears the leftovers and the older checkpoint
    assert sorted(os.listdir(tmp_path)) == ["step-000000022"]


def _real_model_file(tmp_path):
    from tfvae.models import build_model

    path = str(tmp_path / "model.keras")
    save_model_file(build_model(TrainConfig(hidden_units=(8,)), (8, 8, 1)), path)
    assert [p.name for p in tmp_path.iterdir()] == ["model.keras"]  # no temporary left
    return path


def test_truncated_and_corrupt_model_files_give_one_line_errors(tmp_path):
    path = _real_model_file(tmp_path)
    with open(path, "rb") as f:
        data = f.read()
    assert load_model_file(path).built
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        weights_offset = data.index(b"model.weights.h5") + 100
    damaged = {
        "truncated": data[: len(data) // 2],
        "flipped": data[:weights_offset] + bytes(64) + data[weights_offset + 64 :],
    }
    rewritten = tmp_path / "rewritten.keras"
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(rewritten, "w") as target:
        for name in names:
            content = source.read(name)
            target.writestr(name, b"\x89HDF garbage" if name.endswith(".h5") else content)
    for name, content in damaged.items():
        (tmp_path / f"{name}.keras").write_bytes(content)
    for name in ("truncated", "flipped", "rewritten"):
        with pytest.raises(TfvaeError) as error:
            load_model_file(str(tmp_path / f"{name}.keras"))
        message = str(error.value)
        assert "\n" not in message and "truncated or corrupt" in message, message


def test_a_model_file_with_a_python_lambda_is_refused(tmp_path):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Lambda(lambda x: x * 2.0)])
    path = str(tmp_path / "lambda.keras")
    model.save(path)
    # The file is real: Keras runs its lambda when told the file is trusted.
    trusted = keras.models.load_model(path, safe_mode=False)
    np.testing.assert_allclose(trusted(np.ones((1, 4), "float32")), 2.0)
    with pytest.raises(TfvaeError, match="carries a Python lambda") as error:
        load_model_file(path)
    assert "\n" not in str(error.value) and path in str(error.value)


def test_model_and_json_files_are_replaced_atomically(tmp_path):
    from tfvae.models import build_model

    path = tmp_path / runs.MODEL_FILE
    path.write_text("an older model")
    model = build_model(TrainConfig(hidden_units=(8,)), (8, 8, 1))
    save_model_file(model, str(path))
    write_json(str(tmp_path / runs.HISTORY_FILE), {"loss": [1.5]})
    assert sorted(os.listdir(tmp_path)) == [runs.HISTORY_FILE, runs.MODEL_FILE]
    restored = load_model_file(str(path))
    for x, y in zip(model.weights, restored.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert json.loads((tmp_path / runs.HISTORY_FILE).read_text()) == {"loss": [1.5]}


@pytest.mark.slow
def test_resident_memory_stays_within_the_soak_bound():
    """A shorter run of benchmarks/memory_soak.py (which trains 200 epochs by default)."""
    script = os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks", "memory_soak.py")
    result = subprocess.run(
        [sys.executable, script, "--epochs", "60"], capture_output=True, text=True, timeout=1200
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert result.returncode == 0 and report["ok"], report
    assert report["epochs"] == 60 and report["growth_mib"] <= report["bound_mib"] == 64.0
    assert report["rss_before_training_mib"] < report["rss_after_warmup_mib"]
