"""SavedModels with named signatures, laid out for TensorFlow Serving."""

import dataclasses
import os

import keras

from tfvae.export import layout
from tfvae.export import verification
from tfvae.export.signatures import float32_model
from tfvae.export.signatures import serving_signatures
from tfvae.io.atomic import staged_dir


@dataclasses.dataclass
class SavedModelExport:
    """Where `export_saved_model` wrote a version.

    Attributes:
        model_name: str. The TF Serving model name.
        version: int. The version number.
        path: str. `<base>/<model_name>/<version>`.
        model_config_path: str. The `models.config` that lists the model.
        verification: list of `VerificationRow` (empty when no data was given).
    """

    model_name: str
    version: int
    path: str
    model_config_path: str
    verification: list


def write_saved_model(model, path, signatures=None):
    """Writes `model`'s serving signatures as a SavedModel into the directory `path`.

    Only the variables the signatures use are saved, once each (not the
    optimizer's), through `keras.export.ExportArchive`, so TF Serving and
    `tf.saved_model.load` need neither tfvae nor Keras.

    Args:
        model: a built tfvae `VAE` or `Autoencoder`.
        path: str. Directory to write (may exist and be empty).
        signatures: dict of `Signature`, or None for `serving_signatures(model)`.
    """

    model = float32_model(model)
    signatures = serving_signatures(model) if signatures is None else signatures
    # Not `archive.track(model)`: that saves every weight a second time
    # (through its Keras wrapper) next to the variables the endpoints capture.
    archive = keras.export.ExportArchive()
    for name, signature in signatures.items():
        archive.add_endpoint(name, signature.function, signature.input_signature)
    archive.write_out(path, verbose=False)


def export_saved_model(
    model,
    base_dir=layout.DEFAULT_BASE_DIR,
    model_name="model",
    version=None,
    overwrite=False,
    server_base_path=layout.DEFAULT_SERVER_BASE_PATH,
    verification_data=None,
):
    """Exports `model` as version `<base_dir>/<model_name>/<version>/` for TF Serving.

    Signatures: `serving_default` (reconstruct), `encode`, `decode`,
    `sample` (VAE) and `score`, with named inputs and outputs and a dynamic
    batch size (see `tfvae.export.signatures`). The version is written under
    a temporary name and renamed when complete; then
    `<base_dir>/models.config` is rewritten to list every model under
    `base_dir`.

    Args:
        model: a built tfvae `VAE` or `Autoencoder`.
        base_dir: str. Parent of the model directories. Defaults to
            `"saved_models"`.
        model_name: str. TF Serving model name (letters, digits, `.`, `_`,
            `-`). Defaults to `"model"`.
        version: int or None. `None` takes the next free number. Defaults to
            `None`.
        overwrite: bool. Replace an existing `version`. Defaults to `False`.
        server_base_path: str. `base_dir` as TF Serving sees it, for
            `models.config`. Defaults to `"/models"` (the docker image's).
        verification_data: array or None. Held-out inputs `x`: when given,
            the written SavedModel is loaded back and every signature must
            agree with the Keras model within 1e-5 before the version is
            committed. Defaults to `None`.

    Returns:
        A `SavedModelExport`.

    Example:

    >>> export = export_saved_model(vae, "saved_models", "vae-mnist")
    >>> export.path
    'saved_models/vae-mnist/1'
    """

    target = layout.model_dir(base_dir, model_name)
    layout.check_model_dir(target)
    version = layout.resolve_version([target], version, overwrite)
    model = float32_model(model)
    signatures = serving_signatures(model)
    final = os.path.join(target, str(version))
    rows = []
    with staged_dir(final, overwrite=overwrite) as staging:
        write_saved_model(model, staging, signatures)
        if verification_data is not None:
            rows = verification.verify_saved_model(staging, model, verification_data)
    config_path = layout.write_model_config(base_dir, server_base_path)
    return SavedModelExport(model_name, version, final, config_path, rows)
