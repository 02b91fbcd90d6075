"""Presets: trained models saved as config, weights and metadata, and the ones that ship.

A preset is a directory in keras-hub's layout (`config.json`,
`model.weights.h5`, `metadata.json`, optional `assets/`; see
`tfvae.presets.preset_files`). The package ships a few trained on the
bundled digits (`list_presets()`, `tfvae presets`); `from_preset` takes a
shipped name, a directory or a hub handle, and every model class has the
same as `Model.from_preset` / `model.save_to_preset` (`tfvae.models.base`).

- `from_preset(name_or_dir)`: the model, checked and loaded with `safe_mode=True`;
- `save_to_preset(model, dir, ...)`: writes a preset directory atomically;
- `list_presets()`: the shipped presets with their size and test metric;
- `evaluate_preset(name_or_dir)`: its test metrics, recomputed;
- `resolve_run_or_preset(path_or_name)`: a run directory for either (export);
- `write_prior_samples(source, out)`: a PNG grid of prior samples (`tfvae sample`).

Example:

>>> import tfvae
>>> vae = tfvae.from_preset("vae_dense_mnist5k")
>>> vae.save_to_preset("my_vae")
>>> tfvae.models.VAE.from_preset("my_vae")
"""

from tfvae.presets.catalog import PresetInfo
from tfvae.presets.catalog import format_presets
from tfvae.presets.catalog import list_presets
from tfvae.presets.preset_files import load_preset
from tfvae.presets.preset_files import save_to_preset
from tfvae.presets.sampling import write_prior_samples
from tfvae.presets.sources import evaluate_preset
from tfvae.presets.sources import from_preset
from tfvae.presets.sources import load_run_or_preset
from tfvae.presets.sources import resolve_run_or_preset

__all__ = [
    "PresetInfo",
    "evaluate_preset",
    "format_presets",
    "from_preset",
    "list_presets",
    "load_preset",
    "load_run_or_preset",
    "resolve_run_or_preset",
    "save_to_preset",
    "write_prior_samples",
]
