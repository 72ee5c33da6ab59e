"""Data layer: every real source, bad input through the API and the CLI, and a property test of the
streaming reader against a straightforward pandas implementation."""
import gzip, os, subprocess, sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given, settings, strategies as st, HealthCheck

from nasrec_lit.core import shared_data_dir, ConfigError
from nasrec_lit.data import (load_data, DataOptions, DataError, read_delimited, CRITEO, split_indices, make_synthetic,
                             SyntheticConfig, bayes_logloss, AVAZU_COLUMNS)

CLI = [str(Path(sys.executable).parent / "nasrec-lit")]
needs_shared = pytest.mark.skipif(shared_data_dir() is None, reason="no ../shared/data")


@needs_shared
@pytest.mark.parametrize("source,rows,dense,sparse,rate", [("criteo", 10_000, 13, 26, 0.218), ("avazu", 9_999, 0, 23, 0.171),
                                                           ("frappe", 86_582, 0, 10, 1 / 3), ("movielens", 100_000, 0, 10, None)])
def test_real_sources(source, rows, dense, sparse, rate):
    d = load_data(source)
    assert (len(d), d.n_dense, d.n_sparse) == (rows, dense, sparse)
    if rate is not None: assert abs(d.label_rate - rate) < 0.01
    assert set(np.unique(d.label)) <= {0.0, 1.0}
    assert (np.asarray(d.sparse) >= 0).all() and (np.asarray(d.sparse) < np.array(d.cardinalities)).all()
    h = load_data(source, DataOptions(encoding="hash", hash_size=1000))
    assert (np.asarray(h.sparse) < 1000).all() and len(h) == rows


@needs_shared
def test_hash_encoding_matches_nasrec_formula():
    "NASRec: int(hex) mod (table_size-1) + 1, 0 for missing."
    d = load_data("criteo", DataOptions(encoding="hash", hash_size=1001))
    raw = pd.read_csv(shared_data_dir() / "criteo/criteo_kaggle_train_head10k.txt", sep="\t", header=None, dtype=str)
    c1 = raw[14].map(lambda s: 0 if pd.isna(s) else int(s, 16) % 1000 + 1).to_numpy()
    assert np.array_equal(np.asarray(d.sparse)[:, 0], c1)
    dense = np.log1p(np.maximum(raw[1].astype(float).fillna(0).to_numpy(), 0))
    assert np.allclose(np.asarray(d.dense)[:, 0], dense, atol=1e-6)
    # NASRec's own tables: a size per field (its Criteo sizes are the fields' cardinalities), the same formula per field
    sizes = [1460, 583, 10131227, 2202608, 305, 24, 12517, 633, 3, 93145, 5683, 8351593, 3194, 27, 14992, 5461306, 10, 5652, 2173, 4,
             7046547, 18, 15, 286181, 105, 142572]
    per = load_data("criteo", DataOptions(encoding="hash", hash_sizes=sizes))
    assert per.cardinalities == sizes
    for j in (0, 2, 8, 19):
        want = raw[14 + j].map(lambda s, m=sizes[j] - 1: 0 if pd.isna(s) else int(s, 16) % m + 1).to_numpy()
        assert np.array_equal(np.asarray(per.sparse)[:, j], want), j
    with pytest.raises(DataError, match=r"hash_sizes has 2 sizes for 26 sparse fields"): load_data("criteo", DataOptions(encoding="hash", hash_sizes=[9, 9]))
    with pytest.raises(ConfigError, match=r"hash_sizes\[1\]: 1 must be >= 2"): DataOptions(encoding="hash", hash_sizes=[9, 1])
    with pytest.raises(ConfigError, match="per-field table sizes are for encoding='hash'"): DataOptions(hash_sizes=[9, 9])
    assert load_data("movielens", DataOptions(encoding="hash", hash_sizes=[7] * 10)).cardinalities == [7] * 10


def _line(label="0", dense=None, sparse=None):
    dense = dense if dense is not None else [str(i) for i in range(13)]
    sparse = sparse if sparse is not None else ["68fd1e64"] * 26
    return "\t".join([label, *dense, *sparse])


@pytest.mark.parametrize("bad,line,words", [
    ("0\t1\t2", 3, ["expected 40 fields", "found 3"]),
    (_line(dense=["abc"] + ["1"] * 12), 3, ["I1", "non-numeric"]),
    (_line(dense=["1"] * 6 + ["nan"] + ["1"] * 6), 3, ["I7", "non-finite"]),
    (_line(label="7"), 3, ["label '7' not in [0, 1]"]),                # the value, not the field's name (a papercut)
    (_line() + "\t5", 3, ["expected 40 fields", "found 41"]),              # too many fields is as bad as too few
])
def test_bad_rows_named_by_file_and_line(tmp_path, bad, line, words):
    p = tmp_path / "train.txt"
    p.write_text("\n".join([_line(), _line(), bad, _line()]) + "\n")
    with pytest.raises(DataError) as e: load_data(f"criteo:{p}")
    msg = str(e.value)
    assert f"train.txt:{line}:" in msg and all(w in msg for w in words), msg
    ok = load_data(f"criteo:{p}", DataOptions(skip_bad_rows=True))
    assert len(ok) == 3 and ok.report["bad_rows"] == 1 and ok.report["first_bad_lines"] == [f"train.txt:{line}"]


