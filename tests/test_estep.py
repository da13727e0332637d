"""bmm.estep: every E-step variant against the scalar reference ``loops_ndk``.

``loops_ndk`` shares no code with the vectorised variants (it clips, logs and normalises one
scalar at a time with :mod:`math`), so agreement with it is an independent check. Cases
cover moderate random inputs and the places where an E-step breaks: μ at or near 0 and 1,
empty clusters, K = 1, K > N, N = 1, images far from every cluster, blank and full images.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from dataclasses import replace
from functools import cache

import numpy as np
import pytest
from conftest import require

from bmm import estep
from bmm.bits import BitMatrix
from bmm.estep import EPS, VARIANTS, Variant, VariantUnavailable

ARTICLE_ORDER = [
    "loops_ndk",
    "loops_ndk_as_published",
    "loops_nk",
    "loops_n",
    "matmul",
    "matmul_as_published",
    "matmul_fused",
    "matmul_fused_f32",
    "numba_ndk",
    "numba_simd",
    "packed_lut",
]
AS_PUBLISHED = ["loops_ndk_as_published", "matmul_as_published"]
FLOAT32 = ["matmul_fused_f32", "numba_simd", "packed_lut"]
NEEDS_NUMBA = ["numba_ndk", "numba_simd", "packed_lut"]
STABLE = [name for name, v in VARIANTS.items() if v.stable]

# Agreement with the reference, by the dtype X is given in.
TOL = {
    np.float64: {"resp": 1e-9, "ll_rtol": 1e-10, "ll_atol": 1e-10, "rowsum": 1e-12},
    np.float32: {"resp": 1e-4, "ll_rtol": 1e-5, "ll_atol": 1e-5, "rowsum": 1e-6},
}


# ---------------------------------------------------------------------------------------
# Cases: (X, pi, mu) as float64 arrays; X holds 0/1.


def _random(seed, N, D, K, lo=0.05, hi=0.95, density=0.4):
    rng = np.random.default_rng(seed)
    X = (rng.random((N, D)) < density).astype(np.float64)
    return X, rng.dirichlet(np.ones(K)), rng.uniform(lo, hi, size=(K, D))


def _extreme(seed, values, N=30, D=40, K=5):
    rng = np.random.default_rng(seed)
    X = (rng.random((N, D)) < 0.5).astype(np.float64)
    return X, rng.dirichlet(np.ones(K)), rng.choice(np.asarray(values, dtype=np.float64), (K, D))


def _mixed(seed, N=30, D=40, K=5):
    """Each μ_kd is extreme (0, 1, 1e-12 or 1 − 1e-12) or moderate, at random."""
    rng = np.random.default_rng(seed)
    X, pi, mu = _random(seed, N, D, K, 0.2, 0.8, 0.5)
    extreme = rng.choice([0.0, 1.0, 1e-12, 1 - 1e-12], size=(K, D))
    return X, pi, np.where(rng.random((K, D)) < 0.5, extreme, mu)


def _empty_cluster():
    X, pi, mu = _random(7, 25, 30, 4)
    pi[[1, 3]] = 0.0, 0.0
    return X, pi / pi.sum(), mu


def _far_images():
    """Every image has ones only in the top half; every cluster has μ ≈ 1e-12 there, so each
    image costs about −27.6 nats per "on" pixel under every cluster (log p ≈ −3000)."""
    rng = np.random.default_rng(11)
    N, D, K = 8, 784, 4
    X = np.zeros((N, D))
    X[:, : D // 2] = rng.random((N, D // 2)) < 0.4
    mu = rng.uniform(0.2, 0.8, size=(K, D))
    mu[:, : D // 2] = rng.uniform(0.5e-12, 2e-12, size=(K, D // 2))
    return X, rng.dirichlet(np.ones(K)), mu


def _blank_and_full():
    X, pi, mu = _random(5, 10, 50, 3, 0.1, 0.9)
    X[0], X[1] = 0.0, 1.0
    X[2], X[3] = 0.0, 1.0
    return X, pi, mu


def _blank_and_full_extreme():
    """All-zero and all-one images against clusters with μ exactly 0 or 1 somewhere."""
    X, pi, mu = _blank_and_full()
    mu[0, :10], mu[1, :10], mu[2, 10:20] = 0.0, 1.0, 1e-12
    return X, pi, mu


CASES = {
    "random-s0": lambda: _random(0, 40, 20, 4),
    "random-s1": lambda: _random(1, 30, 35, 3),
    "random-s2": lambda: _random(2, 50, 50, 6),
    "random-D784": lambda: _random(3, 6, 784, 5),
    "mu-near-0-1": lambda: _extreme(4, [1e-12, 1 - 1e-12]),
    "mu-exactly-0-1": lambda: _extreme(5, [0.0, 1.0]),
    "mu-extreme-and-moderate": lambda: _mixed(6),
    "K=1": lambda: _random(8, 12, 25, 1),
    "K>N": lambda: _random(9, 3, 20, 8),
    "N=1": lambda: _random(10, 1, 30, 4),
    "empty-cluster": _empty_cluster,
    "far-from-every-cluster": _far_images,
    "all-zero-and-all-one-images": _blank_and_full,
    "all-zero-and-all-one-vs-extreme-mu": _blank_and_full_extreme,
}
# Cases on which the article's arithmetic is exact enough to compare: μ inside (0, 1) and
# log p(x_n, k) far above the underflow threshold of exp (≈ −745).
MODERATE = ["random-s0", "random-s1", "random-s2", "K=1", "K>N", "N=1", "empty-cluster"]


@cache
def case(name):
    X, pi, mu = CASES[name]()
    for a in (X, pi, mu):
        a.flags.writeable = False
    return X, pi, mu


@cache
def reference(name):
    return estep.loops_ndk(*case(name))


def run(name, X, pi, mu):
    """Call variant ``name`` with X in its form, skipping a variant that cannot run here."""
    variant = VARIANTS[name]
    if variant.unavailable:
        require("numba", f"{name} unavailable: {variant.unavailable}")
    return variant(variant.prepare(X), pi.copy(), mu.copy())


def assert_agrees(name, case_name):
    resp, ll = run(name, *case(case_name))
    ref_resp, ref_ll = reference(case_name)
    tol = TOL[VARIANTS[name].dtype]
    assert resp.shape == ref_resp.shape and ll.shape == ref_ll.shape
    diff = np.abs(resp - ref_resp).max()
    assert diff <= tol["resp"], f"{name} on {case_name}: max |Δγ| = {diff:.3g}"
    np.testing.assert_allclose(
        ll, ref_ll, rtol=tol["ll_rtol"], atol=tol["ll_atol"], err_msg=f"{name} on {case_name}"
    )
    return resp, ll


# ---------------------------------------------------------------------------------------
# The reference itself


def test_reference_matches_a_direct_formula():
    """loops_ndk against log p written out in plain numpy on a moderate case."""
    X, pi, mu = case("random-s0")
    log_joint = np.log(pi) + X @ np.log(mu).T + (1 - X) @ np.log(1 - mu).T
    ll = np.log(np.exp(log_joint).sum(axis=1))
    resp, ref_ll = estep.loops_ndk(X, pi, mu)
    np.testing.assert_allclose(ref_ll, ll, rtol=1e-12)
    np.testing.assert_allclose(resp, np.exp(log_joint - ll[:, None]), atol=1e-12)


def test_reference_clips_mu_by_eps():
    """μ = 0 and μ = 1 cost log(EPS) nats per mismatching pixel, never −∞."""
    X = np.array([[1.0, 0.0], [0.0, 1.0]])
    resp, ll = estep.loops_ndk(X, np.ones(1), np.array([[0.0, 1.0]]))
    np.testing.assert_array_equal(resp, 1.0)
    # 1 − EPS is not exact in binary: log(1 − (1 − EPS)) is log(EPS) to 8e-9 relative
    upper = 1.0 - EPS
    expected = [np.log(EPS) + np.log1p(-upper), np.log1p(-EPS) + np.log(upper)]
    np.testing.assert_allclose(ll, expected, rtol=1e-14)
    assert ll[0] == pytest.approx(2 * np.log(EPS), rel=1e-8)


# ---------------------------------------------------------------------------------------
# Every stable variant against the reference on every case


@pytest.mark.parametrize("case_name", list(CASES))
@pytest.mark.parametrize("name", STABLE)
def test_stable_variant_matches_reference(name, case_name):
    resp, ll = assert_agrees(name, case_name)
    tol = TOL[VARIANTS[name].dtype]
    assert np.isfinite(resp).all() and np.isfinite(ll).all()
    np.testing.assert_allclose(resp.sum(axis=1), 1.0, rtol=0, atol=tol["rowsum"])


@pytest.mark.parametrize("name", STABLE)
def test_empty_cluster_gets_exactly_zero_responsibility(name):
    X, pi, mu = case("empty-cluster")
    resp, _ = run(name, X, pi, mu)
    assert (resp[:, pi == 0] == 0.0).all()
    assert (resp[:, pi > 0] > 0.0).any(axis=0).all()
    np.testing.assert_allclose(resp.sum(axis=1), 1.0, atol=TOL[VARIANTS[name].dtype]["rowsum"])


@pytest.mark.parametrize("name", list(VARIANTS))
def test_output_dtypes_and_shapes(name):
    """resp (N×K) has the variant's precision (float32 variants make no float64 copy of it);
    loglik (N) is float64 for every variant."""
    X, pi, mu = case("K>N")
    resp, ll = run(name, X, pi, mu)
    assert resp.dtype == VARIANTS[name].dtype and resp.shape == (3, 8)
    assert ll.dtype == np.float64 and ll.shape == (3,)


def test_variant_dtypes():
    assert {n: VARIANTS[n].dtype for n in VARIANTS} == {
        n: (np.float32 if n in FLOAT32 else np.float64) for n in ARTICLE_ORDER
    }
    assert [n for n, v in VARIANTS.items() if v.packed] == ["packed_lut"]


@pytest.mark.parametrize("name", list(VARIANTS))
def test_prepare_gives_the_variants_form_from_dense_or_packed_input(name):
    X = case("random-s1")[0]
    variant = VARIANTS[name]
    for given in (X, X.astype(bool), BitMatrix.pack(X)):
        prepared = variant.prepare(given)
        if variant.packed:
            assert isinstance(prepared, BitMatrix)
            np.testing.assert_array_equal(prepared.unpack(np.float64), X)
        else:
            assert isinstance(prepared, np.ndarray) and prepared.dtype == variant.dtype
            np.testing.assert_array_equal(prepared, X)


# ---------------------------------------------------------------------------------------
# The article's arithmetic, kept as published


@pytest.mark.parametrize("case_name", MODERATE)
@pytest.mark.parametrize("name", AS_PUBLISHED)
def test_as_published_matches_reference_on_moderate_inputs(name, case_name):
    assert_agrees(name, case_name)


@pytest.mark.parametrize("name", AS_PUBLISHED)
def test_as_published_matches_reference_in_the_articles_harness(name):
    """μ ~ U(0.25, 0.75), π uniform, D = 784, as the article timed it: log p(x, k) ≈ −565,
    well above the underflow of exp (−745) and of a product of probabilities (1e-308), so
    the plain row sum is accurate."""
    rng = np.random.default_rng(2019)
    N, D, K = 12, 784, 10
    X = (rng.random((N, D)) < 0.2).astype(np.float64)
    pi, mu = np.full(K, 1 / K), rng.uniform(0.25, 0.75, size=(K, D))
    resp, ll = VARIANTS[name](X, pi, mu)
    ref_resp, ref_ll = estep.loops_ndk(X, pi, mu)
    assert np.abs(resp - ref_resp).max() <= 1e-9
    np.testing.assert_allclose(ll, ref_ll, rtol=1e-10)


@pytest.mark.parametrize("name", AS_PUBLISHED)
def test_as_published_gives_nan_far_from_every_cluster(name):
    """Documented behaviour, not a bug to fix: the article normalises probabilities by a
    plain row sum, which underflows to 0/0 = NaN once p(x, k) < 1e-308 (log p < −745) for
    every k. The variants keep that arithmetic so their timing is the article's;
    ``stable=False`` says so, and every stable variant gives finite, correct answers on the
    same images."""
    X, pi, mu = case("far-from-every-cluster")
    assert not VARIANTS[name].stable
    resp, ll = VARIANTS[name](X, pi, mu)
    assert np.isnan(resp).all(axis=1).all()
    assert (ll == -np.inf).all()
    ref_resp, ref_ll = reference("far-from-every-cluster")
    assert np.isfinite(ref_resp).all() and (ref_ll < -745).all()


def test_only_as_published_is_unstable():
    assert [n for n, v in VARIANTS.items() if not v.stable] == AS_PUBLISHED


# ---------------------------------------------------------------------------------------
# The registry


def test_registry_in_the_articles_order():
    assert list(VARIANTS) == ARTICLE_ORDER
    assert all(VARIANTS[n].name == n for n in VARIANTS)
    available, unavailable = estep.available(), list(estep.unavailable())
    assert sorted(available + unavailable) == sorted(ARTICLE_ORDER)
    assert available == [n for n in ARTICLE_ORDER if n in available]


def test_get_returns_the_variant():
    assert estep.get("matmul_fused") is VARIANTS["matmul_fused"]


def test_get_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown E-step variant 'nope'") as info:
        estep.get("nope")
    for name in ARTICLE_ORDER:
        assert name in str(info.value)


def test_unavailable_variant_raises_with_its_reason(monkeypatch):
    variant = replace(VARIANTS["matmul"], name="numba_ndk", unavailable="numba is not installed")
    assert isinstance(variant, Variant)
    monkeypatch.setitem(VARIANTS, "numba_ndk", variant)
    assert "numba_ndk" not in estep.available()
    assert estep.unavailable() == {"numba_ndk": "numba is not installed"}
    with pytest.raises(VariantUnavailable, match="'numba_ndk' is unavailable: numba is not"):
        variant(*case("N=1"))


def test_numba_missing_makes_the_compiled_variants_unavailable():
    """The real import path: with numba unimportable, bmm.estep still imports, lists
    the three compiled variants as unavailable with a reason naming numba, and refuses to
    run them; packing data into bits still works."""
    code = textwrap.dedent(
        f"""
        import sys
        sys.modules["numba"] = None  # import numba now raises ImportError
        import numpy as np
        from bmm import estep
        assert estep.numba is None
        needs = {NEEDS_NUMBA!r}
        assert estep.available() == [n for n in estep.VARIANTS if n not in needs]
        assert sorted(estep.unavailable()) == sorted(needs)
        for name in needs:
            reason = estep.unavailable()[name]
            assert "numba" in reason, reason
            variant = estep.VARIANTS[name]
            X = variant.prepare(np.zeros((1, 2)))  # packing needs no numba
            try:
                variant(X, np.ones(1), np.full((1, 2), 0.5))
            except estep.VariantUnavailable as e:
                assert name in str(e)
            else:
                raise AssertionError(f"{{name}} ran without numba")
        print("OK", reason)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("OK numba is not installed")


