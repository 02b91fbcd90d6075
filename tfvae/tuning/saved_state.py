"""A search directory's saved state, checked before a search resumes from it.

A resumed search reads `tuning.json`, Keras Tuner's `oracle.json` and each
trial's `trial.json`, the tfvae record of each trial and its weights, and
the best run's marker. Keras Tuner trusts all of them: an edited or damaged
file fails deep inside it (`KeyError`, `AttributeError`), or worse, a search
space holding a latent size of a billion builds that model. Every file is
therefore checked against its schema (`tfvae.settings.check_json`) and
against the search's own choices before anything runs or is written, and
refused in one line.
"""

import glob
import math
import os

import h5py

from tfvae import settings
from tfvae.errors import TfvaeError

ORACLE_FILE = "oracle.json"
TRIAL_FILE = "trial.json"
TRIAL_WEIGHTS_FILE = "checkpoint.weights.h5"
TRIAL_DIR_PREFIX = "trial_"
COMPLETED = "COMPLETED"
# The values Hyperband adds to each trial's choices.
HYPERBAND_VALUES = (
    "tuner/epochs",
    "tuner/initial_epoch",
    "tuner/bracket",
    "tuner/round",
    "tuner/trial_id",
)

HYPERPARAMETERS_SCHEMA = {
    "space": ("list", {"class_name": "str", "config": {"name": "str"}}),
    "values": ("map", "any"),
}
# What every Keras Tuner oracle saves (`Oracle.get_state`), and what each tuner adds.
ORACLE_SCHEMA = {
    "ongoing_trials": ("map", "str"),
    "hyperparameters": HYPERPARAMETERS_SCHEMA,
    "start_order": ("list", "str"),
    "end_order": ("list", "str"),
    "run_times": ("map", "int"),
    "retry_queue": ("list", "str"),
    "seed": "int",
    "seed_state": "int",
    "tried_so_far": ("list", "str"),
    "id_to_hash": ("map", ("nullable", "str")),
    "display": ("map", "any"),
}
TUNER_ORACLE_SCHEMAS = {
    "random": {},
    # Keras Tuner saves num_initial_points as None when it is left to its default.
    "bayesian": {"num_initial_points": ("nullable", "int"), "alpha": "finite", "beta": "finite"},
    "hyperband": {
        "hyperband_iterations": "int",
        "max_epochs": "int",
        "min_epochs": "int",
        "factor": "int",
        "brackets": ("list", "any"),
        "current_bracket": "int",
        "current_iteration": "int",
    },
}
TRIAL_SCHEMA = {
    "trial_id": "str",
    "hyperparameters": HYPERPARAMETERS_SCHEMA,
    "metrics": {"metrics": ("map", "any")},
    "score": ("nullable", "number"),
    "best_step": ("nullable", "int"),
    "status": "str",
    "message": ("nullable", "str"),
}
# tfvae's record of a finished trial (`tfvae_trial.json`).
RECORD_SCHEMA = {
    "trial_id": "str",
    "seconds": "finite",
    "parameters": "int",
    "epochs": ("list", "int"),
    "history": ("map", ("list", "number")),
    "continued_from": ("nullable", "str"),
}
BEST_MARKER_SCHEMA = {"trial": "str"}


def read_search_settings(path):
    """The saved settings of a search (`tuning.json`), a JSON object; raises `TfvaeError` otherwise."""
    where = f"the search settings {path}"
    return settings.check_json(settings.load_json(path, where), ("map", "any"), where)


