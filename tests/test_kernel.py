"""The search kernel: the refactor keeps NASRec's ledger, parallel trials (local processes, Ray), a kill with trials
in flight, the searcher registry on the command line, and a two-objective search's Pareto front."""
import json, os, subprocess, sys, textwrap
from pathlib import Path

import numpy as np
import pytest

from helpers import sigkill_when

CLI = str(Path(sys.executable).parent / "nasrec-lit")
FIXTURE = Path(__file__).parent / "data" / "nasrec_frappe20k_s0_trials.jsonl"


def test_the_kernel_refactor_keeps_the_nasrec_ledger(tmp_path):
    """The NASRec search on Frappe (first 20k rows, seed 0) writes the ledger the code before the kernel refactor wrote
    (tests/data/README.md): the same architectures in the same order, with the same supernet scores."""
    from nasrec_lit.data import load_data, DataOptions
    from nasrec_lit.nas.space import SpaceConfig
    from nasrec_lit.nas.supernet import cpu_supernet_config
    from nasrec_lit.nas.nasrec import nasrec_search, cpu_search_config
    d = load_data("frappe", DataOptions(max_rows=20000))
    nasrec_search(d, SpaceConfig.cpu(num_blocks=3), cpu_supernet_config(epochs=1, warmup_steps=20, finetune_steps=10, finetune_rows=2048, score_rows=1024, seed=0),
                  cpu_search_config(budget=24, population=8, tournament=4, children=4, generations=4, top_k=1, final_epochs=1, seed=0),
                  tmp_path / "s", log=lambda *a: None)
    old = [json.loads(l) for l in FIXTURE.read_text().splitlines()]
    new = [json.loads(l) for l in (tmp_path / "s" / "trials.jsonl").read_text().splitlines()]
    assert [r["key"] for r in new] == [r["key"] for r in old]
    assert [r["arch"] for r in new] == [r["arch"] for r in old]
    np.testing.assert_allclose([r["metrics"]["val_logloss"] for r in new], [r["val_logloss"] for r in old], rtol=1e-6)
    assert all({"val_logloss", "val_ne", "val_auc"} <= set(r["metrics"]) for r in new)          # NE beside log loss
    assert all(r["cost"]["params"] == o["cost"]["params"] for r, o in zip(new, old))           # analytic = the old counter's params


TOY = '''
import time
from nasrec_lit.nas.search import TrialResult
class Toy:
    "A picklable toy evaluator: distance of the widths from 64, with a pause so trials overlap."
    fidelity = "toy"
    def __init__(self, pause=0.0): self.pause = pause
    def __call__(self, a):
        time.sleep(self.pause)
        return TrialResult({"val_logloss": float(sum(abs(b.width - 64) / 64 for b in a.blocks))}, {"flops": float(sum(b.width for b in a.blocks))}, fidelity="toy")
'''


@pytest.fixture
def toy_module(tmp_path, monkeypatch):
    (tmp_path / "toyeval.py").write_text(TOY)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    import toyeval
    return toyeval


def _searcher():
    from nasrec_lit.nas.space import SearchSpace, SpaceConfig
    from nasrec_lit.nas.search import make_searcher
    return make_searcher("evolution", SearchSpace(SpaceConfig.cpu()), "val_logloss", 0, population=6, tournament=3, children=2, generations=10)


@pytest.mark.parametrize("backend", ["processes", "ray"])
def test_parallel_trials_complete_a_search(tmp_path, toy_module, backend):
    from nasrec_lit.nas.search import run_search
    if backend == "ray": pytest.importorskip("ray")
    recs = run_search(_searcher(), toy_module.Toy(0.05), tmp_path / "s", 16, workers=2, ray="auto" if backend == "ray" else None)
    assert sorted(r["trial"] for r in recs) == list(range(16)) and len({r["key"] for r in recs}) == 16
    events = [json.loads(l) for l in (tmp_path / "s" / "events.jsonl").read_text().splitlines()]
    asks = [e["ask"] for e in events if "ask" in e]; tells = [e["tell"] for e in events if "tell" in e]
    assert sorted(asks) == sorted(tells) == list(range(16))
    # two trials were in flight at once: some trial was asked before the one before it was told
    first_tell = {t: k for k, e in enumerate(events) for t in [e.get("tell")] if t is not None}
    first_ask = {t: k for k, e in enumerate(events) for t in [e.get("ask")] if t is not None}
    assert any(first_ask[t + 1] < first_tell[t] for t in range(15))


RUN = '''
import sys
sys.path.insert(0, sys.argv[2])
from toyeval import Toy
from nasrec_lit.nas.space import SearchSpace, SpaceConfig
from nasrec_lit.nas.search import make_searcher, run_search
if __name__ == "__main__":          # workers are spawned processes: they import this file, so the search runs only here
    s = make_searcher("evolution", SearchSpace(SpaceConfig.cpu()), "val_logloss", 0, population=6, tournament=3, children=2, generations=10)
    run_search(s, Toy(float(sys.argv[3])), sys.argv[1], 20, workers=2)
'''


