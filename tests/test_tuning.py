"""Tests of `tfvae.tuning` and `tfvae tune`: real searches on the bundled digits."""

import csv
import dataclasses
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import keras_tuner
import numpy as np
import pytest

from tfvae.cli import main
from tfvae.errors import TfvaeError
from tfvae.training.config import TrainConfig
from tfvae.training.runs import load_run
from tfvae.training.trainer import prepare
from tfvae.training.trainer import train
from tfvae.tuning import HyperAutoencoder
from tfvae.tuning import SearchConfig

# Tiny models on 8x8 digits: a trial takes one or two seconds on two cores.
DIGITS = ["--dataset", "digits", "--hidden-units", "32"]
SEARCH = [*DIGITS, "--epochs", "2", "--max-trials", "3", "--latent-dims", "2", "4", "8"]
RUN_FILES = {
    "model.keras",
    "config.json",
    "history.json",
    "metrics.json",
    "reconstructions.png",
    "latent_space.png",
    "training_curves.png",
    "logs",
}
PROGRESS = re.compile(r"^trial (\d+): (.*) -> (\S+)=(\S+) \((\d+\.\d) s\)$")


def _progress(out):
    """`{trial_id: objective}` of the one-line-per-trial progress output."""
    lines = [PROGRESS.match(line) for line in out.splitlines() if PROGRESS.match(line)]
    return {m.group(1): float(m.group(4)) for m in lines}


def _rows(directory):
    with open(directory / "trials.csv") as f:
        return list(csv.DictReader(f))


def _val_losses(run_dir, repeats):
    config, model = load_run(str(run_dir))
    val = prepare(config).pipeline("val", config.batch_size)
    losses = [model.evaluate(val, verbose=0, return_dict=True)["loss"] for _ in range(repeats)]
    return config, np.asarray(losses)


def _tree(path):
    """Every file under `path` with its bytes, to show that nothing changed."""
    files = {}
    for root, _, names in os.walk(path):
        for name in names:
            full = os.path.join(root, name)
            with open(full, "rb") as f:
                files[os.path.relpath(full, path)] = f.read()
    return files


def test_vae_search_on_digits_reports_and_saves_the_best_trial(tmp_path, capsys):
    directory = tmp_path / "search"
    assert main(["tune", *SEARCH, "--dir", str(directory)]) == 0
    out = capsys.readouterr().out

    progress = _progress(out)
    rows = _rows(directory)
    assert sorted(progress) == ["0", "1", "2"]
    assert [r["status"] for r in rows] == ["COMPLETED"] * 3
    # Three trials over three choices: the oracle never repeats one.
    assert sorted(int(r["latent_dim"]) for r in rows) == [2, 4, 8]
    for row in rows:
        assert float(row["val_loss"]) == pytest.approx(progress[row["trial"]], rel=1e-5)
        assert int(row["epochs"]) == 2 and int(row["parameters"]) > 0
    # Bigger latent spaces have bigger heads: 2 -> 4 -> 8 adds parameters.
    by_size = sorted(rows, key=lambda r: int(r["latent_dim"]))
    assert [int(r["parameters"]) for r in by_size] == sorted(int(r["parameters"]) for r in by_size)

    best = min(rows, key=lambda r: float(r["val_loss"]))
    marked = [line for line in out.splitlines() if line.endswith("<- best")]
    assert len(marked) == 1 and marked[0].split()[0] == best["trial"]
    assert (directory / "trials.txt").read_text().splitlines()[0].split()[:3] == [
        "trial",
        "latent_dim",
        "val_loss",
    ]
    assert (directory / "objective_vs_latent_dim.png").read_bytes()[:4] == b"\x89PNG"

    best_dir = directory / "best"
    assert RUN_FILES | {"samples.png", "best_trial.json"} <= set(os.listdir(best_dir))
    info = json.loads((best_dir / "best_trial.json").read_text())
    assert info["trial"] == best["trial"] and info["score"] == float(best["val_loss"])
    history = json.loads((best_dir / "history.json").read_text())
    assert len(history["val_loss"]) == int(best["best epoch"])
    assert history["val_loss"][-1] == pytest.approx(float(best["val_loss"]), rel=1e-6)

    # The VAE's validation loss draws one posterior sample per example, so a
    # reload cannot repeat the trial's number exactly. Its spread over fresh
    # draws is measured here (about 0.06 nats, 0.15% of the loss, on the 143
    # validation digits) and the trial's value must lie within 5 of them.
    config, losses = _val_losses(best_dir, repeats=10)
    assert config.latent_dim == int(best["latent_dim"])
    assert config.epochs == int(best["best epoch"])
    assert losses.std() < 0.005 * losses.mean()
    assert abs(losses.mean() - float(best["val_loss"])) <= 5 * losses.std()

    assert main(["evaluate", str(best_dir)]) == 0
    assert f"latent_dim={best['latent_dim']}" in capsys.readouterr().out

    # A trial is the run `tfvae train` does with the trial's choices.
    run = train(dataclasses.replace(config, out=str(tmp_path / "train")), verbose=0)
    record = json.loads(
        (directory / "search" / f"trial_{best['trial']}" / "tfvae_trial.json").read_text()
    )
    assert run.history["val_loss"] == pytest.approx(record["history"]["val_loss"], rel=1e-5)


