"""Screenshots of the built site (`make docs` first) in Debian's headless Chromium, the way a reader meets the pages.

Usage: python docs/screenshots.py [--site _site] [--out _site/screenshots] [PAGE ...]   (default pages: home, CLI, NASRec, search, SUM)
Needs `apt-get install chromium chromium-driver` and selenium (make install)."""
import argparse, shutil
from pathlib import Path

PAGES = ("index", "90_cli", "12b_nasrec", "12_search", "30_sum")


def chromium(width: int = 1400, height: int = 1000):
    "A Selenium driver of Debian's headless Chromium; RuntimeError naming what is missing."
    chrome, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chrome and driver): raise RuntimeError("needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    opts = Options(); opts.binary_location = chrome
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", f"--window-size={width},{height}"):
        opts.add_argument(a)
    return webdriver.Chrome(service=Service(driver), options=opts)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("pages", nargs="*", default=list(PAGES))
    ap.add_argument("--site", type=Path, default=Path("_site")); ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    out = a.out or a.site/"screenshots"; out.mkdir(parents=True, exist_ok=True)
    drv = chromium()
    try:
        for page in a.pages:
            f = (a.site/f"{page}.html").resolve()
            if not f.exists(): raise SystemExit(f"{f}: no such page (make docs first)")
            drv.get(f.as_uri())
            height = drv.execute_script("return document.body.scrollHeight")
            drv.save_screenshot(str(out/f"{page}.png"))
            print(f"{out/f'{page}.png'}  (first screen of a {height} px page)")
    finally:
        drv.quit()


if __name__ == "__main__":
    main()