_AV_ROW = lambda extra=0, drop=0: ",".join((["1", "0", "14102100", *["a1"] * (len(AVAZU_COLUMNS) - 3)] + ["x"] * extra)[:len(AVAZU_COLUMNS) + extra - drop])
_FR_ROW = lambda extra=0, drop=0: " ".join((["1", *[f"{i}:1" for i in range(10)]] + [f"{10 + i}:1" for i in range(extra)])[:11 + extra - drop])
_DELIMITED = {   # source, header lines, a good row, a row with one field too many, a row with too few
    "criteo": ("txt", [], _line(), _line() + "\t5", "0\t1\t2"),
    "avazu": ("csv", [",".join(AVAZU_COLUMNS)], _AV_ROW(), _AV_ROW(extra=1), _AV_ROW(drop=5)),
    "frappe": ("libfm", [], _FR_ROW(), _FR_ROW(extra=1), _FR_ROW(drop=3)),
}

@pytest.mark.parametrize("source", sorted(_DELIMITED))
@pytest.mark.parametrize("kind", ["too_many", "too_few"])
def test_field_counts_and_blank_lines_on_every_delimited_source(tmp_path, source, kind):
    """Every delimited source refuses a row with too many fields as well as one with too few, and names its line; a
    blank line before it is counted (bugs that passed every test before: a 41-field Criteo row read as fine, a line
    number one short after a blank line)."""
    ext, head, good, many, few = _DELIMITED[source]
    bad = many if kind == "too_many" else few
    for blank in (False, True):
        rows = [*head, good, good, *([""] if blank else []), bad, good]
        line = len(head) + 3 + blank
        p = tmp_path / f"{kind}{int(blank)}.{ext}"; p.write_text("\n".join(rows) + "\n")
        with pytest.raises(DataError, match=rf"{p.name}:{line}: expected \d+ fields, found \d+"): load_data(f"{source}:{p}", use_cache=False)
        ok = load_data(f"{source}:{p}", DataOptions(skip_bad_rows=True), use_cache=False)
        assert len(ok) == 3 and ok.report["first_bad_lines"] == [f"{p.name}:{line}"], (source, kind, blank, ok.report)


def test_short_row_that_is_not_utf8(tmp_path, capfd):
    """A row of another field count whose bytes are not UTF-8 (arrow cannot decode it for the row handler): its line is
    named, or it is skipped and counted like any other; no UnicodeDecodeError tracebacks on stderr (there were pages)."""
    p = tmp_path / "latin.txt"
    p.write_bytes(("\n".join(_line(sparse=[f"{i:08x}"] * 26) for i in range(6)) + "\n").encode() + b"1\t\xe9\xff\t3\n" + (_line() + "\n").encode())
    with pytest.raises(DataError, match=r"latin.txt:7: expected 40 fields, found 3"): load_data(f"criteo:{p}", use_cache=False)
    assert "UnicodeDecodeError" not in capfd.readouterr().err
    d = load_data(f"criteo:{p}", DataOptions(skip_bad_rows=True), use_cache=False)
    assert len(d) == 7 and d.report["bad_rows"] == 1 and d.report["first_bad_lines"] == ["latin.txt:7"]


def test_avazu_hour_and_libfm_tokens_are_checked(tmp_path):
    "Avazu's hour (YYMMDDHH) feeds hour-of-day and weekday: a malformed one is a bad row (was an odd category and a missing weekday)."
    row = lambda hour: ",".join(["1", "0", hour, *["a1"] * (len(AVAZU_COLUMNS) - 3)])
    for hour in ("abc", "14102125", "1410210"):
        p = tmp_path / "av.csv"; p.write_text(",".join(AVAZU_COLUMNS) + "\n" + row("14102100") + "\n" + row(hour) + "\n")
        with pytest.raises(DataError, match=r"av.csv:3: field hour: not a YYMMDDHH time"): load_data(f"avazu:{p}", use_cache=False)
        d = load_data(f"avazu:{p}", DataOptions(skip_bad_rows=True), use_cache=False)
        assert len(d) == 1 and d.report["first_bad_lines"] == ["av.csv:3"]
    # Frappe's libFM tokens are index:value; one without ':' is a bad row too (it was taken as a category of its own)
    good = "1 " + " ".join(f"{i}:1" for i in range(10))
    p = tmp_path / "fr.libfm"; p.write_text(good + "\n" + good.replace(" 4:1", " 4") + "\n")
    with pytest.raises(DataError, match=r"fr.libfm:2: field \w+: token without ':'"): load_data(f"frappe:{p}", use_cache=False)
    assert len(load_data(f"frappe:{p}", DataOptions(skip_bad_rows=True), use_cache=False)) == 1


def test_error_after_the_first_block_names_the_right_line(tmp_path):
    "A bad row far into a multi-block file: the line number counts every earlier block."
    p = tmp_path / "big.txt"
    lines = [_line(sparse=[f"{i:08x}"] * 26) for i in range(30_000)]
    lines[25_000] = _line(dense=["x"] * 13)
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"big.txt:25001:"):
        load_data(f"criteo:{p}", DataOptions(block_mb=1))


