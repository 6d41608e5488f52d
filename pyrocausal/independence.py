r"""Kernel tests: HSIC, a residual-based conditional independence test, and the MMD.

*HSIC* (Gretton, Fukumizu, Teo, Song, Schölkopf and Smola, NIPS 2008): the Hilbert-Schmidt
independence criterion with Gaussian kernels on standardized columns, each bandwidth the
median pairwise distance of its sample. Its null distribution is approximated by a gamma
distribution with HSIC's mean and variance under independence (the construction of the
authors' ``hsicTestGamma.m``), or estimated from permutations of one sample. The statistic is
``n * HSIC_b`` (biased estimator), so it grows with the sample size under dependence.

*Conditional independence* ``x ⊥ y | z`` is tested on regression residuals: ``x`` and ``y``
are each regressed on ``z`` by :class:`KernelRidge` (Gaussian kernel; bandwidth and ridge
chosen by exact leave-one-out error), and the leave-one-out residuals are tested with HSIC.
This is valid when both variables are additive-noise functions of ``z``
(``x = f(z) + e_x`` with ``e_x`` independent of ``z``, likewise ``y``), as in every built-in
additive SCM; heteroscedastic dependence on ``z`` can make it reject a true independence.
``method="gcm"`` is the generalised covariance measure of Shah and Peters (2020) on the same
residuals: valid under weaker conditions, but it only detects residual correlation.

*MMD* (Gretton et al., JMLR 2012): the two-sample test of :func:`mmd_test`, squared MMD
(biased) with a Gaussian kernel on the pooled standardized rows, p-value by permutation.

The code is short scipy/numpy rather than a dependency: ``hyppo`` and ``dcor`` offer HSIC and
distance covariance but neither the gamma approximation nor a residual CI test with a
leave-one-out regressor, and kernel matrices of a thousand rows cost milliseconds.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=400)
    >>> hsic_test(x, rng.normal(size=400)).p_value > 0.05        # independent
    True
    >>> hsic_test(x, x**2 + 0.1 * rng.normal(size=400)).p_value < 1e-6   # dependent, uncorrelated
    True
"""

from __future__ import annotations

__all__ = [
    "IndependenceResult",
    "KernelRidge",
    "conditional_independence_test",
    "hsic_test",
    "holm",
    "mmd_test",
    "residual_test",
]

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import stats
from scipy.spatial.distance import pdist, squareform

ArrayLike = npt.ArrayLike


@dataclass(frozen=True)
class IndependenceResult:
    """The outcome of an independence test: its statistic and p-value."""

    statistic: float
    p_value: float


def _columns(a: ArrayLike, name: str) -> np.ndarray:
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"{name} must be one value per row, or (rows, columns); got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} has NaN or infinite values")
    return arr


def _standardize(a: np.ndarray) -> np.ndarray:
    sd = a.std(axis=0)
    return (a - a.mean(axis=0)) / np.where(sd > 0, sd, 1.0)


def _gaussian_kernel(a: np.ndarray, factor: float = 1.0) -> np.ndarray:
    """Gaussian kernel matrix, bandwidth ``factor`` times the median pairwise distance."""
    d = pdist(a, "sqeuclidean")
    positive = d[d > 0]
    sigma2 = (np.median(positive) if positive.size else 1.0) * factor**2
    return squareform(np.exp(-d / (2.0 * sigma2)), checks=False) + np.eye(len(a))


def _centered(k: np.ndarray) -> np.ndarray:
    return k - k.mean(axis=0) - k.mean(axis=1)[:, None] + k.mean()


