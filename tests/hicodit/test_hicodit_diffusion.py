"""Masked diffusion: the DSE weighting and its reduction, Euler = exact reverse step, the guidance
rule, one batched forward per step, vectorised loss, variable lengths, condition dropout."""

import math

import pytest
import torch

from hicodit.diffusion import (
    DiffusionConfig,
    DiffusionSamplerConfig,
    LogLinearSchedule,
    MaskedDiffusion,
    score_entropy_loss,
)
from hicodit.guidance import PASS_DROPS, combine_guidance, guidance_passes
from tests.hicodit.helpers import every_guidance_pass, tiny_batch, tiny_net

UNGUIDED = dict(w_all=0.0, w_id=0.0, w_emo=0.0, w_lip=0.0)


def diffusion(seed=0, **overrides) -> MaskedDiffusion:
    return MaskedDiffusion(tiny_net(seed), DiffusionConfig(**overrides)).eval()


@pytest.mark.parametrize("eps", [1e-3, 0.0, 0.1])
def test_dse_weight_is_rate_over_expm1_total_noise_which_is_one_over_t(eps):
    schedule = LogLinearSchedule(eps)
    t = torch.tensor([0.01, 0.1, 0.37, 0.5, 0.9, 0.999], dtype=torch.float64, requires_grad=True)
    total = schedule.total_noise(t)
    (rate,) = torch.autograd.grad(total.sum(), t)  # sigma(t) = d sigma_bar / dt, by autograd
    t = t.detach()
    expected = rate / (torch.exp(total.detach()) - 1)
    assert torch.allclose(schedule.loss_weight(t), expected, rtol=1e-10)
    assert torch.allclose(schedule.loss_weight(t), 1 / t, rtol=1e-10)
    assert torch.allclose(schedule.mask_prob(t), (1 - eps) * t, rtol=1e-10)


def test_score_entropy_reduces_to_weighted_cross_entropy_at_masked_positions():
    """Evaluate SEDD's DSE by its definition (sum over neighbours y of x_t of
    Q_t(x_t, y) [s_y - r_y log s_y + K(r_y)]) with the RADD score s = alpha(t) p_theta, and compare
    with the weighted cross-entropy the objective computes."""
    torch.manual_seed(0)
    schedule = LogLinearSchedule(1e-3)
    b, q, length, v = 2, 3, 5, 6
    x0 = torch.randint(0, v, (b, q, length))
    masked = torch.rand(b, q, length) < 0.5
    t = torch.tensor([0.3, 0.8], dtype=torch.float64)
    logits = torch.randn(b, length, q, v, dtype=torch.float64)
    _, level_loss = score_entropy_loss(logits, x0, masked, schedule.loss_weight(t))
    loss = level_loss.sum()

    expected = 0.0
    for i in range(b):
        sigma_bar = schedule.total_noise(t[i])
        alpha = torch.exp(-sigma_bar) / (1 - torch.exp(-sigma_bar))
        p = logits[i].softmax(-1)  # (L, Q, V)
        for level in range(q):
            for pos in range(length):
                if not masked[i, level, pos]:
                    continue  # an unmasked token has no neighbour reachable by the forward process
                for code in range(v):  # neighbour y: this position set to `code`
                    score = alpha * p[pos, level, code]
                    ratio = alpha if code == x0[i, level, pos] else torch.tensor(0.0, dtype=torch.float64)
                    k = ratio * (torch.log(ratio) - 1) if ratio > 0 else 0.0
                    expected += schedule.rate(t[i]) * (score - ratio * torch.log(score) + k)
    assert torch.allclose(loss, expected, rtol=1e-9)


@pytest.mark.parametrize("eps", [1e-3, 0.1])
def test_euler_step_is_the_exact_reverse_transition_for_the_log_linear_schedule(eps):
    """The sampler's own step probability equals the exact reverse transition of the masking process,
    1 - P(masked at s) / P(masked at t) = 1 - s / t (P(masked at t) = (1 - eps) t), for any eps."""
    model = diffusion(schedule_eps=eps)
    for steps in (4, 64):
        times = [1 - k / steps for k in range(steps + 1)]
        for t, s in zip(times[:-1], times[1:]):
            assert math.isclose(model.unmask_probability(t, s), 1 - s / t, rel_tol=1e-9, abs_tol=1e-12)


