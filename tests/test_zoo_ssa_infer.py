"""SSA's block-inverted inference path (``ContentRoutedAttention.attend_infer``) against the mask
path it replaces (``SelectedAttention.attend_infer``: a boolean mask from ``select`` and masked SDPA):
same output on awkward lengths, across query chunks and tiles, through prefill + decode with a cache,
and for a whole tiny ssa model. Run: ``pytest tests/test_zoo_ssa_infer.py -q``."""
from __future__ import annotations

import pytest
import torch
from zoo_steps import stepped_logits  # tests/fixtures, on sys.path via conftest

from longctx.models.zoo import registry, ssa
from longctx.models.zoo.sparse import SelectedAttention
from longctx.models.zoo.trunk import ZooConfig

# (block, top_blocks, window, rope_fraction): under partial RoPE, routing reads the unrotated half only
MIXERS = {"b4-top2-w6": (4, 2, 6, 1.0), "b4-top3-w4": (4, 3, 4, 1.0), "b8-top2-w16": (8, 2, 16, 1.0),
          "b4-top2-w6-half": (4, 2, 6, 0.5)}
# (keys in the cache, queries at its end): shorter than a block, not a multiple of it, a few blocks
LENGTHS = [(3, 3), (5, 5), (13, 13), (37, 37), (37, 1), (50, 13), (64, 64), (101, 7), (101, 1)]


def mixer(block: int, top: int, window: int, rope_fraction: float = 1.0, heads: int = 2,
          head_dim: int = 8) -> ssa.ContentRoutedAttention:
    torch.manual_seed(0)
    knobs = {"block": block, "top_blocks": top, "window": window, "rope_fraction": rope_fraction}
    cfg = ZooConfig("ssa", heads * head_dim, 1, heads, 32, mixer=knobs)
    return ssa.ContentRoutedAttention(cfg, 0).eval()


def mask_path(att, q, k, v, q_pos, k_pos):
    x = torch.zeros(q.shape[0], q.shape[2], 1)  # the mixer inputs: ssa's select does not read them
    return SelectedAttention.attend_infer(att, x, q, k, v, q_pos, k_pos, {})


@pytest.mark.parametrize("tk,tq", LENGTHS, ids=[f"Tk{a}-Tq{b}" for a, b in LENGTHS])
@pytest.mark.parametrize("name", list(MIXERS))
def test_attend_infer_equals_mask_path(name, tk, tq):
    att = mixer(*MIXERS[name])
    g = torch.Generator().manual_seed(tk * 100 + tq)
    q, k, v = (torch.randn(2, 2, t, 8, generator=g) for t in (tq, tk, tk))
    q_pos, k_pos = torch.arange(tk - tq, tk), torch.arange(tk)
    want = mask_path(att, q, k, v, q_pos, k_pos)
    torch.testing.assert_close(att.attend_infer(None, q, k, v, q_pos, k_pos, {}), want, rtol=1e-5, atol=1e-5)


def test_many_chunks_and_tiles_equal_mask_path(monkeypatch):
    """Query chunks of 7 and tiles of 2 queries: every chunk and tile boundary is crossed."""
    monkeypatch.setattr(ssa, "INFER_CHUNK", 7)
    monkeypatch.setattr(ssa, "MAX_TILE", 2)
    att = mixer(4, 3, 6)
    g = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(1, 2, 90, 8, generator=g, dtype=torch.float64) for _ in range(3))
    pos = torch.arange(90)
    want = mask_path(att, q, k, v, pos, pos)
    torch.testing.assert_close(att.attend_infer(None, q, k, v, pos, pos, {}), want, rtol=1e-10, atol=1e-10)


def test_partial_rope_routes_on_the_unrotated_half_only():
    """With half of each head rotated, the blocks a query chooses depend on the unrotated half alone:
    rewriting the rotated half of every key changes no choice; under full RoPE every dimension routes."""
    att = mixer(4, 2, 4, rope_fraction=0.5)
    g = torch.Generator().manual_seed(5)
    q, k = torch.randn(1, 2, 40, 8, generator=g), torch.randn(1, 2, 40, 8, generator=g)
    scrambled = k.clone()
    scrambled[..., :4] = 100 * torch.randn(1, 2, 40, 4, generator=g)
    pos = torch.arange(40)
    assert att.route_from == 4

    def choices(m, keys):
        return m.route(m.route_queries(None, q), m.block_means(m.route_keys(keys, {})), pos)

    torch.testing.assert_close(choices(att, scrambled), choices(att, k))
    full = mixer(4, 2, 4)
    assert full.route_from == 0 and not torch.equal(choices(full, scrambled)[0], choices(full, k)[0])


def test_many_queries_choosing_one_block():
    """Queries that all route to the same block fill several tiles of that one block."""
    att = mixer(4, 1, 4, heads=1)
    k = torch.randn(1, 1, 200, 8, dtype=torch.float64) * 0.1
    k[:, :, 8:12] += 5.0          # block 2 stands out, so every query that can choose it does
    q = torch.ones(1, 1, 200, 8, dtype=torch.float64)
    v = torch.randn_like(k)
    pos = torch.arange(200)
    want = mask_path(att, q, k, v, pos, pos)
    torch.testing.assert_close(att.attend_infer(None, q, k, v, pos, pos, {}), want, rtol=1e-10, atol=1e-10)


def test_tiny_model_prefill_and_decode_logits_unchanged(monkeypatch):
    torch.manual_seed(0)
    model = registry.build(registry.config("ssa", "tiny")).eval()
    ids = torch.randint(0, 256, (2, 48))
    new = stepped_logits(model, ids, (29, 35))
    monkeypatch.setattr(ssa.ContentRoutedAttention, "attend_infer", SelectedAttention.attend_infer)
    old = stepped_logits(model, ids, (29, 35))
    torch.testing.assert_close(new, old, rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        torch.testing.assert_close(new, model(ids), rtol=1e-5, atol=1e-5)


def test_prefill_under_bf16_autocast_accumulates_in_float32():
    """The GPU runs prefill under bf16 autocast, where the parts' logits and products come out in mixed
    dtypes (a 1M-token prefill once failed on ``index_add_`` there). With every block selected, so that
    bf16 cannot flip a routing choice, the bf16 prefill stays within bf16 rounding of the float32 forward."""
    torch.manual_seed(0)
    m = registry.build(registry.config("ssa", "tiny")).eval()
    for block in m.blocks:
        block.mixer.top_blocks = 1000
    ids = torch.randint(0, 256, (1, 300))
    with torch.no_grad():
        want = m(ids)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got, _ = m.step(ids, None)
    assert got.dtype == torch.bfloat16
    assert float((got.float() - want).abs().max() / want.abs().max()) < 2e-2
