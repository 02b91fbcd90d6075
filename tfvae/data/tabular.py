"""CSV and Parquet tables of numeric columns, as `(N, features)` arrays.

Every column is a feature and must be numeric (integers, floats or
booleans); a text or date column is refused naming it, as is a missing
value. A CSV's first row holds the column names.
"""

import os

import numpy as np

from tfvae.errors import TfvaeError

TABLE_SUFFIXES = (".csv", ".parquet")


def is_table_file(name):
    return str(name).lower().endswith(TABLE_SUFFIXES)


def load_table(path):
    """`(x, columns)`: the table at `path` as an `(N, features)` float64 array and its column names."""
    import pandas as pd

    if not os.path.isfile(path):
        raise TfvaeError(f"data file not found: {path}")
    name = os.path.basename(path)
    try:
        if path.lower().endswith(".csv"):
            frame = pd.read_csv(path)
        else:
            frame = pd.read_parquet(path)
    except Exception as error:  # pandas and pyarrow raise many kinds for a bad file
        text = " ".join(str(error).split()) or type(error).__name__
        raise TfvaeError(f"cannot read table {path}: {text}") from None
    if frame.shape[1] == 0 or frame.shape[0] == 0:
        raise TfvaeError(
            f"{name} is empty. Received: {frame.shape[0]} rows, {frame.shape[1]} columns"
        )
    for column in frame.columns:
        kind = frame[column].dtype.kind
        if kind not in "biuf":
            raise TfvaeError(
                f"{name}: column {column!r} is not numeric (dtype {frame[column].dtype}); tfvae "
                "models numeric columns only: drop it or encode it as numbers"
            )
    missing = frame.isna().sum()
    if missing.any():
        column = missing.index[np.flatnonzero(missing.to_numpy())[0]]
        raise TfvaeError(
            f"{name}: column {column!r} has {int(missing[column])} missing values; fill or drop them first"
        )
    x = frame.to_numpy(dtype=np.float64)
    if not np.all(np.isfinite(x)):
        bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
        raise TfvaeError(f"{name} contains {bad} NaN or Inf values; clean the data first")
    return x, [str(c) for c in frame.columns]
