"""Model files, runs and saved state read back: every weight restored, sizes, schemas.

The pieces behind the "Model files, runs and saved state" rows of
docs/bad_inputs.md, each on its own: the weight-restore check and the
decompression-bomb check of `tfvae.io.model_files`, the parameter and
memory estimates of `tfvae.models.registry`, a run's config checked against
its model (`tfvae.training.runs`), strict JSON settings (`tfvae.settings`),
and the schemas of checkpoints (`tfvae.training.callbacks`) and of a
search's saved state (`tfvae.tuning.saved_state`).
"""

import dataclasses
import io
import json
import os
import zipfile

import keras
import numpy as np
import pytest

from tfvae import memory
from tfvae import settings
from tfvae.errors import TfvaeError
from tfvae.io import model_files
from tfvae.models import registry
from tfvae.training import runs
from tfvae.training.callbacks import check_state
from tfvae.training.config import TrainConfig
from tfvae.tuning import saved_state
from tfvae.tuning.search_config import SearchConfig

SHAPE = (8, 8, 1)
CONFIG = TrainConfig(dataset="digits", hidden_units=(8,), latent_dim=3)


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory):
    """A run directory holding an untrained model of CONFIG and its config."""
    run = tmp_path_factory.mktemp("run")
    registry.build_model(CONFIG, SHAPE).save(os.path.join(run, runs.MODEL_FILE))
    with open(os.path.join(run, runs.CONFIG_FILE), "w") as f:
        f.write(CONFIG.to_json())
    return str(run)


def _rewrite(source, target, edit_config=None, members=None, compress=()):
    with zipfile.ZipFile(source) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    if edit_config is not None:
        config = json.loads(files["config.json"])
        edit_config(config)
        files["config.json"] = json.dumps(config).encode()
    files.update(members or {})
    with zipfile.ZipFile(target, "w") as archive:
        for name, data in files.items():
            method = zipfile.ZIP_DEFLATED if name in compress else zipfile.ZIP_STORED
            archive.writestr(name, data, compress_type=method)
    return target


def _drop_build_configs(config):
    for part in (config, config["config"]["encoder"], config["config"]["decoder"]):
        part.pop("build_config")


# --- every saved weight must be restored ---


def test_an_intact_model_file_has_every_weight_restored(saved_run):
    path = os.path.join(saved_run, runs.MODEL_FILE)
    model = model_files.load_model_file(path)
    assert model_files.unrestored_weights(path, model) is None
    assert len(model.weights) == 8


def test_a_model_whose_build_configs_are_gone_is_refused_not_scored_at_random(saved_run, tmp_path):
    path = _rewrite(
        os.path.join(saved_run, runs.MODEL_FILE),
        str(tmp_path / "model.keras"),
        _drop_build_configs,
    )
    # Keras itself loads it without a word, unbuilt: the weights it later
    # creates keep their initial values.
    unbuilt = keras.models.load_model(path, safe_mode=True)
    assert not unbuilt.weights
    assert "8 of the 8 weight arrays it holds were not restored" in (
        model_files.unrestored_weights(path, unbuilt)
    )
    with pytest.raises(TfvaeError, match="8 of the 8 weight arrays it holds were not restored"):
        model_files.load_model_file(path)


def test_weights_that_are_not_the_files_are_counted(saved_run):
    path = os.path.join(saved_run, runs.MODEL_FILE)
    model = model_files.load_model_file(path)
    kernel = model.encoder.head.kernel
    kernel.assign(kernel + 1.0)
    problem = model_files.unrestored_weights(path, model)
    assert "1 of the 8 weight arrays it holds were not restored" in problem
    assert "1 of the model's 8 weights are not in it" in problem


# --- the archive: declared sizes first, then CRCs, streaming ---


def test_a_decompression_bomb_is_refused_before_any_byte_is_inflated(
    saved_run, tmp_path, monkeypatch
):
    path = _rewrite(
        os.path.join(saved_run, runs.MODEL_FILE),
        str(tmp_path / "bomb.keras"),
        members={"model.weights.h5": bytes(16 << 20)},
        compress=("model.weights.h5",),
    )
    assert os.path.getsize(path) < 100_000

    def no_inflating(*args, **kwargs):
        raise AssertionError("a member was decompressed")

    monkeypatch.setattr(zipfile.ZipExtFile, "read", no_inflating)
    assert "declares 16.0 MiB stored in" in model_files.archive_problem(path)
    with pytest.raises(TfvaeError, match="a decompression bomb"):
        model_files.load_model_file(path)


