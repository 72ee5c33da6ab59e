"""NASRec search: SIGKILL mid-search and resume; every trial in the ledger exactly once."""
import json, os, signal, subprocess, sys, time
from pathlib import Path

import pytest

CLI = str(Path(sys.executable).parent / "nasrec-lit")


def _ledger(path):
    if not path.exists(): return []
    return [json.loads(l) for l in path.read_text().splitlines() if l.strip().endswith("}")]


def test_sigkill_then_resume_keeps_every_trial_once(tmp_path):
    env = dict(os.environ, WANDB_MODE="disabled", NASREC_LIT_PROGRESS="0")
    cmd = [CLI, "search", "--data", "synthetic", "--budget", "30", "--blocks", "2", "--supernet-epochs", "1", "--top-k", "1",
           "--final-epochs", "1", "--no-baselines", "--runs-dir", str(tmp_path), "--name", "kill"]
    ledger = tmp_path / "kill" / "trials.jsonl"
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    t0 = time.time()
    while len(_ledger(ledger)) < 8:
        assert p.poll() is None, p.stderr.read().decode()[-2000:]
        assert time.time() - t0 < 300, "search too slow to reach 8 trials"
        time.sleep(0.2)
    os.kill(p.pid, signal.SIGKILL); p.wait()
    before = _ledger(ledger)
    assert 8 <= len(before) < 30
    r = subprocess.run(cmd + ["--resume", str(tmp_path / "kill")], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    recs = _ledger(ledger)
    assert [x["trial"] for x in recs] == list(range(30))                       # every trial once, in order
    assert len({x["key"] for x in recs}) == 30                                 # no duplicate architecture
    assert [x["key"] for x in recs[:len(before)]] == [x["key"] for x in before]  # nothing already written was lost
    assert (tmp_path / "kill" / "export" / "arch.json").exists() and (tmp_path / "kill" / "result.json").exists()


def test_resume_of_a_folder_without_a_search_fails_clearly(tmp_path):
    r = subprocess.run([CLI, "search", "--data", "synthetic", "--resume", str(tmp_path)], capture_output=True, text=True,
                       env=dict(os.environ, WANDB_MODE="disabled"))
    assert r.returncode == 2 and "holds no search" in r.stderr