def test_sigkill_with_two_trials_in_flight_resumes_each_trial_once(tmp_path, toy_module):
    """Killed while two trials run in worker processes, the search resumes: the trials in flight are run again with the
    same architecture and number, nothing finished is run again, and every trial is in the ledger exactly once."""
    script = tmp_path / "run.py"; script.write_text(RUN); folder = tmp_path / "s"
    events = folder / "events.jsonl"

    def two_in_flight():
        if not events.exists(): return False
        ev = [json.loads(l) for l in events.read_text().splitlines() if l.endswith("}")]
        asked = {e["ask"] for e in ev if "ask" in e}; told = {e["tell"] for e in ev if "tell" in e}
        return len(told) >= 5 and len(asked - told) == 2
    sigkill_when([sys.executable, str(script), str(folder), str(tmp_path), "0.4"], dict(os.environ, NASREC_LIT_PROGRESS="0"), two_in_flight,
                 "two trials in flight", poll=0.02)
    before = [json.loads(l) for l in (folder / "trials.jsonl").read_text().splitlines() if l.endswith("}")]
    ev = [json.loads(l) for l in events.read_text().splitlines() if l.endswith("}")]
    inflight = {e["ask"]: e["arch"] for e in ev if "ask" in e} ; [inflight.pop(e["tell"], None) for e in ev if "tell" in e]
    assert len(before) < 20 and inflight                                              # killed with trials in flight
    r = subprocess.run([sys.executable, str(script), str(folder), str(tmp_path), "0"], capture_output=True, text=True, env=dict(os.environ, NASREC_LIT_PROGRESS="0"))
    assert r.returncode == 0, r.stderr[-3000:]
    recs = [json.loads(l) for l in (folder / "trials.jsonl").read_text().splitlines()]
    assert sorted(x["trial"] for x in recs) == list(range(20))                        # every trial exactly once
    assert recs[:len(before)] == before                                               # nothing written was lost or rewritten
    by_trial = {x["trial"]: x for x in recs}
    from nasrec_lit.nas.space import Arch
    for t, arch in inflight.items(): assert by_trial[t]["key"] == Arch.from_json(arch).key()   # rerun with the same architecture


PLUGIN = '''
import numpy as np
from nasrec_lit.nas.search import register_searcher
@register_searcher("greedy-width", help="a test plugin: always the narrowest widths")
class Narrow:
    def __init__(self, space, objective=None, seed=0): self.space, self.rng = space, np.random.default_rng(seed)
    def ask(self): return self.space.canonical(self.space.sample(self.rng))
    def tell(self, arch, result): pass
    def state_dict(self): return dict(rng=self.rng.bit_generator.state)
    def load_state_dict(self, s): self.rng.bit_generator.state = s["rng"]
'''


def test_a_registered_searcher_is_a_cli_choice_and_a_pareto_search_prints_its_front(tmp_path):
    (tmp_path / "myplugin.py").write_text(PLUGIN)
    env = dict(os.environ, WANDB_MODE="disabled", NASREC_LIT_PROGRESS="0", NASREC_LIT_PLUGINS="myplugin",
               PYTHONPATH=os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]), COLUMNS="200")
    h = subprocess.run([CLI, "search", "--help"], env=env, capture_output=True, text=True)
    assert h.returncode == 0 and "greedy-width" in h.stdout and "evolution" in h.stdout and "random" in h.stdout, h.stdout
    cmd = [CLI, "search", "--data", "synthetic", "--budget", "12", "--blocks", "2", "--supernet-epochs", "1", "--top-k", "1", "--final-epochs", "1",
           "--no-baselines", "--runs-dir", str(tmp_path), "--name", "pareto", "--searcher", "greedy-width", "--objective", "val_logloss,flops"]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Pareto front of val_logloss, flops" in r.stdout and "hypervolume" in r.stdout and (tmp_path / "pareto" / "pareto.png").exists()
    res = json.loads((tmp_path / "pareto" / "result.json").read_text())
    recs = [json.loads(l) for l in (tmp_path / "pareto" / "trials.jsonl").read_text().splitlines()]
    front = res["pareto_front"]
    assert front and all(not any(o["metrics"]["val_logloss"] <= f["val_logloss"] and o["cost"]["flops"] <= f["flops"] and
                                 (o["metrics"]["val_logloss"], o["cost"]["flops"]) != (f["val_logloss"], f["flops"]) for o in recs) for f in front)
    bad = subprocess.run(cmd[:-4] + ["--searcher", "nope", "--name", "x"], env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and "'nope' is not one of" in bad.stderr, bad.stderr[-2000:]


def _module_imports(path: Path, pkg: str) -> set:
    "The nasrec_lit modules a file imports at its top level (function-level imports are a layer's lazy, deliberate exceptions)."
    import ast
    tree, out = ast.parse(path.read_text()), set()
    parts = pkg.split(".")
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = parts[:len(parts) - (node.level - 1)]          # level 1: this package; 2: its parent
                name = ".".join(base + ([node.module] if node.module else []))
            else: name = node.module or ""
            if name.startswith("nasrec_lit"): out.add(name)
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("nasrec_lit")}
    return out


