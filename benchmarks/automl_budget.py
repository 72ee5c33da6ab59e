"""The AutoML searcher against random search, regularized evolution and TPE at the same trial budget (issue 32).

On one source: (1) the label study (does the accuracy label rank candidates closer to their full-fidelity test NE than
the short-term NE?), (2) `budget_study`: each searcher's labelled low-fidelity trials per seed under the same FLOPs
bound, every incumbent retrained from scratch, (3) the predictor's held-out Kendall tau as trials accumulate (single
model against the ensemble, on the pooled random-search trials), (4) the ROI table against random search and the best
hand-crafted baseline (tuned, trained with the same protocol). Figures and CSVs in --out/<data>/. Resumable: rerun the
same command after a crash. Last line:
`trials=<n> seeds=<k> automl_ne=<mean> random_ne=<mean> evolution_ne=<mean> tpe_ne=<mean>`."""
import argparse, json, time
from pathlib import Path


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="frappe", help="a source load_data reads (frappe, teacher, ...)")
    ap.add_argument("--seeds", default="0,1,2,3,4"); ap.add_argument("--budget", type=int, default=100)
    ap.add_argument("--searchers", default="automl,random,evolution,tpe")
    ap.add_argument("--label-n", type=int, default=24, help="candidates of the label study (0: skip it)")
    ap.add_argument("--out", default="nbs/runs/automl")
    a = ap.parse_args()
    import matplotlib; matplotlib.use("Agg")
    import pandas as pd
    from nasrec_lit.data import load_data
    from nasrec_lit.core import quiet_lightning
    from nasrec_lit.nas.space import SpaceConfig
    from nasrec_lit.nas.search import TrialLedger
    from nasrec_lit.nas.nasrec import scratch_protocol, cpu_search_config
    from nasrec_lit.nas.automl import (HyperSpace, label_study, label_taus, budget_study, budget_summary, plot_budget, roi_table,
                                       predictor_quality, plot_predictor_quality)
    from nasrec_lit.baselines import leaderboard
    quiet_lightning()
    data = load_data(a.data); out = Path(a.out)/a.data; out.mkdir(parents=True, exist_ok=True)
    seeds = [int(s) for s in a.seeds.split(",")]; names = a.searchers.split(",")
    t0 = time.perf_counter()
    if a.label_n:
        ls = label_study(data, out/"label", n=a.label_n)
        taus = label_taus(ls); taus.to_csv(out/"label_taus.csv", index=False)
        print(f"label study ({len(ls)} candidates): " + ", ".join(f"w={r.trend_weight:g}: tau={r.kendall_tau:.3f}" for r in taus.itertuples()), flush=True)
    df = budget_study(data, out, seeds=seeds, searchers=names, budget=a.budget)
    df.to_csv(out/"budget.csv", index=False)
    plot_budget(df, f"{a.data}: best found against trials").savefig(out/"budget.png", dpi=120)
    summ = budget_summary(df, a.budget); print(summ.to_string(), flush=True)
    if "random" in names:
        pool = [r for s in seeds for r in TrialLedger(out/f"s{s}"/"random"/"trials.jsonl").read()]
        hs = HyperSpace(SpaceConfig.cpu(), dense_features=len(data.schema()["dense_names"]) > 0)
        q = predictor_quality(pool, hs); q.to_csv(out/"predictor_quality.csv", index=False)
        if len(q):
            plot_predictor_quality(q, f"{a.data}: predictor on held-out trials").savefig(out/"predictor_quality.png", dpi=120)
            print(q.to_string(index=False), flush=True)
    lb, _, _ = leaderboard(data, cfg=scratch_protocol(cpu_search_config(seed=seeds[0]))[0], root=out/"baselines", tuned=True, resume=True)
    lb.to_csv(out/"baselines.csv", index=False)
    # the ROI needs FLOPs: models the FLOPs counter reports as 0 (LR, and FM, whose interaction it does not count) are left out
    best = lb[lb.flops_per_sample > 0].sort_values("val_logloss").iloc[:1]
    base = pd.DataFrame(dict(name=[f"{best['name'].iloc[0]} (best hand-crafted with counted FLOPs)"], test_ne=best.test_ne.to_list(),
                             flops=best.flops_per_sample.to_list()))
    if "automl" in names and "random" in names:
        roi = roi_table(df, base); roi.to_csv(out/"roi.csv"); print(roi.to_string(), flush=True)
    (out/"summary.json").write_text(json.dumps(dict(summary=summ.reset_index().to_dict(orient="records"), baseline=base.to_dict(orient="records"),
                                                   seconds=time.perf_counter() - t0), indent=1, default=float))
    ne = lambda n: f"{summ.loc[n, 'mean']:.4f}" if n in summ.index else "nan"
    print(f"trials={a.budget} seeds={len(seeds)} automl_ne={ne('automl')} random_ne={ne('random')} evolution_ne={ne('evolution')} tpe_ne={ne('tpe')}")


if __name__ == "__main__":
    main()
