"""The scikit-learn estimator: :class:`BernoulliMixture`, EM's engine (:mod:`bmm.engine`) behind
scikit-learn's mixture API."""

from __future__ import annotations

import time
import warnings
from numbers import Integral, Real
from typing import ClassVar

import numpy as np
from sklearn.base import BaseEstimator, DensityMixin, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from . import engine
from . import estep as _estep
from .bits import BitMatrix

#: ``estep="auto"``: the fastest stable variant for the data and K (:func:`bmm.auto.choose`).
AUTO = "auto"


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
        without it).

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
    >>> np.round(np.sort(model.weights_), 1)
    array([0.5, 0.5])
    >>> model.predict([[1, 1, 0, 0, 0, 0], [0, 0, 0, 1, 1, 1]]).tolist() in ([0, 1], [1, 0])
    True
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

    # -- input -------------------------------------------------------------------------

    def _validate_X(self, X, *, reset):
        """The one place where input data are checked: X as a bool (n_samples × n_features).

        scikit-learn's ``validate_data`` checks the shape, finiteness and dtype and records
        (``reset=True``, in fit) or compares (scoring) ``n_features_in_`` and feature names;
        then X is binarised (``binarize`` a number) or must already be binary. A
        :class:`bmm.bits.BitMatrix` is binary by construction and stays packed: only its number
        of features is checked.
        """
        if isinstance(X, BitMatrix):
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

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None, *, log=None):
        """Fit by EM, ``n_init`` times from different starts; keep the best objective.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), or bmm.bits.BitMatrix
            Binary data (or data that ``binarize`` makes binary).
        y : None
            Ignored; present for API consistency.
        log : callable, default=None
            Where ``verbose`` messages go, a line at a time (default: printed to stdout, as
            scikit-learn's estimators do).

        Returns
        -------
        self : BernoulliMixture
            The fitted estimator.
        """
        X = self._validate_X(X, reset=True)
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
            pi, mu = engine.initialize(rows, self.n_components, self.init_params, rng)
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

    def _variant_name(self, X) -> str:
        """The E-step variant a fit of X uses: ``estep``, or what ``"auto"`` chooses."""
        if self.estep != AUTO:
            return self.estep
        from .auto import choose

        return choose(X, self.n_components)

    def _progress(self, say):
        """The per-iteration callback of ``verbose=2``: a line every ``verbose_interval``."""
        last = {"time": time.perf_counter(), "iteration": 0}

        def progress(row):
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

        return progress

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
        """(responsibilities N×K, log p(x) per sample) by the stable scoring E-step."""
        check_is_fitted(self, msg=_NOT_FITTED)
        X = self._validate_X(X, reset=False)
        return _estep.scoring(X, self.weights_, self.means_)

    def predict_proba(self, X):
        """Responsibilities p(k | x) of each component for each sample.

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
        """Log-likelihood log p(x) of each sample under the model.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), or bmm.bits.BitMatrix
            Binary data.

        Returns
        -------
        log_prob : ndarray of shape (n_samples,)
            log p(x) in nats.
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

    def sample(self, n_samples=1):
        """Draw binary samples from the fitted mixture.

        As ``GaussianMixture.sample``: the samples come grouped by component (y sorted),
        drawn from ``random_state`` afresh at each call.

        Parameters
        ----------
        n_samples : int, default=1
            Number of samples to draw (≥ 1).

        Returns
        -------
        X : ndarray of shape (n_samples, n_features), dtype bool
            The samples.
        y : ndarray of shape (n_samples,)
            The component each sample was drawn from.
        """
        check_is_fitted(self, msg=_NOT_FITTED)
        if not isinstance(n_samples, Integral) or isinstance(n_samples, bool) or n_samples < 1:
            raise ValueError(f"n_samples must be an integer ≥ 1, got {n_samples!r}")
        rng = np.random.default_rng(self.random_state)
        counts = rng.multinomial(n_samples, self.weights_ / self.weights_.sum())
        y = np.repeat(np.arange(len(self.weights_)), counts)
        X = rng.random((n_samples, self.means_.shape[1])) < self.means_[y]
        return X, y

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
