"""Calibration of pyrocausal's posterior counterfactuals against exact answers.

Three synthetic SCMs with ground truth, each given to pyrocausal with its true mechanisms
written by hand (``pc.HandWritten``, ``pc.Bernoulli``), so that what is measured is the
inference, not the fit:

* ``interaction``: x1 ~ N(0, 1); x2 = 0.5 x1 + u2; x3 = x1 + x2 + x1 x2 + 0.3 u3; query
  do(x1 = 1) on x3. The hidden variables interact with the intervened one, so the
  counterfactual depends on them (in an additive SCM it would not).
* ``discrete``: z ~ N(0, 1); t ~ Bernoulli(sigmoid(1.5 z)); y ~ Bernoulli(sigmoid(-0.5 + 2 t +
  z + 1.5 t z)), Gumbel-max; query do(t := 1 - t) on y.
* ``latent``: u latent ~ N(0, 1); t ~ Bernoulli(sigmoid(2 u)); w = u + 0.5 e (a proxy);
  y = t + u + t u + 0.3 e'; query do(t := 1 - t) on y.

For every pattern of observed variables (more observed, further down each table) it reports

1. the 50% and 90% central-interval coverage of the unit's true counterfactual (the truth is
   computed from the row's true noise);
2. coverage within five groups of rows sorted by the exact posterior mean (worst deviation);
3. the distance to the exact posterior counterfactual distribution, per row: 1-D Wasserstein
   (continuous) or total variation (binary), against the floor that the same number of exact
   i.i.d. draws reaches; the exact distribution comes from numerical integration over the
   hidden noise on a fine grid (closed-form Gaussian conditionals where they exist);

for pyrocausal (default ``SVIAbduction``) and, beside it, the naive evidence-ignoring answer
(draws of the intervened model). Further sections: degeneration to the core's exact answer with
full evidence, the all-binary enumeration cross-check, speed (1,000 partially observed rows x
1,000 draws), and parameter uncertainty (single fit vs bootstrap ensemble vs a Bayesian
reference, hand-written families with free parameters fitted to few rows).

    .venv/bin/python bench/posterior_calibration.py            # full run (~15 min on 1 thread)
    .venv/bin/python bench/posterior_calibration.py --quick    # a few minutes

Writes ``posterior_calibration[_quick].json`` and ``.md`` in ``--out`` (default bench/results).
"""

from __future__ import annotations

import argparse
import copy
import datetime as _dt
import json
import platform
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy import stats
from scipy.special import expit

import pyrocausal as pc
from pyrocausal.inference.posterior import AmortizedFlow, ImportanceAbduction, SVIAbduction

GROUPS = 5
GRID = np.linspace(-8.0, 8.0, 4001)
H = GRID[1] - GRID[0]


def _identity() -> pc.HandWritten:
    return pc.HandWritten(lambda pa, u: u, lambda pa, x: x)


def _norm_logpdf(x: np.ndarray, loc: Any = 0.0, var: Any = 1.0) -> np.ndarray:
    return -0.5 * ((x - loc) ** 2 / var + np.log(2 * np.pi * var))


def _grid_draws(log_w: np.ndarray, num: int, rng: np.random.Generator) -> np.ndarray:
    """``num`` draws of u per row from grid log-weights ``(n, G)``, jittered within the cell."""
    w = np.exp(log_w - log_w.max(1, keepdims=True))
    cdf = np.cumsum(w, 1)
    cdf /= cdf[:, -1:]
    idx = np.stack([np.searchsorted(c, rng.random(num)) for c in cdf])
    idx = np.minimum(idx, len(GRID) - 1)
    return GRID[idx] + (rng.random(idx.shape) - 0.5) * H


def _grid_mean(log_w: np.ndarray, values: np.ndarray) -> np.ndarray:
    w = np.exp(log_w - log_w.max(1, keepdims=True))
    return (w * values).sum(1) / w.sum(1)


