"""Anomaly detection: metrics, thresholds, the data scenarios and `tfvae anomaly`."""

import json
import os

import numpy as np
import pytest

from tfvae.apps import anomaly
from tfvae.cli import main
from tfvae.errors import TfvaeError
from tfvae.io.atomic import write_json
from tfvae.io.model_files import save_model_file
from tfvae.models import build_model
from tfvae.training.config import TrainConfig

# --- Metrics on a hand-computed example ----------------------------------------

# Normal 0.1, 0.4, 0.35; anomalous 0.8, 0.3. Above 0.32: 0.4, 0.35 (false
# positives), 0.8 (true positive); 0.3 is a missed anomaly.
HAND_LABELS = [0, 0, 0, 1, 1]
HAND_SCORES = [0.1, 0.4, 0.35, 0.8, 0.3]


def test_detection_metrics_match_the_hand_computation():
    m = anomaly.detection_metrics(HAND_LABELS, HAND_SCORES, threshold=0.32)
    assert (m["true_positives"], m["false_positives"]) == (1, 2)
    assert (m["true_negatives"], m["false_negatives"]) == (1, 1)
    assert m["precision"] == pytest.approx(1 / 3)
    assert m["recall"] == pytest.approx(1 / 2)
    assert m["f1"] == pytest.approx(2 * (1 / 3) * (1 / 2) / (1 / 3 + 1 / 2))  # 0.4
    assert m["false_positive_rate"] == pytest.approx(2 / 3)
    # 4 of the 6 (anomaly, normal) pairs are ordered right: 0.8 above all three
    # normals, 0.3 above 0.1 only.
    assert m["roc_auc"] == pytest.approx(4 / 6)
    # Ranked: 0.8 (A), 0.4, 0.35, 0.3 (A), 0.1. Recall 1/2 at precision 1,
    # then recall 1 at precision 2/4: AP = 0.5 * 1 + 0.5 * 0.5.
    assert m["average_precision"] == pytest.approx(0.75)
    assert (m["n_normal"], m["n_anomalous"], m["anomaly_rate"]) == (3, 2, pytest.approx(0.4))


def test_nothing_flagged_gives_zero_precision_not_an_error():
    m = anomaly.detection_metrics(HAND_LABELS, HAND_SCORES, threshold=1.0)
    assert (m["precision"], m["recall"], m["f1"], m["false_positive_rate"]) == (0, 0, 0, 0)


def test_metrics_refuse_one_class_labels():
    with pytest.raises(TfvaeError, match="both normal"):
        anomaly.detection_metrics([0, 0, 0], [0.1, 0.2, 0.3], 0.15)


# --- Threshold calibration -------------------------------------------------------


def test_percentile_and_fpr_thresholds_flag_the_requested_share():
    scores = np.arange(1.0, 101.0)  # 1, 2, ..., 100
    # numpy's linear percentile: position 0.95 * 99 = 94.05, between 95 and 96.
    assert anomaly.threshold_at_percentile(scores, 95) == pytest.approx(95.05)
    assert anomaly.false_positive_rate_at(scores, 95.05) == pytest.approx(0.05)
    assert anomaly.threshold_for_false_positive_rate(scores, 0.05) == 95.0
    assert anomaly.false_positive_rate_at(scores, 95.0) == pytest.approx(0.05)
    # 3.3% of 100 is not a whole example: at most 3 are flagged, never 4.
    assert anomaly.threshold_for_false_positive_rate(scores, 0.033) == 97.0


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda s: anomaly.threshold_at_percentile(s, 100), "percentile=100"),
        (lambda s: anomaly.threshold_at_percentile(s, float("nan")), "percentile=nan"),
        (lambda s: anomaly.threshold_for_false_positive_rate(s, 1.5), "false_positive_rate=1.5"),
        (lambda s: anomaly.threshold_for_false_positive_rate(s, 0), "false_positive_rate=0"),
        (lambda s: anomaly.calibrate(s, 90, 0.1), "not both"),
    ],
)
def test_bad_threshold_settings_name_the_value(call, message):
    with pytest.raises(TfvaeError, match=message):
        call(np.arange(10.0))


# --- The bundled scenario: one mnist5k digit is normal ---------------------------


@pytest.fixture(scope="module")
def digit5():
    """A dense AE trained 10 epochs on the 320 training 5s of mnist5k (about 10 s)."""
    config = TrainConfig(model="ae", epochs=10, seed=0)
    splits = anomaly.class_splits("mnist5k", 5, binarize=False, seed=0)
    return anomaly.detect_anomalies(config, splits, verbose=0)


