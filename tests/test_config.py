import pytest

from tfvae.errors import TfvaeError
from tfvae.training.config import TrainConfig


def test_json_round_trip(tmp_path):
    config = TrainConfig(
        model="ae", dataset="digits", arch="conv", latent_dim=3, hidden_units=(64, 32), beta=0.5
    )
    path = tmp_path / "config.json"
    path.write_text(config.to_json())
    assert TrainConfig.load(path) == config


def test_auto_binarize_and_likelihood_follow_the_model():
    assert TrainConfig(model="vae").resolved_likelihood == "bernoulli"
    assert TrainConfig(model="ae").resolved_likelihood == "gaussian"
    assert TrainConfig(model="vae", binarize=False).resolved_likelihood == "gaussian"
    assert TrainConfig(model="ae", likelihood="bernoulli").resolved_likelihood == "bernoulli"


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"model": "gan"}, "unknown model 'gan'"),
        ({"arch": "rnn"}, "unknown architecture 'rnn'"),
        ({"dataset": "imagenet"}, "unknown dataset 'imagenet'"),
        ({"latent_dim": 0}, "latent_dim must be a positive integer. Received: latent_dim=0"),
        ({"epochs": -1}, "epochs must be a positive integer"),
        ({"batch_size": 0}, "batch_size must be a positive integer"),
        ({"beta": float("nan")}, "beta must be a finite number"),
        ({"learning_rate": 0.0}, "learning_rate must be a positive number"),
        ({"validation_fraction": 1.0}, "validation_fraction must be in"),
        ({"likelihood": "poisson"}, "unknown likelihood"),
    ],
)
def test_invalid_settings_are_named(kwargs, match):
    with pytest.raises(TfvaeError, match=match):
        TrainConfig(**kwargs)


def test_unknown_keys_and_broken_json(tmp_path):
    with pytest.raises(TfvaeError, match="unknown config keys"):
        TrainConfig.from_dict({"latent": 3})
    path = tmp_path / "config.json"
    path.write_text("{not json")
    with pytest.raises(TfvaeError, match="cannot read config"):
        TrainConfig.load(path)
