"""The presets that ship inside the package, and where a preset name, path or handle points."""

import dataclasses
import importlib.resources
import os

from tfvae import memory
from tfvae.errors import TfvaeError
from tfvae.presets import hubs
from tfvae.presets.preset_files import PRESET_FILES
from tfvae.presets.preset_files import read_metadata

# `tfvae/presets/assets/<name>/` holds the shipped preset `<name>`.
SHIPPED_ASSETS = "assets"


@dataclasses.dataclass(frozen=True)
class PresetInfo:
    """One shipped preset, as `tfvae presets` lists it.

    Attributes:
        name: str. What `from_preset` takes.
        family: str or None. The registered model family.
        class_name: str. The model class.
        description: str. One line.
        data: str or None. The data set it was trained on.
        parameters: int. Its number of weights.
        size_bytes: int. The preset's files on disk.
        weights_dtype: str. `"float16"` or `"float32"`.
        test_metric: dict or None. `{"name", "value", "unit"}` on the test split.
        path: str. Its directory.
    """

    name: str
    family: str | None
    class_name: str
    description: str
    data: str | None
    parameters: int
    size_bytes: int
    weights_dtype: str
    test_metric: dict | None
    path: str


def shipped_root():
    """The directory holding the shipped presets."""
    return os.fspath(importlib.resources.files("tfvae.presets").joinpath(SHIPPED_ASSETS))


def shipped_names():
    """The names of the shipped presets, sorted."""
    root = shipped_root()
    if not os.path.isdir(root):
        return ()
    return tuple(
        sorted(
            entry
            for entry in os.listdir(root)
            if all(os.path.isfile(os.path.join(root, entry, name)) for name in PRESET_FILES)
        )
    )


def list_presets():
    """The shipped presets, as a list of `PresetInfo` sorted by name.

    Example:

    >>> [info.name for info in list_presets()]
    ['ae_dense_mnist5k', 'vae_conv_mnist5k', 'vae_dense_mnist5k']
    """
    infos = []
    for name in shipped_names():
        path = os.path.join(shipped_root(), name)
        metadata = read_metadata(path, name)
        infos.append(
            PresetInfo(
                name=name,
                family=metadata.get("family"),
                class_name=str(metadata.get("class_name")),
                description=str(metadata.get("description", "")),
                data=(metadata.get("training") or {}).get("dataset"),
                parameters=int(metadata.get("parameter_count", 0)),
                size_bytes=preset_size(path),
                weights_dtype=metadata["weights_dtype"],
                test_metric=metadata.get("test_metric"),
                path=path,
            )
        )
    return infos


def preset_size(path):
    """The bytes of every file of the preset directory `path`."""
    return sum(
        os.path.getsize(os.path.join(folder, name))
        for folder, _, names in os.walk(path)
        for name in names
    )


def format_presets(infos):
    """`list_presets()` as the table `tfvae presets` prints."""
    header = ("name", "family", "data", "size", "test metric", "description")
    rows = [
        (
            info.name,
            info.family or info.class_name,
            info.data or "-",
            f"{memory.format_bytes(info.size_bytes)} ({info.parameters:,} {info.weights_dtype})",
            _metric_text(info.test_metric),
            info.description,
        )
        for info in infos
    ]
    # Every column padded to its widest cell but the last, the description.
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    widths[-1] = 0
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in (header, *rows)
    )


def _metric_text(metric):
    if not metric:
        return "-"
    name = metric["name"] + (f" (K={metric['samples']})" if metric.get("samples") else "")
    return f"{name} {metric['value']:.4g} {metric['unit']}"


def locate(source):
    """Returns `(directory, where)`: the preset `source` names, and how messages name it.

    `source` is, in this order: a hub handle (`hf://owner/repo`,
    `kaggle://...`, downloaded); the name of a shipped preset; a directory.
    A directory that shares a shipped preset's name is reached as
    `./<name>`.
    """
    if not isinstance(source, (str, os.PathLike)):
        raise TfvaeError(
            "a preset is a shipped name, a directory or a hub handle. "
            f"Received: {source!r} of type {type(source).__name__}"
        )
    source = os.fspath(source)
    if hubs.is_handle(source):
        return hubs.download(source), source
    if source in shipped_names():
        return os.path.join(shipped_root(), source), source
    if os.path.isdir(source):
        return source, source
    if os.path.exists(source):
        raise TfvaeError(
            f"preset {source} is a file; a preset is a directory holding {', '.join(PRESET_FILES)}"
        )
    raise TfvaeError(
        f"no preset {source!r}: neither a shipped preset ({', '.join(shipped_names()) or 'none'}; "
        "tfvae presets lists them) nor a directory"
    )
