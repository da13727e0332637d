"""Rows that do not sit in memory: Parquet files read a row group at a time, and dask arrays
whose chunks are summed on a dask cluster.

Both are :class:`bmm.rows.Rows` that the EM engine reads as it reads an in-memory array: every
pass asks each block of rows for its sums (:class:`bmm.rows.Stats`) and adds them in the
blocks' order. The blocks are the engine's own, :data:`bmm.rows.BLOCK_ROWS` consecutive rows
counted from the first: a Parquet file is read in batches cut to them whatever its row groups
(the pipeline writes row groups of that size, so no row is read twice), and a dask array is
rechunked to them. The sums, and so the fit, are then the in-memory fit's bit for bit (a
float32 E-step would otherwise turn a difference in the order of additions, 1e-16, into one
of float32's, 1e-7). Peak memory is the model and a few blocks, whatever N is (only a
k-means++ start needs a number a row: the squared distances it draws from).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .bits import BitMatrix
from .rows import BLOCK_ROWS, Stats, Tally


class _Streamed:
    """What the streamed sources share: blocks in order, summed block by block."""

    streamed = True  # a variant reads the blocks in its own form (bmm.estep.Variant.rows)
    n_features: int

    def _blocks(self) -> Iterator[tuple[int, BitMatrix | np.ndarray]]:
        raise NotImplementedError

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self), self.n_features)

    def blocks(self, size: int = BLOCK_ROWS) -> Iterator[BitMatrix]:
        for _, block in self._blocks():
            yield block if isinstance(block, BitMatrix) else BitMatrix.pack(block)

    def column_sums(self, weights=None) -> np.ndarray:
        total = None
        for start, block in self._blocks():
            bits = block if isinstance(block, BitMatrix) else BitMatrix.pack(block)
            w = None if weights is None else weights[start : start + len(bits)]
            here = bits.column_sums(w)
            total = here if total is None else total + here
        return total

    def hamming(self, row: int) -> np.ndarray:
        target = self[np.array([row])].bits
        parts = []
        for _, block in self._blocks():
            bits = block if isinstance(block, BitMatrix) else BitMatrix.pack(block)
            parts.append(np.bitwise_count(bits.bits ^ target).sum(axis=1, dtype=np.int64))
        return np.concatenate(parts)

    def dense(self, dtype=np.float64) -> np.ndarray:
        return np.concatenate([b.unpack(dtype) for b in self.blocks()])


class ParquetRows(_Streamed):
    """The rows of a binarised Parquet file, or of a directory of them (in name order), in the
    pipeline's format: a ``pixels`` column of fixed-size binary, the rows packed 8 features a
    byte (``numpy.packbits``), the number of features in the file's metadata. Nothing is read
    until a pass asks for a row group.
    """

    def __init__(self, path: str | os.PathLike):
        import pyarrow.parquet as pq

        from . import io

        path = Path(path)
        self.files = sorted(path.glob("*.parquet")) if path.is_dir() else [path]
        if not self.files:
            raise FileNotFoundError(f"{path}: no .parquet files in this directory")
        self._groups: list[tuple[Path, int, int]] = []  # (file, row group, rows)
        n_features = set()
        for file in self.files:
            with io._reading(file):
                meta = pq.ParquetFile(file).metadata
            doc = io.read_metadata(file)
            n_features.add(_n_features(doc, file))
            for g in range(meta.num_row_groups):
                self._groups.append((file, g, meta.row_group(g).num_rows))
        if len(n_features) != 1:
            raise ValueError(f"{path}: files of different widths ({sorted(n_features)} features)")
        self.n_features = n_features.pop()
        self._starts = np.cumsum([0] + [rows for *_, rows in self._groups])

    def __len__(self) -> int:
        return int(self._starts[-1])

    def __repr__(self) -> str:
        return (
            f"ParquetRows({len(self)} rows × {self.n_features} features in "
            f"{len(self._groups)} row groups of {len(self.files)} file(s))"
        )

    def _read(self, i: int) -> BitMatrix:
        import pyarrow.parquet as pq

        from . import io

        file, group, _ = self._groups[i]
        with io._reading(file):
            column = pq.ParquetFile(file).read_row_group(group, columns=["pixels"]).column(0)
        return BitMatrix(_bytes(column, -(-self.n_features // 8), file), self.n_features)

    def _blocks(self):
        """The rows in blocks of BLOCK_ROWS, read a batch at a time across row groups and
        files."""
        import pyarrow.parquet as pq

        from . import io

        width = -(-self.n_features // 8)
        if all(rows == BLOCK_ROWS for *_, rows in self._groups[:-1]):
            i = 0  # row groups of blocks: read as they are
            for file in self.files:
                with io._reading(file):
                    opened = pq.ParquetFile(file)
                    for group in range(opened.num_row_groups):
                        column = opened.read_row_group(group, columns=["pixels"]).column(0)
                        yield (
                            int(self._starts[i]),
                            BitMatrix(_bytes(column, width, file), self.n_features),
                        )
                        i += 1
            return
        start, pending = 0, []
        for file in self.files:
            with io._reading(file):
                batches = pq.ParquetFile(file).iter_batches(BLOCK_ROWS, columns=["pixels"])
                for batch in batches:
                    pending.append(_bytes(batch.column(0), width, file))
                    while sum(map(len, pending)) >= BLOCK_ROWS:
                        rows = np.concatenate(pending)
                        pending = [rows[BLOCK_ROWS:]]
                        yield start, BitMatrix(rows[:BLOCK_ROWS].copy(), self.n_features)
                        start += BLOCK_ROWS
        rows = np.concatenate(pending) if pending else np.zeros((0, width), np.uint8)
        if len(rows):
            yield start, BitMatrix(rows.copy(), self.n_features)

    def __getitem__(self, rows) -> BitMatrix:
        """Selected rows, read into memory (a few: a start, a re-seeded mean)."""
        index = np.arange(len(self))[rows]
        index = np.atleast_1d(index)
        out = np.empty((len(index), -(-self.n_features // 8)), np.uint8)
        groups = np.searchsorted(self._starts, index, side="right") - 1
        for g in np.unique(groups):
            here = groups == g
            out[here] = self._read(int(g)).bits[index[here] - self._starts[g]]
        return BitMatrix(out, self.n_features)

    def summarize(self, variant, pi, mu, weights=None) -> Stats:
        """One pass, the blocks read one after another: for the bit-packed E-step, each block
        added to one running pass (tables built once, scratch reused); otherwise each block's
        sums in the variant's form, added in order."""
        if not variant.packed:
            total = None
            for start, block in self._blocks():
                w = None if weights is None else weights[start : start + len(block)]
                here = variant.rows(block).summarize(variant, pi, mu, w)
                total = here if total is None else total + here
            return total
        from . import bits
        from .estep import log_odds

        running = bits.Pass(*log_odds(pi, mu), 32 * (-(-self.n_features // 8)))
        tally = Tally(len(pi))
        for start, block in self._blocks():
            w = None if weights is None else weights[start : start + len(block)]
            tally.add(running.add(block, w), w)
        expand = functools.partial(bits.weighted_from_histograms, n=self.n_features)
        return tally.stats(running.Nk, running.H.T, expand)


def _bytes(column, width: int, file: Path) -> np.ndarray:
    """A column of fixed-size binary rows as an (N, width) uint8 array (a view of its buffer)."""
    pixels = column.combine_chunks() if hasattr(column, "combine_chunks") else column
    if getattr(pixels.type, "byte_width", None) != width:
        raise ValueError(f"{file}: pixels are {pixels.type}, expected fixed_size_binary[{width}]")
    if pixels.null_count:
        raise ValueError(f"{file}: null pixels")
    n = len(pixels)
    return np.frombuffer(
        pixels.buffers()[1], dtype=np.uint8, count=n * width, offset=pixels.offset * width
    ).reshape(n, width)


def _n_features(doc: dict, file: Path) -> int:
    if "n_pixels" in doc:  # bmm.storage.write_binarized's
        return int(doc["n_pixels"])
    raise ValueError(f"{file}: no n_pixels in its metadata: not a binarised table")


class DaskRows(_Streamed):
    """The rows of a 2-D dask array of 0/1 values (rechunked to the engine's blocks of rows).

    Each pass maps the chunks' sums onto the workers of the current ``dask.distributed``
    client (the chunks, in the variant's form, are kept on the workers from the first pass
    on) and adds them in the chunks' order, so the fit does not depend on the number of
    workers. Without a client, dask's default scheduler computes them here. A worker lost in a
    pass: distributed computes its chunks again elsewhere, and the fit goes on to the same
    result; when it cannot (every worker gone, or a chunk that kills its workers), the fit
    stops with :class:`DaskFitError` and the estimator keeps nothing of it.
    """

    def __init__(self, X):
        if X.ndim != 2:
            raise ValueError(f"expected a 2-D dask array, got {X.ndim} dimensions")
        self.X = X.rechunk({0: BLOCK_ROWS, 1: -1})  # the engine's blocks, of whole rows
        self.n_features = int(X.shape[1])
        self._starts = np.cumsum([0, *self.X.chunks[0]])
        self._kept: dict[str, list] = {}  # variant name -> futures of its chunks on the workers

    def __len__(self) -> int:
        return int(self.X.shape[0])

    def __repr__(self) -> str:
        chunks = len(self._starts) - 1
        return f"DaskRows({len(self)} rows × {self.n_features} features, {chunks} chunks)"

    def _blocks(self):
        for i, chunk in enumerate(self.X.to_delayed().ravel()):
            yield int(self._starts[i]), np.asarray(_computed(chunk.compute))

    def __getitem__(self, rows) -> BitMatrix:
        """Selected rows, computed into memory (a few: a start, a re-seeded mean)."""
        index = np.atleast_1d(np.arange(len(self))[rows])
        return BitMatrix.pack(np.asarray(_computed(self.X[index].compute)))

    def summarize(self, variant, pi, mu, weights=None) -> Stats:
        client = _client()
        chunks = self.X.to_delayed().ravel()
        bounds = zip(self._starts[:-1], self._starts[1:], strict=True)
        parts = [None if weights is None else weights[a:b] for a, b in bounds]
        name, n = variant.name, len(chunks)
        if client is None:
            import dask

            tasks = map(dask.delayed(_chunk_stats), chunks, [name] * n, [pi] * n, [mu] * n, parts)
            results = dask.compute(*tasks)
        else:

            def one_pass():
                kept = self._kept.get(name)
                if kept is None:
                    kept = self._kept[name] = client.compute([_prepared(c, name) for c in chunks])
                args = [name] * n, [pi] * n, [mu] * n, parts
                return client.gather(client.map(_kept_stats, kept, *args, pure=False))

            try:
                results = _computed(one_pass)
            except DaskFitError:
                self._kept.pop(name, None)
                raise
        total = None
        for here in results:
            total = here if total is None else total + here
        return total


class DaskFitError(RuntimeError):
    """The dask cluster could not complete a pass: the fit stops, nothing of it is kept."""


def _computed(compute):
    """``compute()``, with a failure of the cluster said in one line: what, and what to do."""
    try:
        return compute()
    except Exception as e:
        raise DaskFitError(
            f"the dask cluster could not complete a pass of the fit ({type(e).__name__}: {e}); "
            "the fit was stopped and nothing of it was kept. Check the workers (their logs, "
            "their memory), then fit again"
        ) from e


def _client():
    try:
        from distributed import get_client
    except ImportError:
        return None
    try:
        return get_client()
    except ValueError:
        return None


def _prepared(chunk, name):
    import dask

    return dask.delayed(_prepare)(chunk, name)


def _prepare(chunk, name):
    from . import estep

    return estep.VARIANTS[name].rows(np.asarray(chunk))


def _kept_stats(rows, name, pi, mu, w):
    from . import estep

    return rows.summarize(estep.VARIANTS[name], pi, mu, w)


def _chunk_stats(chunk, name, pi, mu, w):
    return _kept_stats(_prepare(chunk, name), name, pi, mu, w)