def test_missing_empty_unknown(tmp_path):
    (tmp_path / "empty.txt").write_text("")
    for spec, word in [(f"criteo:{tmp_path}/empty.txt", "empty"), (f"avazu:{tmp_path}/none.csv", "not found"),
                       ("netflix", "unknown data source"), (f"criteo:{tmp_path}", "directory"),
                       ("synthetic:/data/mine.txt", "generated, not read: drop ':/data/mine.txt'"),     # the path was ignored
                       (f"movielens:{tmp_path}/a,{tmp_path}/b", "reads one folder")]:                # the second was ignored
        with pytest.raises(DataError, match=word): load_data(spec)
    (tmp_path / "train.txt.gz").write_bytes(gzip.compress((_line() + "\n").encode() * 5))   # was an arrow parse error and pages of UnicodeDecodeError
    with pytest.raises(DataError, match=r"train.txt.gz: is gzip-compressed; .*gzip -dk train.txt.gz"): load_data(f"criteo:{tmp_path}/train.txt.gz")


def test_blank_lines_only(tmp_path):
    """A file of blank lines (or a header and blank lines) has no data rows: a clear error, not a crash. A piece of
    a longer file that holds only blank lines passes through (before 2026-11-30 both failed with an IndexError)."""
    (tmp_path / "blank.txt").write_text("\n\n\n")
    (tmp_path / "header.csv").write_text(",".join(AVAZU_COLUMNS) + "\n\n")
    (tmp_path / "blank.libfm").write_text("\n")
    for spec in (f"criteo:{tmp_path}/blank.txt", f"avazu:{tmp_path}/header.csv", f"frappe:{tmp_path}/blank.libfm"):
        for enc in ("vocab", "hash"):
            with pytest.raises(DataError, match="no data rows"): load_data(spec, DataOptions(encoding=enc), use_cache=False)
    lines = [_line(label=str(i % 2), sparse=[f"{i % 97:08x}"] * 26) for i in range(6_000)]
    (tmp_path / "gap.txt").write_text("\n".join(lines[:3_000]) + "\n" * 1_500_000 + "\n".join(lines[3_000:]) + "\n")
    (tmp_path / "nogap.txt").write_text("\n".join(lines) + "\n")
    for enc in ("vocab", "hash"):
        gap = load_data(f"criteo:{tmp_path}/gap.txt", DataOptions(encoding=enc, block_mb=1), use_cache=False)
        ref = load_data(f"criteo:{tmp_path}/nogap.txt", DataOptions(encoding=enc, block_mb=1), use_cache=False)
        assert len(gap) == 6_000 and np.array_equal(np.asarray(gap.sparse), np.asarray(ref.sparse)), enc


