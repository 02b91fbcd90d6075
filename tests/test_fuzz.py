"""Generated bad inputs: config JSON, `.npz` contents and flag values.

`docs/bad_inputs.md` lists mistakes one by one; these properties let
`hypothesis` make up new ones of the same classes. Every example is wrong
by construction, and each must end as every row of the table does: exit
status 2, exactly one line `tfvae: error: ...` on stderr, nothing on
stdout, and the workspace's files as they were.

The default profile runs 200 examples a property (600 in all, about ten
seconds); `python -m pytest -m slow tests/test_fuzz.py` runs the long
profile, 2,000 a property.
"""

import dataclasses
import json
import math
import os

import numpy as np
import pytest
from file_tree import snapshot
from hypothesis import HealthCheck
from hypothesis import assume
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tfvae import settings as tfvae_settings
from tfvae.cli import main
from tfvae.models import build_model
from tfvae.models import registry
from tfvae.training.config import TrainConfig

EXAMPLES = 200
SLOW_EXAMPLES = 2000
PROFILE = dict(
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)

# The run every config example is written into: a real VAE and its config.
RUN_CONFIG = TrainConfig(dataset="digits", hidden_units=(8,))


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    run = root / "run"
    run.mkdir()
    build_model(RUN_CONFIG, (8, 8, 1)).save(str(run / "model.keras"))
    (run / "config.json").write_text(RUN_CONFIG.to_json())
    return root


def refused(workspace, capsys, argv):
    """Runs `tfvae ARGV` in `workspace` and checks the four promises of a refusal."""
    capsys.readouterr()
    before = snapshot(workspace)
    cwd = os.getcwd()
    os.chdir(workspace)
    try:
        status = main(argv)
    finally:
        os.chdir(cwd)
    out, err = capsys.readouterr()
    assert status == 2, (argv, out, err)
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("tfvae: error: "), (argv, err)
    assert out == "", (argv, out)
    assert snapshot(workspace) == before, argv
    return lines[0]


# --- config JSON -------------------------------------------------------------

# The settings a VAE run's config.json is read against: the config's own and the VAE's.
CONFIG_SETTINGS = {
    s.name: s
    for s in (*tfvae_settings.settings_of(TrainConfig), *registry.get_family("vae").settings)
}
JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**30), 10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
# Numbers with a fractional part, of any magnitude up to 2**52.
FRACTIONS = st.builds(
    lambda whole, part: whole + part,
    st.integers(-(2**52), 2**52),
    st.sampled_from([0.5, 0.25, 0.125, 0.001]),
)
NOT_NUMBERS = st.one_of(
    st.booleans(),
    st.text(max_size=12),
    st.lists(JSON_SCALARS, max_size=3),
    st.dictionaries(st.text(max_size=6), JSON_SCALARS, max_size=2),
)


def _out_of_bounds(spec):
    """Numbers a numeric setting's bounds exclude (and, for an integer, those past 32 bits)."""
    options = []
    if spec.kind == "int":
        options.append(st.integers(tfvae_settings.LARGEST_INT + 1, 10**30))
    if spec.minimum is not None:
        low = spec.minimum if spec.exclusive_minimum else spec.minimum - 1e-9
        options.append(st.floats(max_value=low, allow_nan=False, allow_infinity=False))
    if spec.maximum is not None and spec.kind == "float":
        high = spec.maximum if spec.exclusive_maximum else spec.maximum * (1 + 1e-9) + 1e-9
        options.append(st.floats(min_value=high, allow_nan=False, allow_infinity=False))
    return st.one_of(options)


def wrong_value(spec):
    """Values of the wrong type, or past the bounds, for the setting `spec`."""
    if spec.kind == "int":
        fractions = FRACTIONS
        return st.one_of(NOT_NUMBERS, fractions, _out_of_bounds(spec))
    if spec.kind == "float":
        return st.one_of(NOT_NUMBERS, _out_of_bounds(spec))
    if spec.kind in ("ints", "floats"):
        element = dataclasses.replace(spec, kind=spec.kind[:-1])
        return st.one_of(
            st.text(max_size=12),
            st.dictionaries(st.text(max_size=6), JSON_SCALARS, min_size=1, max_size=2),
            st.tuples(wrong_value(element)).map(list),
        )
    if spec.kind == "bool":
        return st.one_of(st.integers(), st.text(max_size=12), st.lists(JSON_SCALARS, max_size=2))
    # Strings: anything but a string (a made-up string may name a real data set).
    return st.one_of(
        st.integers(), st.floats(allow_nan=False), st.lists(JSON_SCALARS, max_size=2)
    ).filter(lambda v: not (spec.optional and v is None))


