"""The OT-CFM objective and sampler against hand-computed values on small tensors."""

import math

import pytest
import torch
from torch import nn

from talker_t2av.cfm import (
    CFMConfig,
    CFMNoise,
    CFMSamplerConfig,
    FlowMatching,
    guided_velocity,
    optimized_scale,
    sway_schedule,
    zero_init_steps,
)


def test_sway_schedule_hand_values():
    # t = u + (cos(pi u / 2) - 1 + u), u = 1, .75, .5, .25, 0
    expected = [1.0, 0.5 + math.cos(3 * math.pi / 8), math.cos(math.pi / 4), -0.5 + math.cos(math.pi / 8), 0.0]
    assert sway_schedule(4, 1.0) == pytest.approx(expected, abs=1e-12)
    assert sway_schedule(4, 0.0) == pytest.approx([1.0, 0.75, 0.5, 0.25, 0.0])


def test_cfg_zero_star_hand_values():
    assert [zero_init_steps(n) for n in (10, 30, 48, 49)] == [1, 1, 1, 2]  # max(1, int(0.04 (n + 1)))
    v_c, v_u = torch.tensor([[1.0, 1.0]]), torch.tensor([[2.0, 0.0]])
    assert optimized_scale(v_c, v_u).item() == pytest.approx(0.5)  # <v_c, v_u> / |v_u|^2 = 2 / 4
    # v = v_u s* + w (v_c - v_u s*) = [1, 0] + 2 ([1, 1] - [1, 0])
    torch.testing.assert_close(guided_velocity(v_c, v_u, 2.0), torch.tensor([[1.0, 2.0]]))
    torch.testing.assert_close(guided_velocity(v_c, v_u, 2.0, zero_star=False), torch.tensor([[0.0, 2.0]]))


class Recorder(nn.Module):
    """An estimator that records its inputs; velocity = first channel of mu, broadcast.

    Sampling uses the estimator's prepared pieces (LocalDiT's ``fixed_tokens``, ``time_embedding``,
    ``estimate``): here the time embedding is [0, t], so the first token mu + t_emb carries mu's first
    channel and t side by side (the tests' mu has a zero second channel)."""

    channels = 2

    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, x, mu, t, context, global_cond):
        self.calls.append({"x": x.clone(), "mu": mu.clone(), "t": t.clone(), "context": context.clone()})
        return mu[:, :1, None].expand_as(x).clone()

    def fixed_tokens(self, context, global_cond):
        return context

    def time_embedding(self, t, dtype):
        return torch.stack([torch.zeros_like(t), t], dim=-1).to(dtype)  # (S, 2)

    def estimate(self, x, first, fixed):
        first = first.expand(x.shape[0], -1)
        self.calls.append({"x": x.clone(), "mu": first[:, :1].clone(), "t": first[:1, 1].clone(),
                           "context": fixed.clone()})
        return first[:, :1, None].expand_as(x).clone()


def test_training_target_and_dropout_hand_computed():
    est = Recorder()
    cfm = FlowMatching(est, patch_size=2, cfg=CFMConfig(repeats=2))
    x1 = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])  # (1, P=2, C=2)
    mu, ctx, gc = torch.tensor([[5.0, 6.0]]), torch.ones(1, 2, 2), torch.zeros(1, 3)
    z = torch.tensor([[[0.0, 1.0], [1.0, 0.0]], [[2.0, 2.0], [2.0, 2.0]]])  # one per repeat
    noise = CFMNoise(t=torch.tensor([0.25, 0.5]), z=z, keep_mu=torch.tensor([True, False]),
                     keep_context=torch.tensor([False, True]))
    loss = cfm.loss(x1, mu, ctx, gc, noise)
    call = est.calls[0]
    # x_t = (1 - t) x1 + t z for each repeat
    torch.testing.assert_close(call["x"][0], 0.75 * x1[0] + 0.25 * z[0])
    torch.testing.assert_close(call["x"][1], 0.5 * x1[0] + 0.5 * z[1])
    torch.testing.assert_close(call["mu"], torch.tensor([[5.0, 6.0], [0.0, 0.0]]))  # mu dropped in repeat 2
    torch.testing.assert_close(call["context"], torch.stack([torch.zeros(2, 2), torch.ones(2, 2)]))
    # loss = mean((v_pred - (z - x1))^2), v_pred = mu[:, 0] broadcast = 5 then 0
    v_pred = torch.stack([torch.full((2, 2), 5.0), torch.zeros(2, 2)])
    assert loss.item() == pytest.approx(((v_pred - (z - x1)) ** 2).mean().item())


