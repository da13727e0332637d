"""What the core promises, checked where mutation testing found it unchecked (docs/testing.md).

``python .ci/mutation.py`` breaks bmm.bits, bmm.estep, bmm.engine and bmm.rows one operator at
a time and runs each module's tests with the class of this file that belongs to it. Each test
here checks a property that a caller relies on (a boundary the docstrings state, a
distribution, what the trace's columns measure), not the text a mutant changed.
"""

from __future__ import annotations

import dataclasses
import inspect
import itertools
import subprocess
import sys
import textwrap
from dataclasses import FrozenInstanceError
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import require
from threadpoolctl import threadpool_info

from bmm import engine, estep, rows
from bmm.bits import BitMatrix
from bmm.estep import EPS, VARIANTS
from bmm.rows import BLOCK_ROWS, DenseRows, check_weights, lowest, stats_of

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _numba():
    if estep.numba is None:
        require("numba", "the bit-packed kernels need numba")


def prototypes_and_loners(seed=0):
    """Three noisy prototypes (300 images) and six lone images: with K = 12 some components
    collapse onto one image, and re-seeding moves them."""
    rng = np.random.default_rng(seed)
    prototypes = rng.random((3, 64)) < 0.3
    X = prototypes[rng.integers(0, 3, 300)] ^ (rng.random((300, 64)) < 0.05)
    return np.vstack([X, rng.random((6, 64)) < 0.5])


# ---------------------------------------------------------------------------------------
# bmm.bits