def test_declared_sizes_beyond_memory_and_a_bad_crc_are_refused(saved_run, tmp_path, monkeypatch):
    path = os.path.join(saved_run, runs.MODEL_FILE)
    monkeypatch.setattr(memory, "available_memory", lambda: 1000)
    assert "more than the 1000 bytes of memory available" in model_files.archive_problem(path)
    monkeypatch.undo()
    data = bytearray(open(path, "rb").read())
    offset = data.index(b"HDF") + 200  # inside the stored weights, not a header
    data[offset] ^= 0xFF
    damaged = tmp_path / "crc.keras"
    damaged.write_bytes(bytes(data))
    assert "truncated or corrupt" in model_files.archive_problem(str(damaged))


# --- sizes: counted from the settings, before anything is built ---


@pytest.mark.parametrize(
    "changes,shape",
    [
        ({"model": "ae"}, SHAPE),
        ({"model": "vae"}, SHAPE),
        ({"model": "vae", "arch": "conv", "filters": (4, 6), "hidden_units": (5,)}, SHAPE),
        ({"model": "ae", "arch": "conv", "filters": (3,), "hidden_units": ()}, (6, 10, 2)),
        ({"model": "dae", "hidden_units": (7, 3)}, (10,)),
    ],
)
def test_the_parameter_count_is_exact_before_building(changes, shape):
    config = TrainConfig(**{"dataset": "digits", "hidden_units": (8,), "latent_dim": 3, **changes})
    counted = registry.network_parameters(
        shape,
        config.latent_dim,
        config.arch,
        config.hidden_units,
        config.filters,
        probabilistic=config.family.can("prior"),
    )
    assert counted == registry.build_model(config, shape).count_params()


def test_a_model_too_large_for_memory_is_refused_with_its_size(monkeypatch):
    huge = TrainConfig(dataset="digits", latent_dim=100_000, hidden_units=(100_000,))
    monkeypatch.setattr(memory, "available_memory", lambda: 64 * 2**30)
    with pytest.raises(TfvaeError) as error:
        registry.build_model(huge, SHAPE)
    assert "has 30,013,200,064 parameters: 447.2 GiB to train" in str(error.value)
    assert "more than the 64.0 GiB of memory available" in str(error.value)
    # Below the limit nothing is refused.
    monkeypatch.setattr(memory, "available_memory", lambda: None)
    registry.check_model_size(10**12, 16, "a model", "train")


def test_a_saved_config_of_a_billion_latent_units_is_refused_before_it_is_built(
    saved_run, tmp_path
):
    def huge_latent(config):
        config["config"]["encoder"]["config"]["latent_dim"] = 10**9

    run = tmp_path / "run"
    run.mkdir()
    _rewrite(os.path.join(saved_run, runs.MODEL_FILE), str(run / runs.MODEL_FILE), huge_latent)
    (run / runs.CONFIG_FILE).write_text(CONFIG.to_json())
    with pytest.raises(TfvaeError, match="describes a model of 26,000,001,104 parameters"):
        runs.load_run(str(run))


def test_available_memory_is_a_positive_number_of_bytes():
    available = memory.available_memory()
    assert available is None or available > 0
    assert memory.format_bytes(3 * 2**30 / 2) == "1.5 GiB" and memory.format_bytes(12) == "12 bytes"


# --- a run's config against its model ---


def test_a_run_whose_files_agree_loads(saved_run):
    config, model = runs.load_run(saved_run)
    assert config == CONFIG and registry.model_settings(model)["latent_dim"] == 3


@pytest.mark.parametrize(
    "changes,message",
    [
        ({"model": "ae"}, "model ('ae' in config.json, 'vae' in model.keras)"),
        ({"likelihood": "gaussian"}, "likelihood ('gaussian' in config.json, 'bernoulli'"),
        ({"latent_dim": 4}, "latent_dim (4 in config.json, 3 in model.keras)"),
        ({"hidden_units": (9,)}, "hidden_units ((9,) in config.json, (8,) in model.keras)"),
        ({"arch": "conv"}, "arch ('conv' in config.json, 'dense' in model.keras)"),
        ({"beta": 0.5}, "beta (0.5 in config.json, 1.0 in model.keras)"),
    ],
)
def test_a_config_that_describes_another_model_is_refused(saved_run, changes, message):
    _, model = runs.load_run(saved_run)
    values = {**CONFIG.to_dict(), **changes}
    if changes.get("model") == "ae":
        for name in ("beta", "iwae_samples", "kl_warmup_epochs"):
            values.pop(name)
    with pytest.raises(TfvaeError, match="does not hold the model its config.json describes"):
        runs.check_run_model("run", TrainConfig.from_dict(values), model)
    with pytest.raises(TfvaeError) as error:
        runs.check_run_model("run", TrainConfig.from_dict(values), model)
    assert message in str(error.value)


