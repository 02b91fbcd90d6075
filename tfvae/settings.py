"""Settings declared once: type, default, bounds, choices, help and flag in one place.

A config dataclass declares each field with `setting(...)`; a model family
declares its own settings as `Setting` objects. From that one declaration
come the validation (`check_fields`), the command-line flags
(`add_arguments`), and the values read back from parsed flags
(`values_from_args`), so a flag, its default, its help and its checks never
drift apart.

Example:

>>> @dataclasses.dataclass
... class Config:
...     epochs: int = setting(50, "Passes over the training data.", minimum=1)
>>> check_fields(Config(epochs=0))
Traceback (most recent call last):
TfvaeError: epochs must be a positive integer. Received: epochs=0
"""

import argparse
import dataclasses
import json
import math
import re
import sys

from tfvae import checks
from tfvae.errors import TfvaeError

KINDS = ("int", "float", "str", "bool", "ints", "floats")
# Every integer setting is a size, a count or a seed; TensorFlow and NumPy
# hold those in 32 bits (NumPy's seeds), so anything larger is a mistake.
LARGEST_INT = 2**31 - 1
# JSON integers longer than this are refused before Python converts them
# (Python refuses over 4300 digits with an error that suggests raising its limit).
MAX_JSON_DIGITS = 40


@dataclasses.dataclass(frozen=True)
class Setting:
    """One setting: what it is, what values it takes, and its command-line flag.

    Args:
        name: str. The field name (`latent_dim`).
        default: the default value.
        help: str. One sentence for `--help` and the docs.
        kind: str. `"int"`, `"float"`, `"str"`, `"bool"`, `"ints"` or
            `"floats"` (tuples). Defaults to the default's type.
        minimum, maximum: float or None. Inclusive bounds of numbers.
        exclusive_minimum, exclusive_maximum: bool. Make a bound exclusive.
        choices: tuple, or a callable returning one (read when checked, so
            a registry can grow after the setting is declared).
        optional: bool. `None` is allowed. Defaults to `False`.
        flag: str or None. The flag; `None` derives `--latent-dim` from
            the name; `""` means the setting has no flag.
        metavar: str or None. Shown for the value in `--help`.
        allow_empty: bool. For tuples: may be empty. Defaults to `True`.
        distinct: bool. For tuples: no value twice. Defaults to `False`.
        label: str or None. How errors name the setting when it is not
            its field name ("architecture" for `arch`).
        validator: callable or None. `validator(value)` runs after the
            type and bound checks, returns the value, and raises
            `TfvaeError` for what the declaration cannot say (a data set
            name or a file path).
    """

    name: str
    default: object
    help: str
    kind: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    exclusive_maximum: bool = False
    choices: object = None
    optional: bool = False
    flag: str | None = None
    metavar: str | None = None
    allow_empty: bool = True
    distinct: bool = False
    label: str | None = None
    validator: object = None

    def __post_init__(self):
        if self.kind is None:
            object.__setattr__(self, "kind", _kind_of(self.default))
        if self.kind not in KINDS:
            raise TfvaeError(f"unknown setting kind {self.kind!r}; expected one of {list(KINDS)}")

    @property
    def flag_name(self):
        return "--" + self.name.replace("_", "-") if self.flag is None else self.flag

    def allowed_choices(self):
        return tuple(self.choices()) if callable(self.choices) else self.choices

    def check(self, value):
        """Returns `value` normalized (tuples for lists); raises `TfvaeError` naming the setting."""
        if value is None and self.optional:
            return None
        if self.kind in ("ints", "floats"):
            value = self._check_sequence(value)
        else:
            value = self._check_one(self.name, value)
        return value if self.validator is None else self.validator(value)

    def _check_one(self, name, value):
        _check_magnitude(self, name, value)
        allowed = self.allowed_choices()
        if allowed is not None:
            return checks.choice(self.label or name, value, allowed)
        if self.kind == "bool":
            return checks.boolean(name, value)
        if self.kind == "str":
            if not isinstance(value, str) or not value:
                raise TfvaeError(f"{name} must be a non-empty string. Received: {name}={value!r}")
            return value
        if self.kind in ("int", "ints"):
            if self.minimum == 1 and self.maximum is None:
                return checks.positive_int(name, value)
            if self.minimum == 0 and self.maximum is None:
                return checks.non_negative_int(name, value)
            if not checks.is_integer(value):
                raise TfvaeError(f"{name} must be an integer. Received: {name}={value!r}")
        return (
            _number(self, name, value)
            if self.kind in ("float", "floats")
            else int(_number(self, name, value))
        )

    def _check_sequence(self, values):
        if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
            raise TfvaeError(
                f"{self.name} must be a list of values. Received: {self.name}={values!r}"
            )
        values = tuple(values)
        if not self.allow_empty and not values:
            raise TfvaeError(f"{self.name} needs at least one value. Received: {self.name}=()")
        values = tuple(self._check_one(self.name, v) for v in values)
        return checks.distinct(self.name, values) if self.distinct else values