class TestBits:
    def test_bits_import_and_pack_without_numba(self):
        """numba is an optional extra: without it bmm.bits still imports, packs, unpacks,
        counts and measures distances; only the index the kernels read says it needs numba."""
        code = textwrap.dedent(
            """
            import sys
            sys.modules["numba"] = None  # import numba now raises ImportError
            import numpy as np
            from bmm import bits
            assert bits.numba is None
            X = np.array([[1, 0, 1], [0, 0, 1]], dtype=bool)
            B = bits.BitMatrix.pack(X)
            assert (B.unpack(bool) == X).all() and B.column_sums().tolist() == [1, 0, 2]
            assert B.hamming(0).tolist() == [0, 1]
            try:
                B.nibbles
            except RuntimeError as e:
                print("OK", e)
            """
        )
        proc = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
        )
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith("OK the bit-packed kernels need numba")

    def test_more_than_16384_features_are_indexed_past_uint16(self):
        """Nibble keys run to 32 × bytes − 1: past 2048 bytes a row (16384 features) they no
        longer fit in uint16, and the E-step still equals the dense computation."""
        _numba()
        D, K = 16384 + 8, 2
        rng = np.random.default_rng(0)
        X = rng.random((3, D)) < 0.01
        X[:, -8:] = True  # keys past 65535: the last byte's nibbles
        W, c = rng.normal(size=(D, K)), np.array([0.3, -0.2])
        B = BitMatrix.pack(X)
        assert B.nibbles.keys.max() >= 1 << 16
        joint = X.astype(np.float64) @ W + c
        loglik = np.logaddexp.reduce(joint, axis=1)
        from bmm import bits

        resp, got = bits.e_step(B, W, c, np.float64)
        np.testing.assert_allclose(got, loglik, rtol=1e-12)
        np.testing.assert_allclose(resp, np.exp(joint - loglik[:, None]), rtol=1e-9)

    def test_exp32_is_exact_down_to_minus_87_inclusive(self):
        """0 only *below* −87, where float32 turns subnormal: e^−87 itself is a normal float32."""
        _numba()
        from bmm import bits

        x = np.float32(-87.0)
        assert bits._exp32(x) == pytest.approx(np.exp(np.float64(x)), rel=1.2e-7, abs=0)

    def test_a_pass_over_a_block_of_full_rows(self):
        """Every nibble of every row non-zero (the most keys a block can list) and every
        responsibility non-zero (so the block is summed by key): the pass still gives the
        E-step's log p(x) and sums."""
        _numba()
        from bmm import bits

        rng = np.random.default_rng(9)
        X = np.ones((600, 37), dtype=bool)
        W, c = rng.normal(size=(37, 5)) * 0.01, rng.normal(size=5) * 0.1
        B = BitMatrix.pack(X)
        resp, loglik = bits.e_step(B, W, c)
        assert (resp > 0).all()
        got, Nk, H = bits.statistics(B, W, c)
        np.testing.assert_array_equal(got, loglik)
        np.testing.assert_allclose(Nk, resp.sum(axis=0, dtype=np.float64), rtol=1e-12)
        weighted = resp.T.astype(np.float64) @ X
        np.testing.assert_allclose(bits.weighted_from_histograms(H, 37), weighted, rtol=1e-12)

    @pytest.mark.parametrize("by_key_from", [0.0, 2.0], ids=["by key", "by component"])
    def test_a_single_row_counts_its_weight(self, by_key_from):
        """A pass over one bit-packed row of weight 3 counts it three times, whichever way
        the block is summed."""
        _numba()
        from bmm import bits

        rng = np.random.default_rng(11)
        B = BitMatrix.pack(rng.random((1, 30)) < 0.4)
        W, c = estep.log_odds(rng.dirichlet(np.ones(4)), rng.uniform(0.1, 0.9, (4, 30)))
        passes = [bits.Pass(W, c, B.nibbles.n_keys, 1, by_key_from) for _ in range(2)]
        loglik = passes[0].add(B), passes[1].add(B, np.array([3.0]))
        np.testing.assert_array_equal(loglik[0], loglik[1])
        np.testing.assert_allclose(passes[1].Nk, 3 * passes[0].Nk, rtol=1e-15)
        np.testing.assert_allclose(passes[1].H, 3 * passes[0].H, rtol=1e-15)

    def test_the_listing_by_key_fills_its_buffer_from_the_start(self):
        """A block's rows listed by key, as the dense sums read them: key k's rows (offsets
        from the block's first row, in order) from key_start[k] to key_start[k + 1], from
        offset 0, so that a block whose every nibble is non-zero fills the buffer sized for
        it (rows × 2 × bytes) exactly. Chunks of 4 rows, listed in parallel."""
        _numba()
        from bmm import bits

        rng = np.random.default_rng(12)
        X = rng.random((13, 24)) < 0.4
        X[[3, 8]] = True  # full rows
        first, n_rows = 2, 10
        for block in (X, np.ones_like(X)):  # some nibbles 0; none
            index = BitMatrix.pack(block).nibbles
            listed = index.row_start[first + n_rows] - index.row_start[first]
            counts = np.empty((3, index.n_keys + 1), np.int64)
            key_start, key_rows = np.empty(index.n_keys + 1, np.int64), np.empty(listed, np.uint16)
            bits._by_key(index.row_start, index.keys, first, n_rows, 4, counts, key_start, key_rows)
            rows_of = [[] for _ in range(index.n_keys)]
            for i in range(n_rows):
                n = first + i
                for key in index.keys[index.row_start[n] : index.row_start[n + 1]]:
                    rows_of[key].append(i)
            assert key_start.tolist() == [0, *np.cumsum([len(r) for r in rows_of])]
            assert [key_rows[a:b].tolist() for a, b in itertools.pairwise(key_start)] == rows_of

    @pytest.mark.parametrize("scale", [0.1, 30.0], ids=["dense γ", "sparse γ"])
    def test_a_block_is_summed_by_component_when_under_by_key_from_of_it_is_non_zero(self, scale):
        """The pass picks the cheaper way to sum a block (bits._fused_pass): by component when
        the share of its responsibilities that are not 0 is below by_key_from, by key
        otherwise (both give the same bits, so only the scratch each one writes shows which
        ran). At by_key_from equal to the share: by key; just above it: by component."""
        _numba()
        from bmm import bits

        rng = np.random.default_rng(4)
        X = rng.random((256, 64)) < 0.3
        W, c = rng.normal(size=(64, 8)) * scale, rng.normal(size=8)
        B = BitMatrix.pack(X)
        share = (bits.e_step(B, W, c)[0] != 0).mean()  # of 256 × 8: exact in binary
        assert 0 < share <= 1 and (share < 0.5) == (scale > 1)
        for by_key_from, by_key in ((share, True), (np.nextafter(share, 2), False)):
            fused = bits.Pass(W, c, B.nibbles.n_keys, len(X), by_key_from)
            comp_start, key_start = fused.scratch[3], fused.scratch[7]
            comp_start[:], key_start[:] = -1, -1
            fused.add(B)
            assert (key_start != -1).any() == by_key and (comp_start != -1).any() != by_key

    def test_weighted_column_sums_span_blocks(self):
        """Σ_n w_n x_n of a BitMatrix of several blocks, against the dense product."""
        rng = np.random.default_rng(1)
        X = rng.random((2 * BLOCK_ROWS + 5, 21)) < 0.3
        w = rng.random(len(X))
        got = BitMatrix.pack(X).column_sums(w)
        assert got.dtype == np.float64
        np.testing.assert_allclose(got, w @ X, rtol=1e-12)


