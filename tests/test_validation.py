import numpy as np
import pandas as pd
import pytest
import torch

from pyrocausal import CausalGraph
from pyrocausal.validation import check_frame, check_intervention

G = CausalGraph({"a": [], "b": ["a"]})


def test_check_frame_returns_an_ordered_float_copy():
    frame = pd.DataFrame({"b": [1, 2], "a": [True, False]})
    out = check_frame(frame, ("a", "b"))
    assert list(out.columns) == ["a", "b"] and (out.dtypes == np.float64).all()
    out.iloc[0, 0] = 99
    assert frame["a"].iloc[0]  # the caller's frame is untouched


@pytest.mark.parametrize(
    "frame, message",
    [
        (pd.DataFrame({"a": [1.0]}), r"missing column\(s\) \['b'\]"),
        (pd.DataFrame({"a": [1.0], "b": [1.0], "c": [1.0]}), r"\['c'\] that are not nodes"),
        (pd.DataFrame({"a": ["x"], "b": [1.0]}), "'a' of data is not numeric.*'x'"),
        (pd.DataFrame({"a": [np.nan], "b": [1.0]}), "'a'.*NaN.*row 0"),
        (pd.DataFrame({"a": [1.0], "b": [-np.inf]}), "'b'.*infinite"),
        (pd.DataFrame({"a": [], "b": []}), "empty"),
    ],
)
def test_check_frame_errors_name_the_problem(frame, message):
    with pytest.raises(ValueError, match=message):
        check_frame(frame, ("a", "b"))


def test_nan_allowed_when_asked_but_not_inf():
    frame = pd.DataFrame({"a": [np.nan], "b": [1.0]})
    assert np.isnan(check_frame(frame, ("a", "b"), allow_nan=True)["a"].iloc[0])
    with pytest.raises(ValueError, match="infinite"):
        check_frame(pd.DataFrame({"a": [np.inf], "b": [1.0]}), ("a", "b"), allow_nan=True)


def test_check_intervention_kinds():
    out = check_intervention({"a": 1, "b": [1.0, 2.0]}, G, num_rows=2)
    assert out["a"].shape == () and torch.equal(out["b"], torch.tensor([1.0, 2.0]))
    fn = lambda x: x + 1  # noqa: E731
    assert check_intervention({"a": fn}, G)["a"] is fn
    with pytest.raises(ValueError, match="3 values but there are 2 rows"):
        check_intervention({"a": np.zeros(3)}, G, num_rows=2)
    with pytest.raises(ValueError, match="must be numeric"):
        check_intervention({"a": "high"}, G)
    with pytest.raises(ValueError, match="not finite"):
        check_intervention({"a": float("nan")}, G)
    with pytest.raises(TypeError, match="mapping"):
        check_intervention([("a", 1.0)], G)
