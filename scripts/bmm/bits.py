"""Binary data kept as bits, and the two products EM needs, computed without unpacking them.

A binarised MNIST image is 784 bits: 98 bytes packed, against 3136 bytes as float32 and 6272 as
float64. :class:`BitMatrix` holds rows as ``numpy.packbits`` writes them (big bit order: feature
0 is the high bit of byte 0), the layout the pipeline's Parquet files store, so loading them
converts nothing.

EM needs two products with X, and both can work on *nibbles* (4 bits: 16 possible values)
through small tables:

- E-step, ``X @ W`` for the log-odds ``W`` (D×K). Nibble q of an image covers features
  4q..4q+3, and its value v says which of them are on, so their contribution is one table row,
  ``T[q, v] = Σ_{b: bit b of v is set} W[4q + b]``; all the tables together are
  ``NIBBLES @ W`` (16×4 by 4×K for each q), 16·K numbers per 4 features. A row of the product
  is then the sum of one table row per non-zero nibble: 45 of them an image in MNIST (a nibble
  of zeros adds nothing), where a dense product does 784 multiply-adds per component.
- M-step, ``resp.T @ X`` (K×D), the transpose: add each responsibility row γ_n into a
  histogram row ``H[q, v]`` for each of its nibbles, then expand,
  ``S[4q + b] = Σ_{v: bit b} H[q, v]``, which is ``NIBBLES.T @ H``.

Testing each nibble for zero costs a mispredicted branch on a third of them, so the non-zero
nibbles are listed once per data set in :class:`NibbleIndex` (two bytes each: 90 bytes an
MNIST image, as compact as the bits) and the kernels run over the lists with no test at all.

One EM iteration is one pass over the rows (:func:`statistics`): a block of rows at a time,
each row's table sums, normalised into γ_n while they are in registers, and each γ_n added
into the histogram rows of the row's nibbles before the next block. The full N×K matrix γ is
never built. After the first few iterations most entries of γ_n are exactly 0 (the other
components' probabilities underflow), and only the non-zero ones are added.

Why nibbles rather than bytes: tables over bytes need 16× the memory (far beyond a core's L2
cache at K = 100) and save few additions (34 non-zero bytes an image against 45 nibbles).
The kernels are compiled by numba (``pip install 'bmm[numba]'``) and deterministic: every
output element is summed by one thread, in row order, whatever the number of threads.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .rows import BLOCK_ROWS, Stats, stats_of

try:
    import numba
except ImportError:  # an optional extra; the variants that need it say so
    numba = None

#: Rows the M-step lists by component in one go (one thread's share of a block).
CHUNK_ROWS = 256

#: The M-step's keys are summed in this many parts, shared out among the threads (plenty for
#: any thread count; each key is summed whole by one part, so the sums do not depend on it).
KEY_PARTS = 64

#: A block's sums go by key from this share of non-zero responsibilities on, by component
#: below it (:func:`_fused_pass`; the sums are the same either way).
BY_KEY_FROM = 0.5

#: NIBBLES[v, b] = bit b of the 4-bit value v, high bit first (the order of numpy.packbits).
NIBBLES = ((np.arange(16)[:, None] >> (3 - np.arange(4))) & 1).astype(np.float64)


class BitMatrix:
    """N binary rows of D features, stored 8 to a byte (``numpy.packbits``, big bit order).

    ``bits`` is an (N, ceil(D/8)) uint8 array whose padding bits are 0. Rows are selected like
    an array's (``X[:1000]``, ``X[index_array]``), giving a BitMatrix; a slice of rows shares
    its parent's index of non-zero nibbles. Implements :class:`bmm.rows.Rows`.
    """

    def __init__(self, bits: np.ndarray, n_features: int):
        bits = np.asarray(bits)
        if bits.dtype != np.uint8 or bits.ndim != 2:
            raise ValueError(f"bits must be a 2-D uint8 array, got {bits.dtype} {bits.shape}")
        if bits.shape[1] != -(-n_features // 8):
            raise ValueError(
                f"{n_features} features take {-(-n_features // 8)} bytes a row, got {bits.shape[1]}"
            )
        self.bits = bits
        self.n_features = int(n_features)

    @classmethod
    def pack(cls, X) -> BitMatrix:
        """Pack a 2-D array of 0/1 values (bool or numbers; any non-zero counts as 1)."""
        X = np.asarray(X)
        if X.ndim != 2:
            raise ValueError(f"expected a 2-D array, got shape {X.shape}")
        return cls(np.packbits(X.astype(bool, copy=False), axis=1), X.shape[1])

    def unpack(self, dtype=np.uint8) -> np.ndarray:
        """The (N, D) array of 0/1 values in ``dtype``."""
        out = np.unpackbits(self.bits, axis=1, count=self.n_features)
        return out.astype(dtype, copy=False)

    dense = unpack

    @property
    def shape(self) -> tuple[int, int]:
        return (self.bits.shape[0], self.n_features)

    @property
    def nbytes(self) -> int:
        return self.bits.nbytes

    def __len__(self) -> int:
        return self.bits.shape[0]

    def __getitem__(self, rows) -> BitMatrix:
        if isinstance(rows, tuple | int | np.integer):
            raise IndexError("a BitMatrix selects whole rows: X[rows], not X[i] or X[i, j]")
        out = BitMatrix(self.bits[rows], self.n_features)
        if isinstance(rows, slice) and "nibbles" in self.__dict__:
            start, stop, step = rows.indices(len(self))
            if step == 1:  # the parent's index covers these rows already
                out.nibbles = self.nibbles.rows(start, max(start, stop))
        return out

    def __repr__(self) -> str:
        return f"BitMatrix({len(self)} rows × {self.n_features} features, {self.nbytes} bytes)"

    @functools.cached_property
    def nibbles(self) -> NibbleIndex:
        """The non-zero nibbles, listed once (built on first use, then kept)."""
        return NibbleIndex.of(self.bits)

    def blocks(self, size: int = BLOCK_ROWS) -> Iterator[BitMatrix]:
        for start in range(0, len(self), size):
            yield self[start : start + size]

    def summarize(self, variant, pi, mu, weights: np.ndarray | None = None) -> Stats:
        """One pass of EM for the bit-packed E-step (``variant`` is ``packed_lut``): its
        E-step fused with the M-step's sums, a block of rows at a time (:func:`statistics`)."""
        if not variant.packed:
            raise ValueError(f"a BitMatrix is summarised by packed_lut, not {variant.name}")
        from .estep import log_odds

        loglik, Nk, H = statistics(self, *log_odds(pi, mu), weights=weights)
        expand = functools.partial(weighted_from_histograms, n=self.n_features)
        return stats_of(loglik, Nk, H, weights, expand)

    def column_sums(self, weights: np.ndarray | None = None) -> np.ndarray:
        """Ones in each column (int64), or Σ_n w_n x_n (float64), unpacking blocks of rows:
        no N×D array is built."""
        if weights is not None:
            out = np.zeros(self.n_features)
            for start in range(0, len(self), BLOCK_ROWS):
                block = self[start : start + BLOCK_ROWS].unpack(np.float64)
                out += weights[start : start + BLOCK_ROWS] @ block
            return out
        out = np.zeros(self.n_features, dtype=np.int64)
        for block in self.blocks():
            out += block.unpack().sum(axis=0, dtype=np.int64)
        return out

    def hamming(self, row: int) -> np.ndarray:
        """Hamming distance (int64) of every row to row ``row``: the popcount of their XOR."""
        return np.bitwise_count(self.bits ^ self.bits[row]).sum(axis=1, dtype=np.int64)