def test_mnist5k_digit_scenario_splits_normal_and_anomalous(digit5):
    splits = digit5.splits
    assert splits.x_train.shape == (320, 28, 28, 1) and splits.x_val.shape == (80, 28, 28, 1)
    assert splits.x_test.shape == (1000, 28, 28, 1)
    assert (digit5.metrics["n_normal"], digit5.metrics["n_anomalous"]) == (100, 900)
    assert "class 5 is normal" in splits.protocol


def test_mnist5k_detection_quality(digit5):
    m = digit5.metrics
    # Measured: ROC-AUC 0.949, average precision 0.992 (the anomaly share is
    # 0.9), precision 0.994, recall 0.51 and F1 0.67 at the 95th percentile
    # (3 false positives); the bars leave slack.
    assert m["roc_auc"] > 0.92
    assert m["average_precision"] > 0.98
    assert m["recall"] > 0.4 and m["precision"] > 0.97
    # 4 of the 80 calibration 5s are above the 95th percentile, exactly 5%;
    # on the 100 test 5s it was 3% (measured), near the target.
    assert m["calibration_false_positive_rate"] == pytest.approx(0.05)
    assert 0.0 <= m["false_positive_rate"] <= 0.12
    assert m["true_positives"] + m["false_negatives"] == 900
    assert m["precision"] == pytest.approx(
        m["true_positives"] / (m["true_positives"] + m["false_positives"])
    )


def test_fpr_rule_on_real_calibration_scores(digit5):
    scores = digit5.calibration_scores
    for rate in (0.1, 0.05, 0.01):
        threshold = anomaly.threshold_for_false_positive_rate(scores, rate)
        achieved = anomaly.false_positive_rate_at(scores, threshold)
        # 80 scores: the rule flags floor(80 * rate) of them (8, 4, 0) barring ties.
        assert achieved <= rate and achieved == pytest.approx(np.floor(80 * rate) / 80)


def test_scores_are_deterministic_and_batch_independent(digit5):
    x = digit5.splits.x_test[:300]
    whole = anomaly.anomaly_scores(digit5.model, x, batch_size=300)
    np.testing.assert_allclose(anomaly.anomaly_scores(digit5.model, x, batch_size=7), whole)
    np.testing.assert_allclose(digit5.test_scores[:300], whole)


# --- User arrays and the VAE's score ------------------------------------------------


def _digits_files(tmp_path, digits):
    """Normal examples (the training 0s of digits) and a labelled test file."""
    normal = digits.x_train[digits.y_train == 0]
    np.savez(tmp_path / "normal.npz", x=normal)
    labels = (digits.y_test != 0).astype(np.int64)
    np.savez(tmp_path / "test.npz", x=digits.x_test, y=labels)
    return len(normal), labels


def test_vae_on_user_arrays_via_the_cli(tmp_path, digits, capsys):
    n_normal, labels = _digits_files(tmp_path, digits)
    out = tmp_path / "vae"
    argv = [
        "anomaly",
        "--normal",
        str(tmp_path / "normal.npz"),
        "--test",
        str(tmp_path / "test.npz"),
    ]
    argv += ["--model", "vae", "--epochs", "30", "--batch-size", "32", "--fpr", "0.1"]
    assert main([*argv, "--out", str(out), "--quiet"]) == 0
    report = capsys.readouterr().out
    assert "negative ELBO" in report and "ROC-AUC" in report
    assert set(os.listdir(out)) == {
        "results.json",
        "scores_histogram.png",
        "roc.png",
        "model.keras",
        "config.json",
    }
    results = json.loads((out / "results.json").read_text())
    assert results["settings"]["scenario"] == "arrays"
    m = results["metrics"]
    # 128 normal 0s: 26 calibrate (a seeded 20%), 102 train.
    assert f"{n_normal - 26} normal examples" in results["protocol"]
    assert m["n_anomalous"] == int(labels.sum()) and m["n_normal"] == int((labels == 0).sum())
    # Measured ROC-AUC 0.996 (binarized 8x8 digits, 0 against the rest).
    assert m["roc_auc"] > 0.95
    assert m["calibration_false_positive_rate"] <= 0.1
    assert json.loads((out / "config.json").read_text())["model"] == "vae"

    # The score is the negative ELBO at the posterior mean, recomputed by hand.
    from tfvae.io.model_files import load_model_file

    model = load_model_file(str(out / "model.keras"))
    x = (digits.x_test[:50] > 0.5).astype(np.float32)
    mu, sigma = (np.asarray(t, np.float64) for t in model.encode(x))
    logits = np.asarray(model.decoder(mu.astype(np.float32)), np.float64).reshape(50, -1)
    flat = x.reshape(50, -1)
    reconstruction = np.sum(np.logaddexp(0, logits) - flat * logits, axis=1)
    kl = 0.5 * np.sum(mu**2 + sigma**2 - 1 - 2 * np.log(sigma), axis=1)
    np.testing.assert_allclose(anomaly.anomaly_scores(model, x), reconstruction + kl, rtol=1e-4)


