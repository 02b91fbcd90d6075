"""Every row of the bad-input table in docs/bad_inputs.md, run as written.

Each row's command runs through `tfvae.cli.main` in a workspace holding the
files the table names; it must exit with status 2, print exactly one line,
`tfvae: error: ...` containing the row's expected text, and leave every file
of the workspace as it was (nothing written, nothing overwritten).
"""

import os
import re
import shlex

import numpy as np
import pytest
from file_tree import snapshot

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
    _build_data_source_files(root)
    _build_colour_files(root)
    _build_vqvae_files(root)
    _build_cvae_files(root)
    _build_sampler_files(root)
    _build_streaming_files(root)


# --- files for "Run directories and output targets" ---


def _build_run_dir_files(root):
    with open(os.path.join(root, "afile"), "w") as f:
        f.write("a file, not a directory\n")
    os.makedirs(os.path.join(root, "hollow"))
    os.symlink("hollow", os.path.join(root, "hollowlink"))


# --- files for "Model files, runs and saved state" ---


# The run every file below is made from: digits, 8 hidden units, latent size 16.
STATE_RUN = TrainConfig(dataset="digits", hidden_units=(8,))
# The killed run of every checkpoint row (11 steps per epoch of digits).
CHECKPOINT_RUN = TrainConfig(dataset="digits", hidden_units=(8,), latent_dim=2, epochs=2)
# The search of every tuning row: one trial of latent size 2.
SEARCH_ARGS = dict(latent_dims=(2,), max_trials=1)


def _rewrite_archive(data, edit_config=None, members=None):
    """The bytes of a `.keras` file `data` with its config edited or its members replaced."""
    import io
    import json
    import zipfile

    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    if edit_config is not None:
        config = json.loads(files["config.json"])
        edit_config(config)
        files["config.json"] = json.dumps(config).encode()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, content in files.items():
            method = zipfile.ZIP_DEFLATED if members and name in members else zipfile.ZIP_STORED
            archive.writestr(name, (members or {}).get(name, content), compress_type=method)
    return out.getvalue()


def _networks(config):
    return config["config"]["encoder"], config["config"]["decoder"]


def _drop_build_configs(config):
    for part in (config, *_networks(config)):
        part.pop("build_config", None)


def _garble_build_configs(config):
    for part in (config, *_networks(config)):
        part["build_config"] = "garbage"


def _narrow_encoder_input(config):
    _networks(config)[0]["build_config"] = {"input_shape": [None, 5]}


def _tall_decoder(config):
    _networks(config)[1]["config"]["output_shape"] = [8, 8, 1, 1, 1, 1]


def _huge_latent(config):
    _networks(config)[0]["config"]["latent_dim"] = 10**9


def _huge_hidden(config):
    for network in _networks(config):
        network["config"]["hidden_units"] = [10**8]


def _write_run(root, name, model_bytes, config):
    import json

    run = os.path.join(root, name)
    os.makedirs(run)
    with open(os.path.join(run, "config.json"), "w") as f:
        f.write(config if isinstance(config, str) else json.dumps(config))
    with open(os.path.join(run, "model.keras"), "wb") as f:
        f.write(model_bytes)


def _checkpoint_files(root):
    """`(state, weights)` of a checkpoint of CHECKPOINT_RUN after its first epoch, without training."""
    import json

    from tfvae.training.callbacks import _unsaved_variables
    from tfvae.training.recipe import build_compiled_model

    model = build_compiled_model(CHECKPOINT_RUN, (8, 8, 1), 11)
    model.optimizer.build(model.trainable_variables)
    path = os.path.join(root, "checkpoint.weights.h5")
    model.save_weights(path)
    with open(path, "rb") as f:
        weights = f.read()
    os.unlink(path)
    history = {name: [1.0] for name in ("loss", "reconstruction_loss", "kl_loss", "val_loss")}
    state = {
        "epoch": 1,
        "batch": 0,
        "steps_per_epoch": 11,
        "history": history,
        "metrics": {},
        "variables": {v.path: np.asarray(v).tolist() for v in _unsaved_variables(model)},
    }
    return json.dumps(state), weights


def _write_checkpoint(root, name, state, weights):
    """`<name>.partial/`: the unfinished run `--out <name>` of CHECKPOINT_RUN, one checkpoint."""
    partial = os.path.join(root, f"{name}.partial")
    checkpoint = os.path.join(partial, "backup", "step-000000011")
    os.makedirs(checkpoint)
    os.makedirs(os.path.join(partial, "run"))
    with open(os.path.join(partial, "config.json"), "w") as f:
        f.write(CHECKPOINT_RUN.to_json())
    with open(os.path.join(checkpoint, "state.json"), "w") as f:
        f.write(state)
    with open(os.path.join(checkpoint, "checkpoint.weights.h5"), "wb") as f:
        f.write(weights)


