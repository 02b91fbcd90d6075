"""`tfvae export` stopped part-way: Ctrl-C, a failure, a second writer. Nothing is left behind.

The Ctrl-C tests run `python -m tfvae.cli export` as a subprocess and send
SIGINT once the export has reached a given step (its lock taken, a
SavedModel or TFLite version being staged): it must exit at once with
status 130 and the one line `tfvae: interrupted`, and the directory tree
must be as it was.
"""

import os
import signal
import subprocess
import sys
import time

import pytest
from file_tree import snapshot

from tfvae.cli import main
from tfvae.errors import TfvaeError
from tfvae.export import layout
from tfvae.export import run as export_module
from tfvae.io import interrupts
from tfvae.io.locks import exclusive_lock
from tfvae.io.locks import lock_path
from tfvae.training.config import TrainConfig
from tfvae.training.trainer import train

SUBPROCESS_ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
MODEL_NAME = "vae-digits"
# From SIGINT to the process's end; it used to take seconds, or never come.
PROMPT_S = 5.0


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / f"{MODEL_NAME}-20250101-120000"
    config = TrainConfig(dataset="digits", hidden_units=(8,), latent_dim=2, epochs=1, out=str(out))
    train(config, verbose=0)
    return str(out)


def _staging_in(directory):
    return os.path.isdir(directory) and any(e.startswith(".tmp-") for e in os.listdir(directory))


def _reached(step, base):
    model_dir = os.path.join(base, MODEL_NAME)
    return {
        "lock": lambda: os.path.exists(lock_path(base)),
        "saved_model": lambda: _staging_in(model_dir),
        "tflite": lambda: _staging_in(os.path.join(model_dir, layout.TFLITE_DIR)),
    }[step]()


def _earlier_export(base):
    """A base that already serves version 1 of the model."""
    version = os.path.join(base, MODEL_NAME, "1")
    os.makedirs(version)
    open(os.path.join(version, layout.SAVED_MODEL_FILE), "wb").close()
    layout.write_model_config(base)


@pytest.mark.parametrize(
    "step,delay,existing",
    [("lock", 0.0, False), ("saved_model", 0.2, False), ("tflite", 0.3, True)],
)
def test_ctrl_c_stops_the_export_at_once_and_leaves_nothing(
    run_dir, tmp_path, step, delay, existing
):
    base = str(tmp_path / "serving")
    if existing:
        _earlier_export(base)
    before = snapshot(tmp_path)
    command = [sys.executable, "-m", "tfvae.cli", "export", run_dir, "--base", base]
    process = subprocess.Popen(
        command,
        cwd=tmp_path,
        env=SUBPROCESS_ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 300
        while not _reached(step, base):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, f"the export never reached {step}"
            time.sleep(0.005)
        time.sleep(delay)
        sent = time.monotonic()
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
        elapsed = time.monotonic() - sent
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == interrupts.EXIT_INTERRUPTED, err.decode()
    assert err.decode().splitlines() == ["tfvae: interrupted"]
    assert elapsed < PROMPT_S
    assert snapshot(tmp_path) == before


def test_a_failed_export_leaves_no_directory_behind(run_dir, tmp_path, monkeypatch, capsys):
    def fail(*args, **kwargs):
        raise TfvaeError("conversion failed")

    monkeypatch.setattr(export_module, "write_tflite_version", fail)
    before = snapshot(tmp_path)
    assert main(["export", run_dir, "--base", str(tmp_path / "a" / "b" / "serving")]) == 2
    assert capsys.readouterr().err == "tfvae: error: conversion failed\n"
    assert snapshot(tmp_path) == before


def test_a_base_being_written_is_refused_and_nothing_changes(run_dir, tmp_path, capsys):
    base = str(tmp_path / "serving")
    _earlier_export(base)
    with exclusive_lock(base):
        before = snapshot(tmp_path)
        assert main(["export", run_dir, "--base", base]) == 2
        assert snapshot(tmp_path) == before
    assert capsys.readouterr().err == (
        f"tfvae: error: {base} is being written by process {os.getpid()}\n"
    )


def test_directories_tf_serving_rejects_are_left_out_of_models_config(run_dir, tmp_path, capsys):
    model_server_config_pb2 = pytest.importorskip(
        "tensorflow_serving.config.model_server_config_pb2"
    )
    from google.protobuf import text_format

    base = tmp_path / "serving"
    evil = base / "evil\n"  # left by an older tfvae
    (evil / "1").mkdir(parents=True)
    (evil / "1" / layout.SAVED_MODEL_FILE).write_bytes(b"")
    (base / layout.MODEL_CONFIG_FILE).write_text('model_config_list { config { name: "evil\n" } }')
    args = ["export", run_dir, "--base", str(base), "--format", "saved_model"]
    args += ["--server-base", "/models\tnew"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"models.config leaves out {str(evil)!r}" in out
    config = text_format.Parse(
        (base / layout.MODEL_CONFIG_FILE).read_text(), model_server_config_pb2.ModelServerConfig()
    )
    assert [(c.name, c.base_path) for c in config.model_config_list.config] == [
        (MODEL_NAME, f"/models\tnew/{MODEL_NAME}")
    ]


def test_ctrl_c_inside_held_back_waits_for_the_block_then_undoes(monkeypatch, capfd):
    exits, undone = [], []
    monkeypatch.setattr(interrupts.os, "_exit", exits.append)
    # Python's own handler, or SIG_IGN where the shell started pytest in the background.
    handler_before = signal.getsignal(signal.SIGINT)
    with interrupts.exit_on_interrupt("tfvae: interrupted"):
        with interrupts.undo_on_interrupt(lambda: undone.append("first")):
            with interrupts.undo_on_interrupt(lambda: undone.append("second")):
                with interrupts.held_back():
                    signal.raise_signal(signal.SIGINT)
                    assert exits == [] and undone == []
                assert exits == [interrupts.EXIT_INTERRUPTED]
                assert undone == ["second", "first"]
    assert signal.getsignal(signal.SIGINT) is handler_before
    assert capfd.readouterr().err == "tfvae: interrupted\n"
