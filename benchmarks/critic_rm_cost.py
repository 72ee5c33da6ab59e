"""Cost estimate of a Critic-RM run on this machine, from measured throughput of the backbone.

Measures, on the backbone it is given (default: the packaged SmolLM2-135M-Instruct):
  prefill  tokens/s  (forward over prompts, batch of 8)
  decode   tokens/s  (new tokens per second while generating, batch of 16)
  train    tokens/s  (forward + backward with LoRA on the top layers, batch of 4 pairs)
and multiplies by the token counts of a run configuration (the CPU size of the notebook, and the full size).

    python benchmarks/critic_rm_cost.py                      # this machine, SmolLM2
    python benchmarks/critic_rm_cost.py --backbone /path/to/Llama-3.1-8B-Instruct --full-only

Last line: `cpu_estimate_s=<s> full_estimate_s=<s>`.
"""
import argparse, time

import numpy as np
import torch

from nasrec_lit.llm.backbone import load_backbone, GenConfig, generate, chat_text
from nasrec_lit.llm.critic_rm import CriticRMConfig, RMConfig, RewardModel, collate_pairs


def measure(bb, prompt_tokens=320, new_tokens=32, lora_layers=4):
    tok = bb.tokenizer
    words = "the assistant reply explains how to bake bread safely and clearly " * 60
    ids = tok(words, add_special_tokens=False).input_ids[:prompt_tokens]
    text = tok.decode(ids)
    x = torch.tensor([ids] * 8, device=bb.device)
    with torch.no_grad():
        bb.model(x[:1, :32])                                   # warm-up
        t0 = time.perf_counter(); bb.model(x); prefill = 8 * len(ids) / (time.perf_counter() - t0)
    texts = [chat_text(tok, text[: len(text) // 2])] * 16
    g = GenConfig(max_new_tokens=new_tokens, temperature=0.8, batch_size=16, max_prompt_tokens=prompt_tokens)
    t0 = time.perf_counter(); generate(bb, texts, g); gen_s = time.perf_counter() - t0
    p_len = len(tok(texts[0], add_special_tokens=False).input_ids)
    decode_s = max(1e-6, gen_s - 16 * p_len / prefill)
    decode = 16 * new_tokens / decode_s
    m = RewardModel(bb, RMConfig(max_len=prompt_tokens, lora_layers=lora_layers), critique=True)
    opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-4)
    seq = (ids, ids)
    b = collate_pairs([(seq, seq)] * 4, tok.pad_token_id)
    b = {k: v.to(bb.device) for k, v in b.items()}
    t0 = time.perf_counter()
    for _ in range(2):
        r, nll = m(b["input_ids"], b["attention_mask"], b["last"], b["labels"])
        (nll + r.mean()).backward(); opt.step(); opt.zero_grad()
    train = 2 * 8 * len(ids) / (time.perf_counter() - t0)
    return dict(prefill_tok_s=prefill, decode_tok_s=decode, train_tok_s=train)


def estimate(cfg: CriticRMConfig, rates: dict, n_train: int, n_test: int, prompt_tokens: int = 300) -> dict:
    "Seconds per phase for `cfg` given measured rates and the number of train/test pairs."
    c, L = cfg.critique_tokens, cfg.rm.max_len
    gen = lambda n: n * prompt_tokens / rates["prefill_tok_s"] + n * c / rates["decode_tok_s"]
    stage1 = gen(2 * n_train * cfg.n_critiques)
    summaries = gen(2 * n_train) + 2 * n_train * cfg.n_critiques * prompt_tokens / rates["prefill_tok_s"]   # summaries + meta-rank reads
    train = 3 * cfg.rm.epochs * 2 * n_train * L / rates["train_tok_s"]                                      # 3 trained arms
    judges = 3 * 2 * n_test * prompt_tokens / rates["prefill_tok_s"]
    m = max(cfg.m_values)
    inference = 2 * (gen(2 * n_test * m) + 2 * n_test * m * L / rates["prefill_tok_s"])                     # 2 Critic-RM arms
    std_eval = 2 * n_test * L / rates["prefill_tok_s"]
    out = dict(stage1=stage1, refine=summaries, train=train, judges=judges, critic_inference=inference, rm_eval=std_eval)
    out["total"] = sum(out.values())
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbone", default=None)
    ap.add_argument("--full-only", action="store_true")
    a = ap.parse_args()
    bb = load_backbone(a.backbone)
    torch.manual_seed(0)
    rates = measure(bb)
    print(f"backbone {bb}; threads {torch.get_num_threads()}")
    print("measured: " + "  ".join(f"{k}={v:,.0f}" for k, v in rates.items()))
    cpu = CriticRMConfig.cpu()
    full = CriticRMConfig(n_critiques=8, critique_tokens=256, m_values=[1, 2, 4, 8], rm=RMConfig(max_len=1024, epochs=2))
    rows = []
    if not a.full_only:
        rows.append(("cpu (notebook)", estimate(cpu, rates, cpu.n_train, cpu.n_test + cpu.n_second_test)))
    # full: half of hh-rlhf harmless test for training (1,156), the other half + PandaLM's 889 majority pairs for testing
    rows.append(("full (hh-rlhf 1,156 train / 1,156 + 889 test)", estimate(full, rates, 1156, 1156 + 889, prompt_tokens=600)))
    for name, est in rows:
        print(f"{name}: " + "  ".join(f"{k}={v/60:,.1f}min" for k, v in est.items()))
    cpu_s = rows[0][1]["total"] if not a.full_only else float("nan")
    print(f"cpu_estimate_s={cpu_s:.0f} full_estimate_s={rows[-1][1]['total']:.0f}")


if __name__ == "__main__":
    main()
