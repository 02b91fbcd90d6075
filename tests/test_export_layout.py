"""The TF Serving layout: names, versions, models.config (no TensorFlow).

Its atomic commits are `tfvae.io.atomic.Transaction`'s, tested in `test_io.py`.
"""

import os

import pytest

from tfvae.errors import TfvaeError
from tfvae.export import layout


def _version_dir(path, version):
    os.makedirs(os.path.join(path, str(version)))
    open(os.path.join(path, str(version), layout.SAVED_MODEL_FILE), "wb").close()


def test_default_model_name_drops_the_timestamp_and_sanitizes():
    assert layout.default_model_name("saved_models/vae-mnist5k-dense-z16-20250101-120000") == (
        "vae-mnist5k-dense-z16"
    )
    assert layout.default_model_name("runs/my run (2)/") == "my_run_2_"
    with pytest.raises(TfvaeError, match="cannot derive a model name"):
        layout.default_model_name("runs/...")


@pytest.mark.parametrize("name", ["", "a b", "../up", "-dash", "x/y", 7])
def test_bad_model_names_are_refused_with_the_value(name):
    with pytest.raises(TfvaeError, match="Received: name="):
        layout.check_model_name(name)


def test_next_version_counts_saved_model_and_tflite_versions(tmp_path):
    model_dir, tflite_dir = str(tmp_path / "m"), str(tmp_path / "m" / "tflite")
    assert layout.resolve_version([model_dir, tflite_dir]) == 1
    _version_dir(model_dir, 1)
    _version_dir(tflite_dir, 4)
    os.makedirs(os.path.join(model_dir, ".tmp-7-abc"))  # a crashed export's debris
    assert layout.resolve_version([model_dir, tflite_dir]) == 5
    assert layout.resolve_version([model_dir]) == 2
    with pytest.raises(TfvaeError, match="version 1 already exists"):
        layout.resolve_version([model_dir], version=1)
    assert layout.resolve_version([model_dir], version=1, overwrite=True) == 1
    with pytest.raises(TfvaeError, match="Received: version=0"):
        layout.resolve_version([model_dir], version=0)


def test_run_directories_are_not_model_directories(tmp_path):
    run = tmp_path / "saved_models" / "run"
    run.mkdir(parents=True)
    (run / "model.keras").write_bytes(b"")
    with pytest.raises(TfvaeError, match="training run directory"):
        layout.check_model_dir(str(run))
    with pytest.raises(TfvaeError, match="inside the run directory"):
        layout.check_model_dir(str(run / "sub"), run_dir=str(run))


def test_model_config_lists_every_served_model(tmp_path):
    _version_dir(str(tmp_path / "b-model"), 2)
    _version_dir(str(tmp_path / "a.model"), 1)
    (tmp_path / "empty").mkdir()  # no version: not served
    (tmp_path / "run").mkdir()
    path = layout.write_model_config(str(tmp_path), server_base_path="/models/")
    assert path == str(tmp_path / "models.config")
    # Written through a temporary file, which is gone.
    assert sorted(os.listdir(tmp_path)) == ["a.model", "b-model", "empty", "models.config", "run"]
    assert (tmp_path / "models.config").read_text() == (
        "model_config_list {\n"
        "  config {\n"
        '    name: "a.model"\n'
        '    base_path: "/models/a.model"\n'
        '    model_platform: "tensorflow"\n'
        "  }\n"
        "  config {\n"
        '    name: "b-model"\n'
        '    base_path: "/models/b-model"\n'
        '    model_platform: "tensorflow"\n'
        "  }\n"
        "}\n"
    )


def test_model_config_parses_as_tf_serving_model_server_config(tmp_path):
    """TF Serving reads models.config with this proto; the server itself can't run here."""
    model_server_config_pb2 = pytest.importorskip(
        "tensorflow_serving.config.model_server_config_pb2"
    )
    from google.protobuf import text_format

    _version_dir(str(tmp_path / "vae"), 1)
    layout.write_model_config(str(tmp_path), server_base_path='/odd "path"')
    config = text_format.Parse(
        (tmp_path / "models.config").read_text(), model_server_config_pb2.ModelServerConfig()
    )
    (entry,) = config.model_config_list.config
    assert (entry.name, entry.base_path, entry.model_platform) == (
        "vae",
        '/odd "path"/vae',
        "tensorflow",
    )
