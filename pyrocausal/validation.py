"""Input checks shared by every public entry point: data frames and interventions.

Each check raises a :class:`ValueError` (or :class:`TypeError`) that names the offending
column, variable or value, and never modifies what the caller passed.
"""

from __future__ import annotations

__all__ = ["check_frame", "check_intervention", "Intervention", "InterventionValue"]

from collections.abc import Callable, Mapping
from numbers import Number

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from pyrocausal.graph import CausalGraph

InterventionValue = (
    float | int | Tensor | np.ndarray | pd.Series | list | Callable[[Tensor], Tensor]
)
Intervention = Mapping[str, InterventionValue]


def check_frame(
    data: pd.DataFrame,
    columns: tuple[str, ...],
    *,
    what: str = "data",
    allow_nan: bool = False,
    allow_extra: bool = False,
) -> pd.DataFrame:
    """Check that ``data`` is a non-empty numeric frame with exactly ``columns``.

    Returns a float64 copy with the columns in the given order. NaN means "not observed"
    where ``allow_nan`` is set; infinite values are always an error.

    Example:
        >>> import pandas as pd
        >>> check_frame(pd.DataFrame({"b": [1, 2], "a": [3.0, 4.0]}), ("a", "b")).columns.tolist()
        ['a', 'b']
        >>> check_frame(pd.DataFrame({"a": [1.0]}), ("a", "b"))
        Traceback (most recent call last):
        ...
        ValueError: data is missing column(s) ['b'] (graph nodes without data); it has ['a']
    """
    if isinstance(data, pd.Series):
        data = data.to_frame().T
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"{what} must be a pandas DataFrame, got {type(data).__name__}")
    if len(data) == 0:
        raise ValueError(f"{what} is empty (0 rows)")
    names = [str(c) for c in data.columns]
    if len(set(names)) != len(names):
        dup = sorted({c for c in names if names.count(c) > 1})
        raise ValueError(f"{what} has duplicated column(s) {dup}")
    missing = [c for c in columns if c not in names]
    if missing:
        raise ValueError(
            f"{what} is missing column(s) {missing} (graph nodes without data); it has {names}"
        )
    extra = [c for c in names if c not in columns]
    if extra and not allow_extra:
        raise ValueError(
            f"{what} has column(s) {extra} that are not nodes of the graph {list(columns)}; "
            "drop them or add them to the graph"
        )
    # Positions, not label indexing: ``data.loc[:, columns]`` cost more than a 1,000-row
    # counterfactual's flows.
    positions = [names.index(c) for c in columns]
    dtypes = data.dtypes
    for col, i in zip(columns, positions):
        dtype = dtypes.iloc[i]
        if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_numeric_dtype(dtype):
            continue
        series = data.iloc[:, i]
        bad = series[pd.to_numeric(series, errors="coerce").isna() & series.notna()]
        example = f"; e.g. {bad.iloc[0]!r} in row {bad.index[0]!r}" if len(bad) else ""
        raise ValueError(f"column {col!r} of {what} is not numeric (dtype {dtype}){example}")
    selected = data if positions == list(range(data.shape[1])) else data.iloc[:, positions]
    values = selected.to_numpy(dtype=np.float64, na_value=np.nan, copy=True)
    bad = np.isinf(values) if allow_nan else ~np.isfinite(values)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        kind = "infinite" if np.isinf(values[row, col]) else "NaN"
        count = int(bad[:, col].sum())
        raise ValueError(
            f"column {columns[col]!r} of {what} has {count} {kind} value(s), first in row "
            f"{data.index[row]!r}" + ("" if allow_nan else "; drop or impute them first")
        )
    return pd.DataFrame(values, index=data.index.copy(), columns=list(columns))


def check_intervention(
    intervention: Intervention,
    graph: CausalGraph,
    num_rows: int | None = None,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> dict[str, Tensor | Callable[[Tensor], Tensor]]:
    """Validate an intervention ``{node: value}`` and turn values into tensors.

    A value is a number, a per-row array (tensor, numpy array, list or pandas Series of
    length ``num_rows``) or a callable of the node's natural value (a shift or soft
    intervention such as ``lambda x: x + 1``).

    Example:
        >>> g = CausalGraph({"x": [], "y": ["x"]})
        >>> check_intervention({"x": 1.5}, g)
        {'x': tensor(1.5000)}
        >>> check_intervention({"z": 1.5}, g)
        Traceback (most recent call last):
        ...
        ValueError: cannot intervene on unknown variable 'z'; the graph has ['x', 'y']
    """
    if not isinstance(intervention, Mapping):
        raise TypeError(
            "an intervention is a mapping {variable: value}, got " + type(intervention).__name__
        )
    out: dict[str, Tensor | Callable[[Tensor], Tensor]] = {}
    for node, value in intervention.items():
        if node not in graph:
            raise ValueError(
                f"cannot intervene on unknown variable {node!r}; the graph has {list(graph.nodes)}"
            )
        if callable(value) and not isinstance(value, Tensor | np.ndarray | pd.Series):
            out[node] = value
            continue
        if isinstance(value, bool | Number | np.number):
            tensor = torch.tensor(float(value), dtype=dtype, device=device)
        else:
            try:
                array = np.asarray(value.detach().cpu() if isinstance(value, Tensor) else value)
                array = array.astype(np.float64)
            except (TypeError, ValueError) as exc:
                raise ValueError(
                    f"intervention value for {node!r} must be numeric, got {value!r}"
                ) from exc
            if array.ndim > 1:
                raise ValueError(
                    f"intervention value for {node!r} must be a number or a 1-D per-row array, "
                    f"got shape {array.shape}"
                )
            if array.ndim == 1 and num_rows is not None and len(array) not in (1, num_rows):
                raise ValueError(
                    f"per-row intervention for {node!r} has {len(array)} values but there are "
                    f"{num_rows} rows"
                )
            tensor = torch.as_tensor(array, dtype=dtype, device=device)
        if not torch.isfinite(tensor).all():
            raise ValueError(f"intervention value for {node!r} is not finite: {value!r}")
        out[node] = tensor
    return out
