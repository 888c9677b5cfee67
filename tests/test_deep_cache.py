"""DeepCache step caching: a reused pass is the full UNet where the deep features are the same, the refresh
pattern is 1:N per UNet pass, and a cached generation runs the deep blocks only on refresh evaluations."""
import numpy as np
import pytest
import torch

from engine import InvalidRequestError
from engine.infotext import parse_infotext
from engine.models.deep_cache import CacheSlot, StepCache
from tests.test_pipeline import pipe, request  # noqa: F401  (the tiny pipeline fixture)


def unet_inputs(unet, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, 4, 16, 16, generator=g), torch.randn(2, 7, unet.config.cross_attention_dim, generator=g)


@torch.no_grad()
def test_a_reused_pass_is_the_full_unet_when_the_deep_features_are_the_same(pipe):
    unet = pipe.unet
    x, context = unet_inputs(unet)
    full = unet(x, 500, context)
    slot = CacheSlot()
    torch.testing.assert_close(unet(x, 500, context, cache=slot), full)        # a refresh pass: the full UNet
    assert slot.feature is not None and slot.feature.shape[0] == 2
    slot.refresh = False
    torch.testing.assert_close(unet(x, 500, context, cache=slot), full, atol=1e-5, rtol=1e-5)
    moved = unet(x * 0.9, 480, context, cache=slot)              # a neighbouring step: close, not the same
    exact = unet(x * 0.9, 480, context)
    assert 0 < (moved - exact).abs().max() and (moved - exact).norm() < (exact - full).norm()
    assert not CacheSlot(feature=slot.feature, refresh=False).reusable(batch=4)   # another batch: full pass


def test_refresh_pattern_is_one_full_pass_in_n_per_pass_slot():
    cache, pattern = StepCache(3), []
    for _ in range(7):
        cache.next_evaluation()
        cond, uncond = cache.slot(), cache.slot()           # two passes an evaluation: two slots
        pattern.append(cond.refresh)
        assert cond is not uncond and cond.refresh == uncond.refresh
    assert pattern == [True, False, False, True, False, False, True]
    with pytest.raises(ValueError):
        StepCache(1)


def test_a_cached_generation_runs_the_deep_blocks_on_refresh_evaluations_only(pipe):
    deep_calls = []
    hook = pipe.unet.mid_block.register_forward_hook(lambda *a: deep_calls.append(1))
    try:
        plain = pipe.generate(request(steps=12, sampler="Euler"))
        plain_calls, deep_calls[:] = len(deep_calls), []
        cached = pipe.generate(request(steps=12, sampler="Euler", deep_cache=3))
    finally:
        hook.remove()
    assert plain_calls == 12 and len(deep_calls) == 4            # evaluations 0, 3, 6, 9
    a, b = (np.asarray(r.images[0], np.float64) for r in (plain, cached))
    assert 0 < np.abs(a - b).mean() < 40                          # an approximation of the same picture
    assert parse_infotext(cached.infotexts[0])["DeepCache interval"] == "3"
    assert "DeepCache" not in plain.infotexts[0]
    with pytest.raises(InvalidRequestError, match="DeepCache"):
        pipe.generate(request(deep_cache=1))
