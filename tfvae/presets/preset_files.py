"""A preset on disk: a model's config, weights and metadata, in keras-hub's layout.

A preset is a directory:

    config.json        the model, as `keras.saving.serialize_keras_object` writes it
    model.weights.h5   its weights: float32, or float16 to ship them small (loaded as float32)
    metadata.json      what it is: format, family, parameter count, the weights' dtype,
                       each file's size and SHA-256, the training config, test metrics
    assets/            optional extra files (the shipped presets keep their training history)

`save_to_preset` writes one atomically (`tfvae.io.atomic`); `load_preset`
reads one back under the rules of a `.keras` file (`tfvae.io.model_files`):
classes are resolved from Keras's registry with `safe_mode=True`, a config
describing more weights than the weights file holds is refused before
anything is built, and every saved array must have been restored into the
model. Each refusal is one line naming the preset.
"""

import datetime
import hashlib
import os
import re
import warnings

import h5py
import keras
import numpy as np
import tensorflow as tf

from tfvae import checks
from tfvae import memory
from tfvae.errors import TfvaeError
from tfvae.io.atomic import read_json
from tfvae.io.atomic import staged_dir
from tfvae.io.atomic import write_bytes
from tfvae.io.atomic import write_json
from tfvae.io.locks import check_target
from tfvae.io.model_files import OPTIMIZER_GROUP
from tfvae.io.model_files import unrestored_h5_weights
from tfvae.models import registry
from tfvae.models.base import PresetMixin
from tfvae.training.config import TrainConfig
from tfvae.training.runs import check_saved_model_size

FORMAT = "tfvae-preset"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.weights.h5"
METADATA_FILE = "metadata.json"
ASSETS_DIR = "assets"
# The files every preset holds; `assets/` is optional.
PRESET_FILES = (CONFIG_FILE, WEIGHTS_FILE, METADATA_FILE)
# The files whose size and SHA-256 `metadata.json` records.
CHECKED_FILES = (CONFIG_FILE, WEIGHTS_FILE)
WEIGHTS_DTYPES = ("float32", "float16")
# config.json and metadata.json take a few KB; anything near this is not a preset's.
MAX_JSON_BYTES = 1 << 22
HASH_CHUNK = 1 << 20
ASSET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
# The headline test metric, best first: -log p(x) where the family bounds it.
HEADLINE_METRICS = (
    ("nll", "nats/example"),
    ("neg_elbo", "nats/example"),
    ("reconstruction_mse", "per feature"),
)


def family_name(model_class):
    """The registered family whose model class is exactly `model_class`, or `None` (the RBM)."""
    return next((f.name for f in registry.families() if f.model_class is model_class), None)


def headline_metric(metrics):
    """`{"name", "value", "unit"}` of the metric a preset is listed with, or `None`."""
    for name, unit in HEADLINE_METRICS:
        if name in metrics:
            headline = {"name": name, "value": float(metrics[name]), "unit": unit}
            if name == "nll":
                headline["samples"] = int(metrics.get("nll_samples", 0))
            return headline
    return None


