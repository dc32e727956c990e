"""HiCoDiT's open questions as switches: the coarse-to-fine level schedule (sampling and training
masks), the two guidance conventions, late-only guidance, guidance on the unmasking rates, levels 3-12's
own guidance share and temperature, tokens given in advance, and the acoustic emotion condition in training."""

import pytest
import torch

from hicodit.diffusion import DiffusionConfig, DiffusionSamplerConfig, MaskedDiffusion
from hicodit.guidance import combine_guidance, guidance_passes
from tests.hicodit.helpers import tiny_batch, tiny_net

UNGUIDED = dict(w_all=0.0, w_id=0.0, w_emo=0.0, w_lip=0.0)


def diffusion(**overrides) -> MaskedDiffusion:
    return MaskedDiffusion(tiny_net(0), DiffusionConfig(**overrides)).eval()


def recorded_inputs(model: MaskedDiffusion) -> list[torch.Tensor]:
    """The token grids the network is called with, one per forward."""
    seen = []
    model.net.register_forward_pre_hook(lambda module, args: seen.append(args[0].clone()))
    return seen


@pytest.mark.parametrize("greedy", [False, True])
def test_coarse_to_fine_reveals_no_high_token_before_every_low_token_is_final(greedy):
    batch = tiny_batch(clips=3, frames=(10, 18))
    model = diffusion()
    seen = recorded_inputs(model)
    cfg = DiffusionSamplerConfig(steps=8, greedy=greedy, level_schedule="coarse_to_fine", low_step_fraction=0.25,
                                 **UNGUIDED)
    x = model.sample(model.conditions(batch)[0], batch["token_mask"], cfg, torch.Generator().manual_seed(0))
    real = batch["token_mask"][:, None, :]
    n_low, mask = model.net.cfg.num_low_levels, model.mask_id
    assert len(seen) == 8 and cfg.phase_steps() == (2, 6)
    for tokens in seen + [x]:
        low_done = ((tokens[:, :n_low] != mask) | ~real).flatten(1).all(1)  # (B,)
        high_started = ((tokens[:, n_low:] != mask) & real).flatten(1).any(1)  # (B,)
        assert not (high_started & ~low_done).any()
    assert seen[2][:, :n_low][real.expand(-1, n_low, -1)].ne(mask).all()  # phase 2 starts from finished low levels
    assert (x[:, :, :][real.expand_as(x)] != mask).all()  # and everything ends revealed


def test_coarse_to_fine_training_masks_have_the_documented_statistics():
    torch.manual_seed(0)
    model = diffusion(level_schedule="coarse_to_fine", clean_low_prob=0.3)
    b, q, length, t = 4000, 12, 6, 0.7
    masked = model.training_masks(torch.full((b,), t), b, q, length, "cpu")  # (B, Q, L)
    low_clean = ~masked[:, :2].flatten(1).any(1)  # under joint masks this happens with probability 0.3^12
    assert abs(low_clean.float().mean().item() - 0.3) < 0.03
    assert abs(masked[:, 2:].float().mean().item() - 0.7 * (1 - 1e-3)) < 0.01  # high levels: as before
    assert abs(masked[~low_clean, :2].float().mean().item() - 0.7 * (1 - 1e-3)) < 0.02
    joint = diffusion().training_masks(torch.full((b,), t), b, q, length, "cpu")
    assert (~joint[:, :2].flatten(1).any(1)).float().mean().item() < 0.01


def test_both_conventions_reduce_to_the_conditional_pass_at_their_neutral_weights():
    logits = torch.randn(5, 2, 3, 4, 7)
    passes = ["all", "none", "id", "emo", "lip"]
    for cfg in (DiffusionSamplerConfig(**UNGUIDED),
                DiffusionSamplerConfig(guidance_convention="cfg", **{**UNGUIDED, "w_all": 1.0})):
        torch.testing.assert_close(combine_guidance(logits, passes, cfg), logits[0], atol=1e-5, rtol=0)
        assert guidance_passes(DiffusionSamplerConfig(guidance_convention=cfg.guidance_convention,
                                                      **{**UNGUIDED, "w_all": cfg.w_all})) == ["all"]
    # the same numbers mean one unit more guidance under "ho": ho(w) == cfg(w + 1)
    ho = DiffusionSamplerConfig(w_all=2.5, w_id=1.25, w_emo=1.5, w_lip=2.0)
    cfg = DiffusionSamplerConfig(w_all=3.5, w_id=1.25, w_emo=1.5, w_lip=2.0, guidance_convention="cfg")
    torch.testing.assert_close(combine_guidance(logits, passes, ho), combine_guidance(logits, passes, cfg))