def test_one_sampler_step_reveals_the_expected_fraction_of_tokens():
    """Run the sampler itself for one step of a many-step schedule: it reveals 1 - s/t of the tokens."""
    batch = tiny_batch(clips=2, frames=(40, 40))
    model = diffusion()
    cond = model.conditions(batch)[0]
    steps = 8  # one step of eight: t = 1 -> s = 7/8 reveals 1/8 of the tokens
    sampler = DiffusionSamplerConfig(steps=steps, **UNGUIDED)
    original = model.unmask_probability
    calls = []

    def first_step_only(t, s):  # stop after the first step: everything later stays masked
        calls.append((t, s))
        return original(t, s) if len(calls) == 1 else 0.0

    model.unmask_probability = first_step_only
    x = model.sample(cond, batch["token_mask"], sampler, torch.Generator().manual_seed(0))
    revealed = (x != model.mask_id).float().mean()
    assert calls[0] == (1.0, 1 - 1 / steps) and len(calls) == steps
    assert abs(float(revealed) - 1 / steps) < 0.02  # 2 x 12 levels x 80 frames = 1920 tokens


def test_guidance_rule_and_its_invariance_to_per_position_constants():
    torch.manual_seed(0)
    cfg = DiffusionSamplerConfig(w_all=2.5, w_id=1.25, w_emo=1.5, w_lip=2.0)
    passes = guidance_passes(cfg)
    assert passes == ["all", "none", "id", "emo", "lip"]
    assert PASS_DROPS["lip"] == (False, True, True) and PASS_DROPS["id"] == (True, False, True)
    l_all, l_none, l_id, l_emo, l_lip = torch.randn(5, 2, 3, 4, 7)
    expected = l_all + 2.5 * (l_all - l_none) + 1.25 * (l_id - l_none) + 1.5 * (l_emo - l_none) + 2.0 * (l_lip - l_none)
    logits = torch.stack([l_all, l_none, l_id, l_emo, l_lip])
    assert torch.allclose(combine_guidance(logits, passes, cfg), expected, atol=1e-6)
    # the same rule on log-probabilities (or log-scores) gives the same distribution
    from_log_probs = combine_guidance(logits.log_softmax(-1), passes, cfg)
    assert torch.allclose(from_log_probs.softmax(-1), expected.softmax(-1), atol=1e-6)
    assert guidance_passes(DiffusionSamplerConfig(**UNGUIDED)) == ["all"]
    assert guidance_passes(DiffusionSamplerConfig(w_all=1.0, w_id=0.0, w_emo=2.0, w_lip=0.0)) == ["all", "none", "emo"]


@pytest.mark.parametrize("greedy", [False, True])
def test_zero_guidance_weights_reproduce_the_unguided_sampler_exactly(greedy):
    batch = tiny_batch(clips=2)
    model = diffusion()
    cond = model.conditions(batch)[0]
    cfg = DiffusionSamplerConfig(steps=6, greedy=greedy, **UNGUIDED)
    runs = [model.sample(cond, batch["token_mask"], cfg, torch.Generator().manual_seed(3))]  # conditional pass only
    with every_guidance_pass():  # all 5 passes, their weights 0
        runs.append(model.sample(cond, batch["token_mask"], cfg, torch.Generator().manual_seed(3)))
    assert torch.equal(runs[0], runs[1])
    guided = model.sample(cond, batch["token_mask"], DiffusionSamplerConfig(steps=6, greedy=greedy),
                          torch.Generator().manual_seed(3))
    assert not torch.equal(guided, runs[0])  # and non-zero weights do change the result


class CountingNet(torch.nn.Module):
    """Wraps the network and records the batch size of every forward."""

    def __init__(self, net):
        super().__init__()
        self.inner, self.batch_sizes = net, []
        self.cfg, self.mask_id = net.cfg, net.mask_id

    def forward(self, tokens, *args, **kwargs):
        self.batch_sizes.append(tokens.shape[0])
        return self.inner(tokens, *args, **kwargs)

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.inner, name)


def test_each_sampling_step_is_one_batched_forward_over_all_guidance_passes():
    batch = tiny_batch(clips=3)
    model = diffusion()
    cond = model.conditions(batch)[0]
    model.net = CountingNet(model.net)
    tokens = model.sample(cond, batch["token_mask"], DiffusionSamplerConfig(steps=5))
    assert model.net.batch_sizes == [5 * 3] * 5  # 5 passes x 3 clips, once per step
    assert not (tokens == model.mask_id).any()
    padded = ~batch["token_mask"][:, None].expand_as(tokens)
    assert (tokens[padded] == 0).all()


