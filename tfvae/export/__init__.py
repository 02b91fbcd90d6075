"""Deployment: SavedModels for TensorFlow Serving and verified TFLite models.

One room per concern: `signatures` (what is exported, by name), `layout`
(TF Serving directories, versions, atomic commits, `models.config`),
`saved_model`, `tflite` (conversion with builtin ops only), `litert`
(running `.tflite` files by signature), `verification` (exported vs Keras
on held-out data) and `run` (a training run directory end to end).

Calling the package exports a run: `tfvae.export(run_dir, ...)` is
`export_run(run_dir, ...)`.
"""

import sys
import types

from tfvae.export.layout import DEFAULT_BASE_DIR
from tfvae.export.layout import DEFAULT_SERVER_BASE_PATH
from tfvae.export.layout import default_model_name
from tfvae.export.layout import write_model_config
from tfvae.export.litert import LiteRTModel
from tfvae.export.run import EXPORT_FORMATS
from tfvae.export.run import RunExport
from tfvae.export.run import export_run
from tfvae.export.saved_model import SavedModelExport
from tfvae.export.saved_model import export_saved_model
from tfvae.export.saved_model import write_saved_model
from tfvae.export.signatures import float32_model
from tfvae.export.signatures import serving_signatures
from tfvae.export.signatures import tflite_signatures
from tfvae.export.tflite import TFLITE_FORMATS
from tfvae.export.tflite import TFLiteExport
from tfvae.export.tflite import convert_model
from tfvae.export.tflite import convert_saved_model
from tfvae.export.tflite import export_tflite
from tfvae.export.verification import VerificationRow
from tfvae.export.verification import format_table

__all__ = [
    "DEFAULT_BASE_DIR",
    "DEFAULT_SERVER_BASE_PATH",
    "EXPORT_FORMATS",
    "LiteRTModel",
    "RunExport",
    "SavedModelExport",
    "TFLITE_FORMATS",
    "TFLiteExport",
    "VerificationRow",
    "convert_model",
    "convert_saved_model",
    "default_model_name",
    "export_run",
    "export_saved_model",
    "export_tflite",
    "float32_model",
    "format_table",
    "serving_signatures",
    "tflite_signatures",
    "write_model_config",
    "write_saved_model",
]


class _ExportPackage(types.ModuleType):
    """`tfvae.export` is this package and also `export_run`: `tfvae.export(run_dir)`."""

    def __call__(self, *args, **kwargs):
        return export_run(*args, **kwargs)


sys.modules[__name__].__class__ = _ExportPackage
