"""CrossEval: schema validation, the weakest-link rule at and around Δ, correlations against scipy, κ, the CLI line."""
import json
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st
from scipy import stats as sst
from typer.testing import CliRunner

from nasrec_lit.cli import app
from nasrec_lit.llm import crosseval as ce
from nasrec_lit.core import NasrecError


def bench_frame(n=3):
    rows = []
    for k in range(n):
        r = dict(prompt_id=f"p{k}", capability=ce.CAPABILITIES[k % 14], difficulty=["easy", "medium", "hard"][k % 3],
                 l1_category="a", l2_category="b", prompt=f"prompt {k}", attached_file="")
        for i in range(1, 4):
            r[f"response_{i}"] = f"resp {k}.{i}"
            for j in (1, 2):
                r[ce.rating_col(i, j)] = 1 + (k + i + j) % 5; r[ce.expl_col(i, j)] = "because"
        rows.append(r)
    return pd.DataFrame(rows)


def test_reader_round_trip(tmp_path):
    p = tmp_path/"test.csv"; bench_frame(6).to_csv(p, index=False)
    df = ce.read_crosseval(p)
    long = ce.responses_long(df)
    assert len(long) == 18 and long.human_mean.between(1, 5).all()
    refs = ce.references_for(long, 2)
    assert all(len(r) == 2 for r in refs)
    for row, rr in zip(long.itertuples(), refs):                         # leave-one-out: never the rated response
        assert row.response not in [x.response for x in rr]
    for k in (3, -1):                 # a prompt has 3 responses: at most 2 others (3 silently gave 2, -1 dropped one)
        with pytest.raises(NasrecError, match=f"references per response: {k} is not in 0..2"): ce.references_for(long, k)
    r = CliRunner().invoke(app, ["crosseval", "judge", "--data", str(p), "--refs", "3"])
    assert r.exit_code == 2 and "references per response: 3" in r.output, r.output
    r = CliRunner().invoke(app, ["crosseval", "meta-eval", "--data", str(p), "--refs", "0,a"])
    assert r.exit_code == 2 and "--refs: '0,a'" in r.output, r.output
    r = CliRunner().invoke(app, ["crosseval", "meta-eval", "--data", str(p), "--refs", "0,3"])   # ran k=0 in full, then failed
    assert r.exit_code == 2 and "references per response: 3" in r.output, r.output


def test_a_cut_table_keeps_its_references():
    """`--limit` takes the first responses, which can split a prompt's three. With the whole table as the pool, each
    judged response gets the references it gets in the whole table (before 2026-11-30 the last prompt of a cut got
    fewer: 0 of 2 when one response of it was kept)."""
    long = ce.responses_long(bench_frame(3))
    whole = ce.references_for(long, 2, seed=1)
    for n in (1, 4, 7):
        cut = ce.references_for(long.iloc[:n], 2, seed=1, pool=long)
        assert [[x.response for x in r] for r in cut] == [[x.response for x in r] for r in whole[:n]]
    assert [len(r) for r in ce.references_for(long.iloc[:4], 2, seed=1)] == [2, 2, 2, 0]   # without the pool: what went wrong
    # the CSV judge's input is meta-evaluation's: the attached file and the tool-use note are in it (the CLI left them out)
    f = bench_frame(3); f.loc[1, "attached_file"] = "col_a,col_b"; f.loc[1, "capability"] = next(c for c in ce.CAPABILITIES if c.startswith("Tool Use"))
    items = ce.judge_items(ce.responses_long(f), 1)
    assert "[Attached file]\ncol_a,col_b" in items[3][0] and items[3][0] == ce.judge_prompt(
        "prompt 1", "resp 1.1", ce.references_for(ce.responses_long(f), 1)[3], "col_a,col_b", tool_use_note=True)
    assert "[Attached file]" not in items[0][0]


@pytest.mark.parametrize("mutate,match", [
    (lambda d: d.drop(columns=["response_2_human_1_rating"]), r"missing column\(s\) \['response_2_human_1_rating'\]"),
    (lambda d: d.assign(response_1_human_2_rating=[3, 6, 2]), r"line 3, column 'response_1_human_2_rating': rating '6'"),
    (lambda d: d.assign(response_3_human_1_rating=[3, "x", 2]), r"line 3, column 'response_3_human_1_rating'"),
    (lambda d: d.assign(capability=["English", "Cooking", "Coding"]), r"line 3, column 'capability': unknown capability 'Cooking'"),
    (lambda d: d.assign(difficulty=["easy", "hard", "extreme"]), r"line 4, column 'difficulty'"),
])
def test_schema_errors(tmp_path, mutate, match):
    p = tmp_path/"bad.csv"; mutate(bench_frame(3)).to_csv(p, index=False)
    with pytest.raises(ce.CrossEvalSchemaError, match=match): ce.read_crosseval(p)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 5), st.integers(1, 5)), min_size=3, max_size=60))
