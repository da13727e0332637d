"""The timing harness: budgets, skipped points, predictions, summaries, the benchmark CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from bmm import auto, bench, estep, timing


@pytest.fixture(scope="module")
def X():
    return np.random.default_rng(0).random((400, 784)) < 0.13


def statuses(df):
    return df.groupby(["N", "K"])["status"].agg(lambda s: sorted(set(s))).to_dict()


def fake_variant(monkeypatch, cost, error=0.0):
    """A variant named "fake" whose every call costs ``cost(N, K)`` seconds on a fake clock
    (returned), and whose responsibilities are matmul_fused's plus ``error`` in one entry."""
    now = [0.0]

    def fake(X, pi, mu):
        now[0] += cost(len(X), len(pi))
        resp, loglik = estep.matmul_fused(X, pi, mu)
        resp[0, 0] += error
        return resp, loglik

    monkeypatch.setitem(estep.VARIANTS, "fake", estep.Variant("fake", fake, np.float64, "test"))
    return lambda: now[0]


def test_every_point_is_timed_or_recorded_as_not_timed(X):
    df = timing.time_variant_grid(
        "matmul",
        X,
        [5, 50, 400, 1000],
        [3, 7],
        repeats=3,
        warmup=1,
        budget_s=5.0,
        log=lambda m: None,
    )
    assert list(df.columns) == timing.COLUMNS
    s = statuses(df)
    assert set(s) == {(n, k) for n in (5, 50, 400, 1000) for k in (3, 7)}
    for k in (3, 7):
        assert s[1000, k] == ["skipped"]  # more than the 400 images available
        for n in (5, 50, 400):
            assert s[n, k] == ["ok"]
    ok = df[df["status"] == "ok"]
    assert (ok.groupby(["N", "K"]).size() == 3).all()  # every repeat kept
    # attempt 4 against the stable reference: the float64 tolerance of DESIGN.md
    assert ok["seconds"].notna().all() and (ok["max_abs_diff"] <= 1e-9).all()
    skipped = df[df["status"] == "skipped"]
    assert skipped["seconds"].isna().all()
    assert skipped["reason"].str.contains("exceeds the 400 images available").all()


def test_each_point_is_checked_against_the_stable_reference(X, monkeypatch):
    """max_abs_diff is the variant's largest distance from matmul_fused at that point: a
    variant off by 1e-3 in one responsibility shows exactly that, at every point."""
    clock = fake_variant(monkeypatch, lambda N, K: 1e-3, error=1e-3)
    df = timing.time_variant_grid(
        "fake", X, [5, 50], [3], repeats=2, log=lambda m: None, clock=clock
    )
    assert (df["status"] == "ok").all() and len(df) == 4
    assert df["max_abs_diff"].to_numpy() == pytest.approx(1e-3, rel=1e-9)


def test_a_slow_variant_is_skipped_where_its_prediction_exceeds_the_budget(X, monkeypatch):
    """A fake variant costing 1/1024 s of overhead plus N·K/1024 s per call, on a fake clock
    (binary fractions, so the arithmetic is exact): each point's prediction scales the
    nearest smaller N linearly, which overestimates a cost with a fixed overhead, so it is
    never optimistic; a point predicted over the budget is skipped, with its prediction."""
    clock = fake_variant(monkeypatch, lambda N, K: (1 + N * K) / 1024)
    budget = 0.5
    df = timing.time_variant_grid(
        "fake",
        X,
        [2, 4, 40, 400],
        [2],
        repeats=2,
        warmup=0,
        budget_s=budget,
        log=lambda m: None,
        clock=clock,
    )
    s = statuses(df)
    assert s == {(2, 2): ["ok"], (4, 2): ["ok"], (40, 2): ["ok"], (400, 2): ["skipped"]}
    predicted = df.groupby("N")["predicted_s"].first()
    # N=2 runs unpredicted; N=4 from N=2: 5/1024·2; N=40 from N=4: 9/1024·10;
    # N=400 from N=40: 81/1024·10 = 0.79 s > 0.5 s
    assert predicted[2] == 0.0
    assert predicted[4] == 10 / 1024 and predicted[40] == 90 / 1024
    assert predicted[400] == 810 / 1024
    ok = df[(df["status"] == "ok") & (df["predicted_s"] > 0)]
    assert (ok["seconds"] <= ok["predicted_s"]).all()
    assert ok.groupby("N")["seconds"].first().to_dict() == {4: 9 / 1024, 40: 81 / 1024}
    skipped = df[df["status"] == "skipped"]
    assert skipped["reason"].str.contains(f"> budget {budget:g} s").all()
    assert skipped["seconds"].isna().all()


