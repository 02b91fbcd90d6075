"""Atomic files and directories (complete or absent, readable under the umask), and the one-writer lock."""

import json
import os
import re
import stat

import pytest

from tfvae.errors import TfvaeError
from tfvae.io import atomic
from tfvae.io import locks


@pytest.fixture
def umask():
    """Sets the process umask for the test (`umask(0o022)`); the old one comes back after."""
    old = os.umask(0o022)
    os.umask(old)
    yield os.umask
    os.umask(old)


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def _fail_renames_from(monkeypatch, prefix):
    """Makes `os.rename` fail for sources whose name starts with `prefix`."""
    rename = os.rename

    def failing(source, target):
        if os.path.basename(source).startswith(prefix):
            raise OSError(28, "No space left on device")
        rename(source, target)

    monkeypatch.setattr(os, "rename", failing)


def test_files_are_written_whole_and_json_is_sorted_and_indented(tmp_path):
    atomic.write_text(tmp_path / "a.txt", "héllo\n")
    atomic.write_bytes(tmp_path / "b.bin", b"\x00\x01")
    atomic.write_json(tmp_path / "c.json", {"b": [1, 2], "a": None})
    assert (tmp_path / "a.txt").read_text(encoding="utf-8") == "héllo\n"
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    assert (tmp_path / "c.json").read_text() == '{\n  "a": null,\n  "b": [\n    1,\n    2\n  ]\n}\n'
    assert atomic.read_json(tmp_path / "c.json") == {"a": None, "b": [1, 2]}
    assert sorted(os.listdir(tmp_path)) == ["a.txt", "b.bin", "c.json"]


def test_a_file_is_replaced_whole_or_left_as_it_was(tmp_path):
    path = tmp_path / "model.keras"
    path.write_text("old")
    for error in (RuntimeError, KeyboardInterrupt):
        with pytest.raises(error):
            with atomic.atomic_file(path) as tmp:
                assert tmp.endswith(".keras") and os.path.dirname(tmp) == str(tmp_path)
                with open(tmp, "w") as f:
                    f.write("half a ne")
                raise error
        assert os.listdir(tmp_path) == ["model.keras"] and path.read_text() == "old"
    with atomic.atomic_file(path) as tmp:
        with open(tmp, "w") as f:
            f.write("new")
    assert os.listdir(tmp_path) == ["model.keras"] and path.read_text() == "new"
    # A write that fails before producing anything leaves no file at all.
    with pytest.raises(TypeError):
        atomic.write_json(tmp_path / "bad.json", {"x": object()})
    assert os.listdir(tmp_path) == ["model.keras"]


def test_staged_dir_appears_complete_or_not_at_all(tmp_path):
    final = tmp_path / "out" / "run"
    with pytest.raises(KeyboardInterrupt):
        with atomic.staged_dir(final) as staging:
            assert os.path.dirname(staging) == str(tmp_path / "out")
            atomic.write_text(os.path.join(staging, "half.txt"), "half")
            raise KeyboardInterrupt
    assert os.listdir(tmp_path / "out") == []

    with atomic.staged_dir(final, prefix=".tmp-mine-") as staging:
        assert os.path.basename(staging).startswith(".tmp-mine-")
        atomic.write_text(os.path.join(staging, "done.txt"), "done")
    assert os.listdir(tmp_path / "out") == ["run"] and os.listdir(final) == ["done.txt"]


def test_staged_dir_takes_an_empty_directory_and_refuses_a_full_one(tmp_path):
    final = tmp_path / "run"
    final.mkdir()
    with atomic.staged_dir(final) as staging:
        atomic.write_text(os.path.join(staging, "new"), "new")
    assert os.listdir(final) == ["new"]
    with pytest.raises(TfvaeError, match="already exists"):
        with atomic.staged_dir(final) as staging:
            atomic.write_text(os.path.join(staging, "newer"), "newer")
    assert os.listdir(tmp_path) == ["run"] and os.listdir(final) == ["new"]


def test_overwrite_replaces_and_a_failed_rename_puts_the_old_directory_back(tmp_path, monkeypatch):
    final = tmp_path / "best"
    final.mkdir()
    (final / "old").write_text("old")
    with atomic.staged_dir(final, overwrite=True) as staging:
        atomic.write_text(os.path.join(staging, "new"), "new")
    assert os.listdir(tmp_path) == ["best"] and os.listdir(final) == ["new"]

    _fail_renames_from(monkeypatch, ".tmp-best-")
    with pytest.raises(TfvaeError, match="cannot rename .* No space left"):
        with atomic.staged_dir(final, overwrite=True) as staging:
            atomic.write_text(os.path.join(staging, "newer"), "newer")
    assert os.listdir(tmp_path) == ["best"] and os.listdir(final) == ["new"]