def test_the_import_graph_runs_downward():
    """The import rule (nbs/architecture.ipynb): the search kernel imports only `core` and the space; the training engine sits below every model
    family, so nothing that trains imports the baselines at module level."""
    root = Path(__file__).parent.parent / "nasrec_lit"
    mods = {}
    for p in root.rglob("*.py"):
        if p.name.startswith("_"): continue
        rel = p.relative_to(root.parent).with_suffix("")
        mods[".".join(rel.parts)] = _module_imports(p, ".".join(rel.parts[:-1]))
    assert mods["nasrec_lit.nas.search"] <= {"nasrec_lit.core", "nasrec_lit.nas.space"}, mods["nasrec_lit.nas.search"]
    assert not {m for m in mods["nasrec_lit.engine"] if m.startswith(("nasrec_lit.baselines", "nasrec_lit.nas", "nasrec_lit.usermodel", "nasrec_lit.llm"))}
    users = {m for m, imps in mods.items() if "nasrec_lit.baselines" in imps}
    assert users <= {"nasrec_lit.cli"}, users
    order = ["nasrec_lit.core", "nasrec_lit.data", "nasrec_lit.loaders", "nasrec_lit.blocks", "nasrec_lit.engine", "nasrec_lit.baselines"]
    for k, m in enumerate(order):                  # the spine: each layer imports only layers below it
        assert mods[m] <= set(order[:k]), (m, mods[m] - set(order[:k]))


def _toy_score(a):
    from nasrec_lit.nas.search import TrialResult
    return TrialResult({"val_logloss": float(sum(abs(b.width - 64) / 64 for b in a.blocks))}, {"flops": float(sum(b.width for b in a.blocks))}, fidelity="toy")


def test_evolution_drops_exactly_its_oldest_members():
    """Aging evolution: when a generation's children are told, they join the population and as many of the oldest
    members leave, whatever their scores (a bug that removed the youngest passed every test but one, by chance)."""
    from nasrec_lit.nas.space import SearchSpace, SpaceConfig
    from nasrec_lit.nas.search import RegularizedEvolution
    s = RegularizedEvolution(SearchSpace(SpaceConfig.cpu()), population=5, tournament=3, children=2, generations=4, seed=0)
    first = [s.ask() for _ in range(5)]
    for a in first: s.tell(a, _toy_score(a))
    from nasrec_lit.nas.space import Arch
    keys = lambda: [Arch.from_json(x[0]).key() for x in s.population]
    assert keys() == [a.key() for a in first]
    kids = [s.ask() for _ in range(2)]
    s.tell(kids[0], _toy_score(kids[0])); assert keys() == [a.key() for a in first]        # mid-generation: nobody leaves
    s.tell(kids[1], _toy_score(kids[1]))
    assert keys() == [a.key() for a in first[2:] + kids] and s.generation == 1
    more = [s.ask() for _ in range(2)]
    for a in more: s.tell(a, _toy_score(a))
    assert keys() == [a.key() for a in first[4:] + kids + more]


@pytest.mark.parametrize("window", ["state_behind_the_journal", "ledger_ahead_of_the_journal"])
def test_resume_in_the_window_between_the_ledger_and_the_saved_state(tmp_path, window):
    """A crash between the writes of one trial, made directly instead of hoping a SIGKILL lands there. Per trial the
    search writes: ask (journal, then the searcher's state), the result (ledger), tell (journal), the state again.
    state_behind_the_journal: the state file is two trials older than the journal and ledger. ledger_ahead_of_the_journal:
    trial 10's result is in the ledger but its tell never reached the journal (nor the state). The resumed search
    replays what it missed, evaluates nothing twice, and ends with the ledger an uninterrupted search writes."""
    import json
    from nasrec_lit.nas.search import run_search
    whole = run_search(_searcher(), _toy_score, tmp_path / "whole", 16)
    cut, calls = tmp_path / "cut", []
    def counted(a): calls.append(a.key()); return _toy_score(a)
    if window == "state_behind_the_journal":
        run_search(_searcher(), counted, cut, 9)
        old_state = (cut / "searcher_state.json").read_text()
        run_search(_searcher(), counted, cut, 11)
        (cut / "searcher_state.json").write_text(old_state)
    else:
        def crash_at_10(a):
            if len(calls) == 10: raise KeyboardInterrupt("killed after asking trial 10")
            return counted(a)
        with pytest.raises(KeyboardInterrupt): run_search(_searcher(), crash_at_10, cut, 16)
        with open(cut / "trials.jsonl", "a") as f: f.write(json.dumps(whole[10]) + "\n")   # its result landed, its tell did not
        calls.append(whole[10]["key"])
    resumed = run_search(_searcher(), counted, cut, 16)
    assert [r["key"] for r in resumed] == [r["key"] for r in whole] and len({r["trial"] for r in resumed}) == 16
    assert sorted(calls) == sorted(r["key"] for r in whole)              # every trial evaluated once
