import numpy as np
import pytest

from tfvae.errors import TfvaeError
from tfvae.training.config import TrainConfig
from tfvae.training.fused_adam import FusedAdam
from tfvae.training.recipe import build_compiled_model
from tfvae.training.recipe import build_optimizer
from tfvae.training.recipe import count_steps_per_epoch
from tfvae.training.recipe import fit_on_splits
from tfvae.training.recipe import graph_call_steps
from tfvae.training.recipe import repeat_whole_passes
from tfvae.training.trainer import train


def test_default_optimizer_is_adamw_with_cosine_decay_to_zero(digits_binary):
    config = TrainConfig(dataset="digits", epochs=4)
    steps = count_steps_per_epoch(config, digits_binary)
    assert steps == int(np.ceil(len(digits_binary.x_train) / 128))
    optimizer = build_optimizer(config, steps)
    # AdamW: Adam with decoupled weight decay, its updates fused per variable.
    assert isinstance(optimizer, FusedAdam)
    assert optimizer.weight_decay == pytest.approx(0.05)
    schedule = optimizer._learning_rate
    assert float(schedule(0)) == pytest.approx(3e-3)
    assert float(schedule(4 * steps)) == pytest.approx(0.0, abs=1e-9)
    assert float(schedule(2 * steps)) == pytest.approx(1.5e-3, rel=1e-4)


def test_constant_adam_when_asked():
    optimizer = build_optimizer(
        TrainConfig(lr_schedule="constant", weight_decay=0.0, learning_rate=1e-3)
    )
    assert isinstance(optimizer, FusedAdam) and optimizer.weight_decay is None
    assert float(optimizer.learning_rate) == pytest.approx(1e-3)


def test_cosine_schedule_needs_the_run_length():
    with pytest.raises(TfvaeError, match="cosine schedule needs steps_per_epoch"):
        build_optimizer(TrainConfig())


def test_compiled_model_starts_at_the_data_mean_and_trains(digits_binary):
    config = TrainConfig(dataset="digits", hidden_units=(32,), latent_dim=4, epochs=3)
    steps = count_steps_per_epoch(config, digits_binary)
    model = build_compiled_model(
        config, digits_binary.data_shape, steps, x_train=digits_binary.x_train
    )
    untrained = model.evaluate(digits_binary.x_val, verbose=0, return_dict=True)
    plain = build_compiled_model(config, digits_binary.data_shape, steps)
    plain_untrained = plain.evaluate(digits_binary.x_val, verbose=0, return_dict=True)
    # Starting at the mean is worth tens of nats before any step on binarized digits.
    assert untrained["reconstruction_loss"] < plain_untrained["reconstruction_loss"] - 5
    history = model.fit(
        digits_binary.pipeline("train", 128), epochs=3, verbose=0, shuffle=False
    ).history
    assert history["loss"][-1] < history["loss"][0]


def test_the_default_kl_warm_up_is_the_first_fifth_of_the_run(digits_binary):
    from tfvae.models import build_model

    config = TrainConfig(dataset="digits", hidden_units=(8,), epochs=50)
    steps = count_steps_per_epoch(config, digits_binary)
    model = build_compiled_model(config, digits_binary.data_shape, steps)
    assert model.kl_warmup_steps == 10 * steps
    short = TrainConfig(dataset="digits", hidden_units=(8,), epochs=4)
    assert build_compiled_model(short, digits_binary.data_shape, steps).kl_warmup_steps == 0
    given = TrainConfig(dataset="digits", hidden_units=(8,), epochs=50, kl_warmup_epochs=3)
    assert build_compiled_model(given, digits_binary.data_shape, steps).kl_warmup_steps == 3 * steps
    # Built outside training, the default warm-up has no steps to count; a given one raises.
    assert build_model(config, digits_binary.data_shape).kl_warmup_steps == 0
    with pytest.raises(TfvaeError, match="KL warm-up needs steps_per_epoch"):
        build_model(given, digits_binary.data_shape)


def test_the_default_vae_drops_a_tenth_of_its_input_for_the_encoder():
    assert TrainConfig().input_dropout == 0.1
    assert TrainConfig(input_dropout=0.0).input_dropout == 0.0


