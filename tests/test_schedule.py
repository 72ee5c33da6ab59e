"Best-time scheduling (nbs/41_schedule.ipynb): time safety, the Ray path, bad input, and properties of the policy and the capacity LP."
import os

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

os.environ.setdefault("NASREC_LIT_PROGRESS", "0")
from nasrec_lit.schedule import (SLOTS, BestTimePolicy, BestTimeRanker, Events, RankerConfig, ScheduleError, assign_capacity,
                                 baseline_scores, choose_slots, evaluate_choice, hash_uniform, population_profile, read_events,
                                 simulate, slot_labels, user_state, window_mask)


@pytest.fixture(scope="module")
def sim():
    return simulate(users=400, weeks=5, seed=7)


def test_leak_is_seen_when_features_read_the_future(sim):
    "Features from events up to the end of the label week (the rule broken on purpose) make the same rule look far better."
    T, H = sim.decision, 3
    Y = slot_labels(sim.events, sim.users, T, H)
    active = Y.sum(1) > 0
    pol = BestTimePolicy()
    def hit(state):
        S = baseline_scores("modal", state, population_profile(state, H), H)
        run, _ = pol.choose(S, keys=sim.users)
        return evaluate_choice(pol, S, run, labels=Y)["hit"][active].mean()
    honest = hit(user_state(sim.events, sim.users, T))
    leaky = hit(user_state(sim.events, sim.users, T, cutoff=T + 7 * 86400))
    assert leaky > honest + 0.25, (honest, leaky)           # a leak shows as an implausible jump
    assert honest < 0.5


@settings(max_examples=20, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 399), st.integers(0, 3 * 7 * 86400), st.integers(0, 2)), min_size=1, max_size=50))
def test_future_events_never_change_features(sim, extra):
    "Any events at or after the decision time leave the state (features) unchanged."
    T = sim.decision; ev = sim.events
    u, t, s = (np.array(x) for x in zip(*extra))
    more = Events(np.r_[ev.user, u], np.r_[ev.time, T + t], np.r_[ev.stream, s], ev.streams, ev.tz)
    a, b = user_state(ev, sim.users, T), user_state(more, sim.users, T)
    assert np.array_equal(a.hist, b.hist) and np.array_equal(a.count, b.count) and np.array_equal(a.recency, b.recency)


@pytest.mark.parametrize("body,where", [
    ("user_id,timestamp\n1,1709561700\n2,2024-13-45T99:00\n", "ev.csv:3: timestamp '2024-13-45T99:00'"),
    ("user_id,timestamp\n1,1709561700\n1,1709561800\n-7,1709561700\n", "ev.csv:4: user_id -7 is negative"),
    ("user_id,timestamp\n1.5,1709561700\n", "ev.csv:2: user_id '1.5' is not an integer"),
    ("user_id,timestamp,tz_offset\n1,1709561700,+30\n", "ev.csv:2: tz_offset '+30'"),
    ("user_id,timestamp\n", "ev.csv: no events"),
])
def test_bad_events_file_names_the_line(tmp_path, body, where):
    p = tmp_path / "ev.csv"; p.write_text(body)
    with pytest.raises(ScheduleError) as e: read_events(p)
    assert where in str(e.value), e.value


@pytest.mark.parametrize("spec", ["09:00-09:30", "23:15-00:10", "12-12"])
def test_window_shorter_than_a_slot_is_refused(spec):
    with pytest.raises(ScheduleError, match="shorter than one slot"): window_mask(spec)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 23), st.integers(1, 24), st.integers(0, 167), st.floats(0, 1), st.integers(0, 2**31))
def test_policy_stays_in_window(start, length, lead, eps, seed):
    win = window_mask(f"{start}-{(start + length) % 24}" if length < 24 else "all")
    pol = BestTimePolicy(window=win, lead=lead, epsilon=eps, seed=seed)
    S = np.random.default_rng(seed).random((50, SLOTS))
    run, how = pol.choose(S, n_events=np.arange(50) % 3, population=S[0])
    assert win[run].all()
    model = how == 0                     # where the model chose, it took the best allowed run slot
    R = pol.run_scores(S)
    assert np.allclose(R[np.arange(50), run][model], R.max(1)[model])


def test_hash_uniform_is_uniform_and_per_key():
    u = hash_uniform(np.arange(20000), 3, 4)
    assert u.min() >= 0 and u.max() < 1 and abs(u.mean() - 0.5) < 0.01
    assert np.array_equal(hash_uniform(np.array([5, 9]), 3, 4), u[[5, 9]])   # a key's draw does not depend on the batch


@settings(max_examples=15, deadline=None)
@given(st.integers(1, 12), st.integers(1, 4), st.integers(0, 2**31))
def test_capacity_lp_is_optimal_and_feasible(n_jobs, cap, seed):
    "On small instances the LP's value equals an exact assignment (slots copied `cap` times), and no slot is over capacity."
    from scipy.optimize import linear_sum_assignment
    rng = np.random.default_rng(seed)
    V = rng.random((n_jobs, SLOTS)); allowed = rng.random((n_jobs, SLOTS)) < 0.05
    allowed[np.arange(n_jobs), rng.integers(0, SLOTS, n_jobs)] = True
    a = assign_capacity(V, allowed, cap, top=SLOTS)
    assert a["load"].max() <= cap and all(allowed[i, s] for i, s in enumerate(a["slot"]) if s >= 0)
    W = np.repeat(np.where(allowed, V + 10, 0.0), cap, axis=1)          # +10: running a job first, as the LP's first phase
    r, c = linear_sum_assignment(W, maximize=True)
    ok = W[r, c] > 0
    assert int(ok.sum()) == n_jobs - a["dropped"]
    assert abs((W[r, c][ok] - 10).sum() - a["value"].sum()) < 1e-6


def test_ray_data_path_chooses_the_same_slots(sim):
    "choose_slots on a local Ray (a Ray Data map_batches job) returns what the in-process path returns."
    pytest.importorskip("ray")
    T = sim.decision
    ranker = BestTimeRanker(RankerConfig(epochs=1, train_weeks=2)).fit(sim.events, sim.users, T)
    state = user_state(sim.events, sim.users, T)
    pol = BestTimePolicy(window=window_mask("08:00-22:00"), lead=1, epsilon=0.1, seed=3)
    local = choose_slots(ranker, state, pol, block=128)
    on_ray = choose_slots(ranker, state, pol, block=100, ray="auto", workers=2)
    assert np.array_equal(local["slot"], on_ray["slot"]) and np.array_equal(local["how"], on_ray["how"])
    assert np.allclose(local["score"], on_ray["score"], atol=1e-6)