# ---------------------------------------------------------------------------------------
# Scoring: the float64 E-step the estimator scores with, from dense X or from bits


@pytest.mark.parametrize("case_name", list(CASES))
@pytest.mark.parametrize("packed", [False, True], ids=["dense", "bits"])
def test_scoring_matches_reference(case_name, packed):
    X, pi, mu = case(case_name)
    resp, ll = estep.scoring(BitMatrix.pack(X) if packed else X, pi, mu)
    ref_resp, ref_ll = reference(case_name)
    assert resp.dtype == ll.dtype == np.float64
    assert np.abs(resp - ref_resp).max() <= TOL[np.float64]["resp"]
    np.testing.assert_allclose(ll, ref_ll, rtol=1e-10, atol=1e-10)


def test_scoring_bits_without_numba_unpacks_them(monkeypatch):
    X, pi, mu = case("random-s2")
    gone = replace(VARIANTS["packed_lut"], unavailable="numba is not installed")
    monkeypatch.setitem(VARIANTS, "packed_lut", gone)
    resp, ll = estep.scoring(BitMatrix.pack(X), pi, mu)
    expected = estep.matmul_fused(X, pi, mu)
    np.testing.assert_array_equal(resp, expected[0])
    np.testing.assert_array_equal(ll, expected[1])
