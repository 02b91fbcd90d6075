"""`shapes2d`: a dSprites-like data set made by the package, with its true factors.

Each example is a binary 32x32 image of one white shape on black, drawn from
five independent factors, each uniform over a grid of values:

| factor | values |
|---|---|
| `shape` | square, ellipse, heart, triangle |
| `scale` | 6 sizes from 0.5 to 1 |
| `orientation` | 10 angles in [0, 2 pi) |
| `position_x`, `position_y` | 16 positions each, from 0.25 to 0.75 of the side (y from the top) |

The images are a pure function of the factors and the factors a pure
function of `(size, seed)`: `shapes2d` is 10,000 examples of seed 0,
`shapes2d:N` is N examples of seed 0, `shapes2d:N:SEED` another draw. The
labels (`y`) are the shapes; `DataSplits.factors` holds the factor indices
of each split, `(n, 5)` int64, for the disentanglement metrics.
"""

import math
import re

import numpy as np

from tfvae.errors import TfvaeError

NAME = "shapes2d"
DEFAULT_SIZE = 10_000
DEFAULT_SEED = 0
# The smallest data set that still fills train, validation and test.
MIN_SIZE = 20
# Generation happens in memory at 4 bytes per pixel: a million examples is 4 GB.
MAX_SIZE = 1_000_000
IMAGE_SIDE = 32
SHAPES = ("square", "ellipse", "heart", "triangle")
FACTOR_NAMES = ("shape", "scale", "orientation", "position_x", "position_y")
FACTOR_SIZES = (len(SHAPES), 6, 10, 16, 16)
SCALE_RANGE = (0.5, 1.0)
POSITION_RANGE = (0.25, 0.75)
# A shape of scale 1 fits a circle of this radius, as a fraction of the side,
# so every shape at every orientation stays inside the image.
RADIUS_AT_SCALE_ONE = 0.2
TEST_FRACTION = 0.2
# Images rendered per block: bounds the float32 coordinate arrays at ~50 MB.
RENDER_BLOCK = 4096
NAME_PATTERN = re.compile(r"^shapes2d(?::(\d+))?(?::(\d+))?$")


def is_shapes2d_name(name):
    """Whether `name` asks for shapes2d (`shapes2d`, `shapes2d:N`, `shapes2d:N:SEED`)."""
    return str(name) == NAME or str(name).startswith(NAME + ":")


def parse_name(name):
    """`(size, seed)` of a shapes2d data set name; raises `TfvaeError` for a bad one."""
    match = NAME_PATTERN.match(str(name))
    if match is None:
        raise TfvaeError(
            "shapes2d takes the form shapes2d, shapes2d:N or shapes2d:N:SEED with whole "
            f"numbers N and SEED. Received: dataset={name!r}"
        )
    size = DEFAULT_SIZE if match.group(1) is None else int(match.group(1))
    seed = DEFAULT_SEED if match.group(2) is None else int(match.group(2))
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise TfvaeError(
            f"shapes2d needs between {MIN_SIZE} and {MAX_SIZE:,} examples. "
            f"Received: dataset={name!r}"
        )
    if seed >= 2**32:
        raise TfvaeError(f"the shapes2d seed must be below 2**32. Received: dataset={name!r}")
    return size, seed


def factor_values(factors):
    """The physical values of factor indices `(n, 5)`: shape index, scale, radians, x, y."""
    factors = np.asarray(factors)
    scale = np.linspace(*SCALE_RANGE, FACTOR_SIZES[1])[factors[:, 1]]
    orientation = (2 * math.pi / FACTOR_SIZES[2]) * factors[:, 2]
    positions = np.linspace(*POSITION_RANGE, FACTOR_SIZES[3])
    return factors[:, 0], scale, orientation, positions[factors[:, 3]], positions[factors[:, 4]]


