"""`tune(search_config)`: a resumable Keras Tuner search and a report a person can read.

A search directory holds:

    tuning.json                 the search's settings (a rerun must match them)
    search/                     Keras Tuner's project: oracle.json, and per trial
      trial_<id>/               trial.json, checkpoint.weights.h5, tfvae_trial.json
    logs/                       TensorBoard: the hparams experiment, and per trial
      <id>/execution0/          its hparams, train/ and validation/ scalars, images/
    trials.txt, trials.csv      the table of trials
    objective_vs_latent_dim.png the objective against the latent size
    best/                       the best trial's model as a normal run directory
"""

import contextlib
import dataclasses
import io
import json
import logging
import os
import shutil
import time
import warnings

import keras
import keras_tuner
import numpy as np
from sklearn.exceptions import ConvergenceWarning

from tfvae.errors import TfvaeError
from tfvae.io.atomic import STAGING_PREFIX
from tfvae.io.atomic import read_json
from tfvae.io.atomic import staged_dir
from tfvae.io.atomic import write_json
from tfvae.io.atomic import write_text
from tfvae.io.locks import check_target
from tfvae.io.locks import exclusive_lock
from tfvae.models import registry
from tfvae.training.distribute import make_strategy
from tfvae.training.tensorboard import write_hparams_config
from tfvae.training.tensorboard import write_projector
from tfvae.training.trainer import prepare
from tfvae.training.trainer import write_run_dir
from tfvae.tuning import report
from tfvae.tuning import saved_state
from tfvae.tuning.hyper_autoencoder import HyperAutoencoder

SETTINGS_FILE = "tuning.json"
PROJECT_NAME = "search"
LOGS_DIR = "logs"
TRIAL_RECORD_FILE = "tfvae_trial.json"
TABLE_FILE = "trials.txt"
CSV_FILE = "trials.csv"
FIGURE_FILE = "objective_vs_latent_dim.png"
BEST_DIR = "best"
BEST_TRIAL_FILE = "best_trial.json"
HYPERBAND_FACTOR = 3
COMPLETED = report.COMPLETED


@dataclasses.dataclass
class SearchResult:
    """What `tune` returns.

    `role` is `"single"`, or `"chief"` / `"worker"` in a distributed search.
    `trials` are the table's rows (dicts keyed by column, plus `status`),
    `best` the best completed row, `best_run_dir` its run directory. A
    worker returns no trials: the chief reports.
    """

    directory: str
    role: str
    trials: list
    best: dict | None
    best_run_dir: str | None
    table: str


def distributed_role():
    """`"chief"`, `"worker"`, or `None` for a one-process search.

    Read from Keras Tuner's variables: `KERASTUNER_ORACLE_IP` and
    `KERASTUNER_ORACLE_PORT` locate the chief's oracle, and a
    `KERASTUNER_TUNER_ID` containing `chief` marks the chief.
    """
    ip = os.environ.get("KERASTUNER_ORACLE_IP")
    if ip is None:
        return None
    missing = [
        name
        for name in ("KERASTUNER_ORACLE_PORT", "KERASTUNER_TUNER_ID")
        if not os.environ.get(name)
    ]
    if missing:
        raise TfvaeError(
            f"KERASTUNER_ORACLE_IP={ip!r} asks for a distributed search, but "
            f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set"
        )
    port = os.environ["KERASTUNER_ORACLE_PORT"]
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise TfvaeError(
            f"KERASTUNER_ORACLE_PORT must be a port number (1-65535). Received: {port!r}"
        )
    return "chief" if "chief" in os.environ["KERASTUNER_TUNER_ID"] else "worker"


def _as_json(data):
    return json.loads(json.dumps(data))


def _differences(saved, current, prefix=""):
    names = []
    for key in sorted(set(saved) | set(current)):
        old, new = saved.get(key), current.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            names += _differences(old, new, f"{prefix}{key}.")
        elif old != new:
            names.append(f"{prefix}{key} ({old!r} then, {new!r} now)")
    return names