def hsic_test(
    x: ArrayLike,
    y: ArrayLike,
    *,
    method: Literal["gamma", "permutation"] = "gamma",
    num_permutations: int = 200,
    seed: int | None = 0,
) -> IndependenceResult:
    """HSIC test of the independence of ``x`` and ``y`` (same rows; one or more columns each).

    Arguments:
        x, y: Samples, ``(n,)`` or ``(n, d)``; at least 6 rows.
        method: ``"gamma"`` (the gamma approximation of the null, fast) or
            ``"permutation"`` (``num_permutations`` permutations of ``y``; p-value
            ``(1 + #{permuted >= observed}) / (1 + num_permutations)``).
        num_permutations: Permutations for ``method="permutation"``.
        seed: Seed of the permutations.

    Returns:
        The statistic ``n * HSIC_b`` and its p-value.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(1)
        >>> x = rng.normal(size=300)
        >>> r = hsic_test(x, np.sin(3 * x) + 0.2 * rng.normal(size=300), method="permutation")
        >>> r.p_value < 0.01
        True
    """
    a, b = _columns(x, "x"), _columns(y, "y")
    n = len(a)
    if len(b) != n:
        raise ValueError(f"x has {n} rows but y has {len(b)}")
    if n < 6:
        raise ValueError(f"HSIC needs at least 6 rows, got {n}")
    k = _gaussian_kernel(_standardize(a))
    lmat = _gaussian_kernel(_standardize(b))
    kc, lc = _centered(k), _centered(lmat)
    statistic = float((kc * lc).sum() / n)
    if method == "permutation":
        rng = np.random.default_rng(seed)
        exceed = 0
        for _ in range(num_permutations):
            p = rng.permutation(n)
            exceed += (kc * lc[np.ix_(p, p)]).sum() / n >= statistic
        return IndependenceResult(statistic, float((1 + exceed) / (1 + num_permutations)))
    if method != "gamma":
        raise ValueError(f"method must be 'gamma' or 'permutation', got {method!r}")
    # Mean and variance of HSIC_b under independence (Gretton et al. 2008, eqs. 8-9).
    var = (kc * lc / 6.0) ** 2
    var = (var.sum() - np.trace(var)) / (n * (n - 1))
    var = 72.0 * (n - 4) * (n - 5) / (n * (n - 1) * (n - 2) * (n - 3)) * var
    mu_x = (k.sum() - np.trace(k)) / (n * (n - 1))
    mu_y = (lmat.sum() - np.trace(lmat)) / (n * (n - 1))
    mean = (1.0 + mu_x * mu_y - mu_x - mu_y) / n
    if not (var > 0 and mean > 0):  # a constant sample: nothing can depend on it
        return IndependenceResult(statistic, 1.0)
    shape, scale = mean**2 / var, var * n / mean
    return IndependenceResult(statistic, float(stats.gamma.sf(statistic, shape, scale=scale)))