def _search_files(name):
    """The files of a finished one-trial search of latent size 2 in `name`, as `tfvae tune` leaves it."""
    import copy

    from tfvae.tuning.search_config import SearchConfig

    train = TrainConfig(dataset="digits", hidden_units=(8,), epochs=1)
    choice = {"name": "latent_dim", "default": 2, "conditions": [], "values": [2], "ordered": True}
    space = {"space": [{"class_name": "Choice", "config": choice}], "values": {"latent_dim": 2}}
    return {
        "tuning.json": SearchConfig(train, directory=name, **SEARCH_ARGS).to_dict(),
        "search/oracle.json": {
            "ongoing_trials": {},
            "hyperparameters": space,
            "start_order": ["0"],
            "end_order": ["0"],
            "run_times": {"0": 1},
            "retry_queue": [],
            "seed": 1,
            "seed_state": 2,
            "tried_so_far": ["c687794bc804df8781131381380100ee"],
            "id_to_hash": {"0": "c687794bc804df8781131381380100ee"},
            "display": {"search_start": None, "trial_start": {}, "trial_number": {}},
        },
        "search/tuner0.json": {},
        "search/trial_0/trial.json": {
            "trial_id": "0",
            "hyperparameters": copy.deepcopy(space),
            "metrics": {"metrics": {}},
            "score": 25.1,
            "best_step": 0,
            "status": "COMPLETED",
            "message": None,
        },
        "search/trial_0/tfvae_trial.json": {
            "trial_id": "0",
            "tuner_id": "tuner0",
            "seconds": 3.0,
            "parameters": 1156,
            "epochs": [0],
            "history": {"val_loss": [25.1]},
            "continued_from": None,
        },
        "best/best_trial.json": {"trial": "0", "objective": "val_loss", "score": 25.1},
    }