# ---------------------------------------------------------------- the interaction SCM
class Interaction:
    name = "interaction"
    target = "x3"
    discrete = False
    patterns = (("x3",), ("x2", "x3"), ("x1", "x3"))

    @staticmethod
    def model() -> pc.SCM:
        def f3(pa):
            return pa["x1"] + pa["x2"] + pa["x1"] * pa["x2"]

        return pc.SCM(
            {"x1": [], "x2": ["x1"], "x3": ["x1", "x2"]},
            mechanisms={
                "x1": _identity(),
                "x2": pc.HandWritten(
                    lambda pa, u: 0.5 * pa["x1"] + u, lambda pa, x: x - 0.5 * pa["x1"]
                ),
                "x3": pc.HandWritten(
                    lambda pa, u: f3(pa) + 0.3 * u, lambda pa, x: (x - f3(pa)) / 0.3
                ),
            },
        )

    intervention = {"x1": 1.0}

    @staticmethod
    def sample(n: int, rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray]:
        u1, u2, u3 = rng.normal(size=(3, n))
        x1, x2 = u1, 0.5 * u1 + u2
        x3 = x1 + x2 + x1 * x2 + 0.3 * u3
        return pd.DataFrame({"x1": x1, "x2": x2, "x3": x3}), Interaction.cf(x1, x2, x3, u2)

    @staticmethod
    def cf(x1: Any, x2: Any, x3: Any, u2: Any) -> Any:
        e3 = x3 - (x1 + x2 + x1 * x2)  # 0.3 u3
        x2_cf = 0.5 + u2
        return 1.0 + 2 * x2_cf + e3

    @staticmethod
    def exact(rows: pd.DataFrame, seen: tuple[str, ...], num: int, rng: np.random.Generator):
        """Exact posterior draws ``(n, num)`` of x3' and exact posterior means ``(n,)``."""
        x3 = rows["x3"].to_numpy()[:, None]
        if "x1" in seen:  # u2 | x1, x3 is Gaussian
            x1 = rows["x1"].to_numpy()[:, None]
            a = 1 + x1
            prec = 1 + a**2 / 0.09
            m = a * (x3 - x1 - 0.5 * x1 * a) / 0.09 / prec
            u2 = m + rng.normal(size=(len(rows), num)) / np.sqrt(prec)
            draws = Interaction.cf(x1, 0.5 * x1 + u2, x3, u2)
            mean = Interaction.cf(x1, 0.5 * x1 + m, x3, m)[:, 0]
            return draws, mean
        x1g = GRID[None, :]
        if "x2" in seen:  # grid over u1 = x1; u2 = x2 - 0.5 x1
            x2 = rows["x2"].to_numpy()[:, None]
            log_w = (
                _norm_logpdf(x1g)
                + _norm_logpdf(x2 - 0.5 * x1g)
                + _norm_logpdf(x3, x1g + x2 + x1g * x2, 0.09)
            )
            mean = _grid_mean(log_w, Interaction.cf(x1g, x2, x3, x2 - 0.5 * x1g))
            x1 = _grid_draws(log_w, num, rng)
            return Interaction.cf(x1, x2, x3, x2 - 0.5 * x1), mean
        # only x3: grid over x1, u2 | x1, x3 Gaussian (x3 is linear in u2 given x1)
        a = 1 + x1g
        mu = x1g + 0.5 * x1g * a
        log_w = _norm_logpdf(x1g) + _norm_logpdf(x3, mu, a**2 + 0.09)
        prec = 1 + a**2 / 0.09
        m = a * (x3 - mu) / 0.09 / prec
        mean = _grid_mean(log_w, Interaction.cf(x1g, 0.5 * x1g + m, x3, m))
        x1 = _grid_draws(log_w, num, rng)
        a = 1 + x1
        prec = 1 + a**2 / 0.09
        u2 = a * (x3 - x1 - 0.5 * x1 * a) / 0.09 / prec + rng.normal(size=x1.shape) / np.sqrt(prec)
        return Interaction.cf(x1, 0.5 * x1 + u2, x3, u2), mean


# ---------------------------------------------------------------- the discrete SCM
def _flip(value: np.ndarray, logit: np.ndarray, logit_cf: np.ndarray) -> np.ndarray:
    """P(cf = 1) of a binary Gumbel-max node (value = 1[logit + e > 0], e ~ Logistic)."""
    s, s_cf = expit(logit), expit(logit_cf)
    one = expit(np.minimum(logit, logit_cf)) / s
    zero = np.maximum(0.0, s_cf - s) / (1 - s)
    return np.where(value == 1, one, zero)