def test_high_level_guidance_scales_the_guidance_at_levels_3_to_12_only():
    logits = torch.randn(5, 2, 3, 4, 7)  # (passes, B, L, Q, V)
    passes = ["all", "none", "id", "emo", "lip"]
    cfg = DiffusionSamplerConfig(w_all=2.5, w_id=1.25, w_emo=1.5, w_lip=4.0)
    full = combine_guidance(logits, passes, cfg)
    scaled = combine_guidance(logits, passes, cfg, torch.tensor([1.0, 1.0, 0.0, 0.5]))
    torch.testing.assert_close(scaled[:, :, :2], full[:, :, :2])  # levels 1-2: the whole rule
    torch.testing.assert_close(scaled[:, :, 2], logits[0, :, :, 2])  # scale 0: the conditional pass
    # scale 0.5 is the rule with every weight halved
    half = DiffusionSamplerConfig(w_all=1.25, w_id=0.625, w_emo=0.75, w_lip=2.0)
    torch.testing.assert_close(scaled[:, :, 3], combine_guidance(logits, passes, half)[:, :, 3])


def test_the_sampler_passes_each_level_its_guidance_share_and_temperature(monkeypatch):
    """One step from all-[MASK] reveals every token: at a vanishing temperature levels 3-12 are the argmax of
    their guided logits (the conditional pass's, with no guidance share), levels 1-2 stay sampled."""
    import hicodit.diffusion as module

    batch = tiny_batch(clips=2, frames=(12, 12))
    model = diffusion()
    cond = model.conditions(batch)[0]
    shares = []
    real_combine = module.combine_guidance
    monkeypatch.setattr(module, "combine_guidance", lambda *a: shares.append(a[3]) or real_combine(*a))
    cfg = DiffusionSamplerConfig(steps=1, high_level_guidance=0.0, high_level_temperature=1e-6)
    x = model.sample(cond, batch["token_mask"], cfg, torch.Generator().manual_seed(0))
    n_low = model.net.cfg.num_low_levels
    assert shares[0].tolist() == [1.0] * n_low + [0.0] * (model.net.cfg.num_levels - n_low)
    all_masked = torch.full_like(x, model.mask_id)
    conditional = model.net(all_masked, torch.ones(2), cond, None).transpose(1, 2)  # (B, Q, L, V)
    argmax = conditional.argmax(-1)
    assert torch.equal(x[:, n_low:], argmax[:, n_low:])
    assert (x[:, :n_low] != argmax[:, :n_low]).float().mean() > 0.5  # temperature 1 on random logits


@pytest.mark.parametrize("schedule", ["joint", "coarse_to_fine"])
def test_known_tokens_are_kept_and_only_the_masked_ones_drawn(schedule):
    batch = tiny_batch(clips=3, frames=(10, 18))
    model = diffusion()
    real = batch["token_mask"][:, None, :].expand_as(batch["tokens"])
    levels = torch.arange(batch["tokens"].shape[1])[None, :, None]
    known = torch.where(levels < 2, batch["tokens"], model.mask_id)
    seen = recorded_inputs(model)
    cfg = DiffusionSamplerConfig(steps=6, level_schedule=schedule)
    x = model.sample(model.conditions(batch)[0], batch["token_mask"], cfg, torch.Generator().manual_seed(0),
                     known=known)
    assert torch.equal(x[:, :2][real[:, :2]], batch["tokens"][:, :2][real[:, :2]])
    assert all(torch.equal(s[:3, :2][real[:, :2]], batch["tokens"][:, :2][real[:, :2]]) for s in seen)  # pass "all"
    assert (x[real] != model.mask_id).all() and (x[~real] == 0).all()
    assert (x[:, 2:][real[:, 2:]] != batch["tokens"][:, 2:][real[:, 2:]]).float().mean() > 0.5  # drawn, not copied


