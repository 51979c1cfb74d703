"""Gaussian processes in numpy: regression with learned hyperparameters, and classification.

Kernel (as in HEBO and the CARBS paper): a Matern-3/2 kernel with one length
scale per input dimension, plus a linear kernel, plus learned Gaussian noise::

    k(x, x') = s2 * matern32(|x - x'| / l) + lin2 * (x - m) . (x' - m) + noise2 * [x == x']

Hyperparameters are fitted by maximising the log marginal likelihood plus weak
log-normal priors with L-BFGS-B and exact gradients. Fitting costs O(n^3) per
step, so it runs on at most ``max_fit_points`` observations (a seeded random
subset); the posterior is then conditioned on every observation.
"""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import dataclass

import numpy as np
from scipy import linalg, optimize
from scipy.special import expit

logger = logging.getLogger(__name__)

_SQRT3 = math.sqrt(3.0)
_JITTER = 1e-6


class GPFitError(RuntimeError):
    """A Gaussian process could not be fitted (singular matrix, bad data)."""


def _scaled_sqdist(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances between rows of A ``(n, d)`` and B ``(m, d)``."""
    a2 = np.einsum("ij,ij->i", A, A)
    b2 = np.einsum("ij,ij->i", B, B)
    d2 = a2[:, None] + b2[None, :] - 2.0 * (A @ B.T)
    np.maximum(d2, 0.0, out=d2)
    return d2


def matern32(A: np.ndarray, B: np.ndarray, lengthscales: np.ndarray) -> np.ndarray:
    """Unit-amplitude Matern-3/2 kernel matrix ``(n, m)``."""
    # In place: candidates x observations matrices reach millions of entries,
    # and every temporary costs a pass over memory.
    r = _scaled_sqdist(A / lengthscales, B / lengthscales)
    np.sqrt(r, out=r)
    r *= _SQRT3
    e = np.exp(-r)
    r += 1.0
    r *= e
    return r


def _cholesky(K: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor, adding jitter until the matrix is positive definite."""
    jitter = 0.0
    scale = float(np.mean(np.diag(K))) if K.size else 1.0
    for _ in range(6):
        try:
            return linalg.cholesky(K + jitter * np.eye(len(K)), lower=True, check_finite=False)
        except linalg.LinAlgError:
            jitter = max(jitter * 10.0, _JITTER * max(scale, 1e-12))
    raise GPFitError("kernel matrix is not positive definite even with jitter")


@dataclass
class _Priors:
    """Centres and widths (in log space) of the hyperparameter priors."""

    log_lengthscale: float
    log_lengthscale_sd: float = 1.5
    log_signal: float = 0.0
    log_signal_sd: float = 1.0
    log_linear: float = math.log(1e-2)
    log_linear_sd: float = 2.0
    log_noise: float = math.log(1e-2)
    log_noise_sd: float = 1.5


class GPRegressor:
    """Exact GP regression on standardised targets.

    Args:
        max_fit_points: at most this many points are used to fit hyperparameters.
        max_iter: L-BFGS-B iterations for the hyperparameter fit.
        min_noise: lower bound of the noise variance (in standardised units).
    """

    def __init__(self, max_fit_points: int = 256, max_iter: int = 60, min_noise: float = 1e-6):
        self.max_fit_points = max_fit_points
        self.max_iter = max_iter
        self.min_noise = min_noise
        self.theta: np.ndarray | None = None
        self._X: np.ndarray | None = None
        self._L: np.ndarray | None = None

    # -- hyperparameters ---------------------------------------------------
    def _unpack(self, theta: np.ndarray) -> tuple[np.ndarray, float, float, float]:
        d = len(theta) - 3
        return np.exp(theta[:d]), math.exp(theta[d]), math.exp(theta[d + 1]), math.exp(theta[d + 2])

    def _neg_log_posterior(
        self, theta: np.ndarray, X: np.ndarray, y: np.ndarray, priors: _Priors
    ) -> tuple[float, np.ndarray]:
        n, d = X.shape
        ls, s2, lin2, noise2 = self._unpack(theta)
        Xs = X / ls
        r = np.sqrt(_scaled_sqdist(Xs, Xs))
        e = np.exp(-_SQRT3 * r)
        Km = s2 * (1.0 + _SQRT3 * r) * e
        Xc = X - self._center
        Kl = lin2 * (Xc @ Xc.T)
        K = Km + Kl
        K[np.diag_indices(n)] += noise2 + _JITTER
        try:
            L = linalg.cholesky(K, lower=True, check_finite=False)
        except linalg.LinAlgError:
            return 1e10, np.zeros_like(theta)
        alpha = linalg.cho_solve((L, True), y, check_finite=False)
        lml = -0.5 * float(y @ alpha) - float(np.sum(np.log(np.diag(L)))) - 0.5 * n * math.log(2 * math.pi)
        Kinv = linalg.cho_solve((L, True), np.eye(n), check_finite=False)
        W = np.outer(alpha, alpha) - Kinv
        A = W * e
        rs = A.sum(axis=1)
        grad_ls = 3.0 * s2 * ((Xs * Xs).T @ rs - np.einsum("ij,ij->j", Xs, A @ Xs))
        grad = np.empty_like(theta)
        grad[:d] = grad_ls
        grad[d] = 0.5 * float(np.sum(W * Km))
        grad[d + 1] = 0.5 * float(np.sum(W * Kl))
        grad[d + 2] = 0.5 * noise2 * float(np.trace(W))
        # Log-normal priors on every hyperparameter.
        centres = np.concatenate(
            [np.full(d, priors.log_lengthscale), [priors.log_signal, priors.log_linear, priors.log_noise]]
        )
        sds = np.concatenate(
            [np.full(d, priors.log_lengthscale_sd), [priors.log_signal_sd, priors.log_linear_sd, priors.log_noise_sd]]
        )
        z = (theta - centres) / sds
        log_prior = -0.5 * float(z @ z)
        grad_prior = -z / sds
        return -(lml + log_prior), -(grad + grad_prior)

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        rng: np.random.Generator,
        lengthscale_prior: float | None = None,
        theta: np.ndarray | None = None,
    ) -> GPRegressor:
        """Fit hyperparameters and condition on ``X`` ``(n, d)``, ``y`` ``(n,)``.

        ``lengthscale_prior`` is the prior median length scale in input units
        (default ``0.5 * sqrt(d)``, which keeps high-dimensional models smooth).
        ``theta`` (the :attr:`theta` of an earlier fit in the same space) skips
        the hyperparameter search: only the standardisation and the posterior
        are computed anew.
        """
        X = np.asarray(X, dtype=float)
        y = np.asarray(y, dtype=float)
        if X.ndim != 2 or len(X) != len(y) or len(y) == 0:
            raise GPFitError(f"bad shapes X{X.shape} y{y.shape}")
        if not (np.all(np.isfinite(X)) and np.all(np.isfinite(y))):
            raise GPFitError("non-finite training data")
        n, d = X.shape
        self._y_mean = float(np.mean(y))
        std = float(np.std(y))
        self._y_std = std if std > 1e-12 else 1.0
        ys = (y - self._y_mean) / self._y_std
        self._center = X.mean(axis=0)
        ls0 = lengthscale_prior if lengthscale_prior is not None else 0.5 * math.sqrt(d)
        priors = _Priors(log_lengthscale=math.log(ls0))
        theta0 = np.concatenate(
            [np.full(d, priors.log_lengthscale), [priors.log_signal, priors.log_linear, priors.log_noise]]
        )
        if theta is not None:
            theta = np.asarray(theta, dtype=float)
            if theta.shape != theta0.shape or not np.all(np.isfinite(theta)):
                raise GPFitError(f"theta of shape {theta.shape} does not fit {d} inputs")
        elif n >= 2 and std > 1e-12:
            idx = np.arange(n)
            if n > self.max_fit_points:
                idx = np.sort(rng.choice(n, size=self.max_fit_points, replace=False))
            bounds = [(math.log(1e-2), math.log(1e3))] * d + [
                (math.log(1e-2), math.log(1e2)),
                (math.log(1e-8), math.log(10.0)),
                (math.log(self.min_noise), math.log(1.0)),
            ]
            result = optimize.minimize(
                self._neg_log_posterior,
                theta0,
                args=(X[idx], ys[idx], priors),
                jac=True,
                method="L-BFGS-B",
                bounds=bounds,
                options={"maxiter": self.max_iter},
            )
            theta = result.x if np.all(np.isfinite(result.x)) else theta0
        else:
            theta = theta0
        self.theta = theta
        self.condition(X, y)
        return self

    def condition(self, X: np.ndarray, y: np.ndarray) -> GPRegressor:
        """Condition on new data with the current hyperparameters (no refit).

        The target standardisation from :meth:`fit` is kept, so pseudo
        observations (pending suggestions) stay on the same scale.
        """
        if self.theta is None:
            raise GPFitError("fit before condition")
        X = np.asarray(X, dtype=float)
        ys = (np.asarray(y, dtype=float) - self._y_mean) / self._y_std
        K = self._kernel(X, X)
        K[np.diag_indices(len(X))] += self._unpack(self.theta)[3] + _JITTER
        self._L = _cholesky(K)
        self._alpha = linalg.cho_solve((self._L, True), ys, check_finite=False)
        self._X = X
        return self

    def extended(self, X_new: np.ndarray, y_new: np.ndarray) -> GPRegressor:
        """A copy conditioned on ``k`` more points ``(k, d)`` as well; this regressor is unchanged.

        The copy's Cholesky factor is this one's, extended by a block (a
        triangular solve of ``n x k`` and a ``k x k`` factor): ``O(n^2 k)``
        rather than the ``O((n + k)^3)`` of conditioning on all the points anew,
        with the same posterior. Pending suggestions are added this way.
        """
        if self.theta is None or self._X is None or self._L is None:
            raise GPFitError("fit before extended")
        X_new = np.asarray(X_new, dtype=float)
        if len(X_new) == 0:
            return self
        ys_new = (np.asarray(y_new, dtype=float) - self._y_mean) / self._y_std
        cross = linalg.solve_triangular(self._L, self._kernel(self._X, X_new), lower=True, check_finite=False)
        block = self._kernel(X_new, X_new) - cross.T @ cross
        block[np.diag_indices(len(X_new))] += self._unpack(self.theta)[3] + _JITTER
        corner = _cholesky(0.5 * (block + block.T))
        n, k = len(self._X), len(X_new)
        L = np.zeros((n + k, n + k))
        L[:n, :n] = self._L
        L[n:, :n] = cross.T
        L[n:, n:] = corner
        # alpha = L^-T L^-1 ys, with L^-1 ys by blocks: the old part is L_old^-1 ys_old.
        z_old = self._L.T @ self._alpha
        z_new = linalg.solve_triangular(corner, ys_new - cross.T @ z_old, lower=True, check_finite=False)
        twin = copy.copy(self)
        twin._L = L
        twin._alpha = linalg.solve_triangular(L, np.concatenate([z_old, z_new]), lower=True, trans="T", check_finite=False)
        twin._X = np.vstack([self._X, X_new])
        return twin

    def _kernel(self, A: np.ndarray, B: np.ndarray) -> np.ndarray:
        assert self.theta is not None
        ls, s2, lin2, _ = self._unpack(self.theta)
        return s2 * matern32(A, B, ls) + lin2 * ((A - self._center) @ (B - self._center).T)

    @property
    def noise_variance(self) -> float:
        """Fitted noise variance in target units."""
        assert self.theta is not None
        return self._unpack(self.theta)[3] * self._y_std**2

    @property
    def lengthscales(self) -> np.ndarray:
        """Fitted Matern length scales ``(d,)``."""
        assert self.theta is not None
        return self._unpack(self.theta)[0]

    @property
    def train_inputs(self) -> np.ndarray:
        """Inputs the posterior is conditioned on."""
        assert self._X is not None
        return self._X

    def predict_mean(self, Xs: np.ndarray) -> np.ndarray:
        """Posterior mean ``(m,)`` only: no triangular solve, a fraction of :meth:`predict`'s cost."""
        if self._X is None or self.theta is None:
            raise GPFitError("predict before fit")
        Ks = self._kernel(np.asarray(Xs, dtype=float), self._X)
        return np.asarray(Ks @ self._alpha * self._y_std + self._y_mean)

    def predict(self, Xs: np.ndarray, full_cov: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean ``(m,)`` and latent variance ``(m,)`` (or covariance ``(m, m)``)."""
        if self._X is None or self.theta is None:
            raise GPFitError("predict before fit")
        Xs = np.asarray(Xs, dtype=float)
        Ks = self._kernel(Xs, self._X)
        mean = Ks @ self._alpha
        v = linalg.solve_triangular(self._L, Ks.T, lower=True, check_finite=False)
        _, s2, lin2, _ = self._unpack(self.theta)
        if full_cov:
            cov = self._kernel(Xs, Xs) - v.T @ v
            return mean * self._y_std + self._y_mean, cov * self._y_std**2
        Xc = Xs - self._center
        prior_var = s2 + lin2 * np.einsum("ij,ij->i", Xc, Xc)
        var = np.maximum(prior_var - np.einsum("ij,ij->j", v, v), 1e-12)
        return mean * self._y_std + self._y_mean, var * self._y_std**2

    def sample_joint(self, Xs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One joint draw of the latent function at ``Xs`` ``(m, d)``."""
        mean, cov = self.predict(Xs, full_cov=True)
        cov = 0.5 * (cov + cov.T)
        L = _cholesky(cov + 1e-9 * max(float(np.mean(np.diag(cov))), 1e-12) * np.eye(len(cov)))
        return mean + L @ rng.standard_normal(len(mean))


class GPClassifier:
    """Binary GP classification (logistic likelihood, Laplace approximation).

    Used for the probability that a run fails. The prior mean is the logit of
    the observed failure rate; the length scale and amplitude are chosen from a
    small grid by the approximate marginal likelihood.
    """

    def __init__(self, max_fit_points: int = 256, newton_steps: int = 30):
        self.max_fit_points = max_fit_points
        self.newton_steps = newton_steps

    def _laplace(
        self, K: np.ndarray, y: np.ndarray, m0: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        """Newton iterations for the posterior mode (Rasmussen & Williams, Alg. 3.1)."""
        n = len(y)
        f = np.zeros(n)
        a = np.zeros(n)
        L = np.eye(n)
        sw = np.zeros(n)
        obj_prev = -np.inf
        for _ in range(self.newton_steps):
            p = expit(f + m0)
            w = p * (1.0 - p)
            sw = np.sqrt(w)
            B = np.eye(n) + sw[:, None] * K * sw[None, :]
            L = _cholesky(B)
            b = w * f + (y - p)
            c = linalg.cho_solve((L, True), sw * (K @ b), check_finite=False)
            a = b - sw * c
            f = K @ a
            z = f + m0
            loglik = float(np.sum(y * z - np.logaddexp(0.0, z)))
            obj = -0.5 * float(a @ f) + loglik
            if abs(obj - obj_prev) < 1e-6:
                break
            obj_prev = obj
        z = f + m0
        loglik = float(np.sum(y * z - np.logaddexp(0.0, z)))
        log_evidence = -0.5 * float(a @ f) + loglik - float(np.sum(np.log(np.diag(L))))
        return f, sw, L, log_evidence

    def fit(
        self,
        X: np.ndarray,
        failed: np.ndarray,
        rng: np.random.Generator,
        hyperparameters: tuple[float, float] | None = None,
    ) -> GPClassifier:
        """Fit on inputs ``(n, d)`` and labels ``(n,)`` (1 = failed, 0 = succeeded).

        ``hyperparameters`` (the :attr:`hyperparameters` of an earlier fit)
        skips the grid search over length scale and amplitude.
        """
        X = np.asarray(X, dtype=float)
        y = np.asarray(failed, dtype=float)
        n, d = X.shape
        rate = float(np.clip(y.mean(), 0.02, 0.98))
        self._m0 = math.log(rate / (1.0 - rate))
        idx = np.arange(n)
        if n > self.max_fit_points:
            idx = np.sort(rng.choice(n, size=self.max_fit_points, replace=False))
        base = 0.5 * math.sqrt(d)
        best: tuple[float, float, float] | None = None
        if hyperparameters is not None:
            best = (0.0, float(hyperparameters[0]), float(hyperparameters[1]))
        for mult in (0.25, 0.5, 1.0, 2.0) if best is None else ():
            for amp in (1.0, 4.0, 16.0):
                ls = np.full(d, base * mult)
                K = amp * matern32(X[idx], X[idx], ls)
                try:
                    *_, ev = self._laplace(K, y[idx], self._m0)
                except GPFitError:
                    continue
                if best is None or ev > best[0]:
                    best = (ev, base * mult, amp)
        if best is None:
            raise GPFitError("failure classifier could not be fitted")
        _, ls_best, amp_best = best
        self._ls = np.full(d, ls_best)
        self._amp = amp_best
        K = self._amp * matern32(X, X, self._ls)
        f, self._sw, self._L, _ = self._laplace(K, y, self._m0)
        self._grad = y - expit(f + self._m0)
        self._X = X
        return self

    @property
    def hyperparameters(self) -> tuple[float, float]:
        """``(length scale, amplitude)`` chosen by the last fit."""
        return float(self._ls[0]), self._amp

    def predict_proba(self, Xs: np.ndarray) -> np.ndarray:
        """Probability of failure ``(m,)`` (probit approximation of the predictive)."""
        Ks = self._amp * matern32(np.asarray(Xs, dtype=float), self._X, self._ls)
        mean = self._m0 + Ks @ self._grad
        v = linalg.solve_triangular(self._L, (self._sw[:, None] * Ks.T), lower=True, check_finite=False)
        var = np.maximum(self._amp - np.einsum("ij,ij->j", v, v), 1e-12)
        return np.asarray(expit(mean / np.sqrt(1.0 + math.pi * var / 8.0)))
