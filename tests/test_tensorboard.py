"""Tests of `tfvae.training.tensorboard`: what `tfvae train` and `tfvae tune` show in TensorBoard.

The event files are read back as TensorBoard reads them, and one test asks
a real `tensorboard` server for the scalars, pictures, projector and
hparams over HTTP.
"""

import glob
import json
import math
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format
from tensorboard.plugins.hparams import plugin_data_pb2
from tensorboard.plugins.projector import ProjectorConfig

import tfvae
from tfvae.cli import main
from tfvae.training.config import TrainConfig
from tfvae.training.recipe import compiled_model
from tfvae.training.recipe import fit_on_splits
from tfvae.training.tensorboard import EMBEDDING_TENSOR
from tfvae.training.tensorboard import ImageSummaries
from tfvae.training.tensorboard import picture_shape
from tfvae.tuning import SearchConfig

SMALL = dict(dataset="digits", hidden_units=(8,), epochs=2)
# 8 x 8 digits, one pixel apart: two rows of eight, and the 10 x 10 manifold.
TWO_ROWS = (2 * 9 - 1, 8 * 9 - 1)
THREE_ROWS = (3 * 9 - 1, 8 * 9 - 1)
MANIFOLD = (10 * 9 - 1, 10 * 9 - 1)
SERVER_TIMEOUT_S = 120


def _events(directory):
    """`[(step, tag, value)]` of the event files directly in `directory`, in file order."""
    found = []
    for path in sorted(glob.glob(os.path.join(directory, "events.out.tfevents.*"))):
        for event in tf.compat.v1.train.summary_iterator(path):
            found += [(event.step, value.tag, value) for value in event.summary.value]
    return found


def _pictures(directory):
    """`{tag: [(step, picture)]}`: the image summaries in `directory`, decoded to [0, 1]."""
    pictures = {}
    for step, tag, value in _events(directory):
        if value.metadata.plugin_data.plugin_name == "images":
            width, height, png = value.tensor.string_val
            picture = tf.io.decode_png(png).numpy() / 255.0
            assert picture.shape[:2] == (int(height), int(width))
            pictures.setdefault(tag, []).append((step, picture))
    return pictures


def _scalar_steps(directory, tag):
    return [step for step, name, _ in _events(directory) if name == tag]


def _cell(picture, row, column, size=8):
    """The example at `(row, column)` of a grid of `size` x `size` pictures one pixel apart."""
    top, left = row * (size + 1), column * (size + 1)
    return picture[top : top + size, left : left + size, 0]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """One directory for the run and the search, so one `tensorboard --logdir` shows both."""
    return tmp_path_factory.mktemp("tensorboard")


@pytest.fixture(scope="module")
def vae_run(root):
    out = root / "run"
    config = TrainConfig(model="vae", latent_dim=2, out=str(out), **SMALL)
    return tfvae.train(config, verbose=0)


@pytest.fixture(scope="module")
def search(root):
    from tfvae.tuning import tune

    directory = root / "search"
    config = SearchConfig(
        train=TrainConfig(model="vae", **SMALL),
        latent_dims=(2, 4),
        max_trials=2,
        directory=str(directory),
    )
    return tune(config, progress=False)