def test_fit_on_splits_keeps_one_iterator_and_the_batches_of_every_epoch(digits_binary):
    import tensorflow as tf

    config = TrainConfig(
        dataset="digits",
        hidden_units=(16,),
        latent_dim=2,
        epochs=3,
        lr_schedule="constant",
        weight_decay=0.0,
        kl_warmup_epochs=0,
    )
    steps = count_steps_per_epoch(config, digits_binary)
    model = build_compiled_model(config, digits_binary.data_shape, steps)
    assert model.steps_per_execution == min(32, steps)
    pipeline = digits_binary.pipeline("train", config.batch_size, seed=config.seed)
    repeated, steps_per_epoch = repeat_whole_passes(model, pipeline)
    assert steps_per_epoch == steps
    assert int(repeated.cardinality()) == int(tf.data.INFINITE_CARDINALITY)
    repeated_history = fit_on_splits(model, config, digits_binary, validation=False, verbose=0)

    # The same model fitted on a new iterator each epoch, as Keras does with the finite pipeline.
    plain = build_compiled_model(config, digits_binary.data_shape, steps)
    plain_history = plain.fit(
        digits_binary.pipeline("train", config.batch_size, seed=config.seed),
        epochs=config.epochs,
        verbose=0,
        shuffle=False,
    )
    assert int(model.optimizer.iterations) == int(plain.optimizer.iterations) == 3 * steps
    np.testing.assert_allclose(
        repeated_history.history["loss"], plain_history.history["loss"], rtol=1e-5
    )
    for repeated_weight, plain_weight in zip(model.get_weights(), plain.get_weights(), strict=True):
        np.testing.assert_allclose(repeated_weight, plain_weight, rtol=1e-4, atol=1e-6)


def test_the_pipeline_stays_finite_when_graph_calls_would_cross_an_epoch(digits_binary):
    config = TrainConfig(dataset="digits", hidden_units=(8,), latent_dim=2, epochs=2)
    steps = count_steps_per_epoch(config, digits_binary)
    # A graph call of steps - 1 steps: the second call would run into the next pass.
    uneven = TrainConfig(
        dataset="digits", hidden_units=(8,), latent_dim=2, epochs=2, steps_per_execution=steps - 1
    )
    model = build_compiled_model(uneven, digits_binary.data_shape, steps)
    pipeline = digits_binary.pipeline("train", config.batch_size)
    dataset, steps_per_epoch = repeat_whole_passes(model, pipeline)
    assert dataset is pipeline and steps_per_epoch is None
    # A pass of unknown length is left as it is too.
    unknown = pipeline.filter(lambda x: True)
    dataset, steps_per_epoch = repeat_whole_passes(model, unknown)
    assert dataset is unknown and steps_per_epoch is None


@pytest.mark.parametrize(
    "most,steps_per_epoch,checkpoint_steps,expected",
    [
        (32, None, 0, 32),  # an epoch of unknown length: as configured
        (32, 29, 0, 29),  # mnist5k's default: one call an epoch
        (32, 64, 0, 32),
        (32, 100, 0, 25),  # whole calls: 4 x 25, not 32, 32, 32, 4
        (32, 60, 0, 30),
        (32, 43, 0, 22),  # no divisor in [16, 32]: 22 + 21, not 32 + 11
        (32, 33, 0, 17),
        (8, 9, 0, 5),
        (1, 50, 0, 1),
        (32, 1, 0, 1),
        (32, 29, 64, 16),  # checkpoints fall between calls: 16 divides 64
        (32, 100, 64, 32),
        (32, 96, 64, 32),
        (32, 24, 48, 24),
    ],
)
def test_graph_calls_fit_the_epoch_and_the_checkpoints(
    most, steps_per_epoch, checkpoint_steps, expected
):
    per_call = graph_call_steps(most, steps_per_epoch, checkpoint_steps)
    assert per_call == expected
    assert 1 <= per_call <= most
    if checkpoint_steps:
        assert checkpoint_steps % per_call == 0


def test_checkpoint_steps_train_on_an_epoch_shorter_than_a_graph_call(tmp_path, digits_binary):
    # 11 steps an epoch: one call of 11 would not divide the 32-step
    # checkpoints, and Keras's checkpoint callback refused the run at fit.
    config = TrainConfig(
        dataset="digits",
        hidden_units=(8,),
        latent_dim=2,
        epochs=1,
        checkpoint_steps=32,
        tensorboard=False,
        out=str(tmp_path / "run"),
    )
    assert count_steps_per_epoch(config, digits_binary) == 11
    result = train(config, verbose=0)
    assert result.model.steps_per_execution == 8
    assert len(result.history["loss"]) == 1