def test_too_few_rows_for_the_splits(tmp_path):
    "A file too small for the 8:1:1 split: one clear error naming the empty splits (was a StopIteration traceback, or NaN metrics)."
    p = tmp_path / "few.txt"; p.write_text("\n".join(_line(label=str(i % 2)) for i in range(5)) + "\n")
    r = subprocess.run(CLI + ["train", "--model", "fm", "--data", f"criteo:{p}", "--epochs", "1"], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 2 and "validation split is empty (5 rows split 4/0/1)" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    from nasrec_lit.loaders import CTRDataModule
    with pytest.raises(DataError, match="validation and test splits are empty"): CTRDataModule(make_synthetic(SyntheticConfig(rows=10)), splits=(np.arange(10), [], []))


@needs_shared
def test_movielens_bad_input(tmp_path):
    """MovieLens' atomic files: a wrong field count, a non-numeric, non-finite or out-of-range rating or timestamp each
    stop with the file and line (blank lines counted), or are skipped and counted; a header alone is 'no data rows';
    interactions of a user without a profile line are kept and counted. Before 2026-11-30: ±inf ratings and huge
    timestamps were accepted, a short row gave arrow's message without its line, and a header alone gave 0 rows."""
    import shutil
    src = shared_data_dir() / "movielens-100k"
    inter = (src / "ml-100k.inter").read_text().splitlines()

    def folder(name, lines=None, users=None):
        d = tmp_path / name; shutil.copytree(src, d)
        if lines is not None: (d / "ml-100k.inter").write_text("\n".join(lines) + "\n")
        if users is not None: (d / "ml-100k.user").write_text(users)
        return d

    def edit(line, **kw):                                 # line: 1-based file line; kw: rating / timestamp text, or fields
        out = list(inter); f = out[line - 1].split("\t")
        if "fields" in kw: f = f[:kw["fields"]]
        if "rating" in kw: f[2] = kw["rating"]
        if "timestamp" in kw: f[3] = kw["timestamp"]
        out[line - 1] = "\t".join(f); return out

    for name, lines, words in [("short", edit(7, fields=3), ["ml-100k.inter:7:", "expected 4 fields, found 3"]),
                               ("text", edit(5, rating="abc"), ["ml-100k.inter:5:", "not a finite number"]),
                               ("inf", edit(9, rating="inf"), ["ml-100k.inter:9:"]),
                               ("huge_ts", edit(12, timestamp="1e30"), ["ml-100k.inter:12:", "out of range"])]:
        d = folder(name, lines)
        with pytest.raises(DataError) as e: load_data(f"movielens:{d}")
        assert all(w in str(e.value) for w in words), (name, str(e.value))
        ok = load_data(f"movielens:{d}", DataOptions(skip_bad_rows=True))
        assert len(ok) == 99_999 and ok.report["bad_rows"] == 1 and ok.report["first_bad_lines"] == [int(words[0].split(":")[1])], name
    gap = edit(30, rating="nan"); gap.insert(10, "")           # a blank line before the bad row: the bad row is line 31
    with pytest.raises(DataError, match=r"ml-100k.inter:31:"): load_data(f"movielens:{folder('gap', gap)}")
    with pytest.raises(DataError, match="no data rows"): load_data(f"movielens:{folder('header', inter[:1])}")
    users = (src / "ml-100k.user").read_text().splitlines()
    d = load_data(f"movielens:{folder('nouser', users=chr(10).join(users[:-1]) + chr(10))}")   # the last user loses its profile
    last = users[-1].split("\t")[0]
    assert len(d) == 100_000 and d.report["rows_without_user_profile"] == sum(l.split("\t")[0] == last for l in inter[1:]) > 0
    # SUM's user-modeling reader checks through the same function (it had its own: no line numbers, inf accepted)
    from nasrec_lit.core import NasrecError
    from nasrec_lit.usermodel.sum import movielens_user_data
    with pytest.raises(DataError, match=r"ml-100k.inter:9:"): movielens_user_data(tmp_path / "inf")
    ud = movielens_user_data(tmp_path / "inf", skip_bad_rows=True)     # the option its error names exists here too
    assert ud.report == dict(bad_rows=1, first_bad_lines=[9]) and ud.describe()["bad_rows"] == 1
    assert len(ud) == 2 * 99_999 and not movielens_user_data(src).report
    r = subprocess.run(CLI + ["sum", "export", "--snapshots", str(tmp_path / "none"), "--data", f"movielens:{tmp_path / 'inf'}",
                              "--skip-bad-rows"], capture_output=True, text=True)
    assert "skipped 1 bad rows; first: 9" in r.stdout and r.returncode != 0, r.stdout + r.stderr   # no snapshots there
    bad_age = [users[0], "\t".join([users[1].split("\t")[0], "old", *users[1].split("\t")[2:]]), *users[2:]]
    with pytest.raises(NasrecError, match=r"ml-100k.user: column age: 'old' is not an integer"):
        movielens_user_data(folder("bad_age", users="\n".join(bad_age) + "\n"))


def test_beauty_bad_input(tmp_path):
    """SUM's Amazon Beauty reader: each malformed sequence line is named (before 2026-11-30 an empty file, a user
    without items and a negative item id crashed with ValueError, ZeroDivisionError and IndexError)."""
    from nasrec_lit.core import NasrecError
    from nasrec_lit.usermodel.sum import beauty_user_data
    good = ["1 1 2 3 4", "2 5 6 2 7"]
    for name, lines, word in [("empty", [], "no user sequences"), ("text", [*good, "3 a b"], ":3: expected integers"),
                              ("no_items", [*good, "3"], ":3: user 3 has no items"), ("neg", [*good, "3 4 -1"], ":3: ids must be"),
                              ("zero", ["1 0 2", *good[1:]], ":1: ids must be"), ("dup", [*good, "1 3 4"], ":3: user 1 already has a sequence on line 1")]:
        p = tmp_path / f"{name}.txt"; p.write_text("".join(l + "\n" for l in lines))
        with pytest.raises(NasrecError, match=word): beauty_user_data(p)
    p = tmp_path / "ok.txt"; p.write_text("\n".join(good) + "\n\n")            # blank lines are not users
    d = beauty_user_data(p); assert sorted(d.latest) == [1, 2] and d.n_items == 8
    # too short to learn from: before 2026-12-01 single items crashed in np.stack, and users of 2-3 items (all held out)
    # trained a model on no events and printed its "test" metrics
    p = tmp_path / "single.txt"; p.write_text("1 3\n2 4\n")
    with pytest.raises(NasrecError, match="every user has a single item"): beauty_user_data(p)
    from nasrec_lit.usermodel.sum import train_sum, SUMConfig
    p = tmp_path / "short.txt"; p.write_text("1 3 4 5\n2 4 5\n"); short = beauty_user_data(p)      # read, but nothing to train on
    with pytest.raises(NasrecError, match=r"no training events \(events per split train/val/test: \[0, 2, 4\]\).*4 items or more"):
        train_sum(short, SUMConfig(epochs=1), log="disabled")
    with pytest.raises(NasrecError, match=r"no test events \(events per split train/val/test: \[\d+, \d+, 0\]\)"):
        train_sum(d.subset(np.flatnonzero(d.split < 2)), SUMConfig(epochs=1), log="disabled")


def test_cli_bad_input_one_line_nonzero(tmp_path):
    p = tmp_path / "t.txt"; p.write_text(_line() + "\n0\t1\n")
    r = subprocess.run(CLI + ["data", "inspect", "--data", f"criteo:{p}"], capture_output=True, text=True)
    assert r.returncode == 2 and "t.txt:2:" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    r = subprocess.run(CLI + ["data", "inspect", "--data", f"criteo:{p}", "--skip-bad-rows"], capture_output=True, text=True)
    assert r.returncode == 0 and "skipped 1 bad rows" in r.stdout, r.stdout + r.stderr
    # the case: line 11 has label 7. The error shows the value, and the hint names the flag the user types
    p.write_text("".join(_line() + "\n" for _ in range(10)) + _line(label="7") + "\n")
    r = subprocess.run(CLI + ["data", "inspect", "--data", f"criteo:{p}"], capture_output=True, text=True)
    assert r.returncode == 2 and "t.txt:11: label '7' not in [0, 1] (use --skip-bad-rows to drop such rows)" in r.stderr, r.stderr
    # a folder the command cannot create (here under a regular file, which fails for root too): one line naming it, not a traceback
    blocker = tmp_path / "a-file"; blocker.write_text("")
    good = tmp_path / "good.txt"; good.write_text(_line() + "\n")
    r = subprocess.run(CLI + ["data", "inspect", "--data", f"criteo:{good}"], capture_output=True, text=True,
                       env=dict(os.environ, NASREC_LIT_CACHE=str(blocker / "cache")))
    assert r.returncode == 2 and f"{blocker}" in r.stderr and "Not a directory" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    r = subprocess.run(CLI + ["train", "--model", "lr", "--data", "synthetic", "--epochs", "1", "--runs-dir", str(blocker / "runs")],
                       capture_output=True, text=True, env=dict(os.environ, WANDB_MODE="disabled", NASREC_LIT_PROGRESS="0"))
    assert r.returncode == 2 and f"{blocker}" in r.stderr and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_failed_read_keeps_existing_cache(tmp_path):
    "A crash or error mid-read leaves no partial cache and never harms an existing one."
    p = tmp_path / "a.txt"; p.write_text("\n".join(_line() for _ in range(10)) + "\n")
    d = load_data(f"criteo:{p}"); cache = Path(d.report["cache"])
    bad = tmp_path / "b.txt"; bad.write_text(_line() + "\n0\t1\n")
    with pytest.raises(DataError): load_data(f"criteo:{bad}")
    assert (cache / "meta.json").exists() and not list(cache.parent.glob("*partial*"))
    assert load_data(f"criteo:{p}").report["cached"]


def test_damaged_cache_is_read_again(tmp_path):
    "A cache folder cut short or with a broken meta.json (by hand, or a full disk elsewhere) warns and is rebuilt, never mis-read."
    p = tmp_path / "a.txt"; p.write_text("\n".join(_line(sparse=[f"{i:08x}"] * 26) for i in range(50)) + "\n")
    d = load_data(f"criteo:{p}"); cache = Path(d.report["cache"]); ref = np.asarray(d.sparse).copy()
    for damage in (lambda: (cache / "sparse.bin").write_bytes(b"\0" * 100), lambda: (cache / "dense.bin").unlink(),
                   lambda: (cache / "meta.json").write_text("{oops")):
        damage()
        with pytest.warns(UserWarning, match="damaged cache"): again = load_data(f"criteo:{p}")
        assert np.array_equal(np.asarray(again.sparse), ref) and Path(again.report["cache"]) == cache
    from nasrec_lit.data import load_cached
    (cache / "label.bin").write_bytes(b"")
    with pytest.raises(DataError, match=r"damaged cache \(label.bin: 0 bytes, expected 200\)"): load_cached(cache)


def test_block_size_never_changes_the_result(tmp_path):
    "Many 1 MB pieces (two reused buffers, background writes, block-wise vocabulary remap) = one piece, both encodings."
    rng = np.random.default_rng(0)
    p = tmp_path / "multi.txt"
    lines = [_line(label=str(i % 2), dense=[str(v) if v % 7 else "" for v in rng.integers(-3, 200_000, 13)],
                   sparse=[f"{v:08x}" if v % 11 else "" for v in rng.zipf(1.5, 26) % 5000] ) for i in range(20_000)]
    p.write_text("\n".join(lines))                       # no newline after the last line
    for enc in ("vocab", "hash"):
        one = load_data(f"criteo:{p}", DataOptions(encoding=enc, block_mb=64))
        many = load_data(f"criteo:{p}", DataOptions(encoding=enc, block_mb=1))
        assert len(one) == len(many) == 20_000
        for k in ("dense", "sparse", "label"): assert np.array_equal(np.asarray(getattr(one, k)), np.asarray(getattr(many, k))), (enc, k)
        assert one.cardinalities == many.cardinalities



def test_fixed_width_categoricals_fall_back_per_piece(tmp_path):
    """Criteo's hash encoding parses categoricals as 8-byte fixed width; a piece with a value of another width
    (or a non-hex one) is parsed again variable-width, and the ids are those of the variable-width reader."""
    import dataclasses
    from nasrec_lit.data import _read_options, _parse, _chunks
    rng = np.random.default_rng(1)
    odd = {7_000: "abc", 12_000: "0123456789", 15_000: "zzzzzzzz", 18_000: "68FD1E64"}   # short, long, non-hex, upper case
    lines = [_line(label=str(i % 2), sparse=[odd.get(i) or (f"{v:08x}" if v % 13 else "") for v in rng.integers(0, 1 << 32, 26)])
             for i in range(20_000)]
    p = tmp_path / "fixed.txt"; p.write_text("\n".join(lines) + "\n")
    opts = DataOptions(encoding="hash", block_mb=1)
    names, types, include, _ = _read_options(CRITEO, opts, True, p)
    kinds = [str(_parse(bytes(b), names, types, include, CRITEO)[0].column("C1").type) for _, b in _chunks(p, 1 << 20, False)]
    assert "fixed_size_binary[8]" in kinds and "binary" in kinds     # the odd pieces only fell back
    fixed = read_delimited([p], CRITEO, opts, use_cache=False)
    varw = read_delimited([p], dataclasses.replace(CRITEO, cat_width=None), opts, use_cache=False)
    assert np.array_equal(np.asarray(fixed.sparse), np.asarray(varw.sparse)) and np.array_equal(np.asarray(fixed.dense), np.asarray(varw.dense))
    ids = np.asarray(fixed.sparse)
    assert ids[18_000, 0] == 1 + 0x68FD1E64 % (opts.hash_size - 1) and (ids[:, 0] == 0).any()   # upper-case hex; missing → 0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet="ab\t ", max_size=40), min_size=1, max_size=30), st.booleans(), st.booleans(),
       st.sampled_from(["", "  ", "x"]), st.integers(1, 64))
