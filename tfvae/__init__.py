"""tfvae: autoencoders and variational autoencoders for TensorFlow 2 / Keras 3.

`import tfvae` registers every tfvae Keras class (models, layers, the
optimizer), so `keras.models.load_model(path, safe_mode=True)` loads any
tfvae `.keras` file. The top level holds the everyday calls:

- `tfvae.train(TrainConfig(...))`: train and write a run directory;
- `tfvae.evaluate(run_dir)`: `(config, test metrics)` of a run;
- `tfvae.export(run_dir)`: SavedModel for TF Serving and verified TFLite;
- `tfvae.load_run(run_dir)`: `(config, model)`;
- `tfvae.load_dataset(name)`: train / validation / test splits.
- `tfvae.from_preset(name_or_dir)`: a trained model (`tfvae.list_presets()`).

Example:

>>> import tfvae
>>> result = tfvae.train(tfvae.TrainConfig(dataset="digits", epochs=5))
>>> config, metrics = tfvae.evaluate(result.run_dir)
"""

from tfvae import _startup

# Before anything imports TensorFlow: its native start-up log is held back.
_startup.import_tensorflow()

from tfvae import export  # noqa: E402  (callable: tfvae.export(run_dir) is export_run)
from tfvae import models  # noqa: E402, F401  (registers the model families and layers)
from tfvae.data.datasets import DataSplits  # noqa: E402
from tfvae.data.datasets import load_dataset  # noqa: E402
from tfvae.errors import TfvaeError  # noqa: E402
from tfvae.presets import from_preset  # noqa: E402
from tfvae.presets import list_presets  # noqa: E402
from tfvae.training import fused_adam  # noqa: E402, F401  (registers FusedAdam)
from tfvae.training.config import TrainConfig  # noqa: E402
from tfvae.training.runs import evaluate_run as evaluate  # noqa: E402
from tfvae.training.runs import load_run  # noqa: E402
from tfvae.training.trainer import RunResult  # noqa: E402
from tfvae.training.trainer import train  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "DataSplits",
    "RunResult",
    "TfvaeError",
    "TrainConfig",
    "__version__",
    "evaluate",
    "export",
    "from_preset",
    "list_presets",
    "load_dataset",
    "load_run",
    "train",
]