class KernelRidge:
    r"""Gaussian-kernel ridge regression whose bandwidth and ridge minimise leave-one-out error.

    One eigendecomposition of the kernel matrix per bandwidth serves every ridge value and
    every target: the leave-one-out residual of ridge ``lam`` is
    ``(y - H y) / (1 - diag H)`` with ``H = K (K + lam I)^-1``, exact and free once ``K`` is
    decomposed. Inputs are standardized; targets are centred.

    Arguments:
        z: Regressors, ``(n, d)`` (``d = 0`` fits the mean).
        bandwidths: Multiples of the median pairwise distance to try.
        ridges: Ridge values to try.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> z = rng.uniform(-2, 2, size=(300, 1))
        >>> y = np.sin(2 * z[:, 0]) + 0.1 * rng.normal(size=300)
        >>> fit = KernelRidge(z).fit(y)
        >>> bool(np.std(fit.residuals) < 0.12)       # close to the noise sd 0.1
        True
        >>> bool(abs(fit.predict(np.array([[0.5]]))[0] - np.sin(1.0)) < 0.05)
        True
    """

    def __init__(
        self,
        z: ArrayLike,
        bandwidths: Sequence[float] = (0.5, 1.0, 2.0),
        ridges: Sequence[float] = tuple(np.logspace(-3, 2, 11)),
    ) -> None:
        self._z_raw = _columns(z, "z") if np.size(z) else np.zeros((len(z), 0))
        self._mean = self._z_raw.mean(axis=0)
        sd = self._z_raw.std(axis=0)
        self._sd = np.where(sd > 0, sd, 1.0)
        self._z = (self._z_raw - self._mean) / self._sd
        self.ridges = np.asarray(ridges, dtype=np.float64)
        self._bases: list[tuple[float, np.ndarray, np.ndarray]] = []
        if self._z.shape[1]:
            d = pdist(self._z, "sqeuclidean")
            med = float(np.median(d[d > 0])) if (d > 0).any() else 1.0
            for f in bandwidths:
                sigma2 = med * f**2
                k = squareform(np.exp(-d / (2 * sigma2)), checks=False) + np.eye(len(self._z))
                lam, u = np.linalg.eigh(k)
                self._bases.append((sigma2, np.clip(lam, 0.0, None), u))
        self.residuals = np.zeros(len(self._z))
        self._coef: np.ndarray | None = None

    def fit(self, y: ArrayLike) -> KernelRidge:
        """Fit ``y`` (one value per row); sets :attr:`residuals` (leave-one-out)."""
        target = np.asarray(y, dtype=np.float64).reshape(-1)
        self._offset = float(target.mean())
        yc = target - self._offset
        n = len(yc)
        if not self._bases:
            self.residuals = yc * n / (n - 1)  # leave-one-out residuals of the mean
            self._coef = None
            return self
        best = (np.inf, 0, 0)
        cache = []
        for b, (_, lam, u) in enumerate(self._bases):
            uty = u.T @ yc
            shrink = lam[:, None] / (lam[:, None] + self.ridges[None, :])  # (n, R)
            fitted = u @ (shrink * uty[:, None])
            hat = (u**2) @ shrink
            loo = (yc[:, None] - fitted) / np.clip(1.0 - hat, 1e-12, None)
            mse = (loo**2).mean(axis=0)
            r = int(np.argmin(mse))
            cache.append((uty, loo[:, r]))
            if mse[r] < best[0]:
                best = (float(mse[r]), b, r)
        _, b, r = best
        sigma2, lam, u = self._bases[b]
        uty, self.residuals = cache[b]
        self._sigma2, self._ridge = sigma2, float(self.ridges[r])
        self._coef = u @ (uty / (lam + self._ridge))
        self._basis = b
        return self

    def mean_prediction(self, z: ArrayLike) -> tuple[float, float]:
        """Mean prediction over the rows of ``z`` and its standard error.

        The mean is linear in the targets, ``w @ y`` with ``w = (K + lam I)^-1 k(Z, z).mean``,
        so its variance given the regressors is ``sum_j w_j^2 e_j^2`` (leave-one-out residuals
        ``e``, a heteroscedasticity-robust sandwich); the spread of the predictions over the
        rows of ``z``, divided by their number, is added for the average over them. The
        regression's bias (smoothing, extrapolation) is not in it.
        """
        pred = self.predict(z)
        spread = float(pred.var(ddof=1) / len(pred)) if len(pred) > 1 else 0.0
        if self._coef is None:
            return float(pred.mean()), float(np.sqrt((self.residuals**2).mean() / len(self._z)))
        _, lam, u = self._bases[self._basis]
        kbar = self._kernel(z).mean(axis=0)
        w = u @ ((u.T @ kbar) / (lam + self._ridge))
        return float(pred.mean()), float(np.sqrt((w**2 * self.residuals**2).sum() + spread))

    def _kernel(self, z: ArrayLike) -> np.ndarray:
        new = np.asarray(z, dtype=np.float64).reshape(len(z), -1)
        new = (new - self._mean) / self._sd
        sq = (new**2).sum(1)[:, None] + (self._z**2).sum(1)[None, :] - 2 * new @ self._z.T
        return np.exp(-np.clip(sq, 0, None) / (2 * self._sigma2))

    def predict(self, z: ArrayLike) -> np.ndarray:
        """Predictions at new regressor rows ``(m, d)``."""
        if self._coef is None:
            return np.full(len(z), self._offset)
        return self._kernel(z) @ self._coef + self._offset


