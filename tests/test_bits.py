"""bmm.bits: binary data as bits, and the E- and M-step products read from the bits.

Every product is checked against the same product on the unpacked float64 array, on shapes
where D is and is not a multiple of 8 (padding bits), with empty rows and full rows; the
index of non-zero nibbles against a brute-force listing; the vectorisable exponential against
numpy's in float64; and the kernels' results are checked to be identical whatever the number
of threads (each output is summed by one thread in a fixed order).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import require

from bmm import BernoulliMixture, bits, engine
from bmm.bits import BitMatrix
from bmm.rows import DenseRows


@pytest.fixture(autouse=True)
def _numba():
    if bits.numba is None:
        require("numba", "the kernels need numba")


def random_binary(seed, N, D, density=0.3):
    rng = np.random.default_rng(seed)
    X = rng.random((N, D)) < density
    if N > 2:
        X[0] = False  # an empty row
        X[1] = True  # a full row
    return X


SHAPES = [(1, 1), (5, 7), (40, 20), (37, 21), (300, 784), (2100, 33)]  # 2100 > 2 blocks


@pytest.mark.parametrize(("N", "D"), SHAPES)
def test_pack_unpack_round_trip_and_rows(N, D):
    X = random_binary(0, N, D)
    B = BitMatrix.pack(X)
    assert B.shape == (N, D) and len(B) == N and B.bits.shape == (N, -(-D // 8))
    np.testing.assert_array_equal(B.unpack(bool), X)
    np.testing.assert_array_equal(B[1:3].unpack(bool), X[1:3])
    rows = np.array([N - 1, 0])
    np.testing.assert_array_equal(B[rows].unpack(bool), X[rows])
    np.testing.assert_array_equal(B.column_sums(), X.sum(axis=0))
    np.testing.assert_array_equal(B.hamming(N - 1), (X != X[N - 1]).sum(axis=1))


def test_bitmatrix_refuses_what_it_cannot_hold():
    with pytest.raises(ValueError, match="uint8"):
        BitMatrix(np.zeros((2, 1), np.int16), 8)
    with pytest.raises(ValueError, match="20 features take 3 bytes a row, got 2"):
        BitMatrix(np.zeros((2, 2), np.uint8), 20)
    with pytest.raises(IndexError, match="whole rows"):
        BitMatrix.pack(np.zeros((2, 3)))[0]


@pytest.mark.parametrize(("N", "D"), SHAPES)
def test_nibble_index_lists_every_non_zero_nibble(N, D):
    X = random_binary(1, N, D)
    B = BitMatrix.pack(X)
    index = B.nibbles
    nib = np.stack([B.bits >> 4, B.bits & 15], axis=2).reshape(N, -1)  # (N, 2·bytes)
    assert index.n_keys == 16 * nib.shape[1]
    for n in range(N):
        q = np.flatnonzero(nib[n])
        expected = 16 * q + nib[n, q]
        np.testing.assert_array_equal(
            index.keys[index.row_start[n] : index.row_start[n + 1]], expected
        )
    # a slice of rows shares the parent's lists
    if N > 3:
        part = B[2 : N - 1]
        assert part.__dict__["nibbles"].keys is index.keys  # not listed again
        np.testing.assert_array_equal(
            part.nibbles.row_start,
            BitMatrix.pack(X[2 : N - 1]).nibbles.row_start + index.row_start[2],
        )


def dense_e_step(X, W, c):
    """Responsibilities and log p(x) of c + X @ W, in float64, from the formula."""
    joint = X.astype(np.float64) @ W + c
    loglik = np.logaddexp.reduce(joint, axis=1)
    return np.exp(joint - loglik[:, None]), loglik


@pytest.mark.parametrize(("N", "D"), SHAPES)
@pytest.mark.parametrize("K", [1, 3, 17])
def test_e_step_equals_the_dense_computation(N, D, K):
    X = random_binary(2, N, D)
    rng = np.random.default_rng(3)
    W, c = rng.normal(size=(D, K)), rng.normal(size=K) * 100
    if K > 1:
        c[1] = -np.inf  # an empty component: responsibility exactly 0
    resp, loglik = dense_e_step(X, W, c)
    got, got_ll = bits.e_step(BitMatrix.pack(X), W, c, dtype=np.float64)
    assert got.dtype == np.float64 and got_ll.dtype == np.float64
    np.testing.assert_allclose(got, resp, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got_ll, loglik, rtol=1e-12)
    got, got_ll = bits.e_step(BitMatrix.pack(X), W, c)
    assert got.dtype == np.float32 and got_ll.dtype == np.float64
    # float32: sums of up to D/4 table rows of size ~2, then c (~100); measured 3e-6 and 2e-5
    np.testing.assert_allclose(got, resp, rtol=0, atol=2e-5)
    np.testing.assert_allclose(got_ll, loglik, rtol=0, atol=1e-4)
    if K > 1:
        assert (got[:, 1] == 0).all()


def test_exp32_is_within_a_float32_rounding_of_the_exact_exponential():
    x = np.concatenate([-np.geomspace(1e-9, 87, 200001), [0.0, -1e-45]]).astype(np.float32)
    exact = np.exp(x.astype(np.float64))
    got = np.array([bits._exp32(v) for v in x[::97]] + [bits._exp32(v) for v in x[-2:]])
    want = exact[np.r_[0 : len(x) : 97, len(x) - 2, len(x) - 1]]
    # Cephes' expf: measured 8.3e-8 relative at most over [-87, 0] (numpy's float32 exp: 2.1e-7)
    assert np.abs(got / want - 1).max() <= 1.2e-7
    # below -87 (where float32 turns subnormal), and for an empty component's -inf: exactly 0
    assert [bits._exp32(np.float32(v)) for v in (-87.5, -200.0, -np.inf)] == [0.0, 0.0, 0.0]


@pytest.mark.parametrize(("N", "D"), SHAPES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_weighted_sums_equal_the_dense_product(N, D, dtype):
    X = random_binary(4, N, D)
    resp = np.random.default_rng(5).dirichlet(np.ones(6), size=N).astype(dtype)
    got = bits.weighted_sums(BitMatrix.pack(X), resp)
    assert got.shape == (6, D) and got.dtype == np.float64
    np.testing.assert_allclose(got, resp.T.astype(np.float64) @ X, rtol=1e-12, atol=1e-12)


def test_weighted_sums_read_a_non_contiguous_resp():
    X = random_binary(6, 50, 16)
    resp = np.random.default_rng(7).random((50, 8))[:, ::2]
    np.testing.assert_allclose(bits.weighted_sums(BitMatrix.pack(X), resp), resp.T @ X)


@pytest.mark.parametrize(("N", "D"), [(1, 1), (37, 21), (5000, 784), (9000, 33)])
@pytest.mark.parametrize("K", [1, 6, 40])
def test_a_pass_gives_the_e_steps_sums(N, D, K):
    """statistics (E-step and M-step sums fused, a block at a time, only γ's non-zero
    entries added) against the float32 E-step's γ summed as products: the same log p(x) to
    the bit, N_k and Σ γ x to 1e-12."""
    X = random_binary(8, N, D, 0.13)
    rng = np.random.default_rng(9)
    W, c = rng.normal(size=(D, K)) * 30, rng.normal(size=K) * 10  # many γ underflow to 0
    B = BitMatrix.pack(X)
    resp, loglik = bits.e_step(B, W, c)
    got_ll, Nk, H = bits.statistics(B, W, c)
    np.testing.assert_array_equal(got_ll, loglik)
    np.testing.assert_allclose(Nk, resp.sum(axis=0, dtype=np.float64), rtol=1e-12)
    weighted = resp.T.astype(np.float64) @ X
    np.testing.assert_allclose(
        bits.weighted_from_histograms(H, D), weighted, rtol=1e-12, atol=1e-12
    )
    if K > 1 and D > 1:  # the zeros the pass skips are there
        assert (resp == 0).mean() > 0.2


@pytest.mark.parametrize("method", ["random", "k-means++"])
def test_initialisation_is_the_same_from_bits(method):
    X = random_binary(10, 200, 50)
    a = engine.initialize(DenseRows(X), 5, method, np.random.default_rng(3))
    b = engine.initialize(BitMatrix.pack(X), 5, method, np.random.default_rng(3))
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


def test_kernels_give_identical_results_with_one_or_two_threads():
    """Each output element is summed by one thread in row order, so the thread count
    cannot change a bit of the result (run in fresh processes: numba fixes its pool size)."""
    code = textwrap.dedent(
        """
        import sys, numba, numpy as np
        from bmm import bits
        numba.set_num_threads(int(sys.argv[1]))
        rng = np.random.default_rng(0)
        B = bits.BitMatrix.pack(rng.random((3000, 784)) < 0.13)
        W, c = rng.normal(size=(784, 20)), rng.normal(size=20)
        resp = rng.dirichlet(np.ones(20), size=9000).astype(np.float32)
        B = bits.BitMatrix.pack(rng.random((9000, 784)) < 0.13)
        out = np.concatenate([bits.e_step(B, W, c)[0].ravel().view(np.uint32).astype(np.uint64),
                              bits.weighted_sums(B, resp).ravel().view(np.uint64),
                              *[a.ravel().view(np.uint64) for a in bits.statistics(B, W, c)]])
        print(hash(out.tobytes()))
        """
    )
    runs = [
        subprocess.run(
            [sys.executable, "-c", code, str(n)],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": "0", "PATH": ""},
        ).stdout
        for n in (1, 2)
    ]
    assert runs[0] == runs[1] and runs[0].strip()


@pytest.mark.parametrize("estep", ["packed_lut", "matmul_fused_f32", "matmul_fused"])
def test_a_fit_from_bits_is_the_fit_from_the_dense_array(estep):
    """The estimator takes a BitMatrix as it takes an array (each variant converts it to
    its own form): same start, same EM, same re-seeding, to the bit; and scores it the same.
    (That re-seeding proposes the same move from either form is tested below.)"""
    rng = np.random.default_rng(0)  # three noisy prototypes and six lone images, on which
    prototypes = rng.random((3, 64)) < 0.3  # components collapse and are re-seeded
    X = prototypes[rng.integers(0, 3, 300)] ^ (rng.random((300, 64)) < 0.05)
    X = np.vstack([X, rng.random((6, 64)) < 0.5])
    settings = dict(
        estep=estep,
        random_state=0,
        max_iter=15,
        tol=0.0,
        init_params="k-means++",
        reseed_degenerate=True,
    )
    dense = BernoulliMixture(12, **settings).fit(X)
    packed = BernoulliMixture(12, **settings).fit(BitMatrix.pack(X))
    assert dense.trace_["reseeded"].sum() > 0
    for column in ("reseeded", "loglik", "objective"):  # every step of the way
        np.testing.assert_array_equal(packed.trace_[column], dense.trace_[column])
    np.testing.assert_array_equal(packed.weights_, dense.weights_)
    np.testing.assert_array_equal(packed.means_, dense.means_)
    assert packed.n_features_in_ == 64
    # scoring reads bits through float64 tables, dense X through matmul_fused: equal to rounding
    np.testing.assert_allclose(
        packed.score_samples(BitMatrix.pack(X)), dense.score_samples(X), rtol=1e-12
    )
    with pytest.raises(ValueError, match="X has 63 features, but BernoulliMixture is expecting 64"):
        packed.predict(BitMatrix.pack(X[:, :63]))


pytestmark = [
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
]


def test_reseeding_proposes_the_same_move_from_bits():
    X = random_binary(12, 300, 50, 0.25)
    rng = np.random.default_rng(13)
    pi = np.array([0.5, 0.3, 0.2 - 1 / 300, 1 / 300])  # the last one is degenerate
    mu, loglik = rng.uniform(0.1, 0.9, (4, 50)), rng.normal(size=300)
    blocked, worst = np.zeros(4, dtype=bool), np.argsort(loglik)
    x_mean = X.mean(axis=0)
    dense = engine.reseed(DenseRows(X.astype(np.float32)), pi, mu, worst, blocked, x_mean)
    packed = engine.reseed(BitMatrix.pack(X), pi, mu, worst, blocked, x_mean)
    assert dense[2].tolist() == [False, False, False, True]
    for a, b in zip(dense, packed, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("scale", [0.1, 30.0], ids=["dense γ", "sparse γ"])
def test_summing_by_key_or_by_component_gives_the_same_bits(scale):
    """The pass sums a block by key or by component depending on how much of γ is 0; forced
    one way then the other, the sums are identical, and they are the E-step's to 1e-12."""
    X = random_binary(14, 2 * bits.BLOCK_ROWS + 77, 200, 0.2)
    rng = np.random.default_rng(15)
    W, c = rng.normal(size=(200, 12)) * scale, rng.normal(size=12)
    w = rng.integers(0, 3, len(X)).astype(float)
    B = BitMatrix.pack(X)
    results = []
    for by_key_from in (0.0, 2.0):  # always by key; never
        fused = bits.Pass(W, c, B.nibbles.n_keys, by_key_from=by_key_from)
        loglik = fused.add(B, w)
        results.append((loglik, fused.Nk, fused.H))
    for a, b in zip(*results, strict=True):
        np.testing.assert_array_equal(a, b)
    resp, _ = bits.e_step(B, W, c)
    weighted = (resp * w[:, None]).T.astype(np.float64) @ X
    got = bits.weighted_from_histograms(results[0][2].T, 200)
    np.testing.assert_allclose(got, weighted, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(results[0][1], (resp * w[:, None]).sum(axis=0), rtol=1e-12)
