"""`--recipe`: named bundles of VAE settings, filled in where no flag was given."""

import argparse

import pytest

from tfvae.cli.train import add_train_parser
from tfvae.cli.train import train_config_from_args
from tfvae.errors import TfvaeError
from tfvae.training.config import TrainConfig
from tfvae.training.recipes import RECIPES
from tfvae.training.recipes import recipe_settings


def parse(argv):
    parser = argparse.ArgumentParser()
    add_train_parser(parser.add_subparsers())
    return train_config_from_args(parser.parse_args(["train", *argv]))


def test_fast_is_the_defaults_and_quality_trains_on_a_tighter_bound():
    assert recipe_settings("fast") == {}
    assert parse(["--recipe", "fast"]) == parse([]) == TrainConfig()
    quality = parse(["--recipe", "quality"])
    assert (quality.iwae_samples, quality.input_dropout, quality.learning_rate) == (50, 0.2, 4e-3)
    # Only how the model trains changes: the same model, data and epochs.
    same = {"iwae_samples": 1, "input_dropout": 0.1, "learning_rate": 3e-3}
    assert {**quality.to_dict(), **same} == TrainConfig().to_dict()


def test_a_flag_wins_over_the_recipe():
    config = parse(["--recipe", "quality", "--iwae-samples", "5", "--epochs", "7"])
    assert (config.iwae_samples, config.input_dropout, config.epochs) == (5, 0.2, 7)
    assert parse(["--recipe", "quality", "--input-dropout", "0"]).input_dropout == 0.0
    # Even a flag given at its default value wins.
    assert parse(["--recipe", "quality", "--learning-rate", "0.003"]).learning_rate == 3e-3
    assert parse(["--learning-rate", "0.01"]).learning_rate == 0.01


def test_a_recipe_for_another_family_is_refused():
    assert parse(["--model", "ae", "--recipe", "fast"]).model == "ae"
    with pytest.raises(TfvaeError, match="--recipe quality is a recipe for --model vae"):
        parse(["--model", "ae", "--recipe", "quality"])
    with pytest.raises(TfvaeError, match="unknown recipe 'best'"):
        recipe_settings("best")
    assert set(RECIPES) == {"fast", "quality"}
