"""Training-free sparse attention swapped into a Hugging Face model (``hf:PATH,attn=METHOD:...``), on CPU
with the tiny random-weight Llama: exact with a whole-context budget (prefill and decode steps with the
KV cache, left padding included), error shrinking to zero as the budget grows, `evals run` end to end,
and the bad inputs a user can give (exit 2)."""
import itertools
import json
import math
import shutil

import pytest
import torch

from longctx.evals.store import model_slug, read_records
from longctx.models.attn_swap import layer_errors, parse_attn, register
from longctx.models.errors import ModelError

# budgets that cover the 200-odd-token contexts below (T <= 256)
FULL = [
    "dense",
    "swa:window=4096",
    "blocks:block_size=16:local=16:stride=3",
    "dsa:topk=4096",
    "dsa:topk=300:dim=8:sink=4:recent=8",
    "ssa:block_size=16:topk=14:beam=4:fanout=4",
    "hyper:block_size=16:n_samples=4096",
    "ssa:block_size=16:topk=1:beam=1:fanout=2:dense_layers=2",
    "ssa:block_size=16:topk=16:beam=4:fanout=4:top_cap=2",  # 13 leaves under 3 levels: the beam search decodes
]
# (spec with {b}, budgets from small to the whole 256-token context)
GROWING = [
    ("swa:window={b}", [16, 64, 256]),
    ("blocks:block_size=16:local={b}", [1, 4, 16]),
    ("dsa:topk={b}", [16, 64, 256]),
    ("dsa:topk={b}:dim=16:sink=4:recent=4", [16, 64, 256]),
    ("ssa:block_size=16:beam=8:fanout=2:topk={b}", [1, 4, 14]),
    ("hyper:block_size=16:n_samples={b}", [16, 64, 256]),
]


def _load(path, attn_implementation):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(path), attn_implementation=attn_implementation).eval()


def _logits(model, ids, mask, steps: int = 3) -> list[torch.Tensor]:
    """Prefill logits of the last position, then the logits of ``steps`` greedy decode steps with the cache."""
    out = []
    with torch.inference_mode():
        o = model(input_ids=ids, attention_mask=mask, use_cache=True)
        for _ in range(steps + 1):
            out.append(o.logits[:, -1])
            nxt = o.logits[:, -1:].argmax(-1)
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], 1)
            o = model(input_ids=nxt, attention_mask=mask, past_key_values=o.past_key_values, use_cache=True)
    return out


@pytest.fixture(scope="module")
def batch():
    """Two prompts of 200 tokens, the second left-padded by 37 (as the runner batches them)."""
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 1000, (2, 200), generator=gen)
    mask = torch.ones_like(ids)
    mask[1, :37] = 0
    return ids, mask


@pytest.fixture(scope="module")
def stock(tiny_llama_dir, batch):
    return _logits(_load(tiny_llama_dir, "eager"), *batch)


@pytest.mark.parametrize("spec", FULL)
def test_whole_context_budget_gives_stock_logits_on_prefill_and_each_decode_step(tiny_llama_dir, batch, stock, spec):
    got = _logits(_load(tiny_llama_dir, register(spec)), *batch)
    for step, (a, b) in enumerate(zip(stock, got)):
        assert torch.allclose(a, b, atol=2e-5, rtol=1e-4), f"{spec} step {step}: max diff {(a - b).abs().max():.2e}"


def _qkv(T: int, seed: int = 0, H: int = 4, Hk: int = 2, D: int = 16):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(1, H, T, D, generator=g), torch.randn(1, Hk, T, D, generator=g), torch.randn(1, Hk, T, D, generator=g)


@pytest.mark.parametrize("p", [64, 128, 192])
def test_ssa_decode_keeps_the_blocks_the_prefill_selector_keeps(p):
    """A decode query alone in its block selects, through the beam search, what ssa_select selects for it."""
    from longctx.kernels.flash.reference import block_mask
    from longctx.kernels.ssa import ssa_select
    from longctx.models.attn_swap import SSA_V2, ssa_decode_keep

    q, k, _ = _qkv(p + 1, seed=p)
    idx = ssa_select(q, k, block_size=16, topk=3, beam=2, fanout=2, local=1, top_cap=2, **SSA_V2)  # 3-5 levels
    want = block_mask(idx, p + 1, 16)[:, :, -1:]
    got = ssa_decode_keep(q[:, :, -1:], k, bs=16, topk=3, beam=2, fanout=2, local=1, top_cap=2)
    assert torch.equal(got, want) and got.sum(-1).max() <= 5 * 16  # block 0, 1 local, 3 chosen


