"""RoPE positions in the zoo: partial rotary leaves the other dimensions alone, the trainer's PoSE
skips spread positions over the span, and positions passed to a model reach every rotary layer
(indexers included) while recurrent models ignore them."""
from __future__ import annotations

import pytest
import torch

from longctx.models.zoo import registry
from longctx.models.zoo.dense import rope
from longctx.models.zoo.trainer import pose_positions


def test_partial_rope_rotates_only_its_share_and_keeps_scores_relative():
    torch.manual_seed(0)
    q, k = torch.randn(2, 1, 3, 1, 10, dtype=torch.float64)
    pos = torch.tensor([5])
    rq = rope(q, pos, 0.4)
    torch.testing.assert_close(rq[..., 4:], q[..., 4:])          # 0.4 of 10 dimensions = 2 pairs rotated
    assert not torch.allclose(rq[..., :4], q[..., :4])

    def score(i, j):
        return float((rope(q, torch.tensor([i]), 0.4) * rope(k, torch.tensor([j]), 0.4)).sum())

    assert score(900_013, 900_000) == pytest.approx(score(13, 0), abs=1e-9)


def test_full_rope_is_the_default():
    x = torch.randn(1, 2, 4, 8, dtype=torch.float64)
    pos = torch.arange(4)
    torch.testing.assert_close(rope(x, pos), rope(x, pos, 1.0))


def test_pose_positions_keep_text_distances_and_reach_the_span():
    L, span = 64, 4096
    gaps = []
    for step in range(200):
        pos = pose_positions(step, L, span, seed=3)
        assert pos.shape == (L,) and pos[0] == 0 and int(pos[-1]) < span
        d = pos.diff()
        assert (d >= 1).all() and int((d > 1).sum()) <= 1      # one skip at most; the rest stays contiguous
        gaps.append(int(pos[-1]) - (L - 1))
        torch.testing.assert_close(pos, pose_positions(step, L, span, seed=3))   # resumable: same per step
    assert max(gaps) > 0.9 * (span - L) and min(gaps) < 0.1 * (span - L)
    torch.testing.assert_close(pose_positions(5, L, L, seed=3), torch.arange(L))


@pytest.mark.parametrize("arch", registry.ARCHS)
def test_positions_reach_the_rotary_layers_and_only_they(arch):
    """Shifting every position by a constant leaves a rotary softmax model's logits unchanged (RoPE is
    relative, in the indexer too; performer's random features are not, so it is left out of that
    check) while a skip in the middle changes them; recurrent models ignore positions altogether."""
    torch.manual_seed(0)
    m = registry.build(registry.config(arch, "tiny")).double().eval()
    ids = torch.randint(0, 256, (2, 23))
    plain = torch.arange(23)
    skipped = plain + 1000 * (plain >= 11)
    with torch.no_grad():
        base = m(ids)
        torch.testing.assert_close(m(ids, plain), base)
        if arch != "performer":
            torch.testing.assert_close(m(ids, plain + 777), base, rtol=1e-8, atol=1e-8)
        moved = m(ids, skipped)
    if arch in registry.ROTARY:
        assert not torch.allclose(moved, base)
        torch.testing.assert_close(moved[:, :11], base[:, :11])   # causal: tokens before the skip see no change
    else:
        torch.testing.assert_close(moved, base)


def test_logn_scaling_leaves_the_training_length_alone_and_sharpens_beyond_it():
    """Dense's log-n query scaling changes nothing in the first ``logn_len`` tokens (training never
    sees it) and changes the logits after them."""
    cfg = registry.config("dense", "tiny")
    assert cfg.mixer["logn_len"] == 16
    plain_cfg = type(cfg)(**{**cfg.to_dict(), "mixer": {k: v for k, v in cfg.mixer.items() if k != "logn_len"}})
    torch.manual_seed(0)
    m = registry.build(cfg).double().eval()
    plain = registry.build(plain_cfg).double().eval()
    plain.load_state_dict(m.state_dict())
    ids = torch.randint(0, 256, (1, 40))
    with torch.no_grad():
        a, b = m(ids), plain(ids)
    torch.testing.assert_close(a[:, :16], b[:, :16])
    assert not torch.allclose(a[:, 16:], b[:, 16:])
