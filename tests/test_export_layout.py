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


@pytest.mark.parametrize(
    "name",
    [
        "",
        "a b",
        "../up",
        "-dash",
        "x/y",
        7,
        "evil\n",
        "a\tb",
        "mod\u00e8le",
        "\u0661",
        ".",
        "a\x00",
    ],
)
def test_bad_model_names_are_refused_with_the_value(name):
    with pytest.raises(TfvaeError, match="Received: name="):
        layout.check_model_name(name)
    assert not layout.is_model_name(name)


def test_model_names_are_bounded_and_never_the_config_file():
    assert layout.check_model_name("a" * 255) == "a" * 255
    with pytest.raises(TfvaeError, match="at most 255 characters long. Received: a name of 256"):
        layout.check_model_name("a" * 256)
    with pytest.raises(TfvaeError, match="cannot be named models.config"):
        layout.check_model_name("models.config")


def test_versions_are_positive_int64():
    assert layout.check_version(2**63 - 1) == 2**63 - 1
    for bad in (0, -1, 1.0, True, "3"):
        with pytest.raises(TfvaeError, match=r"version must be a positive integer. Received"):
            layout.check_version(bad)
    with pytest.raises(
        TfvaeError, match=r"at most 9223372036854775807 .* version=9223372036854775808"
    ):
        layout.check_version(2**63)


def test_version_directories_are_ascii_int64_numbers(tmp_path):
    model_dir = str(tmp_path / "m")
    for entry in ("\u00b2", "\u0663", "99999999999999999999", "7"):
        os.makedirs(os.path.join(model_dir, entry))
    assert layout.integer_dirs(model_dir) == [7]
    assert layout.resolve_version([model_dir]) == 8
    os.makedirs(os.path.join(model_dir, str(2**63 - 1)))
    with pytest.raises(TfvaeError, match="next free version would be 9223372036854775808"):
        layout.resolve_version([model_dir])


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


def test_unservable_directories_are_left_out_and_the_config_still_parses(tmp_path):
    model_server_config_pb2 = pytest.importorskip(
        "tensorflow_serving.config.model_server_config_pb2"
    )
    from google.protobuf import text_format

    _version_dir(str(tmp_path / "vae"), 1)
    _version_dir(str(tmp_path / "evil\n"), 1)  # written by an older tfvae
    _version_dir(str(tmp_path / "mod\u00e8le"), 1)
    (tmp_path / "models.config").write_text('model_config_list { config { name: "evil\n')
    assert layout.unservable_models(str(tmp_path)) == ["evil\n", "mod\u00e8le"]
    layout.write_model_config(str(tmp_path))
    config = text_format.Parse(
        (tmp_path / "models.config").read_text(), model_server_config_pb2.ModelServerConfig()
    )
    assert [entry.name for entry in config.model_config_list.config] == ["vae"]


@pytest.mark.parametrize(
    "server_base",
    ["/models", "/odd\npath", "/tab\there", 'q"uote\\back', "/mod\u00e8les/\u6a21\u578b"],
)
def test_server_base_paths_are_escaped_for_tf_serving(tmp_path, server_base):
    model_server_config_pb2 = pytest.importorskip(
        "tensorflow_serving.config.model_server_config_pb2"
    )
    from google.protobuf import text_format

    _version_dir(str(tmp_path / "vae"), 1)
    layout.write_model_config(str(tmp_path), server_base_path=server_base)
    text = (tmp_path / "models.config").read_text()
    assert text.isascii() and text.count("\n") == 7
    config = text_format.Parse(text, model_server_config_pb2.ModelServerConfig())
    assert config.model_config_list.config[0].base_path == f"{server_base}/vae"


@pytest.mark.parametrize("server_base", ["", "/bad\udcffbyte", None])
def test_server_base_paths_that_cannot_be_written_are_refused(server_base):
    with pytest.raises(TfvaeError, match="server base path must be"):
        layout.model_config_text(["vae"], server_base)


def test_base_directories_are_checked_before_anything_is_written(tmp_path):
    (tmp_path / "afile").write_text("mine")
    (tmp_path / "base" / "models.config").mkdir(parents=True)
    (tmp_path / "base" / "notes").write_text("mine")
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    for base, name, message in [
        ("", "vae", "--base must name a directory"),
        ("afile", "vae", "--base {root}/afile exists and is not a directory"),
        ("afile/sub", "vae", "cannot write {root}/afile/sub: {root}/afile is not a directory"),
        ("base", "notes", "{root}/base/notes exists and is not a directory"),
        ("base", "vae", "{root}/base/models.config exists and is not a file"),
    ]:
        path = os.path.join(tmp_path, base) if base else ""
        with pytest.raises(TfvaeError) as error:
            layout.check_base_dir(path, name)
        assert message.format(root=tmp_path) in str(error.value)
    layout.check_base_dir(str(tmp_path / "base"), "vae", with_saved_model=False)
    layout.check_base_dir(str(tmp_path / "new" / "deeper"), "vae")
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before
