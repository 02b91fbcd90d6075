"""`TrainConfig`: everything that defines a training run, with a JSON round trip.

Each setting is declared once, as a `tfvae.settings.setting` field: its
type, default, bounds, choices and help. Validation, the command-line flags
of every command that trains a model, and the JSON round trip are generated
from those declarations. A model family's own settings (the VAE's `beta`)
are declared by its registration (`tfvae.models.registry`) and kept in
`options`; they read as attributes (`config.beta`) and are written flat
into `config.json`.
"""

import dataclasses
import json
import os

from tfvae import settings
from tfvae.data.datasets import check_dataset_name
from tfvae.data.datasets import check_tfds_name
from tfvae.data.images import COLOR_MODES
from tfvae.data.preprocessing import SCALES
from tfvae.data.streaming import CACHES
from tfvae.data.streaming import check_cache
from tfvae.errors import TfvaeError
from tfvae.math.likelihoods import LIKELIHOODS
from tfvae.math.likelihoods import is_eight_bit
from tfvae.models import registry
from tfvae.models.encoder import ACTIVATIONS
from tfvae.models.encoder import ARCHITECTURES
from tfvae.settings import setting
from tfvae.training.distribute import STRATEGIES
from tfvae.training.precision import PRECISIONS
from tfvae.training.precision import resolve_precision

LIKELIHOOD_NAMES = ("auto", *LIKELIHOODS)
LR_SCHEDULES = ("cosine", "constant")


