"""Binary data kept as bits, and the two products EM needs, computed without unpacking them.

A binarised MNIST image is 784 bits: 98 bytes packed, against 3136 bytes as float32 and 6272 as
float64. MNIST's 60000 training images fit in 5.9 MB packed (a CPU's L3 cache holds that),
where a float32 copy is 188 MB that every E-step streams from memory. :class:`BitMatrix` holds
rows as ``numpy.packbits`` writes them (big bit order: feature 0 is the high bit of byte 0), the
layout the pipeline's Parquet files store, so loading them converts nothing.

EM needs two products with X, and both can work on *nibbles* (4 bits: 16 possible values)
through small tables:

- E-step, ``X @ W`` for the log-odds ``W`` (D×K). Nibble q of an image covers features
  4q..4q+3, and its value v says which of them are on, so their contribution is one table row,
  ``T[q, v] = Σ_{b: bit b of v is set} W[4q + b]``; all the tables together are
  ``NIBBLES @ W`` (16×4 by 4×K for each q), 16·K numbers per 4 features, built in well under
  a millisecond. A row of the product is then the sum of one table row per non-zero nibble:
  45 of them an image in MNIST (a nibble of zeros adds nothing), where a dense product does
  784 multiply-adds per component.
- M-step, ``resp.T @ X`` (K×D), the transpose: sum the responsibility rows γ_n into a
  histogram ``H[q, v]`` by each nibble's value, then expand, ``S[4q + b] = Σ_{v: bit b} H[q, v]``,
  which is ``NIBBLES.T @ H``.

Testing each nibble for zero costs a mispredicted branch on a third of them, which would
dominate; so the non-zero nibbles are listed once per data set in :class:`NibbleIndex` (two
bytes each, 90 bytes an image: as compact as the packed bits) and the kernels run over the
lists with no test at all. The E-step reads them row by row; the M-step reads them sorted by
nibble within blocks of 1024 rows, so that each histogram row is summed in registers while the
block's responsibilities stay in cache.

Why nibbles rather than bytes: tables over bytes need 16× the memory (10 MB at K = 100, far
beyond a core's L2 cache) and save few additions (34 non-zero bytes an image against 45
nibbles). Both kernels are compiled by numba (``pip install 'bmm[numba]'``) and deterministic:
every output element is summed by one thread in a fixed order, whatever the number of threads.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

try:
    import numba
except ImportError:  # an optional extra; the variants that need it say so
    numba = None

#: NIBBLES[v, b] = bit b of the 4-bit value v, high bit first (the order of numpy.packbits).
NIBBLES = ((np.arange(16)[:, None] >> (3 - np.arange(4))) & 1).astype(np.float64)

#: Rows per block of the M-step (row offsets within a block are stored as uint16).
BLOCK_ROWS = 1024


class BitMatrix:
    """N binary rows of D features, stored 8 to a byte (``numpy.packbits``, big bit order).

    ``bits`` is an (N, ceil(D/8)) uint8 array whose padding bits are 0. Rows are selected like
    an array's (``X[:1000]``, ``X[index_array]``), giving a BitMatrix.
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
        return BitMatrix(self.bits[rows], self.n_features)

    def __repr__(self) -> str:
        return f"BitMatrix({len(self)} rows × {self.n_features} features, {self.nbytes} bytes)"

    @functools.cached_property
    def nibbles(self) -> NibbleIndex:
        """The non-zero nibbles, listed once (built on first use, then kept)."""
        return NibbleIndex.of(self.bits)

    def column_sums(self) -> np.ndarray:
        """Ones in each column (int64), unpacking blocks of rows: no N×D array is built."""
        out = np.zeros(self.n_features, dtype=np.int64)
        for start in range(0, len(self), 4096):
            out += self[start : start + 4096].unpack().sum(axis=0, dtype=np.int64)
        return out

    def hamming(self, row: int) -> np.ndarray:
        """Hamming distance (int64) of every row to row ``row``: the popcount of their XOR."""
        return np.bitwise_count(self.bits ^ self.bits[row]).sum(axis=1, dtype=np.int64)


@dataclass(frozen=True)
class NibbleIndex:
    """Where a BitMatrix's non-zero nibbles are. A nibble's *key* is ``16 q + v``: its position
    q (0 .. 2·bytes − 1) and value v (1 .. 15); key k is row k of the tables and histograms.

    By row, for the E-step: row n's keys are ``keys[row_start[n] : row_start[n + 1]]``.
    By block and key, for the M-step: the rows (offsets within block b) whose nibble is key k
    are ``rows[block_start[b·n_keys + k] : block_start[b·n_keys + k + 1]]``, in row order.
    """

    n_keys: int
    row_start: np.ndarray
    keys: np.ndarray
    block_start: np.ndarray
    rows: np.ndarray

    @classmethod
    def of(cls, bits: np.ndarray) -> NibbleIndex:
        if numba is None:
            raise RuntimeError("the bit-packed kernels need numba: pip install 'bmm[numba]'")
        n_keys = 32 * bits.shape[1]
        key_type = np.uint16 if n_keys <= 1 << 16 else np.int32
        row_start, keys = _list_by_row(bits, np.zeros(0, key_type))
        block_start, rows = _list_by_block_and_key(bits, BLOCK_ROWS)
        return cls(n_keys, row_start, keys, block_start, rows)


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


