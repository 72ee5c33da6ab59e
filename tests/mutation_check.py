"""Mutation check: put a known, plausible bug into one line of the package and expect the test that guards it to fail.

Each mutation below was a bug that once passed every notebook and test (issue 39). For each, the package is copied to
a temporary folder, the one line is changed there, and pytest runs the named test with that copy first on PYTHONPATH
(the checkout is never touched). A mutation the test does not catch, or a line that is no longer in the source (the
code moved: update the mutation), fails the check. `make test` runs the fast ones; `--all` adds those that start a
service or train (SOAP).

    python tests/mutation_check.py [--all] [--only NAME]
"""
import argparse, os, shutil, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
shared = None          # the real-data folder, as the checkout finds it (set in main)

# name: (module file, the line as it is, the bug, the test that must catch it, slow)
MUTATIONS = {
    "reader_accepts_41_fields": ("data.py", "        invalid.append(row.actual_columns); return \"skip\"",
                                 "        if row.actual_columns > row.expected_columns: return \"skip\"\n        invalid.append(row.actual_columns); return \"skip\"",
                                 "tests/test_data_io.py::test_field_counts_and_blank_lines_on_every_delimited_source", False),
    "line_number_skips_blank_lines": ("data.py", "    lines = first_line + np.arange(len(ends))",
                                      "    lines = first_line + np.cumsum(~empty) - 1",
                                      "tests/test_data_io.py::test_field_counts_and_blank_lines_on_every_delimited_source", False),
    "split_ignores_its_seed": ("data.py", "    rng = np.random.default_rng(seed)", "    rng = np.random.default_rng(2024)",
                               "tests/test_reference_values.py::test_split_indices_depends_on_its_seed", False),
    "ne_divides_by_the_mean_prediction": ("blocks.py", "    q = float(np.mean(y)); h =", "    q = float(np.mean(p)); h =",
                                          "tests/test_reference_values.py::test_normalized_entropy_divides_by_the_entropy_of_the_labels", False),
    "dcn_cross_is_x_times_wx": ("blocks.py", "        for lin in self.layers: x = x0 * lin(x) + x", "        for lin in self.layers: x = x * lin(x)",
                                "tests/test_reference_values.py::test_dcn_v2_cross_layer_is_x0_times_wx_plus_b_plus_x", False),
    "weakest_link_swaps_names": ("llm/crosseval.py", "weaker=a if sa < sb else b, stronger=b if sa < sb else a,",
                                 "weaker=b if sa < sb else a, stronger=a if sa < sb else b,",
                                 "tests/test_crosseval.py::test_weakest_link_rows_for_known_pairs", False),
    "evolution_drops_the_youngest": ("nas/search.py", "            self.population = self.population[len(self.told):] + self.told",
                                     "            self.population = self.population[:-len(self.told)] + self.told",
                                     "tests/test_kernel.py::test_evolution_drops_exactly_its_oldest_members", False),
    "soap_serves_the_newest_only": ("usermodel/soap.py", "    return np.mean([r[0].astype(np.float32) for r in recs[:n]], axis=0)",
                                    "    return recs[0][0].astype(np.float32)",
                                    "tests/test_soap.py::test_served_embedding_is_the_mean_of_the_last_three_versions_over_http", True),
}


def check(name: str) -> tuple[bool, str]:
    "(caught, what happened) for one mutation."
    rel, line, bug, test, _ = MUTATIONS[name]
    with tempfile.TemporaryDirectory() as d:
        pkg = Path(d) / "nasrec_lit"
        shutil.copytree(ROOT / "nasrec_lit", pkg, ignore=shutil.ignore_patterns("__pycache__"))
        src = (pkg / rel).read_text()
        if src.count(line) != 1: return False, f"nasrec_lit/{rel}: the line to mutate is there {src.count(line)} times, not once: {line.strip()!r}"
        (pkg / rel).write_text(src.replace(line, bug))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([d, os.environ.get("PYTHONPATH", "")]), PYTHONDONTWRITEBYTECODE="1")
        if "NASREC_LIT_DATA" not in env and shared is not None: env["NASREC_LIT_DATA"] = str(shared)   # found from the checkout, not the copy
        # run from the temporary folder: `python -m` puts the working directory first on sys.path, and the checkout's
        # package would win there
        where = subprocess.run([sys.executable, "-c", "import nasrec_lit; print(nasrec_lit.__file__)"], cwd=d, env=env, capture_output=True, text=True).stdout.strip()
        if not where.startswith(d): return False, f"the mutated copy is not the one imported ({where})"
        r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "--rootdir", str(ROOT), "-c", str(ROOT/"pyproject.toml"),
                            str(ROOT/test)], cwd=d, env=env, capture_output=True, text=True)
        tail = (r.stdout.strip().splitlines() or [""])[-1]
        return r.returncode == 1 and " failed" in tail and " error" not in tail, tail      # a failure, not a broken setup


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--all", action="store_true", help="also the slow mutations (a service, a training)")
    ap.add_argument("--only", action="append", choices=sorted(MUTATIONS), help="run only this mutation (repeatable)")
    a = ap.parse_args()
    names = a.only or [n for n, m in MUTATIONS.items() if a.all or not m[4]]
    global shared
    from nasrec_lit.core import shared_data_dir
    shared = shared_data_dir()
    missed = []
    for n in names:
        t0 = time.time(); caught, what = check(n)
        print(f"{'caught' if caught else 'MISSED'}  {n:36s} {time.time() - t0:5.1f}s  {MUTATIONS[n][3].split('::')[1]}: {what}", flush=True)
        if not caught: missed.append(n)
    print(f"mutations={len(names)} caught={len(names) - len(missed)} missed={','.join(missed) or '-'}")
    sys.exit(1 if missed else 0)


if __name__ == "__main__":
    main()