def test_train_writes_one_picture_per_tag_and_epoch(vae_run, digits_binary):
    logs = os.path.join(vae_run.run_dir, "logs")
    assert sorted(os.listdir(logs)) == ["images", "projector", "train", "validation"]
    for run in ("train", "validation"):
        assert _scalar_steps(os.path.join(logs, run), "epoch_loss") == [0, 1]

    pictures = _pictures(os.path.join(logs, "images"))
    assert sorted(pictures) == ["manifold", "reconstructions", "samples"]
    for tag, shape in (
        ("reconstructions", TWO_ROWS),
        ("samples", TWO_ROWS),
        ("manifold", MANIFOLD),
    ):
        assert [step for step, _ in pictures[tag]] == [0, 1], tag
        assert [picture.shape for _, picture in pictures[tag]] == [(*shape, 1)] * 2, tag
    # The top row holds fixed test examples, the bottom row the final model's
    # reconstructions of them (PNG keeps 8 bits).
    x_test, _ = digits_binary.arrays("test")
    examples = x_test[:: len(x_test) // 8][:8]
    reconstructions = np.asarray(vae_run.model.predict_on_batch(examples), np.float32)
    final = pictures["reconstructions"][-1][1]
    for column in range(8):
        np.testing.assert_allclose(_cell(final, 0, column), examples[column, ..., 0], atol=1 / 255)
        np.testing.assert_allclose(
            _cell(final, 1, column), reconstructions[column, ..., 0], atol=2 / 255
        )
    # The prior noise is fixed: the samples change only as the decoder trains.
    first, last = (picture for _, picture in pictures["samples"])
    assert not np.array_equal(first, last)


def test_train_writes_the_projector_of_the_test_codes(vae_run, digits_binary):
    directory = os.path.join(vae_run.run_dir, "logs", "projector")
    with open(os.path.join(directory, "projector_config.pbtxt")) as f:
        config = text_format.Parse(f.read(), ProjectorConfig())
    (embedding,) = config.embeddings
    assert embedding.tensor_name == EMBEDDING_TENSOR
    assert embedding.metadata_path == "metadata.tsv"
    assert embedding.sprite.image_path == "sprite.png"
    assert list(embedding.sprite.single_image_dim) == [8, 8]

    x_test, y_test = digits_binary.arrays("test")
    codes = tf.train.load_checkpoint(tf.train.latest_checkpoint(directory)).get_tensor(
        EMBEDDING_TENSOR
    )
    expected = np.asarray(vae_run.model.latent_code(x_test), np.float32)
    np.testing.assert_allclose(codes, expected, rtol=1e-5, atol=1e-6)
    with open(os.path.join(directory, "metadata.tsv")) as f:
        assert f.read().split("\n") == [str(label) for label in y_test] + [""]
    with open(os.path.join(directory, "sprite.png"), "rb") as f:
        sprite = tf.io.decode_png(f.read()).numpy()
    side = math.ceil(math.sqrt(len(x_test)))
    assert sprite.shape == (side * 8, side * 8, 1)
    np.testing.assert_array_equal(sprite[8:16, 16:24, 0] / 255.0, x_test[side + 2, ..., 0])
    # The projector's directory is a TensorBoard run: it holds an event file.
    assert [tag for _, tag, _ in _events(directory)] == ["projector"]


def test_no_tensorboard_writes_no_logs(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--dataset", "digits", "--hidden-units", "8", "--epochs", "1", "--quiet"]
    assert main([*argv, "--no-tensorboard", "--out", str(out)]) == 0
    capsys.readouterr()
    assert "logs" not in os.listdir(out) and "model.keras" in os.listdir(out)
    assert json.loads((out / "config.json").read_text())["tensorboard"] is False
    assert TrainConfig().tensorboard is True


def test_denoising_pictures_under_a_mirrored_strategy(tmp_path, digits, two_cpu_strategies):
    _, mirrored = two_cpu_strategies
    config = TrainConfig(model="dae", latent_dim=4, **{**SMALL, "epochs": 1})
    with mirrored.scope():
        model = compiled_model(config, digits)
    logs = str(tmp_path / "images")
    callback = ImageSummaries(logs, digits, seed=config.seed)
    fit_on_splits(model, config, digits, callbacks=[callback], verbose=0)

    pictures = _pictures(logs)
    # An autoencoder has no prior: no samples, no manifold.
    assert sorted(pictures) == ["denoising", "reconstructions"]
    ((step, picture),) = pictures["denoising"]
    assert step == 0 and picture.shape == (*THREE_ROWS, 1)
    noisy = np.asarray(model.add_noise(callback.examples, seed=config.seed))
    # The Gaussian likelihood's means may leave [0, 1]; pictures are clipped.
    denoised = np.clip(np.asarray(model.predict_on_batch(noisy), np.float32), 0, 1)
    for column in range(8):
        np.testing.assert_allclose(_cell(picture, 0, column), noisy[column, ..., 0], atol=1 / 255)
        np.testing.assert_allclose(
            _cell(picture, 1, column), denoised[column, ..., 0], atol=2 / 255
        )
        np.testing.assert_allclose(
            _cell(picture, 2, column), callback.examples[column, ..., 0], atol=1 / 255
        )


def test_picture_shapes_of_images_and_flat_data():
    assert picture_shape((28, 28, 1)) == (28, 28, 1)
    assert picture_shape((32, 32, 3)) == (32, 32, 3)
    assert picture_shape((8, 8)) == (8, 8, 1)
    assert picture_shape((64,)) == (8, 8, 1)
    assert picture_shape((60,)) is None
    assert picture_shape((8, 8, 2)) is None


@pytest.mark.parametrize("features, pictured", [(64, True), (60, False)])
def test_flat_data_is_pictured_only_when_square(tmp_path, digits, features, pictured):
    x = np.concatenate([digits.x_train, digits.x_val, digits.x_test]).reshape(-1, 64)[:, :features]
    y = np.concatenate([digits.y_train, digits.y_val, digits.y_test])
    names = np.asarray([f"digit {label}" for label in y])
    path = tmp_path / "flat.npz"
    np.savez(path, x=x, y=names)
    config = TrainConfig(
        model="ae",
        dataset=str(path),
        latent_dim=3,
        hidden_units=(8,),
        epochs=1,
        out=str(tmp_path / "run"),
    )
    tfvae.train(config, verbose=0)

    logs = tmp_path / "run" / "logs"
    projector = logs / "projector"
    assert ("images" in os.listdir(logs)) is pictured
    assert ("sprite.png" in os.listdir(projector)) is pictured
    if pictured:
        (picture,) = [p for _, p in _pictures(str(logs / "images"))["reconstructions"]]
        assert picture.shape == (*TWO_ROWS, 1)
    lines = (projector / "metadata.tsv").read_text().splitlines()
    assert lines[0] == "label\tclass" and lines[1].split("\t")[1].startswith("digit ")


def test_search_writes_hparams_and_trial_pictures(search):
    logs = os.path.join(search.directory, "logs")
    (experiment,) = [v for _, tag, v in _events(logs) if tag == "_hparams_/experiment"]
    data = plugin_data_pb2.HParamsPluginData.FromString(experiment.metadata.plugin_data.content)
    (hparam,) = data.experiment.hparam_infos
    assert hparam.name == "latent_dim"
    assert [v.number_value for v in hparam.domain_discrete.values] == [2, 4]
    metrics = {(m.name.group, m.name.tag) for m in data.experiment.metric_infos}
    assert ("validation", "epoch_loss") in metrics and ("train", "epoch_neg_elbo") in metrics

    for row in search.trials:
        trial = os.path.join(logs, row["trial"], "execution0")
        starts = [v for _, tag, v in _events(trial) if tag == "_hparams_/session_start_info"]
        content = plugin_data_pb2.HParamsPluginData.FromString(
            starts[0].metadata.plugin_data.content
        )
        assert content.session_start_info.hparams["latent_dim"].number_value == row["latent_dim"]
        assert _scalar_steps(os.path.join(trial, "validation"), "epoch_loss") == [0, 1]
        pictures = _pictures(os.path.join(trial, "images"))
        # The manifold only for the 2-D latent space.
        assert ("manifold" in pictures) is (row["latent_dim"] == 2)
        assert [s for s, _ in pictures["reconstructions"]] == [0, 1]
    best_logs = os.listdir(os.path.join(search.best_run_dir, "logs"))
    assert {"images", "projector", "train", "validation"} <= set(best_logs)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tensorboard_command():
    script = os.path.join(os.path.dirname(sys.executable), "tensorboard")
    if os.path.isfile(script):
        return [script]
    return [sys.executable, "-m", "tensorboard.main"]


def test_tensorboard_serves_the_scalars_pictures_projector_and_hparams(
    root, vae_run, search, tmp_path
):
    port = _free_port()
    # --logdir, not --logdir_spec: the projector reads its files under --logdir only.
    server = subprocess.Popen(
        [
            *_tensorboard_command(),
            "--logdir",
            str(root),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--load_fast",
            "false",
            "--reload_interval",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "tensorboard.log", "w"),
    )
    base = f"http://127.0.0.1:{port}/data/plugin"

    def get(path, body=None):
        request = urllib.request.Request(
            base + path,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": "application/json"} if body is not None else {},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.read()

    def get_json(path, body=None):
        return json.loads(get(path, body))

    try:
        deadline = time.monotonic() + SERVER_TIMEOUT_S
        scalars = {}
        # Ready once it has read both runs' event files.
        while (
            "run/logs/train" not in scalars or "search/logs/0/execution0/validation" not in scalars
        ):
            assert server.poll() is None, (tmp_path / "tensorboard.log").read_text()
            assert time.monotonic() < deadline, "tensorboard did not serve the logs in time"
            try:
                scalars = get_json("/scalars/tags")
            except (urllib.error.URLError, ConnectionError):
                pass
            time.sleep(0.5)

        assert (
            "epoch_loss" in scalars["run/logs/train"]
            and "epoch_loss" in scalars["run/logs/validation"]
        )
        images = get_json("/images/tags")
        assert set(images["run/logs/images"]) == {"reconstructions", "samples", "manifold"}
        assert "reconstructions" in images["search/logs/0/execution0/images"]
        series = get_json("/images/images?run=run/logs/images&tag=reconstructions")
        assert [entry["step"] for entry in series] == [0, 1]
        png = get("/images/individualImage?" + series[-1]["query"])
        assert tf.io.decode_png(png).shape == (*TWO_ROWS, 1)

        assert "run/logs/projector" in get_json("/projector/runs")
        info = get_json("/projector/info?run=run/logs/projector")
        (embedding,) = info["embeddings"]
        assert embedding["tensorName"] == EMBEDDING_TENSOR
        assert embedding["tensorShape"] == [359, 2]
        name = f"run=run/logs/projector&name={EMBEDDING_TENSOR}"
        labels = get(f"/projector/metadata?{name}").decode().split()
        assert len(labels) == 359
        sprite = tf.io.decode_png(get(f"/projector/sprite_image?{name}"))
        assert sprite.shape == (19 * 8, 19 * 8, 1)

        experiment = get_json("/hparams/experiment", {"experimentName": ""})
        assert [h["name"] for h in experiment["hparamInfos"]] == ["latent_dim"]
        groups = get_json(
            "/hparams/session_groups",
            {
                "experimentName": "",
                "allowedStatuses": ["STATUS_SUCCESS", "STATUS_UNKNOWN", "STATUS_RUNNING"],
                "colParams": [],
                "startIndex": 0,
                "sliceSize": 10,
            },
        )["sessionGroups"]
        assert sorted(g["hparams"]["latent_dim"] for g in groups) == [2, 4]
        assert all(g["metricValues"] for g in groups)
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