def test_hyper_decode_sees_one_sorted_block_and_the_samples():
    from longctx.models.attn_swap import hyper_decode_bias

    q, k, _ = _qkv(160, seed=3)
    bias = hyper_decode_bias(q[:, :, -2:], k, 16, 24, 8, 0)
    kept = bias > float("-inf")
    assert set(bias[kept].unique().tolist()) <= {0.0, math.log(160 / 24)}
    assert ((bias == 0).sum(-1) == 16).all(), "weight 1 on exactly one block of the LSH-sorted keys"
    samples = (bias[0, 0, 1] != 0) & kept[0, 0, 1]
    assert ((bias != 0) & kept).sum(-1).max() <= 24 and samples.sum() >= 24 - 16
    assert not kept[:, :, 0, -1].any(), "the earlier query never sees the later key"


@pytest.mark.parametrize("spec,T_q", [("blocks:block_size=16:local=2", 2), ("dsa:topk=16", 2),
                                      ("dsa:topk=16:dim=8:sink=4:recent=4", 3),
                                      ("ssa:block_size=16:topk=2:beam=2:fanout=2", 1)])
def test_a_decode_step_gives_the_last_rows_of_the_sparse_prefill_reference(spec, T_q):
    """At a small budget, T_q queries at the end of a 193-key cache get what the method's prefill (the float64
    sparse reference on a CPU) gives those positions; ssa selects per query block, so one query sits alone in
    its block there."""
    from longctx.kernels.flash.reference import attention_ref
    from longctx.models.attn_swap import attend

    cfg = parse_attn(spec)
    q, k, v = _qkv(193, seed=5)
    prefill = attend(cfg.method, cfg.args, q, k, v)[:, :, -T_q:]
    step = attend(cfg.method, cfg.args, q[:, :, -T_q:], k, v)
    dense = attention_ref(q[:, :, -T_q:], k, v)
    assert (step - prefill).norm() / prefill.norm() < 1e-5
    assert (dense - prefill).norm() / prefill.norm() > 0.05, "the budget should leave keys out"


def test_small_budget_decode_steps_give_the_logits_of_a_sparse_prefill(tiny_llama_dir, batch, stock):
    """Each cached decode step at a small DSA budget gives the logits of a prefill of the whole sequence so far."""
    model = _load(tiny_llama_dir, register("dsa:topk=8:recent=2"))
    ids, mask = batch
    cached = _logits(model, ids, mask)
    with torch.inference_mode():
        for step, got in enumerate(cached):
            tokens = torch.stack([x.argmax(-1) for x in cached[:step]], 1) if step else ids[:, :0]
            full = model(input_ids=torch.cat([ids, tokens], 1),
                         attention_mask=torch.cat([mask, torch.ones_like(tokens)], 1)).logits[:, -1]
            assert torch.allclose(got, full, atol=2e-5, rtol=1e-4), f"step {step}: max diff {(got - full).abs().max():.2e}"
    assert all((a - b).abs().max() > 1e-3 for a, b in zip(stock, cached)), "the budget should change the logits"


@pytest.mark.parametrize("spec,budgets", GROWING)
def test_attention_error_shrinks_to_zero_as_the_budget_grows(tiny_llama_dir, spec, budgets):
    model = _load(tiny_llama_dir, "sdpa")
    ids = torch.randint(5, 1000, (1, 256), generator=torch.Generator().manual_seed(1))
    errs = [layer_errors(model, parse_attn(spec.format(b=b)), ids) for b in budgets]
    assert all(len(e) == 2 for e in errs)
    totals = [sum(e) for e in errs]
    assert totals[0] > 0.05, f"{spec}: the smallest budget should lose something, got {errs[0]}"
    assert all(x >= y for x, y in itertools.pairwise(totals)), f"{spec}: {errs}"
    assert max(errs[-1]) < 1e-6, f"{spec}: whole-context budget gave {errs[-1]}"
    assert model.config._attn_implementation == "sdpa"  # the probe leaves the model as it found it


def test_evals_run_end_to_end_records_the_spec(tiny_llama_dir, tmp_path, monkeypatch, evals_cli):
    monkeypatch.setenv("EVALS_CACHE", str(tmp_path / "cache"))
    spec = f"hf:{tiny_llama_dir},device=cpu,attn=ssa:block_size=64:topk=4:beam=4:fanout=2:dense_layers=1"
    out = tmp_path / "results"
    code, stdout, err = evals_cli(["run", "niah_single_1", "--ctx", "1k", "--model", spec, "-n", "2", "-b", "2",
                                   "--max-new-tokens", "8", "--out", str(out), "--json"])
    assert code == 0, err[-2000:]
    assert "1024" in json.loads(stdout)["ruler_average"]
    records = read_records(out / model_slug(spec) / "niah_single_1" / "1k" / "samples.jsonl")
    assert len(records) == 2 and all(r["model"] == spec for r in records)
    assert all(r["output_tokens"] > 0 for r in records)


def _bloom_dir(tiny_llama_dir, tmp_path):
    """A directory with a (tiny) Bloom config and the tiny Llama's tokenizer: Bloom's attention is not swappable."""
    from transformers import BloomConfig

    d = tmp_path / "bloom"
    d.mkdir()
    BloomConfig(vocab_size=1200, hidden_size=64, n_layer=1, n_head=4).save_pretrained(d)
    for f in tiny_llama_dir.iterdir():
        if "token" in f.name:
            shutil.copy(f, d / f.name)
    return d