# ---------------------------------------------------------------------------------------
# bmm.estep


class TestEStep:
    @pytest.mark.parametrize("name", list(VARIANTS))
    def test_rows_puts_x_in_the_variants_form(self, name):
        """variant.rows gives the engine X in the form the variant reads; rows streamed from
        elsewhere are left as they are (each block is put in that form as it is read)."""
        variant = VARIANTS[name]
        if variant.unavailable and variant.packed:
            require("numba", variant.unavailable)
        X = np.random.default_rng(2).random((9, 13)) < 0.5
        got = variant.rows(X)
        if variant.packed:
            assert isinstance(got, BitMatrix)
            np.testing.assert_array_equal(got.unpack(bool), X)
        else:
            assert isinstance(got, DenseRows) and got.dtype == variant.dtype
            np.testing.assert_array_equal(got.dense(bool), X)
        streamed = SimpleNamespace(streamed=True)
        assert variant.rows(streamed) is streamed

    def test_the_registry_cannot_be_changed_through_a_variant(self):
        """VARIANTS is shared by every fit in the process: its entries are frozen."""
        with pytest.raises(FrozenInstanceError):
            VARIANTS["matmul"].dtype = np.float32

    @pytest.mark.parametrize("name", ["matmul_fused", "matmul_fused_f32"])
    def test_x_already_in_the_variants_form_is_not_copied(self, name):
        """prepare converts only what is not in the variant's form: X already in its dtype is
        read as it is (a copy would be another N×D array, and a conversion timed as E-step)."""
        X = (np.random.default_rng(3).random((20, 8)) < 0.5).astype(VARIANTS[name].dtype)
        assert np.shares_memory(VARIANTS[name].prepare(X), X)

    def test_the_compiled_variants_run_compiled_code(self):
        """numba_ndk and numba_simd are attempt 1's loops *compiled*: the question they answer
        (are loops slow, or Python?) needs their kernels to be numba's, not the interpreter's."""
        _numba()
        from numba.core.dispatcher import Dispatcher

        kernels = [estep._numba_log_joint, estep._numba_log_joint_simd, *estep._compiled_rows]
        assert all(isinstance(kernel, Dispatcher) for kernel in kernels)

    def test_only_the_numba_variants_normalise_in_numbas_threads(self, monkeypatch):
        """The numba variants normalise γ in numba's parallel kernels; the others keep numpy's
        (after a parallel region numba's threads spin for a while, and a BLAS product started
        then waits for a core: estep._normalise)."""
        _numba()
        calls = []

        def spy(kernel):
            def run(*args):
                calls.append(kernel)
                return kernel(*args)

            return run

        monkeypatch.setattr(estep, "_compiled_rows", tuple(map(spy, estep._compiled_rows)))
        rng = np.random.default_rng(5)
        X = rng.random((30, 12)) < 0.5
        pi, mu = rng.dirichlet(np.ones(3)), rng.uniform(0.1, 0.9, (3, 12))
        for name, variant in VARIANTS.items():
            if variant.packed:
                continue
            calls.clear()
            variant(variant.prepare(X), pi, mu)
            assert len(calls) == (2 if name.startswith("numba_") else 0), name


# ---------------------------------------------------------------------------------------
# bmm.engine