def check_search_state(config, directory, project_dir, record_file, best_marker):
    """Raises `TfvaeError` unless the saved state of the search in `directory` can be resumed.

    Checks Keras Tuner's `oracle.json` and every `trial_*/trial.json` of
    `project_dir` against their schemas, every choice they hold against
    `config`'s (a search space cannot hold a latent size the search does
    not try), the record and weights of every completed trial, and the
    best run's marker. Writes nothing.

    Args:
        config: `SearchConfig`. The search being resumed.
        directory: str. The search directory, for the message.
        project_dir: str. Keras Tuner's project directory in it.
        record_file: str. The name of tfvae's record in each trial directory.
        best_marker: str. The path of the best run's marker file.
    """
    try:
        trials = _check_trials(config, project_dir, record_file)
        oracle_path = os.path.join(project_dir, ORACLE_FILE)
        if os.path.exists(oracle_path):
            _check_oracle(config, oracle_path, trials)
        if os.path.exists(best_marker):
            settings.check_json(settings.load_json(best_marker), BEST_MARKER_SCHEMA, best_marker)
    except TfvaeError as error:
        raise TfvaeError(
            f"cannot resume the search in {directory}: {error}; choose a new --dir"
        ) from None


def _check_trials(config, project_dir, record_file):
    trials = {}
    for path in sorted(glob.glob(os.path.join(project_dir, f"{TRIAL_DIR_PREFIX}*", TRIAL_FILE))):
        trial = settings.check_json(settings.load_json(path), TRIAL_SCHEMA, path)
        _check_choices(config, trial["hyperparameters"], path)
        trials[trial["trial_id"]] = trial
        trial_dir = os.path.dirname(path)
        record_path = os.path.join(trial_dir, record_file)
        if os.path.exists(record_path):  # the report reads every trial's record
            settings.check_json(settings.load_json(record_path), RECORD_SCHEMA, record_path)
        if trial["status"] != COMPLETED:
            continue  # an interrupted trial runs again
        if trial["score"] is None or not math.isfinite(trial["score"]):
            raise TfvaeError(f"{path}: a completed trial must have a finite score")
        _check_weights(os.path.join(trial_dir, TRIAL_WEIGHTS_FILE))
    return trials


def _check_oracle(config, path, trials):
    oracle = settings.load_json(path)
    schema = {**ORACLE_SCHEMA, **TUNER_ORACLE_SCHEMAS.get(config.tuner, {})}
    settings.check_json(oracle, schema, path)
    _check_choices(config, oracle["hyperparameters"], path)
    named = [*oracle["ongoing_trials"].values(), *oracle["start_order"], *oracle["end_order"]]
    named += oracle["retry_queue"]
    unknown = sorted(set(named) - set(trials))
    if unknown:
        raise TfvaeError(f"{path} names trials {unknown} that have no {TRIAL_FILE}")


def _check_choices(config, hyperparameters, path):
    """Refuses a search space or choice outside `config`'s choices."""
    searched = {name: list(choices) for name, choices in config.searched().items()}
    for entry in hyperparameters["space"]:
        name = entry["config"]["name"]
        if name in HYPERBAND_VALUES:
            continue
        if name not in searched:
            raise TfvaeError(
                f"{path}: its search space holds {name!r}, which this search does not vary"
            )
        values = entry["config"].get("values")
        if not isinstance(values, list) or any(v not in searched[name] for v in values):
            raise TfvaeError(
                f"{path}: its search space gives {name} the choices {_short(values)}; this "
                f"search tries {searched[name]}"
            )
    for name, value in hyperparameters["values"].items():
        if name in HYPERBAND_VALUES:
            continue
        if name not in searched or value not in searched[name]:
            raise TfvaeError(
                f"{path}: it chose {name}={_short(value)}; this search tries "
                f"{searched.get(name, 'no such setting')}"
            )


def _check_weights(path):
    if not os.path.isfile(path):
        raise TfvaeError(f"the weights of a completed trial are missing: {path}")
    try:
        with h5py.File(path, "r") as weights:
            weights.visit(lambda name: None)
    except Exception as error:  # h5py raises OSError, KeyError, ValueError for damaged files
        raise TfvaeError(
            f"the weights of a completed trial are unreadable: {path} ({type(error).__name__})"
        ) from None


def _short(value, limit=60):
    text = settings.shown_value(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