# --- ECG5000: the CSV format of the tutorial -------------------------------------


def _ecg_csv(path, rows=60, features=anomaly.ECG5000_FEATURES, seed=0):
    """A synthetic file in ecg.csv's format (140 samples, then 1 = normal / 0 = abnormal).

    The signals are made up: this tests parsing and the protocol, not the data.
    """
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 2 * np.pi, features)
    normal = rng.random(rows) < 0.6
    beats = np.where(
        normal[:, None], np.sin(t)[None, :], np.sign(np.sin(3 * t))[None, :] * 2.0
    ) + 0.1 * rng.standard_normal((rows, features))
    table = np.concatenate([beats, normal[:, None].astype(float)], axis=1)
    np.savetxt(path, table, delimiter=",", fmt="%.7e")
    return table


def test_ecg5000_csv_parses_labels_and_values(tmp_path):
    table = _ecg_csv(tmp_path / "ecg.csv", rows=12)
    x, anomalous = anomaly.load_ecg5000_csv(str(tmp_path / "ecg.csv"))
    assert x.shape == (12, 140) and x.dtype == np.float32
    np.testing.assert_allclose(x, table[:, :-1], rtol=1e-6)
    np.testing.assert_array_equal(anomalous, 1 - table[:, -1])  # label 1 = normal


def test_ecg5000_splits_follow_the_tutorial(tmp_path):
    from sklearn.model_selection import train_test_split

    table = _ecg_csv(tmp_path / "ecg.csv", rows=60)
    splits = anomaly.ecg5000_splits(str(tmp_path / "ecg.csv"), seed=0)
    # The tutorial's split: 12 test rows, scaled with the 48 training rows' extremes.
    train, test = train_test_split(table, test_size=0.2, random_state=21)
    low, high = train[:, :-1].min(), train[:, :-1].max()
    np.testing.assert_allclose(splits.x_test, (test[:, :-1] - low) / (high - low), atol=1e-6)
    np.testing.assert_array_equal(splits.y_test, 1 - test[:, -1])
    n_normal = int(train[:, -1].sum())
    assert len(splits.x_train) + len(splits.x_val) == n_normal
    assert len(splits.x_val) == round(0.2 * n_normal)
    everything = np.concatenate([splits.x_train, splits.x_val])
    assert everything.min() >= 0.0 and everything.max() <= 1.0