def save_to_preset(
    model,
    preset_dir,
    *,
    train_config=None,
    metrics=None,
    description="",
    assets=None,
    weights_dtype="float32",
    overwrite=False,
):
    """Writes `model` as a preset directory: `config.json`, `model.weights.h5`, `metadata.json`.

    The directory appears complete or not at all. Loading it back
    (`from_preset`) gives a model with the same outputs: exactly, with
    float32 weights; with `weights_dtype="float16"` the weights are rounded
    to float16 once, and every later save and load keeps them.

    Args:
        model: a built tfvae model (any registered family, or the `RBM`).
        preset_dir: str. The directory to write; absent or empty unless
            `overwrite`.
        train_config: `TrainConfig` or None. How the model was trained;
            with it, `tfvae export` and `tfvae sample` take the preset like
            a run directory (its data set is known). Defaults to `None`.
        metrics: dict or None. Test metrics of this very model
            (`tfvae.evaluation.metrics.evaluate_model`'s), listed by `tfvae
            presets`. Defaults to `None`.
        description: str. One line for `tfvae presets`. Defaults to `""`.
        assets: dict or None. File name -> bytes or str, written under
            `assets/`. Defaults to `None`.
        weights_dtype: str. `"float32"` or `"float16"`. Defaults to
            `"float32"`.
        overwrite: bool. Replace an existing `preset_dir`. Defaults to
            `False`.

    Returns:
        `preset_dir`.

    Example:

    >>> save_to_preset(vae, "presets/my_vae", train_config=config)
    """
    if not isinstance(model, PresetMixin) or not isinstance(model, keras.Model):
        raise TfvaeError(
            "save_to_preset takes a tfvae model (one of "
            f"{', '.join(f.model_class.__name__ for f in registry.families())} or RBM). "
            f"Received: {type(model).__name__}"
        )
    if not model.built:
        raise TfvaeError(
            f"the {type(model).__name__} is not built, so it has no weights to save; "
            "call it on a batch or model.build(input_shape) first"
        )
    checks.choice("weights_dtype", weights_dtype, WEIGHTS_DTYPES)
    if train_config is not None and not isinstance(train_config, TrainConfig):
        raise TfvaeError(
            "train_config must be a TrainConfig or None. "
            f"Received: train_config of type {type(train_config).__name__}"
        )
    if not isinstance(description, str) or "\n" in description:
        raise TfvaeError(f"description must be one line of text. Received: {description!r}")
    preset_dir = os.fspath(preset_dir)
    check_target(preset_dir, "preset directory")
    if train_config is not None:
        _check_describes(train_config, model)
    assets = _checked_assets(assets)
    model_config = keras.saving.serialize_keras_object(model)
    # A preset holds a model, not a training state: fine-tuning compiles afresh.
    model_config.pop("compile_config", None)
    family = family_name(type(model))
    with staged_dir(preset_dir, overwrite=overwrite) as staging:
        write_json(os.path.join(staging, CONFIG_FILE), model_config)
        _write_weights(model, os.path.join(staging, WEIGHTS_FILE), weights_dtype)
        if assets:
            os.mkdir(os.path.join(staging, ASSETS_DIR))
            for name, data in assets.items():
                write_bytes(os.path.join(staging, ASSETS_DIR, name), data)
        metadata = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "name": os.path.basename(os.path.normpath(os.path.abspath(preset_dir))),
            "description": description,
            "family": family,
            "class_name": type(model).__name__,
            "parameter_count": int(model.count_params()),
            "weights_dtype": weights_dtype,
            "files": {name: _file_record(os.path.join(staging, name)) for name in CHECKED_FILES},
            "versions": {
                "tfvae": _tfvae_version(),
                "keras": keras.__version__,
                "tensorflow": tf.__version__,
            },
            "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S"),
        }
        if train_config is not None:
            metadata["training"] = {**train_config.to_dict(), "out": None}
        if metrics is not None:
            metadata["metrics"] = dict(metrics)
            metadata["test_metric"] = headline_metric(metrics)
        write_json(os.path.join(staging, METADATA_FILE), metadata)
    return preset_dir


def _tfvae_version():
    import tfvae  # the package's own version, read at call time (tfvae imports this module)

    return tfvae.__version__


def _check_describes(train_config, model):
    """Raises unless `train_config` is the config the model was built from."""
    found = registry.model_settings(model)
    found.pop("input_shape", None)
    found.pop("data_shape", None)
    expected = {**train_config.to_dict(), "likelihood": train_config.resolved_likelihood}
    if found.get("arch") != "conv":
        found.pop("filters", None)  # a dense network has none
    differences = [
        f"{name} ({_plain(expected[name])!r} in train_config, {_plain(value)!r} in the model)"
        for name, value in found.items()
        if name in expected and _plain(expected[name]) != _plain(value)
    ]
    if differences:
        raise TfvaeError(f"train_config does not describe the model: {'; '.join(differences)}")


def _plain(value):
    return list(value) if isinstance(value, tuple) else value


def _checked_assets(assets):
    if assets is None:
        return {}
    if not isinstance(assets, dict):
        raise TfvaeError(f"assets must be a dict of file name -> bytes. Received: {assets!r}")
    checked = {}
    for name, data in assets.items():
        if not isinstance(name, str) or not ASSET_NAME.fullmatch(name):
            raise TfvaeError(f"an asset must be named like a plain file. Received: {name!r}")
        if isinstance(data, str):
            data = data.encode("utf-8")
        if not isinstance(data, bytes):
            raise TfvaeError(
                f"asset {name!r} must be bytes or str. Received: {type(data).__name__}"
            )
        checked[name] = data
    return checked


def _write_weights(model, path, weights_dtype):
    """Writes the model's weights to `path` in Keras's `.weights.h5` layout, in `weights_dtype`.

    Keras writes them (float32) beside `path`; they are copied over, float32
    arrays converted to `weights_dtype`, the optimizer's state left out.
    """
    keras_path = f"{path[: -len('.weights.h5')]}-keras.weights.h5"
    model.save_weights(keras_path)
    try:
        with h5py.File(keras_path, "r") as source, h5py.File(path, "w") as target:
            target.attrs.update(source.attrs)

            def copy(name, item):
                if name.split("/")[0] == OPTIMIZER_GROUP:
                    return
                if isinstance(item, h5py.Group):
                    target.require_group(name).attrs.update(item.attrs)
                    return
                data = item[()]
                if weights_dtype == "float16" and data.dtype == np.float32:
                    data = _as_float16(name, data)
                target.create_dataset(name, data=data)
                target[name].attrs.update(item.attrs)

            source.visititems(copy)
    finally:
        os.unlink(keras_path)