def check_search_dir(config):
    """Raises unless `config`'s directory is new, empty, or a search with the same settings.

    Returns:
        True when the directory already holds this search's settings.
    """
    directory = config.resolved_directory
    if not os.path.exists(directory):
        return False
    if not os.path.isdir(directory):
        raise TfvaeError(f"search directory {directory} is a file; choose a new --dir")
    settings_path = os.path.join(directory, SETTINGS_FILE)
    if os.path.isfile(settings_path):
        saved = saved_state.read_search_settings(settings_path)
        saved = {k: v for k, v in saved.items() if k not in ("max_trials", "directory")}
        changed = _differences(saved, _as_json(config.settings()))
        if changed:
            raise TfvaeError(
                f"{directory} holds a search with other settings: {'; '.join(changed)}. "
                "Rerun with the same settings to resume it, or choose a new --dir"
            )
        if distributed_role() != "worker":  # the chief's state; it may be writing it now
            saved_state.check_search_state(
                config,
                directory,
                os.path.join(directory, PROJECT_NAME),
                TRIAL_RECORD_FILE,
                os.path.join(directory, BEST_DIR, BEST_TRIAL_FILE),
            )
        return True
    # Another process of a distributed search may be writing tuning.json right now.
    entries = [name for name in os.listdir(directory) if not name.startswith(STAGING_PREFIX)]
    if entries:
        raise TfvaeError(
            f"search directory {directory} is not empty and holds no tfvae search "
            f"({SETTINGS_FILE} is missing); choose a new --dir"
        )
    return False


class _DropRetracingWarnings(logging.Filter):
    """Every trial builds a new model, so TensorFlow's warning about functions
    traced again and again (meant for a function made in a loop by mistake)
    says nothing here but would bury the one line per trial."""

    def filter(self, record):
        return "triggered tf.function retracing" not in record.getMessage()


@contextlib.contextmanager
def _quiet_search_noise():

    logger = logging.getLogger("tensorflow")
    quiet = _DropRetracingWarnings()
    logger.addFilter(quiet)
    try:
        with warnings.catch_warnings():
            # The Bayesian oracle fits a Gaussian process to a handful of
            # trials; scikit-learn's warnings about its length scales are not
            # something a user of the search can act on.
            warnings.simplefilter("ignore", ConvergenceWarning)
            yield
    finally:
        logger.removeFilter(quiet)


def _choices_text(values, searched):
    parts = [f"{name}={report.format_value(values[name])}" for name in searched if name in values]
    if "tuner/epochs" in values:
        parts.append(f"epochs={values['tuner/initial_epoch']}->{values['tuner/epochs']}")
    return " ".join(parts)