def test_late_guidance_runs_no_guidance_pass_before_its_start():
    batch = tiny_batch(clips=2, frames=(10, 10))
    model = diffusion()
    seen = recorded_inputs(model)
    cfg = DiffusionSamplerConfig(steps=8, guidance_schedule="late", guidance_start=0.5)
    model.sample(model.conditions(batch)[0], batch["token_mask"], cfg, torch.Generator().manual_seed(0))
    times = [1 - k / 8 for k in range(8)]
    passes = [len(x) // 2 for x in seen]  # the batch is 2 clips: the forward's rows / 2 = passes
    assert passes == [1 if t > 0.5 else 5 for t in times]
    # and an early-steps-only run equals the unguided sampler on those steps exactly
    unguided = DiffusionSamplerConfig(steps=8, **UNGUIDED)
    late = DiffusionSamplerConfig(steps=8, guidance_schedule="late", guidance_start=0.0)  # guided at t = 0 only
    a = model.sample(model.conditions(batch)[0], batch["token_mask"], unguided, torch.Generator().manual_seed(1))
    b = model.sample(model.conditions(batch)[0], batch["token_mask"], late, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)  # no step has t <= 0: no guidance at all


def test_guidance_on_rates_is_the_unguided_sampler_at_neutral_weights_and_changes_rates_otherwise():
    batch = tiny_batch(clips=2, frames=(10, 14))
    model = diffusion()
    cond = model.conditions(batch)[0]
    plain = DiffusionSamplerConfig(steps=6, guidance_on_rates=False, **UNGUIDED)
    rates = DiffusionSamplerConfig(steps=6, guidance_on_rates=True, **UNGUIDED)
    a = model.sample(cond, batch["token_mask"], plain, torch.Generator().manual_seed(2))
    b = model.sample(cond, batch["token_mask"], rates, torch.Generator().manual_seed(2))
    assert torch.equal(a, b)
    guided = DiffusionSamplerConfig(steps=6, guidance_on_rates=True)
    with torch.no_grad():
        for p in model.net.parameters():  # a network whose passes disagree
            p.add_(0.05 * torch.randn_like(p))
    x = torch.full_like(batch["tokens"], model.mask_id)
    from hicodit.guidance import PASS_DROPS
    from hicodit.guidance import guidance_passes as passes_of

    passes = passes_of(guided)
    n = len(passes)
    drop = torch.tensor([PASS_DROPS[p] for p in passes]).repeat_interleave(2, 0)
    _, log_rate = model.guided_logits(x, torch.full((2,), 0.5), cond.repeat(n), None, drop, passes, guided)
    assert log_rate is not None and log_rate.abs().max() > 1e-3  # the passes disagree: the rates move


def test_acoustic_emotion_at_probability_one_never_reads_the_visual_labels():
    batch = tiny_batch(clips=3, frames=(10, 12))
    k = batch["emotion"].shape[-1]
    acoustic = torch.nn.functional.one_hot(torch.arange(3) % k, k).float()[:, None].expand_as(batch["emotion"])
    batch = {**batch, "acoustic_emotion": acoustic.contiguous()}
    other = {**batch, "emotion": batch["emotion"].roll(1, dims=-1)}  # other visual labels, same everything else

    def loss(model, b):
        torch.manual_seed(0)  # the same t, masks and condition drops
        return model(b)[0]

    net = tiny_net(0)
    with torch.no_grad():  # give the expression path some weight, so visual labels would show
        for module in (net.emotion_mlp, net.emotion_seq_mlp):
            for p in module.parameters():
                p.normal_(0, 0.5)
        net.final.adaln.linear.weight.normal_(0, 0.5)
    acoustic_only = MaskedDiffusion(net, DiffusionConfig(acoustic_emotion_prob=1.0, drop_each=0.0,
                                                         drop_all=0.0)).train()
    assert torch.equal(loss(acoustic_only, batch), loss(acoustic_only, other))
    visual = MaskedDiffusion(net, DiffusionConfig(acoustic_emotion_prob=0.0, drop_each=0.0, drop_all=0.0)).train()
    assert not torch.equal(loss(visual, batch), loss(visual, other))  # the check can fail: read at p = 0


def test_acoustic_identity_at_probability_one_conditions_on_the_speech_not_the_face():
    """The face still trains c_id through the L1 alignment loss; the denoiser's identity is the GE2E."""
    batch = tiny_batch(clips=3, frames=(10, 12))
    other = {**batch, "face": batch["face"].roll(1, dims=0)}  # other clips' faces, same everything else

    def dse(model, b):
        torch.manual_seed(0)  # the same t, masks and condition drops
        return model(b)[1]["dse"]

    net = tiny_net(0)
    acoustic_only = MaskedDiffusion(net, DiffusionConfig(acoustic_identity_prob=1.0, drop_each=0.0,
                                                         drop_all=0.0)).train()
    assert torch.equal(dse(acoustic_only, batch), dse(acoustic_only, other))
    visual = MaskedDiffusion(net, DiffusionConfig(acoustic_identity_prob=0.0, drop_each=0.0, drop_all=0.0)).train()
    assert not torch.equal(dse(visual, batch), dse(visual, other))  # the check can fail: the face is read at p = 0
