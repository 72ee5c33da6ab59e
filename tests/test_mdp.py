"""MDP validation: every constructed case over three seeds, CartPole, offline data and bad input."""
import numpy as np
import pytest
import gymnasium as gym
from gymnasium import spaces

from nasrec_lit.rl.mdp import (SUITE, check_mdp, MDPCheckConfig, MDPError, Transitions, collect_transitions)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("env_id", list(SUITE))
def test_constructed_suite(env_id, seed):
    _, expected, why = SUITE[env_id]
    r = check_mdp(env_id, MDPCheckConfig(steps=8000, seed=seed))
    assert r.valid == expected and why in r.verdict, (r.verdict, r.table.to_string())


def test_cartpole_velocity_most_sensitive():
    r = check_mdp("CartPole-v1", MDPCheckConfig(steps=10_000, seed=1))
    assert r.valid and r.table.sensitivity.idxmax() in (1, 3), r.table.to_string()


def test_offline_transitions_give_the_same_verdict():
    tr = collect_transitions("nasrec_lit/DisjointFeatures-v0", steps=6000, seed=3)
    off = Transitions.from_arrays(tr.obs, tr.action, tr.reward, tr.next_obs, tr.terminated, tr.truncated)
    r = check_mdp(off, MDPCheckConfig(seed=3))
    assert not r.valid and "do not predict reward" in r.verdict


class _BoxActions(gym.Env):
    observation_space = spaces.Box(-1, 1, (2,)); action_space = spaces.Box(-1, 1, (1,))
    def reset(self, *, seed=None, options=None): return np.zeros(2, np.float32), {}
    def step(self, a): return np.zeros(2, np.float32), 0.0, False, False, {}


class _TupleObs(_BoxActions):
    observation_space = spaces.Tuple([spaces.Discrete(2), spaces.Discrete(3)]); action_space = spaces.Discrete(2)


def test_bad_inputs():
    with pytest.raises(MDPError, match="only Discrete actions"): collect_transitions(_BoxActions(), 1000)
    with pytest.raises(MDPError, match="observation space"): collect_transitions(_TupleObs(), 1000)
    with pytest.raises(MDPError, match="too few"): collect_transitions("CartPole-v1", 100)
    with pytest.raises(MDPError, match="unknown environment"): check_mdp("NoSuchEnv-v9")
    with pytest.raises(MDPError, match="cannot load environment"): check_mdp("nasrec_lit.nothing:Env")
    with pytest.raises(MDPError, match="'os:path' is a module, not a gymnasium.Env"): check_mdp("os:path")   # was "unknown environment <module ...>"
    with pytest.raises(MDPError, match="made a OrderedDict, not a gymnasium.Env"): check_mdp("collections:OrderedDict")
    s = np.zeros((600, 2))
    with pytest.raises(MDPError, match="next_state"): Transitions.from_arrays(s, np.zeros(600), np.zeros(600), s[:10])
    with pytest.raises(MDPError, match="discrete"): Transitions.from_arrays(s, np.full(600, 0.5), np.zeros(600), s)
    bad = s.copy(); bad[7, 1] = np.nan
    with pytest.raises(MDPError, match="state: contains NaN or inf at row 7"): Transitions.from_arrays(bad, np.zeros(600), np.zeros(600), s)
    with pytest.raises(MDPError, match="too few"): check_mdp(Transitions.from_arrays(s[:100], np.zeros(100), np.zeros(100), s[:100]))


def test_discrete_observations_one_hot():
    tr = collect_transitions("FrozenLake-v1", steps=600, seed=0)
    assert tr.obs.shape[1] == 16 and set(np.unique(tr.obs)) == {0.0, 1.0} and tr.feature_names[0] == "state=0"