def test_repeats_shrink_to_fit_the_budget_but_never_below_one(X, monkeypatch):
    """A fake variant costing N/1024 s a call (exact on a fake clock), budget 0.05 s a point:
    N=1 runs all 50 repeats (nothing predicts it); N=10, predicted 10/1024 s, runs
    int(0.05 / (10/1024)) = 5; N=40, predicted 40/1024 s, fits once (int gives 1); N=60,
    predicted 60/1024 s > 0.05 s, is skipped."""
    clock = fake_variant(monkeypatch, lambda N, K: N / 1024)
    df = timing.time_variant_grid(
        "fake",
        X,
        [1, 10, 40, 60],
        [4],
        repeats=50,
        warmup=0,
        budget_s=0.05,
        log=lambda m: None,
        clock=clock,
    )
    ok = df[df["status"] == "ok"]
    assert ok.groupby("N").size().to_dict() == {1: 50, 10: 5, 40: 1}
    assert df[df["N"] == 60]["status"].tolist() == ["skipped"]
    for N, n in ((10, 5), (40, 1)):
        assert ok[ok["N"] == N]["seconds"].sum() == n * N / 1024


def test_an_unavailable_variant_is_listed_with_its_reason(X, monkeypatch):
    gone = estep.Variant(**{**estep.VARIANTS["numba_ndk"].__dict__, "unavailable": "no numba"})
    monkeypatch.setitem(estep.VARIANTS, "numba_ndk", gone)
    df = timing.time_variant_grid("numba_ndk", X, [5, 10], [3], log=lambda m: None)
    assert (df["status"] == "unavailable").all() and len(df) == 2
    assert (df["reason"] == "no numba").all()


def test_prediction_scales_the_nearest_measured_point():
    measured = {(10, 5): 1.0, (100, 5): 4.0, (10, 10): 3.0}
    assert timing._predict({}, 5, 5) == 0.0
    assert timing._predict(measured, 1000, 5) == pytest.approx(40.0)  # from N=100, same K
    assert timing._predict(measured, 20, 10) == pytest.approx(6.0)  # from N=10, same K
    assert timing._predict(measured, 100, 20) == pytest.approx(16.0)  # same N, from K=5
    assert timing._predict(measured, 50, 20) == pytest.approx(3.0 * 5 * 2)  # both scaled


def test_float32_variant_is_checked_against_the_float64_reference(X):
    df = timing.time_variant_grid("matmul_fused_f32", X, [50], [4], repeats=1, log=lambda m: None)
    assert (df["dtype"] == "float32").all()
    assert 0 < df["max_abs_diff"].iloc[0] <= 1e-4


def test_summarise_reports_median_min_max_and_effective_speed():
    df = pd.DataFrame(
        {
            "variant": "v",
            "N": 10,
            "K": 2,
            "D": 784,
            "dtype": "float64",
            "status": ["ok", "ok", "ok", "skipped"],
            "seconds": [1.0, 3.0, 2.0, math.nan],
        }
    )
    s = timing.summarise(df)
    assert len(s) == 1
    row = s.iloc[0]
    assert (row["median_s"], row["min_s"], row["max_s"], row["repeats"]) == (2.0, 1.0, 3.0, 3)
    assert row["effective_gflops"] == pytest.approx(2 * 10 * 2 * 784 / 2.0 / 1e9)


def test_gemm_peak_is_the_best_rate_of_the_repeats():
    """2·n³ flops over the fastest of the timed products, on a fake clock: 0.5 s, 0.25 s and
    0.4 s give 2·256³ / 0.25 s (the warm-up product is not timed)."""
    ticks = iter([0.0, 0.5, 1.0, 1.25, 2.0, 2.4])
    peak = timing.gemm_peak(np.float64, n=256, repeats=3, clock=lambda: next(ticks))
    assert peak == pytest.approx(2 * 256**3 / 0.25 / 1e9, rel=1e-12)
    assert next(ticks, None) is None  # two clock readings per repeat, none for the warm-up
    assert math.isfinite(timing.gemm_peak(np.float32, n=64, repeats=1))  # runs for real


