"""The architecture zoo on the CPU at tiny size: shapes, matched parameter counts, the inference
path (prefill + decode with cache/state) equal to the training path, learning, checkpoints."""
from __future__ import annotations

import dataclasses
import importlib
import json
import sys
import types
from pathlib import Path

import pytest
import torch
from zoo_steps import stepped_logits  # tests/fixtures, on sys.path via conftest

from longctx.models.base import Request
from longctx.models.errors import ModelError
from longctx.models.spec import parse_spec
from longctx.models.zoo import checkpoint, fla_ops, registry
from longctx.models.zoo.linear import gated_delta_chunked, gated_delta_step
from longctx.models.zoo.model import CHECKPOINTS, ZooModel
from longctx.models.zoo.swa import band_attention, local_attention
from longctx.models.zoo.trainer import Recipe, TrainData, train
from longctx.models.zoo.trunk import VOCAB_SIZE

ARCHS = registry.ARCHS


def tiny(arch: str, dtype=torch.float64) -> torch.nn.Module:
    torch.manual_seed(0)
    return registry.build(registry.config(arch, "tiny")).to(dtype).eval()


@pytest.mark.parametrize("arch", ARCHS)
def test_forward_shape(arch):
    ids = torch.randint(0, 256, (2, 19))
    assert tiny(arch, torch.float32)(ids).shape == (2, 19, VOCAB_SIZE)


@pytest.mark.parametrize("size", list(registry.SIZES))
def test_parameter_counts_match_within_10_percent(size):
    counts = {a: registry.build(registry.config(a, size)).num_params() for a in ARCHS}
    base = counts["dense"]
    assert all(abs(n / base - 1) <= 0.10 for n in counts.values()), counts


