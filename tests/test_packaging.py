"""The package on its own: a wheel built from the checkout carries the redistributable data (`data/`) and its
licenses, and the installed package finds that data from a folder outside any checkout. (`.ci/run` also
installs the wheel with its runtime dependencies into a fresh venv; see `make check-wheel`.)"""
import pytest
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


def test_the_command_line_starts_without_torch_or_lightning(tmp_path):
    """`nasrec-lit --help`, `data inspect` and one-line errors (bad data, no feature file, neither env nor log, an unknown gymnasium id; `train`, `search`
    and `retrain` with a bad `--data` or data option: ~7 s before 2026-12-01; `serve` on a port in use) answer without importing torch or Lightning (Lightning's
    import alone took ~5 s here: it pulls in torchmetrics, transformers and scipy.signal; `--help` took 6.7 s, now ~0.5 s).
    The loaders live in `nasrec_lit.loaders`, a layer above `nasrec_lit.data`. The rank a command prints
    under is read from the launcher's environment, as Lightning reads it, until Lightning is imported."""
    heavy = "sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'lightning', 'transformers', 'scipy'))"
    code = ("import sys; sys.argv = ['nasrec-lit'] + sys.argv[1:]\n"
            "from nasrec_lit.cli import main\n"
            "try: main()\n"
            f"except SystemExit as e: print('exit', e.code, {heavy}, file=sys.stderr)\n")
    env = dict(os.environ, NASREC_LIT_PROGRESS="0", NASREC_LIT_CACHE=str(tmp_path / "cache"))
    import socket
    taken = socket.create_server(("127.0.0.1", 0)); port = taken.getsockname()[1]      # `serve` on a port in use
    (tmp_path / "features.npz").write_bytes(b"")
    for args, rc in ((["--help"], 0), (["data", "inspect", "--data", "synthetic"], 0), (["data", "prepare", "--data", "nope"], 2),
                     (["serve", "--snapshots", str(tmp_path), "--features", str(tmp_path / "none.npz")], 2), (["mdp-check"], 2),
                     (["mdp-check", "CartPol-v1"], 2), (["train", "--data", "nope"], 2), (["search", "--data", "criteo:/nope.txt"], 2),
                     (["retrain", str(tmp_path), "--data", "frappe", "--encoding", "x"], 2), (["train", "--max-rows", "0"], 2),
                     (["serve", "--snapshots", str(tmp_path), "--features", str(tmp_path / "features.npz"), "--port", str(port)], 2)):
        r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env)
        assert r.stderr.strip().splitlines()[-1] == f"exit {rc} []", (args, r.stdout[-500:], r.stderr[-2000:])
        if args[-1] == "CartPol-v1":   # an unknown gymnasium id: gymnasium's own suggestion, before torch (was ~9 s)
            assert "error: unknown environment 'CartPol-v1': Environment `CartPol` doesn't exist. Did you mean: `CartPole`?" in r.stderr, r.stderr
        if "--port" in args:   # was uvicorn's own line (exit 3) after torch and the app had loaded
            assert f"error: cannot listen on 127.0.0.1:{port}: Address already in use" in r.stderr, r.stderr
    taken.close()
    r = subprocess.run([sys.executable, "-c", "import sys; from nasrec_lit.core import is_rank_zero; "
                        "assert not is_rank_zero() and 'lightning' not in sys.modules, 'rank before Lightning'; "
                        "from nasrec_lit.loaders import ArrayLoader; assert 'lightning' in sys.modules; "
                        "assert not is_rank_zero(), 'rank after'"], capture_output=True, text=True, env=dict(env, LOCAL_RANK="1"))
    assert r.returncode == 0, r.stderr[-2000:]


def test_jupyterlab_serves_the_notebooks_and_its_kernel_imports_the_package(tmp_path):
    """`make install` installs JupyterLab (the card names it; `make lab` starts it on nbs/): the server answers /lab,
    lists and opens the notebooks, and a kernel it starts runs code that imports nasrec_lit, as a reader's would."""
    import json, socket, time, uuid
    import httpx, websocket
    with socket.socket() as s: s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]
    tok, base = uuid.uuid4().hex, f"http://127.0.0.1:{port}"
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(tmp_path/"rt"), JUPYTER_CONFIG_DIR=str(tmp_path/"cfg"))
    p = subprocess.Popen([sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", f"--IdentityProvider.token={tok}",
                          f"--ServerApp.root_dir={ROOT/'nbs'}", *(["--allow-root"] if os.geteuid() == 0 else [])], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    h = {"Authorization": f"token {tok}"}
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{base}/api/status", headers=h).status_code == 200: break
            except httpx.HTTPError: pass
            time.sleep(0.1)
        else: raise AssertionError("jupyter lab did not start")
        r = httpx.get(f"{base}/lab", headers=h); assert r.status_code == 200 and "JupyterLab" in r.text
        names = {x["name"] for x in httpx.get(f"{base}/api/contents", headers=h).json()["content"]}
        assert {"31_soap.ipynb", "12b_nasrec.ipynb", "index.ipynb"} <= names, names
        nb = httpx.get(f"{base}/api/contents/31_soap.ipynb", headers=h).json()
        assert nb["type"] == "notebook" and len(nb["content"]["cells"]) > 20
        k = httpx.post(f"{base}/api/kernels", headers=h, json={"name": "python3"}).json()
        ws = websocket.create_connection(f"ws://127.0.0.1:{port}/api/kernels/{k['id']}/channels?token={tok}", timeout=60)
        msg_id = uuid.uuid4().hex
        ws.send(json.dumps(dict(header=dict(msg_id=msg_id, msg_type="execute_request", username="t", session=uuid.uuid4().hex, version="5.3"),
                                parent_header={}, metadata={}, channel="shell",
                                content=dict(code="import nasrec_lit; print('version', nasrec_lit.__version__)", silent=False))))
        out = ""
        for _ in range(200):
            m = json.loads(ws.recv())
            if m.get("parent_header", {}).get("msg_id") != msg_id: continue
            if m["msg_type"] == "stream": out += m["content"]["text"]
            if m["msg_type"] == "error": raise AssertionError(m["content"])
            if m["msg_type"] == "status" and m["content"]["execution_state"] == "idle": break
        ws.close()
        import nasrec_lit
        assert out.strip() == f"version {nasrec_lit.__version__}", out
    finally:
        p.terminate(); p.wait(timeout=30)


@pytest.mark.parametrize("package,modules", [("nas", ["space", "supernet", "search", "nasrec", "teacher", "rankitect", "automl", "pim"]),
                                             ("llm", ["backbone", "preference", "critic_rm", "crosseval"]),
                                             ("usermodel", ["sum", "soap"]), ("rl", ["mdp"])])
def test_subpackages_give_their_modules_public_names(package, modules):
    "Each subpackage's __all__ is the union of its modules' __all__ (every module listed), and each name is the module's object."
    import importlib
    pkg = importlib.import_module(f"nasrec_lit.{package}")
    on_disk = sorted(p.stem for p in (ROOT/"nasrec_lit"/package).glob("*.py") if not p.name.startswith("_"))
    assert sorted(modules) == on_disk, f"nasrec_lit/{package}/__init__.py must list every module: {on_disk}"
    expected = [n for m in modules for n in importlib.import_module(f"nasrec_lit.{package}.{m}").__all__]
    assert sorted(pkg.__all__) == sorted(expected)
    for m in modules:
        mod = importlib.import_module(f"nasrec_lit.{package}.{m}")
        for n in mod.__all__: assert getattr(pkg, n) is getattr(mod, n), (package, n)
