"""`pack`: a folder of images, a `.npz` / `.npy` file or a tensorflow-datasets data set as TFRecord shards."""

import os

import numpy as np

from tfvae.data import datasets
from tfvae.data import images
from tfvae.data import tfrecords
from tfvae.errors import TfvaeError

PACKABLE = ("image folder", "array file", "tfds")


def read_source(source, image_size=None, color_mode=None, data_dir=None):
    """The raw arrays of `source`: `x`, `y`, `x_test`, `y_test` and `class_names`."""
    kind = datasets.source_kind(source)
    if kind not in PACKABLE:
        raise TfvaeError(
            f"tfvae data pack reads a folder of images, a .npz / .npy file or a "
            f"tensorflow-datasets name. Received: {source}"
        )
    if kind != "image folder" and (image_size is not None or color_mode is not None):
        raise TfvaeError(
            f"--image-size and --color-mode apply to folders of images only. Received: {source}"
        )
    if kind == "image folder":
        x, names, _ = images.load_image_folder(source, image_size, color_mode)
        labels, class_names = datasets.labels_as_classes({"labels": names})
        return dict(x=x, y=labels["labels"], x_test=None, y_test=None, class_names=class_names)
    if kind == "array file":
        return datasets.read_array_source(source)
    return datasets.read_tfds_source(source, data_dir)


def pack(source, out_dir, shards=1, image_size=None, color_mode=None, data_dir=None):
    """Writes `source` as `shards` TFRecord files in the new directory `out_dir`, atomically.

    The values are stored as they are (uint8 images as PNG, other arrays
    raw), so loading the shards gives the source's arrays and labels; a
    source with its own test split keeps it (each record's `split`).

    Args:
        source: str. A folder of images, a `.npz` / `.npy` file or a
            tensorflow-datasets name.
        out_dir: str. A new (or empty) directory.
        shards: int. How many files. Defaults to `1`.
        image_size: tuple `(H, W)` or None. Folders: resize to it.
        color_mode: str or None. Folders: `"rgb"` or `"grayscale"`.
        data_dir: str or None. tensorflow-datasets' data directory.

    Returns:
        The list of files written.
    """
    if not isinstance(shards, int) or isinstance(shards, bool) or shards < 1:
        raise TfvaeError(f"--shards must be a positive integer. Received: {shards!r}")
    if os.path.exists(out_dir) and (not os.path.isdir(out_dir) or os.listdir(out_dir)):
        raise TfvaeError(f"output directory {out_dir} already exists and is not empty")
    raw = read_source(source, image_size, color_mode, data_dir)
    x, y = raw["x"], raw["y"]
    splits = None
    if raw["x_test"] is not None:
        splits = ["train"] * len(x) + ["test"] * len(raw["x_test"])
        x = np.concatenate([x, raw["x_test"]])
        if (y is None) != (raw["y_test"] is None):
            raise TfvaeError(
                f"{source} has labels for one split only; store y_train and y_test, or neither"
            )
        if y is not None:
            y = np.concatenate([y, raw["y_test"]])
    return tfrecords.write_shards(out_dir, x, y, raw["class_names"], splits, shards)
