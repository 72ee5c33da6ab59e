"""PIM co-design (nbs/15_pim.ipynb): the hardware field leaves every earlier architecture's key alone, the kernel's
searchers drive the co-design space (evolution, and NSGA-II through Optuna) and resume, and a tiny study runs end to end."""
import json
from pathlib import Path

import numpy as np
import pytest

from nasrec_lit.nas.space import SpaceConfig, Arch, SearchSpace
from nasrec_lit.nas.search import Objective, RegularizedEvolution, TrialResult, run_search, make_searcher
from nasrec_lit.nas.pim import (CoDesignSpace, CoDesignEvaluator, system, network_cost, all_host, HOST_FP32, CODESIGN_METRICS,
                                codesign_study, CoDesignConfig, sensitivity, sensitivity_summary)

FIXTURE = Path(__file__).parent / "data" / "nasrec_frappe20k_s0_trials.jsonl"
SCHEMA = dict(dense_names=[], cardinalities=[853, 4083, 8, 8, 3, 3, 3, 3, 2, 59, 1000])   # eleven sparse fields, no dense ones (made up)


def test_recorded_architectures_keep_their_keys():
    "Ledgers written before `Arch.hw` existed read back to the same architectures and keys."
    for line in FIXTURE.read_text().splitlines():
        r = json.loads(line); a = Arch.from_dict(r["arch"])
        assert a.hw is None and a.key() == r["key"] and json.loads(a.to_json()) == r["arch"]


class _SyntheticNE:
    "A known NE: lower with wider blocks, higher with low precision (what the search should trade against cost)."
    fidelity = "synthetic"
    def __call__(self, arch):
        bits = {"fp32": 0, "bf16": 0.001, "fp16": 0.001, "int8": 0.004, "int4": 0.03}
        ne = 0.6 - 0.0002 * sum(b.width for b in arch.blocks) + sum(bits[h[1]] for h in (arch.hw or (HOST_FP32,)))
        return TrialResult(dict(val_ne=ne), {}, 0.0, self.fidelity)


@pytest.mark.parametrize("searcher", ["evolution", "nsga2"])
def test_searchers_drive_the_codesign_space_and_resume(tmp_path, searcher):
    cfg = SpaceConfig.cpu(num_blocks=3); sysm = system("cpu+upmem"); space = CoDesignSpace(cfg, sysm, dense_features=False, schema=SCHEMA)
    ev = CoDesignEvaluator(_SyntheticNE(), sysm, SCHEMA, cfg, batch=64); obj = Objective(metrics=CODESIGN_METRICS)
    kw = dict(population=6, tournament=3, children=2, generations=5) if searcher == "evolution" else dict(population=6)
    make = lambda: make_searcher(searcher, space, obj, 0, **kw)
    first = run_search(make(), ev, tmp_path, 10, objective=obj)
    recs = run_search(make(), ev, tmp_path, 20, objective=obj)              # a second process continues the same search
    assert [r["trial"] for r in recs[:10]] == [r["trial"] for r in first] and len({r["trial"] for r in recs}) == 20
    for r in recs:
        a = Arch.from_dict(r["arch"]); space.validate(a)
        assert a.hw is not None and r["cost"]["latency_ms"] == pytest.approx(network_cost(a, SCHEMA, cfg, sysm, 64)["latency_s"] * 1e3)
    assert len({tuple(map(tuple, r["arch"]["hw"])) for r in recs}) > 10          # hardware choices are searched, not fixed


def test_tiny_study_runs_end_to_end_and_resumes(tmp_path):
    from nasrec_lit.data import load_data, DataOptions
    from nasrec_lit.nas.supernet import cpu_supernet_config
    from nasrec_lit.nas.nasrec import cpu_search_config
    d = load_data("frappe", DataOptions(max_rows=6000)); cfg = SpaceConfig.cpu(num_blocks=2)
    kw = dict(cfg=CoDesignConfig(budget=6, population=3, tournament=2, children=2, generations=2), space=cfg,
              sn_cfg=cpu_supernet_config(epochs=1, warmup_steps=5, finetune_steps=5, finetune_rows=512, score_rows=512),
              search_cfg=cpu_search_config(final_epochs=1), seeds=(0,), log=lambda *a: None)
    res = codesign_study(d, tmp_path, **kw)
    row = res["seeds"][0]
    assert row["pick_val_ne"] <= row["ref_val_ne"] or row["pick_val_ne"] == min(
        json.loads(l)["metrics"]["val_ne"] for l in (tmp_path / "codesign_s0" / "trials.jsonl").read_text().splitlines())
    assert row["flops_eff"] == pytest.approx(row["ref_flops"] / row["pick_flops"])
    assert np.isfinite(row["ne_delta"])
    again = codesign_study(d, tmp_path, **kw)                                # everything read back, nothing retrained
    assert again["seeds"][0]["ne_delta"] == row["ne_delta"]
    s = sensitivity(tmp_path, system("cpu+upmem"), d.schema(), cfg, 64, factors=(0.5, 2.0), params=(("pim", "link_bw"),))
    assert len(s) == 3 and set(sensitivity_summary(s).index) == {"pim.link_bw"}