class Discrete:
    name = "discrete"
    target = "y"
    discrete = True
    patterns = (("t", "y"), ("z", "t", "y"))

    @staticmethod
    def model() -> pc.SCM:
        return pc.SCM(
            {"z": [], "t": ["z"], "y": ["z", "t"]},
            mechanisms={
                "z": _identity(),
                "t": pc.Bernoulli(logits=lambda pa: 1.5 * pa["z"]),
                "y": pc.Bernoulli(logits=lambda pa: Discrete.logit(pa["t"], pa["z"])),
            },
        )

    # y's logit b0 + bt t + bz z + btz t z, t's logit m + k z, z ~ N(loc, scale^2)
    params: dict[str, tuple[float, ...]] = {
        "y": (-0.5, 2.0, 1.0, 1.5),
        "t": (0.0, 1.5),
        "z": (0.0, 1.0),
    }

    @staticmethod
    def logit(t: Any, z: Any, coef: tuple[float, ...] = params["y"]) -> Any:
        b0, bt, bz, btz = coef
        return b0 + bt * t + bz * z + btz * t * z

    @staticmethod
    def sample(n: int, rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray]:
        z = rng.normal(size=n)
        t = (rng.logistic(size=n) + 1.5 * z > 0).astype(float)
        e = rng.logistic(size=n)
        y = (Discrete.logit(t, z) + e > 0).astype(float)
        y_cf = (Discrete.logit(1 - t, z) + e > 0).astype(float)
        return pd.DataFrame({"z": z, "t": t, "y": y}), y_cf

    @staticmethod
    def intervention(rows: pd.DataFrame) -> dict[str, np.ndarray]:
        return {"t": 1.0 - rows["t"].to_numpy()}

    @staticmethod
    def exact_probability(
        rows: pd.DataFrame,
        seen: tuple[str, ...],
        params: dict[str, tuple[float, ...]] | None = None,
    ) -> np.ndarray:
        """P(y' = 1 | evidence) per row; ``params`` (default: the truth's) as in ``params``."""
        params = params or Discrete.params
        t = rows["t"].to_numpy()[:, None]
        y = rows["y"].to_numpy()[:, None]

        def logit(t: Any, z: Any) -> Any:
            return Discrete.logit(t, z, params["y"])

        if "z" in seen:
            z = rows["z"].to_numpy()[:, None]
            return _flip(y, logit(t, z), logit(1 - t, z))[:, 0]
        (m, k), (loc, scale) = params["t"], params["z"]
        zg = loc + scale * GRID[None, :]
        lt = m + k * zg
        log_w = (
            _norm_logpdf(zg, loc, scale**2)
            + np.where(t == 1, np.log(expit(lt)), np.log(expit(-lt)))
            + np.where(y == 1, np.log(expit(logit(t, zg))), np.log(expit(-logit(t, zg))))
        )
        return _grid_mean(log_w, _flip(y, logit(t, zg), logit(1 - t, zg)))


# ---------------------------------------------------------------- the latent-confounder SCM
class Latent:
    name = "latent"
    target = "y"
    discrete = False
    patterns = (("t", "y"), ("t", "w", "y"))

    @staticmethod
    def model() -> pc.SCM:
        def fy(pa):
            return pa["t"] + pa["u"] + pa["t"] * pa["u"]

        graph = pc.CausalGraph({"u": [], "t": ["u"], "w": ["u"], "y": ["t", "u"]}, latent=["u"])
        return pc.SCM(
            graph,
            mechanisms={
                "u": _identity(),
                "t": pc.Bernoulli(logits=lambda pa: 2.0 * pa["u"]),
                "w": pc.HandWritten(
                    lambda pa, e: pa["u"] + 0.5 * e, lambda pa, x: (x - pa["u"]) / 0.5
                ),
                "y": pc.HandWritten(
                    lambda pa, e: fy(pa) + 0.3 * e, lambda pa, x: (x - fy(pa)) / 0.3
                ),
            },
        )

    @staticmethod
    def sample(n: int, rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray]:
        u = rng.normal(size=n)
        t = (rng.logistic(size=n) + 2 * u > 0).astype(float)
        w = u + 0.5 * rng.normal(size=n)
        y = t + u + t * u + 0.3 * rng.normal(size=n)
        return pd.DataFrame({"t": t, "w": w, "y": y}), y + (1 - 2 * t) * (1 + u)

    @staticmethod
    def intervention(rows: pd.DataFrame) -> dict[str, np.ndarray]:
        return {"t": 1.0 - rows["t"].to_numpy()}

    @staticmethod
    def exact(rows: pd.DataFrame, seen: tuple[str, ...], num: int, rng: np.random.Generator):
        t = rows["t"].to_numpy()[:, None]
        y = rows["y"].to_numpy()[:, None]
        ug = GRID[None, :]
        log_w = (
            _norm_logpdf(ug)
            + np.log(expit((2 * t - 1) * 2 * ug))
            + _norm_logpdf(y, t + ug + t * ug, 0.09)
        )
        if "w" in seen:
            log_w = log_w + _norm_logpdf(rows["w"].to_numpy()[:, None], ug, 0.25)
        mean = _grid_mean(log_w, y + (1 - 2 * t) * (1 + ug))
        u = _grid_draws(log_w, num, rng)
        return y + (1 - 2 * t) * (1 + u), mean


# ---------------------------------------------------------------- metrics
def _coverage(draws: np.ndarray, truth: np.ndarray, level: float) -> np.ndarray:
    lo, hi = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2], axis=1)
    return (truth >= lo) & (truth <= hi)


def _group_coverage(hit: np.ndarray, key: np.ndarray) -> list[float]:
    order = np.argsort(key, kind="stable")
    return [float(hit[g].mean()) for g in np.array_split(order, GROUPS)]


