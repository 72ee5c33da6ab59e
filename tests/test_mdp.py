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


@pytest.mark.parametrize("suffix", [".npz", ".csv", ".parquet"])
def test_logged_transitions_from_a_file(tmp_path, suffix):
    """`Transitions.to_file`/`from_file` round-trip every array; `mdp-check --transitions FILE` gives the verdict of
    the same transitions in memory; a malformed file is a one-line error naming the file and the array, column or line."""
    import subprocess, sys
    from pathlib import Path
    tr = collect_transitions("nasrec_lit/DisjointFeatures-v0", steps=6000, seed=3)
    f = tmp_path / f"log{suffix}"; tr.to_file(f); back = Transitions.from_file(f)
    for k in ("obs", "next_obs", "reward"): assert np.allclose(getattr(back, k), getattr(tr, k)), k
    for k in ("action", "terminated", "truncated", "episode"): assert np.array_equal(getattr(back, k), getattr(tr, k)), k
    assert back.feature_names == tr.feature_names and back.n_actions == tr.n_actions
    cli = [str(Path(sys.executable).parent / "nasrec-lit"), "mdp-check", "--seed", "3"]
    r = subprocess.run(cli + ["--transitions", str(f)], capture_output=True, text=True)
    mem = check_mdp(tr, MDPCheckConfig(seed=3))                # the same transitions, in memory
    assert r.returncode == 1 and not mem.valid and "do not predict reward" in mem.verdict and "do not predict reward" in r.stdout, r.stdout + r.stderr
    if suffix == ".npz":
        np.savez(tmp_path / "short.npz", state=tr.obs, action=tr.action)
        with pytest.raises(MDPError, match=r"short.npz: missing array\(s\) \['reward'\]"): Transitions.from_file(tmp_path / "short.npz")
        (tmp_path / "fake.npz").write_text("not a zip")
        with pytest.raises(MDPError, match="fake.npz: not a valid .npz file"): Transitions.from_file(tmp_path / "fake.npz")
        np.savez(tmp_path / "ragged.npz", state=tr.obs, action=tr.action, reward=tr.reward, next_state=tr.next_obs, episode=tr.episode[:10])
        with pytest.raises(MDPError, match=r"ragged.npz: episode: shape \(10,\)"): Transitions.from_file(tmp_path / "ragged.npz")
    if suffix == ".csv":
        lines = f.read_text().splitlines(); cells = lines[3].split(","); cells[0] = "abc"; lines[3] = ",".join(cells)
        (tmp_path / "bad.csv").write_text("\n".join(lines) + "\n")
        r = subprocess.run(cli + ["--transitions", str(tmp_path / "bad.csv")], capture_output=True, text=True)
        assert r.returncode == 2 and "bad.csv: column state.s0, line 4: 'abc' is not a finite number" in r.stderr.replace("\n", "") \
            and len(r.stderr.strip().splitlines()) == 1, r.stderr
        head = lines[0].replace("next_state.s0,", "nxt.s0,"); (tmp_path / "cols.csv").write_text("\n".join([head] + lines[1:]) + "\n")
        with pytest.raises(MDPError, match=r"cols.csv: missing column\(s\) \['next_state.s0'\]"): Transitions.from_file(tmp_path / "cols.csv")
        with pytest.raises(MDPError, match="unknown format '.json'"): Transitions.from_file(f.rename(tmp_path / "log.json"))
        r = subprocess.run(cli + ["CartPole-v1", "--transitions", str(tmp_path / "log.json")], capture_output=True, text=True)
        assert r.returncode == 2 and "not both or neither" in r.stderr, r.stderr