class TestEngine:
    def test_a_component_is_degenerate_below_two_images_not_at_two(self):
        N = 64
        weights = np.array([1, 2, 3, 0, 58]) / N  # N·π_k = 1, 2, 3, 0, 58 images
        got = engine.degenerate_components(weights, N)
        assert got.tolist() == [True, False, False, True, False]

    def test_reseeding_is_proposed_from_two_images_a_component(self):
        """At N = 2K a move is proposed (only N < 2K makes some component degenerate whatever
        EM does); the moved components take the worst-explained images shrunk halfway to the
        mean image, weight 1/K each, and the others shrink in proportion to sum to 1."""
        rng = np.random.default_rng(0)
        K = 6
        X = rng.random((2 * K, 20)) < 0.5
        pi = np.array([0.5, 0.49, 0.01, 0, 0, 0])
        mu = rng.uniform(0.2, 0.8, (K, 20))
        worst, x_mean = np.array([7, 3, 11, 0, 5, 1]), X.mean(axis=0)
        unblocked = np.zeros(K, dtype=bool)
        pi2, mu2, move = engine.reseed(DenseRows(X), pi, mu, worst, unblocked, x_mean)
        assert move.tolist() == [False, False, True, True, True, True]
        np.testing.assert_allclose(pi2[move], 1 / K, rtol=1e-15)
        np.testing.assert_allclose(pi2[~move], pi[~move] * (1 - 4 / K) / 0.99, rtol=1e-14)
        assert pi2.sum() == pytest.approx(1.0, rel=1e-15)
        expected = np.clip(0.5 * X[worst[:4]] + 0.5 * x_mean, 0.05, 0.95)
        np.testing.assert_array_equal(mu2[move], expected)
        np.testing.assert_array_equal(mu2[~move], mu[~move])
        # one degenerate component is moved too
        one = np.array([0.17, 0.17, 0.17, 0.17, 0.17, 0.15])  # N·π = 2.04 five times, 1.8
        _, mu1, move = engine.reseed(DenseRows(X), one, mu, worst, unblocked, x_mean)
        assert move.tolist() == [False] * 5 + [True]
        np.testing.assert_array_equal(mu1[5], expected[0])
        # N is the total sample weight when given: 11 images cannot fill 6 components twice
        _, _, move = engine.reseed(DenseRows(X), pi, mu, worst, unblocked, x_mean, n_images=11)
        assert not move.any()

    def test_when_every_component_moves_each_gets_weight_one_over_k(self):
        """At N = 2K with every component just under two images, all of them move, nothing is
        left to shrink, and the proposal's weights are 1/K each: they still sum to 1."""
        K = 4
        X = np.random.default_rng(1).random((2 * K, 10)) < 0.5
        pi = np.full(K, np.nextafter(1 / K, 0))  # N·π_k just under 2
        mu = np.full((K, 10), 0.5)
        worst, unblocked = np.arange(K), np.zeros(K, dtype=bool)
        pi2, _, move = engine.reseed(DenseRows(X), pi, mu, worst, unblocked, X.mean(axis=0))
        assert move.all()
        assert pi2.tolist() == [1 / K] * K

    def test_k_means_plus_plus_draws_in_proportion_to_squared_distance(self):
        """k-means++: each next center is drawn with probability proportional to its weight
        times its squared Hamming distance to the nearest center chosen. Image A weighs so
        much that it is the first center; then B (12 pixels from A), C (6 from A and B) and D
        (2 from A, 4 from C) are drawn as 144 : 36 : 4, and after A and B, C against D as
        36 : 4. Each mean is its image shrunk halfway to the weighted mean image."""
        X = np.zeros((4, 12), dtype=bool)
        X[1] = True  # B
        X[2, :6] = True  # C
        X[3, :2] = True  # D
        w = np.array([1e12, 1.0, 1.0, 1.0])
        means = np.clip(0.5 * X + 0.5 * (w @ X / w.sum()), 0.05, 0.95)  # of A, B, C, D
        data = DenseRows(X)
        second, third_after_b = [], []
        for seed in range(1000):
            _, mu = engine.initialize(data, 3, "k-means++", np.random.default_rng(seed), w)
            order = [int(np.abs(means - m).sum(axis=1).argmin()) for m in mu]
            np.testing.assert_allclose(mu, means[order], rtol=1e-12)
            assert order[0] == 0  # A: almost all the weight
            second.append(order[1])
            if order[1] == 1:
                third_after_b.append(order[2])
        p_b = np.mean(np.array(second) == 1)
        assert p_b == pytest.approx(144 / 184, abs=0.05)  # 1000 draws: σ = 0.013
        p_c = np.mean(np.array(third_after_b) == 2)
        assert p_c == pytest.approx(36 / 40, abs=0.04)  # about 780 draws: σ = 0.011

    def test_k_means_plus_plus_measures_to_the_nearest_center_once_it_moved_nearer(self):
        """After two centers each image's draw weighs its squared distance to the nearer one.
        A and B (12 pixels apart) weigh so much that they are the first two; then C (6 from
        each) and D (9 from A, 3 from B) are drawn as 36 : 9, D's distance being B's."""
        X = np.zeros((4, 12), dtype=bool)
        X[1] = True  # B
        X[2, :6] = True  # C
        X[3, :9] = True  # D
        w = np.array([1e12, 1e12, 1.0, 1.0])
        means = np.clip(0.5 * X + 0.5 * (w @ X / w.sum()), 0.05, 0.95)  # of A, B, C, D
        third = []
        for seed in range(400):
            _, mu = engine.initialize(DenseRows(X), 3, "k-means++", np.random.default_rng(seed), w)
            order = [int(np.abs(means - m).sum(axis=1).argmin()) for m in mu]
            assert sorted(order[:2]) == [0, 1]
            third.append(order[2])
        assert np.mean(np.array(third) == 2) == pytest.approx(36 / 45, abs=0.08)  # σ = 0.02

    def test_initial_means_stay_inside_005_095(self):
        """A pixel on in every image and one never on: no mean starts at 0 or 1."""
        rng = np.random.default_rng(3)
        X = rng.random((30, 10)) < 0.5
        X[:, 0], X[:, 1] = True, False
        for method in engine.INIT_METHODS:
            _, mu = engine.initialize(DenseRows(X), 4, method, np.random.default_rng(1))
            assert mu.min() >= 0.05 and mu.max() <= 0.95
            if method == "k-means++":
                assert (mu[:, 0] == 0.95).all() and (mu[:, 1] == 0.05).all()

    def test_only_an_empty_component_keeps_its_mean(self):
        """A component with little responsibility (N_k = 0.5) gets its weighted mean like any
        other; only N_k = 0 (no prior) keeps the previous mean."""
        X = np.array([[1, 0, 1], [1, 1, 0], [0, 0, 1], [1, 0, 0]], dtype=np.float64)
        resp = np.array([[0.75, 0.25, 0], [1, 0, 0], [0.75, 0.25, 0], [1, 0, 0]])
        stats = stats_of(np.zeros(4), resp.sum(axis=0), resp.T @ X)
        mu_old = np.full((3, 3), 0.3)
        pi, mu = engine.m_step(stats, mu_old)
        np.testing.assert_allclose(pi, [0.875, 0.125, 0.0])
        np.testing.assert_allclose(mu[1], [0.5, EPS, 1 - EPS])  # rows 0 and 2, equally
        np.testing.assert_array_equal(mu[2], mu_old[2])

    def test_k_means_plus_plus_takes_the_only_image_left_one_pixel_away(self):
        """After the first center, every image equal to it has distance 0 and the one other
        image distance 1: k-means++ draws it with probability 1."""
        X = np.zeros((5, 8), dtype=bool)
        X[4, 3] = True
        for seed in range(20):
            _, mu = engine.initialize(DenseRows(X), 2, "k-means++", np.random.default_rng(seed))
            assert sorted(np.round(2 * mu[:, 3] - 0.2).tolist()) == [0.0, 1.0], mu

    def test_tol_zero_runs_every_iteration_even_at_a_fixed_point(self):
        """With K = 1, EM reaches its fixed point after one iteration and the objective then
        changes by exactly 0: tol = 0 (changes below 0 stop it) still runs all max_iter
        iterations and does not claim convergence, as the timed fixed-length runs need."""
        X = np.random.default_rng(4).random((40, 12)) < 0.4
        variant = VARIANTS["matmul_fused"]
        pi, mu = np.ones(1), np.full((1, 12), 0.5)
        result = engine.fit_em(variant.rows(X), pi, mu, variant, tol=0, max_iter=5)
        assert (np.diff(result.trace["objective"].to_numpy()[1:]) == 0).all()
        assert result.n_iter == 5 and not result.converged
        result = engine.fit_em(variant.rows(X), pi, mu, variant, tol=1e-12, max_iter=5)
        assert result.n_iter == 2 and result.converged

    def test_the_trace_times_each_pass_and_each_update_apart(self, monkeypatch):
        """On a clock where a pass takes 10 s and an M-step 1 s: pass_s is 10 on every row,
        update_s 1 after an M-step, plus 10 for each move tried and refused (its pass counts in
        the update), and a kept move's pass is the row's pass. The rows are numbered from 0
        (the start, nothing re-seeded) and the callback sees each with its change."""
        clock = SimpleNamespace(now=0.0)
        summarize, m_step = engine.summarize, engine.m_step

        def timed(step, seconds):
            def run(*args, **kwargs):
                clock.now += seconds
                return step(*args, **kwargs)

            return run

        monkeypatch.setattr(engine, "time", SimpleNamespace(perf_counter=lambda: clock.now))
        monkeypatch.setattr(engine, "summarize", timed(summarize, 10.0))
        monkeypatch.setattr(engine, "m_step", timed(m_step, 1.0))
        X = prototypes_and_loners()
        variant = VARIANTS["matmul_fused"]
        data = variant.rows(X)
        pi, mu = engine.initialize(data, 12, "k-means++", np.random.default_rng(0))
        seen = []
        result = engine.fit_em(
            data, pi, mu, variant, tol=0, max_iter=30, reseed_degenerate=True, callback=seen.append
        )
        trace = result.trace
        assert trace["iteration"].tolist() == list(range(31)) and result.n_iter == 30
        assert (trace["pass_s"] == 10.0).all()
        assert np.isnan(trace["update_s"][0]) and trace["reseeded"][0] == 0
        kept = trace["reseeded"][1:] > 0
        assert kept.any()  # the fit moved collapsed components
        assert (trace["update_s"][1:][kept] == 1.0).all()
        assert set(trace["update_s"][1:]) == {1.0, 11.0}
        # a refused move is not proposed again: at most K refusals in a fit
        assert 1 <= (trace["update_s"] == 11.0).sum() <= 12
        obj = trace["objective"].to_numpy()
        assert (np.diff(obj) >= -1e-12 * np.abs(obj[1:])).all()  # moves never lower it
        assert [row["iteration"] for row in seen] == list(range(31))
        assert np.isnan(seen[0]["change"])
        np.testing.assert_array_equal([row["change"] for row in seen[1:]], np.diff(obj))

    def test_a_kept_move_is_the_reseeding_proposal_at_the_last_pass(self):
        """The move a fit makes is reseed's proposal from the M-step's parameters, the
        worst-explained rows of the pass before it and the data's mean image."""
        X = prototypes_and_loners()
        variant = VARIANTS["matmul_fused"]
        data = variant.rows(X)
        pi0, mu0 = engine.initialize(data, 12, "k-means++", np.random.default_rng(0))
        stats = engine.summarize(data, variant, pi0, mu0)
        pi1, mu1 = engine.m_step(stats, mu0)
        blocked = np.zeros(12, dtype=bool)
        pi2, mu2, move = engine.reseed(data, pi1, mu1, stats.worst_rows, blocked, X.mean(axis=0))
        assert move.any()
        result = engine.fit_em(data, pi0, mu0, variant, tol=0, max_iter=1, reseed_degenerate=True)
        assert result.trace["reseeded"].tolist() == [0, move.sum()]
        np.testing.assert_array_equal(result.weights, pi2)
        np.testing.assert_allclose(result.means, mu2, rtol=1e-15)

    def test_a_move_that_leaves_the_objective_where_it_was_is_kept(self, monkeypatch):
        """A re-seeding move is kept when the objective after it is *no lower* than before
        the M-step: equal is kept, the next float below is refused. The proposal's pass (the
        second, after the start's) is made to give the start's log-likelihood, or just less."""
        X = prototypes_and_loners()
        variant = VARIANTS["matmul_fused"]
        data = variant.rows(X)
        pi0, mu0 = engine.initialize(data, 12, "k-means++", np.random.default_rng(0))
        summarize = engine.summarize
        for below, kept in ((False, True), (True, False)):
            passes = []

            def fixed(*args, below=below, passes=passes):
                stats = summarize(*args)
                if len(passes) == 1:  # the proposal's pass
                    loglik = np.nextafter(passes[0].loglik, -np.inf) if below else passes[0].loglik
                    stats = dataclasses.replace(stats, loglik=loglik)
                passes.append(stats)
                return stats

            monkeypatch.setattr(engine, "summarize", fixed)
            result = engine.fit_em(
                data, pi0, mu0, variant, tol=0, max_iter=1, reseed_degenerate=True
            )
            objective = result.trace["objective"].tolist()
            assert (result.trace["reseeded"][1] > 0) == kept
            assert (objective[1] == objective[0]) == kept

    def test_the_engines_defaults_are_the_estimators(self):
        """fit_em called with its defaults stops and regularises as BernoulliMixture() does
        (tol, max_iter, the priors, re-seeding): one set of defaults, whichever is called."""
        from bmm.estimator import BernoulliMixture

        defaults = BernoulliMixture().get_params()
        signature = inspect.signature(engine.fit_em).parameters
        for name in ("tol", "max_iter", "mu_prior", "pi_prior", "reseed_degenerate"):
            assert signature[name].default == defaults[name], name

    def test_the_options_of_a_fit_are_keyword_only(self):
        """fit_em(X, pi, mu, variant, *, tol, max_iter, …): an option given by position (which
        of tol, max_iter was meant?) is refused; the data and the start may be named."""
        X = np.random.default_rng(2).random((20, 6)) < 0.5
        variant = VARIANTS["matmul_fused"]
        pi, mu = np.full(2, 0.5), np.random.default_rng(3).uniform(0.3, 0.7, (2, 6))
        with pytest.raises(TypeError, match="positional"):
            engine.fit_em(variant.rows(X), pi, mu, variant, 0.0, 3)
        result = engine.fit_em(X=variant.rows(X), pi=pi, mu=mu, variant=variant, max_iter=3)
        assert result.n_iter <= 3

    def test_a_result_prints_without_its_trace(self):
        """An EMResult's repr shows the parameters and the outcome, not the trace (a row
        per pass: pages of numbers); the trace is result.trace."""
        X = np.random.default_rng(2).random((20, 6)) < 0.5
        variant = VARIANTS["matmul_fused"]
        pi, mu = np.full(2, 0.5), np.random.default_rng(3).uniform(0.3, 0.7, (2, 6))
        result = engine.fit_em(variant.rows(X), pi, mu, variant, tol=0, max_iter=3)
        assert len(result.trace) == 4
        assert "trace" not in repr(result) and "pass_s" not in repr(result)
        assert "converged=False" in repr(result) and "n_iter=3" in repr(result)

    def test_log_prior_is_the_log_density_of_the_priors(self):
        """(a − 1) Σ [log μ + log(1 − μ)] + (α − 1) Σ log π, for Beta(a, a) and Dirichlet(α),
        at μ clipped as the E-step clips it (so μ = 0 or 1 costs log EPS, not −∞)."""
        rng = np.random.default_rng(5)
        pi, mu = rng.dirichlet(np.ones(4)), rng.uniform(0.01, 0.99, (4, 7))
        mu[0, :2] = 0.0, 1.0
        m = np.clip(mu, EPS, 1 - EPS)
        assert engine.log_prior(pi, mu) == 0.0  # no priors
        for a in (1.0, 2.0, 3.5):
            for alpha in (1.0, 2.0, 5.0):
                expected = (a - 1) * (np.log(m) + np.log1p(-m)).sum()
                expected += (alpha - 1) * np.log(pi).sum()
                assert engine.log_prior(pi, mu, a, alpha) == pytest.approx(expected, rel=1e-14)

    def test_bic(self):
        """−2 log L + p log N: lower for a better fit, higher for more parameters."""
        assert engine.bic(-1000.0, 30, 500) == pytest.approx(2000.0 + 30 * np.log(500))
        assert engine.bic(-900.0, 30, 500) < engine.bic(-1000.0, 30, 500)
        assert engine.bic(-1000.0, 31, 500) > engine.bic(-1000.0, 30, 500)