@example([" ", ""], False, False, "", 1)           # a blank last line that ends in a newline is data (the parser reports it)
def test_chunks_cover_the_file_and_end_at_newlines(lines, header, final_newline, tail, chunk):
    "Pieces of the memory-mapped file: zero-copy views at the right offsets, each ending at a newline."
    import tempfile
    from nasrec_lit.data import _chunks
    body = "\n".join(lines) + ("\n" if final_newline else "")
    content = (("h1\th2\n" if header else "") + body + (tail if final_newline else "")).encode()
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "f.txt"; p.write_bytes(content)
        pieces = [(off, bytes(v)) for off, v in _chunks(p, chunk, header)]
    start = 6 if header else 0
    assert all(content[off: off + len(b)] == b for off, b in pieces)
    assert [off for off, _ in pieces] == sorted(off for off, _ in pieces) and (not pieces or pieces[0][0] == start)
    joined = b"".join(b for _, b in pieces)
    expect = content[start:]
    if not expect.endswith(b"\n") and not expect[expect.rfind(b"\n") + 1:].strip(): expect = expect[:expect.rfind(b"\n") + 1]
    assert joined == expect
    assert all(b.endswith(b"\n") for _, b in pieces[:-1])


HEXISH = ["a1", "ff", "00c0ffee", "zz", "7", "ABCdef", "0123456789abcdef0", "00000000", "fffffffffffffff", "g0"]


