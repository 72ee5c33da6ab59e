"""Weight-sharing payoff and rank correlation on real Frappe data, in one run.

Trains the NASRec supernet (CPU configuration), scores N random candidates through it (with and without
head-only fine-tuning), trains n of them from scratch, and prints:
  * Kendall tau between supernet validation log loss and from-scratch test log loss (with / without FT);
  * per-candidate cost ratio: seconds to train one from scratch / seconds to score one through the supernet;
  * search-level cost ratio: N x scratch cost / (supernet training + N x scoring cost);
  * how the ratio grows with data: both costs are measured per row here and extrapolated to NASRec's
    36.7M-row Criteo training split (scratch and supernet training grow with rows; scoring does not).
Last line: `cost_ratio=<x> kendall_tau=<t> n_subnets=<n>`. A scatter plot goes to --out.
"""
import argparse, json, os, time, warnings, logging
os.environ.setdefault("NASREC_LIT_PROGRESS", "0"); os.environ.setdefault("WANDB_MODE", "disabled")
warnings.filterwarnings("ignore")
from pathlib import Path
import numpy as np


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="frappe"); ap.add_argument("--n", type=int, default=200, help="candidates scored through the supernet")
    ap.add_argument("--subnets", type=int, default=20, help="of those, trained from scratch"); ap.add_argument("--blocks", type=int, default=4)
    ap.add_argument("--scratch-epochs", type=int, default=2); ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="runs/supernet_cost")
    a = ap.parse_args()
    import torch
    from scipy.stats import kendalltau
    from nasrec_lit.data import load_data, split_indices
    from nasrec_lit.nas.space import SpaceConfig, SearchSpace
    from nasrec_lit.nas.supernet import train_supernet, CandidateScorer, cpu_supernet_config
    from nasrec_lit.nas.search import NASRecModel
    from nasrec_lit.baselines import fit, TrainConfig, OptimConfig
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    data = load_data(a.data); data = data.subset(np.arange(len(data))); splits = split_indices(data, seed=2024)
    space = SpaceConfig.cpu(num_blocks=a.blocks); cfg = cpu_supernet_config(seed=a.seed)
    t0 = time.perf_counter(); sn = train_supernet(data, splits, space, cfg); t_sn = time.perf_counter() - t0
    print(f"supernet: {t_sn:.1f}s on {len(splits[0]):,} rows ({cfg.epochs} epochs)")
    rng = np.random.default_rng(a.seed); ss = SearchSpace(space)
    archs, seen = [], set()
    while len(archs) < a.n:
        x = ss.sample(rng)
        if x.key() not in seen: seen.add(x.key()); archs.append(x)
    ft, noft = CandidateScorer(sn, data, splits, cfg), CandidateScorer(sn, data, splits, cfg.replace(finetune_steps=0))
    t0 = time.perf_counter(); s_ft = [ft.score(x)["val_logloss"] for x in archs]; t_score = (time.perf_counter() - t0) / a.n
    t0 = time.perf_counter(); s_noft = [noft.score(x)["val_logloss"] for x in archs[:a.subnets]]; t_noft = (time.perf_counter() - t0) / a.subnets
    print(f"scoring: {t_score:.2f}s per candidate with fine-tuning, {t_noft:.2f}s without")
    scratch, secs = [], []
    for i, x in enumerate(archs[:a.subnets]):
        t0 = time.perf_counter()
        r = fit(NASRecModel(x, data.schema(), space, OptimConfig(optimizer="adam", lr=1e-3)), data,
                TrainConfig(epochs=a.scratch_epochs, batch_size=512, seed=a.seed, progress=False, checkpoints=False), splits=splits)
        secs.append(time.perf_counter() - t0); scratch.append(r["test_logloss"])
        print(f"  subnet {i:2d}: scratch test logloss {r['test_logloss']:.4f} ({secs[-1]:.1f}s); supernet score {s_ft[i]:.4f} / no-FT {s_noft[i]:.4f}", flush=True)
    tau_ft = kendalltau(s_ft[:a.subnets], scratch).statistic; tau_noft = kendalltau(s_noft, scratch).statistic
    t_scratch = float(np.mean(secs)); rows = len(splits[0])
    per_cand = t_scratch / t_score; search = a.n * t_scratch / (t_sn + a.n * t_score)
    R = 36_672_495   # NASRec's Criteo training rows
    scale = R / rows
    search_36m = a.n * t_scratch * scale / (t_sn * scale + a.n * t_score)
    print(f"Kendall tau (supernet vs scratch, {a.subnets} subnets): with fine-tuning {tau_ft:.3f}, without {tau_noft:.3f}")
    print(f"per-candidate ratio {per_cand:.1f}x (scratch {t_scratch:.1f}s vs score {t_score:.2f}s); search-level ratio for N={a.n}: {search:.1f}x")
    print(f"extrapolated to {R:,} training rows (costs per row as measured; scoring fixed): search-level ratio {search_36m:.0f}x")
    import matplotlib; matplotlib.use("Agg"); import matplotlib.pyplot as plt
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.6))
    for axx, s, name, tau in ((ax[0], s_ft[:a.subnets], "with fine-tuning", tau_ft), (ax[1], s_noft, "without fine-tuning", tau_noft)):
        axx.scatter(s, scratch); axx.set_xlabel("supernet val logloss"); axx.set_ylabel("from-scratch test logloss"); axx.set_title(f"{name}: tau={tau:.2f}")
    fig.tight_layout(); fig.savefig(out/"tau.png", dpi=110)
    json.dump(dict(tau_ft=tau_ft, tau_noft=tau_noft, supernet_s=t_sn, score_s=t_score, score_noft_s=t_noft, scratch_s=t_scratch, per_candidate_ratio=per_cand,
                   search_ratio=search, search_ratio_36m=search_36m, supernet_scores=s_ft, scratch=scratch, noft=s_noft,
                   archs=[x.to_dict() for x in archs[:a.subnets]]), open(out/"result.json", "w"), indent=1)
    print(f"cost_ratio={search:.2f} kendall_tau={tau_ft:.3f} n_subnets={a.subnets}")


if __name__ == "__main__":
    main()
