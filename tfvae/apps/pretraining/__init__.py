"""The autoencoder as pretraining: few-label classification with learned features.

An encoder trained without labels (an autoencoder's, or a VAE's posterior
mean) is used as a feature extractor for a classifier trained on a few
labels per class, and compared with the same network trained from scratch
on those labels, and with two classical unsupervised feature extractors:
PCA and a restricted Boltzmann machine.

Every method ends in the same head: the features standardized with the
unlabeled training split's mean and variance (a fixed `Normalization`
layer), then one `Dense` softmax layer, a multinomial logistic regression.
A linear head measures what the features hold rather than what a second
network could learn from them. Every training run is Adam for the same
number of steps (`steps`, whatever the number of labels) on the same
labeled examples, and is scored on the whole test split: at
`head_learning_rate` when only the head learns, at `learning_rate` when an
encoder learns with it. Fine-tuning first fits the head on the frozen codes
(linear probing, then fine-tuning), so that the encoder's first updates do
not follow a random head.

| method | features | trained on the labels |
|---|---|---|
| `frozen` | pretrained encoder's codes | head |
| `fine-tuned` | pretrained encoder's codes | head, then encoder and head |
| `scratch` | the same encoder, freshly initialized | encoder and head |
| `pca` | PCA with as many components as the code | head |
| `rbm` | an RBM's hidden probabilities (PCD on the training split) | head |

The modules, each using only those listed before it: `config`
(`PretrainConfig`, the methods), `features` (the pretrained encoder, label
draws, PCA and RBM features), `classifier` (one method's test accuracy),
`compare` (the whole comparison and its table), `output` (its directory).
"""

from tfvae.apps.pretraining.classifier import evaluate_method
from tfvae.apps.pretraining.compare import PretrainResult
from tfvae.apps.pretraining.compare import PretrainRow
from tfvae.apps.pretraining.compare import compare_pretraining
from tfvae.apps.pretraining.compare import format_table
from tfvae.apps.pretraining.config import DEFAULT_LABELS_PER_CLASS
from tfvae.apps.pretraining.config import METHOD_TITLES
from tfvae.apps.pretraining.config import METHODS
from tfvae.apps.pretraining.config import PretrainConfig
from tfvae.apps.pretraining.features import draw_labeled_subset
from tfvae.apps.pretraining.features import load_pretrained
from tfvae.apps.pretraining.features import train_rbm
from tfvae.apps.pretraining.features import unsupervised_features
from tfvae.apps.pretraining.output import CSV_FILE
from tfvae.apps.pretraining.output import FIGURE_FILE
from tfvae.apps.pretraining.output import OUTPUT_FILES
from tfvae.apps.pretraining.output import RESULTS_FILE
from tfvae.apps.pretraining.output import default_output_dir
from tfvae.apps.pretraining.output import write_csv
from tfvae.apps.pretraining.output import write_pretrain_dir

__all__ = [
    "CSV_FILE",
    "DEFAULT_LABELS_PER_CLASS",
    "FIGURE_FILE",
    "METHODS",
    "METHOD_TITLES",
    "OUTPUT_FILES",
    "PretrainConfig",
    "PretrainResult",
    "PretrainRow",
    "RESULTS_FILE",
    "compare_pretraining",
    "default_output_dir",
    "draw_labeled_subset",
    "evaluate_method",
    "format_table",
    "load_pretrained",
    "train_rbm",
    "unsupervised_features",
    "write_csv",
    "write_pretrain_dir",
]
