import io
import re
import time
import zipfile

import numpy as np
import pytest

from tfvae.data import datasets as data_module
from tfvae.data.datasets import load_dataset
from tfvae.data.datasets import ordered_stratified_split
from tfvae.errors import TfvaeError


def test_mnist5k_split_is_stratified_and_deterministic(mnist5k_binary):
    d = mnist5k_binary
    assert d.x_train.shape == (3600, 28, 28, 1)
    assert d.x_val.shape == (400, 28, 28, 1) and d.x_test.shape == (1000, 28, 28, 1)
    assert np.bincount(d.y_train).tolist() == [360] * 10
    assert np.bincount(d.y_test).tolist() == [100] * 10
    train, val, test = ordered_stratified_split(np.repeat(np.arange(10), 500), 0.2, 0.1)
    assert test[:100].tolist() == list(range(400, 500))
    assert val[:40].tolist() == list(range(360, 400))
    assert set(d.x_train.ravel().tolist()) == {0.0, 1.0}


def test_grey_levels_scaled_to_unit_interval():
    d = load_dataset("mnist5k")
    assert d.x_train.min() == 0.0 and d.x_train.max() == 1.0
    assert len(np.unique(d.x_train)) > 100
    assert "binarized" not in d.protocol


def test_digits_splits_cover_every_row(digits):
    total = len(digits.x_train) + len(digits.x_val) + len(digits.x_test)
    assert total == 1797 and digits.data_shape == (8, 8, 1)
    assert digits.x_train.max() == 1.0


def test_pipeline_is_batched_shuffled_by_seed_and_complete(digits):
    first = np.concatenate(list(digits.pipeline("train", 100, seed=1).as_numpy_iterator()))
    again = np.concatenate(list(digits.pipeline("train", 100, seed=1).as_numpy_iterator()))
    np.testing.assert_array_equal(first, again)
    assert first.shape == digits.x_train.shape
    assert not np.array_equal(first, digits.x_train)
    ordered = np.concatenate(list(digits.pipeline("test", 100).as_numpy_iterator()))
    np.testing.assert_array_equal(ordered, digits.x_test)


def test_user_npz_with_labels_and_uint8_pixels(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(200, 6, 6), dtype=np.uint8)
    y = np.repeat(np.arange(4), 50)
    path = tmp_path / "mine.npz"
    np.savez(path, x=x, y=y)
    d = load_dataset(str(path))
    assert d.data_shape == (6, 6, 1)  # (N, H, W) gets a channel axis
    assert len(d.x_train) + len(d.x_val) + len(d.x_test) == 200
    assert np.bincount(d.y_test).tolist() == [10] * 4
    np.testing.assert_allclose(d.x_test[0, ..., 0], x[40] / 255.0, rtol=1e-6)


def test_user_npy_and_explicit_test_split(tmp_path):
    x = np.random.default_rng(0).random((50, 12)).astype(np.float32)
    np.save(tmp_path / "vectors.npy", x)
    d = load_dataset(str(tmp_path / "vectors.npy"))
    assert (len(d.x_train), len(d.x_val), len(d.x_test)) == (36, 4, 10) and d.y_test is None
    np.savez(tmp_path / "split.npz", x_train=x[:40], x_test=x[40:])
    d = load_dataset(str(tmp_path / "split.npz"))
    np.testing.assert_array_equal(d.x_test, x[40:])
    assert len(d.x_train) + len(d.x_val) == 40


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda p: None, "data file not found"),
        (lambda p: p.write_bytes(b"PK\x03\x04 this is not a zip"), "cannot read data file"),
        (lambda p: np.savez(p, x=np.full((20, 4), np.nan)), "contains 80 NaN or Inf values"),
        (lambda p: np.savez(p, x=np.zeros((0, 4))), "is empty"),
        (lambda p: np.savez(p, x=np.zeros(10)), "must have a batch axis"),
        (lambda p: np.savez(p, a=np.zeros((5, 2)), b=np.zeros((5, 2))), "expected 'x'"),
        (lambda p: np.savez(p, x=np.array([["a", "b"]] * 5)), "must hold real numbers"),
        (lambda p: np.savez(p, x=np.zeros((20, 4)), y=np.zeros(3)), "one label per example"),
    ],
)
def test_bad_user_files_raise_clear_errors(tmp_path, make, match):
    path = tmp_path / "bad.npz"
    make(path)
    with pytest.raises(TfvaeError, match=match):
        load_dataset(str(path))