def _wait_for_first_trial(project, process, timeout=240):
    """Returns the ids of the finished trials once the oracle has recorded one."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "the search ended before it could be killed"
        try:
            with open(os.path.join(project, "oracle.json")) as f:
                finished = json.load(f)["end_order"]
        except (OSError, ValueError, KeyError):
            finished = []
        if finished and os.path.exists(os.path.join(project, "tuner0.json")):
            return finished
        time.sleep(0.05)
    raise AssertionError("no trial finished in time")


def test_killed_search_resumes_with_only_the_remaining_trials(tmp_path, capsys):
    directory = tmp_path / "search"
    args = ["tune", "--model", "ae", *SEARCH, "--dir", str(directory)]
    log = tmp_path / "first.log"
    with open(log, "w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "tfvae.cli", *args], stdout=out, stderr=subprocess.STDOUT
        )
        try:
            _wait_for_first_trial(directory / "search", process)
            process.send_signal(signal.SIGKILL)
        finally:
            process.kill()
            process.wait()
    # What the dead process left on disk is what a rerun finds.
    finished = json.loads((directory / "search" / "oracle.json").read_text())["end_order"]
    assert 1 <= len(finished) < 3, finished
    project = directory / "search"
    kept = {t: (project / f"trial_{t}" / "tfvae_trial.json").read_bytes() for t in finished}
    assert set(_progress(log.read_text())) <= set(finished)

    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"resuming the search in {directory}: {len(finished)} of 3 trials finished" in out
    rerun = _progress(out)
    # Only the unfinished trials ran, the one killed mid-way among them.
    assert sorted(rerun) == sorted({"0", "1", "2"} - set(finished))
    for trial, record in kept.items():
        assert (project / f"trial_{trial}" / "tfvae_trial.json").read_bytes() == record
    rows = _rows(directory)
    assert [r["status"] for r in rows] == ["COMPLETED"] * 3
    assert sorted(int(r["latent_dim"]) for r in rows) == [2, 4, 8]

    # The autoencoder's validation loss is deterministic: the reloaded best
    # model repeats the trial's value up to float32 summation order.
    best = min(rows, key=lambda r: float(r["val_loss"]))
    _, losses = _val_losses(directory / "best", repeats=1)
    assert losses[0] == pytest.approx(float(best["val_loss"]), rel=1e-5)

    # A finished search run again trains nothing and reports the same table.
    table = (directory / "trials.txt").read_text()
    assert main(args) == 0
    out = capsys.readouterr().out
    assert _progress(out) == {} and table.strip() in out


# Slow: the default suite runs the random search, its resume and a search over beta.
@pytest.mark.slow
def test_hyperband_continues_the_best_trial_from_its_checkpoint(tmp_path, capsys):
    directory = tmp_path / "search"
    args = [*DIGITS, "--epochs", "3", "--latent-dims", "2", "4", "8", "--tuner", "hyperband"]
    assert main(["tune", *args, "--max-trials", "4", "--dir", str(directory)]) == 0
    capsys.readouterr()
    rows = _rows(directory)
    # max_epochs=3, factor 3: three 1-epoch trials, then the best of them
    # trained on to epoch 3 from its checkpoint.
    assert [int(r["epochs"]) for r in rows] == [1, 1, 1, 3]
    first_round = min(rows[:3], key=lambda r: float(r["val_loss"]))
    assert rows[3]["latent_dim"] == first_round["latent_dim"]
    record = json.loads((directory / "search" / "trial_3" / "tfvae_trial.json").read_text())
    assert record["continued_from"] == first_round["trial"] and record["epochs"] == [1, 2]
    assert float(rows[3]["val_loss"]) < float(first_round["val_loss"])


# Slow: the default suite runs the random search; the Bayesian choices are seeded (below).
@pytest.mark.slow
def test_bayesian_search_completes_its_trials(tmp_path, capsys):
    args = [*DIGITS, "--model", "ae", "--epochs", "1", "--tuner", "bayesian", "--max-trials", "4"]
    directory = tmp_path / "search"
    assert main(["tune", *args, "--latent-dims", "2", "4", "8", "16", "--dir", str(directory)]) == 0
    assert sorted(_progress(capsys.readouterr().out)) == ["0", "1", "2", "3"]
    rows = _rows(directory)
    assert [r["status"] for r in rows] == ["COMPLETED"] * 4
    # The fourth trial is the Gaussian process's proposal, after 3 random ones.
    assert {r["latent_dim"] for r in rows} <= {"2", "4", "8", "16"}


@pytest.mark.parametrize("tuner", ["random", "bayesian"])
def test_the_seed_fixes_the_sequence_of_choices(tmp_path, tuner):
    from tfvae.tuning.search import _make_tuner

    def proposals(seed, name):
        search = SearchConfig(
            TrainConfig(dataset="digits", hidden_units=(8,), epochs=1, seed=seed),
            betas=(0.25, 0.5, 1.0, 2.0),
            tuner=tuner,
            max_trials=5,
            directory=str(tmp_path / name),
        )
        hypermodel = HyperAutoencoder(search, prepare(search.train))
        oracle = _make_tuner(search, hypermodel, search.directory, progress=False).oracle
        trials = [oracle.create_trial(f"tuner{i}") for i in range(5)]
        return [
            (t.hyperparameters.values["latent_dim"], t.hyperparameters.values["beta"])
            for t in trials
        ]

    first = proposals(0, "a")
    assert proposals(0, "b") == first
    assert len(set(first)) == 5
    assert proposals(1, "c") != first


def test_the_default_objective_is_the_true_elbo_when_beta_is_searched():
    train = TrainConfig(dataset="digits", hidden_units=(8,), epochs=1)
    assert SearchConfig(train).objective == "val_loss"
    assert SearchConfig(train, betas=(0.1, 1.0)).objective == "val_neg_elbo"
    # An explicit objective beta does not weight is kept.
    kept = SearchConfig(train, betas=(0.1, 1.0), objective="val_reconstruction_loss")
    assert kept.objective == "val_reconstruction_loss"
    # The resolved objective is what a resumed search compares.
    assert SearchConfig.from_dict(kept.to_dict()).objective == "val_reconstruction_loss"


def test_a_search_over_beta_ranks_on_the_true_negative_elbo(tmp_path):
    """With beta 0.05 and 1, `val_loss` picks 0.05 by construction; the ranking must not."""
    from tfvae.tuning import tune

    search = SearchConfig(
        TrainConfig(dataset="digits", hidden_units=(32,), epochs=3),
        latent_dims=(8,),
        betas=(0.05, 1.0),
        max_trials=2,
        directory=str(tmp_path / "betas"),
    )
    result = tune(search, progress=False)
    assert search.objective == "val_neg_elbo"
    assert len(result.trials) == 2
    val_losses = {}
    for row in result.trials:
        record = json.loads(
            (
                tmp_path / "betas" / "search" / f"trial_{row['trial']}" / "tfvae_trial.json"
            ).read_text()
        )
        history = record["history"]
        # neg_elbo is the beta-1 bound, reconstruction + KL, whatever beta trained.
        np.testing.assert_allclose(
            history["val_neg_elbo"],
            np.add(history["val_reconstruction_loss"], history["val_kl_loss"]),
            rtol=1e-5,
        )
        assert row["val_neg_elbo"] == pytest.approx(min(history["val_neg_elbo"]), rel=1e-6)
        if row["beta"] == 0.05:
            # The beta-weighted loss flatters the small beta.
            assert min(history["val_loss"]) < min(history["val_neg_elbo"]) - 0.5
        val_losses[row["beta"]] = min(history["val_loss"])
    # Ranked on val_loss, the small beta would win by construction; the search
    # ranks on the true bound instead.
    assert min(val_losses, key=val_losses.get) == 0.05
    assert result.best["val_neg_elbo"] == min(r["val_neg_elbo"] for r in result.trials)
    info = json.loads((tmp_path / "betas" / "best" / "best_trial.json").read_text())
    assert info["objective"] == "val_neg_elbo" and info["trial"] == result.best["trial"]


def test_hypermodel_builds_the_chosen_model():
    search = SearchConfig(
        TrainConfig(dataset="digits", hidden_units=(32, 16), epochs=1),
        latent_dims=(3, 5),
        betas=(0.5, 2.0),
        learning_rates=(1e-2, 1e-3),
        widths=(8, 24),
    )
    hypermodel = HyperAutoencoder(search, prepare(search.train))
    hp = keras_tuner.HyperParameters()
    model = hypermodel.build(hp)
    # A fresh space is declared with the first choice of each setting.
    assert hp.values == {"latent_dim": 3, "beta": 0.5, "learning_rate": 1e-2, "width": 8}
    assert model.built and model.latent_dim == 3 and model.beta == 0.5
    hp.values.update(latent_dim=5, beta=2.0, learning_rate=1e-3, width=24)
    config = hypermodel.trial_config(hp)
    assert (config.latent_dim, config.beta, config.learning_rate) == (5, 2.0, 1e-3)
    assert config.hidden_units == (24, 24)
    model = hypermodel.build(hp)
    assert model.latent_dim == 5 and model.encoder.hidden_units == (24, 24)
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-3)
    history = hypermodel.fit(hp, model, epochs=1)
    assert np.isfinite(history.history["val_loss"][0])


@pytest.mark.parametrize("model", ["ae", "vae"])
def test_objectives_offered_are_the_metrics_the_model_reports(model):
    from tfvae.models import build_model
    from tfvae.models import get_family

    built = build_model(TrainConfig(model=model, hidden_units=(8,), latent_dim=2), (8, 8, 1))
    assert tuple(m.name for m in built.metrics) == get_family(model).metrics


BAD_INPUTS = [
    (["--latent-dims"], "latent_dims needs at least one choice. Received: latent_dims=()"),
    (
        ["--latent-dims", "0", "4"],
        "latent_dims must hold positive integers. Received: latent_dims=[0, 4]",
    ),
    (["--latent-dims", "4", "8", "4"], "latent_dims lists [4] more than once"),
    (["--latent-dims", "x"], "argument --latent-dims: expected an integer. Received: 'x'"),
    (["--betas", "-1"], "betas must hold finite numbers >= 0. Received: betas=[-1.0]"),
    (["--betas", "nan"], "betas must hold finite numbers >= 0"),
    (
        ["--model", "ae", "--betas", "1"],
        "betas (the KL weight) apply to --model vae, cvae, hvae, iaf or vamp only",
    ),
    (
        ["--betas", "0.1", "1", "--objective", "val_loss"],
        "objective 'val_loss' weights the KL term by the searched beta",
    ),
    (["--betas", "0.1", "1", "--objective", "loss"], "rank a search over betas on val_neg_elbo"),
    (["--learning-rates", "0"], "learning_rates must hold finite numbers > 0"),
    (["--widths"], "widths needs at least one choice"),
    (["--widths", "16", "--hidden-units"], "widths set the size of every hidden dense layer"),
    (["--tuner", "grid"], "argument --tuner: invalid choice: 'grid'"),
    (["--objective", "val_accuracy"], "objective 'val_accuracy' is not reported by the vae model"),
    (["--model", "ae", "--objective", "val_kl_loss"], "not reported by the ae model"),
    (["--max-trials", "0"], "max_trials must be a positive integer. Received: max_trials=0"),
    (["--latent-dim", "4"], "tfvae tune does not take --latent-dim; use --latent-dims"),
    (["--out", "x"], "tfvae tune does not take --out; use --dir"),
    (["--dataset", "cifar"], "unknown dataset 'cifar'"),
]


@pytest.mark.parametrize("args,message", BAD_INPUTS)
def test_bad_input_is_one_line_nonzero_and_touches_nothing(tmp_path, capsys, args, message):
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "notes.txt").write_text("mine")
    before = _tree(tmp_path)
    for directory in (tmp_path / "new", tmp_path / "old"):
        assert main(["tune", "--dataset", "digits", *args, "--dir", str(directory)]) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("tfvae: error: "), lines
        assert message in lines[0]
    assert _tree(tmp_path) == before and not (tmp_path / "new").exists()


def test_foreign_or_different_search_directory_is_refused_untouched(tmp_path, capsys):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    other = tmp_path / "other"
    other.mkdir()
    saved = SearchConfig(TrainConfig(dataset="digits", epochs=2), latent_dims=(2, 4))
    (other / "tuning.json").write_text(saved.to_json())
    before = _tree(tmp_path)

    assert main(["tune", "--dataset", "digits", "--dir", str(foreign)]) == 2
    assert "is not empty and holds no tfvae search" in capsys.readouterr().err
    assert main(["tune", "--dataset", "digits", "--epochs", "3", "--dir", str(other)]) == 2
    err = capsys.readouterr().err
    assert "holds a search with other settings" in err
    assert "latent_dims ([2, 4] then, [2, 4, 8, 16, 32, 64] now)" in err
    assert "train.epochs (2 then, 3 now)" in err
    assert _tree(tmp_path) == before


def test_search_config_round_trips_and_checks_distributed_variables(monkeypatch):
    config = SearchConfig(TrainConfig(model="ae"), widths=(16, 32), tuner="hyperband")
    assert SearchConfig.from_dict(json.loads(config.to_json())) == config
    assert config.searched() == {"latent_dim": (2, 4, 8, 16, 32, 64), "width": (16, 32)}
    from tfvae.tuning import distributed_role

    assert distributed_role() is None
    monkeypatch.setenv("KERASTUNER_ORACLE_IP", "127.0.0.1")
    with pytest.raises(TfvaeError, match="KERASTUNER_ORACLE_PORT and KERASTUNER_TUNER_ID"):
        distributed_role()
    monkeypatch.setenv("KERASTUNER_ORACLE_PORT", "80x")
    monkeypatch.setenv("KERASTUNER_TUNER_ID", "worker0")
    with pytest.raises(TfvaeError, match="Received: '80x'"):
        distributed_role()
    monkeypatch.setenv("KERASTUNER_ORACLE_PORT", "8000")
    assert distributed_role() == "worker"
    monkeypatch.setenv("KERASTUNER_TUNER_ID", "chief")
    assert distributed_role() == "chief"


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_chief_and_two_workers_share_a_search(tmp_path):
    directory = tmp_path / "search"
    args = [*DIGITS, "--epochs", "3", "--max-trials", "4", "--latent-dims", "2", "4", "8", "16"]
    command = [sys.executable, "-m", "tfvae.cli", "tune", *args, "--dir", str(directory)]
    port = str(_free_port())
    processes = {}
    for tuner_id in ("chief", "worker0", "worker1"):
        env = dict(
            os.environ,
            KERASTUNER_TUNER_ID=tuner_id,
            KERASTUNER_ORACLE_IP="127.0.0.1",
            KERASTUNER_ORACLE_PORT=port,
        )
        processes[tuner_id] = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
    outputs = {}
    try:
        for tuner_id, process in processes.items():
            outputs[tuner_id] = process.communicate(timeout=600)[0]
            assert process.returncode == 0, outputs[tuner_id]
    finally:
        for process in processes.values():
            process.kill()

    ran = {w: _progress(outputs[w]) for w in ("worker0", "worker1")}
    # Each worker ran trials, and together they ran each of the four once.
    assert ran["worker0"] and ran["worker1"], outputs
    assert sorted([*ran["worker0"], *ran["worker1"]]) == ["0", "1", "2", "3"]
    assert "the chief writes the report" in outputs["worker0"]
    assert _progress(outputs["chief"]) == {}
    rows = _rows(directory)
    assert [r["status"] for r in rows] == ["COMPLETED"] * 4
    for row in rows:
        reported = {**ran["worker0"], **ran["worker1"]}[row["trial"]]
        assert float(row["val_loss"]) == pytest.approx(reported, rel=1e-5)
    best = min(rows, key=lambda r: float(r["val_loss"]))
    assert f"best: trial {best['trial']} " in outputs["chief"]
    info = json.loads((directory / "best" / "best_trial.json").read_text())
    assert info["trial"] == best["trial"]
