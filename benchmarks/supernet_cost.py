"""Weight-sharing payoff and rank correlation, in one run (`nas.nasrec.rank_study`): real Frappe data by default,
or `--data teacher`, labels from a network of the space itself (`nas.teacher`), where architecture matters.

Trains the NASRec supernet (CPU configuration), scores N random candidates through it (with and without
head-only fine-tuning), trains n of them from scratch with the search's own from-scratch protocol
(`train_from_scratch` under `cpu_search_config()`: Adam 1e-3, embedding L2 1e-2, batch 1024, up to 10 epochs,
early stopping on validation) once per seed, and prints:
  * Kendall tau between supernet validation log loss and from-scratch test log loss (mean over the seeds),
    with and without fine-tuning, and the noise ceiling: tau between two seeds of the same subnets;
  * per-candidate cost ratio: seconds to train one from scratch (one seed) / seconds to score one;
  * search-level cost ratio: N x scratch cost / (supernet training + N x scoring cost);
  * how the ratio grows with data: both trainings are measured per row here and extrapolated to NASRec's
    36.7M-row Criteo training split (scoring a candidate does not grow with the training rows).
Everything is kept in --out as it is produced: an interrupted run resumes there. A figure goes to --out/tau.png.
Last line: `cost_ratio=<x> kendall_tau=<t> n_subnets=<n>`.
"""
import argparse, json, os, warnings
os.environ.setdefault("NASREC_LIT_PROGRESS", "0"); os.environ.setdefault("WANDB_MODE", "disabled")
warnings.filterwarnings("ignore")
from pathlib import Path


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="frappe"); ap.add_argument("--n", type=int, default=200, help="candidates scored through the supernet")
    ap.add_argument("--subnets", type=int, default=20, help="of those, trained from scratch"); ap.add_argument("--blocks", type=int, default=4)
    ap.add_argument("--scratch-seeds", type=int, default=2, help="from-scratch trainings per subnet (ground truth = their mean)")
    ap.add_argument("--supernet", default="{}", help="JSON overrides of cpu_supernet_config(), e.g. '{\"epochs\": 6}'")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="runs/supernet_cost")
    a = ap.parse_args()
    import matplotlib; matplotlib.use("Agg")
    from nasrec_lit.data import load_data
    from nasrec_lit.nas.space import SpaceConfig
    from nasrec_lit.nas.supernet import cpu_supernet_config
    from nasrec_lit.nas.nasrec import rank_study, plot_rank_study
    data = load_data(a.data)
    sn_cfg = cpu_supernet_config(seed=a.seed, **json.loads(a.supernet))
    print(f"supernet config: {sn_cfg.to_dict()}")
    r = rank_study(data, a.out, SpaceConfig.cpu(num_blocks=a.blocks), sn_cfg, n=a.n, subnets=a.subnets, scratch_seeds=a.scratch_seeds, seed=a.seed)
    plot_rank_study(r).savefig(Path(a.out)/"tau.png", dpi=110)
    print(f"Kendall tau (supernet vs mean of {a.scratch_seeds} from-scratch seeds, {a.subnets} subnets): "
          f"with fine-tuning {r['tau_ft']:.3f}, without {r['tau_noft']:.3f}")
    print(f"noise ceiling: tau between two from-scratch seeds {r['tau_ceiling']:.3f}; mean |seed difference| {r['seed_abs_diff']:.4f} "
          f"vs spread of subnet means {r['truth_range'][0]:.4f}-{r['truth_range'][1]:.4f}")
    print(f"spread/noise: std of the subnets' mean log loss {r['truth_std']:.4f} / one run's seed noise {r['seed_noise_std']:.4f} = {r['spread_noise_ratio']:.1f}")
    print(f"per-candidate ratio {r['per_candidate_ratio']:.1f}x (scratch {r['scratch_seconds']:.1f}s vs score {r['score_seconds']:.2f}s); "
          f"search-level ratio for N={a.n}: {r['search_ratio']:.1f}x (supernet {r['supernet_seconds']:.0f}s)")
    print(f"extrapolated to 36,672,495 training rows (trainings scale with rows, scoring fixed): search-level ratio {r['search_ratio_36m']:.0f}x")
    print(f"cost_ratio={r['search_ratio']:.2f} kendall_tau={r['tau_ft']:.3f} n_subnets={a.subnets}")


if __name__ == "__main__":
    main()