def _continuous_report(
    draws: np.ndarray,
    truth: np.ndarray,
    exact_mean: np.ndarray,
    ref: np.ndarray,
    iid: np.ndarray,
    distance_rows: int | None = None,
) -> dict[str, Any]:
    """Coverage on every row; W1 to the exact draws ``ref`` on the first ``distance_rows``
    (all by default), against the floor of exact i.i.d. draws ``iid``."""
    out: dict[str, Any] = {}
    for level in (0.5, 0.9):
        hit = _coverage(draws, truth, level)
        groups = _group_coverage(hit, exact_mean)
        out[f"coverage_{int(level * 100)}"] = float(hit.mean())
        out[f"group_coverage_{int(level * 100)}"] = groups
        out[f"worst_group_gap_{int(level * 100)}"] = float(max(abs(g - level) for g in groups))
    w1 = np.array([stats.wasserstein_distance(d, r) for d, r in zip(draws[:distance_rows], ref)])
    floor = np.array([stats.wasserstein_distance(d, r) for d, r in zip(iid, ref)])
    out["w1"] = float(w1.mean())
    out["w1_floor"] = float(floor.mean())
    out["w1_ratio"] = float(w1.mean() / floor.mean())
    return out


def _binary_report(p_hat: np.ndarray, p: np.ndarray, truth: np.ndarray, draws: int) -> dict:
    tv = np.abs(p_hat - p)
    k = np.arange(draws + 1)
    floor = np.array([(stats.binom.pmf(k, draws, q) * np.abs(k / draws - q)).sum() for q in p])
    groups = np.array_split(np.argsort(p, kind="stable"), GROUPS)
    gaps = [float(abs(p_hat[g].mean() - truth[g].mean())) for g in groups]
    return {
        "tv": float(tv.mean()),
        "tv_floor": float(floor.mean()),
        "tv_ratio": float(tv.mean() / floor.mean()),
        "calibration_by_group": [
            {"mean_predicted": float(p_hat[g].mean()), "frequency_of_truth": float(truth[g].mean())}
            for g in groups
        ],
        "worst_group_gap": float(max(gaps)),
        "group_gap_se": float(
            max(np.sqrt(p[g].mean() * (1 - p[g].mean()) / len(g)) for g in groups)
        ),
    }


def masked_rows(
    spec: Any, seen: tuple[str, ...], n: int, rng: np.random.Generator
) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame]:
    """``n`` rows of ``spec`` with their true counterfactuals, and the evidence: the rows with
    every column not in ``seen`` set to NaN."""
    rows, truth = spec.sample(n, rng)
    evidence = rows.copy()
    for c in evidence.columns:
        if c not in seen:
            evidence[c] = np.nan
    return rows, truth, evidence


def _run_pattern(
    spec: Any, seen: tuple[str, ...], n: int, draws: int, seed: int, abduction: Any
) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    rows, truth, evidence = masked_rows(spec, seen, n, rng)
    scm = spec.model()
    iv = spec.intervention if isinstance(spec.intervention, dict) else spec.intervention(rows)
    start = time.perf_counter()
    result = scm.counterfactual(evidence, iv, num_samples=draws, abduction=abduction, seed=seed)
    seconds = time.perf_counter() - start
    model = result.samples[spec.target].unstack("draw").reindex(result.rows).to_numpy()
    naive = result.interventional[spec.target].unstack("draw").reindex(result.rows).to_numpy()
    out: dict[str, Any] = {
        "observed": list(seen),
        "rows": n,
        "draws": draws,
        "seconds": seconds,
        "ess_median": float(result.diagnostics["ess"].median()),
        "ess_min": float(result.diagnostics["ess"].min()),
    }
    if spec.discrete:
        p = spec.exact_probability(rows, seen)
        out["pyrocausal"] = _binary_report(model.mean(1), p, truth, draws)
        out["naive"] = _binary_report(naive.mean(1), p, truth, draws)
        return out
    ref, exact_mean = spec.exact(rows, seen, 20_000, rng)
    iid, _ = spec.exact(rows, seen, draws, rng)
    out["pyrocausal"] = _continuous_report(model, truth, exact_mean, ref, iid)
    out["naive"] = _continuous_report(naive, truth, exact_mean, ref, iid)
    return out