@pytest.mark.parametrize("where", ["background write", "vocabulary remap"])
def test_a_failing_write_surfaces_and_leaves_no_partial_cache(tmp_path, monkeypatch, where):
    "A disk error in the background writer or in the min-count pass reaches the caller; no partial folder is left."
    import nasrec_lit.data as D
    p = tmp_path / "w.txt"; p.write_text("\n".join(_line(sparse=[f"{i:08x}"] * 26) for i in range(30_000)) + "\n")
    def boom(*a, **k): raise OSError(28, "No space left on device")
    if where == "background write":
        real, calls = D._Sink._write, []
        def flaky(self, *blocks):
            calls.append(1)
            return boom() if len(calls) == 2 else real(self, *blocks)
        monkeypatch.setattr(D._Sink, "_write", flaky)
    else: monkeypatch.setattr(D, "_apply_vocab", boom)
    monkeypatch.setenv("NASREC_LIT_CACHE", str(tmp_path / "cache"))
    with pytest.raises(OSError, match="No space"): load_data(f"criteo:{p}", DataOptions(block_mb=1))
    assert not list((tmp_path / "cache").glob("*partial*"))


def _pandas_vocab_ids(col: pd.Series, min_count: int) -> np.ndarray:
    "Reference: ids by first appearance among values seen >= min_count times; 0 for missing/rare."
    counts = col.value_counts()
    keep = [v for v in pd.unique(col.dropna()) if counts[v] >= min_count]
    ids = {v: i + 1 for i, v in enumerate(keep)}
    return col.map(lambda v: ids.get(v, 0) if not pd.isna(v) else 0).to_numpy()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.booleans(), st.lists(st.one_of(st.none(), st.integers(-5, 10**6)), min_size=13, max_size=13),
                          st.lists(st.one_of(st.none(), st.sampled_from(HEXISH)), min_size=26, max_size=26)),
                min_size=1, max_size=60), st.integers(1, 3))
