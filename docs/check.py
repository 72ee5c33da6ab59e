"""Check the built site (`make docs` first) the way a reader meets it; exit 1 naming each page and what is wrong.

Checks: every internal link resolves (file and #anchor) and none points to the project's web address instead; no Python object repr (`object at 0x`); no placeholder
docstring ("Call self as a function", "Initialize self", "Create and return a new object"); the page's summary
line ends a sentence (nbdev keeps only the first line of a wrapped `>` summary); every method page has a figure; the
general index lists the documented names and its entries resolve.
Usage: python docs/check.py [--site _site]"""
import argparse, re, sys
from html.parser import HTMLParser
from pathlib import Path

PLACEHOLDERS = ("Call self as a function", "Initialize self.  See help", "Initialize self. See help", "Create and return a new object")
# pages of a method: each must show at least one figure (its experiment's)
# problems known and owned by an open issue: printed, not failed (remove the line when the issue lands)
KNOWN: dict = {}      # problem -> the issue that owns it, while one is open
METHOD_PAGES = ("12b_nasrec", "12c_teacher", "13_rankitect", "14_automl", "15_pim", "21_critic_rm", "22_crosseval", "30_sum", "31_soap", "40_mdp", "41_schedule")


class Page(HTMLParser):
    "Links, anchors, images and the summary paragraph (the first blockquote) of one HTML page."
    def __init__(self):
        super().__init__(); self.links, self.ids, self.imgs, self.quote, self._in_quote = [], set(), 0, None, False
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a: self.ids.add(a["id"])
        if tag == "a" and a.get("href"): self.links.append(a["href"])
        if tag == "img" or (tag == "object" and "image" in (a.get("type") or "")): self.imgs += 1
        if tag == "blockquote" and self.quote is None: self._in_quote, self.quote = True, ""
    def handle_endtag(self, tag):
        if tag == "blockquote": self._in_quote = False
    def handle_data(self, data):
        if self._in_quote: self.quote += data


def own_host() -> str:
    "The project's own docs address (settings.ini doc_host): a link there leaves this site for pages it may not have."
    import configparser
    c = configparser.ConfigParser(); c.read(Path(__file__).resolve().parents[1]/"settings.ini")
    return c["DEFAULT"].get("doc_host", "").rstrip("/")


def check(site: Path) -> list:
    host = own_host()
    pages = {p.name: p for p in site.glob("*.html") if p.stem not in ("genindex", "search")}
    parsed = {}
    for name, p in pages.items():
        h = Page(); h.feed(p.read_text(errors="replace")); parsed[name] = (h, p.read_text(errors="replace"))
    problems = []
    for name, (h, text) in parsed.items():
        for href in h.links:
            if host and href.startswith(host): problems.append(f"{name}: link {href} leaves the site for the project's web address"); continue
            if re.match(r"^[a-z]+:", href) or href.startswith("//"): continue          # external (http:, mailto:)
            path, _, anchor = href.partition("#")
            target = name if not path else Path(path).name
            if path and not (site/path).exists(): problems.append(f"{name}: link to {href} does not resolve"); continue
            if anchor and target in parsed and anchor not in parsed[target][0].ids:
                problems.append(f"{name}: link to {href}: no #{anchor} on {target}")
        for m in re.finditer(r"object at 0x[0-9a-f]+", text):
            problems.append(f"{name}: an object repr on the page ({text[max(0, m.start() - 60):m.end()]!r})")
        for ph in PLACEHOLDERS:
            if ph in text: problems.append(f"{name}: placeholder docstring {ph!r}")
        q = " ".join((h.quote or "").split())
        if q and not re.search(r"[.!?:)`’”]$", q): problems.append(f"{name}: summary line cut mid-sentence: {q[-80:]!r}")
        if Path(name).stem in METHOD_PAGES and h.imgs == 0: problems.append(f"{name}: a method page without a figure")
    problems += check_index(site, parsed)
    return sorted(set(problems))


MIN_INDEX = 100       # the general index lists every documented name (docs/build.py enters them); fewer means it broke


def check_index(site: Path, parsed: dict) -> list:
    "The general index (genindex.html) lists at least MIN_INDEX names, and each entry's page and anchor exist."
    g = site/"genindex.html"
    if not g.exists(): return ["genindex.html: no general index"]
    h = Page(); h.feed(g.read_text(errors="replace"))
    entries = [x for x in h.links if re.match(r"^[\w.-]+\.html#index-\d+$", x)]
    out = [] if len(entries) >= MIN_INDEX else [f"genindex.html: {len(entries)} entries (expected at least {MIN_INDEX})"]
    for href in entries:
        page, _, anchor = href.partition("#")
        if page not in parsed or anchor not in parsed[page][0].ids: out.append(f"genindex.html: entry {href} does not resolve")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0]); ap.add_argument("--site", default="_site")
    site = Path(ap.parse_args().site)
    if not site.is_dir(): sys.exit(f"{site}: no built site (run make docs first)")
    problems = check(site); known = [p for p in problems if p in KNOWN]; problems = [p for p in problems if p not in KNOWN]
    for p in problems: print(p)
    for p in known: print(f"known: {p} ({KNOWN[p]})")
    n = len([p for p in site.glob("*.html") if p.stem not in ("genindex", "search")])
    print(f"docs check: {n} pages, {len(problems)} problems" + (f", {len(known)} known" if known else ""))
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