# ---------------------------------------------------------------------------------------
# bmm.rows


class TestRows:
    def test_weighted_stats_count_each_row_its_weight(self):
        """Over several blocks: the total log-likelihood and weight are the weighted sums,
        and the worst-explained rows are the lowest among rows of positive weight only."""
        rng = np.random.default_rng(6)
        N, K = 2 * BLOCK_ROWS + 10, 3
        loglik = rng.normal(size=N)
        w = rng.integers(0, 3, N).astype(float)
        w[np.argsort(loglik)[:5]] = 0.0  # the five lowest rows do not count
        stats = stats_of(loglik, np.ones(K), np.zeros((K, 2)), w)
        assert stats.n == N and stats.weight == pytest.approx(w.sum(), rel=1e-15)
        assert stats.loglik == pytest.approx((w * loglik).sum(), rel=1e-12)
        counted = np.flatnonzero(w > 0)
        np.testing.assert_array_equal(stats.worst_rows, counted[np.argsort(loglik[counted])[:K]])

    def test_stats_of_consecutive_rows_add_up(self):
        """Stats of the first rows plus those of the next are the Stats of all of them: every
        count and sum, and the worst rows renumbered from the first row."""
        rng = np.random.default_rng(10)
        N, K = 50, 4
        loglik, w = rng.normal(size=N), rng.integers(0, 3, N).astype(float)
        Nk, sums = rng.random((N, K)), rng.random((N, K, 2))

        def of(a, b):
            return stats_of(loglik[a:b], Nk[a:b].sum(axis=0), sums[a:b].sum(axis=0), w[a:b])

        whole, parts = of(0, N), of(0, 17) + of(17, N)
        for name in ("n", "weight", "loglik", "Nk", "sums", "worst_loglik", "worst_rows"):
            np.testing.assert_allclose(getattr(parts, name), getattr(whole, name), rtol=1e-14)

    def test_blocks_cover_every_row_once_in_order(self):
        X = np.arange(23 * 2).reshape(23, 2) % 3 == 0
        blocks = list(DenseRows(X).blocks(5))
        assert [len(b) for b in blocks] == [5, 5, 5, 5, 3]
        np.testing.assert_array_equal(np.vstack([b.dense(bool) for b in blocks]), X)

    def test_lowest_with_one_candidate_more_than_asked(self):
        values, rows_ = np.array([2.0, -1.0, 5.0, 0.5]), np.arange(4)
        assert lowest(values, rows_, 3).tolist() == [1, 3, 0]

    def test_sample_weights_are_checked(self):
        assert check_weights(None, 3) is None
        w = check_weights([1, 0, 2], 3)
        assert w.dtype == np.float64 and w.tolist() == [1.0, 0.0, 2.0]
        for bad, message in [
            (np.ones(2), "one weight a sample"),
            (np.ones((3, 1)), "one weight a sample"),
            ([1.0, -1e-300, 1.0], "finite and ≥ 0"),
            ([1.0, np.nan, 1.0], "finite and ≥ 0"),
            ([1.0, np.inf, 1.0], "finite and ≥ 0"),
            ([0.0, 0.0, 0.0], "must not be all 0"),
        ]:
            with pytest.raises(ValueError, match=message):
                check_weights(bad, 3)

    def test_dense_rows_select_whole_rows_of_a_2d_array(self):
        X = np.arange(12).reshape(4, 3) % 2
        with pytest.raises(ValueError, match="2-D"):
            DenseRows(X[0])
        with pytest.raises(IndexError, match="selected whole"):
            DenseRows(X)[1, 2]
        np.testing.assert_array_equal(DenseRows(X)[np.array([3, 0])].dense(), X[[3, 0]])
        np.testing.assert_array_equal(DenseRows(X).column_sums(), X.sum(axis=0))

    def test_a_weighted_pass_over_dense_rows(self):
        """DenseRows.summarize with weights, over several blocks: N_k = Σ w γ, Σ w γ x, the
        weighted log-likelihood, from the variant's own E-step."""
        rng = np.random.default_rng(7)
        N, D, K = 2 * BLOCK_ROWS + 33, 10, 3
        X = (rng.random((N, D)) < 0.4).astype(np.float64)
        pi, mu = rng.dirichlet(np.ones(K)), rng.uniform(0.1, 0.9, (K, D))
        w = rng.random(N)
        resp, loglik = estep.matmul_fused(X, pi, mu)
        stats = DenseRows(X).summarize(VARIANTS["matmul_fused"], pi, mu, w)
        np.testing.assert_allclose(stats.Nk, w @ resp, rtol=1e-12)
        np.testing.assert_allclose(stats.weighted_sums(), (resp * w[:, None]).T @ X, rtol=1e-12)
        assert stats.loglik == pytest.approx(w @ loglik, rel=1e-12)
        assert stats.n == N and stats.weight == pytest.approx(w.sum(), rel=1e-14)

    def test_dense_products_run_on_one_blas_thread(self):
        """The fit must not depend on the number of threads, so a pass over dense rows runs
        its products on one BLAS thread whatever the caller allows."""
        blas = [i for i in threadpool_info() if i["user_api"] == "blas"]
        if not blas or max(i["num_threads"] for i in blas) < 2:
            require("cores", "BLAS has one thread here: nothing to limit")
        seen = []

        def variant(X, pi, mu):
            seen.append(max(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"))
            return estep.matmul_fused(X, pi, mu)

        X = np.random.default_rng(8).random((50, 6)) < 0.5
        DenseRows(X.astype(np.float64)).summarize(variant, np.ones(1), np.full((1, 6), 0.5))
        assert seen == [1]

    def test_rows_of_wraps_arrays_and_keeps_rows(self):
        X = np.zeros((2, 3))
        assert isinstance(rows.rows_of(X), DenseRows)
        B = BitMatrix.pack(X)
        assert rows.rows_of(B) is B
