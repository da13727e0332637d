"""Bernoulli mixture models by EM, with the E-step written from Python loops to one product.

>>> from bmm import BernoulliMixture, VARIANTS
>>> model = BernoulliMixture(10, estep="matmul_fused", random_state=0).fit(X)  # doctest: +SKIP
"""

from .em import BernoulliMixture
from .estep import VARIANTS

__all__ = ["VARIANTS", "BernoulliMixture"]
__version__ = "0.1.0"
