"""Every registered family through the four commands a user runs: train, evaluate, tune, export.

Issue 15's bar for a family: `tfvae train --model NAME`, `tfvae evaluate`,
`tfvae tune` with two trials and `tfvae export` all work, or `export`
refuses in one line saying why. Each family's own tests check its values;
this one checks that no family is left out of a command. Slow (about a
minute per family on 2 cores): `python -m pytest -m slow tests/test_every_family.py`.
"""

import json
import os

import pytest

from tfvae.cli import main
from tfvae.models import registry

SMALL = [
    "--dataset",
    "digits",
    "--hidden-units",
    "32",
    "--epochs",
    "2",
    "--batch-size",
    "64",
    "--quiet",
]
# What a family needs beyond SMALL to train on 8x8 digits in seconds.
EXTRA = {"vqvae": ["--filters", "16"]}


@pytest.mark.slow
@pytest.mark.parametrize("name", [family.name for family in registry.families()])
def test_the_family_trains_evaluates_tunes_and_exports(name, tmp_path, capsys):
    flags = [*SMALL, *EXTRA.get(name, [])]
    run = tmp_path / "run"
    assert main(["train", "--model", name, "--latent-dim", "2", *flags, "--out", str(run)]) == 0
    assert json.loads((run / "config.json").read_text())["model"] == name
    metrics = json.loads((run / "metrics.json").read_text())
    capsys.readouterr()

    assert main(["evaluate", str(run)]) == 0
    report = capsys.readouterr().out
    assert f"model: {name}" in report

    search = tmp_path / "search"
    assert main(["tune", "--model", name, "--max-trials", "2", "--latent-dims", "2", "3",
                 *flags, "--dir", str(search)]) == 0  # fmt: skip
    with open(search / "trials.csv") as table:
        assert len(table.read().strip().splitlines()) == 1 + 2  # a header and two trials
    best = json.loads((search / "best" / "config.json").read_text())
    assert best["model"] == name and best["latent_dim"] in (2, 3)
    capsys.readouterr()

    status = main(["export", str(run), "--base", str(tmp_path / "served")])
    err = capsys.readouterr().err
    if status == 0:
        versions = os.listdir(tmp_path / "served")
        assert versions, "export wrote nothing"
    else:
        # Refused in one line that says why, and nothing written.
        assert status == 2 and len(err.strip().splitlines()) == 1 and "tfvae: error:" in err
        assert not (tmp_path / "served").exists()
    assert metrics  # the run's own test metrics were written