def test_transaction_commits_two_directories_together(tmp_path):
    saved_model, tflite = tmp_path / "m" / "3", tmp_path / "m" / "tflite" / "3"
    with pytest.raises(KeyboardInterrupt):
        with atomic.Transaction() as transaction:
            transaction.stage(saved_model)
            staging = transaction.stage(tflite)
            (tmp_path / "m" / "tflite" / os.path.basename(staging) / "a.tflite").write_bytes(b"x")
            raise KeyboardInterrupt
    assert os.listdir(tmp_path / "m") == ["tflite"] and os.listdir(tmp_path / "m" / "tflite") == []

    with atomic.Transaction() as transaction:
        for final in (saved_model, tflite):
            atomic.write_text(os.path.join(transaction.stage(final), "new"), str(final))
        transaction.commit()
    assert sorted(os.listdir(tmp_path / "m")) == ["3", "tflite"]
    assert os.listdir(tmp_path / "m" / "tflite") == ["3"]
    assert (saved_model / "new").read_text() == str(saved_model)
    assert (tflite / "new").read_text() == str(tflite)


def test_transaction_commits_nothing_when_one_directory_cannot_be_renamed(tmp_path, monkeypatch):
    first, second = tmp_path / "a" / "1", tmp_path / "b" / "1"
    second.mkdir(parents=True)
    (second / "old").write_text("old")
    # A final name taken without overwrite: refused before anything is renamed.
    with atomic.Transaction(overwrite=False) as transaction:
        transaction.stage(first)
        transaction.stage(second)
        with pytest.raises(TfvaeError, match="already exists"):
            transaction.commit()
    assert os.listdir(tmp_path / "a") == [] and os.listdir(tmp_path / "b") == ["1"]

    # The second rename fails: the first is undone, the replaced directory put back.
    (tmp_path / "a" / "1").mkdir()
    (tmp_path / "a" / "1" / "old").write_text("old")
    _fail_renames_from(monkeypatch, ".tmp-second-")
    with atomic.Transaction(overwrite=True) as transaction:
        atomic.write_text(os.path.join(transaction.stage(first), "new"), "new")
        atomic.write_text(os.path.join(transaction.stage(second, prefix=".tmp-second-"), "new"), "")
        with pytest.raises(TfvaeError, match="cannot rename"):
            transaction.commit()
    for final in (first, second):
        assert os.listdir(final.parent) == ["1"] and os.listdir(final) == ["old"]


def test_move_into_place_renames_a_kept_staging_directory(tmp_path):
    staging = tmp_path / "run.partial" / "run"
    staging.mkdir(parents=True)
    (staging / "model.keras").write_bytes(b"m")
    atomic.move_into_place(staging, tmp_path / "run")
    assert sorted(os.listdir(tmp_path)) == ["run", "run.partial"]
    assert os.listdir(tmp_path / "run") == ["model.keras"]


@pytest.mark.parametrize("mask,file_mode,dir_mode", [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700)])
def test_files_and_directories_get_the_modes_of_the_umask(
    tmp_path, umask, mask, file_mode, dir_mode
):
    umask(mask)
    atomic.write_json(tmp_path / "config.json", {})
    with atomic.atomic_file(tmp_path / "model.keras") as tmp:
        assert _mode(tmp) == file_mode
        with open(tmp, "wb") as f:
            f.write(b"model")
    with atomic.staged_dir(tmp_path / "out" / "run") as staging:
        assert _mode(staging) == dir_mode
        atomic.write_text(os.path.join(staging, "notes.txt"), "notes")
    with atomic.Transaction() as transaction:
        transaction.stage(tmp_path / "m" / "1")
        transaction.commit()
    for name in ("config.json", "model.keras", os.path.join("out", "run", "notes.txt")):
        assert _mode(tmp_path / name) == file_mode, name
    for name in ("out", os.path.join("out", "run"), "m", os.path.join("m", "1")):
        assert _mode(tmp_path / name) == dir_mode, name