def method_comparison(rows: int, draws: int) -> list[dict[str, Any]]:
    """The default against its variants on the interaction SCM (how the defaults were chosen)."""
    methods = {
        "SVI, per-row Gaussian + resampling (default)": SVIAbduction(),
        "SVI, per-row Gaussian, guide draws only": SVIAbduction(resample=False),
        "SVI, amortized flow + resampling": SVIAbduction(guide=AmortizedFlow, num_steps=500),
        "importance sampling from the prior (20,000)": ImportanceAbduction(num_particles=20_000),
    }
    out = []
    for i, seen in enumerate((("x3",), ("x1", "x3"))):
        for name, abduction in methods.items():
            r = _run_pattern(Interaction, seen, rows, draws, seed=100 + i, abduction=abduction)
            out.append(
                {
                    "method": name,
                    "observed": list(seen),
                    "seconds": r["seconds"],
                    "ess_median": r["ess_median"],
                    **r["pyrocausal"],
                }
            )
            print(
                "methods",
                seen,
                name,
                round(r["seconds"], 1),
                round(r["pyrocausal"]["w1_ratio"], 2),
                flush=True,
            )
    return out


# ---------------------------------------------------------------- further checks
def degeneration(n: int) -> dict[str, Any]:
    from pyrocausal.datasets import load_scm

    truth = load_scm("triangle_nonlinear")
    data = truth.sample(3000, seed=0)
    scm = pc.SCM(truth.graph, mechanisms=pc.MAF())
    scm.fit(data, epochs=30, progress=False, seed=0)
    rows = truth.sample(n, seed=1)
    exact = scm.counterfactual(rows, {"x2": 1.0})
    result = scm.counterfactual(rows, {"x2": 1.0}, num_samples=50, seed=0)
    diff = max(
        float(
            np.abs(
                result.samples[v].unstack("draw").reindex(result.rows).to_numpy()
                - exact[[v]].to_numpy()
            ).max()
        )
        for v in scm.nodes
    )
    return {"rows": n, "draws": 50, "max_abs_difference": diff, "tolerance": 1e-3}


def enumeration_check(draws: int) -> dict[str, Any]:
    def lb(a):
        return -1.0 + 2.0 * a

    def lc(a, b):
        return -0.5 + 1.5 * a - 2.0 * b + 2.5 * a * b

    scm = pc.SCM(
        {"a": [], "b": ["a"], "c": ["a", "b"]},
        mechanisms={
            "a": pc.Bernoulli(logits=lambda pa: torch.tensor(0.3)),
            "b": pc.Bernoulli(logits=lambda pa: lb(pa["a"])),
            "c": pc.Bernoulli(logits=lambda pa: lc(pa["a"], pa["b"])),
        },
    )
    evidence = pd.DataFrame({"a": [0.0, 0.0, 1.0, 1.0], "b": np.nan, "c": [0.0, 1.0, 0.0, 1.0]})
    result = scm.counterfactual(
        evidence, {"a": 1 - evidence["a"].to_numpy()}, num_samples=draws, seed=0
    )
    got = result.samples["c"].groupby(level="row").mean().to_numpy()
    exact = []
    for a, c in zip(evidence["a"], evidence["c"]):
        post = {}
        for b in (0, 1):
            pb = expit(lb(a)) if b else 1 - expit(lb(a))
            pcb = expit(lc(a, b)) if c else 1 - expit(lc(a, b))
            post[b] = pb * pcb
        z = sum(post.values())
        total = 0.0
        for b in (0, 1):
            p_b1 = float(_flip(np.array(b), np.array(lb(a)), np.array(lb(1 - a))))
            for b_cf, p_bcf in ((1, p_b1), (0, 1 - p_b1)):
                total += (
                    post[b]
                    / z
                    * p_bcf
                    * float(_flip(np.array(c), np.array(lc(a, b)), np.array(lc(1 - a, b_cf))))
                )
        exact.append(total)
    exact = np.array(exact)
    se = np.sqrt(exact * (1 - exact) / draws)
    random = se > 1e-9  # rows whose exact answer is 0 or 1 must match it exactly
    return {
        "draws": draws,
        "pyrocausal": got.tolist(),
        "exact": exact.tolist(),
        "max_abs_error": float(np.abs(got - exact).max()),
        "max_error_in_standard_errors": float((np.abs(got - exact)[random] / se[random]).max()),
        "certain_rows_exact": bool(np.all(np.abs(got - exact)[~random] < 1e-9)),
    }


