"""LLM backbone, preference readers and Critic-RM: loading, bad input, the filter, the joint loss, cache resume."""
import gzip, json, math, time
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from nasrec_lit.core import NasrecError
from nasrec_lit.llm import backbone as B
from nasrec_lit.llm import critic_rm as C
from nasrec_lit.llm.preference import (PrefPair, PreferenceDataError, load_preferences, read_hh_rlhf, read_jsonl_pairs,
                                       read_pandalm, split_pairs)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return B.load_backbone(str(B.tiny_llama_dir(tmp_path_factory.mktemp("tiny")/"m")))


def test_tiny_hf_dir_loads_and_generates(tiny):
    assert tiny.config.model_type == "llama" and tiny.config.num_key_value_heads == 2
    outs = B.generate(tiny, [B.chat_text(tiny.tokenizer, "hi"), B.chat_text(tiny.tokenizer, "a longer prompt here")],
                      B.GenConfig(max_new_tokens=5, temperature=0))
    assert len(outs) == 2
    again = B.generate(tiny, [B.chat_text(tiny.tokenizer, "hi")], B.GenConfig(max_new_tokens=5, temperature=0))
    assert again[0] == outs[0]                                    # greedy is deterministic and independent of batch padding


def test_gguf_loads_and_is_cached_as_safetensors():
    t0 = time.time(); bb = B.load_backbone()                      # converts on first use in this cache
    first = time.time() - t0
    assert bb.config.model_type == "llama" and 130e6 < bb.n_params() < 140e6
    cache_dir = B._gguf_cache_dir(B.smollm2_path())
    assert (cache_dir/"model.safetensors").exists() and (cache_dir/"source.json").exists()
    assert not cache_dir.with_name(cache_dir.name + ".partial").exists()
    t0 = time.time(); bb2 = B.load_backbone(); second = time.time() - t0
    assert second < max(5.0, first / 3)
    x = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad(): assert torch.allclose(bb.model(x).logits, bb2.model(x).logits)
    out = B.generate(bb, [B.chat_text(bb.tokenizer, "What is the capital of France?")], B.GenConfig(max_new_tokens=12, temperature=0))
    assert "Paris" in out[0]


def test_bad_backbone_sources(tmp_path):
    with pytest.raises(NasrecError, match="no such file"): B.load_backbone(str(tmp_path/"nope"))
    (tmp_path/"x.bin").write_bytes(b"0")
    with pytest.raises(NasrecError, match=".gguf"): B.load_backbone(str(tmp_path/"x.bin"))
    (tmp_path/"d").mkdir()
    with pytest.raises(NasrecError, match="config.json"): B.load_backbone(str(tmp_path/"d"))


def test_lora_top_layers_only(tiny):
    import copy
    m = B.add_lora(copy.deepcopy(tiny.model), B.LoraSpec(r=2, layers=1))
    names = [n for n, p in m.named_parameters() if p.requires_grad]
    assert names and all(".layers.1." in n for n in names)      # only the top layer of 2 is adapted


@pytest.mark.parametrize("text,lo,hi,want", [
    ("... Score: 4/5", 1, 5, 4.0), ("**Score: 3/5**", 1, 5, 3.0), ("Score: 5/5 is the best. Score: 2 out of 5", 1, 5, 2.0),
    ("Score: 9/10", 1, 10, 9.0), ("Score: 9/10", 1, 5, None), ("Score: 0/5", 1, 5, None), ("Score: 6/5", 1, 5, None),
    ("I would say four.", 1, 5, None), ("", 1, 5, None), ("score = 2.5/5", 1, 5, 2.5), ("Score: 3", 1, 5, 3.0)])
def test_parse_score(text, lo, hi, want):
    assert B.parse_score(text, lo, hi) == want


def test_hh_rlhf_split_on_turns(tmp_path):
    p = tmp_path/"x.jsonl.gz"
    recs = [{"chosen": "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: help me\n\nAssistant: sure, here is how",
             "rejected": "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: help me\n\nAssistant: no"}]
    with gzip.open(p, "wt") as f: f.write("\n".join(json.dumps(r) for r in recs) + "\n")
    (pair,) = read_hh_rlhf(p)
    assert [m["role"] for m in pair.prompt] == ["user", "assistant", "user"] and pair.prompt[-1]["content"] == "help me"
    assert pair.chosen == "sure, here is how" and pair.rejected == "no"