def test_correlations_match_scipy(pairs):
    x = np.array([a for a, _ in pairs], float); y = np.array([b for _, b in pairs], float)
    got = ce.correlations(x, y)
    if x.std() == 0 or y.std() == 0:
        assert np.isnan(got["pearson"]); return
    assert got["pearson"] == pytest.approx(sst.pearsonr(x, y)[0], abs=1e-9)
    assert got["spearman"] == pytest.approx(sst.spearmanr(x, y)[0], abs=1e-9)
    assert got["kendall"] == pytest.approx(sst.kendalltau(x, y)[0], abs=1e-9)


def test_cohen_kappa_matches_sklearn():
    from sklearn.metrics import cohen_kappa_score
    rng = np.random.default_rng(0); a = rng.integers(0, 3, 200); b = np.where(rng.random(200) < 0.6, a, rng.integers(0, 3, 200))
    assert ce.cohen_kappa(a, b) == pytest.approx(cohen_kappa_score(a, b), abs=1e-12)


@pytest.mark.parametrize("c,a,b,delta,want", [
    (50, 60, 63, 3, None), (50, 63, 60, 3, None),             # exactly Δ apart: does not qualify
    (50, 60, 63.001, 3, "below_both"), (59.999, 60, 64, 3, "below_both"),
    (60, 60, 64, 3, "closer_weaker"), (61.99, 60, 64, 3, "closer_weaker"),
    (62, 60, 64, 3, "closer_stronger"),                         # the midpoint counts against the law
    (64, 64, 60, 3, "closer_stronger"), (64.01, 60, 64, 3, "above_both"),
    (70, 60, 64, 5, None), (70, 60, 66, 5, "above_both")])
def test_classification_rule(c, a, b, delta, want):
    assert ce.classify_cross(c, a, b, delta) == want


def test_score_table_validation(tmp_path):
    p = tmp_path/"t.csv"
    pd.DataFrame(dict(model=["m", "m"], capability=["Coding", "Baking"], score=[1, 2])).to_csv(p, index=False)
    with pytest.raises(ce.CrossEvalSchemaError, match="line 3: unknown capability 'Baking'"): ce.read_score_table(p)
    pd.DataFrame(dict(model=["m", "m"], capability=["Coding", "Coding"], score=[1, 2])).to_csv(p, index=False)
    with pytest.raises(ce.CrossEvalSchemaError, match="line 3: duplicate"): ce.read_score_table(p)
    # damaged files name the file (before 2026-11-30: EmptyDataError / UnicodeDecodeError tracebacks, an extra field
    # silently shifted into pandas' index, an inf score and a header alone accepted as 0 qualifying pairs)
    for text, match in [("", "empty file"), ("model,capability,score\n", "no rows after the header"),
                        ("model,capability,score\nm,Coding,inf\n", "line 2: score 'inf' is not a finite number"),
                        ("model,capability,score\nm,Coding,1,2,3\n", "line 2: 5 fields where the header has 3"),
                        ("model,capability,score\n\nm,Coding,50\n\"m\n2\",Coding,40\nm,Baking,3\n", "line 6: unknown capability 'Baking'")]:
        p.write_text(text)
        with pytest.raises(ce.CrossEvalSchemaError, match=match): ce.read_score_table(p)
    p.write_bytes(b"\xff\xfe,,\n")
    with pytest.raises(ce.CrossEvalSchemaError, match="not a readable CSV"): ce.read_score_table(p)


def test_benchmark_errors_name_the_editor_line(tmp_path):
    "Prompts span several lines in a real benchmark CSV: the error names the line the bad row starts on."
    d = bench_frame(3); d["prompt"] = ["one\ntwo", "three\nfour\nfive", "six"]; d.loc[2, "difficulty"] = "extreme"
    p = tmp_path/"multi.csv"; d.to_csv(p, index=False)
    with pytest.raises(ce.CrossEvalSchemaError, match=r"line 7, column 'difficulty'"): ce.read_crosseval(p)


