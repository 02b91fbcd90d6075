"""Real colour pixels for the tests: square patches of scikit-learn's two sample photos.

`sklearn.datasets.load_sample_images()` ships two 427x640 RGB photos
(`china.jpg`, `flower.jpg`) with scikit-learn, so these patches need no
download. Patches are cut on a grid with overlap; the test patches come
from the right-most columns of each photo and share no pixel with the
training patches (held out by position, not at random).

Run it to write a data set for `tfvae train`:

    python tests/colour_patches.py --size 32 --out patches32.npz
    tfvae train --dataset patches32.npz --arch conv --likelihood discretized_logistic
"""

import argparse
import os
import sys

import numpy as np
from sklearn.datasets import load_sample_images

# The right-most columns of each photo hold the test patches.
TEST_COLUMNS = 128


def sample_image_patches(size=32, stride=8, test_stride=None, limit=None):
    """Patches of the sample photos as uint8 arrays `(x_train, x_test)`, `[n, size, size, 3]`.

    Args:
        size: int. Side of a patch in pixels. Defaults to `32`.
        stride: int. Step between the training patches (overlap when below
            `size`). Defaults to `8`.
        test_stride: int or None. Step between the test patches. Defaults
            to `size` (no overlap among them).
        limit: int or None. Keep at most this many training patches, evenly
            spread. Defaults to `None` (all).
    """
    test_stride = size if test_stride is None else test_stride
    train, test = [], []
    for photo in load_sample_images().images:
        height, width, _ = photo.shape
        split = width - TEST_COLUMNS
        for top in range(0, height - size + 1, stride):
            for left in range(0, split - size + 1, stride):
                train.append(photo[top : top + size, left : left + size])
        for top in range(0, height - size + 1, test_stride):
            for left in range(split, width - size + 1, test_stride):
                test.append(photo[top : top + size, left : left + size])
    x_train, x_test = np.stack(train), np.stack(test)
    if limit is not None and len(x_train) > limit:
        x_train = x_train[np.linspace(0, len(x_train) - 1, limit).astype(int)]
    return x_train.astype(np.uint8), x_test.astype(np.uint8)


def write_patches(path, size=32, stride=8, limit=None, as_floats=True):
    """Writes `x_train` and `x_test` to the `.npz` at `path`; returns their shapes.

    `as_floats` stores `k / 255` as float32 (8-bit levels scaled to [0, 1]);
    otherwise the uint8 levels themselves.
    """
    x_train, x_test = sample_image_patches(size, stride, limit=limit)
    if as_floats:
        x_train = x_train.astype(np.float32) / 255.0
        x_test = x_test.astype(np.float32) / 255.0
    np.savez(path, x_train=x_train, x_test=x_test)
    return x_train.shape, x_test.shape


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=32, help="Patch side. Default: 32")
    parser.add_argument("--stride", type=int, default=8, help="Training stride. Default: 8")
    parser.add_argument("--limit", type=int, default=None, help="At most this many train patches")
    parser.add_argument("--uint8", action="store_true", help="Store 0-255 levels, not k/255")
    parser.add_argument("--out", required=True, help="The .npz to write (must not exist)")
    args = parser.parse_args(argv)
    if os.path.exists(args.out):
        parser.error(f"{args.out} exists")
    shapes = write_patches(args.out, args.size, args.stride, args.limit, not args.uint8)
    print(f"wrote {args.out}: x_train {shapes[0]}, x_test {shapes[1]}")


if __name__ == "__main__":
    sys.exit(main())