def test_malformed_jsonl_names_the_line(tmp_path):
    p = tmp_path/"pairs.jsonl"
    p.write_text('{"prompt": "a", "chosen": "b", "rejected": "c"}\n\n{"prompt": "a", "chosen": "b", "rejected": 3}\n')
    with pytest.raises(PreferenceDataError, match=r"pairs.jsonl:3: field 'rejected'"): read_jsonl_pairs(p)
    p.write_text('{"prompt": "a", "chosen": "b", "rejected": "c"}\n{oops\n')
    with pytest.raises(PreferenceDataError, match=r"pairs.jsonl:2: not valid JSON"): read_jsonl_pairs(p)
    with pytest.raises(NasrecError, match="unknown preference source"): load_preferences("reddit")
    # damaged files: an error naming the file (and line), not a UnicodeDecodeError / BadGzipFile / EOFError traceback
    p.write_bytes(b'{"prompt": "a", "chosen": "b", "rejected": "c"}\n\xff\xfe\n')
    with pytest.raises(PreferenceDataError, match=r"pairs.jsonl:2: not UTF-8"): read_jsonl_pairs(p)
    g = tmp_path/"pairs.jsonl.gz"; g.write_bytes(gzip.compress(b'{"prompt": "a", "chosen": "b", "rejected": "c"}\n' * 50)[:40])
    with pytest.raises(PreferenceDataError, match=r"pairs.jsonl.gz: damaged gzip"): read_jsonl_pairs(g)
    g.write_bytes(b"plain text, not gzip")
    with pytest.raises(PreferenceDataError, match=r"pairs.jsonl.gz: damaged gzip"): load_preferences(f"hh-rlhf:{g}")
    p.write_text("\n")
    with pytest.raises(PreferenceDataError, match=r"pairs.jsonl: no preference pairs"): load_preferences(f"jsonl:{p}")
    p.write_text('["not a record"]')
    with pytest.raises(PreferenceDataError, match=r"record 0: expected a JSON object"): load_preferences(f"pandalm:{p}")


def test_pandalm_majority_and_ties(tmp_path):
    rows = [dict(idx=0, instruction="i", input="", response1="a", response2="b", annotator1=2, annotator2=2, annotator3=1),
            dict(idx=1, instruction="i", input="x", response1="a", response2="b", annotator1=1, annotator2=0, annotator3=2),
            dict(idx=2, instruction="i", input="", response1="a", response2="b", annotator1=0, annotator2=0, annotator3=1)]
    p = tmp_path/"p.json"; p.write_text(json.dumps(rows)); st_ = {}
    pairs = read_pandalm(p, stats=st_)
    assert st_ == {"pairs": 1, "dropped_no_majority": 2}
    assert pairs[0].chosen == "b" and pairs[0].rejected == "a" and pairs[0].orig_pos == 2
    rows[0]["annotator1"] = 7; p.write_text(json.dumps(rows))
    with pytest.raises(PreferenceDataError, match="record 0"): read_pandalm(p)


def test_shipped_preference_data():
    assert len(load_preferences("hh-rlhf")) == 2312
    st_ = {}; pl = load_preferences("pandalm", stats=st_)
    assert st_["pairs"] + st_["dropped_no_majority"] == 999 and st_["pairs"] > 800
    a, b = split_pairs(pl, 0.25, 1); a2, b2 = split_pairs(pl, 0.25, 1)
    assert [p.id for p in b] == [p.id for p in b2] and len(b) == round(len(pl)*0.25)


scores = st.lists(st.one_of(st.none(), st.integers(1, 10).map(float)), min_size=1, max_size=6)

@settings(max_examples=200, deadline=None)
@given(scores, scores)
def test_consistency_filter_property(sc, sr):
    pp = PrefPair([{"role": "user", "content": "q"}], "good", "bad")
    pc = C.consistency_filter(C.PairCritiques(pp, [C.Critique(str(i), s) for i, s in enumerate(sc)],
                                              [C.Critique(str(i), s) for i, s in enumerate(sr)]))
    pr = [s for s in sr if s is not None]; pch = [s for s in sc if s is not None]
    ref_c = np.mean(pr) if pr else 5.5; ref_r = np.mean(pch) if pch else 5.5
    assert [c.score for c in pc.kept_chosen] == [s for s in sc if s is not None and s > ref_c]
    assert [c.score for c in pc.kept_rejected] == [s for s in sr if s is not None and s < ref_r]