def log_joint(
    X: BitMatrix, W: np.ndarray, c: np.ndarray, dtype=np.float32
) -> tuple[np.ndarray, np.ndarray]:
    """``c + X @ W`` (N×K) in ``dtype``, shifted by each row's maximum, and those maxima:
    one table row added per non-zero nibble of each row.

    Returning the rows shifted saves the E-step's normalisation a pass to find and subtract
    the maxima. The sums start from 0 and ``c`` comes last, so they accumulate at the size
    of ``X @ W`` (tens of nats), not at that of ``c`` (hundreds), and round 10× less in
    float32.
    """
    N, K = len(X), W.shape[1]
    out, top = np.empty((N, K), dtype=dtype), np.empty(N, dtype=dtype)
    index = X.nibbles
    _sum_table_rows(index.row_start, index.keys, nibble_tables(W, dtype), c.astype(dtype), out, top)
    return out, top


def weighted_sums(X: BitMatrix, resp: np.ndarray) -> np.ndarray:
    """``resp.T @ X`` (K×D, float64): responsibilities summed by nibble, then expanded."""
    index = X.nibbles
    H = np.zeros((index.n_keys, resp.shape[1]))
    _sum_rows_by_key(index.block_start, index.rows, np.ascontiguousarray(resp), H, BLOCK_ROWS)
    return expand_histograms(H, X.n_features).T


# ---------------------------------------------------------------------------------------
# The compiled kernels (numba). Plain loops: numba turns each innermost loop over K into
# vector instructions.


def _sum_table_rows(row_start, keys, table, c, out, top):  # pragma: no cover (compiled)
    """out[n] = c + the sum of table[key] over the keys of row n, minus its maximum top[n].

    Four table rows are added per pass over out[n] (the rest one by one): a quarter of the
    loads and stores of out[n], which cost more than the additions (19 → 13 ms at K = 100).
    """
    N, K = out.shape
    for n in numba.prange(N):
        acc = out[n]
        acc[:] = 0
        start, end = row_start[n], row_start[n + 1]
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
        acc += c
        top[n] = acc.max()
        acc -= top[n]


def _sum_rows_by_key(block_start, rows, resp, H, block_rows):  # pragma: no cover (compiled)
    """H[key] += resp[n] for every row n whose nibble is key, one block of rows at a time
    (four rows a pass over H[key], as in _sum_table_rows, added in float64 as H is: 28 → 15 ms
    at K = 100)."""
    N, K = resp.shape
    n_keys = H.shape[0]
    for b in range(-(-N // block_rows)):
        r = resp[b * block_rows : (b + 1) * block_rows]
        for key in numba.prange(n_keys):
            acc = H[key]
            start, end = block_start[b * n_keys + key], block_start[b * n_keys + key + 1]
            fours = start + (end - start) // 4 * 4
            for p in range(start, fours, 4):
                r0, r1, r2, r3 = r[rows[p]], r[rows[p + 1]], r[rows[p + 2]], r[rows[p + 3]]
                for k in range(K):
                    acc[k] += (np.float64(r0[k]) + r1[k]) + (np.float64(r2[k]) + r3[k])
            for p in range(fours, end):
                r0 = r[rows[p]]
                for k in range(K):
                    acc[k] += r0[k]


def _list_by_row(bits, key_type):  # pragma: no cover (compiled)
    """(row_start, keys) of NibbleIndex: two passes, counting then filling."""
    N, n_bytes = bits.shape
    row_start = np.zeros(N + 1, np.int64)
    for n in range(N):
        count = 0
        for j in range(n_bytes):
            count += (bits[n, j] >> 4 != 0) + (bits[n, j] & 15 != 0)
        row_start[n + 1] = row_start[n] + count
    keys = np.empty(row_start[N], key_type.dtype)
    p = 0
    for n in range(N):
        for j in range(n_bytes):
            high, low = bits[n, j] >> 4, bits[n, j] & 15
            if high:
                keys[p] = 32 * j + high
                p += 1
            if low:
                keys[p] = 32 * j + 16 + low
                p += 1
    return row_start, keys


def _list_by_block_and_key(bits, block_rows):  # pragma: no cover (compiled)
    """(block_start, rows) of NibbleIndex: a counting sort by (block, key), stable in rows."""
    N, n_bytes = bits.shape
    n_keys = 32 * n_bytes
    counts = np.zeros(-(-N // block_rows) * n_keys + 1, np.int64)
    for n in range(N):
        base = (n // block_rows) * n_keys + 1
        for j in range(n_bytes):
            high, low = bits[n, j] >> 4, bits[n, j] & 15
            if high:
                counts[base + 32 * j + high] += 1
            if low:
                counts[base + 32 * j + 16 + low] += 1
    block_start = np.cumsum(counts)
    fill = block_start[:-1].copy()
    rows = np.empty(block_start[-1], np.uint16)
    for n in range(N):
        base = (n // block_rows) * n_keys
        for j in range(n_bytes):
            high, low = bits[n, j] >> 4, bits[n, j] & 15
            for key in (32 * j + high, 32 * j + 16 + low):
                if key % 16:
                    rows[fill[base + key]] = n % block_rows
                    fill[base + key] += 1
    return block_start, rows


if numba is not None:
    _sum_table_rows = numba.njit(parallel=True, cache=True)(_sum_table_rows)
    _sum_rows_by_key = numba.njit(parallel=True, cache=True)(_sum_rows_by_key)
    _list_by_row = numba.njit(cache=True)(_list_by_row)
    _list_by_block_and_key = numba.njit(cache=True)(_list_by_block_and_key)