@dataclasses.dataclass(init=False)
class TrainConfig:
    """A training run's settings; saved as `config.json` next to the model.

    Every field is declared with its help text below (`tfvae train --help`
    shows them all). Keyword arguments that are not fields are the model
    family's own settings (`beta`, `iwae_samples`, `kl_warmup_epochs` for
    the VAE, `noise_factor` for the denoising autoencoder): they are checked
    against the family's declarations and kept in `options`. A setting of
    another family is refused unless it has its default value.

    Example:

    >>> config = TrainConfig(model="vae", dataset="digits", latent_dim=4, beta=0.5)
    >>> config.beta, config.options
    (0.5, {'beta': 0.5, 'iwae_samples': 1, 'kl_warmup_epochs': None, 'input_dropout': 0.1})
    """

    model: str = setting(
        "vae",
        "The model family; its own settings are listed under its name.",
        choices=registry.names,
    )
    dataset: str = setting(
        "mnist5k",
        "digits, mnist5k (bundled), any tensorflow-datasets name (mnist, cifar10, ...), a "
        "folder of images, TFRecord shards (GLOB.tfrecord), a .csv / .parquet table or a "
        ".npz / .npy file (docs/data.md).",
        validator=check_dataset_name,
    )
    data_dir: str | None = setting(
        None,
        "tensorflow-datasets' data directory (prepared data there is read offline). "
        "Default: TFDS_DATA_DIR or ~/tensorflow_datasets.",
        optional=True,
    )
    image_size: tuple | None = setting(
        None,
        "Image folders: centre-crop and resize every image to HEIGHT WIDTH. Default: the "
        "images' own size, which must be the same for all.",
        kind="ints",
        minimum=1,
        optional=True,
    )
    color_mode: str | None = setting(
        None,
        "Image folders: rgb or grayscale. Default: grayscale when every image is, else rgb.",
        choices=COLOR_MODES,
        optional=True,
    )
    scale: str = setting(
        "auto",
        "How values are scaled, from the training split only: auto (uint8 and [0, 255] "
        "images / 255, tables standardised, [0, 1] kept), none, 255, minmax or standard.",
        choices=SCALES,
    )
    channels_first: bool = setting(
        False, "The arrays are (N, channels, height, width): transpose them to channels-last."
    )
    stream: bool = setting(
        False,
        "TFRecord shards: read the training split from disk every epoch, in parallel, "
        "instead of into memory (validation and test stay in memory; docs/data.md).",
    )
    cache: str = setting(
        "auto",
        "With --stream: keep decoded training examples between epochs in memory, on disk "
        "(--cache-dir) or not at all; auto is memory when they fit in half of it, else none.",
        choices=CACHES,
    )
    cache_dir: str | None = setting(
        None,
        "With --cache disk: the cache's directory. Default: a temporary directory, removed "
        "when the run ends.",
        optional=True,
    )
    arch: str = setting(
        "dense",
        "Network body: dense (MLP) or conv (stride-2 convolutions).",
        choices=ARCHITECTURES,
        label="architecture",
    )
    latent_dim: int = setting(16, "Size of the latent code z.", minimum=1)
    hidden_units: tuple = setting(
        (512,), "Hidden dense widths (may be empty with --arch conv).", kind="ints", minimum=1
    )
    filters: tuple | None = setting(
        None,
        "Filters of the stride-2 convolutions (--arch conv), one per down-sampling stage. "
        "Default: from the image size, 32 doubling to at most 128 until the map's side is "
        "4 to 7 (32 64 at 28x28, 32 64 128 at 32x32, 32 64 128 128 at 64x64).",
        kind="ints",
        minimum=1,
        optional=True,
    )
    activation: str = setting(
        "relu",
        "Nonlinearity of the hidden layers (the output layers stay linear).",
        choices=ACTIVATIONS,
    )
    epochs: int = setting(50, "Passes over the training split.", minimum=1)
    batch_size: int = setting(128, "Examples per training step.", minimum=1)
    learning_rate: float = setting(
        3e-3, "Adam's (peak) step size.", minimum=0, exclusive_minimum=True
    )
    lr_schedule: str = setting(
        "cosine",
        "cosine decays the step size to 0 over the run; constant keeps it.",
        choices=LR_SCHEDULES,
        label="learning-rate schedule",
    )
    weight_decay: float = setting(
        0.05, "AdamW's decoupled weight decay; 0 for plain Adam.", minimum=0
    )
    adam_epsilon: float = setting(
        1e-7,
        "Adam's epsilon, added to the root of its second moment.",
        minimum=0,
        exclusive_minimum=True,
    )
    likelihood: str = setting(
        "auto",
        "p(x|z): auto is bernoulli for binarized data, gaussian otherwise; "
        "discretized_logistic and discretized_gaussian score 8-bit pixels k/255 with a "
        "learned scale (vae).",
        choices=LIKELIHOOD_NAMES,
    )
    binarize: bool | None = setting(
        None,
        "Threshold pixels at 0.5. Default: the model family's choice (on for vae, off "
        "otherwise), and then only for single-channel data in [0, 1], never colour or tables.",
        kind="bool",
        optional=True,
    )
    validation_fraction: float = setting(
        0.1,
        "Share of the training split held out for validation (user files and digits).",
        minimum=0,
        maximum=1,
        exclusive_minimum=True,
        exclusive_maximum=True,
    )
    seed: int = setting(0, "Seeds weights, data order and the models' noise.", minimum=0)
    precision: str = setting(
        "auto",
        "Dtype policy; auto is mixed_bfloat16 on CPUs with native bf16, else float32.",
        choices=PRECISIONS,
    )
    jit_compile: bool = setting(False, "Compile train steps with XLA.")
    steps_per_execution: int = setting(32, "Train steps per call into the graph.", minimum=1)
    deterministic: bool = setting(
        False, "Bitwise reproducible training: TensorFlow's op determinism for the process."
    )
    strategy: str = setting(
        "auto",
        "tf.distribute strategy; auto is multiworker under TF_CONFIG, mirrored with several "
        "GPUs, else one device.",
        choices=STRATEGIES,
    )
    checkpoint_steps: int = setting(
        0,
        "Also checkpoint every N train steps of an epoch (a multiple of "
        "--steps-per-execution); 0 checkpoints at epoch ends only.",
        minimum=0,
    )
    tensorboard: bool = setting(
        True,
        "Write TensorBoard logs into logs/: scalars, pictures after every epoch and the "
        "embedding projector.",
    )
    out: str | None = setting(
        None,
        "Run directory (new or empty). Default: saved_models/<model>-<dataset>-...-<time>.",
        optional=True,
    )
    options: dict = dataclasses.field(default_factory=dict)

    def __init__(self, **values):
        fields = {f.name: f for f in dataclasses.fields(self)}
        options = dict(values.pop("options", None) or {})
        options.update({name: values.pop(name) for name in list(values) if name not in fields})
        for name, field in fields.items():
            if name == "options":
                continue
            if name in values:
                value = values[name]
            elif field.default is not dataclasses.MISSING:
                value = field.default
            else:
                value = field.default_factory()
            setattr(self, name, value)
        self.options = options
        self.validate()

    def __getattr__(self, name):
        # Only called when ordinary lookup fails: a family setting.
        options = self.__dict__.get("options")
        if options is not None and name in options:
            return options[name]
        _, spec = registry.owners_of(name)
        if spec is not None:
            return spec.default
        raise AttributeError(f"{type(self).__name__} has no setting {name!r}")

    @property
    def family(self):
        """The `ModelFamily` that `model` names."""
        return registry.get_family(self.model)

    def validate(self):
        """Checks every setting; raises `TfvaeError` naming the first invalid one."""
        settings.check_fields(self)
        self.options = _checked_options(self.family, self.model, self.options)
        check_tfds_name(self.dataset, self.data_dir)
        if self.image_size is not None and len(self.image_size) != 2:
            raise TfvaeError(
                "image_size must be two integers, height and width. Received: "
                f"image_size={list(self.image_size)}"
            )
        if not self.stream and (self.cache != "auto" or self.cache_dir is not None):
            flag = "--cache-dir" if self.cache_dir is not None else f"--cache {self.cache}"
            raise TfvaeError(f"{flag} applies to streamed data (--stream) only")
        if self.stream:
            check_cache(self.cache, self.cache_dir)
        if self.arch == "conv" and self.filters is not None and not self.filters:
            raise TfvaeError("the conv architecture needs at least one filter count")
        if is_eight_bit(self.likelihood) and not self.family.can("likelihood_bound"):
            raise TfvaeError(
                f"--likelihood {self.likelihood} scores 8-bit pixels with a learned scale: it "
                "needs a model with a likelihood bound ("
                + ", ".join(f.name for f in registry.families() if f.can("likelihood_bound"))
                + f"). Received: --model {self.model}"
            )
        if self.checkpoint_steps % self.steps_per_execution:
            raise TfvaeError(
                "checkpoint_steps must be a multiple of steps_per_execution, as checkpoints "
                "are saved between graph calls of steps_per_execution steps. Received: "
                f"checkpoint_steps={self.checkpoint_steps} with "
                f"steps_per_execution={self.steps_per_execution}; use a steps_per_execution "
                "that divides it (1 always does)"
            )

    @property
    def resolved_binarize(self):
        if self.binarize is None:
            if self.likelihood not in ("auto", "bernoulli"):
                # A likelihood of grey levels or real values asked for: keep them.
                return False
            # The data's decision once loaded (`data_binarize`), for the family's "on".
            return self.family.binarize_by_default and self.__dict__.get("_data_binarized", True)
        return bool(self.binarize)

    @property
    def data_binarize(self):
        """What `load_dataset`'s `binarize` is for this config: True, False or "auto"."""
        if self.binarize is None and self.family.binarize_by_default:
            return "auto" if self.likelihood in ("auto", "bernoulli") else False
        return self.resolved_binarize

    def data_options(self):
        """`load_dataset`'s keyword arguments for this config (its data set and how to read it)."""
        return dict(
            binarize=self.data_binarize,
            validation_fraction=self.validation_fraction,
            seed=self.seed,
            scale=self.scale,
            image_size=self.image_size,
            color_mode=self.color_mode,
            channels_first=self.channels_first,
            data_dir=self.data_dir,
            stream=self.stream,
            cache=self.cache,
            cache_dir=self.cache_dir,
        )

    def adopt_data(self, data):
        """Records whether `data` was binarized, which `binarize=None` left to the data."""
        self.adopt_binarized(data.binarized)

    def adopt_binarized(self, binarized):
        """Records whether the data was binarized (a run's `preprocessing.json` says)."""
        self.__dict__["_data_binarized"] = bool(binarized)

    @property
    def resolved_likelihood(self):
        if self.likelihood != "auto":
            return self.likelihood
        return "bernoulli" if self.resolved_binarize else "gaussian"

    @property
    def resolved_arch(self):
        """The network body the model has: the family's own, or `arch`."""
        return self.family.arch or self.arch

    @property
    def resolved_precision(self):
        return resolve_precision(self.precision)

    def to_dict(self):
        """The settings as JSON-ready values: the family's settings sit beside the others."""
        data = {
            f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "options"
        }
        data.update(self.options)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}

    def to_json(self):
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data):
        """The config of `to_dict`'s output; settings of other families are ignored.

        Run directories written before a setting moved to its family hold
        every family's settings; they load as the family's own.
        """
        if not isinstance(data, dict):
            raise TfvaeError(f"a config must be a JSON object. Received: {type(data).__name__}")
        own = {f.name for f in dataclasses.fields(cls)} - {"options"}
        unknown = sorted(
            name for name in data if name not in own and not registry.owners_of(name)[0]
        )
        if unknown:
            raise TfvaeError(
                f"unknown config keys {unknown}; expected some of "
                f"{sorted(own | {s.name for f in registry.families() for s in f.settings})}"
            )
        model_setting = next(s for s in settings.settings_of(cls) if s.name == "model")
        family = registry.get_family(model_setting.check(data.get("model", model_setting.default)))
        values = {
            name: value
            for name, value in data.items()
            if name in own or family.setting(name) is not None
        }
        return cls(**values)

    @classmethod
    def from_json(cls, text):
        return cls.from_dict(settings.parse_json(text))

    @classmethod
    def load(cls, path):
        """Reads a config written by `to_json` (a run's `config.json`)."""
        path = os.fspath(path)
        try:
            with open(path) as f:
                return cls.from_json(f.read())
        except FileNotFoundError:
            raise TfvaeError(f"no config file at {path}") from None
        except IsADirectoryError:
            raise TfvaeError(f"cannot read config {path}: it is a directory") from None
        except TfvaeError as error:
            raise TfvaeError(f"cannot read config {path}: {error}") from None
        except (ValueError, TypeError, UnicodeDecodeError, RecursionError) as error:
            # JSONDecodeError is a ValueError; so is a number Python will not convert.
            raise TfvaeError(f"cannot read config {path}: {_first_line(error)}") from None


def _first_line(error):
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _checked_options(family, model, options):
    """The family's own settings, checked, with defaults filled in; refuses other families'."""
    for name, value in options.items():
        if family.setting(name) is not None:
            continue
        owners, spec = registry.owners_of(name)
        if spec is None:
            raise TfvaeError(
                f"unknown setting {name!r} for --model {model}; its settings are "
                f"{[s.name for s in family.settings]}"
            )
        if value != spec.default:
            flag = spec.flag_name
            raise TfvaeError(
                f"{flag} applies to --model {registry.names_text(owners)} only. "
                f"Received: --model {model}"
            )
    checked = {
        spec.name: spec.check(options.get(spec.name, spec.default)) for spec in family.settings
    }
    if family.check is not None:
        family.check(checked)
    return checked


def train_settings():
    """Every `Setting` of `TrainConfig`, in declaration order (the command-line flags)."""
    return settings.settings_of(TrainConfig)