def test_a_log_of_states_alone(tmp_path):
    """A log without next states (a table without `next_state.<f>` columns, an `.npz` without `next_state`): each
    step's next state is the next row's state in its episode, and the last step of an episode has none. Only that
    step's k-step targets are masked; its reward still counts. Rows of interleaved episodes are grouped by episode;
    a step marked terminated ends its episode even within one `episode` id; a missing next state elsewhere is an error."""
    import pandas as pd, subprocess, sys, warnings
    from pathlib import Path
    from nasrec_lit.rl.mdp import kstep_targets, returns_to_go
    tr = collect_transitions("nasrec_lit/LineWorld-v0", steps=3000, seed=1)
    tr.to_file(tmp_path / "full.csv"); df = pd.read_csv(tmp_path / "full.csv")
    df.drop(columns=[c for c in df.columns if c.startswith("next_state.")]).to_csv(tmp_path / "states.csv", index=False)
    with pytest.warns(UserWarning, match="states.csv: no next states"): st = Transitions.from_file(tmp_path / "states.csv")
    last = np.append(tr.episode[1:] != tr.episode[:-1], True)                    # each episode's last step
    assert np.isnan(st.next_obs[last]).all() and np.allclose(st.next_obs[~last], tr.next_obs[~last])
    for k in ("episode", "terminated", "truncated", "action"): assert np.array_equal(getattr(st, k), getattr(tr, k)), k
    (Y, M), (Y0, M0) = kstep_targets(st, 3), kstep_targets(tr, 3)
    lost = np.stack([np.append(last[j:], np.zeros(j, bool)) for j in range(3)], 1)     # target j+1 of step t is step t+j's next state
    assert M0[last, 0].all() and not M[last].any() and np.array_equal(M, M0 & ~lost) and np.allclose(Y[M], Y0[M])
    assert all(np.array_equal(a, b) for a, b in zip(returns_to_go(st), returns_to_go(tr)))   # the rewards are all kept
    rep, rep0 = check_mdp(st, MDPCheckConfig(seed=1)), check_mdp(tr, MDPCheckConfig(seed=1))
    assert rep.valid and rep0.valid and rep.verdict == rep0.verdict, (rep.verdict, rep0.verdict)
    exe = str(Path(sys.executable).parent / "nasrec-lit")
    r = subprocess.run([exe, "mdp-check", "--seed", "1", "--transitions", str(tmp_path / "states.csv")], capture_output=True, text=True)
    assert r.returncode == 0 and "note: " in r.stdout and "no next states" in r.stdout and "verdict: " + rep.verdict[:30] in r.stdout, r.stdout + r.stderr
    # a log sorted by time across episodes: each episode's i-th step, then the next episode's i-th step, ...
    step = df.groupby("episode").cumcount().to_numpy(); mixed = df.iloc[np.lexsort((df["episode"], step))]
    mixed.to_csv(tmp_path / "mixed.csv", index=False)
    with pytest.warns(UserWarning, match=r"rows of \d+ episode\(s\) are interleaved"): back = Transitions.from_file(tmp_path / "mixed.csv")
    assert np.allclose(back.obs, tr.obs) and np.allclose(back.next_obs, tr.next_obs) and np.array_equal(back.episode, tr.episode)
    # one episode id for the whole log: the terminated and truncated flags still end episodes
    np.savez(tmp_path / "one_id.npz", state=tr.obs, action=tr.action, reward=tr.reward, terminated=tr.terminated,
             truncated=tr.truncated, episode=np.zeros(len(tr)))
    with warnings.catch_warnings(): warnings.simplefilter("ignore"); one = Transitions.from_file(tmp_path / "one_id.npz")
    assert np.array_equal(one.episode, tr.episode) and np.isnan(one.next_obs[last]).all()
    # a next state missing inside an episode is an error naming the row; at an episode's end it is accepted
    gap = df.copy(); inner = int(np.flatnonzero(~last)[5]); gap.loc[inner, "next_state.s0"] = np.nan; gap.to_csv(tmp_path / "gap.csv", index=False)
    with pytest.raises(MDPError, match=rf"gap.csv: next_state: missing \(NaN\) at row {inner}, which is not the last step"): Transitions.from_file(tmp_path / "gap.csv")
    end = df.copy(); end.loc[np.flatnonzero(last), "next_state.s0"] = np.nan; end.to_csv(tmp_path / "end.csv", index=False)
    assert np.array_equal(kstep_targets(Transitions.from_file(tmp_path / "end.csv"), 3)[1], M)
    end.loc[3, "next_state.s0"] = np.inf; end.to_csv(tmp_path / "inf.csv", index=False)
    with pytest.raises(MDPError, match="column next_state.s0, line 5: inf is not a finite number"): Transitions.from_file(tmp_path / "inf.csv")


class _BoxActions(gym.Env):
    observation_space = spaces.Box(-1, 1, (2,)); action_space = spaces.Box(-1, 1, (1,))
    def reset(self, *, seed=None, options=None): return np.zeros(2, np.float32), {}
    def step(self, a): return np.zeros(2, np.float32), 0.0, False, False, {}


class _TextObs(_BoxActions):
    observation_space = spaces.Text(5); action_space = spaces.Discrete(2)


def test_bad_inputs():
    with pytest.raises(MDPError, match="only Discrete actions"): collect_transitions(_BoxActions(), 1000)
    with pytest.raises(MDPError, match="observation space Text.* is not supported"): collect_transitions(_TextObs(), 1000)
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


