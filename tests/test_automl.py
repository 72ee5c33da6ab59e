"""The AutoML searcher (nas.automl): the pairwise loss, the policy, the ROI constraint, SIGKILL and resume, the CLI."""
import json, os, subprocess, sys, textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import sigkill_when
from nasrec_lit.nas.space import SpaceConfig
from nasrec_lit.nas.search import Objective, run_search, make_searcher, TrialResult
from nasrec_lit.nas.automl import HyperSpace, ChoicePolicy, pairwise_loss, roi_reward, fit_predictor

CLI = str(Path(sys.executable).parent / "nasrec-lit")
SCHEMA = dict(dense_names=[], sparse_names=[f"s{i}" for i in range(10)], cardinalities=[1000] * 10)


def _ledger(path):
    if not path.exists(): return []
    return [json.loads(l) for l in path.read_text().splitlines() if l.strip().endswith("}")]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pairwise_loss_orders_a_separable_set(seed):
    "A linear scorer trained only with the pairwise loss recovers the order of a linearly separable set."
    from scipy.stats import kendalltau
    g = torch.Generator().manual_seed(seed); x = torch.randn(60, 5, generator=g); y = x @ torch.randn(5, generator=g)
    torch.manual_seed(seed); lin = torch.nn.Linear(5, 1); opt = torch.optim.Adam(lin.parameters(), 0.05)
    for _ in range(400): opt.zero_grad(); pairwise_loss(lin(x)[:, 0], y).backward(); opt.step()
    assert kendalltau(lin(x)[:, 0].detach(), y)[0] > 0.95
    assert float(pairwise_loss(y.clone(), y)) < float(pairwise_loss(-y, y))      # the right order costs less than the reverse


def test_pairwise_loss_ignores_ties_and_weighs_pairs():
    y = torch.tensor([1.0, 1.0]); assert float(pairwise_loss(torch.tensor([0.0, 5.0]), y)) == 0.0
    s, y = torch.tensor([0.0, 1.0, 2.0]), torch.tensor([2.0, 1.0, 0.0])       # every pair reversed
    w = torch.tensor([1.0, 1.0, 0.0])                                          # only the pair (0, 1) counts
    assert abs(float(pairwise_loss(s, y, w)) - float(torch.nn.functional.softplus(torch.tensor(1.0)))) < 1e-6


def test_policy_moves_toward_a_rewarded_choice():
    hs = HyperSpace(SpaceConfig.cpu()); pol, rng = ChoicePolicy(lr=0.5), np.random.default_rng(0)
    target = list(hs.menu["lr"]).index(1e-3)
    before = pol.probs("hp.lr", 3)[target] if "hp.lr" in pol.logits else 1 / 3
    for _ in range(30):
        draws = [pol.sample(hs, rng) for _ in range(32)]
        pol.update([d for _, d in draws], [float(dict(a.hp)["lr"] == 1e-3) for a, _ in draws])
    assert pol.probs("hp.lr", 3)[target] > 0.8 > before
    s = pol.state_dict(); p2 = ChoicePolicy(); p2.load_state_dict(json.loads(json.dumps(s)))
    assert np.allclose(p2.probs("hp.lr", 3), pol.probs("hp.lr", 3))


def test_roi_constraint_rejects_over_budget_proposals():
    r = roi_reward([0.40, 0.49], [5e6, 1e6], ref_ne=0.5, ref_flops=1e6, budget=2e6)
    assert np.isnan(r[0]) and r[1] > 0                      # 20% better NE, still rejected: over budget
    # the searcher proposes nothing over the budget, even where the landscape rewards size
    hs = HyperSpace(SpaceConfig.cpu(), dense_features=False)
    class D:
        def schema(self): return SCHEMA
    flops = lambda a: hs.cost(a, SCHEMA)["flops"]
    rng = np.random.default_rng(0); bound = float(np.median([flops(hs.canonical(hs.sample(rng))) for _ in range(100)]))
    land = lambda a: TrialResult({"label": 1.0 / (1.0 + flops(a) / 1e6)}, hs.cost(a, SCHEMA))     # bigger is better
    obj = Objective(metrics=("label",), constraints=(f"flops<={bound}",))
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        recs = run_search(make_searcher("automl", hs, obj, 0, data=D(), warmup=6, batch=4, policy_steps=5, proposals=32, predictor=dict(steps=100, members=3)), land, tmp, 22, objective=obj)
    assert all(r["cost"]["flops"] <= bound for r in recs)
    assert obj.best(recs)["cost"]["flops"] > np.median([r["cost"]["flops"] for r in recs[:6]])   # it did go for size, within the bound