def _as_float16(name, data):
    finite = data[np.isfinite(data)]
    largest = float(np.max(np.abs(finite))) if finite.size else 0.0
    if largest > np.finfo(np.float16).max:
        raise TfvaeError(
            f"weight {name} holds {largest:g}, beyond float16's range "
            f"({float(np.finfo(np.float16).max):g}); save with weights_dtype='float32'"
        )
    return data.astype(np.float16)


def _file_record(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(HASH_CHUNK):
            digest.update(chunk)
    return {"bytes": os.path.getsize(path), "sha256": digest.hexdigest()}


def read_metadata(preset_dir, where=None):
    """The checked `metadata.json` of the preset directory `preset_dir`.

    Raises a one-line `TfvaeError` when a file of the layout is missing or
    `metadata.json` is not a tfvae preset's.

    Args:
        preset_dir: str. The preset directory.
        where: str or None. How to name the preset in messages. Defaults to
            `preset_dir`.
    """
    where = preset_dir if where is None else where
    if not os.path.isdir(preset_dir):
        raise TfvaeError(f"cannot load preset {where}: {preset_dir} is not a directory")
    missing = [name for name in PRESET_FILES if not os.path.isfile(os.path.join(preset_dir, name))]
    if missing:
        raise TfvaeError(
            f"cannot load preset {where}: it has no {' or '.join(missing)} (a preset directory "
            f"holds {', '.join(PRESET_FILES)})"
        )
    metadata = _read_json_file(preset_dir, METADATA_FILE, where)
    problem = _metadata_problem(metadata)
    if problem:
        raise TfvaeError(f"cannot load preset {where}: its {METADATA_FILE} {problem}")
    return metadata


def _read_json_file(preset_dir, name, where):
    path = os.path.join(preset_dir, name)
    if os.path.getsize(path) > MAX_JSON_BYTES:
        raise TfvaeError(
            f"cannot load preset {where}: its {name} takes {memory.format_bytes(os.path.getsize(path))}"
            f", more than a preset's {memory.format_bytes(MAX_JSON_BYTES)}"
        )
    try:
        data = read_json(path)
    except TfvaeError:
        raise TfvaeError(f"cannot load preset {where}: its {name} is not valid JSON") from None
    except RecursionError:
        raise TfvaeError(f"cannot load preset {where}: its {name} nests too deeply") from None
    if not isinstance(data, dict):
        raise TfvaeError(f"cannot load preset {where}: its {name} is not a JSON object")
    return data


def _metadata_problem(metadata):
    if metadata.get("format") != FORMAT:
        return (
            f"does not describe a tfvae preset (format {metadata.get('format')!r}, not {FORMAT!r})"
        )
    version = metadata.get("format_version")
    if not checks.is_integer(version) or not 1 <= version <= FORMAT_VERSION:
        return (
            f"has format_version {version!r}; this tfvae reads versions 1 to {FORMAT_VERSION} "
            "(a newer tfvae wrote it?)"
        )
    family = metadata.get("family")
    if family is not None and not isinstance(family, str):
        return f"names no family (family={family!r})"
    files = metadata.get("files")
    if not isinstance(files, dict) or any(
        not isinstance(files.get(name), dict)
        or not checks.is_integer(files[name].get("bytes"))
        or not isinstance(files[name].get("sha256"), str)
        for name in CHECKED_FILES
    ):
        return f"does not record the size and sha256 of {' and '.join(CHECKED_FILES)}"
    if metadata.get("weights_dtype") not in WEIGHTS_DTYPES:
        return f"has weights_dtype {metadata.get('weights_dtype')!r}; expected one of {list(WEIGHTS_DTYPES)}"
    if "training" in metadata and not isinstance(metadata["training"], dict):
        return "has a training config that is not a JSON object"
    if "metrics" in metadata and not isinstance(metadata["metrics"], dict):
        return "has metrics that are not a JSON object"
    return None


def training_config(metadata, where):
    """The `TrainConfig` a preset was trained with, or `None` when it records none."""
    if "training" not in metadata:
        return None
    try:
        return TrainConfig.from_dict(metadata["training"])
    except TfvaeError as error:
        raise TfvaeError(
            f"cannot load preset {where}: its {METADATA_FILE} has a bad training config ({error})"
        ) from None


def load_preset(preset_dir, model_class=None, where=None):
    """Returns `(model, metadata)` of the preset directory `preset_dir`.

    Checked in order, each refusal one line: the layout and `metadata.json`;
    `config.json` and `model.weights.h5` against the size and SHA-256 that
    `metadata.json` records (a file changed after saving); the class
    `config.json` names against the family `metadata.json` names and against
    `model_class`; the size `config.json` describes against the weights file
    and the memory available; then the model is built with `safe_mode=True`,
    its weights loaded (float16 ones cast to float32), and every saved array
    must have been restored. The model comes back compiled with Adam, so
    `evaluate` and `fit` work at once (compile again to fine-tune otherwise).

    Args:
        preset_dir: str. A preset directory.
        model_class: type or None. The class the caller asked for
            (`VAE.from_preset`); a preset holding another class (not a
            subclass) is refused. `None` takes any tfvae model. Defaults to
            `None`.
        where: str or None. How to name the preset in messages (a shipped
            preset's name). Defaults to `preset_dir`.
    """
    where = preset_dir if where is None else where
    metadata = read_metadata(preset_dir, where)
    for name in CHECKED_FILES:
        recorded = metadata["files"][name]
        found = _file_record(os.path.join(preset_dir, name))
        if found != {"bytes": recorded["bytes"], "sha256": recorded["sha256"]}:
            raise TfvaeError(
                f"cannot load preset {where}: its {name} is not the file {METADATA_FILE} records "
                f"({found['bytes']:,} bytes, sha256 {found['sha256'][:12]}..., not "
                f"{recorded['bytes']:,} bytes, {recorded['sha256'][:12]}...); it was changed "
                "after the preset was saved"
            )
    model_config = _read_json_file(preset_dir, CONFIG_FILE, where)
    held = _held_class(model_config, where)
    recorded_family = metadata.get("family")
    if recorded_family is not None and recorded_family not in registry.names():
        raise TfvaeError(
            f"cannot load preset {where}: it holds a model of family {recorded_family!r}, "
            f"which is not registered (registered: {', '.join(registry.names())})"
        )
    if family_name(held) != recorded_family:
        raise TfvaeError(
            f"cannot load preset {where}: its {METADATA_FILE} names family {recorded_family!r} "
            f"but its {CONFIG_FILE} holds a {held.__name__} (family {family_name(held)!r}); "
            "the preset is damaged"
        )
    wanted = PresetMixin if model_class is None else model_class
    if not issubclass(held, wanted):
        raise TfvaeError(
            f"preset {where} holds a {held.__name__}"
            + (f" (family {recorded_family!r})" if recorded_family else "")
            + f", not a {wanted.__name__}; load it with {held.__name__}.from_preset "
            "or tfvae.presets.from_preset"
        )
    weights_path = os.path.join(preset_dir, WEIGHTS_FILE)
    try:
        check_saved_model_size(model_config, os.path.getsize(weights_path))
    except TfvaeError as error:
        raise TfvaeError(f"cannot load preset {where}: {error}") from None
    model = _build(model_config, where)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.load_weights(weights_path)
    except Exception as error:
        raise TfvaeError(
            f"cannot load preset {where}: its {WEIGHTS_FILE} does not fit the model its "
            f"{CONFIG_FILE} describes ({_first_line(error)})"
        ) from None
    problem = unrestored_h5_weights(weights_path, model)
    if problem:
        raise TfvaeError(f"cannot load preset {where}: {problem}")
    model.compile(optimizer=keras.optimizers.Adam())
    return model, metadata


def _held_class(model_config, where):
    """The tfvae model class `config.json` names, before anything is built."""
    registered_name = model_config.get("registered_name")
    held = (
        keras.saving.get_registered_object(registered_name)
        if isinstance(registered_name, str)
        else None
    )
    if not (isinstance(held, type) and issubclass(held, PresetMixin)):
        raise TfvaeError(
            f"cannot load preset {where}: its {CONFIG_FILE} describes "
            f"{model_config.get('class_name')!r} (registered as {registered_name!r}), "
            "not a tfvae model"
        )
    return held


def _build(model_config, where):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = keras.saving.deserialize_keras_object(model_config, safe_mode=True)
    except Exception as error:
        # Keras's own message says why: a lambda refused by safe_mode, a bad argument.
        raise TfvaeError(
            f"cannot load preset {where}: its {CONFIG_FILE} does not describe a model tfvae "
            f"can build ({type(error).__name__}: {_first_line(error)})"
        ) from None
    if not isinstance(model, PresetMixin) or not model.built:
        raise TfvaeError(
            f"cannot load preset {where}: its {CONFIG_FILE} has no build_config, so the model "
            "has no weights to load into"
        )
    return model


def _first_line(error):
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