def test_cli_weakest_link_lines(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)                                  # the run folder goes to ./runs by default
    r = CliRunner().invoke(app, ["crosseval", "weakest-link", "--table", "gpt4o"])
    assert r.exit_code == 0 and r.output.strip().splitlines()[-1] == \
        "qualifying=58 below_both=37 closer_weaker=21 closer_stronger=0 above_both=0"
    run = tmp_path / "runs" / "crosseval-weakest-link-gpt4o"     # its figure, tables and result, without --figure
    assert (run / "figures" / "weakest_link.png").stat().st_size > 10_000 and (run / "weakest_link.csv").exists()
    assert json.loads((run / "result.json").read_text())["counts"]["qualifying"] == 58
    r = CliRunner().invoke(app, ["crosseval", "weakest-link", "--table", "claude", "--figure", str(tmp_path/"f.png")])
    assert r.exit_code == 0 and r.output.strip().splitlines()[-1] == \
        "qualifying=48 below_both=24 closer_weaker=18 closer_stronger=6 above_both=0"
    assert (tmp_path/"f.png").stat().st_size > 10_000
    # --figure: a missing folder is created; an unknown format is refused before any work (mdp-check's run can be long)
    r = CliRunner().invoke(app, ["crosseval", "weakest-link", "--figure", str(tmp_path/"new"/"dir"/"f.svg")])
    assert r.exit_code == 0 and (tmp_path/"new"/"dir"/"f.svg").stat().st_size > 10_000
    for cmd in (["crosseval", "weakest-link"], ["mdp-check", "CartPole-v1"]):
        r = CliRunner().invoke(app, [*cmd, "--figure", str(tmp_path/"f.xyz")])
        assert r.exit_code == 2 and "unknown image format '.xyz'" in r.output and "qualifying" not in r.output, r.output
    t = pd.DataFrame(dict(model=["m"]*3, capability=["Coding", "Reasoning", "Coding & Reasoning"], score=[80, 60, 70]))
    t.to_csv(tmp_path/"mine.csv", index=False)
    r = CliRunner().invoke(app, ["crosseval", "weakest-link", "--table", str(tmp_path/"mine.csv")])
    assert r.output.strip().splitlines()[-1] == "qualifying=1 below_both=0 closer_weaker=0 closer_stronger=1 above_both=0"
    r = CliRunner().invoke(app, ["crosseval", "weakest-link", "--table", "gpt4"])          # a table name misspelt
    assert r.exit_code == 2 and "--table gpt4: no such file, and not a shipped table (gpt4o, claude)" in r.output, r.output
    for bad in ("-1.0", "nan"):       # below 0 equal components qualified, and the class of such a pair is meaningless
        r = CliRunner().invoke(app, ["crosseval", "weakest-link", "--delta", bad])
        assert r.exit_code == 2 and f"delta: {bad} is not >= 0" in r.output and "qualifying" not in r.output, r.output


def test_meta_evaluate_runs_with_0_1_2_references(tmp_path):
    from nasrec_lit.llm.backbone import load_backbone, tiny_llama_dir
    bb = load_backbone(str(tiny_llama_dir(tmp_path/"tiny")))
    long = ce.responses_long(ce.validate_crosseval(bench_frame(4)))
    t = ce.meta_evaluate(bb, long, (0, 1, 2), ce.JudgeConfig(max_new_tokens=8, retries=1, batch_size=4))
    assert list(t.references.unique()) == [0, 1, 2] and set(t.capability) >= {"Overall"}
    assert (t[t.capability == "Overall"].n == 12).all()           # every response scored (parsed or fallback)
    u = ce.judge_prompt("p", "r", [ce.Reference("other", [4, 5], ["good", "great"])], attachment="file.txt", tool_use_note=True)
    assert u.index("[Attached file]") < u.index("[Prompt]") < u.index("[Reference example 1]") < u.index("[Response to evaluate]")
    assert "Human rater 2: 5/5. great" in u and u.rstrip().endswith('"Score: X/5".') and "June-July 2024" in u
    assert ce.to_100([1, 5, 3]).tolist() == [1.0, 100.0, 50.5]


def test_judge_resumes_from_its_generation_cache(tmp_path, monkeypatch):
    """A judge run that stopped part way resumes from its `GenCache`: what was generated is not generated again,
    and the scores equal those of a run that never stopped (retries included)."""
    from nasrec_lit.llm import backbone as B
    bb = B.load_backbone(str(B.tiny_llama_dir(tmp_path/"tiny")))
    long = ce.responses_long(ce.validate_crosseval(bench_frame(30)))                    # 90 responses: chunks of 64 + 26
    items = [(ce.judge_prompt(r.prompt, r.response),) for r in long.itertuples(index=False)]
    cfg = ce.JudgeConfig(max_new_tokens=8, retries=1, batch_size=8)
    straight = ce.judge(bb, items, cfg, B.GenCache(tmp_path/"straight.jsonl"))
    real, calls = B.generate, []
    def crashing(bb_, texts, *a, **k):
        calls.append(len(texts))
        if len(calls) == 2: raise KeyboardInterrupt("simulated crash after the first chunk")
        return real(bb_, texts, *a, **k)
    monkeypatch.setattr(B, "generate", crashing)
    with pytest.raises(KeyboardInterrupt): ce.judge(bb, items, cfg, B.GenCache(tmp_path/"judge.jsonl"))
    assert len(B.GenCache(tmp_path/"judge.jsonl")) == 64
    calls.clear(); monkeypatch.setattr(B, "generate", lambda bb_, texts, *a, **k: (calls.append(len(texts)), real(bb_, texts, *a, **k))[1])
    resumed = ce.judge(bb, items, cfg, B.GenCache(tmp_path/"judge.jsonl"))
    assert calls[0] == 26                                                                # first try: only the missing 26
    assert np.array_equal(resumed.scores, straight.scores, equal_nan=True) and resumed.method == straight.method