@st.composite
def damaged_configs(draw):
    """The text of a config.json that must be refused."""
    how = draw(st.sampled_from(["text", "not an object", "unknown key", "wrong value"]))
    if how == "text":
        text = draw(st.text(max_size=40))
        try:
            assume(not isinstance(json.loads(text), dict))
        except ValueError:
            pass
        return text
    if how == "not an object":
        return json.dumps(draw(JSON_VALUES.filter(lambda v: not isinstance(v, dict))))
    config = RUN_CONFIG.to_dict()
    if how == "unknown key":
        known = set(config) | {s.name for f in registry.families() for s in f.settings}
        key = draw(st.text(min_size=1, max_size=12).filter(lambda k: k not in known))
        config[key] = draw(JSON_VALUES)
    else:
        name = draw(st.sampled_from(sorted(CONFIG_SETTINGS)))
        config[name] = draw(wrong_value(CONFIG_SETTINGS[name]))
    return json.dumps(config)


def _check_configs(workspace, capsys, text):
    path = os.path.join(workspace, "run", "config.json")
    with open(path, "w") as f:
        f.write(text)
    try:
        refused(workspace, capsys, ["evaluate", "run"])
    finally:
        with open(path, "w") as f:
            f.write(RUN_CONFIG.to_json())


@settings(max_examples=EXAMPLES, **PROFILE)
@given(text=damaged_configs())
def test_a_damaged_config_json_is_refused(workspace, capsys, text):
    _check_configs(workspace, capsys, text)


@pytest.mark.slow
@settings(max_examples=SLOW_EXAMPLES, **PROFILE)
@given(text=damaged_configs())
def test_a_damaged_config_json_is_refused_long(workspace, capsys, text):
    _check_configs(workspace, capsys, text)


# --- .npz contents -------------------------------------------------------------

IMAGE_SHAPES = hnp.array_shapes(min_dims=2, max_dims=3, min_side=2, max_side=8)


@st.composite
def bad_arrays(draw):
    """`{name: array}` of an `.npz` a training run must refuse."""
    how = draw(
        st.sampled_from(
            ["nan or inf", "text", "complex", "empty", "one value each", "labels", "negative"]
        )
    )
    shape = (draw(st.integers(10, 40)), *draw(IMAGE_SHAPES))
    if how == "nan or inf":
        x = draw(hnp.arrays(np.float32, shape, elements=st.floats(0, 1, width=32)))
        count = draw(st.integers(1, 5))
        flat = x.reshape(-1)
        for _ in range(count):
            flat[draw(st.integers(0, flat.size - 1))] = draw(
                st.sampled_from([np.nan, np.inf, -np.inf])
            )
        return {"x": x}
    if how == "text":
        return {"x": draw(hnp.arrays(hnp.unicode_string_dtypes(), shape[:2]))}
    if how == "complex":
        x = draw(hnp.arrays(np.float32, shape, elements=st.floats(0, 1, width=32)))
        return {"x": x + 1j * draw(st.floats(0.1, 1))}
    if how == "empty":
        return {"x": np.zeros((0, *shape[1:]), np.float32)}
    if how == "one value each":
        return {"x": draw(hnp.arrays(np.float32, (shape[0],), elements=st.floats(0, 1, width=32)))}
    if how == "negative":
        x = draw(hnp.arrays(np.int16, shape, elements=st.integers(0, 255)))
        x.reshape(-1)[draw(st.integers(0, x.size - 1))] = -draw(st.integers(1, 255))
        return {"x": x}
    # Labels that cannot be: a different count, NaN, fractions, or past any class count.
    x = draw(hnp.arrays(np.float32, shape, elements=st.floats(0, 1, width=32)))
    labels = draw(st.sampled_from(["count", "nan", "fraction", "huge"]))
    if labels == "count":
        n = draw(st.integers(1, 60).filter(lambda n: n != shape[0]))
        return {"x": x, "y": np.zeros(n, np.int64)}
    y = np.zeros(shape[0], np.float64)
    where = draw(st.integers(0, shape[0] - 1))
    y[where] = {
        "nan": draw(st.sampled_from([np.nan, np.inf, -np.inf])),
        "fraction": draw(st.floats(0.01, 0.99)) + draw(st.integers(0, 9)),
        "huge": draw(st.floats(1e12, 1e300)),
    }[labels]
    return {"x": x, "y": y}