def test_bench_prints_ratios_side_by_side(capsys):
    assert (
        bench.main(
            [
                "--N",
                "40",
                "--K",
                "3",
                "--repeats",
                "2",
                "--idle",
                "0",
                "--variants",
                "loops_nk",
                "matmul",
                "matmul_fused",
                "--baseline",
                "loops_nk",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "N=40, K=3" in out
    lines = {line.split()[0]: line.split() for line in out.splitlines()[2:]}
    assert set(lines) == {"loops_nk", "matmul", "matmul_fused"}
    median = {name: float(cols[1]) for name, cols in lines.items()}
    for name, cols in lines.items():
        # each ratio is the baseline's (then matmul's) median over this variant's, as
        # printed: 4 and 3 significant digits, hence the tolerances
        assert float(cols[4]) == pytest.approx(median["loops_nk"] / median[name], rel=2e-3)
        assert float(cols[5]) == pytest.approx(median["matmul"] / median[name], rel=1e-2)
        # effective GFLOP/s: 2·N·K·D over the median (3 significant digits)
        assert float(cols[6]) == pytest.approx(2 * 40 * 3 * 784 / median[name] / 1e9, rel=1e-2)
    assert float(lines["matmul"][7]) > 0  # a peak memory was measured


def test_bench_rejects_unknown_variants_and_bad_sizes(capsys):
    assert bench.main(["--variants", "nope", "--N", "5"]) == 2
    assert "unknown E-step variant 'nope'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.main(["--N", "0"])


def test_bench_suite_reports_every_figure_as_json(capsys):
    """The suite end to end on small random data: it runs and reports each figure the
    README describes. Values are timings, so only their presence and sense are checked."""
    args = ["--suite", "--json", "--N", "300", "--Ks", "3", "6", "--repeats", "1", "--idle", "0"]
    assert bench.main(args) == 0
    out = json.loads(capsys.readouterr().out)
    summary = out["summary"]
    keys = {
        "speedup_vs_article_k3",
        "speedup_vs_article_k6",
        "peak_fraction_k3",
        "peak_fraction_k6",
        "packed_over_bare_k3",
        "packed_over_bare_k6",
        "em_iter_over_estep_k3",
        "em_iter_over_estep_k6",
        "peak_rss_mib_k6",
        "auto_over_fastest_k6",
        "loop_over_best_n300_k10",
        "simd_loop_over_blas_k3",
    }
    assert keys <= set(summary)
    assert all(math.isfinite(summary[k]) and summary[k] > 0 for k in keys)
    assert math.isfinite(summary["rss_growth_mib_per_million_k6"])
    assert summary["auto_choice_k3"] in auto.CANDIDATES
    assert summary["auto_choice_k6"] in auto.CANDIDATES
    for K in ("3", "6"):
        point = out["points"][K]
        assert set(point) == {
            bench.ARTICLE,
            *bench.SUITE_VARIANTS,
            "X @ W (float32)",
            "X @ W (float64)",
        }
        assert summary[f"fastest_k{K}"] in bench.SUITE_VARIANTS
    for K in ("3", "6"):  # the iteration of the fastest E-step's variant, past the start
        iteration = out["em_iteration"][K]
        assert iteration["variant"] in bench.SUITE_VARIANTS and iteration["fitted_after"] > 0
        assert iteration["ratio"] == iteration["iteration_s"] / iteration["estep_s"]
    assert out["peak_rss"]["K"] == 6 and out["peak_rss"]["N"] == 300
    assert out["peak_rss_repeated"]["N"] == 300 * bench.REPEAT_FOR_GROWTH
    assert set(out["gemm_peak_gflops"]) == {"float32", "float64"}


def test_bench_suite_prints_a_table_with_the_targets(capsys):
    assert bench.main(["--suite", "--N", "200", "--Ks", "4", "--repeats", "1", "--idle", "0"]) == 0
    out = capsys.readouterr().out
    assert "| matmul_as_published" in out and "| packed_lut" in out
    assert "One EM iteration of" in out and "Peak resident memory" in out
    assert "speedup_vs_article_k4" in out and ">= 25:" in out and "estep='auto' chose" in out


def test_a_variant_stops_when_its_total_budget_is_spent(X, monkeypatch):
    """A fake variant of known cost (1 ms per 10 image-components) on a fake clock: the first
    K is timed in full, whatever it costs; at the later K the points run in order of N, and
    the first one that would take the variant past its total budget is skipped with that
    reason, as is everything after it, except the largest N at the largest K, which the
    report's comparison reads: only the budget per point limits that one."""
    now = [0.0]

    def fake(X, pi, mu):
        now[0] += 1e-4 * len(X) * len(pi)
        return estep.matmul_fused(X, pi, mu)

    monkeypatch.setitem(estep.VARIANTS, "fake", estep.Variant("fake", fake, np.float64, "test"))
    df = timing.time_variant_grid(
        "fake",
        X,
        [10, 100, 400],
        [10, 20, 30],
        repeats=2,
        warmup=0,
        budget_s=5.0,
        variant_budget_s=0.3,
        log=lambda m: None,
        clock=lambda: now[0],
    )
    s = statuses(df)
    # K=10: 0.02 + 0.2 + 0.8 = 1.02 s, and N=400 alone predicted 0.4 s: over the budget, but
    # the first K is timed in full and not counted; K=20: N=10 (0.04 s) and N=100
    # (predicted 0.2 s, 0.4 s run) fit, N=400 (predicted 0.8 s) would take the total past
    # it; K=30: the budget is spent, but N=400 (predicted 1.2 s from K=10) runs all the same
    assert s == {
        (10, 10): ["ok"],
        (100, 10): ["ok"],
        (400, 10): ["ok"],
        (10, 20): ["ok"],
        (100, 20): ["ok"],
        (400, 20): ["skipped"],
        (10, 30): ["skipped"],
        (100, 30): ["skipped"],
        (400, 30): ["ok"],
    }
    skipped = df[df["status"] == "skipped"].iloc[0]
    assert skipped["predicted_s"] == pytest.approx(0.8)
    assert "the variant's budget of 0.3 s is spent (0.44 s used)" in skipped["reason"]
    ok = df[df["status"] == "ok"]
    assert ok.groupby(["N", "K"])["seconds"].first().to_dict() == pytest.approx(
        {
            (10, 10): 0.01,
            (100, 10): 0.1,
            (400, 10): 0.4,
            (10, 20): 0.02,
            (100, 20): 0.2,
            (400, 30): 1.2,
        }
    )


def test_bench_online_compares_stepwise_em_with_the_batch_fit(synthetic_mnist, capsys):
    args = ["--online", "--data", str(synthetic_mnist.dir), "--K", "5", "--batch", "100"]
    assert bench.main(args) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("| start | fit | test log-lik/image |")
    fits = [line.split(" | ")[:2] for line in lines[2:]]
    assert fits == [
        [f"| {init}", fit]
        for init in ("random", "k-means++")
        for fit in ("batch EM", "online, 1 pass", "online, 2 passes")
    ]
    with pytest.raises(SystemExit):  # no data to run on
        bench.main(["--online", "--K", "5"])


# ---------------------------------------------------------------------------------------
# Several data sets: what is timed where, and the bare product as the yardstick


def test_the_first_set_times_every_variant_the_others_those_whose_cost_depends_on_the_data():
    every = list(estep.VARIANTS)
    assert timing.variants_for(every, first=True) == [*every, timing.BARE_PRODUCT]
    assert timing.variants_for(every, first=False) == [
        "matmul_as_published",  # the article's three lines, as the ratios' denominator
        "numba_ndk",  # a branch a pixel
        "packed_lut",  # a table row per non-zero nibble
        timing.BARE_PRODUCT,
    ]
    # only what timing.variants lists, in its order; the yardstick always
    assert timing.variants_for(["matmul", "packed_lut"], first=False) == [
        "packed_lut",
        timing.BARE_PRODUCT,
    ]
    assert "first data set" in timing.why_timed(True)
    assert "cost the same whatever the pixels hold" in timing.why_timed(False)


def test_the_bare_product_is_timed_as_X_at_W_alone_and_not_checked(X, monkeypatch):
    """The yardstick times np.matmul of the float32 data and the float32 log-odds, made
    before the clock starts; its output is not responsibilities, so max_abs_diff is NaN."""
    calls = []
    real = np.matmul

    def spy(a, b, *args, **kwargs):
        calls.append((a.dtype, b.dtype, a.shape, b.shape))
        return real(a, b, *args, **kwargs)

    monkeypatch.setattr(np, "matmul", spy)
    df = timing.time_variant_grid(
        timing.BARE_PRODUCT, X, [20, 400], [3], repeats=2, warmup=0, log=lambda m: None
    )
    monkeypatch.setattr(np, "matmul", real)
    ok = df[df["status"] == "ok"]
    assert len(ok) == 4 and ok["max_abs_diff"].isna().all()
    assert set(df["dtype"]) == {"float32"}
    assert calls == [
        (np.float32, np.float32, (20, 784), (784, 3)),
        (np.float32, np.float32, (20, 784), (784, 3)),
        (np.float32, np.float32, (400, 784), (784, 3)),
        (np.float32, np.float32, (400, 784), (784, 3)),
    ]
    pi, mu = timing.article_parameters(3, 784, 0)
    product = timing._bind(timing._BareProduct(), X[:20].astype(np.float32), pi, mu)()
    expected = X[:20] @ (np.log(mu) - np.log1p(-mu)).T
    np.testing.assert_allclose(product, expected, rtol=1e-5)


def test_timings_of_several_sets_are_summarised_per_set(X):
    one = timing.time_variant_grid("matmul", X, [20], [3], repeats=2, log=lambda m: None)
    both = pd.concat([one.assign(dataset="a"), one.assign(dataset="b", seconds=1.0)])
    s = timing.summarise(both).set_index("dataset")
    assert s.loc["b", "median_s"] == 1.0 and s.loc["a", "median_s"] == one["seconds"].median()