def _write_search(root, name, edit):
    """`<name>/`: the files of `_search_files`, changed by `edit(files)`, with trial weights."""
    import json

    import h5py

    files = _search_files(name)
    weights = os.path.join(root, name, "search", "trial_0", "checkpoint.weights.h5")
    os.makedirs(os.path.dirname(weights))
    with h5py.File(weights, "w") as f:
        f["vars/0"] = np.zeros(2, np.float32)
    edit(files)
    for path, content in files.items():
        full = os.path.join(root, name, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb" if isinstance(content, bytes) else "w") as f:
            f.write(content if isinstance(content, (bytes, str)) else json.dumps(content))


def _huge_latent_space(hyperparameters):
    hyperparameters["space"][0]["config"]["values"] = [10**9]
    hyperparameters["values"]["latent_dim"] = 10**9


def _set(path, *keys, value):
    """An edit of `_search_files`' output: `files[path][keys...] = value` (the whole file without keys)."""

    def edit(files):
        if not keys:
            files[path] = value
            return
        target = files[path]
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value

    return edit


def _build_model_state_files(root):
    import copy
    import json

    from tfvae.models import build_model

    path = os.path.join(root, "state-model.keras")
    build_model(STATE_RUN, (8, 8, 1)).save(path)
    with open(path, "rb") as f:
        real = f.read()
    os.unlink(path)
    config = STATE_RUN.to_dict()

    # Damaged model files, each with a valid config.json.
    for name, edit in (
        ("nobuild", _drop_build_configs),
        ("garbledbuild", _garble_build_configs),
        ("narrowbuild", _narrow_encoder_input),
        ("tallshape", _tall_decoder),
        ("hugelatent", _huge_latent),
        ("hugehidden", _huge_hidden),
    ):
        _write_run(root, name, _rewrite_archive(real, edit), config)
    bomb = _rewrite_archive(real, members={"model.weights.h5": bytes(8 << 20)})
    _write_run(root, "bomb", bomb, config)
    plain = os.path.join(root, "plain.keras")
    import keras

    keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten()]).save(plain)
    with open(plain, "rb") as f:
        plain_bytes = f.read()
    os.unlink(plain)
    _write_run(root, "plainkeras", plain_bytes, config)

    # A real model under a config.json that says something else.
    for name, changes in (
        ("says_ae", {"model": "ae", "beta": None, "iwae_samples": None, "kl_warmup_epochs": None}),
        ("says_gaussian", {"likelihood": "gaussian"}),
        ("says_conv", {"arch": "conv"}),
        ("says_latent5", {"latent_dim": 5}),
        ("says_latent1e9", {"latent_dim": 10**9}),
        ("says_hidden9", {"hidden_units": [9]}),
        ("says_beta", {"beta": 0.5}),
        ("says_vectors", {"dataset": "vectors.npz"}),
        ("says_binarize_no", {"binarize": "no"}),
        ("says_epochs_true", {"epochs": True}),
        ("says_latent_float", {"latent_dim": 16.0}),
        ("says_rate_text", {"learning_rate": "0.003"}),
        ("says_seed_huge", {"seed": 10**30}),
        ("says_hidden_text", {"hidden_units": "8"}),
        ("says_model_list", {"model": ["vae"]}),
        ("says_beta_inf", {"beta": float("inf")}),
    ):
        changed = {k: v for k, v in {**config, **changes}.items() if v is not None}
        _write_run(root, name, real, changed)
    long_int = json.dumps(config).replace('"latent_dim": 16', '"latent_dim": ' + "7" * 5000)
    _write_run(root, "says_long_int", real, long_int)
    _write_run(root, "says_list", real, "[]")

    # Unfinished runs of CHECKPOINT_RUN whose checkpoint was edited or damaged.
    state_text, weights = _checkpoint_files(root)
    state = json.loads(state_text)

    def edited(**changes):
        return json.dumps({**copy.deepcopy(state), **changes})

    seed_path = next(iter(state["variables"]))
    for name, text in (
        ("ck_empty", "{}"),
        ("ck_list", "[]"),
        ("ck_epochtext", edited(epoch="0")),
        ("ck_epoch1000", edited(epoch=1000)),
        ("ck_historylist", edited(history=[])),
        ("ck_historylong", edited(history={"loss": [1.0, 2.0]})),
        ("ck_batch", edited(batch=-3)),
        ("ck_varshape", edited(variables={seed_path: [1, 2, 3]})),
        ("ck_vartext", edited(variables={seed_path: "seed"})),
        ("ck_varname", edited(variables={"elsewhere/state": [0, 0]})),
        ("ck_longint", state_text.replace('"epoch": 1', '"epoch": ' + "1" * 5000)),
    ):
        _write_checkpoint(root, name, text, weights)
    _write_checkpoint(root, "ck_garbage", state_text, b"not an HDF5 file" * 8)

    # Finished searches whose saved state was edited or damaged.
    oracle, trial = "search/oracle.json", "search/trial_0/trial.json"
    for name, edit in (
        ("tn_oracle_empty", _set(oracle, value={})),
        ("tn_oracle_list", _set(oracle, value=[])),
        ("tn_oracle_latent", lambda files: _huge_latent_space(files[oracle]["hyperparameters"])),
        ("tn_oracle_seed", _set(oracle, "seed", value="1")),
        ("tn_oracle_ongoing", _set(oracle, "ongoing_trials", value={"tuner0": "7"})),
        ("tn_settings_list", _set("tuning.json", value=[])),
        ("tn_trial_latent", lambda files: _huge_latent_space(files[trial]["hyperparameters"])),
        ("tn_trial_empty", _set(trial, value={})),
        ("tn_trial_score", _set(trial, "score", value=None)),
        ("tn_weights", _set("search/trial_0/checkpoint.weights.h5", value=b"garbage" * 20)),
        ("tn_record", _set("search/trial_0/tfvae_trial.json", "history", value=[])),
        ("tn_marker", _set("best/best_trial.json", value=["0"])),
    ):
        _write_search(root, name, edit)


# --- files for "Export names and serving" ---


def _build_export_files(root):
    with open(os.path.join(root, "ex_file"), "w") as f:
        f.write("not a directory\n")
    os.symlink("ex_file", os.path.join(root, "ex_filelink"))
    os.makedirs(os.path.join(root, "ex_confdir", "models.config"))
    base = os.path.join(root, "ex_base")
    for version in (os.path.join("trainrun", "3"), os.path.join("trainrun", "tflite", "2")):
        os.makedirs(os.path.join(base, version))
    open(os.path.join(base, "trainrun", "3", "saved_model.pb"), "wb").close()
    os.makedirs(os.path.join(base, "taken"))
    for path in (("notes",), ("taken", "tflite")):
        with open(os.path.join(base, *path), "w") as f:
            f.write("mine\n")


# --- files for "Data, labels and config values" ---


