"""Rankitect's comparison: sampling-based, one-shot and DNAS families at the same wall-clock budget (`nas.rankitect.compare_families`).

Each family searches the CPU NASRec space under the same FLOPs bound (the median of random architectures) for
--budget-s seconds on this machine's cores, a one-shot family being charged its supernet's training; its best
candidate is trained from scratch (the search's final protocol) and scored on test. Sources: Frappe (real) and the
teacher source (labels from a network of the space: a known truth), --rows rows each, several seeds; three tuned
baselines (seed 0, same protocol) drawn on the same axes. Results resume from --out/<source>/seed<k>/<family>.json.
Last line: `families=<n> best=<family> best_test_ne=<x> dnas_flops_error=<max over runs> seeds=<k>`, the best family being the
one with the lowest test NE averaged over the sources and seeds (the per-source tables are printed above it).
"""
import argparse, os, time, warnings
os.environ.setdefault("NASREC_LIT_PROGRESS", "0"); os.environ.setdefault("WANDB_MODE", "disabled")
warnings.filterwarnings("ignore")


def load(source: str, rows: int):
    from nasrec_lit.data import load_data, DataOptions
    if source == "teacher":
        from nasrec_lit.nas.teacher import TeacherConfig, teacher_data
        return teacher_data(TeacherConfig(rows=rows))
    return load_data(source, DataOptions(max_rows=rows))


def baselines(data, folder, models=("lr", "deepfm", "dcnv2")):
    "The tuned baselines under the families' retraining protocol (train split, early stopping on validation)."
    from nasrec_lit.baselines import leaderboard
    from nasrec_lit.nas.nasrec import cpu_search_config, scratch_protocol
    tc, _ = scratch_protocol(cpu_search_config(seed=0), seed=0)
    df, _, _ = leaderboard(data, models, tc, root=folder, tuned=True, refit=False, resume=True)
    return df.rename(columns={"flops_per_sample": "flops"})[["name", "test_ne", "flops"]]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sources", default="teacher,frappe"); ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--budget-s", type=float, default=100.0); ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--out", default="nbs/runs/families")
    a = ap.parse_args()
    import matplotlib; matplotlib.use("Agg")
    import pandas as pd
    from pathlib import Path
    from nasrec_lit.nas.rankitect import compare_families, family_summary, plot_families
    t0 = time.perf_counter(); seeds = [int(s) for s in a.seeds.split(",")]; alls = []
    for src in a.sources.split(","):
        data = load(src, a.rows); out = Path(a.out)/src
        df = compare_families(data, out, seeds=seeds, budget_s=a.budget_s, log=lambda m: print(f"[{src}] {m}", flush=True))
        base = baselines(data, out/"baselines")
        print(f"\n{src} ({len(data.label)} rows, FLOPs bound {df.target_flops.iloc[0]:.3g}):")
        print(family_summary(df).round(4).to_string())
        print(base.round(4).to_string(index=False))
        base.to_csv(out/"baselines.csv", index=False)
        plot_families(df, out, base, title=src).savefig(out/"families.png", dpi=120)
        df.to_csv(out/"families.csv", index=False); alls.append(df.assign(source=src))
    df = pd.concat(alls)
    s = df.groupby("family").test_ne.mean().sort_values()     # averaged over sources and seeds
    dnas = df[df.family == "dnas"]
    print(f"wall time {time.perf_counter() - t0:.0f}s")
    print(f"families={df.family.nunique()} best={s.index[0].replace(' ', '_')} best_test_ne={s.iloc[0]:.4f} "
          f"dnas_flops_error={dnas.dnas_flops_error.max():.3f} seeds={len(seeds)}")


if __name__ == "__main__":
    main()