def test_noise_distribution():
    cfm = FlowMatching(Recorder(), patch_size=4)
    noise = cfm.sample_noise(torch.zeros(200_000, 4, 2), torch.Generator().manual_seed(0))
    logit = torch.logit(noise.t)
    assert logit.mean().item() == pytest.approx(-0.4, abs=0.01)
    assert logit.std().item() == pytest.approx(1.0, abs=0.01)
    assert 1 - noise.keep_mu.float().mean().item() == pytest.approx(0.1, abs=0.005)
    assert 1 - noise.keep_context.float().mean().item() == pytest.approx(0.05, abs=0.005)


def test_euler_sampler_with_cfg_zero_star_hand_computed():
    est = Recorder()
    cfm = FlowMatching(est, patch_size=2)
    mu = torch.tensor([[3.0, 0.0], [-1.0, 0.0]])
    z = torch.randn(2, 2, 2, generator=torch.Generator().manual_seed(0))
    cfg = CFMSamplerConfig(steps=10, guidance=2.0, temperature=0.5, sway=1.0)
    out = cfm.sample(mu, torch.zeros(2, 2, 2), torch.zeros(2, 3), cfg, z=z)
    # step 1 uses zero velocity; afterwards v_c = mu0, v_u = 0 -> s* = 0 -> v = w mu0,
    # so x = T z - (t_1 - t_10) w mu0 with t_1 = 0.9 + cos(0.45 pi) - 1 + 0.9
    t1 = 0.8 + math.cos(0.45 * math.pi)
    expected = 0.5 * z - t1 * 2.0 * mu[:, :1, None]
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)
    assert len(est.calls) == 9  # one estimator call per guided step...
    assert est.calls[0]["x"].shape[0] == 4  # ... with the conditional and unconditional rows together
    torch.testing.assert_close(est.calls[0]["mu"][2:], torch.zeros(2, 1))  # unconditional: mu = 0
    assert est.calls[0]["t"].item() == pytest.approx(t1)


@pytest.mark.parametrize("guidance", [2.0, 1.0])
def test_sampler_equals_the_plain_euler_loop_over_the_estimators_forward(guidance):
    # the sampler prepares per patch what does not change over the steps (the condition tokens, the CFG rows,
    # every step's time embedding in one batch); the result is the loop that calls the estimator whole each step
    from talker_t2av.modules import LocalDiT

    torch.manual_seed(0)
    est = LocalDiT(channels=3, global_dim=5, dim=16, layers=2, heads=2).eval()
    cfm = FlowMatching(est, patch_size=4)
    mu, ctx, gc, z = torch.randn(2, 16), torch.randn(2, 4, 3), torch.randn(2, 5), torch.randn(2, 4, 3)
    cfg = CFMSamplerConfig(steps=6, guidance=guidance, temperature=0.7)
    ts, skip = sway_schedule(cfg.steps, cfg.sway), zero_init_steps(cfg.steps)
    x = z * cfg.temperature
    with torch.no_grad():
        for k in range(skip, cfg.steps):
            t = torch.full((1,), ts[k])
            if guidance == 1.0:
                v = est(x, mu, t, ctx, gc)
            else:
                both = est(torch.cat([x, x]), torch.cat([mu, torch.zeros_like(mu)]), t, torch.cat([ctx, ctx]),
                           torch.cat([gc, gc]))
                v = guided_velocity(both[:2], both[2:], guidance)
            x = x - (ts[k] - ts[k + 1]) * v
    torch.testing.assert_close(cfm.sample(mu, ctx, gc, cfg, z=z), x, atol=1e-6, rtol=1e-5)