def _build_data_files(root):
    import io
    import zipfile

    def path(name):
        return os.path.join(root, name)

    def write(name, data):
        with open(path(name), "wb") as f:
            f.write(data)

    def npy_header(shape, dtype="<f8", version=(1, 0)):
        """The bytes of a `.npy` header declaring `shape` and `dtype`, without the data."""
        header = io.BytesIO()
        write_header = {
            (1, 0): np.lib.format.write_array_header_1_0,
            (2, 0): np.lib.format.write_array_header_2_0,
        }[version]
        write_header(header, {"descr": dtype, "fortran_order": False, "shape": shape})
        return header.getvalue()

    write("dt_forged.npy", npy_header((10**14,)) + bytes(64))
    write("dt_forged2.npy", npy_header((10**7, 10**7), "<f4", (2, 0)) + bytes(64))
    write("dt_short.npy", npy_header((1000, 1000)) + bytes(64))
    write("dt_objects.npy", npy_header((3,), "|O") + bytes(64))
    write("dt_bigheader.npy", npy_header((1,) * 4000) + bytes(8))
    with zipfile.ZipFile(path("dt_forged.npz"), "w") as archive:
        archive.writestr("x.npy", npy_header((10**8, 10**6), "<f4"))
    with zipfile.ZipFile(path("dt_forgedy.npz"), "w") as archive:
        buffer = io.BytesIO()
        np.save(buffer, np.zeros((30, 4)))
        archive.writestr("x.npy", buffer.getvalue())
        archive.writestr("y.npy", npy_header((10**13,), "<i8"))
    with zipfile.ZipFile(path("dt_readme.npz"), "w") as archive:
        archive.writestr("readme.txt", "these are my digits\n")
    rng = np.random.default_rng(0)
    x = rng.random((40, 5))
    labels = {
        "nan": np.where(np.arange(40) == 3, np.nan, 1.0),
        "inf": np.where(np.arange(40) < 2, -np.inf, 1.0),
        "huge": np.repeat([10**18, 10**18 + 1], 20),
        "edge": np.full(40, 2**31),
        "negative": np.full(40, -(2**40)),
        "bigfloat": np.full(40, 1e300),
        "half": np.arange(40) / 2,
        "complex": np.ones(40) * 1j,
        "dates": np.full(40, np.datetime64("2020-01-01")),
    }
    for name, y in labels.items():
        np.savez(path(f"dt_{name}labels.npz"), x=x, y=y)
    np.savez(
        path("dt_mixedlabels.npz"),
        x_train=x,
        y_train=np.repeat(["cat", "dog"], 20),
        x_test=x[:4],
        y_test=np.zeros(4),
    )
    np.savez(
        path("dt_testlabels.npz"),
        x_train=x,
        y_train=np.repeat([0, 1], 20),
        x_test=x[:4],
        y_test=np.array([0, 1, 2**33, 1]),
    )
    np.save(path("dt_huge.npy"), np.full((40, 5), 1e300))
    x_test = x[:6].copy()
    x_test[2, 3] = -1e300
    np.savez(path("dt_hugetest.npz"), x_train=x, x_test=x_test)
    np.save(path("dt_dates.npy"), np.full((40, 5), np.datetime64("2020-01-01")))