def _check_arrays(workspace, capsys, arrays):
    path = os.path.join(workspace, "fuzz.npz")
    np.savez(path, **arrays)
    try:
        refused(workspace, capsys, ["train", "--dataset", "fuzz.npz", "--epochs", "1"])
    finally:
        os.unlink(path)


@settings(max_examples=EXAMPLES, **PROFILE)
@given(arrays=bad_arrays())
def test_bad_npz_contents_are_refused(workspace, capsys, arrays):
    _check_arrays(workspace, capsys, arrays)


@pytest.mark.slow
@settings(max_examples=SLOW_EXAMPLES, **PROFILE)
@given(arrays=bad_arrays())
def test_bad_npz_contents_are_refused_long(workspace, capsys, arrays):
    _check_arrays(workspace, capsys, arrays)


# --- flag values -------------------------------------------------------------

INT_FLAGS = ("--latent-dim", "--epochs", "--batch-size")
POSITIVE_FLOAT_FLAGS = ("--learning-rate",)
NON_NEGATIVE_FLOAT_FLAGS = ("--beta",)


def _not_an_int(text):
    try:
        int(text)
    except ValueError:
        return True
    return False


def _not_a_float(text):
    try:
        return not math.isfinite(float(text))
    except ValueError:
        return True


@st.composite
def bad_flags(draw):
    """`[FLAG=VALUE]` arguments of `tfvae train` that must be refused."""
    kind = draw(st.sampled_from(["int", "positive float", "non-negative float", "sizes"]))
    if kind == "int":
        value = draw(
            st.one_of(
                st.text(max_size=10).filter(_not_an_int),
                st.integers(max_value=0),
                st.integers(min_value=tfvae_settings.LARGEST_INT + 1, max_value=10**40),
                FRACTIONS.map(repr),
            )
        )
        return [f"{draw(st.sampled_from(INT_FLAGS))}={value}"]
    if kind == "positive float":
        value = draw(
            st.one_of(
                st.text(max_size=10).filter(_not_a_float),
                st.floats(max_value=0, allow_nan=False).map(repr),
            )
        )
        return [f"{draw(st.sampled_from(POSITIVE_FLOAT_FLAGS))}={value}"]
    if kind == "non-negative float":
        value = draw(
            st.one_of(
                st.text(max_size=10).filter(_not_a_float),
                st.floats(max_value=-1e-9, allow_nan=False).map(repr),
            )
        )
        return [f"{draw(st.sampled_from(NON_NEGATIVE_FLOAT_FLAGS))}={value}"]
    good = [str(draw(st.integers(1, 64))) for _ in range(draw(st.integers(0, 2)))]
    bad = draw(
        st.one_of(
            st.text(min_size=1, max_size=8).filter(
                lambda t: _not_an_int(t) and not t.startswith("-") and t.strip()
            ),
            st.just("0"),
            st.integers(min_value=tfvae_settings.LARGEST_INT + 1, max_value=10**40).map(str),
        )
    )
    position = draw(st.integers(0, len(good)))
    return ["--hidden-units", *good[:position], bad, *good[position:]]


def _check_flags(workspace, capsys, flags):
    refused(workspace, capsys, ["train", "--dataset", "digits", "--out", "flagrun", *flags])


@settings(max_examples=EXAMPLES, **PROFILE)
@given(flags=bad_flags())
def test_bad_flag_values_are_refused(workspace, capsys, flags):
    _check_flags(workspace, capsys, flags)


@pytest.mark.slow
@settings(max_examples=SLOW_EXAMPLES, **PROFILE)
@given(flags=bad_flags())
def test_bad_flag_values_are_refused_long(workspace, capsys, flags):
    _check_flags(workspace, capsys, flags)
