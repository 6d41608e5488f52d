"""Calibration of posterior counterfactuals from models **fitted from data** with the defaults.

``bench/posterior_calibration.py`` hands pyrocausal the true mechanism families, so it
measures the inference alone. Here every model is what a user gets: ``pc.SCM(graph)`` (the
default mechanisms; discrete nodes declared ``pc.Bernoulli()`` / ``pc.Categorical(k)``
without logits) fitted to 5,000 rows, over several fit seeds, then asked posterior
counterfactual questions about fresh partially observed rows whose exact counterfactual
posteriors are known:

* ``interaction`` (continuous, interactions): x1 ~ N(0, 1); x2 = 0.5 x1 + u2; x3 = x1 + x2
  + x1 x2 + 0.3 u3; do(x1 = 1) on x3.
* ``discrete3`` (all discrete, interactions): A ~ Bernoulli(0.4); X in {0, 1, 2} and Y in
  {0, 1, 2} Gumbel-max with logit tables that no additive logit reproduces; do(X := X + 1
  mod 3) on Y.
* ``mixed`` (continuous and discrete): z ~ N(0, 1); t ~ Bernoulli(sigmoid(1.5 z)); y ~
  Bernoulli(sigmoid(-0.5 + 2 t + z + 1.5 t z)); do(t := 1 - t) on y.
* ``confounded`` (a latent confounder h of a binary treatment and the outcome, no proxy):
  h ~ N(0, 1); t ~ Bernoulli(sigmoid(2 h)); y = 2 t + h + t h + 0.5 e; do(t := 1 - t) on y.
  The counterfactual is not identified from (t, y): what is measured is whether the answer
  says so (its warning, its width) instead of a confident wrong answer.

Reported per SCM, fit seed and pattern: 50% / 90% coverage of the units' true
counterfactuals, the worst of five groups of rows, and W1 (continuous) or TV (discrete) to the
exact posterior counterfactual as a multiple of the finite-draw floor; the chosen mechanisms
and the query time.

    .venv/bin/python bench/posterior_fitted.py                 # 3 fit seeds (~40 min, 1 thread)
    .venv/bin/python bench/posterior_fitted.py --quick         # 1 seed, fewer rows
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import platform
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy.optimize import minimize
from scipy.special import expit, softmax

sys.path.insert(0, str(Path(__file__).parent))

from posterior_calibration import (  # noqa: E402
    GRID,
    Discrete,
    Interaction,
    _binary_report,
    _continuous_report,
    _grid_draws,
    _grid_mean,
    _norm_logpdf,
    masked_rows,
)

import pyrocausal as pc  # noqa: E402

GROUPS = 5
W1_ROWS = 2000  # rows whose distance to the exact posterior is measured


# ---------------------------------------------------------------- all-discrete SCM
class Discrete3:
    """A -> X -> Y, A -> Y with 2, 3 and 3 states and interacting logit tables."""

    name = "discrete3"
    target = "Y"
    states = 3
    patterns = (("A", "X", "Y"), ("X", "Y"))
    graph = {"A": [], "X": ["A"], "Y": ["A", "X"]}
    p_a = 0.4
    logit_x = np.array([[0.0, 1.0, -0.5], [0.0, -1.0, 1.0]])  # [a] -> (3,)
    # [a, x] -> (3,): Y's preferred state flips with A in a way no additive logit reproduces
    logit_y = np.array(
        [
            [[0.0, 1.5, -1.0], [0.0, -1.0, 1.0], [0.0, 0.5, 0.5]],
            [[0.0, -1.0, 1.5], [0.0, 2.0, -0.5], [0.0, -0.5, -1.5]],
        ]
    )

    @staticmethod
    def mechanisms() -> dict[str, Any]:
        return {"A": pc.Bernoulli(), "X": pc.Categorical(3), "Y": pc.Categorical(3)}

    @classmethod
    def sample(cls, n: int, rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray]:
        a = (rng.random(n) < cls.p_a).astype(int)
        x = (cls.logit_x[a] + rng.gumbel(size=(n, 3))).argmax(1)
        g = rng.gumbel(size=(n, 3))
        y = (cls.logit_y[a, x] + g).argmax(1)
        y_cf = (cls.logit_y[a, (x + 1) % 3] + g).argmax(1)
        frame = pd.DataFrame({"A": a, "X": x, "Y": y}).astype(float)
        return frame, y_cf.astype(float)

    @staticmethod
    def intervention(rows: pd.DataFrame) -> dict[str, np.ndarray]:
        return {"X": (rows["X"].to_numpy() + 1) % 3}

    @classmethod
    def exact_probability(
        cls, rows: pd.DataFrame, seen: tuple[str, ...], rng: np.random.Generator
    ) -> np.ndarray:
        """Exact P(Y' = k | evidence), ``(n, 3)``: Gumbel-max by rejection with 4M draws."""
        g = rng.gumbel(size=(4_000_000, 3))
        table = np.zeros((2, 3, 3, 3))  # [a, x, y, k] = P(Y' = k | a, x, y)
        for a in (0, 1):
            for x in range(3):
                y = (cls.logit_y[a, x] + g).argmax(1)
                y_cf = (cls.logit_y[a, (x + 1) % 3] + g).argmax(1)
                for v in range(3):
                    table[a, x, v] = np.bincount(y_cf[y == v], minlength=3) / max(1, (y == v).sum())
        x = rows["X"].to_numpy().astype(int)
        y = rows["Y"].to_numpy().astype(int)
        if "A" in seen:
            return table[rows["A"].to_numpy().astype(int), x, y]
        p_x = softmax(cls.logit_x, -1)  # [a, x]
        p_y = softmax(cls.logit_y, -1)  # [a, x, y]
        prior = np.array([1 - cls.p_a, cls.p_a])
        post = prior[None, :] * p_x[:, x].T * p_y[:, x, y].T  # (n, 2)
        post /= post.sum(1, keepdims=True)
        return post[:, :1] * table[0, x, y] + post[:, 1:] * table[1, x, y]


# ---------------------------------------------------------------- latent confounder
class Confounded:
    """h (latent) -> t (binary), h -> y, t -> y; y = 2 t + h + t h + 0.5 e."""

    name = "confounded"
    target = "y"
    patterns = (("t", "y"),)
    graph = {"h": [], "t": ["h"], "y": ["t", "h"]}
    latent = ("h",)
    noise = 0.5

    @staticmethod
    def mechanisms() -> dict[str, Any]:
        return {"t": pc.Bernoulli()}

    @classmethod
    def sample(cls, n: int, rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray]:
        h = rng.normal(size=n)
        t = (rng.logistic(size=n) + 2 * h > 0).astype(float)
        y = cls.f(t, h) + cls.noise * rng.normal(size=n)
        return pd.DataFrame({"t": t, "y": y}), y - cls.f(t, h) + cls.f(1 - t, h)

    @staticmethod
    def f(t: Any, h: Any) -> Any:
        return 2 * t + h + t * h

    @staticmethod
    def intervention(rows: pd.DataFrame) -> dict[str, np.ndarray]:
        return {"t": 1.0 - rows["t"].to_numpy()}

    @classmethod
    def exact(cls, rows: pd.DataFrame, seen: tuple[str, ...], num: int, rng: np.random.Generator):
        t = rows["t"].to_numpy()[:, None]
        y = rows["y"].to_numpy()[:, None]
        hg = GRID[None, :]
        log_w = (
            _norm_logpdf(hg)
            + np.log(expit((2 * t - 1) * 2 * hg))
            + _norm_logpdf(y, cls.f(t, hg), cls.noise**2)
        )

        def cf(h: Any) -> Any:
            return y - cls.f(t, h) + cls.f(1 - t, h)

        mean = _grid_mean(log_w, cf(hg))
        return cf(_grid_draws(log_w, num, rng)), mean


# ---------------------------------------------------------------- reports
def _categorical_report(
    p_hat: np.ndarray, p: np.ndarray, truth: np.ndarray, draws: int, rng: np.random.Generator
) -> dict[str, Any]:
    """TV to the exact ``(n, K)`` probabilities, its floor, and calibration by groups."""
    tv = 0.5 * np.abs(p_hat - p).sum(1)
    sims = np.stack([rng.multinomial(draws, q / q.sum(), size=64) / draws for q in p])
    floor = 0.5 * np.abs(sims - p[:, None, :]).sum(-1).mean(1)
    gaps, ses = [], []
    for k in range(p.shape[1]):
        for g in np.array_split(np.argsort(p[:, k], kind="stable"), GROUPS):
            gaps.append(abs(p_hat[g, k].mean() - (truth[g] == k).mean()))
            q = p[g, k].mean()
            ses.append(np.sqrt(q * (1 - q) / len(g)))
    return {
        "tv": float(tv.mean()),
        "tv_floor": float(floor.mean()),
        "tv_ratio": float(tv.mean() / floor.mean()),
        "worst_group_gap": float(max(gaps)),
        "group_gap_se": float(max(ses)),
    }


def _draws(result: Any, target: str) -> np.ndarray:
    return result.samples[target].unstack("draw").reindex(result.rows).to_numpy()


def run_pattern(
    spec: Any,
    scm: pc.SCM,
    seen: tuple[str, ...],
    n: int,
    draws: int,
    seed: int,
    train: pd.DataFrame | None = None,
    **query: Any,
) -> dict[str, Any]:
    """One evidence pattern: ``n`` fresh rows, their exact counterfactual posteriors against
    ``scm``'s ``draws``. Discrete SCMs given the ``train`` rows also report ``family_mle``:
    the same question answered exactly by the true mechanism family fitted to those rows by
    maximum likelihood (then ``draws`` draws), the estimation floor of any fit from them."""
    rng = np.random.default_rng(seed)
    rows, truth, evidence = masked_rows(spec, seen, n, rng)
    iv = spec.intervention if isinstance(spec.intervention, dict) else spec.intervention(rows)
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = scm.counterfactual(evidence, iv, num_samples=draws, seed=seed, **query)
    seconds = time.perf_counter() - start
    model = _draws(result, spec.target)
    out: dict[str, Any] = {
        "observed": list(seen),
        "rows": n,
        "draws": draws,
        "seconds": seconds,
        "warnings": sorted({str(w.message).split("\n")[0][:160] for w in caught}),
    }
    if spec.name in ("discrete3",):
        p = spec.exact_probability(rows, seen, rng)
        p_hat = np.stack([(model == k).mean(1) for k in range(spec.states)], 1)
        out["pyrocausal"] = _categorical_report(p_hat, p, truth, draws, rng)
        if train is not None:  # the same question answered by the true family's MLE
            p_mle = _discrete3_mle(train).exact_probability(rows, seen, rng)
            p_hat = np.stack([rng.multinomial(draws, q / q.sum()) / draws for q in p_mle])
            out["family_mle"] = _categorical_report(p_hat, p, truth, draws, rng)
        return out
    if spec.name == "mixed":
        p = spec.exact_probability(rows, seen)
        out["pyrocausal"] = _binary_report(model.mean(1), p, truth, draws)
        if train is not None:
            p_mle = spec.exact_probability(rows, seen, _mixed_mle(train))
            p_hat = rng.binomial(draws, p_mle) / draws
            out["family_mle"] = _binary_report(p_hat, p, truth, draws)
        return out
    # coverage on every row; the distances (20,000 exact draws per row) on the first W1_ROWS
    _, exact_mean = spec.exact(rows, seen, 1, rng)
    sub = rows.iloc[:W1_ROWS]
    ref, _ = spec.exact(sub, seen, 20_000, rng)
    iid, _ = spec.exact(sub, seen, draws, rng)
    out["pyrocausal"] = _continuous_report(model, truth, exact_mean, ref, iid, len(sub))
    lo, hi = np.quantile(model[: len(sub)], [0.05, 0.95], axis=1)
    e_lo, e_hi = np.quantile(ref, [0.05, 0.95], axis=1)
    out["pyrocausal"]["width_90"] = float((hi - lo).mean())
    out["pyrocausal"]["exact_width_90"] = float((e_hi - e_lo).mean())
    return out


def _discrete3_mle(train: pd.DataFrame) -> type[Discrete3]:
    """:class:`Discrete3` with its tables estimated from ``train`` (the frequencies: the
    maximum-likelihood conditional probability tables, as Gumbel-max logits)."""
    a, x, y = (train[c].to_numpy().astype(int) for c in ("A", "X", "Y"))
    counts_x = np.zeros((2, 3))
    np.add.at(counts_x, (a, x), 1)
    counts_y = np.zeros((2, 3, 3))
    np.add.at(counts_y, (a, x, y), 1)
    return type(
        "Discrete3MLE",
        (Discrete3,),
        {
            "p_a": float(a.mean()),
            "logit_x": np.log(counts_x / counts_x.sum(-1, keepdims=True)),
            "logit_y": np.log(counts_y / counts_y.sum(-1, keepdims=True)),
        },
    )


def _logistic_mle(design: np.ndarray, y: np.ndarray) -> np.ndarray:
    def nll(b: np.ndarray) -> tuple[float, np.ndarray]:
        eta = design @ b
        return float(np.sum(np.logaddexp(0.0, eta) - y * eta)), design.T @ (expit(eta) - y)

    return minimize(nll, np.zeros(design.shape[1]), jac=True, method="L-BFGS-B").x


def _mixed_mle(train: pd.DataFrame) -> dict[str, tuple[float, ...]]:
    """The mixed SCM's true families (logistic y on t, z, t z; logistic t on z; normal z)
    fitted to ``train`` by maximum likelihood, as ``Discrete.params``."""
    z, t, y = (train[c].to_numpy() for c in ("z", "t", "y"))
    one = np.ones_like(z)
    return {
        "y": tuple(_logistic_mle(np.stack([one, t, z, t * z], 1), y)),
        "t": tuple(_logistic_mle(np.stack([one, z], 1), t)),
        "z": (float(z.mean()), float(z.std())),
    }


class _Mixed(Discrete):
    name = "mixed"

    @staticmethod
    def mechanisms() -> dict[str, Any]:
        return {"t": pc.Bernoulli(), "y": pc.Bernoulli()}


class _Interaction(Interaction):
    graph = {"x1": [], "x2": ["x1"], "x3": ["x1", "x2"]}
    patterns = (("x2", "x3"), ("x3",), ("x1", "x3"))

    @staticmethod
    def mechanisms() -> dict[str, Any]:
        return {}


_Mixed.graph = {"z": [], "t": ["z"], "y": ["z", "t"]}
SPECS = {s.name: s for s in (_Interaction, Discrete3, _Mixed, Confounded)}


def training_rows(spec: Any, seed: int, rows: int) -> pd.DataFrame:
    """The rows that fit seed ``seed`` trains on."""
    return spec.sample(rows, np.random.default_rng(10_000 + seed))[0]


def fit(spec: Any, seed: int, rows: int, **options: Any) -> tuple[pc.SCM, float]:
    train = training_rows(spec, seed, rows)
    graph = pc.CausalGraph(spec.graph, latent=list(getattr(spec, "latent", ())))
    scm = pc.SCM(graph, mechanisms=spec.mechanisms() or None)
    start = time.perf_counter()
    scm.fit(train, progress=False, seed=seed, **options)
    return scm, time.perf_counter() - start


def _family(spec: Any) -> pc.SCM:
    """The confounded SCM's true families with free parameters (fitted by SVI with h latent):
    the assumption a user states as mechanism families."""

    def fy(pa, th):
        return th["a"] + th["b"] * pa["t"] + th["c"] * pa["h"] + th["d"] * pa["t"] * pa["h"]

    graph = pc.CausalGraph(spec.graph, latent=list(spec.latent))
    return pc.SCM(
        graph,
        mechanisms={
            "h": pc.HandWritten(lambda pa, e: e, lambda pa, x: x),
            "t": pc.Bernoulli(
                logits=lambda pa, th: th["m"] + th["k"] * pa["h"], params={"m": 0.0, "k": 0.5}
            ),
            "y": pc.HandWritten(
                lambda pa, e, th: fy(pa, th) + th["s"].exp() * e,
                lambda pa, x, th: (x - fy(pa, th)) / th["s"].exp(),
                params={"a": 0.0, "b": 0.0, "c": 0.5, "d": 0.0, "s": 0.0},
            ),
        },
    )


def assumptions(seeds: list[int], train_rows: int, rows: int, draws: int) -> list[dict[str, Any]]:
    """The latent confounder answered under each stated assumption (and none)."""
    spec = Confounded
    out = []
    for seed in seeds:
        scm, fit_seconds = fit(spec, seed, train_rows)
        variants: dict[str, dict[str, Any]] = {
            "none stated (default range rho in (-0.9, 0.9))": {},
            "rho in (0.5, 0.9)": {"confounding": pc.Confounding(rho=(0.5, 0.9))},
            "rho in (0.0, 0.5) (understated)": {"confounding": pc.Confounding(rho=(0.0, 0.5))},
            "rho = 0 (no confounding)": {"confounding": pc.Confounding(rho=0.0)},
        }
        for name, query in variants.items():
            r = run_pattern(spec, scm, ("t", "y"), rows, draws, seed=100 * seed, **query)
            r.update(fit_seed=seed, assumption=name, fit_seconds=fit_seconds)
            out.append(r)
            print("assumption", seed, name, _brief(r), flush=True)
        family = _family(spec)
        rng = np.random.default_rng(10_000 + seed)
        train, _ = spec.sample(train_rows, rng)
        start = time.perf_counter()
        family.fit(train, epochs=60, batch_size=256, lr=0.02, progress=False, seed=seed)
        r = run_pattern(spec, family, ("t", "y"), rows, draws, seed=100 * seed)
        r.update(fit_seed=seed, assumption="true families, parameters fitted (SVI)",
                 fit_seconds=time.perf_counter() - start)  # fmt: skip
        out.append(r)
        print("assumption", seed, r["assumption"], _brief(r), flush=True)
    return out


def speed(seed: int = 1, train_rows: int = 5000) -> dict[str, Any]:
    """1,000 partially observed rows x 1,000 draws on the fitted interaction SCM (fit seed 1)
    with each ``fit_uncertainty``."""
    spec = _Interaction
    scm, _ = fit(spec, seed, train_rows)
    rows, _ = spec.sample(1000, np.random.default_rng(7))
    evidence = rows.assign(x1=np.nan)
    evidence.loc[evidence.index[::2], "x2"] = np.nan  # two missingness patterns
    evidence.loc[evidence.index[::2], "x1"] = rows["x1"].iloc[::2]
    out: dict[str, Any] = {"members": 1 + len(scm.alternatives)}
    # bootstrap: the first query refits the members (kept for later queries), the second not
    for mode, key in (("none", "none"), ("mechanisms", "mechanisms"),
                      ("parameters", "parameters"), ("bootstrap", "bootstrap_first"),
                      ("bootstrap", "bootstrap")):  # fmt: skip
        start = time.perf_counter()
        scm.counterfactual(evidence, {"x1": 1.0}, num_samples=1000, seed=0, fit_uncertainty=mode)
        out[key] = time.perf_counter() - start
    print("speed", out, flush=True)
    return out


def _brief(r: dict[str, Any]) -> dict[str, float]:
    keys = ("coverage_50", "coverage_90", "worst_group_gap_90", "w1_ratio", "tv_ratio",
            "worst_group_gap", "width_90", "exact_width_90")  # fmt: skip
    return {k: round(v, 3) for k, v in r["pyrocausal"].items() if k in keys}


def _chosen(scm: pc.SCM) -> dict[str, str]:
    out = {}
    for n in scm.nodes:
        g, k = scm._slot[n]
        design = getattr(scm.stacks[g], "design", None)
        if design is not None:
            out[n] = f"{scm.mechanisms[n].name}[{design(k)}]"
        elif scm.selection is not None and "chosen" in scm.selection:
            tie = scm.selection.get("near tie", pd.Series(dtype=str)).get(n, "")
            out[n] = str(scm.selection.loc[n, "chosen"]) + (f" (~{tie})" if tie else "")
        else:
            out[n] = type(scm.mechanisms[n]).__name__
    return out


def fitted_calibration(
    names: list[str], seeds: list[int], train_rows: int, rows: int, draws: int, **query: Any
) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for name in names:
        spec = SPECS[name]
        out[name] = []
        for seed in seeds:
            scm, fit_seconds = fit(spec, seed, train_rows)
            train = training_rows(spec, seed, train_rows)
            for i, seen in enumerate(spec.patterns):
                r = run_pattern(
                    spec, scm, seen, rows, draws, seed=100 * seed + i, train=train, **query
                )
                r.update(fit_seed=seed, fit_seconds=fit_seconds, mechanisms=_chosen(scm))
                out[name].append(r)
                print(name, seed, seen, _brief(r), r["mechanisms"], round(r["seconds"], 1),
                      r["warnings"], flush=True)  # fmt: skip
    return out


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "## Models fitted from data (defaults)",
        "",
        f"{report['train_rows']} training rows per fit, fit seeds {report['seeds']}; "
        f"{report['rows']} fresh partially observed rows x {report['draws']} draws per "
        "pattern. Floors as above. 'worst group' for discrete targets: the largest gap "
        "between mean predicted probability and the frequency of the truth over five "
        "groups of rows (per category). 'true family's MLE': the same rows answered exactly "
        "by the true mechanism family fitted to the same training rows by maximum "
        "likelihood (frequency tables; logistic regressions), then the same number of "
        "draws: what any model fitted to those rows can be expected to reach.",
        "",
    ]
    for name, results in report["fitted"].items():
        lines += [f"### {name}", ""]
        if "tv" in results[0]["pyrocausal"]:
            lines += [
                "| fit seed | observed | mechanisms | TV | floor | TV / floor | worst group "
                "gap (se) | true family's MLE: TV / floor | its worst gap | query s |",
                "|---|---|---|---|---|---|---|---|---|---|",
            ]
            for r in results:
                p, o = r["pyrocausal"], r.get("family_mle")
                mle = f"{o['tv_ratio']:.2f} | {o['worst_group_gap']:.3f}" if o else "- | -"
                lines.append(
                    f"| {r['fit_seed']} | {', '.join(r['observed'])} | "
                    f"{_mech(r['mechanisms'])} | {p['tv']:.4f} | {p['tv_floor']:.4f} | "
                    f"{p['tv_ratio']:.2f} | {p['worst_group_gap']:.3f} "
                    f"({p['group_gap_se']:.3f}) | {mle} | {r['seconds']:.1f} |"
                )
        else:
            lines += [
                "| fit seed | observed | mechanisms | cover 50% | cover 90% | worst group "
                "50% | worst group 90% | W1 / floor | 90% width (exact) | query s | warning |",
                "|---|---|---|---|---|---|---|---|---|---|---|",
            ]
            for r in results:
                p = r["pyrocausal"]
                lines.append(
                    f"| {r['fit_seed']} | {', '.join(r['observed'])} | "
                    f"{_mech(r['mechanisms'])} | {p['coverage_50']:.3f} | "
                    f"{p['coverage_90']:.3f} | {p['worst_group_gap_50']:.3f} | "
                    f"{p['worst_group_gap_90']:.3f} | {p['w1_ratio']:.2f} | "
                    f"{p['width_90']:.2f} ({p['exact_width_90']:.2f}) | {r['seconds']:.1f} | "
                    f"{'yes' if r['warnings'] else 'no'} |"
                )
        lines.append("")
    if report.get("speed"):
        sp = report["speed"]
        lines += [
            "### Query time",
            "",
            "1,000 partially observed rows x 1,000 draws, fitted interaction SCM (fit seed 1, "
            f"{sp['members']} model(s) with its near-ties): this model alone "
            f"{sp['none']:.1f} s, averaged over the near-tied mechanisms "
            f"{sp['mechanisms']:.1f} s, and over them and the regressions' parameter posterior "
            f"(the default) {sp['parameters']:.1f} s"
            + (
                f", over 10 bootstrap refits {sp['bootstrap']:.1f} s (the first such query "
                f"{sp['bootstrap_first']:.1f} s, with the refits)."
                if "bootstrap" in sp
                else "."
            ),
            "",
        ]
    if report.get("assumptions"):
        lines += [
            "### Latent confounder: the answer under each stated assumption",
            "",
            "| fit seed | assumption | cover 50% | cover 90% | worst group 90% | W1 / floor | "
            "90% width (exact) | query s |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in report["assumptions"]:
            p = r["pyrocausal"]
            lines.append(
                f"| {r['fit_seed']} | {r['assumption']} | {p['coverage_50']:.3f} | "
                f"{p['coverage_90']:.3f} | {p['worst_group_gap_90']:.3f} | {p['w1_ratio']:.1f} | "
                f"{p['width_90']:.2f} ({p['exact_width_90']:.2f}) | {r['seconds']:.1f} |"
            )
        lines.append("")
    return "\n".join(lines)


def _mech(chosen: dict[str, str]) -> str:
    return "; ".join(f"{k}: {v}" for k, v in chosen.items())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--scms", nargs="*", default=list(SPECS))
    p.add_argument("--seeds", nargs="*", type=int, default=None)
    p.add_argument("--train-rows", type=int, default=5000)
    p.add_argument("--rows", type=int, default=None)
    p.add_argument("--draws", type=int, default=1000)
    p.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = p.parse_args()
    torch.set_num_threads(1)
    seeds = args.seeds if args.seeds is not None else ([0] if args.quick else [0, 1, 2])
    rows = args.rows or (500 if args.quick else 10_000)
    report = {
        "date": _dt.datetime.now().isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "command": "python bench/posterior_fitted.py " + " ".join(sys.argv[1:]),
        "train_rows": args.train_rows,
        "seeds": seeds,
        "rows": rows,
        "draws": args.draws,
    }
    report["fitted"] = fitted_calibration(args.scms, seeds, args.train_rows, rows, args.draws)
    if "confounded" in args.scms:
        report["assumptions"] = assumptions(seeds, args.train_rows, rows, args.draws)
    report["speed"] = speed()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = "posterior_fitted" + ("_quick" if args.quick else "")
    (out / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    text = f"# Posterior counterfactuals from fitted models\n\n{report['date']}, "
    text += f"{report['platform']}, torch {report['torch']}, 1 thread. Command: "
    text += f"`{report['command']}`\n\n" + markdown(report)
    (out / f"{stem}.md").write_text(text + "\n")
    print(f"wrote {out / stem}.json and .md")


if __name__ == "__main__":
    main()
