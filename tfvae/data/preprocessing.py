"""The transform from stored values to what a model sees, decided once per run.

Every source gives raw arrays (uint8 pixels, floats, table columns); this
module arranges their axes, scales them and binarizes them, and describes
what it did as a JSON-ready record (`Preprocessing.to_dict`) that the run
directory keeps (`preprocessing.json`) and exports name, so evaluation,
export and clients apply the very same transform:

    model input = (raw - offset) / divisor            (per channel or feature)
    then, when binarized, 1 where that is > threshold, else 0

Scales (`--scale`):

- `auto`: tables are standardised; booleans pass as 0 and 1; integers are
  divided by 255 (by their training maximum when that is above 255);
  images stored as floats in [0, 255] (a maximum above 1) are divided by
  255; other floats pass unchanged.
- `none`: values pass unchanged; `255`: divided by 255.
- `minmax`: mapped to [0, 1] with the training split's minimum and maximum;
  `standard`: the training split's mean and standard deviation. Both per
  channel for images, per feature for vectors and tables.

Binarization happens when asked (`binarize=True`) or, with
`binarize="auto"`, only for single-channel images (or vectors that are not a
table) whose scaled values all lie in [0, 1]; never for colour or tabular
data.
"""

import dataclasses

import numpy as np

from tfvae import checks
from tfvae.errors import TfvaeError

SCALES = ("auto", "none", "255", "minmax", "standard")
BINARIZE_THRESHOLD = 0.5
# Channel counts an image's last (or, channels-first, second) axis holds.
CHANNEL_COUNTS = (1, 3, 4)
FLOAT32_MAX = float(np.finfo(np.float32).max)
# A spread below this is treated as constant, so a constant column is not divided by ~0.
MIN_SPREAD = 1e-12


@dataclasses.dataclass
class Preprocessing:
    """What was done to the stored values: axes, scale, threshold.

    Args:
        scale: str. The scale applied (never `"auto"`: auto is resolved).
        offset: list of float. Subtracted, one value per channel/feature or one for all.
        divisor: list of float. Then divided by, likewise.
        binarize_threshold: float or None. Then thresholded there.
        channels_first: bool. The stored images were `(N, C, H, W)`, transposed.
        channel_axis_added: bool. The stored images were `(N, H, W)`.
        source: str. The kind of source (`"array file"`, `"image folder"`, ...).
        input_dtype: str. The stored values' dtype.
    """

    scale: str
    offset: list
    divisor: list
    binarize_threshold: float | None = None
    channels_first: bool = False
    channel_axis_added: bool = False
    source: str = ""
    input_dtype: str = ""

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data):
        if not isinstance(data, dict):
            raise TfvaeError(f"a preprocessing record must be a JSON object. Received: {data!r}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise TfvaeError(
                f"unknown preprocessing keys {unknown}; expected some of {sorted(names)}"
            )
        return cls(**data)

    def describe(self):
        """One line: what a client must do to raw values before the model."""
        steps = []
        if self.channels_first:
            steps.append("transpose (N, C, H, W) to (N, H, W, C)")
        if self.channel_axis_added:
            steps.append("add a channel axis")
        if self.scale == "255":
            steps.append("divide by 255")
        elif self.scale != "none":
            steps.append(
                f"{self.scale} scaling: subtract {_short(self.offset)}, divide by {_short(self.divisor)}"
            )
        if self.binarize_threshold is not None:
            steps.append(f"binarize at {self.binarize_threshold:g}")
        return "; ".join(steps) if steps else "values used as stored"

    def apply(self, x, where="data"):
        """The model's input for raw values `x` (axes already arranged)."""
        x = as_float32(x, where)
        offset = np.asarray(self.offset, np.float32)
        divisor = np.asarray(self.divisor, np.float32)
        if offset.size > 1 and offset.size != x.shape[-1]:
            raise TfvaeError(
                f"{where} has {x.shape[-1]} channels or features, but the run's preprocessing "
                f"holds statistics of {offset.size}; the data set has changed since the run"
            )
        x = (x - offset) / divisor
        if self.binarize_threshold is not None:
            x = (x > self.binarize_threshold).astype(np.float32)
        return x.astype(np.float32)


def _short(values):
    if len(values) > 4:
        return f"{len(values)} per-channel/feature values (preprocessing.json)"
    values = [round(float(v), 4) for v in values]
    return f"{values[0]:g}" if len(values) == 1 else str(values)


def as_float32(x, where="data"):
    """`x` as float32; refuses values a float32 cannot hold (a float64 of 1e300 would be Inf)."""
    if x.dtype == np.float32:
        return x
    with np.errstate(over="ignore"):
        cast = x.astype(np.float32)
    if np.issubdtype(x.dtype, np.floating) and not np.all(np.isfinite(cast)):
        if not np.all(np.isfinite(x)):
            bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
            raise TfvaeError(f"{where} contains {bad} NaN or Inf values; clean the data first")
        overflowed = int(np.size(cast) - np.count_nonzero(np.isfinite(cast)))
        raise TfvaeError(
            f"{where} holds {overflowed} values beyond float32's range (|value| <= "
            f"{FLOAT32_MAX:.4g}), which would become Inf. Received a largest magnitude of "
            f"{float(np.max(np.abs(x))):.4g}"
        )
    return cast