def test_read_json_errors_are_one_line(tmp_path):
    with pytest.raises(TfvaeError, match="missing file .*absent.json"):
        atomic.read_json(tmp_path / "absent.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(TfvaeError, match="cannot read .*bad.json") as error:
        atomic.read_json(tmp_path / "bad.json")
    assert "\n" not in str(error.value)
    (tmp_path / "latin1.json").write_bytes(b'{"a": "\xe9"}')
    with pytest.raises(TfvaeError, match="cannot read .*latin1.json"):
        atomic.read_json(tmp_path / "latin1.json")


def test_timestamped_names():
    assert re.fullmatch(r"\d{8}-\d{6}", atomic.timestamp())
    assert re.fullmatch(atomic.TIMESTAMP_PATTERN, atomic.timestamp())
    path = atomic.timestamped_dir("saved_models", "vae", "digits", "dense", "z2")
    assert re.fullmatch(r"saved_models/vae-digits-dense-z2-\d{8}-\d{6}", path.replace(os.sep, "/"))


def test_a_trained_run_directory_is_readable_by_other_users(tmp_path, umask):
    from tfvae.training.config import TrainConfig
    from tfvae.training.trainer import train

    umask(0o022)
    out = tmp_path / "run"
    config = TrainConfig(dataset="digits", epochs=1, hidden_units=(32,), latent_dim=2, out=str(out))
    train(config, verbose=0)
    assert _mode(out) == 0o755
    for name in ("model.keras", "config.json", "metrics.json", "history.json"):
        assert _mode(out / name) == 0o644, name
    assert json.loads((out / "config.json").read_text())["latent_dim"] == 2


def test_the_lock_file_is_beside_the_target_names_its_holder_and_goes_away(tmp_path):
    target = tmp_path / "runs" / "new" / "run"
    with locks.exclusive_lock(target):
        with open(locks.lock_path(target)) as f:
            assert f.read() == f"{os.getpid()}\n"
        assert os.listdir(tmp_path / "runs" / "new") == [".tmp-run.lock"]
        # Not re-entrant: a second claim, from this process or another, is refused.
        with pytest.raises(TfvaeError, match=rf"run is being written by process {os.getpid()}$"):
            with locks.exclusive_lock(target):
                pass
        assert os.listdir(tmp_path / "runs" / "new") == [".tmp-run.lock"]
    # The parents it made held nothing else, so they went with the lock file.
    assert os.listdir(tmp_path) == []


def test_a_lock_is_released_and_cleaned_up_when_the_block_fails(tmp_path):
    (tmp_path / "run.partial").mkdir()
    for error in (RuntimeError, KeyboardInterrupt):
        with pytest.raises(error):
            with locks.exclusive_lock(tmp_path / "run"):
                raise error
        assert os.listdir(tmp_path) == ["run.partial"]


def test_a_lock_file_left_by_a_killed_process_is_taken_over(tmp_path):
    target = tmp_path / "run"
    with open(locks.lock_path(target), "w") as f:
        f.write("999999999\n")
    with locks.exclusive_lock(target):
        with open(locks.lock_path(target)) as f:
            assert f.read() == f"{os.getpid()}\n"
    assert os.listdir(tmp_path) == []


def test_claim_dir_checks_before_and_under_the_lock(tmp_path):
    seen = []

    def check(target):
        seen.append(os.path.exists(locks.lock_path(target)))

    with locks.claim_dir(str(tmp_path / "out"), check=check):
        pass
    assert seen == [False, True]
    # A check that fails while another writer holds the lock: the writer is named.
    with locks.exclusive_lock(tmp_path / "out"):
        with pytest.raises(TfvaeError, match="out is being written by process"):
            with locks.claim_dir(str(tmp_path / "out"), check=lambda _: atomic.read_json("x")):
                pass


@pytest.mark.parametrize(
    "target,message",
    [
        ("", "--out must name a directory. Received: --out=''"),
        ("afile/sub", "cannot write afile/sub: afile is not a directory"),
        ("afile/sub/deeper", "cannot write afile/sub/deeper: afile is not a directory"),
        ("dead", "--out dead is a symbolic link (to nowhere)"),
        ("dead/", "--out dead/ is a symbolic link (to nowhere)"),
        ("hollow/..", "--out hollow/.. cannot be renamed into place"),
        ("/proc/tfvae-run", "cannot write /proc/tfvae-run: cannot create files in /proc"),
        ("/sys/tfvae-run", "cannot write /sys/tfvae-run: cannot create files in /sys"),
    ],
)
def test_unwritable_targets_are_refused_in_one_line(tmp_path, monkeypatch, target, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("a file")
    os.symlink("nowhere", tmp_path / "dead")
    (tmp_path / "hollow").mkdir()
    with pytest.raises(TfvaeError) as error:
        with locks.claim_dir(target):
            pass
    assert message in str(error.value) and "\n" not in str(error.value)
    assert sorted(os.listdir(tmp_path)) == ["afile", "dead", "hollow"]


def test_the_atomic_writer_refuses_an_unwritable_directory_in_one_line(tmp_path):
    (tmp_path / "afile").write_text("a file")
    with pytest.raises(TfvaeError, match="cannot write .*afile/sub/run: Not a directory"):
        with atomic.staged_dir(tmp_path / "afile" / "sub" / "run"):
            pass
    with pytest.raises(TfvaeError, match="cannot create files in /proc"):
        atomic.write_json("/proc/tfvae.json", {})