def test_unknown_dataset_names_the_choices():
    with pytest.raises(TfvaeError, match="unknown dataset 'cifar'.*mnist5k"):
        load_dataset("cifar")


def test_tfds_offline_fails_fast_with_a_clear_message(tmp_path, monkeypatch):
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(data_module, "_online", lambda timeout=3.0: False)
    start = time.monotonic()
    with pytest.raises(TfvaeError, match="download server is unreachable.*--dataset mnist5k"):
        load_dataset("fashion_mnist")
    assert time.monotonic() - start < 30


def test_conv_needs_images_and_bernoulli_needs_unit_range(digits, tmp_path):
    np.save(tmp_path / "v.npy", np.random.default_rng(0).random((40, 10)).astype(np.float32))
    vectors = load_dataset(str(tmp_path / "v.npy"))
    with pytest.raises(TfvaeError, match="conv architecture needs images"):
        vectors.check_for("conv", "gaussian")
    np.save(tmp_path / "wide.npy", np.linspace(-1, 3, 400, dtype=np.float32).reshape(40, 10))
    wide = load_dataset(str(tmp_path / "wide.npy"))
    with pytest.raises(TfvaeError, match=r"bernoulli likelihood needs .* \[0, 1\]"):
        wide.check_for("dense", "bernoulli")
    digits.check_for("conv", "bernoulli")