def shown_value(value):
    """`repr(value)`, with an integer of many digits shown by its length instead."""
    if checks.is_integer(value) and value.bit_length() > 64:
        try:
            digits = f"{len(str(abs(value)))} digits"
        except ValueError:  # past Python's limit on converting integers to text
            digits = f"about {math.floor(value.bit_length() * math.log10(2))} digits"
        return f"{'-' if value < 0 else ''}<an integer of {digits}>"
    return repr(value)


def _check_magnitude(spec, name, value):
    """Refuses integers too large for the setting before other checks format or convert them."""
    if not checks.is_integer(value):
        return
    if spec.kind in ("int", "ints"):
        low = -LARGEST_INT if spec.minimum is None else max(math.ceil(spec.minimum), -LARGEST_INT)
        high = LARGEST_INT if spec.maximum is None else min(math.floor(spec.maximum), LARGEST_INT)
        if not low <= value <= high and abs(value) > LARGEST_INT:
            raise TfvaeError(
                f"{name} must be an integer in [{low}, {high}]. "
                f"Received: {name}={shown_value(value)}"
            )
    elif spec.kind in ("float", "floats") and abs(value) > sys.float_info.max:
        bounds = checks.describe_range(
            spec.minimum, spec.maximum, spec.exclusive_minimum, spec.exclusive_maximum
        )
        raise TfvaeError(f"{name} must be {bounds}. Received: {name}={shown_value(value)}")


def _parse_json_int(text):
    if len(text.lstrip("-")) > MAX_JSON_DIGITS:
        raise TfvaeError(
            f"it holds an integer of {len(text.lstrip('-'))} digits "
            f"(at most {MAX_JSON_DIGITS} are read)"
        )
    return int(text)


def parse_json(text):
    """Parses settings JSON; an integer of absurdly many digits raises `TfvaeError`.

    Python's own parser refuses integers of more than 4300 digits with an
    error suggesting to raise its limit; settings read from files refuse
    them here, saying what is wrong, and the bounds of each `Setting` then
    refuse what is merely too large.
    """
    return json.loads(text, parse_int=_parse_json_int)


def load_json(path, what=None):
    """Reads a JSON file of settings or saved state with `parse_json`.

    A missing file, one that is not UTF-8 JSON, and one holding an integer
    of absurdly many digits each raise a one-line `TfvaeError` naming
    `what` (default: the path).
    """
    what = what or path
    try:
        with open(path, encoding="utf-8") as f:
            return parse_json(f.read())
    except FileNotFoundError:
        raise TfvaeError(f"missing file {path}") from None
    except TfvaeError as error:
        raise TfvaeError(f"cannot read {what}: {error}") from None
    except (OSError, ValueError, RecursionError) as error:  # ValueError: bad JSON or UTF-8
        text = str(error).strip()
        raise TfvaeError(
            f"cannot read {what}: {text.splitlines()[0] if text else type(error).__name__}"
        ) from None


