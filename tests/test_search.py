"""NASRec search: SIGKILL mid-search and resume; every trial in the ledger exactly once."""
import json, os, subprocess, sys
from pathlib import Path

import numpy as np
import pytest

from helpers import sigkill_when

CLI = str(Path(sys.executable).parent / "nasrec-lit")


def _ledger(path):
    if not path.exists(): return []
    return [json.loads(l) for l in path.read_text().splitlines() if l.strip().endswith("}")]


def test_sigkill_then_resume_keeps_every_trial_once(tmp_path):
    """A search killed after 8 trials and resumed: every trial in the ledger once, and in the search's W&B run once
    (its offline runs read back with `read_wandb_history`); the trajectory, Pareto and leaderboard figures written."""
    # WANDB_SERVICE: a wandb service this pytest process may have started (another test's W&B run) is not the commands':
    # a killed command's stream would stay open in it, and the resumed command's stream of the same run id would go nowhere
    env = {k: v for k, v in dict(os.environ, WANDB_MODE="offline", NASREC_LIT_PROGRESS="0").items() if k != "WANDB_SERVICE"}
    cmd = [CLI, "search", "--data", "synthetic", "--budget", "30", "--blocks", "2", "--supernet-epochs", "1", "--top-k", "1",
           "--final-epochs", "1", "--no-baselines", "--runs-dir", str(tmp_path), "--name", "kill"]
    ledger = tmp_path / "kill" / "trials.jsonl"
    sigkill_when(cmd, env, lambda: len(_ledger(ledger)) >= 8, "8 trials", poll=0.2)
    before = _ledger(ledger)
    assert 8 <= len(before) < 30
    r = subprocess.run([c if c != "30" else "31" for c in cmd] + ["--resume", str(tmp_path / "kill")], env=env, capture_output=True, text=True)
    assert r.returncode == 2 and "--budget gives search.budget=31, the run has 30" in r.stderr, r.stderr[-2000:]   # other settings: refused
    r = subprocess.run(cmd + ["--resume", str(tmp_path / "kill")], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    recs = _ledger(ledger)
    assert [x["trial"] for x in recs] == list(range(30))                       # every trial once, in order
    assert len({x["key"] for x in recs}) == 30                                 # no duplicate architecture
    assert [x["key"] for x in recs[:len(before)]] == [x["key"] for x in before]  # nothing already written was lost
    assert (tmp_path / "kill" / "export" / "arch.json").exists() and (tmp_path / "kill" / "result.json").exists()
    from nasrec_lit.core import read_wandb_history
    run_id = json.loads((tmp_path / "kill" / "tracking.json").read_text())["id"]
    runs = sorted((tmp_path / "kill" / "wandb").glob(f"offline-run-*-{run_id}"))
    hist = [h for d in runs for h in read_wandb_history(d) if "trial" in h]
    assert len(runs) >= 3 and sorted(h["trial"] for h in hist) == list(range(30)), (len(runs), sorted(h["trial"] for h in hist))
    best = [h["best/val_logloss"] for h in sorted(hist, key=lambda h: h["_step"])]
    assert all(b <= a for a, b in zip(best, best[1:]))                          # the best-so-far curve never rises
    for name in ("trajectory", "pareto", "leaderboard"):
        f = tmp_path / "kill" / "figures" / f"{name}.png"
        assert f.stat().st_size > 5000 and f"figure ({name}): {f}" in r.stdout.replace("\n", "") or f"figure: {f}" in r.stdout.replace("\n", ""), (name, r.stdout[-1500:])
    # the retrainings' W&B runs are in the search's group
    cfgs = list((tmp_path / "kill" / "retrain").rglob("offline-run-*/files/wandb-metadata.json")) + list((tmp_path / "kill" / "retrain").rglob("*.wandb"))
    assert cfgs, "the retraining wrote no W&B run"


def test_sigkill_during_top_k_retraining_keeps_the_finished_retrainings(tmp_path):
    """A search killed while it retrains its top-k from scratch resumes with the retrainings already in
    `retrain.jsonl` read back (not repeated) and the rest done once each."""
    env = dict(os.environ, WANDB_MODE="disabled", NASREC_LIT_PROGRESS="0")
    cmd = [CLI, "search", "--data", "synthetic", "--budget", "6", "--blocks", "2", "--supernet-epochs", "1", "--top-k", "3",
           "--final-epochs", "2", "--no-baselines", "--runs-dir", str(tmp_path), "--name", "kill"]
    done = tmp_path / "kill" / "retrain.jsonl"
    sigkill_when(cmd, env, lambda: len(_ledger(done)) >= 1, "a finished retraining")
    before = _ledger(done)
    assert 1 <= len(before) < 3, "all retrainings finished before the kill: nothing was resumed"
    r = subprocess.run(cmd + ["--resume", str(tmp_path / "kill")], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    after = _ledger(done)
    assert after[:len(before)] == before and len(after) == 3 and len({x["key"] for x in after}) == 3
    res = json.loads((tmp_path / "kill" / "result.json").read_text())
    assert res["top_k"] == after                                                 # the result is built from the ledger


def test_sigkill_during_supernet_training_resumes_to_the_same_supernet(tmp_path):
    """A search killed while its supernet trains resumes from `supernet_ckpt/last.ckpt` (checkpointed every step
    here) mid-epoch, and ends with the supernet weights of a run that was never interrupted."""
    import torch
    env = dict(os.environ, WANDB_MODE="disabled", NASREC_LIT_PROGRESS="0")
    cmd = lambda name: [CLI, "search", "--data", "synthetic", "--budget", "2", "--blocks", "2", "--supernet-epochs", "2", "--top-k", "1",
                        "--final-epochs", "1", "--no-baselines", "--runs-dir", str(tmp_path), "--name", name]
    run = tmp_path / "kill"; ckpt = run / "supernet_ckpt" / "last.ckpt"
    # a few more steps after the first checkpoint, then a crash between two checkpoints
    sigkill_when(cmd("kill") + ["--checkpoint-minutes", "0"], env, ckpt.exists, "a supernet checkpoint", timeout=120, poll=0.05, grace=1.0)
    assert not (run / "supernet.pt").exists(), "the supernet finished before the kill: nothing was resumed"
    step = torch.load(ckpt, weights_only=False)["global_step"]; assert step > 0
    r = subprocess.run(cmd("kill") + ["--resume", str(run)], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    assert (run / "supernet.pt").exists() and not (run / "supernet_ckpt").exists()
    r = subprocess.run(cmd("straight"), env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    a, b = (torch.load(tmp_path / n / "supernet.pt") for n in ("kill", "straight"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), f"resumed at step {step}: weights differ"


def test_supernet_trains_under_ddp_on_cpu(tmp_path):
    """`train_supernet(strategy="ddp")` with two CPU processes: DDP is told about the operators a step leaves unused
    (without that it stops with "parameters that were not used"), each rank takes half the rows, and the ranks
    end with the same weights."""
    script = tmp_path / "ddp_supernet.py"
    script.write_text(f"""
import os, sys, torch
from nasrec_lit.data import make_synthetic, SyntheticConfig, split_indices
from nasrec_lit.nas.space import SpaceConfig
from nasrec_lit.nas.supernet import train_supernet, cpu_supernet_config
d = make_synthetic(SyntheticConfig(rows=6000, n_dense=2, n_sparse=5, seed=2)); sp = split_indices(d, seed=0)
sn = train_supernet(d, sp, SpaceConfig.cpu(num_blocks=3), cpu_supernet_config(warmup_steps=5, batch_size=256, epochs=1),
                    accelerator="cpu", devices=2, strategy="ddp")
torch.save(dict(steps=sn.trainer.global_step, state=sn.state_dict()), {str(tmp_path)!r} + f"/rank{{sn.trainer.global_rank}}.pt")
""")
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, timeout=600,
                       env=dict(os.environ, NASREC_LIT_PROGRESS="0"))
    assert r.returncode == 0, r.stderr[-3000:]
    import torch
    a, b = (torch.load(tmp_path / f"rank{k}.pt", weights_only=False) for k in (0, 1))
    assert a["steps"] == b["steps"] == -(-2400 // 256)                              # 4,800 training rows over 2 ranks
    assert all(torch.equal(a["state"][k], b["state"][k]) for k in a["state"])


def test_resume_of_a_folder_without_a_search_fails_clearly(tmp_path):
    r = subprocess.run([CLI, "search", "--data", "synthetic", "--resume", str(tmp_path)], capture_output=True, text=True,
                       env=dict(os.environ, WANDB_MODE="disabled"))
    assert r.returncode == 2 and "holds no search" in r.stderr


@pytest.mark.parametrize("option,field", [("--blocks", "SpaceConfig.num_blocks"), ("--top-k", "SearchConfig.top_k"),
                                          ("--supernet-epochs", "SupernetConfig.epochs"), ("--final-epochs", "SearchConfig.final_epochs")])
def test_zero_is_refused_not_replaced_by_the_default(tmp_path, option, field):
    """Before 2026-11-30 `--blocks 0` (and the others) ran a search with the scale's default; the check comes before any data is
    read (the file exists, as the cheap first check of `--data` wants, but is no Criteo file: reading it would be another error)."""
    (tmp_path / "not-criteo.txt").write_text("a\tb\n")
    r = subprocess.run([CLI, "search", "--data", f"criteo:{tmp_path}/not-criteo.txt", option, "0", "--runs-dir", str(tmp_path / "runs")],
                       capture_output=True, text=True, env=dict(os.environ, WANDB_MODE="disabled"))
    assert r.returncode == 2 and f"{field}: 0 must be >= 1" in r.stderr and not (tmp_path / "runs").exists(), r.stderr


def test_compare_with_baselines_is_like_for_like_and_resumes(tmp_path):
    """Every model in the comparison is finished on train+validation; a finished seed is read back, not rerun."""
    os.environ.update(WANDB_MODE="disabled", NASREC_LIT_PROGRESS="0")
    from nasrec_lit.data import make_synthetic, SyntheticConfig
    from nasrec_lit.nas.space import SpaceConfig
    from nasrec_lit.nas.nasrec import compare_with_baselines
    syn = make_synthetic(SyntheticConfig(rows=4000, n_dense=2, n_sparse=4, seed=0))
    kw = dict(space=SpaceConfig.cpu(num_blocks=2), sn_kw=dict(warmup_steps=5, epochs=1, batch_size=256, finetune_steps=5, finetune_batch=256),
              search_kw=dict(budget=6, population=4, tournament=2, children=2, generations=2, top_k=1, final_epochs=2, final_batch=512),
              models=("lr", "fm"), log=lambda *a: None)
    per_seed, summary = compare_with_baselines(syn, tmp_path, seeds=(0, 1), **kw)
    assert set(summary.index) == {"NASRec (searched)", "lr", "fm"} and (summary.seeds == 2).all()
    assert summary.logloss_mean.notna().all() and summary.logloss_std.notna().all()
    # the baselines were refit on train+validation (the searched model's protocol)
    res = json.loads(next((tmp_path / "seed0" / "baselines").glob("*-fm-s0/result.json")).read_text())
    assert res["rows_train"] == 3600 and "select_best_epoch" in res and res["epochs_run"] == res["select_best_epoch"] + 1
    mtime = (tmp_path / "seed1" / "compare.json").stat().st_mtime
    per2, summary2 = compare_with_baselines(syn, tmp_path, seeds=(0, 1), **kw)
    assert (tmp_path / "seed1" / "compare.json").stat().st_mtime == mtime and summary2.equals(summary)
    # a finished seed is read back only for the same comparison: other models (or search settings) are refused
    from nasrec_lit.core import ConfigError
    with pytest.raises(ConfigError, match=r"seed0/compare_settings\.json: this folder holds a comparison with models=\['lr', 'fm'\]"):
        compare_with_baselines(syn, tmp_path, seeds=(0, 1), **dict(kw, models=("lr", "deepfm")))


@pytest.mark.parametrize("dense_features", [True, False])
def test_searchers_never_propose_a_functional_twin(dense_features):
    """Both searchers hash canonical forms: over many asks no two proposals compute the same function
    (same canonical form), and every proposal is already canonical (so the ledger and export hold it).
    Without dense features (Frappe, Avazu) the canonical form is stricter, and the proposals follow it."""
    import numpy as np
    from nasrec_lit.nas.space import SearchSpace, SpaceConfig
    from nasrec_lit.nas.search import RandomSearch, RegularizedEvolution, TrialResult
    space = SearchSpace(SpaceConfig.cpu(num_blocks=3), dense_features=dense_features)
    rng = np.random.default_rng(0)
    for searcher in (RandomSearch(space, seed=1), RegularizedEvolution(space, population=16, tournament=8, children=4, generations=40, seed=1)):
        keys = []
        for t in range(160):
            a = searcher.ask()
            assert space.canonical(a) == a
            keys.append(a.key())
            searcher.tell(a, TrialResult(metrics={"val_logloss": float(rng.random())}))
        assert len(set(keys)) == len(keys)
    # the raw samples behind them do contain twins: canonicalisation is doing work here
    raw = [space.sample(np.random.default_rng(s)) for s in range(300)]
    assert sum(space.canonical(a) != a for a in raw) > 100
    if not dense_features:   # and the data-aware form collapses more than the data-agnostic one
        agnostic = SearchSpace(SpaceConfig.cpu(num_blocks=3))
        assert sum(space.canonical(a) != agnostic.canonical(a) for a in raw) > 30


def test_a_search_folder_is_never_continued_with_other_settings(tmp_path):
    """`nasrec_search` pins its folder to the settings it started with (`search.json`): a call with another search
    config is refused, naming the field, before anything is read back. Before, a second search into the same folder
    read back the first one's supernet and trials as its own. The CLI without `--resume` no longer overwrites the
    folder's `config.yaml`: same settings continue (and read back) the search, other settings are refused."""
    os.environ.update(WANDB_MODE="disabled", NASREC_LIT_PROGRESS="0")
    from nasrec_lit.core import ConfigError
    from nasrec_lit.data import make_synthetic, SyntheticConfig
    from nasrec_lit.nas.space import SpaceConfig
    from nasrec_lit.nas.supernet import cpu_supernet_config
    from nasrec_lit.nas.nasrec import nasrec_search, cpu_search_config
    syn = make_synthetic(SyntheticConfig(rows=3000, n_dense=2, n_sparse=4, seed=0))
    sp, sn = SpaceConfig.cpu(num_blocks=2), cpu_supernet_config(warmup_steps=5, epochs=1, batch_size=256, finetune_steps=5, finetune_batch=256)
    cfg = cpu_search_config(budget=4, population=2, tournament=2, children=2, generations=1, top_k=1, final_epochs=1, final_batch=512)
    nasrec_search(syn, sp, sn, cfg, tmp_path/"api", log=lambda *a: None)
    trials = (tmp_path/"api"/"trials.jsonl").read_text()
    with pytest.raises(ConfigError, match=r"search\.json: this folder holds a search with search\.budget=4, not 6"):
        nasrec_search(syn, sp, sn, cfg.replace(budget=6), tmp_path/"api", log=lambda *a: None)
    assert (tmp_path/"api"/"trials.jsonl").read_text() == trials

    env = dict(os.environ, WANDB_MODE="disabled", NASREC_LIT_PROGRESS="0")
    cmd = lambda budget: [CLI, "search", "--data", "synthetic", "--budget", budget, "--blocks", "2", "--supernet-epochs", "1", "--top-k", "1",
                          "--final-epochs", "1", "--no-baselines", "--runs-dir", str(tmp_path), "--name", "cli"]
    assert subprocess.run(cmd("4"), env=env, capture_output=True, text=True).returncode == 0
    config = (tmp_path/"cli"/"config.yaml").read_text()
    r = subprocess.run(cmd("5"), env=env, capture_output=True, text=True)
    assert r.returncode == 2 and "--budget gives search.budget=5, the run has 4" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr[-2000:]
    assert (tmp_path/"cli"/"config.yaml").read_text() == config
    r = subprocess.run(cmd("4"), env=env, capture_output=True, text=True)            # the same command again: read back
    assert r.returncode == 0 and "searched model vs baselines" in r.stdout, r.stderr[-2000:]
    # --resume alone takes the run's own settings (a papercut: the defaults the user never typed, budget 120 and data
    # frappe here, were refused); what the user types must still agree, and every disagreeing option is named
    r = subprocess.run([CLI, "search", "--resume", str(tmp_path/"cli"), "--no-baselines"], env=env, capture_output=True, text=True)
    assert r.returncode == 0 and "synthetic: searched model vs baselines" in r.stdout, r.stderr[-2000:]
    assert (tmp_path/"cli"/"config.yaml").read_text() == config
    r = subprocess.run([CLI, "search", "--resume", str(tmp_path/"cli"), "--budget", "7", "--blocks", "3", "--seed", "0"], env=env, capture_output=True, text=True)
    assert r.returncode == 2 and "--budget gives search.budget=7, the run has 4" in r.stderr and "--blocks gives space.num_blocks=3, the run has 2" in r.stderr \
        and "seed" not in r.stderr.split("the run has 2")[1], r.stderr[-2000:]     # --seed 0 agrees with the run: not named
    board = {row["name"]: row for row in json.loads((tmp_path/"cli"/"leaderboard.json").read_text())}   # --no-baselines: still the references
    assert set(board) == {"NASRec-full (searched)", "base rate", "bayes optimal"}, board
    assert board["bayes optimal"]["test_logloss"] < board["base rate"]["test_logloss"]


def test_search_reads_the_data_with_its_options_and_split(tmp_path):
    """`search --encoding hash --hash-size N --stratified --max-rows M`: the searched model's tables have N rows per
    field, the rows are the first M, the split is stratified; the options are the folder's own (a resume with others is
    refused), and a folder searched with the defaults records none of them (so folders from before they existed resume)."""
    rng = np.random.default_rng(0)
    rows = ["\t".join([str(int(rng.random() < 0.3))] + [str(rng.integers(10)) for _ in range(13)] + [f"{rng.integers(40):08x}" for _ in range(26)])
            for _ in range(500)]
    p = tmp_path / "c.txt"; p.write_text("\n".join(rows) + "\n")
    env = dict(os.environ, WANDB_MODE="disabled", NASREC_LIT_PROGRESS="0", NASREC_LIT_CACHE=str(tmp_path / "cache"))
    cmd = [CLI, "search", "--data", f"criteo:{p}", "--budget", "3", "--blocks", "2", "--supernet-epochs", "1", "--top-k", "1",
           "--final-epochs", "1", "--no-baselines", "--runs-dir", str(tmp_path)]
    opts = ["--encoding", "hash", "--hash-size", "64", "--stratified", "--max-rows", "400"]
    r = subprocess.run(cmd + opts + ["--name", "h"], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    import torch, yaml
    from nasrec_lit.data import load_data, DataOptions, split_indices
    assert torch.load(tmp_path / "h" / "export" / "model.pt", weights_only=False)["schema"]["cardinalities"] == [64] * 26
    config = yaml.safe_load((tmp_path / "h" / "config.yaml").read_text())
    assert config["stratified"] is True and config["data_options"]["encoding"] == "hash" and config["data_options"]["max_rows"] == 400
    d = load_data(f"criteo:{p}", DataOptions(encoding="hash", hash_size=64, max_rows=400))
    assert len(d) == 400
    board = {x["name"]: x for x in json.loads((tmp_path / "h" / "leaderboard.json").read_text())}
    te = split_indices(d, seed=2024, stratify=True)[2]        # the base-rate row is on the stratified split's test rows
    from nasrec_lit.blocks import logloss
    tr = split_indices(d, seed=2024, stratify=True)[0]
    assert abs(board["base rate"]["test_logloss"] - logloss(d.label[te], np.full(len(te), d.label[tr].mean()))) < 1e-9
    r = subprocess.run(cmd + ["--encoding", "vocab", "--stratified", "--max-rows", "400", "--name", "h"], env=env, capture_output=True, text=True)
    assert r.returncode == 2 and "--encoding gives data_options.encoding='vocab', the run has 'hash'" in r.stderr, r.stderr[-2000:]
    assert subprocess.run(cmd + ["--name", "plain"], env=env, capture_output=True, text=True).returncode == 0
    plain = yaml.safe_load((tmp_path / "plain" / "config.yaml").read_text())
    assert "data_options" not in plain and "stratified" not in plain


def test_retrain_a_searched_architecture_on_other_tables(tmp_path):
    """`retrain SEARCH --data ... --hash-sizes ...`: the architecture the search exported, trained from scratch on the data
    read with per-field table sizes (the search used 64 rows a field), with the search's final protocol; the run folder
    holds that architecture and is tied to the data (a resume reads the result back, a resume on other tables is refused
    naming the field); another seed or other tables get their own folder (never replacing a result); data with other
    fields, and a folder that holds no finished search, are one-line errors."""
    import torch, yaml
    rng = np.random.default_rng(1)
    rows = ["\t".join([str(int(rng.random() < 0.3))] + [str(rng.integers(10)) for _ in range(13)] + [f"{rng.integers(40):08x}" for _ in range(26)])
            for _ in range(400)]
    p = tmp_path / "c.txt"; p.write_text("\n".join(rows) + "\n")
    env = dict(os.environ, WANDB_MODE="disabled", NASREC_LIT_PROGRESS="0", NASREC_LIT_CACHE=str(tmp_path / "cache"))
    run = lambda *a: subprocess.run([CLI, *a], env=env, capture_output=True, text=True)
    r = run("search", "--data", f"criteo:{p}", "--budget", "3", "--blocks", "2", "--supernet-epochs", "1", "--top-k", "1", "--final-epochs", "2",
            "--no-baselines", "--encoding", "hash", "--hash-size", "64", "--runs-dir", str(tmp_path), "--name", "s")
    assert r.returncode == 0, r.stderr[-2000:]
    sizes = [3 + 7 * j for j in range(26)]
    cmd = ["retrain", str(tmp_path / "s"), "--data", f"criteo:{p}", "--encoding", "hash", "--hash-sizes", ",".join(map(str, sizes)),
           "--no-baselines", "--runs-dir", str(tmp_path)]
    r = run(*cmd); assert r.returncode == 0, r.stderr[-2000:]
    folder, = tmp_path.glob("retrain-s-criteo-d*-s0")              # the search's seed; -d<hash>: data options not the defaults
    arch = torch.load(tmp_path / "s" / "export" / "model.pt", weights_only=False)["arch"]
    assert yaml.safe_load((folder / "config.yaml").read_text())["arch"] == json.loads(json.dumps(arch))
    assert json.loads((folder / "data.json").read_text())["cardinalities"] == sizes
    board = {x["name"]: x for x in json.loads((folder / "leaderboard.json").read_text())}
    result = json.loads((folder / "result.json").read_text())
    assert set(board) == {"NASRec (retrained)", "base rate"} and board["NASRec (retrained)"]["test_logloss"] == result["test_logloss"]
    ck = torch.load(folder / "checkpoints" / "last.ckpt", weights_only=False)            # the model trained on the per-field tables
    assert ck["state_dict"]["net.stem.emb.table.weight"].shape[0] == sum(sizes), {k: v.shape for k, v in ck["state_dict"].items() if "emb" in k}
    r = run(*cmd, "--resume"); assert r.returncode == 0 and f"{result['test_logloss']:.4f}" in r.stdout, r.stdout + r.stderr
    r = run(*[c if c != ",".join(map(str, sizes)) else ",".join(["50"] * 26) for c in cmd], "--resume", "--name", folder.name)
    assert r.returncode == 2 and "data.json" in r.stderr and "cardinalities" in r.stderr, r.stderr[-2000:]
    r = run(*cmd, "--seed", "5"); assert r.returncode == 0, r.stderr[-2000:]                # another training seed, its own folder
    seed5 = folder.with_name(folder.name[:-1] + "5")
    assert yaml.safe_load((seed5 / "config.yaml").read_text())["train"]["seed"] == 5
    assert json.loads((seed5 / "result.json").read_text())["test_logloss"] != result["test_logloss"]
    r = run(*cmd[:4], "--encoding", "hash", "--hash-size", "32", *cmd[-3:]); assert r.returncode == 0, r.stderr[-2000:]   # other tables: another folder
    assert len(list(tmp_path.glob("retrain-s-criteo-d*-s0"))) == 2 and json.loads((folder / "result.json").read_text()) == result
    r = run("retrain", str(tmp_path / "s"), "--data", "frappe", "--no-baselines", "--runs-dir", str(tmp_path))
    assert r.returncode == 2 and "searched on dense_names" in r.stderr and "frappe data has []" in r.stderr, r.stderr[-2000:]
    r = run("retrain", str(tmp_path), "--data", f"criteo:{p}")
    assert r.returncode == 2 and "not a finished search (no export/model.pt or search.json)" in r.stderr, r.stderr[-2000:]


def test_run_names_with_spaces_and_folders_the_user_names(tmp_path):
    """A run *name* is reduced to a folder name (`--name "my run"` → `my-run`) and every later read uses that folder:
    before, `search --name "my run"` checked `my run/` for an earlier search, found none, and overwrote `my-run/config.yaml`
    before the search refused the other settings; `retrain --name "my retrain"` trained into `my-retrain/`, then failed
    reading `my retrain/leaderboard.json`. A folder the user *names* (`--resume`) is opened as given, spaces and all."""
    env = dict(os.environ, WANDB_MODE="disabled", NASREC_LIT_PROGRESS="0")
    run = lambda *a: subprocess.run([CLI, *a], env=env, capture_output=True, text=True)
    search = lambda budget, *more: run("search", "--data", "synthetic", "--space", "small", "--budget", budget, "--blocks", "1",
                                       "--supernet-epochs", "1", "--top-k", "1", "--final-epochs", "1", "--no-baselines", "--runs-dir", str(tmp_path), *more)
    r = search("3", "--name", "my run"); assert r.returncode == 0, r.stderr[-2000:]
    folder = tmp_path / "my-run"; config = (folder / "config.yaml").read_text()
    assert "run: " + str(folder) in r.stdout.replace("\n", ""), r.stdout[-500:]
    r = search("5", "--name", "my run")                              # other settings, same name: refused, nothing overwritten
    assert r.returncode == 2 and "--budget gives search.budget=5, the run has 3" in r.stderr, r.stderr[-2000:]
    assert (folder / "config.yaml").read_text() == config
    r = run("retrain", str(folder), "--data", "synthetic", "--no-baselines", "--runs-dir", str(tmp_path), "--name", "my retrain")
    assert r.returncode == 0, r.stderr[-2000:]
    board = json.loads((tmp_path / "my-retrain" / "leaderboard.json").read_text())
    assert {x["name"] for x in board} >= {"NASRec (retrained)", "base rate"} and not (tmp_path / "my retrain").exists()
    moved = tmp_path / "kept searches" / "first one"; moved.parent.mkdir(); folder.rename(moved)
    r = search("3", "--resume", str(moved))                          # a folder the user names: continued where it is
    assert r.returncode == 0 and "searched model vs baselines" in r.stdout, r.stderr[-2000:]
    assert not (tmp_path / "kept searches" / "first-one").exists() and (moved / "config.yaml").read_text() == config