@pytest.mark.parametrize(
    "columns,label,message",
    [
        (139, 1.0, "has 140 columns; expected 141"),
        (140, 2.0, "the last column must be 1 (normal) or 0 (abnormal)"),
    ],
)
def test_ecg5000_bad_files(tmp_path, columns, label, message):
    path = tmp_path / "bad.csv"
    np.savetxt(path, np.column_stack([np.zeros((4, columns)), np.full(4, label)]), delimiter=",")
    with pytest.raises(TfvaeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        anomaly.load_ecg5000_csv(str(path))
    with pytest.raises(TfvaeError, match="ECG5000 file not found"):
        anomaly.load_ecg5000_csv(str(tmp_path / "absent.csv"))


def test_cli_ecg5000_then_rescore_with_run(tmp_path, capsys):
    _ecg_csv(tmp_path / "ecg.csv", rows=200)
    out = tmp_path / "ecg"
    common = ["anomaly", "--ecg5000", str(tmp_path / "ecg.csv"), "--quiet"]
    argv = [*common, "--hidden-units", "32", "16", "--latent-dim", "8", "--epochs", "20"]
    assert main([*argv, "--batch-size", "32", "--out", str(out)]) == 0
    first = json.loads((out / "results.json").read_text())
    assert first["settings"]["scenario"] == "ecg5000"
    assert json.loads((out / "config.json").read_text())["dataset"] == str(tmp_path / "ecg.csv")
    # Sines against square waves: trivially separable (measured ROC-AUC 1.0).
    assert first["metrics"]["roc_auc"] > 0.95
    assert "min-max scaled with the training rows' min" in capsys.readouterr().out

    # Scoring again with the saved model gives the same threshold and metrics.
    again = tmp_path / "again"
    assert main([*common, "--run", str(out), "--out", str(again)]) == 0
    second = json.loads((again / "results.json").read_text())
    assert second["threshold"] == pytest.approx(first["threshold"], rel=1e-6)
    assert second["metrics"]["roc_auc"] == pytest.approx(first["metrics"]["roc_auc"])
    assert second["history"] is None and second["settings"]["run"] == str(out)


@pytest.mark.parametrize(
    "args,message",
    [
        (["--normal-digit", "12"], "normal_digit 12 is not a label of digits"),
        (["--percentile", "0"], "percentile must be in (0, 100). Received: percentile=0.0"),
        (["--fpr", "1"], "fpr must be in (0, 1). Received: fpr=1.0"),
        (["--normal", "n.npz"], "--normal and --test go together"),
        (["--ecg5000", "absent.csv"], "ECG5000 file not found: absent.csv"),
        (["--ecg5000", "a.csv", "--normal-digit", "3"], "--ecg5000 takes no"),
    ],
)
def test_cli_bad_inputs_are_one_line(tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.chdir(tmp_path)
    assert main(["anomaly", "--dataset", "digits", *args, "--out", "out"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert os.listdir(tmp_path) == []


# --- Scoring with a saved run: only one trained on this scenario's normal data ----


def _train_run(run_dir, dataset="digits"):
    """A run as `tfvae train` leaves it: trained on every class (untrained here: refused first)."""
    config = TrainConfig(dataset=dataset, hidden_units=(8,))
    os.makedirs(run_dir)
    save_model_file(build_model(config, (8, 8, 1)), os.path.join(run_dir, "model.keras"))
    write_json(os.path.join(run_dir, "config.json"), config.to_dict())


def _one_line_error(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_run_trained_on_every_class_is_refused(tmp_path, digits, capsys):
    run, out = tmp_path / "train-run", tmp_path / "out"
    _train_run(run)
    assert main(["anomaly", "--dataset", "digits", "--run", str(run), "--out", str(out)]) == 2
    message = _one_line_error(capsys)
    assert (
        f"run {run} was trained on the whole training split of digits (a tfvae train run), "
        "not on normal examples only (class 5 of digits); drop --run" in message
    )
    assert not out.exists()

    # Trained by `tfvae train` on the very file of normal examples: its own
    # split of them overlaps the calibration examples here.
    _digits_files(tmp_path, digits)
    normal = str(tmp_path / "normal.npz")
    _train_run(tmp_path / "normal-run", dataset=normal)
    argv = ["anomaly", "--normal", normal, "--test", str(tmp_path / "test.npz")]
    assert main([*argv, "--run", str(tmp_path / "normal-run"), "--out", str(out)]) == 2
    assert (
        f"was trained by tfvae train on its own split of {normal}, so the examples held out "
        in (_one_line_error(capsys))
    )
    assert not out.exists()


def test_run_must_be_an_anomaly_run_of_the_same_data_and_split(tmp_path, capsys):
    run = tmp_path / "digit3"
    common = ["anomaly", "--dataset", "digits", "--quiet"]
    trained = ["--normal-digit", "3", "--hidden-units", "16", "--epochs", "3"]
    assert main([*common, *trained, "--out", str(run)]) == 0
    capsys.readouterr()
    refused = [
        ([], f"run {run} was trained on class 3 of digits (a tfvae anomaly run), not on class 5"),
        (
            ["--normal-digit", "3", "--seed", "1"],
            "held out 0.2 of class 3 of digits with seed 0 to calibrate; a split with fraction "
            "0.2 and seed 1 would calibrate on examples it trained on",
        ),
        (
            ["--normal-digit", "3", "--calibration-fraction", "0.3"],
            "give --calibration-fraction 0.2 --seed 0, or drop --run",
        ),
    ]
    for args, expected in refused:
        out = tmp_path / "refused"
        assert main([*common, *args, "--run", str(run), "--out", str(out)]) == 2
        assert expected in _one_line_error(capsys)
        assert not out.exists()

    # The same scenario is accepted, says what the model was trained on, and
    # reproduces the run's threshold.
    again = tmp_path / "again"
    assert main([*common, "--normal-digit", "3", "--run", str(run), "--out", str(again)]) == 0
    assert (
        f"scoring with the model of {run}, trained by tfvae anomaly on the same training "
        "examples of class 3 of digits" in capsys.readouterr().out
    )
    first = json.loads((run / "results.json").read_text())
    second = json.loads((again / "results.json").read_text())
    assert second["threshold"] == pytest.approx(first["threshold"], rel=1e-6)
    assert second["settings"]["normal_digit"] == 3 and second["settings"]["run"] == str(run)
