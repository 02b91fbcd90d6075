import pytest

from tfvae.errors import TfvaeError
from tfvae.training.config import TrainConfig


def test_json_round_trip(tmp_path):
    config = TrainConfig(
        model="vae", dataset="digits", arch="conv", latent_dim=3, hidden_units=(64, 32), beta=0.5
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
        ({"activation": "sigmoid"}, "unknown activation 'sigmoid'"),
        ({"adam_epsilon": 0.0}, "adam_epsilon must be a positive number"),
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


def test_every_setting_is_declared_once_and_drives_its_flag():
    import argparse
    import dataclasses

    from tfvae.cli.train import add_train_arguments
    from tfvae.training.config import train_settings

    declared = {s.name: s for s in train_settings()}
    fields = {f.name for f in dataclasses.fields(TrainConfig)} - {"options"}
    assert set(declared) == fields
    assert all(s.help.strip() for s in declared.values())
    parser = argparse.ArgumentParser()
    add_train_arguments(parser)
    defaults = vars(parser.parse_args([]))
    for name, spec in declared.items():
        expected = list(spec.default) if isinstance(spec.default, tuple) else spec.default
        assert defaults[name] == expected, name
    # A family's own settings stay unset until given.
    assert defaults["beta"] is None and defaults["noise_factor"] is None
    args = parser.parse_args(["--model", "vae", "--beta", "0.25", "--hidden-units"])
    from tfvae.cli.train import config_from_args

    config = config_from_args(args)
    assert (
        config.beta == 0.25
        and config.hidden_units == ()
        and config == TrainConfig(beta=0.25, hidden_units=())
    )


def test_old_run_configs_with_every_family_setting_still_load():
    # Written before the family settings moved into the registry: every key, for an AE.
    old = {**TrainConfig(model="ae").to_dict(), "beta": 1.0, "noise_factor": 0.2}
    old.update(iwae_samples=1, kl_warmup_epochs=0)
    config = TrainConfig.from_dict(old)
    assert config.model == "ae" and config.options == {}
    assert "beta" not in config.to_dict()


def test_activation_and_adam_epsilon_reach_the_networks_and_the_optimizer():
    from tfvae.models import registry
    from tfvae.training.recipe import build_optimizer

    config = TrainConfig(activation="tanh", adam_epsilon=1e-4, lr_schedule="constant")
    assert TrainConfig.from_json(config.to_json()) == config
    encoder, decoder = registry.build_networks(config, (8, 8, 1), probabilistic=True)
    assert encoder.activation == decoder.activation == "tanh"
    assert build_optimizer(config).epsilon == pytest.approx(1e-4)
    # The defaults are the behaviour before these settings: ReLU, Keras's epsilon.
    default = TrainConfig(lr_schedule="constant")
    assert (default.activation, build_optimizer(default).epsilon) == ("relu", 1e-7)


@pytest.mark.parametrize("likelihood", ["gaussian", "discretized_logistic", "discretized_gaussian"])
def test_a_likelihood_of_grey_levels_keeps_them_unless_binarize_is_asked(likelihood):
    config = TrainConfig(model="vae", likelihood=likelihood)
    assert config.data_binarize is False and not config.resolved_binarize
    assert config.resolved_likelihood == likelihood
    assert TrainConfig(model="vae", likelihood=likelihood, binarize=True).resolved_binarize
    # The VAE's default still binarizes single-channel [0, 1] data.
    assert TrainConfig(model="vae").data_binarize == "auto"
    assert TrainConfig(model="vae", likelihood="bernoulli").data_binarize == "auto"