@pytest.mark.parametrize("attn,message", [
    ("flashy", "unknown method 'flashy'"),
    ("ssa:topk=4:window=3", "'window=3' is not one of ssa's arguments"),
    ("dsa:topk=many", "topk='many' is not an integer"),
    ("ssa:block_size=48", "block_size must be one of"),
    ("ssa:topk=99", "exceeds beam * fanout"),
    ("hyper:sink=4", "hyper does not take sink/recent"),
])
def test_bad_method_or_argument_exits_2_with_a_clear_line(tiny_llama_dir, evals_cli, attn, message):
    code, _, err = evals_cli(["run", "niah_single_1", "--ctx", "1k", "--model", f"hf:{tiny_llama_dir},attn={attn}",
                              "-n", "1"])
    assert code == 2 and message in err and "Traceback" not in err
    with pytest.raises(ModelError, match="unknown method|arguments|integer|must|exceeds|does not take"):
        parse_attn(attn)


def test_model_whose_attention_cannot_be_swapped_exits_2_saying_why(tiny_llama_dir, tmp_path, evals_cli):
    d = _bloom_dir(tiny_llama_dir, tmp_path)
    code, _, err = evals_cli(["run", "niah_single_1", "--ctx", "1k", "--model", f"hf:{d},max_context=2048,attn=dense", "-n", "1"])
    assert code == 2 and "BloomForCausalLM cannot be swapped" in err and "AttentionInterface" in err


def test_head_dim_the_kernels_do_not_take_is_refused():
    from transformers import LlamaConfig

    from longctx.models.attn_swap import check_swappable

    with pytest.raises(ModelError, match="head dim 24"):
        check_swappable(LlamaConfig(hidden_size=96, num_attention_heads=4, num_key_value_heads=2))


def test_evals_probe_reports_per_layer_error_going_to_zero(tiny_llama_dir, evals_cli):
    totals = []
    for b in (8, 64, 256):
        code, stdout, err = evals_cli(["probe", "--model", f"hf:{tiny_llama_dir},attn=dsa:topk={b}:dim=16",
                                       "--n", "256", "--json"])
        assert code == 0, err[-2000:]
        errs = json.loads(stdout)["errors"]["256"]
        assert len(errs) == 2
        totals.append(sum(errs))
    assert totals[0] > totals[1] > totals[2] and totals[2] < 1e-6, totals
    code, _, err = evals_cli(["probe", "--model", f"hf:{tiny_llama_dir}", "--n", "256"])
    assert code == 2 and "the probe takes hf:PATH,attn=METHOD" in err


def test_the_board_shows_the_method_with_its_arguments():
    from longctx.evals.results_io import architecture

    assert architecture("hf:/m/llama,device=cpu,attn=ssa:topk=4:local=2") == "ssa:topk=4:local=2"


INTERPRETED = """
import sys, torch
from transformers import AutoModelForCausalLM
from longctx.models import attn_swap
from longctx.models.attn_swap import register
from longctx.kernels.backend import interpreting
assert interpreting()
attn_swap.KERNELS_ON_CPU = True
ids = torch.randint(5, 1000, (1, 64), generator=torch.Generator().manual_seed(0))
def last(impl):  # the prefill's last logits, then one decode step's
    m = AutoModelForCausalLM.from_pretrained(sys.argv[1], attn_implementation=impl).eval()
    with torch.inference_mode():
        o = m(input_ids=ids, use_cache=True)
        step = m(input_ids=o.logits[:, -1:].argmax(-1), past_key_values=o.past_key_values).logits
    return torch.stack([o.logits[0, -1], step[0, -1]])
ref = last("eager")
for spec in sys.argv[2:]:
    print(spec, float((last(register(spec)) - ref).abs().max()))
"""


@pytest.mark.slow
def test_the_gpu_kernels_run_in_triton_s_interpreter_give_stock_logits(tiny_llama_dir, tmp_path):
    """The Triton path a GPU takes (run by the CPU interpreter; the in-process tests above run the references):
    whole-context budgets match eager attention on prefill and on a decode step."""
    import os
    import subprocess
    import sys

    specs = ["dense", "blocks:block_size=16:local=5", "ssa:block_size=16:topk=2:beam=2:fanout=2",
             "hyper:block_size=16:n_samples=128"]  # whole-context budgets for 64 prompt tokens and one more
    p = subprocess.run([sys.executable, "-c", INTERPRETED, str(tiny_llama_dir), *specs], capture_output=True,
                       text=True, timeout=300, check=False, env={**os.environ, "TRITON_INTERPRET": "1"})
    assert p.returncode == 0, p.stderr[-2000:]
    diffs = dict(line.rsplit(" ", 1) for line in p.stdout.splitlines())
    assert set(diffs) == set(specs) and all(float(d) < 2e-5 for d in diffs.values()), diffs