def conditional_independence_test(
    x: ArrayLike,
    y: ArrayLike,
    z: ArrayLike | None = None,
    *,
    method: Literal["residual-hsic", "gcm"] = "residual-hsic",
    seed: int | None = 0,
) -> IndependenceResult:
    """Test ``x ⊥ y | z`` on leave-one-out kernel-ridge residuals (see the module docstring).

    Without ``z`` (or with no columns) this is :func:`hsic_test` of ``x`` and ``y``
    (``method="gcm"``: the test of zero correlation).

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> z = rng.normal(size=400)
        >>> x = np.tanh(z) + 0.3 * rng.normal(size=400)
        >>> y = z**2 + 0.3 * rng.normal(size=400)          # x, y dependent, but not given z
        >>> conditional_independence_test(x, y).p_value < 1e-3
        True
        >>> conditional_independence_test(x, y, z).p_value > 0.05
        True
    """
    a = _columns(x, "x")[:, 0]
    b = _columns(y, "y")[:, 0]
    if z is not None and np.size(z):
        basis = KernelRidge(_columns(z, "z"))
        ra = basis.fit(a).residuals.copy()
        rb = basis.fit(b).residuals.copy()
    else:
        ra, rb = a - a.mean(), b - b.mean()
    return residual_test(ra, rb, method=method, seed=seed)


def residual_test(
    ra: np.ndarray,
    rb: np.ndarray,
    *,
    method: Literal["residual-hsic", "gcm"] = "residual-hsic",
    seed: int | None = 0,
) -> IndependenceResult:
    """The last step of :func:`conditional_independence_test`, on residuals computed already.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> e = rng.normal(size=300)
        >>> residual_test(e, e + rng.normal(size=300), method="gcm").p_value < 1e-6
        True
    """
    if method == "residual-hsic":
        return hsic_test(ra, rb, seed=seed)
    if method != "gcm":
        raise ValueError(f"method must be 'residual-hsic' or 'gcm', got {method!r}")
    prod = ra * rb
    sd = prod.std()
    if sd == 0:
        return IndependenceResult(0.0, 1.0)
    t = float(np.sqrt(len(prod)) * prod.mean() / sd)
    return IndependenceResult(t, float(2 * stats.norm.sf(abs(t))))


def holm(p_values: ArrayLike) -> np.ndarray:
    """Holm's step-down adjustment of a family of p-values (NaN entries are left out).

    Example:
        >>> holm([0.01, 0.04, 0.03]).round(3).tolist()
        [0.03, 0.06, 0.06]
    """
    p = np.asarray(p_values, dtype=np.float64).copy()
    ok = np.flatnonzero(~np.isnan(p))
    m = len(ok)
    order = ok[np.argsort(p[ok])]
    adjusted = np.maximum.accumulate((m - np.arange(m)) * p[order])
    p[order] = np.minimum(adjusted, 1.0)
    return p


def mmd_test(
    a: ArrayLike, b: ArrayLike, *, num_permutations: int = 200, seed: int | None = 0
) -> IndependenceResult:
    """Two-sample MMD test that the rows of ``a`` and ``b`` come from one distribution.

    The statistic is the squared MMD (biased estimator) with a Gaussian kernel on the pooled
    rows, each column standardized, bandwidth the median pairwise distance; the p-value is
    ``(1 + #{permuted >= observed}) / (1 + num_permutations)`` over random splits of the
    pooled rows.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> mmd_test(rng.normal(size=(200, 2)), rng.normal(size=(200, 2))).p_value > 0.05
        True
        >>> mmd_test(rng.normal(size=(200, 2)), rng.normal(0.5, 1, size=(200, 2))).p_value < 0.01
        True
    """
    x, y = _columns(a, "a"), _columns(b, "b")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"a has {x.shape[1]} columns but b has {y.shape[1]}")
    pooled = _standardize(np.vstack([x, y]))
    k = _gaussian_kernel(pooled)
    m = len(x)

    def stat(index: np.ndarray) -> float:
        i, j = index[:m], index[m:]
        return float(k[np.ix_(i, i)].mean() + k[np.ix_(j, j)].mean() - 2 * k[np.ix_(i, j)].mean())

    observed = stat(np.arange(len(pooled)))
    rng = np.random.default_rng(seed)
    exceed = sum(stat(rng.permutation(len(pooled))) >= observed for _ in range(num_permutations))
    return IndependenceResult(observed, float((1 + exceed) / (1 + num_permutations)))
