"""Binary rows, dense or packed, behind one small interface.

The EM engine (:mod:`bmm.engine`) reads its data only through what this module describes, so it
never asks which form it holds:

- ``len(X)``, ``X.n_features``, ``X.shape``;
- ``X[rows]``: a selection of rows (a slice or an index array), in the same form;
- ``X.dense(dtype)``: the selected rows as an (N, D) array of 0/1 (for a few rows: a start, a
  re-seeded mean);
- ``X.column_sums()``: ones per column (int64), exact;
- ``X.hamming(row)``: the Hamming distance of every row to one row (int64);
- ``X.blocks()``: consecutive blocks of :data:`BLOCK_ROWS` rows, the unit of EM's sums.

Two forms implement it: :class:`DenseRows` here (an array of 0/1 in the precision of the E-step
that reads it) and :class:`bmm.bits.BitMatrix` (8 features a byte). :func:`rows_of` gives either
from what a user passes.

EM's statistics are sums over the rows (:class:`bmm.engine.Stats`), computed block by block:
each block's sums start from zero and the blocks' sums are added in their order. The same
blocks therefore give the same sums, bit for bit, whether they come from memory, from a
Parquet file's row groups or from a dask array's chunks, and whatever the number of threads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
from threadpoolctl import threadpool_limits

#: Rows per block of EM's sums (and per row group of the pipeline's binarised Parquet files, so
#: that a file read one row group at a time gives the in-memory fit's sums bit for bit).
BLOCK_ROWS = 4096


@runtime_checkable
class Rows(Protocol):
    """What the EM engine reads: N binary rows of D features (see the module's docstring)."""

    n_features: int

    def __len__(self) -> int: ...

    def __getitem__(self, rows) -> Rows: ...

    @property
    def shape(self) -> tuple[int, int]: ...

    def dense(self, dtype=np.float64) -> np.ndarray: ...

    def column_sums(self) -> np.ndarray: ...

    def hamming(self, row: int) -> np.ndarray: ...

    def blocks(self, size: int = BLOCK_ROWS) -> Iterator[Rows]: ...

    def summarize(self, variant, pi: np.ndarray, mu: np.ndarray) -> Stats: ...


@dataclass
class Stats:
    """Sums over a set of rows at one (π, μ): all that EM's M-step and stopping rule need.

    ``sums`` are Σ_n γ_nk x_n in the form the data's pass produces them (``expand(sums)``
    gives the K×D array; None: they are it already). ``worst_loglik`` and ``worst_rows``: the
    rows with the lowest log p(x), at most K of them, lowest first (ties: the lower row), for
    re-seeding. Stats of consecutive sets of rows add up, ``first + second``.
    """

    n: int
    loglik: float  # Σ_n log p(x_n)
    Nk: np.ndarray  # (K,) Σ_n γ_nk
    sums: np.ndarray
    worst_loglik: np.ndarray
    worst_rows: np.ndarray
    expand: Callable[[np.ndarray], np.ndarray] | None = None

    def __add__(self, other: Stats) -> Stats:
        values = np.concatenate([self.worst_loglik, other.worst_loglik])
        rows = np.concatenate([self.worst_rows, other.worst_rows + self.n])
        keep = lowest(values, rows, len(self.Nk))
        return Stats(
            self.n + other.n,
            self.loglik + other.loglik,
            self.Nk + other.Nk,
            self.sums + other.sums,
            values[keep],
            rows[keep],
            self.expand,
        )

    def weighted_sums(self) -> np.ndarray:
        """Σ_n γ_nk x_nd (K×D, float64)."""
        return self.sums if self.expand is None else self.expand(self.sums)


def lowest(values: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` smallest values, smallest first, ties broken by the lower row:
    the same selection however the candidates were gathered."""
    if len(values) > k:
        kth = np.partition(values, k - 1)[k - 1]
        candidates = np.flatnonzero(values <= kth)
    else:
        candidates = np.arange(len(values))
    order = np.lexsort((rows[candidates], values[candidates]))
    return candidates[order[:k]]


def stats_of(loglik: np.ndarray, Nk: np.ndarray, sums: np.ndarray, expand=None) -> Stats:
    """The :class:`Stats` of rows whose log p(x) are ``loglik``, a block at a time: the total
    log-likelihood is the blocks' sums added in order, as blocks passed one by one add up."""
    total = 0.0
    for start in range(0, len(loglik), BLOCK_ROWS):
        total += float(loglik[start : start + BLOCK_ROWS].sum())
    keep = lowest(loglik, np.arange(len(loglik)), len(Nk))
    return Stats(len(loglik), total, Nk, sums, loglik[keep], keep.astype(np.int64), expand)


class DenseRows:
    """N binary rows as an (N, D) array of 0/1 in a float (or bool) dtype."""

    def __init__(self, X: np.ndarray):
        X = np.asarray(X)
        if X.ndim != 2:
            raise ValueError(f"expected a 2-D array, got shape {X.shape}")
        self.X = X
        self.n_features = X.shape[1]

    def __len__(self) -> int:
        return self.X.shape[0]

    def __getitem__(self, rows) -> DenseRows:
        if isinstance(rows, tuple | int | np.integer):
            raise IndexError("rows are selected whole: X[rows], not X[i] or X[i, j]")
        return DenseRows(self.X[rows])

    def __repr__(self) -> str:
        return f"DenseRows({len(self)} rows × {self.n_features} features, {self.X.dtype})"

    @property
    def shape(self) -> tuple[int, int]:
        return self.X.shape

    @property
    def dtype(self) -> np.dtype:
        return self.X.dtype

    def dense(self, dtype=np.float64) -> np.ndarray:
        return self.X.astype(dtype, copy=False)

    def column_sums(self) -> np.ndarray:
        return self.X.sum(axis=0, dtype=np.int64)

    def hamming(self, row: int) -> np.ndarray:
        return (self.X != self.X[row]).sum(axis=1, dtype=np.int64)

    def blocks(self, size: int = BLOCK_ROWS) -> Iterator[DenseRows]:
        for start in range(0, len(self), size):
            yield self[start : start + size]

    def summarize(self, variant, pi: np.ndarray, mu: np.ndarray) -> Stats:
        """One pass of EM: ``variant``'s E-step on each block, the block's sums (float64)
        from its responsibilities, and the blocks' sums added in order. The products run on
        one BLAS thread: with more, OpenBLAS adds some products in another order, and the fit
        would depend on the number of threads."""
        total = None
        with threadpool_limits(1, user_api="blas"):
            for block in self.blocks():
                resp, loglik = variant(block.X, pi, mu)
                Nk = resp.sum(axis=0, dtype=np.float64)
                sums = resp.T.astype(np.float64) @ block.X
                here = stats_of(loglik, Nk, sums)
                total = here if total is None else total + here
        return total


def rows_of(X) -> Rows:
    """X as the engine reads it: a :class:`Rows` as it is, an array as :class:`DenseRows`."""
    return X if isinstance(X, Rows) else DenseRows(X)