@pytest.mark.parametrize("arch", ARCHS)
def test_prefill_then_decode_equals_full_forward(arch):
    """Logits of a 13-token prefill, a 7-token continuation, then one token at a time, equal the
    training path's logits over the whole 37 tokens (lengths cross windows, chunks and blocks)."""
    m = tiny(arch)
    ids = torch.randint(0, 256, (2, 37))
    with torch.no_grad():
        full = m(ids)
    torch.testing.assert_close(stepped_logits(m, ids, (13, 20)), full, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("conv", [0, 4])
def test_gated_delta_with_and_without_short_convolution_is_causal_and_decodes_as_it_trains(conv):
    """``conv`` 4 (the published Gated DeltaNet, the registry's default) and 0 (checkpoints made before it)."""
    cfg = registry.config("linear", "tiny")
    torch.manual_seed(0)
    m = registry.build(dataclasses.replace(cfg, mixer={**cfg.mixer, "conv": conv})).double().eval()
    ids = torch.randint(0, 256, (2, 37))
    with torch.no_grad():
        full = m(ids)
    torch.testing.assert_close(stepped_logits(m, ids, (13, 20)), full, rtol=1e-9, atol=1e-9)
    shifted = ids.clone()
    shifted[:, 10] = (ids[:, 10] + 1) % 256
    with torch.no_grad():   # a change at position 10 moves no earlier logit
        torch.testing.assert_close(m(shifted)[:, :10], full[:, :10])


def test_sliding_window_matches_masked_dense_reference():
    torch.manual_seed(1)
    q, k, v = (torch.randn(1, 2, 29, 8, dtype=torch.float64) for _ in range(3))
    pos = torch.arange(29)
    diff = pos[:, None] - pos[None, :]
    w = torch.softmax((q @ k.transpose(-1, -2) / 8 ** 0.5).masked_fill(~((diff >= 0) & (diff < 5)), float("-inf")), -1)
    torch.testing.assert_close(local_attention(q, k, v, pos, pos, 5), w @ v)
    torch.testing.assert_close(band_attention(q, k, v, 5), w @ v)   # the training path, static slices


def test_gated_delta_chunked_equals_recurrence():
    torch.manual_seed(2)
    B, H, T, D = 1, 2, 21, 4
    q, k, v = (torch.nn.functional.normalize(torch.randn(B, H, T, D, dtype=torch.float64), dim=-1) for _ in range(3))
    beta, g = torch.rand(B, H, T, dtype=torch.float64), -torch.rand(B, H, T, dtype=torch.float64)
    o, S = gated_delta_chunked(q, k, v, beta, g, chunk=8)
    state, outs = torch.zeros(B, H, D, D, dtype=torch.float64), []
    for t in range(T):
        ot, state = gated_delta_step(q[:, :, t], k[:, :, t], v[:, :, t], beta[:, :, t], g[:, :, t], state)
        outs.append(ot)
    torch.testing.assert_close(torch.stack(outs, 2), o)
    torch.testing.assert_close(state, S)


def _copy_data(n: int = 32, length: int = 33) -> TrainData:
    """Rows whose second half repeats the first: learnable in a few steps by any mixer."""
    g = torch.Generator().manual_seed(0)
    half = torch.randint(97, 101, (n, length // 2 + 1), generator=g)
    tokens = torch.cat([half, half], 1)[:, :length]
    return TrainData(tokens, torch.ones_like(tokens, dtype=torch.float32), {"kind": "copy test"})


@pytest.mark.parametrize("arch", ARCHS)
def test_a_few_steps_lower_the_loss(arch, tmp_path):
    recipe = Recipe(steps=12, batch=8, lr=1e-2, warmup=2, log_every=1, save_every=100)
    train(registry.config(arch, "tiny"), recipe, _copy_data(), tmp_path, progress=False)
    losses = [json.loads(line)["loss"] for line in (tmp_path / "loss.jsonl").read_text().splitlines()]
    assert sum(losses[-3:]) / 3 < losses[0] - 0.2, losses


def test_a_phase_whose_compilation_fails_trains_eagerly_to_the_same_weights(tmp_path, monkeypatch):
    """torch.compile's failure at the first step (inductor could not build mamba1's backward at 32 x 257 on
    the H100) warns and trains the phase eagerly; the failed step must not have moved any weight."""
    recipe = Recipe(steps=3, batch=4, log_every=1, save_every=100)
    train(registry.config("dense", "tiny"), recipe, _copy_data(), tmp_path / "eager", progress=False)

    def failing_compile(error):
        def compile_(model, **kw):
            def forward(*a, **k):
                model(*a, **k).sum().backward()   # gradients from a half-done step, as a failed backward leaves
                raise error
            return forward
        return compile_

    monkeypatch.setattr(torch, "compile", failing_compile(torch._dynamo.exc.InternalTorchDynamoError("PassManager::run failed")))
    with pytest.warns(UserWarning, match="torch.compile failed .* this phase trains eagerly"):
        train(registry.config("dense", "tiny"), recipe, _copy_data(), tmp_path / "fallback", progress=False, compiled=True)
    monkeypatch.setattr(torch, "compile", failing_compile(RuntimeError("CUDA error: an illegal memory access")))
    with pytest.raises(RuntimeError, match="illegal memory access"):   # not a compiler's failure: it stops the run
        train(registry.config("dense", "tiny"), recipe, _copy_data(), tmp_path / "crash", progress=False, compiled=True)
    eager, _ = checkpoint.load(tmp_path / "eager")
    fallback, _ = checkpoint.load(tmp_path / "fallback")
    for (name, a), b in zip(eager.state_dict().items(), fallback.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)


@pytest.fixture
def saved(tmp_path):
    recipe = Recipe(steps=2, batch=4, log_every=1)
    card = train(registry.config("mamba2", "tiny"), recipe, _copy_data(), tmp_path / "ck", progress=False)
    return tmp_path / "ck", card


def test_checkpoint_round_trip(saved):
    folder, card = saved
    model, loaded = checkpoint.load(folder)
    assert loaded["parameters"] == model.num_params() == card["parameters"]
    for key in ("architecture", "config", "data", "tokens_seen", "steps", "final_loss", "wall_time_s", "hardware", "git_hash"):
        assert key in loaded
    ids = torch.randint(0, 256, (1, 9))
    again, _ = checkpoint.load(folder / "model.safetensors")
    torch.testing.assert_close(model(ids), again(ids))
    zm = ZooModel.from_spec(parse_spec(f"zoo:mamba2@{folder},device=cpu"))
    out = zm.generate([Request(messages=[{"role": "user", "content": "hi"}], prefill="A:", max_new_tokens=3)])
    assert out[0].prompt_tokens == zm.count_prompt_tokens(Request(messages=[{"role": "user", "content": "hi"}], prefill="A:"))
    assert out[0].output_tokens <= 3


def test_int8_checkpoint_is_a_third_the_size_and_keeps_the_logits(saved, tmp_path):
    folder, _ = saved
    model, card = checkpoint.load(folder)
    checkpoint.save(tmp_path / "small", model, card, int8=True)
    small, small_card = checkpoint.load(tmp_path / "small")
    assert small_card["weights"] == "int8-rowwise" and small_card["parameters"] == card["parameters"]
    assert (tmp_path / "small" / "model.safetensors").stat().st_size < 0.4 * (folder / "model.safetensors").stat().st_size
    for (name, w), (_, w8) in zip(model.named_parameters(), small.named_parameters()):
        assert float((w8 - w).norm() / w.norm().clamp_min(1e-12)) < 1e-2, name
    ids = torch.randint(0, 256, (2, 33))
    a, b = model(ids), small(ids)
    assert float((a - b).norm() / a.norm()) < 3e-2   # ~1.4% on this barely trained model


def test_corrupt_checkpoint_is_a_model_error_naming_the_file(saved):
    folder, _ = saved
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ModelError, match="model.safetensors"):
        checkpoint.load(folder)


def test_card_that_does_not_match_the_weights_is_a_model_error(saved):
    folder, _ = saved
    card = json.loads((folder / "card.json").read_text())
    card["config"]["d_model"] = 128
    (folder / "card.json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="do not match their card"):
        checkpoint.load(folder)


def test_missing_checkpoint_and_unknown_arch_are_model_errors(tmp_path):
    with pytest.raises(ModelError, match="nothere"):
        ZooModel.from_spec(parse_spec(f"zoo:dense@{tmp_path / 'nothere'}"))
    with pytest.raises(ModelError, match="unknown zoo architecture"):
        ZooModel.from_spec(parse_spec("zoo:transformerxl"))
    cfg = registry.config("hybrid_ssa", "tiny")
    with pytest.raises(ModelError, match="attention 'nsa'"):
        registry.build(dataclasses.replace(cfg, mixer={**cfg.mixer, "attention": "nsa"}))


def test_dsa_indexer_learns_only_from_its_distillation_loss():
    m = tiny("dsa", torch.float32).train()
    m(torch.randint(0, 256, (2, 23)))
    aux = m.aux_loss()
    assert aux is not None and aux.item() > 0
    aux.backward()
    mixer = m.blocks[0].mixer
    assert mixer.index_q.weight.grad.abs().sum() > 0
    assert mixer.qkv.weight.grad is None or mixer.qkv.weight.grad.abs().sum() == 0


@pytest.mark.parametrize("arch", ["ssa", "hybrid_ssa"])
def test_ssa_router_learns_only_from_its_distillation_loss_which_equals_its_definition(arch):
    """The routing loss, recomputed query by query in float64: KL from the full causal attention's mass
    on each completed block (renormalized) to the softmax of the router's query against each block's
    mean router key. Its gradient reaches the router and nothing else; without training it is absent."""
    m = tiny(arch, torch.float64).train()
    m(torch.randint(0, 256, (2, 23), generator=torch.Generator().manual_seed(1)))
    att = next(b.mixer for b in m.blocks if hasattr(b.mixer, "route_distill"))
    aux = m.aux_loss()
    assert aux is not None and aux.item() > 0
    g = torch.Generator().manual_seed(2)
    D, Dr, bs = att.head_dim, att.router_dim, att.block
    q, k = (torch.randn(2, 2, 23, D, generator=g, dtype=torch.float64) for _ in range(2))
    rq, rk = (torch.randn(2, 2, 23, Dr, generator=g, dtype=torch.float64) for _ in range(2))
    kls = []
    for b in range(2):
        for h in range(2):
            for t in range(bs, 23):
                nb = t // bs
                p = torch.softmax(q[b, h, t] @ k[b, h, :t + 1].T / D ** 0.5, -1)
                mass = torch.stack([p[j * bs:(j + 1) * bs].sum() for j in range(nb)])
                target = mass / mass.sum()
                means = torch.stack([rk[b, h, j * bs:(j + 1) * bs].mean(0) for j in range(nb)])
                log_q = torch.log_softmax(means @ rq[b, h, t] / Dr ** 0.5, -1)
                kls.append((target * (target.log() - log_q)).sum())
    torch.testing.assert_close(att.route_distill(rq, rk, q, k), torch.stack(kls).mean())
    aux.backward()
    assert att.router_q.weight.grad.abs().sum() > 0 and att.router_k.weight.grad.abs().sum() > 0
    assert att.qkv.weight.grad is None or att.qkv.weight.grad.abs().sum() == 0
    m.eval()
    with torch.no_grad():
        m(torch.randint(0, 256, (1, 9)))
    assert m.aux_loss() is None


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (the kernels/ inference paths)")
@pytest.mark.parametrize("arch", ARCHS)
def test_gpu_inference_path_through_kernels_matches_training_path(arch):
    """At the shipped size in float32: prefill (Triton kernels where the mixer has one) plus
    decode against the cache/state gives the training path's logits."""
    torch.manual_seed(0)
    m = registry.build(registry.config(arch, "small")).cuda().eval()
    ids = torch.randint(0, 256, (1, 300), device="cuda")
    with torch.no_grad():
        full = m(ids)
    err = (stepped_logits(m, ids, (290,)) - full).abs().max() / full.abs().max()
    assert err < 1e-2, float(err)


SHIPPED = sorted(p.parent.name for p in CHECKPOINTS.glob("*/card.json"))


def test_every_architecture_ships_at_most_once_within_the_size_budget():
    folder = CHECKPOINTS
    assert set(SHIPPED) <= set(registry.ARCHS) and len(SHIPPED) >= 8
    assert sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) <= 64 * 2**20


@pytest.mark.parametrize("arch", SHIPPED)
def test_shipped_checkpoints_load_and_match_their_cards(arch):
    model, card = checkpoint.load(CHECKPOINTS / arch)
    assert card["architecture"] == arch and card["parameters"] == model.num_params()
    assert card["data"]["split"] == "train" and card["steps"] > 0


@pytest.mark.parametrize("hopper, triton_3_7_1, usable", [(True, False, False), (True, True, True), (False, False, True)])
def test_fla_ops_are_refused_where_fla_says_its_gated_backward_is_wrong(hopper, triton_3_7_1, usable, monkeypatch):
    """fla 0.6 raises in the gated backward on Hopper under Triton 3.4 to 3.7.0: the zoo must not pick
    fla there (the training would crash at its first backward), and must pick it everywhere else."""
    op = object()
    fake = {"fla": types.ModuleType("fla"), "fla.ops": types.ModuleType("fla.ops"),
            "fla.ops.simple_gla": types.SimpleNamespace(chunk_simple_gla=op),
            "fla.ops.common.chunk_o": types.SimpleNamespace(IS_NVIDIA_HOPPER=hopper, TRITON_ABOVE_3_4_0=True,
                                                            TRITON_ABOVE_3_7_1=triton_3_7_1)}
    for name, module in fake.items():
        monkeypatch.setitem(sys.modules, name, module)
    assert (fla_ops.fla_op("simple_gla", "chunk_simple_gla") is op) == usable


def test_fla_ops_without_fla_installed(monkeypatch):
    monkeypatch.setitem(sys.modules, "fla", None)   # import fla raises ImportError
    assert fla_ops.fla_op("gated_delta_rule", "chunk_gated_delta_rule") is None


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("arch", ["linear", "mamba2"])
def test_gpu_training_through_fla_matches_the_chunked_reference(arch, monkeypatch):
    """linear's and mamba2's training paths through flash-linear-attention give the chunked forms'
    outputs and gradients (float32, the shipped size, a length that is not a multiple of the chunk)."""
    module = importlib.import_module(f"longctx.models.zoo.{arch}")
    if module._fla_chunk() is None:
        pytest.skip("flash-linear-attention (the fla extra) is not installed or cannot train on this GPU")
    torch.manual_seed(0)
    mixer = module.make(registry.config(arch, "small"), 0).cuda()
    x = torch.randn(2, 300, registry.config(arch, "small").d_model, device="cuda", requires_grad=True)
    params = [x, *(p for p in mixer.parameters() if p.dim() == 2)]
    runs = []
    for fla in (module._fla_chunk, lambda: None):
        monkeypatch.setattr(module, "_fla_chunk", fla)
        out = mixer(x)
        runs.append((out, torch.autograd.grad(out.square().sum(), params)))
    (out, grads), (ref, ref_grads) = runs
    assert float((out - ref).abs().max() / ref.abs().max()) < 1e-2
    for a, b in zip(grads, ref_grads):
        assert float((a - b).abs().max() / b.abs().max()) < 2e-2
