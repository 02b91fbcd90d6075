"""Argument checks, shared by every place where a value enters tfvae.

Each check raises `TfvaeError` naming the argument, the value received and
what is allowed, in Keras's style: `"latent_dim must be a positive integer.
Received: latent_dim=0"`. Each returns the value (normalized where said), so
a check can sit in an assignment.
"""

import math
import numbers

from tfvae.errors import TfvaeError


def is_integer(value):
    """Whether `value` is an integer (a `bool` is not, and neither is `2.0`)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_number(value):
    """Whether `value` is a real number (a `bool` is not)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def positive_int(name, value):
    """`value` as an `int`; raises unless it is an integer >= 1."""
    if not is_integer(value) or value < 1:
        raise TfvaeError(f"{name} must be a positive integer. Received: {name}={value!r}")
    return int(value)


def non_negative_int(name, value):
    """`value` as an `int`; raises unless it is an integer >= 0."""
    if not is_integer(value) or value < 0:
        raise TfvaeError(f"{name} must be an integer >= 0. Received: {name}={value!r}")
    return int(value)


def optional_seed(name, value):
    """`None`, or `value` as an integer >= 0."""
    if value is not None and (not is_integer(value) or value < 0):
        raise TfvaeError(f"{name} must be an integer >= 0 or None. Received: {name}={value!r}")
    return None if value is None else int(value)


def number_in(name, value, low=None, high=None, low_open=False, high_open=False):
    """`value` as a `float`; raises unless it is a finite number within the bounds.

    Args:
        name: str. The argument's name, for the message.
        value: the value to check.
        low, high: float or None. Bounds; `None` leaves that side open.
        low_open, high_open: bool. Exclude the bound itself.
    """
    ok = is_number(value) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        raise TfvaeError(
            f"{name} must be {describe_range(low, high, low_open, high_open)}. "
            f"Received: {name}={value!r}"
        )
    return float(value)


def describe_range(low=None, high=None, low_open=False, high_open=False):
    """Words for a range of numbers: `"a finite number >= 0"`, `"a number in (0, 1)"`."""
    if low is not None and high is not None:
        left, right = "(" if low_open else "[", ")" if high_open else "]"
        return f"in {left}{low:g}, {high:g}{right}"
    if low is not None:
        if low == 0 and low_open:
            return "a positive number"
        return f"a finite number {'>' if low_open else '>='} {low:g}"
    if high is not None:
        return f"a finite number {'<' if high_open else '<='} {high:g}"
    return "a finite number"


def boolean(name, value):
    """`value`; raises unless it is `True` or `False`."""
    if not isinstance(value, bool):
        raise TfvaeError(f"{name} must be true or false. Received: {name}={value!r}")
    return value


def choice(name, value, allowed):
    """`value`; raises unless it is one of `allowed`."""
    allowed = list(allowed)
    if value not in allowed:
        raise TfvaeError(f"unknown {name} {value!r}; expected one of {allowed}")
    return value


def positive_ints(name, values, allow_empty=True):
    """`values` as a tuple of ints; raises unless each is an integer >= 1."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise TfvaeError(f"{name} must be a list of positive integers. Received: {name}={values!r}")
    values = tuple(values)
    if not allow_empty and not values:
        raise TfvaeError(f"{name} needs at least one value. Received: {name}=()")
    for value in values:
        positive_int(name, value)
    return tuple(int(v) for v in values)


def distinct(name, values):
    """`values`; raises if one of them appears more than once."""
    values = tuple(values)
    repeated = sorted({v for v in values if values.count(v) > 1})
    if repeated:
        raise TfvaeError(
            f"{name} lists {repeated!r} more than once. Received: {name}={list(values)!r}"
        )
    return values