def speed() -> dict[str, Any]:
    from pyrocausal.datasets import load_scm

    out = {}
    rng = np.random.default_rng(0)
    rows, _ = Interaction.sample(1000, rng)
    evidence = rows.assign(x2=np.nan)
    start = time.perf_counter()
    Interaction.model().counterfactual(evidence, {"x1": 1.0}, num_samples=1000, seed=0)
    out["hand-written interaction SCM, x2 hidden"] = time.perf_counter() - start
    truth = load_scm("triangle_nonlinear")
    scm = pc.SCM(truth.graph, mechanisms=pc.MAF())
    scm.fit(truth.sample(5000, seed=0), epochs=30, progress=False, seed=0)
    test = truth.sample(1000, seed=1)
    evidence = test.assign(x2=np.nan)
    evidence.loc[evidence.index[::2], "x1"] = np.nan  # two missingness patterns
    evidence.loc[evidence.index[::2], "x2"] = test["x2"].iloc[::2]
    start = time.perf_counter()
    scm.counterfactual(evidence, {"x1": 0.5}, num_samples=1000, seed=0)
    out["fitted MAF SCM (triangle_nonlinear), x1 or x2 hidden"] = time.perf_counter() - start
    return {"rows": 1000, "draws": 1000, "seconds": out}


# ---------------------------------------------------------------- parameter uncertainty
def _family() -> pc.SCM:
    """The interaction SCM's family with free parameters (true values in comments)."""

    def f2(pa, th):
        return th["b"] * pa["x1"]  # 0.5

    def f3(pa, th):  # 1, 1, 1
        return th["a1"] * pa["x1"] + th["a2"] * pa["x2"] + th["a12"] * pa["x1"] * pa["x2"]

    return pc.SCM(
        {"x1": [], "x2": ["x1"], "x3": ["x1", "x2"]},
        mechanisms={
            "x1": pc.HandWritten(
                lambda pa, u, th: th["m"] + th["s"].exp() * u,
                lambda pa, x, th: (x - th["m"]) / th["s"].exp(),
                params={"m": 0.0, "s": 0.0},
            ),
            "x2": pc.HandWritten(
                lambda pa, u, th: f2(pa, th) + th["s"].exp() * u,
                lambda pa, x, th: (x - f2(pa, th)) / th["s"].exp(),
                params={"b": 0.0, "s": 0.0},
            ),
            "x3": pc.HandWritten(
                lambda pa, u, th: f3(pa, th) + th["s"].exp() * u,
                lambda pa, x, th: (x - f3(pa, th)) / th["s"].exp(),
                params={"a1": 0.0, "a2": 0.0, "a12": 0.0, "s": 0.0},
            ),
        },
    )


def _parameters(scm: pc.SCM) -> list[torch.nn.Parameter]:
    return [p for p in scm.parameters() if p.requires_grad]


def _nuts_members(
    scm: pc.SCM, params: list, start: torch.Tensor, x: dict, num_models: int, seed: int
) -> list[pc.SCM]:
    from pyro.infer.mcmc import MCMC, NUTS

    owners = []
    for module in scm.modules():
        for name, p in module._parameters.items():
            if p is not None and p.requires_grad:
                owners.append((module, name, p.shape, p.numel()))

    def log_lik() -> torch.Tensor:
        total = torch.zeros(())
        for node in scm.nodes:
            g, k = scm._slot[node]
            parents = {q: x[q] for q in scm.graph.parents(node)}
            total = (
                total
                + scm.stacks[g].distribution(k, parents, x[node].shape).log_prob(x[node]).sum()
            )
        return total

    def potential(z: dict[str, torch.Tensor]) -> torch.Tensor:
        theta, offset, originals = z["theta"], 0, []
        for module, name, shape, size in owners:
            originals.append(module._parameters[name])
            del module._parameters[name]
            setattr(module, name, theta[offset : offset + size].reshape(shape))
            offset += size
        try:
            return -log_lik()
        finally:
            for (module, name, _, _), p in zip(owners, originals):
                delattr(module, name)
                module._parameters[name] = p

    torch.manual_seed(seed)
    mcmc = MCMC(
        NUTS(potential_fn=potential),
        num_samples=20 * num_models,
        warmup_steps=300,
        initial_params={"theta": start},
        disable_progbar=True,
    )
    mcmc.run()
    draws = mcmc.get_samples()["theta"][::20]
    members = []
    for theta in draws[:num_models]:
        member = copy.deepcopy(scm)
        offset = 0
        for p in _parameters(member):
            p.data.copy_(theta[offset : offset + p.numel()].reshape(p.shape))
            offset += p.numel()
        members.append(member)
    return members