def test_joint_loss_weights_and_gradients():
    rc = torch.tensor([1.0, 0.0], requires_grad=True); rr = torch.tensor([0.0, 0.5], requires_grad=True)
    nll = torch.tensor(2.0, requires_grad=True)
    loss, bt, n = C.joint_loss(rc, rr, nll, lam=1.0); loss.backward()
    assert rc.grad.abs().sum() == 0 and nll.grad.item() == 1.0           # λ=1: critique loss only
    rc.grad = None; nll.grad = None
    loss, bt, n = C.joint_loss(rc, rr, nll, lam=0.0); loss.backward()
    assert nll.grad.item() == 0.0 and (rc.grad < 0).all()                # λ=0: BT only; pushes chosen rewards up
    want = -0.5*(math.log(1/(1+math.exp(-1))) + math.log(1/(1+math.exp(0.5))))
    assert abs(bt.item() - want) < 1e-6
    lams = [C.lam_schedule(s, 11, 0.9, 0.1) for s in range(11)]
    assert lams[0] == 0.9 and abs(lams[-1] - 0.1) < 1e-12 and all(a > b for a, b in zip(lams, lams[1:]))


def test_reward_model_trains_and_nll_only_on_critique(tiny):
    tok = tiny.tokenizer; stats = {}
    pp = PrefPair([{"role": "user", "content": "how do I bake bread?"}], "Mix flour, water, yeast.", "I hate bread.")
    ex = C.build_examples(tok, [(pp, "Helpful. Score: 8/10", "Rude. Score: 2/10")] * 8, 200, stats)
    (ids, lab), _ = ex[0]
    n_target = sum(l != -100 for l in lab)
    assert 0 < n_target < len(ids) and tok.decode([t for t, l in zip(ids, lab) if l != -100]).startswith("Helpful")
    m = C.train_reward_model(tiny, ex, C.RMConfig(max_len=200, epochs=3, batch_size=4, lora_layers=None, lora_r=4, lr=5e-3),
                             critique=True, run=None)
    r = m.score([x for ab in ex[:2] for x in ab])
    assert r[0] > r[1] and r[2] > r[3]                                   # learned the preference on its training pairs
    assert not any(n.startswith("base_model") and "lora" not in n and p.requires_grad for n, p in m.lm.named_parameters())


def test_truncation_and_drops_are_counted(tiny):
    tok = tiny.tokenizer
    long_prompt = PrefPair([{"role": "user", "content": "word " * 400}], "ok", "no")
    long_resp = PrefPair([{"role": "user", "content": "q"}], "word " * 400, "no")
    stats = {}
    ex = C.build_examples(tok, [(long_prompt, None, None), (long_resp, None, None)], 64, stats)
    assert len(ex) == 1 and stats == {"truncated": 2, "dropped_too_long": 1}   # sequences truncated, pairs dropped
    assert all(len(ids) <= 64 for ab in ex for ids, _ in ab)


def test_generation_cache_resumes_without_regenerating(tiny, tmp_path, monkeypatch):
    texts = [B.chat_text(tiny.tokenizer, f"question {i}") for i in range(6)]
    cfg = B.GenConfig(max_new_tokens=4, temperature=0.8, batch_size=2)
    calls = []
    real = B.generate
    def counting(bb, ts, *a, **k):
        calls.append(len(ts))
        if len(calls) == 2: raise KeyboardInterrupt("simulated crash half way")
        return real(bb, ts, *a, **k)
    monkeypatch.setattr(B, "generate", counting)
    cache = B.GenCache(tmp_path/"gen.jsonl")
    with pytest.raises(KeyboardInterrupt): B.cached_generate(tiny, texts, 2, cfg, cache, chunk=4)
    assert len(B.GenCache(tmp_path/"gen.jsonl")) == 4                    # the first chunk was written before the crash
    with open(tmp_path/"gen.jsonl", "a") as f: f.write('{"key": "torn')  # and a torn line from a crash mid-write
    calls.clear(); monkeypatch.setattr(B, "generate", lambda bb, ts, *a, **k: (calls.append(len(ts)), real(bb, ts, *a, **k))[1])
    cache = B.GenCache(tmp_path/"gen.jsonl"); assert cache.torn == 1
    out = B.cached_generate(tiny, texts, 2, cfg, cache, chunk=4)
    assert sum(calls) == 8 and cache.hits == 4 and cache.misses == 8      # only the 8 missing samples were generated
    calls.clear(); out2 = B.cached_generate(tiny, texts, 2, cfg, B.GenCache(tmp_path/"gen.jsonl"), chunk=4)
    assert calls == [] and out2 == out
    with pytest.raises(IsADirectoryError): B.GenCache(tmp_path)           # a cache that cannot be written fails before any generation


def test_bootstrap_and_accuracy():
    acc = C.pair_accuracy([1, 2, 3, 3], [0, 3, 1, 3])
    assert acc.tolist() == [1.0, 0.0, 1.0, 0.5]
    m, lo, hi = C.bootstrap_ci(np.r_[np.ones(70), np.zeros(30)])
    assert m == 0.7 and 0.6 < lo < 0.7 < hi < 0.8