def test_reader_matches_pandas_reference(tmp_path, rows, min_count):
    p = tmp_path / f"prop-{abs(hash(str(rows))) % 10**9}.txt"
    p.write_text("".join("\t".join([str(int(l))] + ["" if v is None else str(v) for v in dn] + ["" if v is None else v for v in sp]) + "\n"
                         for l, dn, sp in rows))
    d = load_data(f"criteo:{p}", DataOptions(min_count=min_count))
    ref = pd.read_csv(p, sep="\t", header=None, dtype={i: str for i in range(14, 40)}, keep_default_na=False, na_values=[""])
    assert np.array_equal(np.asarray(d.label), ref[0].to_numpy(np.float32))
    dense = np.log1p(np.maximum(ref.iloc[:, 1:14].astype(float).fillna(0).to_numpy(), 0)).astype(np.float32)
    assert np.allclose(np.asarray(d.dense), dense)
    for j in range(26):
        assert np.array_equal(np.asarray(d.sparse)[:, j], _pandas_vocab_ids(ref[14 + j], min_count)), j
    h = load_data(f"criteo:{p}", DataOptions(encoding="hash", hash_size=97))
    assert np.array_equal(np.asarray(h.dense), np.asarray(d.dense))
    for j in range(26):
        assert np.array_equal(np.asarray(h.sparse)[:, j], ref[14 + j].map(lambda v: _python_hash_id(v, 97)).to_numpy()), j


@needs_shared
@pytest.mark.parametrize("source", ["frappe", "avazu"])
def test_dictionary_sources_match_pandas_vocabulary(source):
    """The vocabularies of the dictionary-encoded sources against the pandas reference, field by field, on the real
    files, at two min-counts. pyarrow parses a piece into several chunks, each with its own dictionary, so a value
    recurs across them: its counts must add up and its id stay one (before the hash-table vocabulary, a value seen
    once in each of two chunks fell to OOV, Frappe's user field kept 816 of its 852 repeated values, and ids left
    first-appearance order)."""
    from nasrec_lit.data import DEFAULT_FILES, AVAZU
    files = [shared_data_dir() / f for f in DEFAULT_FILES[source]]
    if source == "frappe":                     # libFM: label, then 'index:value' tokens; the index is the category
        raw = pd.DataFrame([line.split()[1:] for f in files for line in open(f)]).apply(lambda c: c.str.split(":").str[0])
        fields = dict(enumerate(raw.columns))
    else:                                      # the test file has no header; hour is split into hour-of-day and weekday
        head = pd.read_csv(files[0], dtype=str)
        raw = pd.concat([head] + [pd.read_csv(f, dtype=str, header=None, names=head.columns) for f in files[1:]], ignore_index=True)
        fields = {AVAZU.sparse.index(c): c for c in AVAZU.sparse if c != "hour"}
    for min_count in (2, 3):
        d = load_data(source, DataOptions(min_count=min_count), use_cache=False)
        assert len(d) == len(raw)
        for j, c in fields.items():
            want = _pandas_vocab_ids(raw[c], min_count)
            assert np.array_equal(np.asarray(d.sparse)[:, j], want), (source, c, min_count)
            assert d.cardinalities[j] == want.max() + 1


def _python_hash_id(v, hash_size: int) -> int:
    "Reference, one value at a time: hex strings of <= 15 digits by value, others FNV-1a 64; 0 → 1; missing → 0."
    if pd.isna(v): return 0
    if len(v) <= 15 and all(c in "0123456789abcdefABCDEF" for c in v): key = int(v, 16)
    else:
        key = 0xCBF29CE484222325
        for b in v.encode(): key = ((key ^ b) * 0x100000001B3) % 2**64
    return (key or 1) % (hash_size - 1) + 1


def test_synthetic_bayes_is_a_floor():
    d = make_synthetic(SyntheticConfig(rows=20_000, seed=3))
    base = d.label_rate
    assert bayes_logloss(d) < -(base * np.log(base) + (1 - base) * np.log(1 - base))
    tr, va, te = split_indices(d, seed=0, stratify=True)
    assert abs(d.label[te].mean() - base) < 2e-3


