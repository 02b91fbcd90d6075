"""`PretrainConfig`: the settings of a pretraining comparison, each declared once."""

import dataclasses

from tfvae import checks
from tfvae.errors import TfvaeError
from tfvae.settings import check_fields
from tfvae.settings import setting
from tfvae.training.config import TrainConfig

METHODS = ("frozen", "fine-tuned", "scratch", "pca", "rbm")
METHOD_TITLES = {
    "frozen": "pretrained encoder, frozen",
    "fine-tuned": "pretrained encoder, fine-tuned",
    "scratch": "same network from scratch",
    "pca": "PCA features",
    "rbm": "RBM features",
}
DEFAULT_LABELS_PER_CLASS = (10, 50, 100)


@dataclasses.dataclass
class PretrainConfig:
    """Settings of a pretraining comparison (`tfvae pretrain`).

    Each field is a `tfvae.settings.setting`: its help, bounds and flag are
    declared once, and `validate` checks them.

    Args:
        run_dir: str or None. A run written by `tfvae train` whose encoder
            is the pretrained one (its data settings are used). `None`
            trains an autoencoder (`--model ae`, `latent_dim`,
            `pretrain_epochs`) on the unlabeled training split first.
            Defaults to `None`.
        dataset: str. The data set when `run_dir` is `None`. Defaults to
            `"mnist5k"`.
        labels_per_class: tuple of int. Labeled training examples per
            class. Defaults to `(10, 50, 100)`.
        repeats: int. Draws of the labeled examples per setting (seeds
            `seed`, `seed + 1`, ...); accuracies are averaged over them.
            Defaults to `3`.
        steps: int. Optimizer steps of supervised training, whatever the
            number of labels. Defaults to `1000`.
        batch_size: int. Batch size of supervised training. Defaults to
            `32`.
        learning_rate: float. Adam's step size when an encoder is trained
            with the head (`fine-tuned`, `scratch`). Defaults to `1e-3`.
        head_learning_rate: float. Adam's step size when the head alone is
            trained (`frozen`, `pca`, `rbm`): a linear model on fixed
            features reaches in 300 steps at 1e-2 the accuracy it needs
            3,000 for at 1e-3. Defaults to `1e-2`.
        pretrain_epochs: int. Epochs of the default autoencoder (no
            `run_dir`) and of the RBM. Defaults to `30`.
        latent_dim: int. Code size of the default autoencoder. Defaults to
            `16`.
        rbm_hidden: int. Hidden units of the RBM. Defaults to `256`.
        rbm_learning_rate: float. The RBM's SGD step size. Defaults to
            `0.05`.
        rbm_batch_size: int. The RBM's batch size and number of persistent
            chains. Defaults to `20`.
        seed: int. Seeds the label draws, initializations and shuffling.
            Defaults to `0`.
        autoencoder: `TrainConfig` or None. The other settings of the
            autoencoder trained without `run_dir` (architecture, widths,
            batch size, optimizer, ...); its model is `"ae"` and its data
            set, latent size, epochs and seed are the fields above.
            Defaults to `None`: `TrainConfig`'s defaults.

    Example:

    >>> config = PretrainConfig(dataset="digits", labels_per_class=(5, 20), repeats=2)
    >>> result = compare_pretraining(config)
    """

    run_dir: str | None = setting(
        None,
        "A run of `tfvae train` (AE or VAE) whose encoder is pretrained; none trains an "
        "autoencoder first.",
        kind="str",
        optional=True,
        flag="",
        metavar="RUN_DIR",
    )
    dataset: str = setting("mnist5k", "The data set when there is no RUN_DIR.")
    labels_per_class: tuple = setting(
        DEFAULT_LABELS_PER_CLASS,
        "Labeled training examples per class.",
        minimum=1,
        allow_empty=False,
        distinct=True,
    )
    repeats: int = setting(3, "Label draws per setting, averaged.", minimum=1)
    steps: int = setting(1000, "Optimizer steps of each supervised training.", minimum=1)
    batch_size: int = setting(
        32, "Batch size of supervised training.", minimum=1, flag="--supervised-batch-size"
    )
    learning_rate: float = setting(
        1e-3,
        "Adam's step size when an encoder learns with the head.",
        minimum=0,
        exclusive_minimum=True,
        flag="--supervised-learning-rate",
    )
    head_learning_rate: float = setting(
        1e-2, "Adam's step size when the head alone learns.", minimum=0, exclusive_minimum=True
    )
    pretrain_epochs: int = setting(
        30,
        "Epochs of the unsupervised training: the autoencoder (without RUN_DIR) and the RBM.",
        minimum=1,
        flag="--epochs",
    )
    latent_dim: int = setting(
        16, "Code size of the autoencoder trained without RUN_DIR.", minimum=1
    )
    rbm_hidden: int = setting(256, "Hidden units of the RBM.", minimum=1)
    rbm_learning_rate: float = setting(
        0.05, "The RBM's SGD step size.", minimum=0, exclusive_minimum=True
    )
    rbm_batch_size: int = setting(
        20, "The RBM's batch size and number of persistent chains.", minimum=1
    )
    seed: int = setting(0, "Seeds the label draws, initializations and shuffling.", minimum=0)
    autoencoder: TrainConfig | None = None

    def __post_init__(self):
        self.labels_per_class = tuple(self.labels_per_class)
        if isinstance(self.autoencoder, dict):
            self.autoencoder = TrainConfig.from_dict(self.autoencoder)
        self.validate()

    def autoencoder_config(self):
        """The `TrainConfig` of the autoencoder trained without `run_dir`."""
        base = self.autoencoder.to_dict() if self.autoencoder is not None else {}
        return TrainConfig.from_dict(
            {
                **base,
                "model": "ae",
                "dataset": self.dataset,
                "latent_dim": self.latent_dim,
                "epochs": self.pretrain_epochs,
                "seed": self.seed,
                "out": None,
            }
        )

    def validate(self):
        """Raises `TfvaeError` naming the first invalid setting."""
        if not self.labels_per_class:
            raise TfvaeError("labels_per_class must name at least one number of labels")
        if not all(checks.is_integer(n) and n >= 1 for n in self.labels_per_class):
            raise TfvaeError(
                "labels_per_class must hold positive integers. "
                f"Received: labels_per_class={list(self.labels_per_class)}"
            )
        if len(set(self.labels_per_class)) != len(self.labels_per_class):
            raise TfvaeError(
                "labels_per_class must not repeat a number. "
                f"Received: labels_per_class={list(self.labels_per_class)}"
            )
        check_fields(self)

    def to_dict(self):
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["labels_per_class"] = list(self.labels_per_class)
        data["autoencoder"] = self.autoencoder_config().to_dict()
        return data