@dataclass(frozen=True)
class NibbleIndex:
    """Where a BitMatrix's non-zero nibbles are. A nibble's *key* is ``16 q + v``: its position
    q (0 .. 2·bytes − 1) and value v (1 .. 15); key k is row k of the tables and histograms.
    Row n's keys, in increasing order, are ``keys[row_start[n] : row_start[n + 1]]``.
    """

    n_keys: int
    row_start: np.ndarray  # (N + 1,) int64 offsets into keys (a slice of rows: a view)
    keys: np.ndarray  # uint16 (int32 past 65536 keys)

    @classmethod
    def of(cls, bits: np.ndarray) -> NibbleIndex:
        if numba is None:
            raise RuntimeError("the bit-packed kernels need numba: pip install 'bmm[numba]'")
        n_keys = 32 * bits.shape[1]
        key_type = np.uint16 if n_keys <= 1 << 16 else np.int32
        row_start, keys = _list_by_row(bits, np.zeros(0, key_type))
        return cls(n_keys, row_start, keys)

    def rows(self, start: int, stop: int) -> NibbleIndex:
        """The index of rows start..stop − 1 (views of this one's arrays)."""
        return NibbleIndex(self.n_keys, self.row_start[start : stop + 1], self.keys)


def nibble_tables(W: np.ndarray, dtype=np.float32) -> np.ndarray:
    """Row 16 q + v holds Σ_{b: bit b of v} W[4q + b], for W (D×K): the E-step's tables."""
    D, K = W.shape
    padded = np.zeros((-(-D // 8) * 8, K))  # whole bytes; padding features weigh nothing
    padded[:D] = W
    return np.matmul(NIBBLES, padded.reshape(-1, 4, K)).reshape(-1, K).astype(dtype)


def expand_histograms(H: np.ndarray, n_features: int) -> np.ndarray:
    """Per-feature sums S (D×K) from nibble histograms H (keys × K): S[4q + b] = Σ_v H[q, v]."""
    K = H.shape[1]
    return np.matmul(NIBBLES.T, H.reshape(-1, 16, K)).reshape(-1, K)[:n_features]


def weighted_from_histograms(H: np.ndarray, n: int) -> np.ndarray:
    """Σ_n γ_nk x_n (K×D) from the histograms H (keys × K) of a pass, for n features."""
    return expand_histograms(H, n).T


def e_step(
    X: BitMatrix, W: np.ndarray, c: np.ndarray, dtype=np.float32
) -> tuple[np.ndarray, np.ndarray]:
    """Responsibilities (N×K, ``dtype``) and log p(x) (float64) for the joint ``c + X @ W``: per
    row, one table row added per non-zero nibble, then normalised while in registers.

    The sums start from 0 and ``c`` comes last, so they accumulate at the size of ``X @ W``
    (tens of nats), not at that of ``c`` (hundreds), and round 10× less in float32. In float32
    the exponential is :func:`_exp32` (vectorisable; flushes below e^−87 to 0), in float64
    numpy's.
    """
    N, K = len(X), W.shape[1]
    resp, loglik = np.empty((N, K), dtype=dtype), np.empty(N)
    index = X.nibbles
    kernel = _e_rows32 if np.dtype(dtype) == np.float32 else _e_rows64
    kernel(index.row_start, index.keys, nibble_tables(W, dtype), c.astype(dtype), resp, loglik)
    return resp, loglik


def weighted_sums(X: BitMatrix, resp: np.ndarray) -> np.ndarray:
    """``resp.T @ X`` (K×D, float64): each responsibility row added into the histogram rows
    of its nibbles (rows in order), then expanded."""
    index = X.nibbles
    resp = np.ascontiguousarray(resp)
    H = np.zeros((resp.shape[1], index.n_keys))
    _add_rows_by_key(index.row_start, index.keys, resp, H)
    return expand_histograms(H.T, X.n_features).T


def statistics(X: BitMatrix, W, c, block_rows: int = BLOCK_ROWS, weights=None):
    """One EM pass over X at the log-odds W (D×K) and constants c: the E-step, fused with the
    sums the M-step needs, in float32 responsibilities and float64 sums.

    Returns ``(loglik, Nk, H)``: log p(x) of every row (float64), N_k = Σ_n w_n γ_nk and the
    nibble histograms H (keys × K, float64; :func:`expand_histograms` gives Σ_n w_n γ_nk x_n),
    with the rows' ``weights`` w_n (float64, or None: all 1).
    Each block of ``block_rows`` rows is summed from zero, and the blocks' sums are added in
    order, so X's blocks passed one at a time (and their results added in order) give the
    same sums, bit for bit.
    """
    fused = Pass(W, c, X.nibbles.n_keys, min(len(X), block_rows))
    loglik = fused.add(X, weights)
    return loglik, fused.Nk, fused.H.T


class Pass:
    """One EM pass at fixed (π, μ) over bit-packed rows given a part at a time: the tables are
    built once, the sums (N_k and the histograms, ``Nk`` and ``H``: K × keys) run on from part
    to part, and the scratch is reused. Parts of whole blocks (of ``block_rows``) give the
    sums of the rows given at once, bit for bit."""

    def __init__(self, W, c, n_keys: int, block_rows: int = BLOCK_ROWS, by_key_from=BY_KEY_FROM):
        K = W.shape[1]
        self.table, self.c = nibble_tables(W, np.float32), c.astype(np.float32)
        self.block_rows, self.by_key_from = block_rows, float(by_key_from)
        self.Nk, self.H = np.zeros(K), np.zeros((K, n_keys))
        chunks = -(-block_rows // CHUNK_ROWS)
        self.scratch = (
            np.empty((block_rows, K), np.float32),  # γ of a block
            np.empty(block_rows, np.int32),  # its non-zero entries a row
            # sparse blocks: γ's non-zero entries listed by component (chunks' counts, where
            # each component's start, their rows, their values times the rows' weights)
            np.empty((chunks, K), np.int64),
            np.empty(K + 1, np.int64),
            np.empty(block_rows * K, np.int32),
            np.empty(block_rows * K, np.float64),
            # dense blocks: the block's rows listed by key (chunks' counts, where each key's
            # start, the rows)
            np.empty((chunks, n_keys + 1), np.int64),
            np.empty(n_keys + 1, np.int64),
            np.empty(block_rows * (n_keys // 16), np.uint16),
        )

    def add(self, X: BitMatrix, weights=None) -> np.ndarray:
        """Add X's rows (weights: theirs, or None) to the sums; returns their log p(x)."""
        index = X.nibbles
        loglik = np.empty(len(X))
        w = np.ones(0) if weights is None else np.asarray(weights, np.float64)
        _fused_pass(
            index.row_start, index.keys, self.table, self.c, self.block_rows, self.by_key_from,
            w, loglik, self.Nk, self.H, *self.scratch,
        )  # fmt: skip
        return loglik


# ---------------------------------------------------------------------------------------
# The compiled kernels (numba). Plain loops: numba turns each innermost loop over K into
# vector instructions.

#: 2^n for n = −126 .. 127 at index n + 127 (index 0: 0), for :func:`_exp32`.
_POW2 = np.array([0.0] + [2.0**n for n in range(-126, 128)], np.float32)


def _exp32(x):  # pragma: no cover (compiled)
    """e^x in float32 for x ≤ 0 (log-probabilities shifted by their maximum), within 1e-7
    relative of the exact value (numpy's float32 exp: 2e-7), 0 below −87 (where float32
    turns subnormal). Cephes' expf: x = n ln 2 + r, |r| ≤ ln 2 / 2, e^r by a polynomial, 2^n
    from a table. Unlike a call to libm's expf, the compiler vectorises it."""
    xc = max(x, np.float32(-87.0))
    n = np.floor(xc * np.float32(1.4426950408889634) + np.float32(0.5))
    r = xc - n * np.float32(0.693359375) - n * np.float32(-2.12194440e-4)
    p = np.float32(1.9875691500e-4)
    p = p * r + np.float32(1.3981999507e-3)
    p = p * r + np.float32(8.3334519073e-3)
    p = p * r + np.float32(4.1665795894e-2)
    p = p * r + np.float32(1.6666665459e-1)
    p = p * r + np.float32(5.0000001201e-1)
    p = p * r * r + r + np.float32(1.0)
    return p * _POW2[np.int32(n) + 127] if x >= np.float32(-87.0) else np.float32(0.0)


def _table_sum(acc, keys, start, end, table):  # pragma: no cover (compiled)
    """acc = Σ table[keys[p]] for p in start..end − 1. Four table rows are added per pass over
    acc (the rest one by one): a quarter of the loads and stores of acc, which cost more than
    the additions."""
    K = acc.shape[0]
    for k in range(K):
        acc[k] = 0
    fours = start + (end - start) // 4 * 4
    for p in range(start, fours, 4):
        t0, t1 = table[keys[p]], table[keys[p + 1]]
        t2, t3 = table[keys[p + 2]], table[keys[p + 3]]
        for k in range(K):
            acc[k] += (t0[k] + t1[k]) + (t2[k] + t3[k])
    for p in range(fours, end):
        t0 = table[keys[p]]
        for k in range(K):
            acc[k] += t0[k]


def _sum8(acc):  # pragma: no cover (compiled)
    """Σ_k acc[k] in a fixed order that vectorises without reassociation: eight running sums
    over k mod 8, then added pairwise (numba's acc.sum() adds one element after another)."""
    K = acc.shape[0]
    zero = acc[0] - acc[0]  # 0 in acc's precision (acc holds finite numbers)
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = zero
    eights = K - K % 8
    for k in range(0, eights, 8):
        s0 += acc[k]
        s1 += acc[k + 1]
        s2 += acc[k + 2]
        s3 += acc[k + 3]
        s4 += acc[k + 4]
        s5 += acc[k + 5]
        s6 += acc[k + 6]
        s7 += acc[k + 7]
    for k in range(eights, K):
        s0 += acc[k]
    return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))


def _normalise32(acc, c):  # pragma: no cover (compiled)
    """acc + c → responsibilities (in place), shifted by the maximum before the exponential;
    returns log Σ_k e^(acc + c) in float64. No fast-math: the same row gives the same bits in
    every kernel that calls this."""
    K = acc.shape[0]
    for k in range(K):
        acc[k] += c[k]
    top = acc.max()
    for k in range(K):
        acc[k] = _exp32(acc[k] - top)
    total = _sum8(acc)
    for k in range(K):
        acc[k] /= total
    return np.float64(top) + np.log(np.float64(total))


def _normalise64(acc, c):  # pragma: no cover (compiled)
    """As :func:`_normalise32` in float64, with numpy's exponential."""
    K = acc.shape[0]
    for k in range(K):
        acc[k] += c[k]
    top = acc.max()
    for k in range(K):
        acc[k] = np.exp(acc[k] - top)
    total = _sum8(acc)
    for k in range(K):
        acc[k] /= total
    return top + np.log(total)


def _e_rows32(row_start, keys, table, c, resp, loglik):  # pragma: no cover (compiled)
    for n in numba.prange(resp.shape[0]):
        _table_sum(resp[n], keys, row_start[n], row_start[n + 1], table)
        loglik[n] = _normalise32(resp[n], c)


def _e_rows64(row_start, keys, table, c, resp, loglik):  # pragma: no cover (compiled)
    for n in numba.prange(resp.shape[0]):
        _table_sum(resp[n], keys, row_start[n], row_start[n + 1], table)
        loglik[n] = _normalise64(resp[n], c)


def _add_to_histograms(row_start, keys, first, comp_start, comp_rows, comp_vals, H):
    """H[k, key] += the responsibility of component k for row first + i, for every key of that
    row: component k's non-zero responsibilities are comp_vals[comp_start[k]:comp_start[k + 1]]
    of rows comp_rows[...] (in order). Each component's histogram row (n_keys numbers: 25 kB
    for MNIST) is summed from zero by one thread while it stays in that core's cache, then
    added to H[k]."""
    n_keys = H.shape[1]
    for k in numba.prange(H.shape[0]):  # pragma: no cover (compiled)
        acc = np.zeros(n_keys)
        for e in range(comp_start[k], comp_start[k + 1]):
            n, g = first + comp_rows[e], comp_vals[e]
            for p in range(row_start[n], row_start[n + 1]):
                acc[keys[p]] += g
        h = H[k]
        for key in range(n_keys):
            h[key] += acc[key]


def _by_component(resp, w, first, chunk_rows, counts, comp_start, comp_rows, comp_vals):
    """The non-zero entries of resp (rows × K) listed by component, rows in order: component
    k's are comp_vals[comp_start[k] : comp_start[k + 1]] (float64; times w[first + i] for row
    i when w is not empty), from rows comp_rows[...]. Chunks of chunk_rows rows are listed in
    parallel; counts (chunks × K) is scratch."""
    rows, K = resp.shape
    n_chunks = -(-rows // chunk_rows)
    for c in numba.prange(n_chunks):  # pragma: no cover (compiled)
        for k in range(K):
            counts[c, k] = 0
        for i in range(c * chunk_rows, min(rows, (c + 1) * chunk_rows)):
            for k in range(K):
                if resp[i, k] != 0:
                    counts[c, k] += 1
    total = 0
    for k in range(K):  # chunk c's entries of component k start at counts[c, k]
        comp_start[k] = total
        for c in range(n_chunks):
            here = counts[c, k]
            counts[c, k] = total
            total += here
    comp_start[K] = total
    weighted = w.shape[0] > 0
    for c in numba.prange(n_chunks):  # pragma: no cover (compiled)
        for i in range(c * chunk_rows, min(rows, (c + 1) * chunk_rows)):
            for k in range(K):
                if resp[i, k] != 0:
                    value = np.float64(resp[i, k])
                    comp_rows[counts[c, k]] = i
                    comp_vals[counts[c, k]] = value * w[first + i] if weighted else value
                    counts[c, k] += 1


def _add_rows_by_key(row_start, keys, resp, H):  # pragma: no cover (compiled)
    """H[k, key] += resp[n, k] for every key of row n: the two-pass M-step's sums."""
    N, K = resp.shape
    counts = np.empty((-(-N // CHUNK_ROWS), K), np.int64)
    comp_start = np.empty(K + 1, np.int64)
    comp_rows, comp_vals = np.empty(N * K, np.int32), np.empty(N * K)
    _by_component(resp, np.ones(0), 0, CHUNK_ROWS, counts, comp_start, comp_rows, comp_vals)
    _add_to_histograms(row_start, keys, 0, comp_start, comp_rows, comp_vals, H)


def _fused_pass(
    row_start, keys, table, c, block_rows, by_key_from, w, loglik, Nk, H, gamma, nz, counts,
    comp_start, rows, vals, key_counts, key_start, key_rows,
):  # pragma: no cover (compiled)  # fmt: skip
    """One EM pass (see :func:`statistics`): per block, E-step rows in parallel, then the
    block's sums from zero, added to the totals: by component when γ's non-zero share is
    below by_key_from (each non-zero entry added to its component's histogram row, once per
    key of its row), by key otherwise (each key's rows summed in a K-long accumulator, all
    components at once, after a counting sort of the block's rows by key). Both add every
    (component, key)'s terms in row order, skipping only zeros, so the choice never changes
    a bit of the sums. By component costs an addition per non-zero entry and key, by key K
    (vectorised) per key and a sort: the first is the cheaper once most entries are 0, as
    after a fit's first iterations (docs/scaling.md measures both)."""  # fmt: skip
    N, K = loglik.shape[0], table.shape[1]
    for first in range(0, N, block_rows):
        n_rows = min(block_rows, N - first)
        for i in numba.prange(n_rows):
            n = first + i
            g = gamma[i]
            _table_sum(g, keys, row_start[n], row_start[n + 1], table)
            loglik[n] = _normalise32(g, c)
            count = 0
            for k in range(K):
                count += g[k] != 0
            nz[i] = count
        block = gamma[:n_rows]
        if nz[:n_rows].sum() < by_key_from * n_rows * K:  # most of γ is 0
            _by_component(block, w, first, CHUNK_ROWS, counts, comp_start, rows, vals)
            for k in numba.prange(K):
                total = 0.0
                for e in range(comp_start[k], comp_start[k + 1]):
                    total += vals[e]
                Nk[k] += total
            _add_to_histograms(row_start, keys, first, comp_start, rows, vals, H)
        else:
            _by_key(row_start, keys, first, n_rows, CHUNK_ROWS, key_counts, key_start, key_rows)
            weighted = w.shape[0] > 0
            for k in numba.prange(K):
                total = 0.0
                for i in range(n_rows):
                    value = np.float64(block[i, k])
                    total += value * w[first + i] if weighted else value
                Nk[k] += total
            _add_by_key(key_start, key_rows, block, w, first, H)


def _by_key(row_start, keys, first, n_rows, chunk_rows, counts, key_start, key_rows):
    """Rows first .. first + n_rows − 1 listed by key, in row order (offsets from first):
    key k's are key_rows[key_start[k] : key_start[k + 1]]. A counting sort, chunks of
    chunk_rows rows in parallel; counts (chunks × keys + 1) is scratch."""
    n_keys = key_start.shape[0] - 1
    n_chunks = -(-n_rows // chunk_rows)
    for c in numba.prange(n_chunks):  # pragma: no cover (compiled)
        for key in range(n_keys):
            counts[c, key] = 0
        for i in range(c * chunk_rows, min(n_rows, (c + 1) * chunk_rows)):
            for p in range(row_start[first + i], row_start[first + i + 1]):
                counts[c, keys[p]] += 1
    total = 0
    for key in range(n_keys):  # chunk c's rows of a key start at counts[c, key]
        key_start[key] = total
        for c in range(n_chunks):
            here = counts[c, key]
            counts[c, key] = total
            total += here
    key_start[n_keys] = total
    for c in numba.prange(n_chunks):  # pragma: no cover (compiled)
        for i in range(c * chunk_rows, min(n_rows, (c + 1) * chunk_rows)):
            for p in range(row_start[first + i], row_start[first + i + 1]):
                key_rows[counts[c, keys[p]]] = i
                counts[c, keys[p]] += 1


def _add_by_key(key_start, key_rows, resp, w, first, H):
    """H[k, key] += Σ resp[i, k] (times w[first + i], when w is not empty) over key's rows
    i, in row order: each key's sums from zero in a K-long accumulator, then added; parts of
    the keys in parallel (each key by one thread)."""
    K, n_keys = H.shape
    weighted = w.shape[0] > 0
    # which thread sums a key changes nothing; a fixed count of parts, not one from
    # numba.get_num_threads(), which would keep numba from caching the compiled kernel (a
    # ctypes pointer) and make every fresh process compile it again (8 s)
    parts = KEY_PARTS
    per = -(-n_keys // parts)
    for t in numba.prange(parts):  # pragma: no cover (compiled)
        acc = np.empty(K)
        for key in range(t * per, min(n_keys, (t + 1) * per)):
            start, end = key_start[key], key_start[key + 1]
            if start == end:
                continue
            acc[:] = 0.0
            for q in range(start, end):
                i = key_rows[q]
                g = resp[i]
                if weighted:
                    weight = w[first + i]
                    for k in range(K):
                        acc[k] += np.float64(g[k]) * weight
                else:
                    for k in range(K):
                        acc[k] += g[k]
            for k in range(K):
                H[k, key] += acc[k]


def _list_by_row(bits, key_type):  # pragma: no cover (compiled)
    """(row_start, keys) of NibbleIndex: rows in parallel, counting then filling. Each row's
    keys are written without a branch: every nibble's key goes to the next free place, which
    moves on only when the nibble is not 0 (so a 0 is written over), in a buffer of the row's
    own (one per part of the rows), then copied."""
    N, n_bytes = bits.shape
    counts = np.zeros(N + 1, np.int64)
    for n in numba.prange(N):
        count = 0
        for j in range(n_bytes):
            count += np.int64(bits[n, j] >> 4 != 0) + np.int64(bits[n, j] & 15 != 0)
        counts[n + 1] = count
    row_start = np.cumsum(counts)
    keys = np.empty(row_start[N], key_type.dtype)
    parts = -(-N // CHUNK_ROWS)
    for part in numba.prange(parts):
        row = np.empty(2 * n_bytes + 1, key_type.dtype)
        for n in range(part * CHUNK_ROWS, min(N, (part + 1) * CHUNK_ROWS)):
            p = 0
            for j in range(n_bytes):
                high, low = bits[n, j] >> 4, bits[n, j] & 15
                row[p] = 32 * j + high
                p += high != 0
                row[p] = 32 * j + 16 + low
                p += low != 0
            start = row_start[n]
            for q in range(p):
                keys[start + q] = row[q]
    return row_start, keys


if numba is not None:
    _inline = numba.njit(inline="always", cache=True)
    _exp32 = _inline(_exp32)
    _table_sum = _inline(_table_sum)
    _sum8 = _inline(_sum8)
    _normalise32 = _inline(_normalise32)
    _normalise64 = _inline(_normalise64)
    _parallel = numba.njit(parallel=True, cache=True)
    _e_rows32 = _parallel(_e_rows32)
    _e_rows64 = _parallel(_e_rows64)
    _add_to_histograms = _parallel(_add_to_histograms)
    _by_component = _parallel(_by_component)
    _by_key = _parallel(_by_key)
    _add_by_key = _parallel(_add_by_key)
    _add_rows_by_key = numba.njit(cache=True)(_add_rows_by_key)
    _fused_pass = _parallel(_fused_pass)
    _list_by_row = _parallel(_list_by_row)
