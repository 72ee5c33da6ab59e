"""The notebooks as a reader meets them in a browser: JupyterLab in headless Chromium (Debian's `chromium` and
`chromium-driver`, driven by Selenium; nothing downloaded) opens `index.ipynb`, runs all its cells from the Run menu,
and shows its figure and no error. CI installs the browser and sets NASREC_LIT_REQUIRE_BROWSER=1, so there the test
fails instead of skipping when the browser is missing."""
import json, os, shutil, socket, subprocess, sys, time, uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _need(what: str, ok: bool):
    if ok: return
    if os.environ.get("NASREC_LIT_REQUIRE_BROWSER"): raise AssertionError(f"{what} is required here (NASREC_LIT_REQUIRE_BROWSER=1)")
    pytest.skip(f"needs {what}")


def headless_chromium():
    "docs/screenshots.py's headless Chromium; skips (fails under NASREC_LIT_REQUIRE_BROWSER) where it is missing."
    _need("Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)", bool(shutil.which("chromium") and shutil.which("chromedriver")))
    try: import selenium  # noqa: F401
    except ImportError: _need("selenium (make install)", False)
    sys.path.insert(0, str(ROOT/"docs"))
    from screenshots import chromium
    return chromium()


def _start_lab(root: Path, tmp: Path):
    import httpx
    with socket.socket() as s: s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]
    tok = uuid.uuid4().hex
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(tmp/"rt"), JUPYTER_CONFIG_DIR=str(tmp/"cfg"), NASREC_LIT_PROGRESS="0", WANDB_MODE="disabled")
    from nasrec_lit.core import shared_data_dir
    if shared_data_dir(): env["NASREC_LIT_DATA"] = str(shared_data_dir())
    p = subprocess.Popen([sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", f"--IdentityProvider.token={tok}",
                          f"--ServerApp.root_dir={root}", *(["--allow-root"] if os.geteuid() == 0 else [])],
                         env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(600):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/status", headers={"Authorization": f"token {tok}"}).status_code == 200: break
        except httpx.HTTPError: pass
        time.sleep(0.1)
    else:
        p.terminate(); raise AssertionError("jupyter lab did not start")
    return p, f"http://127.0.0.1:{port}", tok


def test_index_notebook_runs_in_jupyterlab_in_chromium(tmp_path):
    drv = headless_chromium()
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    work = tmp_path/"nbs"; work.mkdir()
    nb = json.loads((ROOT/"nbs"/"index.ipynb").read_text())          # a copy (the lab's autosave must not touch the checkout),
    for c in nb["cells"]: c.update(outputs=[], execution_count=None) if c["cell_type"] == "code" else None   # without outputs
    (work/"index.ipynb").write_text(json.dumps(nb))
    code_cells = sum(c["cell_type"] == "code" for c in nb["cells"])
    lab, base, tok = _start_lab(work, tmp_path)
    try:
        drv.get(f"{base}/lab/tree/index.ipynb?token={tok}")
        wait = WebDriverWait(drv, 180)
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".jp-Notebook .jp-CodeCell")) == code_cells)
        time.sleep(3)                                              # the kernel connects after the cells render
        drv.find_element(By.XPATH, "//div[contains(@class,'lm-MenuBar-itemLabel') and text()='Run']").click()
        wait.until(lambda d: d.find_elements(By.XPATH, "//div[contains(@class,'lm-Menu-itemLabel') and text()='Run All Cells']"))
        drv.find_element(By.XPATH, "//div[contains(@class,'lm-Menu-itemLabel') and text()='Run All Cells']").click()
        prompts = lambda d: [e.text.strip() for e in d.find_elements(By.CSS_SELECTOR, ".jp-CodeCell .jp-InputPrompt")]
        WebDriverWait(drv, 600, poll_frequency=1).until(
            lambda d: len(prompts(d)) == code_cells and all(p.startswith("[") and p[1:-2].isdigit() for p in prompts(d)))
        outputs = drv.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output")
        text = "\n".join(o.text for o in outputs)
        drv.save_screenshot(str(tmp_path/"index_in_jupyterlab.png"))
        if os.environ.get("NASREC_LIT_SCREENSHOTS"):
            Path(os.environ["NASREC_LIT_SCREENSHOTS"]).mkdir(parents=True, exist_ok=True)
            drv.save_screenshot(str(Path(os.environ["NASREC_LIT_SCREENSHOTS"])/"index_in_jupyterlab.png"))
        assert "Traceback (most recent call last)" not in text and "Error" not in "".join(
            o.text for o in outputs if o.get_attribute("data-mime-type") == "application/vnd.jupyter.stderr"), text[-3000:]
        assert drv.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output img"), "no figure in the outputs"
        counts = sorted(int(p[1:-2]) for p in prompts(drv))
        assert counts == list(range(1, code_cells + 1)), counts        # every cell ran once, in order
    finally:
        drv.quit(); lab.terminate(); lab.wait(timeout=30)
