"""The scikit-learn estimator :class:`BernoulliMixture`.

EM's engine (:mod:`bmm.engine`) behind scikit-learn's mixture API.
"""

from __future__ import annotations

import os
import time
import warnings
from numbers import Integral, Real
from typing import ClassVar

import numpy as np
from sklearn.base import BaseEstimator, DensityMixin, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from . import engine, sources
from . import estep as _estep
from .bits import BitMatrix
from .estep import AUTO  # the fastest stable variant for the data and K: bmm.auto.choose
from .rows import BLOCK_ROWS, Stats, check_weights


class BernoulliMixture(DensityMixin, BaseEstimator):
    """A mixture of K multivariate Bernoulli distributions over binary vectors, fitted by EM.

    Each component k has a weight π_k and a mean μ_k (one probability per feature); a sample
    is drawn by picking a component, then each feature independently. EM alternates the
    E-step (the responsibilities p(k | x)) and the M-step (π and μ from them), here fused into
    one pass over the data per iteration, so memory does not grow with N·K.

    Parameters
    ----------
    n_components : int, default=1
        K, the number of mixture components (≥ 1).
    estep : str, default="auto"
        How the E-step is computed while fitting: a variant of ``bmm.estep.VARIANTS`` by name,
        or ``"auto"`` for the fastest stable one for the data and K on this machine (see
        :func:`bmm.auto.choose`; the choice is in ``estep_``).
    tol : float, default=1e-3
        Convergence threshold (≥ 0) on the change of the objective per sample.
    max_iter : int, default=100
        EM iterations per initialisation (≥ 0). A fit that stops here without converging
        warns (``ConvergenceWarning``), as ``GaussianMixture`` does.
    n_init : int, default=1
        Initialisations to run (≥ 1); the best objective is kept.
    init_params : {"random", "k-means++"}, default="random"
        "random": μ ~ U(0.25, 0.75) and π uniform, as the article; "k-means++": k-means++
        seeding on Hamming distance, each chosen image shrunk halfway to the mean image.
    mu_prior : float, default=1.0
        Symmetric Beta(a, a) prior on every μ_kd (a ≥ 1; MAP estimate); 1 is none (maximum
        likelihood, as the article).
    pi_prior : float, default=1.0
        Symmetric Dirichlet(α) prior on π (α ≥ 1); 1 is none.
    reseed_degenerate : bool, default=False
        After an M-step, move each degenerate component (N·π_k < 2) to a worst-explained
        image, if that does not lower the objective; a refused move is not proposed again for
        that component. EM stays monotone.
    binarize : float or None, default=0.0
        Threshold for binarising X: entries above it are 1, the others 0, as
        ``sklearn.naive_bayes.BernoulliNB``. The default reads 0/1 data as they are and any
        positive value as 1 (raw MNIST pixels: any ink, the article's threshold). None: X
        must already be binary (every entry 0 or 1, or bool).
    random_state : int, numpy.random.Generator, RandomState instance or None, default=None
        Makes a fit (and :meth:`sample`) reproducible to the bit.
    verbose : int, default=0
        0 silent; 1: a line per initialisation; 2: also a line every ``verbose_interval``
        iterations (log-likelihood per sample, its change, seconds per iteration). Lines go
        to the ``log`` callable given to :meth:`fit`, else to stdout.
    verbose_interval : int, default=10
        Iterations between two progress lines at ``verbose=2`` (≥ 1).
    learning_decay : float, default=0.6
        The exponent κ in (0.5, 1] of :meth:`partial_fit`'s step size for batch t,
        ρ_t = (t + t₀)^(−κ).
        The default and ``learning_offset``'s came out best of κ ∈ {0.51, 0.6, 0.7, 0.85, 1}
        × t₀ ∈ {0, 2, 10} on MNIST in batches of 1000 (docs/scaling.md).
    learning_offset : float, default=2.0
        The offset t₀ ≥ 0 in that step size: a larger one gives the early batches less
        weight.

    Attributes
    ----------
    weights_ : ndarray of shape (n_components,)
        The mixture weights π.
    means_ : ndarray of shape (n_components, n_features)
        The components' means μ, each in [1e-10, 1 − 1e-10].
    estep_ : str
        The E-step variant the fit used (``estep``, or what ``"auto"`` chose).
    converged_ : bool
        Whether the best initialisation converged before ``max_iter``.
    n_iter_ : int
        EM iterations of the best initialisation.
    lower_bound_ : float
        The objective per sample (log-likelihood plus log-prior) at the fitted parameters.
    best_init_ : int
        Which initialisation won.
    trace_ : pandas.DataFrame
        One row per pass of the winning initialisation: ``iteration``, ``loglik`` and
        ``objective`` per sample, ``pass_s`` (seconds of the pass), ``update_s`` (seconds of
        the M-step's update and any re-seeding), ``reseeded`` (components moved).
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of the features seen during fit, when X has string column names.
    n_samples_fit_ : int or None
        Number of samples fitted on (None for a model rebuilt by :meth:`from_parameters`
        without it); after :meth:`partial_fit`, the samples of all its batches.
    n_batches_seen_ : int
        Batches given to :meth:`partial_fit` since the last :meth:`fit` (0 after a fit).

    See Also
    --------
    sklearn.mixture.GaussianMixture : The same API for Gaussian components.
    sklearn.naive_bayes.BernoulliNB : Bernoulli features with known classes.
    bmm.bits.BitMatrix : Binary data packed 8 features a byte, which ``fit`` reads directly.

    Notes
    -----
    Scoring (``predict_proba``, ``predict``, ``score_samples``, ``score``, ``bic``, ``aic``)
    always uses the stable float64 E-step :func:`bmm.estep.scoring`, whatever variant fitted
    the model.

    Examples
    --------
    >>> import numpy as np
    >>> from bmm import BernoulliMixture
    >>> rng = np.random.default_rng(0)
    >>> prototypes = np.array([[1, 1, 1, 0, 0, 0], [0, 0, 0, 1, 1, 1]])
    >>> X = prototypes[rng.integers(0, 2, 200)] ^ (rng.random((200, 6)) < 0.05)
    >>> model = BernoulliMixture(2, random_state=0).fit(X)
    >>> np.round(model.means_, 1)  # the two prototypes, each with its 5 % of flipped bits
    array([[0. , 0.1, 0. , 1. , 0.9, 0.9],
           [1. , 1. , 1. , 0.1, 0. , 0.1]])
    >>> model.predict([[1, 1, 0, 0, 0, 0], [0, 0, 0, 1, 1, 1]])
    array([1, 0])
    """

    _parameter_constraints: ClassVar[dict] = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "estep": [StrOptions({AUTO, *_estep.VARIANTS})],
        "tol": [Interval(Real, 0.0, None, closed="left")],
        "max_iter": [Interval(Integral, 0, None, closed="left")],
        "n_init": [Interval(Integral, 1, None, closed="left")],
        "init_params": [StrOptions(set(engine.INIT_METHODS))],
        "mu_prior": [Interval(Real, 1.0, None, closed="left")],
        "pi_prior": [Interval(Real, 1.0, None, closed="left")],
        "reseed_degenerate": ["boolean"],
        "binarize": [None, Interval(Real, None, None, closed="neither")],
        "random_state": ["random_state", np.random.Generator],
        "verbose": ["verbose"],
        "verbose_interval": [Interval(Integral, 1, None, closed="left")],
        "learning_decay": [Interval(Real, 0.5, 1.0, closed="right")],
        "learning_offset": [Interval(Real, 0.0, None, closed="left")],
    }

    def __init__(
        self,
        n_components=1,
        *,
        estep=AUTO,
        tol=1e-3,
        max_iter=100,
        n_init=1,
        init_params="random",
        mu_prior=1.0,
        pi_prior=1.0,
        reseed_degenerate=False,
        binarize=0.0,
        random_state=None,
        verbose=0,
        verbose_interval=10,
        learning_decay=0.6,
        learning_offset=2.0,
    ):
        self.n_components = n_components
        self.estep = estep
        self.tol = tol
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.mu_prior = mu_prior
        self.pi_prior = pi_prior
        self.reseed_degenerate = reseed_degenerate
        self.binarize = binarize
        self.random_state = random_state
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.learning_decay = learning_decay
        self.learning_offset = learning_offset

    # -- input -------------------------------------------------------------------------

    def _validate_X(self, X, *, reset):
        """The one place where input data are checked: X as a bool (n_samples × n_features).

        scikit-learn's ``validate_data`` checks the shape, finiteness and dtype and records
        (``reset=True``, in fit) or compares (scoring) ``n_features_in_`` and feature names;
        then X is binarised (``binarize`` a number) or must already be binary. A
        :class:`bmm.bits.BitMatrix` is binary by construction and stays packed, as do rows
        that are not in memory (a binarised Parquet file or directory, by its path; a dask
        array, binarised lazily; :mod:`bmm.sources`): only their number of features is
        checked.
        """
        if isinstance(X, str | os.PathLike):
            X = sources.ParquetRows(X)
        elif _is_dask_array(X):
            if self.binarize is not None:
                X = X > self.binarize
            X = sources.DaskRows(X)
        if isinstance(X, BitMatrix | sources.ParquetRows | sources.DaskRows):
            if reset:
                self.n_features_in_ = X.n_features
                self.__dict__.pop("feature_names_in_", None)
            elif X.n_features != self.n_features_in_:
                raise ValueError(
                    f"X has {X.n_features} features, but {type(self).__name__} is expecting "
                    f"{self.n_features_in_} features as input."
                )
            if len(X) < 1:
                raise ValueError("Found array with 0 sample(s) while a minimum of 1 is required.")
            return X
        X = validate_data(self, X, reset=reset)
        if self.binarize is not None:
            return X > self.binarize
        if X.dtype != bool and not ((X == 0) | (X == 1)).all():
            raise ValueError(
                "X must be binary: every entry 0 or 1 (binarise the images first, or set "
                "binarize=threshold to have values above the threshold read as 1)"
            )
        return X.astype(bool, copy=False)

    # -- fitting -----------------------------------------------------------------------

    def _weights(self, X, sample_weight):
        """Sample weights as float64, checked (None when none were given)."""
        if sample_weight is None:
            return None
        if not isinstance(X, BitMatrix):
            sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64)
        return check_weights(sample_weight, len(X))

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None, sample_weight=None, *, log=None):
        """Fit by EM, ``n_init`` times from different starts; keep the best objective.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), bmm.bits.BitMatrix, path or dask array
            Binary data (or data that ``binarize`` makes binary). Data that do not fit in
            memory: the path of a binarised Parquet file (or of a directory of them), read a
            row group at a time on every iteration; or a ``dask.array`` chunked along its rows,
            each chunk summed on the workers of the current ``dask.distributed`` client
            (``pip install 'bmm[dask]'``). Both give the in-memory fit's parameters.
        y : None
            Ignored; present for API consistency.
        sample_weight : array-like of shape (n_samples,), default=None
            How many times each sample counts (≥ 0): integer weights fit as repeated
            samples do, a zero weight as if the sample were not there. None: once each.
        log : callable, default=None
            Where ``verbose`` messages go, a line at a time (default: printed to stdout, as
            scikit-learn's estimators do).

        Returns
        -------
        self : BernoulliMixture
            The fitted estimator. A fit that fails (bad data, a dask cluster that loses its
            workers, an interrupt) leaves the estimator as it was before it.
        """
        before = dict(self.__dict__)
        try:
            return self._fit(X, sample_weight, log)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(before)
            raise

    def _fit(self, X, sample_weight, log):
        X = self._validate_X(X, reset=True)
        weights = self._weights(X, sample_weight)
        n_samples = len(X)
        if self.n_components > n_samples:
            raise ValueError(
                f"n_components={self.n_components} is larger than the number of samples "
                f"({n_samples}); use at most {n_samples} components or more data"
            )
        name = self._variant_name(X)
        variant = _estep.VARIANTS[name]
        if variant.unavailable:
            raise ValueError(f"E-step variant {name!r} is unavailable: {variant.unavailable}")
        say = print if log is None else log
        rows = variant.rows(X)
        rng = np.random.default_rng(self.random_state)
        best = None
        for i in range(self.n_init):
            if self.verbose:
                say(f"Initialization {i}")
            pi, mu = engine.initialize(rows, self.n_components, self.init_params, rng, weights)
            t0 = time.perf_counter()
            result = engine.fit_em(
                rows,
                pi,
                mu,
                variant,
                tol=self.tol,
                max_iter=self.max_iter,
                mu_prior=self.mu_prior,
                pi_prior=self.pi_prior,
                reseed_degenerate=self.reseed_degenerate,
                callback=self._progress(say) if self.verbose >= 2 else None,
                weights=weights,
            )
            result.init_index = i
            if self.verbose:
                status = "converged" if result.converged else "did not converge"
                say(
                    f"Initialization {i} {status} after {result.n_iter} iterations, "
                    f"{time.perf_counter() - t0:.2f} s; objective per sample "
                    f"{result.lower_bound:.4f}"
                )
            if best is None or result.lower_bound > best.lower_bound:
                best = result
        self.estep_ = name
        self.weights_, self.means_ = best.weights, best.means
        self.converged_, self.n_iter_ = best.converged, best.n_iter
        self.lower_bound_, self.trace_ = best.lower_bound, best.trace
        self.best_init_ = best.init_index
        self.n_samples_fit_ = n_samples
        self.n_batches_seen_ = 0
        self._online = None
        if not self.converged_ and self.max_iter > 0:
            obj = best.trace["objective"].to_numpy()
            warnings.warn(
                f"EM stopped at max_iter={self.max_iter} without converging: the objective "
                f"per sample last changed by {obj[-1] - obj[-2]:.3g}, more than tol={self.tol}. "
                "Increase max_iter or tol, or try other starts (n_init, init_params).",
                ConvergenceWarning,
                stacklevel=3,  # the caller's fit(), past scikit-learn's _fit_context
            )
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None, sample_weight=None):
        """Update the model with one batch of samples: stepwise (online) EM.

        After Cappé & Moulines (2009): EM's sums (:class:`bmm.rows.Stats`) per sample are kept
        as a running average, s ← (1 − ρ_t) s + ρ_t s(batch t), with the step size
        ρ_t = (t + ``learning_offset``)^(−``learning_decay``) for batch t (0 for the first,
        whose sums start the average), and the parameters are the
        M-step's from that average after every batch (with the priors of a batch fit of all
        the samples seen). The first call (or the first after :meth:`fit`) starts the average
        from its batch: from the fitted parameters if the model is fitted, else from a start
        drawn on the batch (``init_params``). Memory does not grow with the batches.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), or bmm.bits.BitMatrix
            One batch of binary data.
        y : None
            Ignored; present for API consistency.
        sample_weight : array-like of shape (n_samples,), default=None
            How many times each sample of the batch counts, as in :meth:`fit`.

        Returns
        -------
        self : BernoulliMixture
            The updated estimator.
        """
        first = getattr(self, "_online", None) is None
        fitted = hasattr(self, "means_")
        X = self._validate_X(X, reset=not fitted)
        weights = self._weights(X, sample_weight)
        if first and not fitted:
            if self.n_components > len(X):
                raise ValueError(
                    f"n_components={self.n_components} is larger than the first batch "
                    f"({len(X)} samples); give partial_fit a larger first batch"
                )
            self.estep_ = self._variant_name(X)
            rng = np.random.default_rng(self.random_state)
            start_rows = _estep.VARIANTS[self.estep_].rows(X)
            pi, mu = engine.initialize(
                start_rows, self.n_components, self.init_params, rng, weights
            )
        else:
            pi, mu = self.weights_, self.means_
            if not hasattr(self, "estep_"):  # a model rebuilt by from_parameters
                self.estep_ = self._variant_name(X)
        variant = _estep.VARIANTS[self.estep_]
        if variant.unavailable:
            raise ValueError(
                f"E-step variant {self.estep_!r} is unavailable: {variant.unavailable}"
            )
        stats = engine.summarize(variant.rows(X), variant, pi, mu, weights)
        Nk, sums = stats.Nk / stats.weight, stats.weighted_sums() / stats.weight
        if first:
            t, seen = 1, stats.weight
        else:
            t, seen = self._online["t"] + 1, self._online["seen"] + stats.weight
            rho = (t - 1 + self.learning_offset) ** -self.learning_decay
            Nk = (1 - rho) * self._online["Nk"] + rho * Nk
            sums = (1 - rho) * self._online["sums"] + rho * sums
        self._online = {"t": t, "seen": seen, "Nk": Nk, "sums": sums}
        average = Stats(len(X), seen, 0.0, Nk * seen, sums * seen, np.zeros(0), np.zeros(0, int))
        self.weights_, self.means_ = engine.m_step(average, mu, self.mu_prior, self.pi_prior)
        self.n_batches_seen_ = t
        self.n_samples_fit_ = (0 if first else self.n_samples_fit_ or 0) + len(X)
        return self

    def _variant_name(self, X) -> str:
        """The E-step variant a fit of X uses: ``estep``, or what ``"auto"`` chooses."""
        if self.estep != AUTO:
            return self.estep
        from .auto import choose

        return choose(X, self.n_components)

    def _progress(self, say):
        """The per-iteration callback of ``verbose=2``: a line every ``verbose_interval``."""
        last = {"time": time.perf_counter(), "iteration": 0}

        def _progress_line(row):
            it = row["iteration"]
            if it == 0:
                say(f"  start: log-likelihood per sample {row['loglik']:.4f}")
                last["time"] = time.perf_counter()
            elif it % self.verbose_interval == 0:
                now = time.perf_counter()
                per_iter = (now - last["time"]) / (it - last["iteration"])
                last.update(time=now, iteration=it)
                extra = f", {row['reseeded']} component(s) re-seeded" if row["reseeded"] else ""
                say(
                    f"  iteration {it}: log-likelihood per sample {row['loglik']:.4f}, "
                    f"objective change {row['change']:+.3e}, {per_iter:.3f} s/iteration"
                    f"{extra}"
                )

        return _progress_line

    def fit_predict(self, X, y=None, *, log=None):
        """Fit, then give the most responsible component of each sample of X.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), or bmm.bits.BitMatrix
            Binary data.
        y : None
            Ignored; present for API consistency.
        log : callable, default=None
            As for :meth:`fit`.

        Returns
        -------
        labels : ndarray of shape (n_samples,)
            Component index of each sample.
        """
        return self.fit(X, log=log).predict(X)

    @classmethod
    def from_parameters(cls, weights, means, *, n_samples=None, **params):
        """A fitted model from its parameters, e.g. read back from a params table.

        The model scores, predicts and samples as the fitted one did; ``converged_``,
        ``n_iter_``, ``lower_bound_`` and ``trace_`` belong to a fit and are not set.

        Parameters
        ----------
        weights : array-like of shape (n_components,)
            Mixture weights, ≥ 0, summing to 1.
        means : array-like of shape (n_components, n_features)
            Component means, in [0, 1].
        n_samples : int, default=None
            How many samples the model was fitted on (sets ``n_samples_fit_``).
        **params
            Constructor parameters; ``n_components`` is K.

        Returns
        -------
        model : BernoulliMixture
            A fitted estimator.
        """
        weights = np.array(weights, dtype=np.float64)
        means = np.array(means, dtype=np.float64)
        if weights.ndim != 1 or means.ndim != 2 or len(weights) != len(means):
            raise ValueError(
                f"weights must be (K,) and means (K, D) for the same K, got {weights.shape} "
                f"and {means.shape}"
            )
        if not (np.isfinite(weights).all() and (weights >= 0).all()):
            raise ValueError("weights must be finite and ≥ 0")
        if abs(weights.sum() - 1.0) > 1e-8:
            raise ValueError(f"weights must sum to 1, got {weights.sum()!r}")
        if not (np.isfinite(means).all() and (means >= 0).all() and (means <= 1).all()):
            raise ValueError("means must lie in [0, 1]")
        K = len(weights)
        if params.get("n_components", K) != K:
            raise ValueError(f"n_components={params['n_components']} but {K} weights given")
        model = cls(**{**params, "n_components": K})
        model._validate_params()
        model.weights_, model.means_ = weights, means
        model.n_features_in_ = means.shape[1]
        model.n_samples_fit_ = None if n_samples is None else int(n_samples)
        return model

    # -- scoring -----------------------------------------------------------------------

    def _estimate(self, X):
        """(responsibilities N×K, log p(x) per sample) by the stable scoring E-step; rows
        that are not in memory a block at a time."""
        check_is_fitted(self, msg=_NOT_FITTED)
        X = self._validate_X(X, reset=False)
        if not getattr(X, "streamed", False):
            return _estep.scoring(X, self.weights_, self.means_)
        parts = [_estep.scoring(block, self.weights_, self.means_) for block in X.blocks()]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def predict_proba(self, X):
        """Compute the responsibilities p(k | x) of each component for each sample.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), or bmm.bits.BitMatrix
            Binary data.

        Returns
        -------
        resp : ndarray of shape (n_samples, n_components)
            Each row sums to 1.
        """
        return self._estimate(X)[0]

    def predict(self, X):
        """The most responsible component of each sample.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), or bmm.bits.BitMatrix
            Binary data.

        Returns
        -------
        labels : ndarray of shape (n_samples,)
            Component index of each sample.
        """
        return self.predict_proba(X).argmax(axis=1)

    def score_samples(self, X):
        """Compute the log-likelihood log p(x) of each sample under the model.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), or bmm.bits.BitMatrix
            Binary data.

        Returns
        -------
        log_prob : ndarray of shape (n_samples,)
            The log-likelihoods, in nats.
        """
        return self._estimate(X)[1]

    def score(self, X, y=None):
        """Mean log-likelihood per sample (higher is better: what ``GridSearchCV`` maximises).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), or bmm.bits.BitMatrix
            Binary data.
        y : None
            Ignored; present for API consistency.

        Returns
        -------
        log_likelihood : float
            Mean of :meth:`score_samples` over X.
        """
        return float(self.score_samples(X).mean())

    def sample(self, n_samples=1, *, packed=False):
        """Draw binary samples from the fitted mixture.

        As ``GaussianMixture.sample``: the samples come grouped by component (y sorted),
        drawn from ``random_state`` afresh at each call.

        Parameters
        ----------
        n_samples : int, default=1
            Number of samples to draw (≥ 1).
        packed : bool, default=False
            Return the samples as a :class:`bmm.bits.BitMatrix`, packed block by block as they
            are drawn (the same samples, bit for bit): 98 bytes a MNIST-sized sample where
            the bool array takes 784, so 10⁷ samples fit in 1 GB.

        Returns
        -------
        X : ndarray of shape (n_samples, n_features), dtype bool, or bmm.bits.BitMatrix
            The samples.
        y : ndarray of shape (n_samples,)
            The component each sample was drawn from.
        """
        y, rng = self._components(n_samples)
        D = self.means_.shape[1]
        if not packed:
            return rng.random((n_samples, D)) < self.means_[y], y
        bits = np.empty((n_samples, -(-D // 8)), np.uint8)
        for start, block in self._packed_draws(y, rng):
            bits[start : start + len(block)] = block.bits
        return BitMatrix(bits, D), y

    def sample_blocks(self, n_samples):
        """Draw :meth:`sample`'s samples packed, a block of rows at a time.

        A block is :data:`bmm.rows.BLOCK_ROWS` rows: memory holds one (and the components, 8
        bytes a sample), whatever ``n_samples``. The blocks put end to end are
        ``sample(n_samples, packed=True)``.

        Parameters
        ----------
        n_samples : int
            Number of samples to draw (≥ 1).

        Yields
        ------
        block : bmm.bits.BitMatrix
            The next rows.
        """
        y, rng = self._components(n_samples)
        for _, block in self._packed_draws(y, rng):
            yield block

    def _components(self, n_samples):
        """The component of each sample (sorted), and the generator the samples come from."""
        check_is_fitted(self, msg=_NOT_FITTED)
        if not isinstance(n_samples, Integral) or isinstance(n_samples, bool) or n_samples < 1:
            raise ValueError(f"n_samples must be an integer ≥ 1, got {n_samples!r}")
        rng = np.random.default_rng(self.random_state)
        counts = rng.multinomial(n_samples, self.weights_ / self.weights_.sum())
        return np.repeat(np.arange(len(self.weights_)), counts), rng

    def _packed_draws(self, y, rng):
        """(first row, BitMatrix) of each block of draws: the same draws as a bool array of
        them all, in row order."""
        for start in range(0, len(y), BLOCK_ROWS):
            here = y[start : start + BLOCK_ROWS]
            block = rng.random((len(here), self.means_.shape[1])) < self.means_[here]
            yield start, BitMatrix.pack(block)

    def n_parameters(self):
        """Number of free parameters: K·D means and K − 1 weights.

        Returns
        -------
        n : int
            The number of free parameters.
        """
        check_is_fitted(self, msg=_NOT_FITTED)
        K, D = self.means_.shape
        return K * D + K - 1

    def bic(self, X):
        """Bayesian information criterion on X (lower is better).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), or bmm.bits.BitMatrix
            Binary data.

        Returns
        -------
        bic : float
            −2 log L + p log N.
        """
        loglik = self.score_samples(X)
        return engine.bic(loglik.sum(), self.n_parameters(), len(loglik))

    def aic(self, X):
        """Akaike information criterion on X (lower is better).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), or bmm.bits.BitMatrix
            Binary data.

        Returns
        -------
        aic : float
            −2 log L + 2 p.
        """
        return -2 * self.score_samples(X).sum() + 2 * self.n_parameters()


_NOT_FITTED = "This %(name)s instance is not fitted yet; call fit(X) first."


def _is_dask_array(X) -> bool:
    return type(X).__module__.startswith("dask.array") and hasattr(X, "chunks")