def _forged_npy(shape, dtype="<f8", data=b"\0" * 64):
    """The bytes of a `.npy` file whose header declares `shape` but holds only `data`."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": dtype, "fortran_order": False, "shape": shape}
    )
    return header.getvalue() + data


def test_forged_headers_are_refused_before_anything_is_allocated(tmp_path):
    (tmp_path / "forged.npy").write_bytes(_forged_npy((10**14,)))
    with zipfile.ZipFile(tmp_path / "forged.npz", "w") as archive:
        archive.writestr("x.npy", _forged_npy((10**8, 10**6), "<f4"))
        archive.writestr("y.npy", _forged_npy((10**8,), "<i8"))
    (tmp_path / "short.npy").write_bytes(_forged_npy((1000, 1000)))
    (tmp_path / "objects.npy").write_bytes(_forged_npy((3,), "|O"))
    with zipfile.ZipFile(tmp_path / "text.npz", "w") as archive:
        archive.writestr("readme.txt", "hello")
    for name, message in [
        (
            "forged.npy",
            r"forged.npy:x declares shape \(100000000000000,\) of float64, "
            r"800,000,000,000,000 bytes \(727.6 TiB\), and .* of memory available",
        ),
        (
            "forged.npz",
            r"forged.npz:x declares shape \(100000000, 1000000\) of float32, "
            r"400,000,000,000,000 bytes",
        ),
        (
            "short.npy",
            r"short.npy:x declares shape \(1000, 1000\) of float64, 8,000,000 bytes, "
            r"but holds 64 bytes of data",
        ),
        ("objects.npy", "objects.npy:x holds Python objects"),
        ("text.npz", "its member 'readme.txt' is not a numpy array"),
    ]:
        start = time.monotonic()
        with pytest.raises(TfvaeError, match=message) as error:
            load_dataset(str(tmp_path / name))
        assert "\n" not in str(error.value)
        assert time.monotonic() - start < 5


def test_labels_integers_whole_floats_booleans_and_strings(tmp_path):
    x = np.random.default_rng(0).random((40, 5))
    for y, expected, names in [
        (np.repeat([3, -7], 20), [-7, 3], None),
        (np.repeat([2.0, 5.0], 20), [2, 5], None),
        (np.repeat([True, False], 20), [0, 1], None),
        (np.repeat(["dog", "cat"], 20), [0, 1], ("cat", "dog")),
        (np.repeat([b"n\xe9", b"a"], 20), [0, 1], ("a", "n\u00e9")),
    ]:
        np.savez(tmp_path / "labelled.npz", x=x, y=y)
        data = load_dataset(str(tmp_path / "labelled.npz"))
        assert data.y_train.dtype == np.int64 and data.class_names == names
        assert sorted(np.unique(data.y_test).tolist()) == expected
    # Train and test strings share one set of classes.
    np.savez(
        tmp_path / "split.npz",
        x_train=x,
        y_train=np.repeat(["b", "c"], 20),
        x_test=x[:4],
        y_test=np.array(["a", "c", "c", "a"]),
    )
    data = load_dataset(str(tmp_path / "split.npz"))
    assert data.class_names == ("a", "b", "c")
    assert data.y_test.tolist() == [0, 2, 2, 0] and set(data.y_train.tolist()) == {1, 2}


@pytest.mark.parametrize(
    "y,message",
    [
        (np.where(np.arange(40) == 3, np.nan, 1.0), "y contains 1 NaN or Inf labels"),
        (np.where(np.arange(40) < 2, -np.inf, 1.0), "y contains 2 NaN or Inf labels"),
        (np.full(40, 10**18), "such as 1000000000000000000; labels must be integers with"),
        (np.full(40, -(2**31)), "such as -2147483648"),
        (np.full(40, 1e300), "such as 1e+300"),
        (np.arange(40) / 4, "holds 30 labels that are not whole numbers, such as 0.25"),
        (np.zeros(40) * 1j, "y must hold integer, whole-number or string labels"),
        (np.full(40, np.datetime64("2020-01-01")), "Received dtype=datetime64"),
    ],
)
def test_bad_labels_are_refused_with_the_value(tmp_path, y, message):
    np.savez(tmp_path / "bad.npz", x=np.random.default_rng(0).random((40, 5)), y=y)
    with pytest.raises(TfvaeError, match=re.escape(message)):
        load_dataset(str(tmp_path / "bad.npz"))


def test_labels_all_strings_or_all_numbers(tmp_path):
    x = np.random.default_rng(0).random((40, 5))
    np.savez(
        tmp_path / "mixed.npz",
        x_train=x,
        y_train=np.repeat(["a", "b"], 20),
        x_test=x[:4],
        y_test=np.zeros(4),
    )
    with pytest.raises(TfvaeError, match="labels must all be strings or all be numbers"):
        load_dataset(str(tmp_path / "mixed.npz"))


def test_values_beyond_float32_are_refused_after_the_cast(tmp_path):
    x = np.random.default_rng(0).random((40, 5))
    x[4, 2] = -1e300
    x[7, 1] = 1e39
    np.save(tmp_path / "huge.npy", x)
    with pytest.raises(
        TfvaeError,
        match=re.escape(
            "huge.npy:x holds 2 values beyond float32's range (|value| <= 3.403e+38), "
            "which would become Inf. Received a largest magnitude of 1e+300"
        ),
    ):
        load_dataset(str(tmp_path / "huge.npy"))
    x[4, 2], x[7, 1] = 3e38, -3e38  # within float32's range
    np.save(tmp_path / "large.npy", x)
    assert np.isfinite(load_dataset(str(tmp_path / "large.npy")).x_train).all()


def test_boolean_arrays_are_binary_data(tmp_path):
    x = np.random.default_rng(0).random((40, 8, 8, 1)) > 0.5
    np.savez(tmp_path / "bits.npz", x=x)
    data = load_dataset(str(tmp_path / "bits.npz"))
    assert data.x_train.dtype == np.float32
    assert set(np.unique(data.x_train).tolist()) == {0.0, 1.0}
    assert sum(len(a) for a in (data.x_train, data.x_val, data.x_test)) == 40
    data.check_for("conv", "bernoulli")


def test_auto_binarization_keeps_the_bundled_digits_and_spares_colour(tmp_path):
    # "auto" (a VAE with no --binarize flag) binarizes single-channel data in [0, 1] only.
    auto = load_dataset("digits", binarize="auto")
    asked = load_dataset("digits", binarize=True)
    assert auto.binarized and asked.binarized
    np.testing.assert_array_equal(auto.x_train, asked.x_train)
    assert auto.protocol == asked.protocol
    rgb = np.random.default_rng(0).integers(0, 256, size=(60, 4, 4, 3), dtype=np.uint8)
    np.save(tmp_path / "rgb.npy", rgb)
    colour = load_dataset(str(tmp_path / "rgb.npy"), binarize="auto")
    assert not colour.binarized and colour.preprocessing.scale == "255"
    assert float(colour.x_train.max()) <= 1.0 and len(np.unique(colour.x_train)) > 2
