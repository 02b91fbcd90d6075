"""Scoring with a saved model instead of training one: load it, and check what it was trained on.

An anomaly score means something only for a model trained on normal
examples only: a model trained on every class of a data set explains the
anomalies as well as the normal examples. `check_scoring_run` therefore
accepts a run only when it records training on this scenario's normal
examples, with the same calibration split, and refuses anything else.
"""

import os

from tfvae import checks
from tfvae.apps.anomaly.output import RESULTS_FILE
from tfvae.apps.anomaly.scenario import Scenario
from tfvae.apps.anomaly.scenario import same_source
from tfvae.errors import TfvaeError
from tfvae.io.atomic import read_json
from tfvae.io.model_files import load_model_file
from tfvae.models.registry import family_of
from tfvae.models.registry import get_family
from tfvae.training.runs import CONFIG_FILE
from tfvae.training.runs import MODEL_FILE
from tfvae.training.runs import check_saved_model_size


def load_scoring_run(run_dir):
    """`(model, settings)` of a run directory, to score with instead of training.

    Reads `model.keras` (with `safe_mode=True`) and `config.json` of a run
    written by `tfvae train` or `tfvae anomaly`. `settings` is the config as
    a dict; its `dataset` may name a file `TrainConfig` does not read (an
    ECG5000 CSV), so it is not rebuilt as a `TrainConfig`.
    """
    run_dir = os.fspath(run_dir)
    if not os.path.isdir(run_dir):
        raise TfvaeError(f"run directory not found: {run_dir}")
    settings = read_json(os.path.join(run_dir, CONFIG_FILE))
    if not isinstance(settings, dict):
        raise TfvaeError(f"cannot read config {run_dir}/{CONFIG_FILE}: not a JSON object")
    model = load_model_file(os.path.join(run_dir, MODEL_FILE), check_config=check_saved_model_size)
    family_of(model)
    try:
        resolved_binarize(settings)
    except TfvaeError as error:
        raise TfvaeError(f"cannot read config {run_dir}/{CONFIG_FILE}: {error}") from None
    return model, settings


def resolved_binarize(settings):
    """Whether a run's inputs were binarized, from its config dict (as `TrainConfig` decides)."""
    binarize = settings.get("binarize")
    if binarize is None:
        return get_family(settings.get("model")).binarize_by_default
    return checks.boolean("binarize", binarize)


def trained_scenario(run_dir, settings):
    """The `Scenario` a run's model was trained on, or `None` when it records none.

    `tfvae anomaly` records its scenario in `results.json`; a run of
    `tfvae train` has no such record: it was trained on the whole training
    split of its data set.
    """
    path = os.path.join(os.fspath(run_dir), RESULTS_FILE)
    if not os.path.isfile(path):
        return None
    results = read_json(path)
    recorded = results.get("settings") if isinstance(results, dict) else None
    if not isinstance(recorded, dict) or "scenario" not in recorded:
        return None
    try:
        return Scenario.from_dict(recorded, seed=settings.get("seed", 0))
    except (KeyError, TypeError, TfvaeError) as error:
        raise TfvaeError(f"cannot read the scenario in {path}: {error}") from None


def check_scoring_run(run_dir, settings, scenario):
    """Raises unless the run's model was trained on `scenario`'s normal training examples only.

    Accepted: the output of `tfvae anomaly` on the same normal data (the
    same class of the same data set, or the same file) with the same
    calibration split, so that the calibration and test examples are ones
    the model never trained on. Refused, in one line saying what the run
    was trained on and what to do: a run of `tfvae train` (trained on the
    whole training split, anomalies included; or, on this very file of
    normal examples, on a split of its own that overlaps the calibration
    examples here), and an anomaly run of other normal data or another
    calibration split.

    Args:
        run_dir: str. The run directory.
        settings: dict. Its config (see `load_scoring_run`).
        scenario: `Scenario`. The data to score.

    Returns:
        A line saying what the model was trained on, for the report.
    """
    trained = trained_scenario(run_dir, settings)
    normal = scenario.normal_data
    if (
        trained is None
        and scenario.kind == "arrays"
        and same_source(scenario.source, settings.get("dataset", ""))
    ):
        raise TfvaeError(
            f"run {run_dir} was trained by tfvae train on its own split of {scenario.source}, "
            "so the examples held out here to calibrate include ones it trained on; drop --run "
            "to train on the normal examples here"
        )
    if trained is None:
        raise TfvaeError(
            f"run {run_dir} was trained on the whole training split of "
            f"{settings.get('dataset', 'its data set')} (a tfvae train run), not on normal "
            f"examples only ({normal}); drop --run to train on them, or give --run a tfvae "
            "anomaly output of this scenario"
        )
    if not scenario.same_normal_data(trained):
        raise TfvaeError(
            f"run {run_dir} was trained on {trained.normal_data} (a tfvae anomaly run), not on "
            f"{normal}; give the data options of that run, or drop --run to train on {normal}"
        )
    if not scenario.trains_like(trained):
        raise TfvaeError(
            f"run {run_dir} held out {trained.calibration_fraction:g} of {normal} with seed "
            f"{trained.seed} to calibrate; a split with fraction "
            f"{scenario.calibration_fraction:g} and seed {scenario.seed} would calibrate on "
            f"examples it trained on; give --calibration-fraction "
            f"{trained.calibration_fraction:g} --seed {trained.seed}, or drop --run"
        )
    return (
        f"scoring with the model of {run_dir}, trained by tfvae anomaly on the same training "
        f"examples of {normal}"
    )
