"""bmm.bits: binary data as bits, and the E- and M-step products read from the bits.

Every product is checked against the same product on the unpacked float64 array, on shapes
where D is and is not a multiple of 8 (padding bits), with empty rows and full rows; the
index of non-zero nibbles against a brute-force listing; and the kernels' results are
checked to be identical whatever the number of threads (each output is summed by one
thread in a fixed order).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import require

from bmm import BernoulliMixture, bits, em
from bmm.bits import BitMatrix


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
    # by block and key: every (row, key) pair exactly once, rows ascending within a key
    pairs = []
    for b in range(-(-N // bits.BLOCK_ROWS)):
        for key in range(index.n_keys):
            s = b * index.n_keys + key
            rows = index.rows[index.block_start[s] : index.block_start[s + 1]].astype(int)
            assert np.all(np.diff(rows) > 0)
            pairs += [(b * bits.BLOCK_ROWS + r, key) for r in rows]
    expected_pairs = [(n, 16 * q + nib[n, q]) for n in range(N) for q in np.flatnonzero(nib[n])]
    assert sorted(pairs) == sorted(expected_pairs)


@pytest.mark.parametrize(("N", "D"), SHAPES)
@pytest.mark.parametrize("K", [1, 3, 17])
def test_log_joint_equals_the_dense_product(N, D, K):
    X = random_binary(2, N, D)
    rng = np.random.default_rng(3)
    W, c = rng.normal(size=(D, K)), rng.normal(size=K) * 100
    expected = X.astype(np.float64) @ W + c
    shifted, top = bits.log_joint(BitMatrix.pack(X), W, c, dtype=np.float64)
    assert shifted.dtype == top.dtype == np.float64
    np.testing.assert_array_equal(shifted.max(axis=1), 0.0)  # shifted by the row maxima
    np.testing.assert_allclose(top, expected.max(axis=1), rtol=0, atol=1e-10)
    np.testing.assert_allclose(shifted + top[:, None], expected, rtol=0, atol=1e-10)
    shifted, top = bits.log_joint(BitMatrix.pack(X), W, c)
    assert shifted.dtype == top.dtype == np.float32
    got32 = shifted.astype(np.float64) + top[:, None]
    # float32: sums of up to D/4 table rows of size ~2, then c (~100); measured 1.3e-5
    np.testing.assert_allclose(got32, expected, rtol=0, atol=1e-4)


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


def test_m_step_on_bits_equals_the_m_step_on_floats():
    X = random_binary(8, 500, 784, 0.13)
    resp = np.random.default_rng(9).dirichlet(np.ones(10), size=500)
    mu_old = np.full((10, 784), 0.5)
    for prior in (1.0, 2.0):
        pi_d, mu_d = em.m_step(X.astype(np.float64), resp, mu_old, prior, prior)
        pi_b, mu_b = em.m_step(BitMatrix.pack(X), resp, mu_old, prior, prior)
        np.testing.assert_array_equal(pi_b, pi_d)
        np.testing.assert_allclose(mu_b, mu_d, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("method", ["random", "kmeans++"])
def test_initialisation_is_the_same_from_bits(method):
    X = random_binary(10, 200, 50)
    a = em.initialize(X, 5, method, np.random.default_rng(3))
    b = em.initialize(BitMatrix.pack(X), 5, method, np.random.default_rng(3))
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
        resp = rng.dirichlet(np.ones(20), size=3000).astype(np.float32)
        out = np.concatenate([bits.log_joint(B, W, c)[0].ravel().view(np.uint32).astype(np.uint64),
                              bits.weighted_sums(B, resp).ravel().view(np.uint64)])
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
        init_params="kmeans++",
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
    blocked = np.zeros(4, dtype=bool)
    dense = em._reseed(X.astype(np.float32), pi, mu, loglik, blocked)
    packed = em._reseed(BitMatrix.pack(X), pi, mu, loglik, blocked)
    assert dense[2].tolist() == [False, False, False, True]
    for a, b in zip(dense, packed, strict=True):
        np.testing.assert_array_equal(a, b)