def test_cli_judge_csv_writes_scores_and_reuses_its_generations(tmp_path):
    from nasrec_lit.llm.backbone import tiny_llama_dir
    tiny = str(tiny_llama_dir(tmp_path/"tiny")); csv = tmp_path/"bench.csv"; bench_frame(4).to_csv(csv, index=False)
    args = ["crosseval", "judge", "--data", str(csv), "--limit", "0", "--refs", "1", "--max-new-tokens", "8", "--retries", "1", "--backbone", tiny]
    r1 = CliRunner().invoke(app, args)
    assert r1.exit_code == 0, r1.output
    scores = pd.read_csv(tmp_path/"bench.judge.csv"); assert len(scores) == 12 and scores.judge.between(1, 5).all()
    assert (tmp_path/"bench.judge.generations.jsonl").exists() and "(0 reused" in r1.output
    r2 = CliRunner().invoke(app, args)                                   # a rerun (as after a crash) generates nothing again
    assert r2.exit_code == 0 and ", 0 new)" in r2.output, r2.output
    assert pd.read_csv(tmp_path/"bench.judge.csv").judge.tolist() == scores.judge.tolist()


def test_weakest_link_rows_for_known_pairs():
    """The rows themselves for hand-made pairs, not just their counts: which component is the weaker, its score, the
    stronger's, the cross score and the class (a bug that swapped the weaker and stronger names kept every count)."""
    t = pd.DataFrame([("m", "Coding", 40.0), ("m", "Reasoning", 60.0), ("m", "Coding & Reasoning", 45.0),      # closer to Coding
                      ("m", "Tool Use", 70.0), ("m", "Tool Use & Coding", 30.0),                                 # below both
                      ("m", "Image Recognition", 61.0), ("m", "Image Recognition & Reasoning", 90.0)],           # |61 - 60| <= 3: out
                     columns=["model", "capability", "score"])
    wl = ce.weakest_link(t).set_index("cross")
    assert sorted(wl.index) == ["Coding & Reasoning", "Tool Use & Coding"]
    assert wl.loc["Coding & Reasoning", ["weaker", "stronger", "weaker_score", "stronger_score", "cross_score", "cls"]].tolist() == \
        ["Coding", "Reasoning", 40.0, 60.0, 45.0, "closer_weaker"]
    assert wl.loc["Tool Use & Coding", ["weaker", "stronger", "weaker_score", "stronger_score", "cross_score", "cls"]].tolist() == \
        ["Coding", "Tool Use", 40.0, 70.0, 30.0, "below_both"]


def test_cli_meta_eval_writes_its_figure_table_and_result(tmp_path):
    """`crosseval meta-eval` run to the end with the tiny Llama: its run folder holds the figure, the table and the
    result, the command prints the figure's path, and a rerun answers from the generation cache."""
    from nasrec_lit.llm.backbone import tiny_llama_dir
    m = tiny_llama_dir(tmp_path/"tiny"); p = tmp_path/"bench.csv"; bench_frame(3).to_csv(p, index=False)
    args = ["crosseval", "meta-eval", "--data", str(p), "--refs", "0,1", "--max-new-tokens", "8", "--retries", "1",
            "--backbone", str(m), "--runs-dir", str(tmp_path/"runs")]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    run = tmp_path/"runs"/"crosseval-meta-eval-bench"
    fig = run/"figures"/"meta_evaluation.png"
    assert fig.stat().st_size > 5000 and f"figure: {fig}" in r.output.replace("\n", ""), r.output[-2000:]
    res = json.loads((run/"result.json").read_text())["meta_evaluation"]
    assert sorted({x["references"] for x in res}) == [0, 1]
    assert all(x["n"] == 9 for x in res if x["capability"] == "Overall")       # 3 prompts x 3 responses, every one scored
    cache = p.with_suffix(".meta-eval.generations.jsonl"); n = len(cache.read_text().splitlines())
    r2 = CliRunner().invoke(app, args)
    assert r2.exit_code == 0 and len(cache.read_text().splitlines()) == n, r2.output   # nothing generated again
    assert json.loads((run/"result.json").read_text())["meta_evaluation"] == res
