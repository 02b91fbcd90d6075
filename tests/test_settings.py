"""Settings declared once (`tfvae.settings`) and the argument checks they use (`tfvae.checks`)."""

import argparse
import dataclasses

import pytest

from tfvae import checks
from tfvae.errors import TfvaeError
from tfvae.settings import Setting
from tfvae.settings import add_arguments
from tfvae.settings import check_fields
from tfvae.settings import setting
from tfvae.settings import settings_of
from tfvae.settings import values_from_args


@dataclasses.dataclass
class Example:
    steps: int = setting(10, "Steps.", minimum=1)
    rate: float = setting(0.5, "A share.", minimum=0, maximum=1, exclusive_minimum=True)
    mode: str = setting("fast", "How.", choices=("fast", "slow"), label="running mode")
    widths: tuple = setting((8, 16), "Widths.", kind="ints", minimum=1, distinct=True)
    verbose: bool = setting(False, "Talk.")
    name: str | None = setting(None, "A name.", kind="str", optional=True, flag="--called")
    hidden: int = setting(3, "Not a flag.", flag="")


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("steps", 0, "steps must be a positive integer. Received: steps=0"),
        ("steps", True, "steps must be a positive integer. Received: steps=True"),
        ("steps", 2.0, "steps must be a positive integer. Received: steps=2.0"),
        ("rate", 0.0, "rate must be in (0, 1]. Received: rate=0.0"),
        ("rate", float("nan"), "rate must be in (0, 1]. Received: rate=nan"),
        ("mode", "medium", "unknown running mode 'medium'; expected one of ['fast', 'slow']"),
        ("widths", (8, 0), "widths must be a positive integer. Received: widths=0"),
        ("widths", (8, 8), "widths lists [8] more than once"),
        ("widths", "8", "widths must be a list of values"),
        ("verbose", 1, "verbose must be true or false. Received: verbose=1"),
        ("name", "", "name must be a non-empty string"),
    ],
)
def test_each_declared_bound_is_checked_with_a_message_naming_it(field, value, message):
    config = Example()
    setattr(config, field, value)
    with pytest.raises(TfvaeError) as error:
        check_fields(config)
    assert message in str(error.value)


def test_checking_normalizes_and_keeps_good_values():
    config = Example(widths=[4, 2], rate=1, name="x")
    check_fields(config)
    assert config.widths == (4, 2) and config.rate == 1.0 and isinstance(config.rate, float)
    assert Setting("n", 1, "N.").kind == "int" and Setting("f", (0.5,), "F.").kind == "floats"
    with pytest.raises(TfvaeError, match="unknown setting kind"):
        Setting("x", 1, "X.", kind="complex")


def test_flags_defaults_and_help_come_from_the_declaration():
    parser = argparse.ArgumentParser()
    add_arguments(parser, settings_of(Example), defaults={"steps": 20}, unset=("rate",))
    flags = {a.option_strings[0]: a for a in parser._actions if a.option_strings}
    assert "--hidden" not in flags and "--called" in flags and "--steps" in flags
    assert flags["--steps"].default == 20 and "Default: 20" in flags["--steps"].help
    assert flags["--rate"].default is None
    assert flags["--mode"].choices == ("fast", "slow")
    assert flags["--widths"].default == [8, 16] and "Default: 8 16" in flags["--widths"].help
    args = parser.parse_args(["--widths", "1", "2", "3", "--no-verbose", "--called", "me"])
    values = values_from_args(args, settings_of(Example))
    assert values == {
        "steps": 20,
        "mode": "fast",
        "widths": (1, 2, 3),
        "verbose": False,
        "name": "me",
    }
    with pytest.raises(SystemExit):
        parser.parse_args(["--steps", "many"])  # argparse's own "invalid int value"


def test_prefix_keeps_two_configs_of_one_command_apart():
    parser = argparse.ArgumentParser()
    add_arguments(parser, [Setting("batch_size", 32, "B.")], prefix="head_")
    add_arguments(parser, [Setting("batch_size", 128, "B.", flag="--model-batch-size")])
    args = parser.parse_args(["--batch-size", "7"])
    assert args.head_batch_size == 7 and args.batch_size == 128
    assert values_from_args(args, [Setting("batch_size", 32, "B.")], prefix="head_") == {
        "batch_size": 7
    }


def test_validator_and_callable_choices():
    seen = []
    spec = Setting("path", "a.npz", "A file.", validator=lambda v: seen.append(v) or v)
    assert spec.check("b.npz") == "b.npz" and seen == ["b.npz"]
    names = ["x"]
    grows = Setting("model", "x", "Family.", choices=lambda: names)
    names.append("y")
    assert grows.check("y") == "y"


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda: checks.positive_int("n", -1), "n must be a positive integer. Received: n=-1"),
        (lambda: checks.non_negative_int("k", -1), "k must be an integer >= 0. Received: k=-1"),
        (lambda: checks.number_in("b", -1, low=0), "b must be a finite number >= 0"),
        (lambda: checks.number_in("r", 0, low=0, low_open=True), "r must be a positive number"),
        (lambda: checks.number_in("p", 100, 0, 100, True, True), "p must be in (0, 100)"),
        (lambda: checks.number_in("h", 2, high=1), "h must be a finite number <= 1"),
        (lambda: checks.optional_seed("seed", -2), "seed must be an integer >= 0 or None"),
        (lambda: checks.boolean("flag", "yes"), "flag must be true or false"),
        (lambda: checks.choice("tuner", "grid", ("random",)), "unknown tuner 'grid'"),
        (lambda: checks.positive_ints("w", [], allow_empty=False), "w needs at least one value"),
        (lambda: checks.distinct("d", (1, 2, 1)), "d lists [1] more than once"),
    ],
)
def test_checks_quote_the_argument_and_the_value(call, message):
    with pytest.raises(TfvaeError) as error:
        call()
    assert message in str(error.value)


def test_checks_return_normalized_values():
    assert checks.positive_int("n", 3) == 3 and checks.optional_seed("s", None) is None
    assert checks.number_in("x", 2, low=0) == 2.0 and checks.positive_ints("w", [1, 2]) == (1, 2)
    assert checks.is_integer(3) and not checks.is_integer(True) and not checks.is_integer(3.0)
    assert checks.is_number(0.5) and not checks.is_number(False)