def arrange_axes(x, channels_first=False, where="data"):
    """`(x, channels_first, channel_axis_added)`: images as `(N, H, W, C)`.

    `(N, H, W)` gets a channel axis. `(N, C, H, W)` is transposed when
    `channels_first`; without it, an array whose second axis looks like
    channels (1, 3 or 4) and whose last does not is refused with a hint.
    """
    if channels_first:
        if x.ndim != 4:
            raise TfvaeError(
                f"--channels-first needs images of shape (N, channels, height, width). "
                f"Received: {where} of shape {x.shape}"
            )
        return np.transpose(x, (0, 2, 3, 1)), True, False
    if x.ndim == 3:
        return x[..., np.newaxis], False, True
    if x.ndim == 4 and x.shape[1] in CHANNEL_COUNTS and x.shape[3] not in CHANNEL_COUNTS:
        raise TfvaeError(
            f"{where} holds examples of shape {x.shape[1:]}, which look channels-first "
            "(C, H, W); pass --channels-first to transpose them to (H, W, C), or store them "
            "channels-last"
        )
    return x, False, False


def _reduce_axes(x):
    # Per channel for images, per feature for vectors: every axis but the last.
    return tuple(range(x.ndim - 1))


def resolve(x_train, scale="auto", tabular=False, where="data"):
    """`(scale, offset, divisor)` for `scale`, from the training split only."""
    checks.choice("scale", scale, SCALES)
    if scale == "auto":
        scale = _auto_scale(x_train, tabular, where)
    if scale == "none":
        return "none", [0.0], [1.0]
    if scale == "255":
        return "255", [0.0], [255.0]
    if scale == "max":
        return "max", [0.0], [max(float(np.max(x_train)), 1.0)]
    values = as_float32(x_train, where).astype(np.float64)
    axes = _reduce_axes(values)
    if scale == "minmax":
        low = values.min(axis=axes)
        spread = values.max(axis=axes) - low
    else:
        low = values.mean(axis=axes)
        spread = values.std(axis=axes)
    spread = np.where(spread < MIN_SPREAD, 1.0, spread)
    return scale, [float(v) for v in np.atleast_1d(low)], [float(v) for v in np.atleast_1d(spread)]


def _auto_scale(x, tabular, where):
    if tabular:
        return "standard"
    if x.dtype == np.bool_:
        return "none"
    if np.issubdtype(x.dtype, np.integer):
        if x.size and x.min() < 0:
            raise TfvaeError(f"integer data must be non-negative. Received a minimum of {x.min()}")
        return "255" if x.max() <= 255 else "max"
    if x.ndim >= 3 and x.size:
        low, high = float(np.min(x)), float(np.max(x))
        if low >= 0 and 1 < high <= 255:
            return "255"
    return "none"


def binarizable(x, tabular):
    """Whether `binarize="auto"` binarizes `x` (scaled): one channel, values in [0, 1]."""
    if tabular:
        return False
    one_channel = x.ndim == 2 or (x.ndim == 4 and x.shape[-1] == 1)
    return bool(one_channel and x.size and np.min(x) >= 0 and np.max(x) <= 1)


def preprocess_parts(
    parts,
    scale="auto",
    binarize=False,
    channels_first=False,
    tabular=False,
    source="",
    stored=None,
    name="data",
):
    """Arranges, scales and binarizes the `x_*` arrays of `parts` in place; returns the record.

    Args:
        parts: dict with `x_train`, `x_val`, `x_test` (raw arrays).
        scale: str. One of `SCALES`. Defaults to `"auto"`.
        binarize: bool or `"auto"`. Defaults to `False`.
        channels_first: bool. The images are `(N, C, H, W)`. Defaults to `False`.
        tabular: bool. The data is a table (auto standardises, never binarizes).
        source: str. The kind of source, for the record.
        stored: `Preprocessing` or None. A run's record: applied as it is
            instead of being computed again.
        name: str. The data set's name, for messages.

    Returns:
        The `Preprocessing` applied.
    """
    keys = ("x_train", "x_val", "x_test")
    input_dtype = str(parts["x_train"].dtype)
    flags = None
    for key in keys:
        parts[key], first, added = arrange_axes(parts[key], channels_first, where=f"{name}:{key}")
        flags = flags or (first, added)
    if scale == "auto" and not tabular and np.issubdtype(parts["x_train"].dtype, np.integer):
        # Pixel counts: negative values in any split are a mistake, not a scale.
        for key in keys:
            if parts[key].size and parts[key].min() < 0:
                raise TfvaeError(
                    "integer data must be non-negative. Received a minimum of "
                    f"{parts[key].min()} in {name}:{key}"
                )
    if stored is not None:
        record = stored
    else:
        scale_name, offset, divisor = resolve(parts["x_train"], scale, tabular, f"{name}:x_train")
        record = Preprocessing(
            scale=scale_name,
            offset=offset,
            divisor=divisor,
            channels_first=flags[0],
            channel_axis_added=flags[1],
            source=source,
            input_dtype=input_dtype,
        )
    threshold = record.binarize_threshold
    record.binarize_threshold = None
    for key in keys:
        parts[key] = record.apply(parts[key], where=f"{name}:{key}")
    if stored is None:
        wanted = binarize is True or (
            binarize == "auto" and all(binarizable(parts[key], tabular) for key in keys)
        )
        threshold = BINARIZE_THRESHOLD if wanted else None
    if threshold is not None:
        for key in keys:
            parts[key] = (parts[key] > threshold).astype(np.float32)
    record.binarize_threshold = threshold
    return record
