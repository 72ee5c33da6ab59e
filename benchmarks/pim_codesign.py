"""PIM co-design against architecture-only search on one quantization-aware supernet (issue 33).

Per seed and at the same budget: an architecture-only search (regularized evolution on validation NE, all on the host
at fp32) and a co-design search (placement, precision and PIM units per part; Pareto form over NE, latency and
energy); the reference is mapped naively all-host and all-PIM, the pick is the co-designed trial at equal or better
NE with the smallest energy-delay product, both are retrained from scratch. Then the host model's calibration
against measured CPU latency, and the sensitivity of the ratios to the most uncertain parameters.
Resumable: rerun the same command after a crash. Last line:
`flops_eff=<x> energy_eff=<y> speedup=<z> ne_delta=<codesigned NE minus architecture-only NE> calib_spearman=<r>`."""
import argparse, json, time
from pathlib import Path


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="frappe"); ap.add_argument("--system", default="cpu+upmem")
    ap.add_argument("--seeds", default="0,1,2"); ap.add_argument("--budget", type=int, default=100)
    ap.add_argument("--batch", type=int, default=64); ap.add_argument("--calib", type=int, default=30)
    ap.add_argument("--out", default="nbs/runs/pim")
    a = ap.parse_args()
    import matplotlib; matplotlib.use("Agg")
    import numpy as np
    from nasrec_lit.data import load_data
    from nasrec_lit.nas.space import SpaceConfig
    from nasrec_lit.nas.pim import (CoDesignConfig, codesign_study, system, sensitivity, sensitivity_summary, calibrate_host,
                                    calibrate_latency, calibration_spearman, plot_fronts)
    t0 = time.perf_counter(); out = Path(a.out)/a.data/a.system; out.mkdir(parents=True, exist_ok=True)
    data = load_data(a.data); space = SpaceConfig.cpu(); seeds = [int(s) for s in a.seeds.split(",")]
    res = codesign_study(data, out, CoDesignConfig(system=a.system, budget=a.budget, batch=a.batch), space=space, seeds=seeds)
    for s in seeds: plot_fronts(out, s).savefig(out/f"fronts_s{s}.png", dpi=110)
    sys_ = system(a.system); schema = data.schema()
    sens = sensitivity(out, sys_, schema, space, a.batch); sens.to_csv(out/"sensitivity.csv", index=False)
    summ = sensitivity_summary(sens); print(summ.round(3).to_string())
    host = calibrate_host(); cal = calibrate_latency(schema, space, host, n=a.calib); cal.to_csv(out/"calibration.csv", index=False)
    rho = calibration_spearman(cal); print("calibration spearman by batch:", {k: round(v, 3) for k, v in rho.items()})
    json.dump(dict(host={k: getattr(host, k) for k in ("peak_flops", "mem_bw", "access_latency_s", "op_overhead_s")}, spearman=rho),
              open(out/"calibration.json", "w"), indent=2)
    rows = res["seeds"]; m = lambda k: float(np.mean([r[k] for r in rows])); sd = lambda k: float(np.std([r[k] for r in rows]))
    for k in ("flops_eff", "energy_eff", "speedup", "ne_delta", "ref_test_ne", "pick_test_ne"):
        print(f"{k}: mean {m(k):.4f} sd {sd(k):.4f} over seeds {seeds}")
    print(f"system={res['system']} batch={a.batch} budget={a.budget} wall={time.perf_counter() - t0:.0f}s")
    print(f"flops_eff={m('flops_eff'):.3f} energy_eff={m('energy_eff'):.3f} speedup={m('speedup'):.3f} ne_delta={m('ne_delta'):.4f} "
          f"calib_spearman={min(rho.values()):.3f}")


if __name__ == "__main__":
    main()
