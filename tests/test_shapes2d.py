import math

import numpy as np
import pytest

from tfvae.data import shapes2d
from tfvae.data.datasets import check_dataset_name
from tfvae.data.datasets import load_dataset
from tfvae.errors import TfvaeError

SIDE = shapes2d.IMAGE_SIDE
MIDDLE = shapes2d.FACTOR_SIZES[3] // 2


def one(shape, scale=5, orientation=0, x=MIDDLE, y=MIDDLE):
    return shapes2d.render(np.array([[shape, scale, orientation, x, y]]))[0, ..., 0]


def test_load_gives_the_splits_factors_and_labels():
    data = load_dataset("shapes2d:500:1")
    assert data.name == "shapes2d:500:1"
    assert data.data_shape == (SIDE, SIDE, 1)
    assert (len(data.x_test), len(data.x_val), len(data.x_train)) == (100, 40, 360)
    assert set(np.unique(data.x_train)) == {0.0, 1.0}
    assert data.factor_names == shapes2d.FACTOR_NAMES
    assert data.factor_sizes == (4, 6, 10, 16, 16)
    for split in ("train", "val", "test"):
        x, y = data.arrays(split)
        factors = data.factors[split]
        assert factors.shape == (len(x), 5) and factors.dtype == np.int64
        assert np.all(factors >= 0) and np.all(factors < np.array(data.factor_sizes))
        np.testing.assert_array_equal(y, factors[:, 0])
        # The images are the rendering of their factors.
        np.testing.assert_array_equal(x, shapes2d.render(factors))
    # Every value of every factor turns up, about uniformly.
    all_factors = np.concatenate(list(data.factors.values()))
    for k, size in enumerate(data.factor_sizes):
        counts = np.bincount(all_factors[:, k], minlength=size)
        assert counts.min() > 0.4 * 500 / size


def test_size_and_seed_set_the_data_and_nothing_else_does():
    first = load_dataset("shapes2d:200", seed=1)
    again = load_dataset("shapes2d:200:0", seed=7)
    np.testing.assert_array_equal(first.x_train, again.x_train)
    np.testing.assert_array_equal(first.factors["test"], again.factors["test"])
    other = load_dataset("shapes2d:200:5")
    assert not np.array_equal(first.factors["train"], other.factors["train"])
    assert shapes2d.parse_name("shapes2d") == (shapes2d.DEFAULT_SIZE, 0)


@pytest.mark.parametrize(
    "name, message",
    [
        ("shapes2d:5", "between 20 and 1,000,000 examples"),
        ("shapes2d:2000000", "between 20 and 1,000,000 examples"),
        ("shapes2d:ten", "shapes2d:N or shapes2d:N:SEED"),
        ("shapes2d:100:1:2", "shapes2d:N or shapes2d:N:SEED"),
        ("shapes2d:-100", "shapes2d:N or shapes2d:N:SEED"),
        ("shapes2d:100:99999999999", "seed must be below 2\\*\\*32"),
    ],
)
def test_bad_names_are_refused_in_one_line(name, message):
    with pytest.raises(TfvaeError, match=message) as raised:
        check_dataset_name(name)
    assert "\n" not in str(raised.value)


def test_each_shape_covers_its_area():
    # At scale 1 the shapes fit a circle of radius r = 0.2 * side pixels.
    r = shapes2d.RADIUS_AT_SCALE_ONE * SIDE
    areas = {
        "square": 2 * r**2,
        "ellipse": math.pi * r * (0.5 * r),
        "triangle": 3 * math.sqrt(3) / 4 * r**2,
    }
    for name, area in areas.items():
        pixels = one(shapes2d.SHAPES.index(name)).sum()
        assert pixels == pytest.approx(area, rel=0.12), name
    heart = one(shapes2d.SHAPES.index("heart")).sum()
    assert 0.4 * math.pi * r**2 < heart < math.pi * r**2
    # Area grows with the square of the scale: 0.5 -> 1 is four times.
    small = one(0, scale=0).sum()
    assert one(0).sum() / small == pytest.approx(4.0, rel=0.25)


def test_position_moves_the_shape_and_orientation_turns_it():
    for shape in range(4):
        image = one(shape, x=2, y=13)
        rows, cols = np.nonzero(image)
        positions = np.linspace(*shapes2d.POSITION_RANGE, 16)
        assert (cols.mean() + 0.5) / SIDE == pytest.approx(positions[2], abs=0.04)
        # position_y counts from the top, as image rows do.
        assert (rows.mean() + 0.5) / SIDE == pytest.approx(positions[13], abs=0.06)
    # Half a turn (orientation 5 of 10) is a point reflection about the centre:
    # the shape at (x, y) turned by pi is the image, rotated by 180 degrees, of
    # the unturned shape at the mirrored position (15 - x, 15 - y).
    for shape in range(4):
        turned = one(shape, orientation=5, x=4, y=9)
        mirrored = np.rot90(one(shape, orientation=0, x=11, y=6), 2)
        assert np.sum(turned != mirrored) <= 2, shapes2d.SHAPES[shape]
    # Unturned, the ellipse lies flat; turned by 0.4 pi, it stands.
    rows, cols = np.nonzero(one(1))
    assert np.ptp(cols) > 1.8 * np.ptp(rows)
    rows, cols = np.nonzero(one(1, orientation=2))
    assert np.ptp(rows) > 1.5 * np.ptp(cols)


def test_factor_values_are_the_documented_grids():
    factors = np.array([[0, 0, 0, 0, 0], [3, 5, 9, 15, 15]])
    shape, scale, angle, x, y = shapes2d.factor_values(factors)
    np.testing.assert_array_equal(shape, [0, 3])
    np.testing.assert_allclose(scale, [0.5, 1.0])
    np.testing.assert_allclose(angle, [0.0, 2 * math.pi * 9 / 10])
    np.testing.assert_allclose(x, [0.25, 0.75])
    np.testing.assert_allclose(y, [0.25, 0.75])
    with pytest.raises(TfvaeError, match=r"factors must have shape \(n, 5\)"):
        shapes2d.render(np.zeros((3, 4), np.int64))
