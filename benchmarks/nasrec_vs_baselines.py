"""NASRec (CPU scale) against every tuned baseline over several seeds, like for like (`nas.nasrec.compare_with_baselines`).

Every model, the searched one included, is finished with the same protocol (`baselines.fit_refit`): epoch
count chosen on validation with early stopping, then a fresh model trained on train+validation, test metrics.
Per-seed results are kept in --out/seed<k>/compare.json; an interrupted study resumes with the next seed.
Last line: `searched_logloss=<mean>±<std> best_baseline=<name> baseline_logloss=<mean>±<std> seeds=<n>`.
"""
import argparse, os, time, warnings
os.environ.setdefault("NASREC_LIT_PROGRESS", "0"); os.environ.setdefault("WANDB_MODE", "disabled")
warnings.filterwarnings("ignore")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="frappe"); ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--budget", type=int, default=120); ap.add_argument("--out", default="runs/nasrec-vs-baselines")
    a = ap.parse_args()
    from nasrec_lit.data import load_data
    from nasrec_lit.nas.nasrec import compare_with_baselines
    t0 = time.perf_counter()
    per_seed, summary = compare_with_baselines(load_data(a.data), a.out, seeds=[int(s) for s in a.seeds.split(",")], search_kw=dict(budget=a.budget))
    print(summary.round(4).to_string())
    print(per_seed.pivot(index="name", columns="seed", values="test_logloss").round(4).to_string())
    s = summary.loc["NASRec (searched)"]; b = summary.drop(index="NASRec (searched)").iloc[0]
    print(f"wall time {time.perf_counter() - t0:.0f}s")
    print(f"searched_logloss={s.logloss_mean:.4f}±{s.logloss_std:.4f} best_baseline={b.name} baseline_logloss={b.logloss_mean:.4f}±{b.logloss_std:.4f} seeds={int(s.seeds)}")


if __name__ == "__main__":
    main()