def test_cli_critic_rm_and_judge_on_tiny_backbone(tiny, tmp_path):
    from typer.testing import CliRunner
    from nasrec_lit.cli import app
    tiny_dir = str(tmp_path/"tiny"); B.tiny_llama_dir(tiny_dir)
    run = tmp_path/"crm run"                # a folder the user names is used as given (before: a RunDir in crm-run, the figure in "crm run")
    args = ["critic-rm", "train", "--backbone", tiny_dir, "--n-train", "4", "--n-test", "4", "--second-test", "none",
            "--arms", "standard_rm,judge_pairwise", "--epochs", "1", "--max-len", "256", "--run-dir", str(run), "--checkpoint-minutes", "0"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "standard_rm" in r.output and "judge_pairwise" in r.output and (run/"results.png").exists()
    assert (run/"figures"/"results.png").stat().st_size > 5000 and (run/"tracking.json").exists()     # the experiment's W&B run and figure
    assert [p.name for p in (run/"standard_rm"/"checkpoints").iterdir()] == ["last.ckpt"]   # the reward model's training checkpoint
    r = CliRunner().invoke(app, ["critic-rm", "eval", "--run-dir", str(run)]); assert r.exit_code == 0 and "standard_rm" in r.output
    # the run folder's finished arms are read back only for the same settings: another training-set size is refused,
    # naming the field, and leaves the folder's config as it was; the same command again reads the arms back
    config = (run/"config.yaml").read_text()
    r = CliRunner().invoke(app, [a if a != "4" else "6" for a in args[:6]] + args[6:])
    assert r.exit_code == 2 and "critic_rm.json: this folder holds a Critic-RM run with config.n_train=4, not 6" in r.output, r.output
    assert (run/"config.yaml").read_text() == config
    arms = (run/"arms.jsonl").read_text()
    r = CliRunner().invoke(app, args); assert r.exit_code == 0 and (run/"arms.jsonl").read_text() == arms, r.output
    r = CliRunner().invoke(app, ["critic-rm", "generate", "--backbone", tiny_dir, "--n-train", "2", "--n-critiques", "2",
                                 "--critique-tokens", "8", "--run-dir", str(run)])
    assert r.exit_code == 0 and "forced_score" in r.output, r.output
    r = CliRunner().invoke(app, ["critic-rm", "eval", "--run-dir", str(tmp_path/"no thing")])
    assert r.exit_code == 2 and f"critic-rm train --run-dir '{tmp_path/'no thing'}'" in r.output, r.output   # a command that can be pasted
    r = CliRunner().invoke(app, ["crosseval", "judge", "--data", "pandalm", "--limit", "4", "--backbone", tiny_dir])
    assert r.exit_code == 0 and "pairwise" in r.output, r.output
    r = CliRunner().invoke(app, ["critic-rm", "train", "--data", "jsonl:/nonexistent.jsonl", "--backbone", tiny_dir, "--run-dir", str(run)])
    assert r.exit_code == 2 and "no such file" in r.output


def test_critic_rm_settings_are_checked(tmp_path):
    "m values and arm names are checked up front (before 2026-11-30 `--m 0` started a full run, `--m 1,a` was a traceback)."
    import subprocess, sys
    from nasrec_lit.core import ConfigError
    for kw, word in [(dict(m_values=[0]), "m_values"), (dict(m_values=[]), "m_values"), (dict(arms=["critic_rm_vote"]), "arms")]:
        with pytest.raises(ConfigError, match=f"CriticRMConfig.{word}"): C.CriticRMConfig(**kw)
    cli = str(Path(sys.executable).parent / "nasrec-lit")
    for m, word in [("1,a", "--m: '1,a' is not a comma-separated list"), ("0,2", "CriticRMConfig.m_values")]:
        r = subprocess.run([cli, "critic-rm", "train", "--m", m, "--run-dir", str(tmp_path/"run")], capture_output=True, text=True)
        assert r.returncode == 2 and word in r.stderr and len(r.stderr.strip().splitlines()) == 1 and not (tmp_path/"run").exists(), r.stderr


def test_no_trainable_pairs_is_a_clear_error(tiny):
    with pytest.raises(NasrecError, match="max_len"): C.train_reward_model(tiny, [], C.RMConfig(), critique=False)


def test_inference_critiques_are_keyed_by_the_trained_model(tiny, tmp_path):
    """Two differently trained reward models must not share cached critiques (the summarise and rank variants once did:
    the cache key named only the backbone)."""
    pp = PrefPair([{"role": "user", "content": "how do I bake bread?"}], "Mix flour, water, yeast.", "I hate bread.")
    ex = C.build_examples(tiny.tokenizer, [(pp, "Helpful. Score: 8/10", "Rude. Score: 2/10")] * 4, 200, {})
    cfg = C.RMConfig(max_len=200, epochs=1, batch_size=4, lora_layers=None, lora_r=4, lr=5e-3)
    a = C.train_reward_model(tiny, ex, cfg, critique=True, run=None)
    b = C.train_reward_model(tiny, ex, cfg.replace(lr=2e-2), critique=True, run=None)
    assert a.fingerprint() == a.fingerprint() and a.fingerprint() != b.fingerprint()
    cache = B.GenCache(tmp_path/"gen.jsonl"); g = B.GenConfig(max_new_tokens=4, temperature=0.8, batch_size=2, seed=1)
    C.critic_rewards(a, [pp], 2, g, cache)
    n = len(cache)
    C.critic_rewards(b, [pp], 2, g, cache)
    assert len(cache) == 2 * n                                        # b generated its own critiques
    hits = cache.hits; C.critic_rewards(a, [pp], 2, g, cache)
    assert len(cache) == 2 * n and cache.hits == hits + n             # a's are served back to a


@pytest.mark.parametrize("minutes,saved_step", [(0.0, 4), (10.0, 3)], ids=["mid-epoch-checkpoint", "epoch-end-checkpoint"])
def test_reward_model_training_resumes_to_the_uninterrupted_model(tiny, tmp_path, minutes, saved_step):
    """A Critic-RM training stopped in its second epoch continues from `last.ckpt` to the very weights of an
    uninterrupted run (the same batches, and the same LoRA-dropout draws: `ReplayLoader` replays the global RNG), and
    the checkpoint holds only the trained tensors. An uninterrupted run with checkpoints equals one without."""
    import lightning as L, torch
    from nasrec_lit.core import RunDir, ConfigError

    class Stop(Exception): pass

    class StopAt(L.Callback):
        def on_train_batch_start(self, trainer, *args):
            if trainer.global_step == 4: raise Stop
    pp = PrefPair([{"role": "user", "content": "how do I bake bread?"}], "Mix flour, water, yeast.", "I hate bread.")
    qq = PrefPair([{"role": "user", "content": "name a colour"}], "Blue.", "No.")
    ex = C.build_examples(tiny.tokenizer, [(pp, "Helpful. Score: 8/10", "Rude. Score: 2/10"), (qq, "Fine. Score: 7/10", "Unhelpful. Score: 1/10")] * 5, 200, {})
    cfg = C.RMConfig(max_len=200, epochs=2, batch_size=4, lora_layers=None, lora_r=4, lr=5e-3)    # 3 steps an epoch
    plain = C.train_reward_model(tiny, ex, cfg, critique=True, run=None).fingerprint()
    assert C.train_reward_model(tiny, ex, cfg, critique=True, run=RunDir("straight", tmp_path), log="disabled").fingerprint() == plain
    run = RunDir("stopped", tmp_path)
    with pytest.raises(Stop):
        C.train_reward_model(tiny, ex, cfg, critique=True, run=run, log="disabled", checkpoint_minutes=minutes, callbacks=[StopAt()])
    ck = torch.load(run.path / "checkpoints" / "last.ckpt", weights_only=False)
    assert ck["global_step"] == saved_step and [p.name for p in (run.path / "checkpoints").iterdir()] == ["last.ckpt"]
    assert ck["state_dict"] and all("lora" in k or k.startswith("head.") for k in ck["state_dict"])       # no frozen backbone weights
    resumed = C.train_reward_model(tiny, ex, cfg, critique=True, run=run, log="disabled")
    assert resumed.fingerprint() == plain
    with pytest.raises(ConfigError, match=r"last\.ckpt.*lr=0\.005"):
        C.train_reward_model(tiny, ex, cfg.replace(lr=1e-3), critique=True, run=run, log="disabled")


def test_critic_rm_cli_help_states_the_cpu_sizes():
    """`critic-rm ... --help` gives the pair counts `--cpu` uses; they said 48 and 64 while `CriticRMConfig.cpu` used 32 and 40."""
    import re
    from nasrec_lit.cli import _CRM_OPTS
    from nasrec_lit.llm.critic_rm import CriticRMConfig
    cpu = CriticRMConfig.cpu()
    for k in ("n_train", "n_test", "n_second_test"):
        help_ = _CRM_OPTS[k].help
        assert "0: all" in help_ and int(re.search(r"with --cpu (\d+)", help_).group(1)) == getattr(cpu, k), (k, help_)