def parameter_uncertainty(
    replicates: int, train_rows: int, test_rows: int, members: int, draws: int
) -> dict[str, Any]:
    """Coverage of units' true counterfactuals with the family's parameters fitted to few rows."""
    abduction = ImportanceAbduction(num_particles=4000)
    fit = {"epochs": 300, "lr": 0.05, "val_fraction": 0.0}
    hits: dict[str, dict[float, list[float]]] = {}
    widths: dict[str, list[float]] = {}
    seconds: dict[str, float] = {}
    for r in range(replicates):
        rng = np.random.default_rng(1000 + r)
        train, _ = Interaction.sample(train_rows, rng)
        test, truth = Interaction.sample(test_rows, rng)
        evidence = test.assign(x2=np.nan)
        models: dict[str, Callable[[], Any]] = {
            "single fit": partial(lambda t, r: pc.SCMEnsemble([_fitted(t, r)]), train, r),
            "bootstrap ensemble": partial(
                pc.SCMEnsemble.bootstrap, _family(), train, num_models=members, seed=r, **fit
            ),
            "Bayesian (NUTS, flat prior)": partial(
                lambda t, r: pc.SCMEnsemble(_bayes(t, members, r)), train, r
            ),
        }
        for name, make in models.items():
            start = time.perf_counter()
            ensemble = make()
            result = ensemble.counterfactual(
                evidence, Interaction.intervention, num_samples=draws, abduction=abduction, seed=r
            )
            seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - start
            cf = result.samples["x3"].unstack("draw").reindex(result.rows).to_numpy()
            for level in (0.5, 0.9):
                hit = _coverage(cf, truth, level)
                hits.setdefault(name, {}).setdefault(level, []).append(float(hit.mean()))
            lo, hi = np.quantile(cf, [0.05, 0.95], axis=1)
            widths.setdefault(name, []).append(float((hi - lo).mean()))
    return {
        "replicates": replicates,
        "train_rows": train_rows,
        "test_rows": test_rows,
        "members": members,
        "draws": draws,
        "observed": ["x1", "x3"],
        "results": {
            name: {
                "coverage_50": float(np.mean(h[0.5])),
                "coverage_90": float(np.mean(h[0.9])),
                "coverage_90_per_replicate": h[0.9],
                "width_90": float(np.mean(widths[name])),
                "seconds": seconds[name],
            }
            for name, h in hits.items()
        },
    }


def _fitted(train: pd.DataFrame, seed: int) -> pc.SCM:
    scm = _family()
    scm.fit(train, epochs=300, lr=0.05, progress=False, seed=seed, val_fraction=0.0)
    return scm


def _bayes(train: pd.DataFrame, members: int, seed: int) -> list[pc.SCM]:
    scm = _fitted(train, seed)
    params = _parameters(scm)
    start = torch.cat([p.detach().reshape(-1) for p in params])
    x = {c: torch.tensor(train[c].to_numpy(), dtype=torch.float32) for c in train}
    return _nuts_members(scm, params, start, x, members, seed)


