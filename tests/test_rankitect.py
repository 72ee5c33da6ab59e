"""Rankitect's families through the CLI: TPE killed and resumed from our ledger; DNAS asked for a FLOPs target."""
import json, os, subprocess, sys
from pathlib import Path

from helpers import sigkill_when

CLI = str(Path(sys.executable).parent / "nasrec-lit")
ENV = {k: v for k, v in dict(os.environ, WANDB_MODE="disabled", NASREC_LIT_PROGRESS="0").items() if k != "WANDB_SERVICE"}


def _ledger(path):
    if not path.exists(): return []
    return [json.loads(l) for l in path.read_text().splitlines() if l.strip().endswith("}")]


def test_tpe_resumes_after_sigkill_from_our_ledger(tmp_path):
    """`search --searcher tpe` SIGKILLed after 8 trials and resumed: every trial in the ledger once, in order, nothing
    already written lost, no architecture twice; and the resumed search proposed what an uninterrupted one did (the
    same 20 architectures in the same order: the study was rebuilt from the saved state, the sampler's randomness too)."""
    base = [CLI, "search", "--data", "synthetic", "--budget", "20", "--blocks", "2", "--supernet-epochs", "1", "--top-k", "1",
            "--final-epochs", "1", "--no-baselines", "--searcher", "tpe", "--runs-dir", str(tmp_path)]
    r = subprocess.run(base + ["--name", "straight"], env=ENV, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    ledger = tmp_path / "kill" / "trials.jsonl"
    sigkill_when(base + ["--name", "kill"], ENV, lambda: len(_ledger(ledger)) >= 8, "8 trials", poll=0.1)
    before = _ledger(ledger)
    assert 8 <= len(before) < 20
    r = subprocess.run(base + ["--name", "kill", "--resume", str(tmp_path / "kill")], env=ENV, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    recs = _ledger(ledger)
    assert [x["trial"] for x in recs] == list(range(20)) and len({x["key"] for x in recs}) == 20
    assert [x["key"] for x in recs[:len(before)]] == [x["key"] for x in before]
    assert [x["key"] for x in recs] == [x["key"] for x in _ledger(tmp_path / "straight" / "trials.jsonl")]


def test_dnas_search_meets_the_asked_flops(tmp_path):
    """`search --searcher dnas --flops-max X`: the derived architecture (trial 0) is within 10% of X, retrained and
    reported like any other candidate."""
    r = subprocess.run([CLI, "search", "--data", "synthetic", "--budget", "2", "--blocks", "2", "--supernet-epochs", "1", "--top-k", "1",
                        "--final-epochs", "1", "--no-baselines", "--searcher", "dnas", "--dnas-steps", "10", "--flops-max", "20000",
                        "--runs-dir", str(tmp_path), "--name", "dnas"], env=ENV, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    recs = _ledger(tmp_path / "dnas" / "trials.jsonl")
    assert len(recs) == 2 and abs(recs[0]["cost"]["flops"] / 20000 - 1) <= 0.1, [x["cost"] for x in recs]
    res = json.loads((tmp_path / "dnas" / "result.json").read_text())
    assert res["test_ne"] > 0 and (tmp_path / "dnas" / "export" / "arch.json").exists()
    state = json.loads((tmp_path / "dnas" / "searcher_state.json").read_text())["searcher"]
    assert state["result"]["arch"] == json.dumps(recs[0]["arch"], sort_keys=True)