def sample_factors(size, seed=DEFAULT_SEED):
    """`size` rows of independent uniform factor indices, `(size, 5)` int64."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.integers(0, n, size) for n in FACTOR_SIZES], axis=1).astype(np.int64)


def render(factors, side=IMAGE_SIDE):
    """Binary images `(n, side, side, 1)` float32 of factor indices `(n, 5)`.

    A pixel is on when its centre, taken into the shape's own frame (moved
    to the shape's position, turned back by its orientation, divided by its
    radius), falls inside the unit shape.
    """
    factors = np.asarray(factors, np.int64)
    if factors.ndim != 2 or factors.shape[1] != len(FACTOR_NAMES):
        raise TfvaeError(f"factors must have shape (n, 5). Received: shape={factors.shape}")
    images = np.empty((len(factors), side, side, 1), np.float32)
    centres = (np.arange(side, dtype=np.float32) + 0.5) / side
    for start in range(0, len(factors), RENDER_BLOCK):
        block = factors[start : start + RENDER_BLOCK]
        shape, scale, angle, x, y = (v[:, None, None] for v in factor_values(block))
        radius = RADIUS_AT_SCALE_ONE * scale
        dx = (centres[None, None, :] - x) / radius
        # The shape's own frame has v upwards, against the image rows.
        dy = (y - centres[None, :, None]) / radius
        cos, sin = np.cos(angle), np.sin(angle)
        u = cos * dx + sin * dy
        v = -sin * dx + cos * dy
        inside = np.select(
            [shape == k for k in range(len(SHAPES))],
            [_square(u, v), _ellipse(u, v), _heart(u, v), _triangle(u, v)],
        )
        images[start : start + len(block), ..., 0] = inside
    return images


def _square(u, v):
    # Corners on the unit circle.
    return np.maximum(np.abs(u), np.abs(v)) <= 1 / math.sqrt(2)


def _ellipse(u, v):
    return u**2 + (v / 0.5) ** 2 <= 1


def _heart(u, v):
    # The quartic heart (x^2 + y^2 - 1)^3 <= x^2 y^3, which spans about
    # [-1.14, 1.14] x [-1, 1.25]: shrunk and centred into the unit circle.
    x, y = u * 1.25, v * 1.25 + 0.12
    return (x**2 + y**2 - 1) ** 3 - x**2 * y**3 <= 0


def _triangle(u, v):
    # Equilateral, vertices on the unit circle, one pointing up.
    return (v >= -0.5) & (math.sqrt(3) * u + v <= 1) & (-math.sqrt(3) * u + v <= 1)


def load_shapes2d(name, validation_fraction=0.1):
    """The split arrays of a shapes2d data set name, as `load_dataset` takes them.

    The examples are i.i.d., so the split is by position: the first
    `TEST_FRACTION` test, then `validation_fraction` of the rest validation.

    Returns:
        dict with `x_train`, `x_val`, `x_test`, `y_train`, `y_val`,
        `y_test` (the shape), `factors` (`{"train": ..., "val": ...,
        "test": ...}` of `(n, 5)` int64 indices), `factor_names`,
        `factor_sizes` and `protocol`.
    """
    size, seed = parse_name(name)
    factors = sample_factors(size, seed)
    images = render(factors)
    n_test = int(round(size * TEST_FRACTION))
    n_val = int(round((size - n_test) * validation_fraction))
    if size - n_test - n_val < 1 or (validation_fraction > 0 and n_val < 1):
        raise TfvaeError(
            f"{name} has too few examples ({size}) to split into train, validation and test"
        )
    rows = {
        "test": slice(0, n_test),
        "val": slice(n_test, n_test + n_val),
        "train": slice(n_test + n_val, size),
    }
    parts = {}
    for split, where in rows.items():
        parts[f"x_{split}"] = images[where]
        parts[f"y_{split}"] = factors[where, 0].copy()
    grid = ", ".join(f"{n} x{k}" for n, k in zip(FACTOR_NAMES, FACTOR_SIZES, strict=True))
    protocol = (
        f"shapes2d: {size:,} procedurally drawn {IMAGE_SIDE}x{IMAGE_SIDE} binary images of seed "
        f"{seed} (factors {grid}); "
        f"first {TEST_FRACTION:.0%} test, the next {validation_fraction:.0%} of the rest validation"
    )
    return {
        **parts,
        "factors": {split: factors[where] for split, where in rows.items()},
        "factor_names": FACTOR_NAMES,
        "factor_sizes": FACTOR_SIZES,
        "protocol": protocol,
    }