def test_a_plain_keras_model_and_changed_data_are_refused(saved_run):
    plain = keras.Sequential([keras.Input(SHAPE), keras.layers.Flatten()])
    with pytest.raises(TfvaeError, match="holds a Sequential, not a tfvae model"):
        runs.check_run_model("run", CONFIG, plain)
    _, model = runs.load_run(saved_run)

    class Vectors:
        name = "vectors.npz"
        data_shape = (10,)

    with pytest.raises(TfvaeError, match=r"takes examples of shape \(8, 8, 1\), but vectors.npz"):
        runs.check_run_data("run", CONFIG, model, Vectors())


# --- strict JSON settings ---


@pytest.mark.parametrize(
    "values,message",
    [
        ({"binarize": "no"}, "binarize must be true or false. Received: binarize='no'"),
        ({"epochs": True}, "epochs must be a positive integer. Received: epochs=True"),
        ({"latent_dim": 10**30}, "latent_dim must be an integer in [1, 2147483647]"),
        ({"seed": 2**31}, "seed must be an integer in [0, 2147483647]. Received: seed=2147483648"),
        ({"beta": 10**400}, "beta must be a finite number >= 0. Received: beta=<an integer of"),
        ({"hidden_units": [10**20]}, "hidden_units must be an integer in [1, 2147483647]"),
        ({"model": ["vae"]}, "unknown model ['vae']"),
    ],
)
def test_settings_from_json_are_type_checked_strictly(values, message):
    with pytest.raises(TfvaeError) as error:
        TrainConfig.from_dict({"dataset": "digits", **values})
    assert message in str(error.value)


def test_an_integer_of_thousands_of_digits_is_refused_in_one_line(tmp_path):
    path = tmp_path / "config.json"
    path.write_text('{"dataset": "digits", "latent_dim": ' + "9" * 5000 + "}")
    with pytest.raises(TfvaeError) as error:
        TrainConfig.load(path)
    assert str(error.value) == (
        f"cannot read config {path}: it holds an integer of 5000 digits (at most 40 are read)"
    )
    assert settings.shown_value(10**5000) == "<an integer of about 5000 digits>"


def test_check_json_names_the_first_misfit_by_its_path():
    schema = {"a": ("list", {"b": "int"}), "c": ("map", "array"), "d": ("nullable", "str")}
    good = {"a": [{"b": 1}], "c": {"x": [[1.0, 2]]}, "d": None}
    assert settings.check_json(good, schema, "f.json") is good
    for value, message in (
        ([], "f.json must be a JSON object. Received: []"),
        ({"a": []}, "f.json has no c"),
        ({**good, "a": [{"b": 1}, {"b": "2"}]}, "f.json: a[1].b must be an integer. Received: '2'"),
        ({**good, "c": {"x": [[1, "z"]]}}, "f.json: c.x[0][1] must be a number or a list of"),
        ({**good, "a": [{"b": True}]}, "f.json: a[0].b must be an integer. Received: True"),
        ({**good, "d": 3}, "f.json: d must be a string. Received: 3"),
    ):
        with pytest.raises(TfvaeError) as error:
            settings.check_json(value, schema, "f.json")
        assert message in str(error.value)


# --- checkpoints ---


def _state(**changes):
    state = {
        "epoch": 1,
        "batch": 0,
        "steps_per_epoch": 11,
        "history": {"loss": [1.0]},
        "metrics": {},
        "variables": {"noise_seed/seed_generator_state": [0, 2]},
    }
    return {**state, **changes}