def check_json(value, schema, where):
    """Raises `TfvaeError` unless the JSON `value` has the structure `schema` describes.

    A schema is one of:

    - `"int"`: an integer (not a bool) within 64 bits; `"number"`: an
      integer or float, not a bool; `"finite"`: a finite one; `"str"`,
      `"bool"`, `"any"`;
    - `"array"`: a number or nested lists of numbers (a tensor's values);
    - `("list", item)`: a list of `item`s; `("map", value)`: an object of
      string keys and `value`s; `("nullable", schema)`: `None` or `schema`;
    - a dict `{key: schema}`: an object holding at least these keys.

    Args:
        value: parsed JSON.
        schema: as above.
        where: str. Names `value` in the message (`"state.json"`); keys and
            indices are appended (`state.json: history.loss[3]`).

    Returns:
        `value`.
    """
    problem = _json_problem(value, schema, "")
    if problem is not None:
        place, expected = problem
        if expected == "present":
            raise TfvaeError(f"{where} has no {place}")
        raise TfvaeError(
            f"{where}{': ' + place if place else ''} must be {expected}. "
            f"Received: {_short(_at(value, place))}"
        )
    return value


_JSON_KINDS = {
    "int": ("an integer", lambda v: checks.is_integer(v) and abs(v) < 2**63),
    "number": ("a number", checks.is_number),
    "finite": ("a finite number", lambda v: checks.is_number(v) and math.isfinite(v)),
    "str": ("a string", lambda v: isinstance(v, str)),
    "bool": ("true or false", lambda v: isinstance(v, bool)),
    "any": ("anything", lambda v: True),
}


def _json_problem(value, schema, place):
    """`(place, expected)` of the first part of `value` that does not fit `schema`, or `None`."""
    if isinstance(schema, str) and schema in _JSON_KINDS:
        expected, fits = _JSON_KINDS[schema]
        return None if fits(value) else (place, expected)
    if schema == "array":
        if isinstance(value, list):
            for index, item in enumerate(value):
                problem = _json_problem(item, "array", f"{place}[{index}]")
                if problem:
                    return problem
            return None
        return None if checks.is_number(value) else (place, "a number or a list of numbers")
    if isinstance(schema, dict):
        if not isinstance(value, dict):
            return place, "a JSON object"
        for key, part in schema.items():
            inner = f"{place}.{key}" if place else key
            if key not in value:
                return inner, "present"
            problem = _json_problem(value[key], part, inner)
            if problem:
                return problem
        return None
    kind, part = schema
    if kind == "nullable":
        return None if value is None else _json_problem(value, part, place)
    if kind == "list":
        if not isinstance(value, list):
            return place, "a list"
        for index, item in enumerate(value):
            problem = _json_problem(item, part, f"{place}[{index}]")
            if problem:
                return problem
        return None
    if kind == "map":
        if not isinstance(value, dict):
            return place, "a JSON object"
        for key, item in value.items():
            problem = _json_problem(item, part, f"{place}.{key}" if place else str(key))
            if problem:
                return problem
        return None
    raise TfvaeError(f"unknown JSON schema {schema!r}")


def _at(value, place):
    """The part of `value` at `place` (`a.b[2]`), or `value` when it cannot be followed."""
    if not place:
        return value
    for token in re.findall(r"[^.\[\]]+|\[\d+\]", place):
        try:
            value = value[int(token[1:-1])] if token.startswith("[") else value[token]
        except (KeyError, IndexError, TypeError, ValueError):
            return value
    return value


def _short(value, limit=60):
    text = shown_value(value) if checks.is_integer(value) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _number(spec, name, value):
    if spec.kind in ("int", "ints") and not checks.is_integer(value):
        raise TfvaeError(f"{name} must be an integer. Received: {name}={value!r}")
    return checks.number_in(
        name,
        value,
        spec.minimum,
        spec.maximum,
        spec.exclusive_minimum,
        spec.exclusive_maximum,
    )