# ---------------------------------------------------------------- report
def _markdown(report: dict[str, Any]) -> str:
    lines = [
        "# Posterior counterfactual calibration",
        "",
        f"{report['date']}, {report['platform']}, torch {report['torch']}, "
        f"{report['threads']} thread(s). Command: `{report['command']}`",
        "",
        "Rows per pattern: {rows}, draws per row: {draws}; method: default "
        "`SVIAbduction` (per-row Gaussian guide + importance resampling). Coverage of the "
        "true counterfactual by central intervals; 'worst group' = largest deviation from "
        "nominal over 5 groups of rows sorted by the exact posterior mean; W1 = mean "
        "1-D Wasserstein distance to the exact posterior counterfactual, 'floor' = the same "
        "for as many exact i.i.d. draws.".format(**report["config"]),
        "",
    ]
    for name, patterns in report["calibration"].items():
        lines += [f"## {name}", ""]
        if patterns and "tv" in patterns[0]["pyrocausal"]:
            lines += [
                "| observed | answer | TV | floor | TV / floor | worst group gap "
                "(predicted vs true frequency) | s |",
                "|---|---|---|---|---|---|---|",
            ]
            for p in patterns:
                for who in ("pyrocausal", "naive"):
                    r = p[who]
                    lines.append(
                        f"| {', '.join(p['observed'])} | {who} | {r['tv']:.4f} | "
                        f"{r['tv_floor']:.4f} | {r['tv_ratio']:.2f} | "
                        f"{r['worst_group_gap']:.3f} (se {r['group_gap_se']:.3f}) | "
                        f"{p['seconds'] if who == 'pyrocausal' else float('nan'):.1f} |"
                    )
        else:
            lines += [
                "| observed | answer | cover 50% | cover 90% | worst group 50% | "
                "worst group 90% | W1 | floor | W1 / floor | s |",
                "|---|---|---|---|---|---|---|---|---|---|",
            ]
            for p in patterns:
                for who in ("pyrocausal", "naive"):
                    r = p[who]
                    lines.append(
                        f"| {', '.join(p['observed'])} | {who} | {r['coverage_50']:.3f} | "
                        f"{r['coverage_90']:.3f} | {r['worst_group_gap_50']:.3f} | "
                        f"{r['worst_group_gap_90']:.3f} | {r['w1']:.4f} | {r['w1_floor']:.4f} | "
                        f"{r['w1_ratio']:.2f} | "
                        f"{p['seconds'] if who == 'pyrocausal' else float('nan'):.1f} |"
                    )
        lines.append("")
    if "methods" in report:
        lines += [
            "## Abduction methods (interaction SCM)",
            "",
            "| observed | method | cover 50% | cover 90% | worst group 90% | W1 / floor "
            "| median ESS | s |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in report["methods"]:
            lines.append(
                f"| {', '.join(r['observed'])} | {r['method']} | {r['coverage_50']:.3f} | "
                f"{r['coverage_90']:.3f} | {r['worst_group_gap_90']:.3f} | {r['w1_ratio']:.2f} | "
                f"{r['ess_median']:.0f} | {r['seconds']:.1f} |"
            )
        lines.append("")
    d = report["degeneration"]
    lines += [
        "## Degeneration (full evidence, fitted MAF SCM)",
        "",
        f"max |posterior draw - exact core answer| over {d['rows']} rows x {d['draws']} "
        f"draws: {d['max_abs_difference']:.2e} (tolerance {d['tolerance']:g})",
        "",
    ]
    e = report["enumeration"]
    lines += [
        "## All-binary SCM vs exact enumeration",
        "",
        f"P(c' = 1) per row, {e['draws']} draws: pyrocausal "
        f"{[round(v, 4) for v in e['pyrocausal']]}, exact {[round(v, 4) for v in e['exact']]};"
        f" max error {e['max_abs_error']:.4f} "
        f"({e['max_error_in_standard_errors']:.2f} binomial standard errors)",
        "",
    ]
    s = report["speed"]
    lines += ["## Speed", "", f"{s['rows']} partially observed rows x {s['draws']} draws:", ""]
    lines += [f"- {k}: {v:.1f} s" for k, v in s["seconds"].items()] + [""]
    if "parameter_uncertainty" in report:
        u = report["parameter_uncertainty"]
        lines += [
            "## Parameter uncertainty",
            "",
            f"Interaction family with 8 free parameters fitted to {u['train_rows']} rows; "
            f"{u['test_rows']} test rows with x2 hidden; {u['replicates']} replicates; "
            f"{u['members']} members; importance-sampling abduction.",
            "",
            "| model | cover 50% | cover 90% | mean 90% width | s |",
            "|---|---|---|---|---|",
        ]
        for name, r in u["results"].items():
            lines.append(
                f"| {name} | {r['coverage_50']:.3f} | {r['coverage_90']:.3f} | "
                f"{r['width_90']:.3f} | {r['seconds']:.0f} |"
            )
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer rows and replicates")
    p.add_argument("--rows", type=int, default=None, help="rows per pattern")
    p.add_argument("--draws", type=int, default=1000)
    p.add_argument("--out", default=str(Path(__file__).parent / "results"))
    p.add_argument("--skip-parameters", action="store_true", help="skip parameter uncertainty")
    p.add_argument("--skip-methods", action="store_true", help="skip the method comparison")
    args = p.parse_args()
    torch.set_num_threads(1)
    rows = args.rows or (500 if args.quick else 3000)
    report: dict[str, Any] = {
        "date": _dt.datetime.now().isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "command": "python bench/posterior_calibration.py" + (" --quick" if args.quick else ""),
        "config": {
            "rows": rows,
            "draws": args.draws,
            "groups": GROUPS,
            "abduction": repr(SVIAbduction()),
        },
        "calibration": {},
    }
    for spec in (Interaction, Discrete, Latent):
        report["calibration"][spec.name] = []
        for i, seen in enumerate(spec.patterns):
            out = _run_pattern(spec, seen, rows, args.draws, seed=i, abduction=SVIAbduction())
            report["calibration"][spec.name].append(out)
            print(
                spec.name,
                seen,
                json.dumps({k: v for k, v in out["pyrocausal"].items() if not isinstance(v, list)}),
                flush=True,
            )
    if not args.skip_methods:
        report["methods"] = method_comparison(300 if args.quick else 1000, args.draws)
    report["degeneration"] = degeneration(200)
    report["enumeration"] = enumeration_check(200_000)
    report["speed"] = speed()
    print(report["degeneration"], report["enumeration"], report["speed"], flush=True)
    if not args.skip_parameters:
        report["parameter_uncertainty"] = parameter_uncertainty(
            replicates=3 if args.quick else 8,
            train_rows=60,
            test_rows=300 if args.quick else 400,
            members=10,
            draws=400,
        )
        print(json.dumps(report["parameter_uncertainty"]["results"]), flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = "posterior_calibration" + ("_quick" if args.quick else "")
    (out / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / f"{stem}.md").write_text(_markdown(report) + "\n")
    print(f"wrote {out / stem}.json and .md")


if __name__ == "__main__":
    main()