def _last_line(message):
    lines = [line for line in (message or "").splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


class _Reporting:
    """Tuner mixin: records each trial's history, size and time; prints a line per trial."""

    def __init__(self, *args, searched=(), logs_root=None, progress=True, **kwargs):
        self.searched = tuple(searched)
        self.logs_root = logs_root
        self.progress = progress
        self._started = {}
        super().__init__(*args, **kwargs)

    def on_trial_begin(self, trial):
        self._started[trial.trial_id] = time.perf_counter()
        super().on_trial_begin(trial)

    def run_trial(self, trial, *args, **kwargs):
        # A trial run again after a crash starts with clean TensorBoard logs.
        shutil.rmtree(os.path.join(self.logs_root, str(trial.trial_id)), ignore_errors=True)
        histories = super().run_trial(trial, *args, **kwargs)
        history = histories[0]
        record = {
            "trial_id": trial.trial_id,
            "tuner_id": self.tuner_id,
            "seconds": time.perf_counter() - self._started[trial.trial_id],
            "parameters": int(history.model.count_params()),
            # Absolute epoch numbers: a Hyperband trial may continue another's.
            "epochs": [int(epoch) for epoch in history.epoch],
            "history": {
                name: [float(v) for v in values] for name, values in history.history.items()
            },
            "continued_from": trial.hyperparameters.values.get("tuner/trial_id"),
        }
        write_json(os.path.join(self.get_trial_dir(trial.trial_id), TRIAL_RECORD_FILE), record)
        return histories

    def on_trial_end(self, trial):
        super().on_trial_end(trial)
        if not self.progress:
            return
        seconds = time.perf_counter() - self._started.pop(trial.trial_id)
        ended = self.oracle.get_trial(trial.trial_id)
        objective = self.oracle.objective.name
        if ended.status == COMPLETED:
            outcome = f"{objective}={report.format_value(ended.score)}"
        else:
            reason = _last_line(ended.message or trial.message)
            outcome = ended.status.lower() + (f": {reason}" if reason else "")
        choices = _choices_text(ended.hyperparameters.values, self.searched)
        print(f"trial {trial.trial_id}: {choices} -> {outcome} ({seconds:.1f} s)", flush=True)


def _tuner_classes():

    class RandomSearch(_Reporting, keras_tuner.RandomSearch):
        pass

    class BayesianOptimization(_Reporting, keras_tuner.BayesianOptimization):
        pass

    class Hyperband(_Reporting, keras_tuner.Hyperband):
        pass

    return {"random": RandomSearch, "bayesian": BayesianOptimization, "hyperband": Hyperband}


def _make_tuner(config, hypermodel, directory, progress):

    common = dict(
        hypermodel=hypermodel,
        objective=keras_tuner.Objective(config.objective, direction="min"),
        # Keras Tuner reads seed 0 as "pick one at random".
        seed=config.train.seed + 1,
        directory=directory,
        project_name=PROJECT_NAME,
        overwrite=False,
        searched=tuple(config.searched()),
        logs_root=os.path.join(directory, LOGS_DIR),
        progress=progress,
    )

    strategy = make_strategy(config.train.strategy)
    if strategy.num_replicas_in_sync > 1:
        # Keras Tuner builds each trial's model in this strategy's scope.
        common["distribution_strategy"] = strategy
    cls = _tuner_classes()[config.tuner]
    project = os.path.join(directory, PROJECT_NAME)
    tuner_file = os.path.join(project, f"{os.environ.get('KERASTUNER_TUNER_ID', 'tuner0')}.json")
    if distributed_role() != "worker" and os.path.isfile(os.path.join(project, "oracle.json")):
        if not os.path.exists(tuner_file):
            # Keras Tuner reloads its oracle only when the tuner's own state file
            # exists, which it writes just after the oracle's at the end of a
            # trial; a search killed in between would start over. The state of
            # these tuners is empty.
            write_json(tuner_file, {})
    # Keras Tuner announces a reload on stdout; `tune` says it in its own words.
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            if config.tuner == "hyperband":
                tuner = cls(max_epochs=config.train.epochs, factor=HYPERBAND_FACTOR, **common)
            else:
                tuner = cls(max_trials=config.max_trials, **common)
    except json.JSONDecodeError as error:
        raise TfvaeError(
            f"cannot resume the search in {directory}: a Keras Tuner state file in "
            f"{project} is unreadable ({error}); choose a new --dir"
        ) from None
    if config.tuner == "hyperband" and isinstance(tuner.oracle, keras_tuner.Oracle):
        # Hyperband sizes itself from max_epochs; the generic cap still applies.
        tuner.oracle.max_trials = config.max_trials
    return tuner


def _trial_rows(tuner, config):
    objective = config.objective
    searched = config.searched()
    rows = []
    for trial_id, trial in sorted(tuner.oracle.trials.items()):
        path = os.path.join(tuner.project_dir, f"trial_{trial_id}", TRIAL_RECORD_FILE)
        record = read_json(path) if os.path.isfile(path) else None
        values = trial.hyperparameters.values
        row = {"trial": trial_id, "status": trial.status}
        row.update({name: values.get(name) for name in searched})
        row[objective] = float(trial.score) if trial.status == COMPLETED else None
        row.update({"best epoch": None, "epochs": None, "parameters": None, "seconds": None})
        if record is not None:
            curve = np.asarray(record["history"].get(objective, []), dtype=float)
            if curve.size and not np.all(np.isnan(curve)):
                row["best epoch"] = record["epochs"][int(np.nanargmin(curve))] + 1
            row["epochs"] = record["epochs"][-1] + 1 if record["epochs"] else 0
            row["parameters"] = record["parameters"]
            row["seconds"] = record["seconds"]
        rows.append(row)
    return rows


def _best_row(rows, objective):
    done = [r for r in rows if r["status"] == COMPLETED and np.isfinite(r[objective])]
    # Ties go to the earlier trial, as in Keras Tuner's checkpointing.
    return min(done, key=lambda r: r[objective]) if done else None


def _write_best_run(tuner, hypermodel, config, data, best, directory):

    best_dir = os.path.join(directory, BEST_DIR)
    marker = os.path.join(best_dir, BEST_TRIAL_FILE)
    if os.path.isfile(marker) and read_json(marker).get("trial") == best["trial"]:
        return best_dir
    trial = tuner.oracle.get_trial(best["trial"])
    record = read_json(os.path.join(tuner.project_dir, f"trial_{best['trial']}", TRIAL_RECORD_FILE))
    curve = np.asarray(record["history"][config.objective], dtype=float)
    best_index = int(np.nanargmin(curve))
    # The checkpoint holds the weights of the best epoch; the run says so.
    history = {name: values[: best_index + 1] for name, values in record["history"].items()}
    run_config = dataclasses.replace(
        hypermodel.trial_config(trial.hyperparameters), epochs=record["epochs"][best_index] + 1
    )
    model = tuner.load_model(trial)
    logs = os.path.join(directory, LOGS_DIR, str(best["trial"]), "execution0")
    # The previous best run stays until the new one is complete.
    with staged_dir(best_dir, overwrite=True) as staging:
        write_run_dir(
            model,
            run_config,
            data,
            history,
            staging,
            logs_dir=logs if os.path.isdir(logs) else None,
        )
        if config.train.tensorboard:
            write_projector(model, data, os.path.join(staging, LOGS_DIR))
        write_json(
            os.path.join(staging, BEST_TRIAL_FILE),
            {
                "trial": best["trial"],
                "objective": config.objective,
                "score": best[config.objective],
                "best_epoch": run_config.epochs,
                "choices": {name: best[name] for name in config.searched()},
                "continued_from": record["continued_from"],
                "search": os.path.abspath(directory),
            },
        )
    return best_dir


def write_report(tuner, hypermodel, config, data, directory, role="single"):
    """Writes the table, the CSV, the figure and the best run directory; returns a `SearchResult`."""
    rows = _trial_rows(tuner, config)
    best = _best_row(rows, config.objective)
    searched = list(config.searched())
    best_trial = best["trial"] if best else None
    table = report.format_table(rows, searched, config.objective, best_trial)
    train = config.train
    title = (
        f"{config.tuner} search: {train.model} ({train.resolved_arch}) on "
        f"{os.path.basename(train.dataset)}, {len(rows)} trials"
    )
    report.save_objective_figure(
        rows,
        config.objective,
        title,
        os.path.join(directory, FIGURE_FILE),
        latent_dims=config.latent_dims,
        best_trial=best_trial,
    )
    write_text(
        os.path.join(directory, CSV_FILE), report.format_csv(rows, searched, config.objective)
    )
    best_dir = None
    if best is not None:
        best_dir = _write_best_run(tuner, hypermodel, config, data, best, directory)
    write_text(os.path.join(directory, TABLE_FILE), table + "\n")
    return SearchResult(directory, role, rows, best, best_dir, table)


def tune(config, progress=True):
    """Runs (or resumes) the search `config` describes and reports it.

    Arguments are checked and the data is loaded before anything is
    written. Rerunning the same search continues it: finished trials are
    kept, a trial that was interrupted runs again. In a distributed search
    (Keras Tuner's `KERASTUNER_*` variables, see `distributed_role`) the
    workers run trials and return, and the chief writes the report once
    all trials have ended.

    Args:
        config: `SearchConfig`.
        progress: bool. Print one line per finished trial. Defaults to
            `True`.

    Returns:
        A `SearchResult`. The table is also written to
        `<directory>/trials.txt` and `trials.csv`, the figure to
        `objective_vs_latent_dim.png`, the best model to `best/`.
    """

    config.validate()
    role = distributed_role()
    directory = config.resolved_directory
    check_target(directory, "--dir")
    # One writer per search directory; the workers of a distributed search
    # write into their chief's, whose lock covers them.
    lock = contextlib.nullcontext() if role == "worker" else exclusive_lock(directory)
    with lock:
        return _search(config, role, directory, progress)


def _search(config, role, directory, progress):
    """`tune` once its directory is checked and locked."""
    data = prepare(config.train)
    check_search_dir(config)
    # The largest model of the search must fit before any trial starts.
    largest = {"latent_dim": max(config.latent_dims)}
    if config.widths is not None:
        largest["hidden_units"] = (max(config.widths),) * len(config.train.hidden_units)
    registry.check_trainable_size(dataclasses.replace(config.train, **largest), data.data_shape)

    os.makedirs(directory, exist_ok=True)
    write_json(os.path.join(directory, SETTINGS_FILE), config.to_dict())
    hypermodel = HyperAutoencoder(config, data)
    tuner = _make_tuner(config, hypermodel, directory, progress)
    if progress and role != "worker" and tuner.oracle.trials:
        done = sum(t.status == COMPLETED for t in tuner.oracle.trials.values())
        print(
            f"resuming the search in {directory}: {done} of {config.max_trials} trials finished",
            flush=True,
        )
    if progress and role == "chief":
        print(
            f"chief: serving the oracle on {os.environ['KERASTUNER_ORACLE_IP']}:"
            f"{os.environ['KERASTUNER_ORACLE_PORT']}; the workers run the trials",
            flush=True,
        )

    logs = os.path.join(directory, LOGS_DIR)
    callbacks = []
    if config.train.tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=logs))
        if role != "worker":
            write_hparams_config(logs, hypermodel.search_space(), config.train.family.metrics)
    with _quiet_search_noise():
        tuner.search(callbacks=callbacks, verbose=0)
        if role == "worker":
            return SearchResult(directory, role, [], None, None, "")
        result = write_report(tuner, hypermodel, config, data, directory, role or "single")
    if result.best is None:
        raise TfvaeError(f"no trial of the search in {directory} completed; see {TABLE_FILE} there")
    return result
