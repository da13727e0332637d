"""bmm.auto: estep="auto" chooses the fastest stable variant by a timed trial, keeps the choice
per machine and problem bucket, and makes none for small problems."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bmm import BernoulliMixture, auto
from bmm.bits import BitMatrix
from bmm.estep import VARIANTS

FAKE_SECONDS = {"packed_lut": 3.0, "numba_simd": 2.0, "matmul_fused_f32": 1.0, "matmul_fused": 4.0}


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BMM_CACHE_DIR", str(tmp_path))
    return tmp_path / "auto.json"


@pytest.fixture
def trials(monkeypatch):
    """auto.trial replaced by one that records its calls and reports FAKE_SECONDS."""
    calls = []

    def fake(sample, n_components, names, clock=None):
        calls.append((len(sample), n_components, tuple(names)))
        return {name: FAKE_SECONDS[name] for name in names}

    monkeypatch.setattr(auto, "trial", fake)
    return calls


def big(seed=0, N=6000, D=784, density=0.13):
    return np.random.default_rng(seed).random((N, D)) < density


def test_a_small_problem_takes_the_first_candidate_without_a_trial(cache, trials):
    X = big(N=100, D=50)
    assert auto.choose(X, 10) == auto.available()[0]
    assert trials == [] and not cache.exists()


def test_the_fastest_candidate_wins_and_is_kept(cache, trials):
    X = big()
    assert auto.choose(X, 10) == "matmul_fused_f32"
    assert trials == [(4096, 10, tuple(auto.available()))]  # the first block of rows
    assert auto.choose(X, 10) == "matmul_fused_f32" and len(trials) == 1  # kept: no new trial
    assert auto.choose(BitMatrix.pack(X), 10) == "matmul_fused_f32" and len(trials) == 1
    kept = json.loads(cache.read_text())
    (machine,) = kept
    assert kept[machine]["K=10 D=784 ones=0.15"]["choice"] == "matmul_fused_f32"
    # another K, another density: their own trials
    auto.choose(X, 20)
    auto.choose(big(density=0.4), 10)
    assert len(trials) == 3 and len(json.loads(cache.read_text())[machine]) == 3


def test_a_near_tie_goes_to_the_preferred_candidate():
    order = list(auto.CANDIDATES)
    assert auto.pick({n: 1.0 for n in order}, order) == order[0]
    seconds = {order[0]: 1.09, order[1]: 1.0, order[2]: 2.0, order[3]: 2.0}
    assert auto.pick(seconds, order) == order[0]  # within 10 %
    seconds[order[0]] = 1.11
    assert auto.pick(seconds, order) == order[1]


def test_an_unwritable_cache_still_chooses(tmp_path, monkeypatch, trials):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("BMM_CACHE_DIR", str(blocker / "sub"))  # under a file: cannot exist
    assert auto.choose(big(), 10) == "matmul_fused_f32"
    assert auto.choose(big(), 10) == "matmul_fused_f32" and len(trials) == 2  # nothing kept


def test_a_real_trial_times_every_candidate_on_one_pass(cache):
    X = big(N=800, D=64)
    seconds = auto.trial(X, 5, auto.available())
    assert set(seconds) == set(auto.available())
    assert all(0 < s < 10 for s in seconds.values())


def test_the_fit_records_what_auto_chose(cache, trials):
    model = BernoulliMixture(10, max_iter=2, tol=0, random_state=0)
    with pytest.warns(match="without converging"):
        model.fit(big(N=6000))
    assert model.estep == "auto" and model.estep_ == "matmul_fused_f32"
    assert VARIANTS[model.estep_].stable