@pytest.mark.parametrize(
    "state,message",
    [
        ({}, "state.json has no epoch"),
        (_state(epoch="0"), "epoch must be an integer. Received: '0'"),
        (_state(history=[]), "history must be a JSON object"),
        (_state(epoch=1000), "is step 11000, but the checkpoint is named for step 11"),
        (_state(batch=11), "is not a position in a run"),
        (_state(history={"loss": [1.0, 2.0]}), "history.loss holds 2 values for 1 finished epochs"),
        (_state(variables={"v": "x"}), "variables.v must be a number or a list of numbers"),
    ],
)
def test_a_checkpoint_state_must_fit_its_schema_and_its_name(tmp_path, state, message):
    (tmp_path / "checkpoint.weights.h5").write_bytes(b"")
    with pytest.raises(TfvaeError) as error:
        check_state(state, str(tmp_path), 11)
    assert message in str(error.value)
    check_state(_state(), str(tmp_path), 11)


# --- a search's saved state ---


def _search(root):
    import h5py

    config = SearchConfig(TrainConfig(dataset="digits", epochs=1), latent_dims=(2, 4))
    choice = {"name": "latent_dim", "default": 2, "values": [2, 4], "ordered": True}
    space = {"space": [{"class_name": "Choice", "config": choice}], "values": {"latent_dim": 2}}
    trial = {
        "trial_id": "0",
        "hyperparameters": space,
        "metrics": {"metrics": {}},
        "score": 25.0,
        "best_step": 0,
        "status": "COMPLETED",
        "message": None,
    }
    oracle = {
        "ongoing_trials": {},
        "hyperparameters": space,
        "start_order": ["0"],
        "end_order": ["0"],
        "run_times": {"0": 1},
        "retry_queue": [],
        "seed": 1,
        "seed_state": 2,
        "tried_so_far": [],
        "id_to_hash": {"0": None},
        "display": {},
    }
    project = root / "search"
    (project / "trial_0").mkdir(parents=True)
    (project / "trial_0" / "trial.json").write_text(json.dumps(trial))
    (project / "oracle.json").write_text(json.dumps(oracle))
    with h5py.File(project / "trial_0" / "checkpoint.weights.h5", "w") as f:
        f["vars/0"] = np.zeros(2)
    return config, project


def _check_search(config, root, project):
    saved_state.check_search_state(
        config, str(root), str(project), "tfvae_trial.json", str(root / "best" / "marker.json")
    )


def test_a_saved_search_is_checked_against_its_schema_and_its_choices(tmp_path):
    config, project = _search(tmp_path)
    _check_search(config, tmp_path, project)
    oracle = json.loads((project / "oracle.json").read_text())
    oracle["hyperparameters"]["values"]["latent_dim"] = 10**9
    (project / "oracle.json").write_text(json.dumps(oracle))
    with pytest.raises(
        TfvaeError, match=r"it chose latent_dim=1000000000; this search tries \[2, 4\]"
    ):
        _check_search(config, tmp_path, project)
    (project / "oracle.json").write_text("[]")
    with pytest.raises(TfvaeError, match="oracle.json must be a JSON object"):
        _check_search(config, tmp_path, project)


def test_a_bayesian_search_left_to_its_default_initial_points_resumes(tmp_path):
    # Keras Tuner saves num_initial_points as None when it is not set; resuming
    # (or extending with more --max-trials) refused such a search.
    config, project = _search(tmp_path)
    config = dataclasses.replace(config, tuner="bayesian")
    oracle = json.loads((project / "oracle.json").read_text())
    oracle.update({"num_initial_points": None, "alpha": 1e-4, "beta": 2.6})
    (project / "oracle.json").write_text(json.dumps(oracle))
    _check_search(config, tmp_path, project)
    oracle["num_initial_points"] = "three"
    (project / "oracle.json").write_text(json.dumps(oracle))
    with pytest.raises(TfvaeError, match="num_initial_points must be an integer"):
        _check_search(config, tmp_path, project)


def test_a_completed_trial_with_unreadable_weights_is_refused(tmp_path):
    config, project = _search(tmp_path)
    (project / "trial_0" / "checkpoint.weights.h5").write_bytes(b"garbage")
    with pytest.raises(TfvaeError, match="the weights of a completed trial are unreadable"):
        _check_search(config, tmp_path, project)
    settings_file = tmp_path / "tuning.json"
    settings_file.write_text("[1]")
    with pytest.raises(TfvaeError, match="tuning.json must be a JSON object"):
        saved_state.read_search_settings(str(settings_file))


def test_a_zip_of_many_members_is_refused(tmp_path):
    path = tmp_path / "many.keras"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for index in range(model_files.MAX_MEMBERS + 1):
            archive.writestr(f"f{index}", b"")
    path.write_bytes(buffer.getvalue())
    assert "holds 10,001 files" in model_files.archive_problem(str(path))