def _build_data_source_files(root):
    """Files for "Your own data": image folders, TFRecord files, a table, channels-first arrays."""
    import tensorflow as tf
    from PIL import Image
    from sklearn.datasets import load_sample_images

    from tfvae.data.tfrecords import encode_example

    def path(*names):
        return os.path.join(root, *names)

    photo = load_sample_images().images[0]
    folders = ("ds_mixed/a", "ds_mixed/b", "ds_empty/cats", "ds_truncated", "ds_corrupt")
    for folder in (*folders, "ds_none"):
        os.makedirs(path(folder))
    Image.fromarray(photo[:8, :8]).save(path("ds_mixed", "a", "0.png"))
    Image.fromarray(photo[:10, :12]).save(path("ds_mixed", "b", "1.png"))
    Image.fromarray(photo[:16, :16]).save(path("ds_truncated", "0.png"))
    with open(path("ds_truncated", "0.png"), "rb") as f:
        data = f.read()
    with open(path("ds_truncated", "0.png"), "wb") as f:
        f.write(data[: len(data) // 2])
    shard = path("ds_corrupt", "data-00000-of-00001.tfrecord")
    with tf.io.TFRecordWriter(shard) as writer:
        for i in range(4):
            writer.write(encode_example(photo[i : i + 8, :8], index=i))
    with open(shard, "rb") as f:
        data = f.read()
    with open(shard, "wb") as f:
        f.write(data[:-50])
    image_only = tf.train.Example(
        features=tf.train.Features(
            feature={"image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"png"]))}
        )
    )
    with tf.io.TFRecordWriter(path("ds_schema.tfrecord")) as writer:
        writer.write(image_only.SerializeToString())
    with open(path("ds_text.csv"), "w") as f:
        f.write("age,city\n31,Oslo\n45,Lima\n")
    np.save(path("ds_chw.npy"), np.zeros((20, 3, 16, 16), np.uint8))


def _build_colour_files(root):
    """Files for "Colour images": real RGB pixels left in [0, 255]."""
    from sklearn.datasets import load_sample_images

    photo = load_sample_images().images[0]
    patches = [photo[i : i + 8, j : j + 8] for i in range(0, 416, 52) for j in range(0, 632, 79)]
    x = np.stack(patches).astype(np.float64)
    assert x.min() == 0 and x.max() == 255
    np.savez(os.path.join(root, "col_255.npz"), x=x)


def _build_vqvae_files(root):
    """Files for "VQ-VAE and its prior": an untrained VQ-VAE run, and one that has a prior."""
    from tfvae.models import build_model

    config = TrainConfig(
        model="vqvae", dataset="digits", filters=(8,), latent_dim=2, codebook_size=4
    )
    path = os.path.join(root, "vq.keras")
    build_model(config, (8, 8, 1)).save(path)
    with open(path, "rb") as f:
        model_bytes = f.read()
    os.unlink(path)
    for name in ("vqrun", "vqprior"):
        _write_run(root, name, model_bytes, config.to_json())
    os.makedirs(os.path.join(root, "vqprior", "prior"))
    with open(os.path.join(root, "vqprior", "prior", "metrics.json"), "w") as f:
        f.write('{"test_bits_per_dim": 1.5}')


# --- files for "Conditional models" ---


def _build_cvae_files(root):
    """`classes.npz`, labelled 0 to 11, and `cvaerun`, a conditional VAE of 10 classes made for it."""
    from tfvae.models import build_model

    rng = np.random.default_rng(0)
    np.savez(os.path.join(root, "classes.npz"), x=rng.random((120, 4)), y=np.arange(120) % 12)
    config = TrainConfig(model="cvae", dataset="classes.npz", hidden_units=(8,), latent_dim=2)
    path = os.path.join(root, "cvae.keras")
    build_model(config, (4,)).save(path)
    with open(path, "rb") as f:
        model_bytes = f.read()
    os.unlink(path)
    _write_run(root, "cvaerun", model_bytes, config.to_json())


# --- files for "Samplers" ---


def _build_sampler_files(root):
    """`aerun`: `config.json` and the untrained `model.keras` of an autoencoder for digits."""
    from tfvae.models import build_model

    config = TrainConfig(model="ae", dataset="digits", hidden_units=(8,), latent_dim=2)
    path = os.path.join(root, "ae.keras")
    build_model(config, (8, 8, 1)).save(path)
    with open(path, "rb") as f:
        model_bytes = f.read()
    os.unlink(path)
    _write_run(root, "aerun", model_bytes, config.to_json())


# --- files for "Streaming" ---


def _build_streaming_files(root):
    """`st_huge/`: records declaring images too large to hold; `st_noindex.tfrecord`: no index."""
    import tensorflow as tf

    from tfvae.data.tfrecords import encode_example

    def feature(kind, *values):
        if kind == "bytes":
            return tf.train.Feature(bytes_list=tf.train.BytesList(value=list(values)))
        return tf.train.Feature(int64_list=tf.train.Int64List(value=list(values)))

    os.makedirs(os.path.join(root, "st_huge"))
    with tf.io.TFRecordWriter(os.path.join(root, "st_huge", "data-00000-of-00001.tfrecord")) as w:
        for index in range(40):
            features = {
                "x": feature("bytes", b"\0" * 4),
                "encoding": feature("bytes", b"raw"),
                "dtype": feature("bytes", b"|u1"),
                "shape": feature("int", 65536, 65536, 3),
                "split": feature("bytes", b""),
                "index": feature("int", index),
            }
            example = tf.train.Example(features=tf.train.Features(feature=features))
            w.write(example.SerializeToString())
    with tf.io.TFRecordWriter(os.path.join(root, "st_noindex.tfrecord")) as w:
        for index in range(3):
            example = tf.train.Example.FromString(
                encode_example(np.full((2, 2), index, np.uint8), index=index)
            )
            del example.features.feature["index"]
            w.write(example.SerializeToString())


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad-inputs")
    build_workspace(str(root))
    return root


def test_the_table_has_every_area_and_numbered_rows():
    assert len(ROWS) >= 200
    numbers = [number for number, *_ in ROWS]
    assert numbers == list(range(1, len(ROWS) + 1))
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