def _kind_of(default):
    if isinstance(default, bool):
        return "bool"
    if isinstance(default, int):
        return "int"
    if isinstance(default, float):
        return "float"
    if isinstance(default, (tuple, list)):
        return "floats" if any(isinstance(v, float) for v in default) else "ints"
    return "str"


def setting(default, help, **options):
    """A dataclass field declared as a `Setting` (see `Setting` for `options`)."""
    spec = {"default": default, "help": help, **options}
    if isinstance(default, (list, tuple)):
        return dataclasses.field(default_factory=lambda: tuple(default), metadata={"setting": spec})
    return dataclasses.field(default=default, metadata={"setting": spec})


def settings_of(config_class):
    """The `Setting`s a dataclass declares with `setting(...)`, in field order."""
    return tuple(
        Setting(name=field.name, **field.metadata["setting"])
        for field in dataclasses.fields(config_class)
        if "setting" in field.metadata
    )


def check_fields(config):
    """Checks and normalizes every `setting(...)` field of the dataclass `config` in place."""
    for spec in settings_of(type(config)):
        setattr(config, spec.name, spec.check(getattr(config, spec.name)))


def _argument_type(kind, name):
    def parse(text):
        try:
            return int(text) if kind in ("int", "ints") else float(text)
        except ValueError:
            expected = "an integer" if kind in ("int", "ints") else "a number"
            raise argparse.ArgumentTypeError(f"expected {expected}. Received: {text!r}") from None

    parse.__name__ = name
    return parse


def add_arguments(parser, settings, defaults=None, unset=(), prefix=""):
    """Adds one flag per setting to `parser` (an `ArgumentParser` or argument group).

    Args:
        parser: where the flags go.
        settings: iterable of `Setting`.
        defaults: dict or None. Defaults that differ from the settings' own
            (a command whose demo trains 30 epochs).
        unset: names whose flag defaults to `None` (not given), so the
            caller can tell a given flag from a default one.
        prefix: str. Put before each name to make its `dest`, when two
            configs of one command have settings of the same name.
    """
    defaults = defaults or {}
    for spec in settings:
        if spec.flag == "":
            continue
        default = defaults.get(spec.name, spec.default)
        shown = default
        if isinstance(default, tuple):
            default = list(default)
        if spec.name in unset:
            default = None
        metavar = spec.metavar
        if metavar is None and prefix and spec.allowed_choices() is None:
            metavar = spec.name.upper()  # not the prefixed dest
        kwargs = {"dest": prefix + spec.name, "default": default, "metavar": metavar}
        if spec.kind == "bool":
            kwargs["action"] = argparse.BooleanOptionalAction
            kwargs.pop("metavar")
            shown = {True: "on", False: "off"}.get(shown, shown)
        elif spec.allowed_choices() is not None:
            kwargs["choices"] = spec.allowed_choices()
        elif spec.kind in ("int", "float"):
            kwargs["type"] = int if spec.kind == "int" else float
        elif spec.kind != "str":
            kwargs["type"] = _argument_type(spec.kind, spec.name)
        if spec.kind in ("ints", "floats"):
            kwargs["nargs"] = "*" if spec.allow_empty else "+"
        text = spec.help
        if shown is not None:
            value = " ".join(str(v) for v in shown) if isinstance(shown, tuple) else shown
            text = f"{text} Default: {value if value != '' else '(none)'}"
        kwargs["help"] = text.replace("%", "%%")  # argparse formats help text with %
        parser.add_argument(spec.flag_name, **kwargs)


def values_from_args(args, settings, prefix=""):
    """`{name: value}` of `settings` in parsed `args`; flags left `None` are left out."""
    values = {}
    for spec in settings:
        value = getattr(args, prefix + spec.name, None)
        if value is not None:
            values[spec.name] = tuple(value) if isinstance(value, list) else value
    return values