def test_the_loss_is_one_forward_and_one_cross_entropy_for_any_batch_and_levels(monkeypatch):
    import hicodit.diffusion as module

    calls = []
    real_ce = module.F.cross_entropy
    monkeypatch.setattr(module.F, "cross_entropy", lambda *a, **k: calls.append(a[0].shape) or real_ce(*a, **k))
    for clips in (1, 4):
        batch = tiny_batch(clips=clips)
        model = diffusion().train()
        model.net = CountingNet(model.net)
        loss, logs = model(batch)
        assert model.net.batch_sizes == [clips]
        assert torch.isfinite(loss) and {"dse", "id_l1", "ce_low", "ce_high", "acc_low", "acc_high"} <= logs.keys()
    length = batch["tokens"].shape[-1]
    assert calls[-1] == (4 * length * 12, 64) and len(calls) == 2  # every item and level in one call


def test_low_level_weight_scales_levels_one_and_two_in_the_loss_but_not_the_logged_dse(monkeypatch):
    """loss = w * DSE(levels 1-2) + DSE(levels 3-12) + the identity term; logs['dse'] stays the plain sum."""
    import hicodit.diffusion as module

    per_level = []
    real = module.score_entropy_loss
    monkeypatch.setattr(module, "score_entropy_loss", lambda *a: per_level.append(real(*a)[1]) or real(*a))
    batch = tiny_batch(clips=3)
    model = diffusion(low_level_weight=4.0).train()
    torch.manual_seed(1)
    loss, logs = model(batch)
    frames = batch["token_mask"].sum()
    level_dse = per_level[-1].detach() / frames  # (Q,)
    assert torch.allclose(logs["dse"], level_dse.sum())
    n_low = model.net.cfg.num_low_levels
    expected = 4.0 * level_dse[:n_low].sum() + level_dse[n_low:].sum() + model.cfg.id_loss_weight * logs["id_l1"]
    assert torch.allclose(loss.detach(), expected)
    with pytest.raises(ValueError, match="low_level_weight"):
        DiffusionConfig(low_level_weight=0.0)


def test_variable_length_clips_sample_in_one_batch_as_they_do_alone():
    batch = tiny_batch(clips=3, frames=(6, 16))
    model = diffusion()
    cfg = DiffusionSamplerConfig(steps=8, greedy=True)
    together = model.sample(model.conditions(batch)[0], batch["token_mask"], cfg)
    for i in range(3):
        n = int(batch["frame_mask"][i].sum())
        alone = {"lip": batch["lip"][i : i + 1, :n], "emotion": batch["emotion"][i : i + 1, :n],
                 "frame_mask": batch["frame_mask"][i : i + 1, :n], "face": batch["face"][i : i + 1],
                 "ge2e": batch["ge2e"][i : i + 1]}
        mask = batch["token_mask"][i : i + 1, : 2 * n]
        single = model.sample(model.conditions(alone)[0], mask, cfg)
        assert torch.equal(single[0], together[i, :, : 2 * n])


def test_greedy_sampler_follows_the_schedule_and_is_deterministic():
    batch = tiny_batch(clips=2)
    model = diffusion()
    cond = model.conditions(batch)[0]
    seen = []
    model.net = CountingNet(model.net)
    original = model.guided_logits

    def spy(x, *args, **kwargs):
        seen.append((x == model.mask_id).sum((1, 2)))
        return original(x, *args, **kwargs)

    model.guided_logits = spy
    cfg = DiffusionSamplerConfig(steps=4, greedy=True)
    a = model.sample(cond, batch["token_mask"], cfg)
    n_real = batch["token_mask"].sum(1) * 12
    expected = [torch.floor(n_real * model.schedule.mask_prob(torch.tensor(1 - k / 4.0, dtype=torch.float64))
                            / model.schedule.mask_prob(torch.tensor(1.0, dtype=torch.float64))).long()
                for k in range(1, 4)]
    assert torch.equal(seen[0], n_real)
    for got, want in zip(seen[1:], expected):
        assert torch.equal(got, want)
    assert torch.equal(a, model.sample(cond, batch["token_mask"], cfg))