def test_predictor_is_deterministic_and_reports_spread():
    rng = np.random.default_rng(0); X = rng.random((20, 6)).astype(np.float32); y = X @ rng.normal(size=6); f = 1e5 * (1 + X[:, 0])
    p1 = fit_predictor(X, y, f).predict(X); p2 = fit_predictor(X, y, f).predict(X)
    assert np.allclose(p1["ne"], p2["ne"]) and (p1["ne_std"] > 0).all()
    with pytest.raises(Exception, match="at least 2"): fit_predictor(X[:1], y[:1], f[:1])


SCRIPT = textwrap.dedent("""
    import sys, time, numpy as np
    from nasrec_lit.nas.space import SpaceConfig
    from nasrec_lit.nas.search import Objective, run_search, make_searcher, TrialResult
    from nasrec_lit.nas.automl import HyperSpace
    SCHEMA = dict(dense_names=[], sparse_names=[f"s{i}" for i in range(10)], cardinalities=[1000] * 10)
    hs = HyperSpace(SpaceConfig.cpu(), dense_features=False); w = np.random.default_rng(7).normal(size=len(hs.encode(hs.sample(np.random.default_rng(0)))))
    class D:
        def schema(self): return SCHEMA
    def land(a):
        time.sleep(float(sys.argv[2])); return TrialResult({"label": float(0.5 + 0.01 * hs.encode(a) @ w)}, hs.cost(a, SCHEMA))
    obj = Objective(metrics=("label",))
    run_search(make_searcher("automl", hs, obj, 3, data=D(), warmup=6, batch=4, policy_steps=4, proposals=32, predictor=dict(steps=100, members=3)), land, sys.argv[1], 24, objective=obj)
""")


def test_sigkill_mid_search_then_resume_gives_every_trial_once(tmp_path):
    """Killed after 13 trials (mid-round: its predictor and policy have run), resumed: every trial once, and the same
    trials in the same order as a search that was never interrupted (the state and the refit predictor replay)."""
    (tmp_path / "s.py").write_text(SCRIPT); env = dict(os.environ, NASREC_LIT_PROGRESS="0")
    cmd = lambda d, sleep: [sys.executable, str(tmp_path / "s.py"), str(tmp_path / d), sleep]
    sigkill_when(cmd("kill", "0.3"), env, lambda: len(_ledger(tmp_path / "kill" / "trials.jsonl")) >= 13, "13 trials", poll=0.05)
    before = _ledger(tmp_path / "kill" / "trials.jsonl"); assert 13 <= len(before) < 24
    for d in ("kill", "whole"):
        r = subprocess.run(cmd(d, "0"), env=env, capture_output=True, text=True); assert r.returncode == 0, r.stderr[-2000:]
    got, want = _ledger(tmp_path / "kill" / "trials.jsonl"), _ledger(tmp_path / "whole" / "trials.jsonl")
    assert [x["trial"] for x in got] == list(range(24)) and len({x["key"] for x in got}) == 24
    assert [x["key"] for x in got[:len(before)]] == [x["key"] for x in before]
    assert [x["key"] for x in got] == [x["key"] for x in want]


def test_cli_search_automl_at_low_fidelity(tmp_path):
    "`nasrec-lit search --searcher automl --fidelity low --hyper`: a leaderboard, the label in the ledger, hyper-parameters trained with."
    env = dict(os.environ, WANDB_MODE="disabled", NASREC_LIT_PROGRESS="0")
    r = subprocess.run([CLI, "search", "--data", "synthetic", "--searcher", "automl", "--fidelity", "low", "--hyper", "--budget", "12",
                        "--blocks", "2", "--top-k", "1", "--final-epochs", "1", "--no-baselines", "--low-rows", "0.05", "--low-steps", "5",
                        "--runs-dir", str(tmp_path), "--name", "a"], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    recs = _ledger(tmp_path / "a" / "trials.jsonl")
    assert len(recs) == 12 and all("label" in x["metrics"] and "hp" in x["arch"] for x in recs)
    state = json.loads((tmp_path / "a" / "searcher_state.json").read_text())["searcher"]
    assert state["rounds"] >= 1                                                  # the predictor and policy proposed trials 10-11
    assert "NASRec-full (searched)" in r.stdout and (tmp_path / "a" / "export" / "arch.json").exists()
    assert "hp" in json.loads((tmp_path / "a" / "export" / "arch.json").read_text())
    bad = subprocess.run([CLI, "search", "--data", "synthetic", "--hyper", "--budget", "2", "--runs-dir", str(tmp_path), "--name", "b"],
                         env=env, capture_output=True, text=True)
    assert bad.returncode != 0 and "fidelity 'low'" in bad.stderr, bad.stderr[-1000:]
