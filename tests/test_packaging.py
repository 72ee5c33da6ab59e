"""The package on its own: a wheel built from the checkout carries the redistributable data (`data/`) and its
licenses, and the installed package finds that data from a folder outside any checkout. (`.ci/run` also
installs the wheel with its runtime dependencies into a fresh venv; see `make check-wheel`.)"""
import os, shutil, subprocess, sys, zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ["preference/hh-rlhf_harmless-base_test.jsonl.gz", "preference/LICENSE.hh-rlhf", "preference/pandalm_testset-v1.json",
           "preference/LICENSE.pandalm", "crosseval/crosseval_main_table.csv", "crosseval/crosseval_claude_judge_table.csv",
           "crosseval/README.md", "README.md"]


def _build_wheel(tmp_path) -> Path:
    "A wheel of the checkout's files (tracked, or untracked and not ignored), built in a copy so no stale build/ can leak in."
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, check=True).stdout.decode().split("\0")
    src = tmp_path/"src"
    for f in filter(None, files):
        if (ROOT/f).is_file():
            (src/f).parent.mkdir(parents=True, exist_ok=True); shutil.copy2(ROOT/f, src/f)
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path/"dist"), str(src)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    return next((tmp_path/"dist").glob("nasrec_lit-*.whl"))


def test_wheel_carries_the_shipped_data_and_finds_it_outside_a_checkout(tmp_path):
    whl = _build_wheel(tmp_path)
    with zipfile.ZipFile(whl) as z:
        names = set(z.namelist())
        for f in SHIPPED:
            assert f"nasrec_lit/_data/{f}" in names, f
            assert z.read(f"nasrec_lit/_data/{f}") == (ROOT/"data"/f).read_bytes(), f
        assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
        assert not any(n.startswith(("data/", "tests/", "nbs/")) for n in names)
        z.extractall(tmp_path/"site")
    away = tmp_path/"elsewhere"; away.mkdir()
    code = ("import nasrec_lit; from nasrec_lit.llm.crosseval import crosseval_table_path, read_score_table\n"
            "from nasrec_lit.llm.preference import load_preferences\n"
            "print(nasrec_lit.__file__); print(crosseval_table_path('claude')); print(len(read_score_table(crosseval_table_path())))\n"
            "print(len(load_preferences('hh-rlhf')), len(load_preferences('pandalm')))")
    env = {k: v for k, v in os.environ.items() if k != "NASREC_LIT_DATA"}
    r = subprocess.run([sys.executable, "-c", code], cwd=away, env=dict(env, PYTHONPATH=str(tmp_path/"site")), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    pkg_file, table, rows, pairs = r.stdout.strip().splitlines()
    assert Path(pkg_file).parent == tmp_path/"site"/"nasrec_lit"                  # the unpacked wheel, not the checkout
    assert Path(table) == tmp_path/"site"/"nasrec_lit"/"_data"/"crosseval"/"crosseval_claude_judge_table.csv"
    assert int(rows) == 183 and pairs.split() == ["2312", "894"]


def test_cli_version_matches_the_package_metadata():
    """`nasrec-lit --version` prints the version settings.ini gives the package (there was no such option)."""
    import configparser
    want = configparser.ConfigParser(); want.read(ROOT/"settings.ini")
    r = subprocess.run([str(Path(sys.executable).parent/"nasrec-lit"), "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == f"nasrec_lit {want['DEFAULT']['version']}", r.stdout + r.stderr