@pytest.mark.parametrize("encoding,repeats", [("vocab", 2), ("hash", 1)])
def test_preprocess_benchmark_runs(tmp_path, encoding, repeats):
    """benchmarks/preprocess.py end to end, tiny (20k rows): it writes its Criteo-format file, checks
    that ours and pandas agree, prints the per-pair ratios and ends with the contract line."""
    import re
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "preprocess.py"
    env = dict(os.environ, TMPDIR=str(tmp_path))                 # its data file and work folder go here
    out = subprocess.run([sys.executable, str(script), "--rows", "20000", "--repeats", str(repeats), "--encoding", encoding],
                         capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, (out.stdout[-2000:], out.stderr[-2000:])
    assert (tmp_path / "nasrec-pre-data" / "criteo-20000-seed0.txt").stat().st_size > 1_000_000
    assert "identical outputs" in out.stdout and "True" in out.stdout.split("identical outputs")[1].splitlines()[0]
    pair = re.search(r"pandas/ours within each repeat: ([\d. ]+); median ([\d.]+)", out.stdout)
    assert pair and len(pair[1].split()) == repeats, out.stdout
    last = out.stdout.strip().splitlines()[-1]
    m = re.fullmatch(r"rows=20000 ratio_vs_pandas=([\d.]+) mb_per_s=([\d.]+) floor_mb_per_s=([\d.]+) peak_rss_mb=(\d+)", last)
    assert m and all(float(v) > 0 for v in m.groups()), last


BOM = b"\xef\xbb\xbf"


@needs_shared
def test_a_byte_order_mark_is_not_data(tmp_path):
    """A UTF-8 byte-order mark (what Excel and some editors write first) changes nothing any reader returns. Before
    2026-11-30: Avazu with a header read the header as a data row ("label 'click' not in [0, 1]"); MovieLens said its
    header lacked `user_id`; a JSONL or PandaLM file was 'not valid JSON'; Beauty's first line was 'not integers'.
    (pandas already skipped it in CrossEval's tables; the reader now says so explicitly.)"""
    import json, shutil
    src = shared_data_dir()
    def bom(p: Path, out: Path, lines=None):
        data = p.read_bytes() if lines is None else b"".join(p.read_bytes().splitlines(keepends=True)[:lines])
        out.write_bytes(BOM + data); return out
    same = lambda a, b: all(np.array_equal(np.asarray(getattr(a, k)), np.asarray(getattr(b, k))) for k in ("dense", "sparse", "label")) \
        and a.cardinalities == b.cardinalities
    for source, rel in [("avazu", "avazu/avazu_head_train.txt"), ("criteo", "criteo/criteo_kaggle_train_head10k.txt"), ("frappe", "frappe/frappe.test.libfm")]:
        plain = tmp_path / f"{source}.txt"; plain.write_bytes(b"".join((src / rel).read_bytes().splitlines(keepends=True)[:800]))
        marked = bom(plain, tmp_path / f"{source}-bom.txt")
        for enc in ("vocab", "hash"):
            o = DataOptions(encoding=enc)
            assert same(load_data(f"{source}:{plain}", o, use_cache=False), load_data(f"{source}:{marked}", o, use_cache=False)), (source, enc)
    ml = tmp_path / "ml"; shutil.copytree(src / "movielens-100k", ml)
    for f in ml.glob("ml-100k.*"): f.write_bytes(BOM + f.read_bytes())
    assert same(load_data("movielens", use_cache=False), load_data(f"movielens:{ml}", use_cache=False))
    from nasrec_lit.usermodel.sum import movielens_user_data, beauty_user_data
    assert np.array_equal(movielens_user_data(ml).user_sparse, movielens_user_data().user_sparse)
    b = tmp_path / "beauty.txt"; b.write_bytes(BOM + b"1 1 2 3\n2 4 5 2\n")
    assert sorted(beauty_user_data(b).latest) == [1, 2]
    from nasrec_lit.llm.preference import read_jsonl_pairs, read_pandalm
    j = tmp_path / "pairs.jsonl"; j.write_bytes(BOM + b'{"prompt": "a", "chosen": "b", "rejected": "c"}\n')
    assert len(read_jsonl_pairs(j)) == 1
    rows = [dict(idx=0, instruction="i", input="", response1="a", response2="b", annotator1=2, annotator2=2, annotator3=1)]
    pl = tmp_path / "pandalm.json"; pl.write_bytes(BOM + json.dumps(rows).encode())
    assert len(read_pandalm(pl)) == 1
    from nasrec_lit.llm import crosseval as ce
    t = bom(ce.crosseval_table_path("gpt4o"), tmp_path / "table.csv")
    assert ce.read_score_table(t).equals(ce.read_score_table(ce.crosseval_table_path("gpt4o")))


def test_processes_started_at_once_on_a_cold_cache_all_read_it(tmp_path):
    """Two trainings (or a DDP run's ranks) started together on data not yet cached: one builds the cache, the others
    wait for it and read it. Before 2026-12-01 each built its own and deleted the others' files: 3 `data prepare` of
    the Criteo sample at once failed with 'sparse.bin: No such file or directory' in 2 of 5 tries."""
    crit = shared_data_dir() / "criteo" / "criteo_kaggle_train_head10k.txt"
    if not crit.exists(): pytest.skip("no Criteo sample")
    code = ("import sys, hashlib, numpy as np; from nasrec_lit.data import load_data; d = load_data(sys.argv[1]); "
            "import os; print(len(d), hashlib.sha256(np.ascontiguousarray(d.sparse).tobytes()).hexdigest()[:16], os.stat(d.report['cache'] + '/meta.json').st_ino)")
    for round_ in range(2):
        env = dict(os.environ, NASREC_LIT_CACHE=str(tmp_path / f"cache{round_}"), NASREC_LIT_PROGRESS="0")
        procs = [subprocess.Popen([sys.executable, "-c", code, f"criteo:{crit}"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(3)]
        outs = [p.communicate(timeout=300) for p in procs]
        assert all(p.returncode == 0 for p in procs), [e[-400:] for _, e in outs]
        lines = [o.split() for o, _ in outs]
        assert len({(n, h) for n, h, _ in lines}) == 1 and lines[0][0] == "10000", lines    # the same arrays everywhere
        assert len({i for _, _, i in lines}) == 1, lines                  # built once: every process read the same cache folder
        assert len([q for q in (tmp_path / f"cache{round_}").iterdir() if q.is_dir()]) == 1      # one cache folder
        assert [q for q in (tmp_path / f"cache{round_}").iterdir() if ".partial" in q.name] == []    # no leftovers