def test_confidence_order_reveals_the_schedules_count_most_confident_first():
    masked = torch.tensor([[[True, True, True, False], [True, True, True, True]]])  # (B=1, Q=2, L=4)
    conf = torch.tensor([[[0.1, 0.9, 0.5, 5.0], [0.3, 0.2, 0.8, 0.1]]])
    # 3 of the 7 masked ones are revealed: the best three, not the already revealed 5.0
    unmask = MaskedDiffusion.most_confident(conf, masked, torch.tensor([3]))
    assert unmask.tolist() == [[[False, True, True, False], [False, False, True, False]]]


def test_confidence_order_follows_the_schedule_and_is_deterministic_given_the_generator():
    batch = tiny_batch(clips=2)
    model = diffusion()
    cond = model.conditions(batch)[0]
    seen = []
    original = model.guided_logits

    def spy(x, *args, **kwargs):
        seen.append((x == model.mask_id).sum((1, 2)))  # (B,)
        return original(x, *args, **kwargs)

    model.guided_logits = spy
    cfg = DiffusionSamplerConfig(steps=4, unmask_order="confidence")
    a = model.sample(cond, batch["token_mask"], cfg, torch.Generator().manual_seed(0))
    n_real = batch["token_mask"].sum(1) * 12
    start = model.schedule.mask_prob(torch.tensor(1.0, dtype=torch.float64))
    for k, got in enumerate(seen):
        keep = model.schedule.mask_prob(torch.tensor(1 - k / 4.0, dtype=torch.float64)) / start
        assert torch.equal(got, torch.floor(n_real * keep).long())
    assert not (a == model.mask_id).any()
    assert torch.equal(a, model.sample(cond, batch["token_mask"], cfg, torch.Generator().manual_seed(0)))
    assert not torch.equal(a, model.sample(cond, batch["token_mask"], cfg, torch.Generator().manual_seed(1)))


def test_condition_dropout_rates():
    model = diffusion(drop_each=0.1, drop_all=0.1)
    torch.manual_seed(0)
    drops = model.sample_drops(200_000, "cpu").float()
    assert torch.allclose(drops.mean(0), torch.tensor(0.1 + 0.9 * 0.1), atol=4e-3)  # each: alone or with all
    assert abs(drops.all(1).float().mean().item() - (0.1 + 0.9 * 0.001)) < 4e-3


def one_time_per_stratum(t: torch.Tensor, t_min: float) -> bool:
    """True when t = t_min + (1 - t_min) u with exactly one u in each stratum [k/B, (k+1)/B) of [0, 1)."""
    u = (t.double() - t_min) / (1 - t_min)
    strata = torch.floor(u * len(t)).long().sort().values
    return bool((u >= 0).all() and (u < 1).all() and torch.equal(strata, torch.arange(len(t))))


def test_training_times_are_stratified_and_the_curriculum_adds_levels():
    # A large t_min, so that a missing or wrong map t = t_min + (1 - t_min) u moves times out of their strata.
    t_min, b = 0.3, 8
    torch.manual_seed(0)
    stratified = diffusion(t_min=t_min).train()
    draws = [stratified.sample_times(b, "cpu") for _ in range(20)]
    for t in draws:
        u = (t - t_min) / (1 - t_min)
        assert one_time_per_stratum(t, t_min), f"u = (t - t_min)/(1 - t_min) = {sorted(u.tolist())}: not one per 1/{b}"
    assert len({round(float(t.min()), 6) for t in draws}) == len(draws)  # a fresh random offset per batch
    # The check has teeth: plain uniform times (one stratum empty, another doubled) almost never pass it
    # (8!/8^8 = 0.24% per draw); these 20 seeded draws all fail.
    uniform = diffusion(t_min=t_min, low_discrepancy_t=False).train()
    assert not any(one_time_per_stratum(uniform.sample_times(b, "cpu"), t_min) for _ in range(20))
    assert not one_time_per_stratum(torch.arange(b) / b, t_min)  # strata of [0, 1) itself, not mapped

    model = diffusion(curriculum_every=3, curriculum_start_levels=2).train()
    assert model.active_levels("cpu").sum() == 2
    batch = tiny_batch(clips=2)
    for _ in range(3):
        model(batch)
    assert model.active_levels("cpu").sum() == 3
    assert diffusion().active_levels("cpu").all()