def test_tuple_observations_through_gymnasium_flatten():
    """Tuple, Dict and MultiDiscrete observations are laid out by gymnasium's `flatten`, each component named (they
    were refused before 2026-11-30). Blackjack: the player's sum, the dealer's card, the usable ace, all one-hot."""
    tr = collect_transitions("Blackjack-v1", steps=600, seed=0)
    assert tr.obs.shape[1] == 32 + 11 + 2 and tr.feature_names[:2] == ["s0=0", "s0=1"] and tr.feature_names[-1] == "s2=1"
    assert (tr.obs.sum(1) == 3).all()                       # one category of each of the three parts
    from nasrec_lit.rl.mdp import observation_encoder
    enc, names = observation_encoder(spaces.Dict({"pos": spaces.Box(0, 1, (2,)), "mode": spaces.Discrete(2)}))
    assert names == ["mode=0", "mode=1", "pos.0", "pos.1"] and enc({"pos": np.array([0.5, 0.25]), "mode": 1}).tolist() == [0, 1, 0.5, 0.25]
    assert observation_encoder(spaces.MultiDiscrete([2, 3]))[1] == ["s0=0", "s0=1", "s1=0", "s1=1", "s1=2"]
    import matplotlib; matplotlib.use("Agg")
    from nasrec_lit.rl.mdp import plot_report
    axes = plot_report(check_mdp(tr, MDPCheckConfig(seed=0)))        # 45 labels: a wider figure, upright small labels
    assert axes[0].figure.get_figwidth() >= 0.3 * 45 and axes[0].get_xticklabels()[0].get_fontsize() == 6


def test_a_feature_fixed_for_a_whole_episode_is_not_action_sensitive():
    """Blackjack's dealer card is dealt at the start of a hand and never changes in it. Both dynamics models then predict a
    zero change, and their differences (~1e-10) are float noise: the permutation comparison alone called 10 of the 11
    dealer-card columns action-sensitive (and two of them 'action-sensitive and reward-predictive' in the verdict)."""
    rep = check_mdp("Blackjack-v1", MDPCheckConfig(steps=5000, seed=0))
    t = rep.table.set_index("feature"); dealer = [f"s1={i}" for i in range(11)]
    assert not t.loc[dealer, "sensitive"].any(), t.loc[dealer]
    assert t.loc[dealer[1:], "static"].all() and t.loc["s1=0", "constant"]      # no 0 card is ever dealt
    assert "s1=" not in rep.verdict and rep.valid                                 # still valid: the player's sum moves and pays
    assert t.loc[[f"s0={i}" for i in range(12, 21)], "sensitive"].all() and not t.loc[[f"s0={i}" for i in range(12, 21)], "static"].any()


def test_a_reward_without_signal_is_named_as_such():
    """MountainCar under a random policy: every return-to-go is the same, so no feature can predict it. The verdict
    says that the data carry no reward signal (it said 'no feature is reward-predictive', as if the state were at fault)."""
    rng = np.random.default_rng(0); s = rng.normal(size=(2000, 2)).astype(np.float32); a = rng.integers(0, 2, 2000)
    ns = s + 0.5 * (a[:, None] - 0.5); ep = np.arange(2000) // 200
    done = np.r_[ep[1:] != ep[:-1], True]
    tr = Transitions.from_arrays(s, a, np.full(2000, -1.0), ns, truncated=done, episode=ep)
    r = check_mdp(tr, MDPCheckConfig(seed=0))
    assert not r.valid and "the reward carries no signal in these 2000 transitions" in r.verdict and f"is {-(1 - 0.9 ** 30) / 0.1:.4g})" in r.verdict, r.verdict
    assert not r.table.predictive.any()


def test_cli_discretize_wraps_continuous_actions_only():
    """`--discretize N` makes Pendulum's torque N levels; on a discrete action space it is a one-line error (a TypeError
    traceback from gymnasium before 2026-12-01), and N < 2 is refused by the option."""
    import subprocess, sys
    from pathlib import Path
    cli = [str(Path(sys.executable).with_name("nasrec-lit")), "mdp-check"]
    r = subprocess.run(cli + ["Pendulum-v1", "--discretize", "3", "--steps", "2000"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "verdict:" in r.stdout, r.stderr[-500:]
    r = subprocess.run(cli + ["CartPole-v1", "--discretize", "3"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "--discretize wraps continuous (Box) actions; CartPole-v1's action space is Discrete(2)" in r.stderr, r.stderr[-500:]
    assert "Traceback" not in r.stderr
    r = subprocess.run(cli + ["Pendulum-v1", "--discretize", "1"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "Invalid value for '--discretize'" in r.stderr
