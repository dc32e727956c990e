"""HiCoDiT network: paper sizes, the hierarchy, dual-scale AdaLN, conditions, padding, lip front-end."""

import math

import pytest
import torch
from hydra.utils import instantiate
from torch.nn import functional as F

from engine.errors import ConfigError
from hicodit.conditioning import GREY_MEAN, GREY_STD, LinearLipFrontend, LipFrontend, smooth_emotions
from hicodit.model import HiCoDiT, HiCoDiTConfig
from tests.conftest import compose
from tests.hicodit.helpers import tiny_batch, tiny_net


def logits_for(net, batch, tokens=None, drop=None, t=0.5):
    cond = net.encode_conditions(batch["lip"], batch["ge2e"], batch["emotion"], batch["frame_mask"])
    tokens = batch["tokens"] if tokens is None else tokens
    with torch.no_grad():
        return net(tokens, torch.full((tokens.shape[0],), t), cond, batch["token_mask"], drop)  # (B, L, Q, V)


def test_paper_config_has_the_papers_sizes_and_one_projection_for_all_heads():
    cfg = instantiate(compose("model=hicodit_paper").model)
    assert cfg == HiCoDiTConfig.paper()
    with torch.device("meta"):
        net = HiCoDiT(cfg)
    assert (len(net.low_blocks), len(net.high_blocks), cfg.dim, cfg.heads) == (8, 8, 768, 12)
    assert net.heads.weight.shape == (12 * 1024, 768)  # 12 heads, one batched projection
    assert net.token_embed.weight.shape == (12 * 1025, 768)  # per-level tables with [MASK], one offset table
    assert net.lip.mlp[0].in_features == 1024 and net.identity.mlp[0].in_features == 512
    assert net.emotion.table.weight.shape == (8, 768)  # 7 classes + the dropped-emotion row
    assert all(b.temporal is not None for b in net.high_blocks) and all(b.temporal is None for b in net.low_blocks)
    assert 150e6 < net.num_parameters() < 250e6


@pytest.mark.parametrize("name, field, value", [("hicodit_no_hierarchy", "hierarchy", False),
                                                ("hicodit_no_dual_adaln", "dual_scale_adaln", False),
                                                ("hicodit_tiny", "dim", 64)])
def test_ablation_and_tiny_configs_compose(name, field, value):
    cfg = instantiate(compose(f"model={name}").model)
    assert getattr(cfg, field) == value
    assert cfg.num_levels == 12 and cfg.codebook_size in (64, 1024)


def test_low_level_heads_see_neither_high_level_tokens_nor_emotion():
    batch = tiny_batch()
    net = tiny_net()
    base = logits_for(net, batch)
    tokens = batch["tokens"].clone()
    tokens[:, 2:] = (tokens[:, 2:] + 7) % net.cfg.codebook_size  # other level 3-12 tokens
    other_tokens = logits_for(net, batch, tokens)
    assert torch.allclose(other_tokens[:, :, :2], base[:, :, :2], atol=1e-5)
    assert not torch.allclose(other_tokens[:, :, 2:], base[:, :, 2:], atol=1e-3)
    other_emotion = logits_for(net, {**batch, "emotion": batch["emotion"].roll(1, dims=-1)})
    assert torch.allclose(other_emotion[:, :, :2], base[:, :, :2], atol=1e-5)
    assert not torch.allclose(other_emotion[:, :, 2:], base[:, :, 2:], atol=1e-3)


def test_emotion_in_low_lets_levels_one_and_two_follow_the_emotion_but_still_not_levels_three_to_twelve():
    batch = tiny_batch()
    net = tiny_net(emotion_in_low=True)
    other = {**batch, "emotion": batch["emotion"].roll(1, dims=-1)}
    base = logits_for(net, batch)
    assert not torch.allclose(logits_for(net, other)[:, :, :2], base[:, :, :2], atol=1e-3)
    tokens = batch["tokens"].clone()
    tokens[:, 2:] = (tokens[:, 2:] + 7) % net.cfg.codebook_size
    assert torch.allclose(logits_for(net, batch, tokens)[:, :, :2], base[:, :, :2], atol=1e-5)
    drop_emotion = torch.zeros(batch["lip"].shape[0], 3, dtype=torch.bool)
    drop_emotion[:, 2] = True  # a dropped emotion is dropped from the low blocks too
    assert torch.allclose(logits_for(net, other, drop=drop_emotion), logits_for(net, batch, drop=drop_emotion),
                          atol=1e-5)
    assert tiny_net().emotion_low_mlp is None  # off by default: the paper's model
    with pytest.raises(ValueError, match="HiCoDiTConfig.emotion_in_low='yes': must be true or false"):
        HiCoDiTConfig.tiny(emotion_in_low="yes")


def test_without_hierarchy_every_level_sees_every_level():
    batch = tiny_batch()
    net = tiny_net(hierarchy=False, low_heads_from="output")
    tokens = batch["tokens"].clone()
    tokens[:, 2:] = (tokens[:, 2:] + 7) % net.cfg.codebook_size
    assert not torch.allclose(logits_for(net, batch, tokens)[:, :, :2], logits_for(net, batch)[:, :, :2], atol=1e-3)


def test_dual_scale_adaln_follows_the_emotion_sequence_plain_adaln_only_its_mean():
    # Swapping two 0.5 s emotion windows keeps the pooled emotion: only the temporal path notices.
    batch = tiny_batch(clips=1, frames=(25, 25))  # 50 token frames = 2 emotion windows
    emo = torch.zeros_like(batch["emotion"])
    emo[:, :12, 1], emo[:, 12:, 4] = 1, 1  # 24 tokens class 1, then 26 tokens class 4
    swapped = torch.zeros_like(emo)
    swapped[:, :13, 4], swapped[:, 13:, 1] = 1, 1
    for dual in (True, False):
        net = tiny_net(dual_scale_adaln=dual)
        a = logits_for(net, {**batch, "emotion": emo})
        b = logits_for(net, {**batch, "emotion": swapped})
        if dual:
            assert not torch.allclose(a[:, :, 2:], b[:, :, 2:], atol=1e-3)
        else:  # the two windows' mean is the same in both (hard labels, one each)
            assert torch.allclose(a, b, atol=1e-5)


def test_dropped_conditions_are_ignored_and_kept_ones_are_used():
    batch = tiny_batch()
    net = tiny_net()
    other = {**batch, "lip": torch.randn_like(batch["lip"]), "ge2e": torch.randn_like(batch["ge2e"]),
             "emotion": batch["emotion"].roll(2, dims=-1)}
    drop_all = torch.ones(batch["lip"].shape[0], 3, dtype=torch.bool)
    assert torch.allclose(logits_for(net, batch, drop=drop_all), logits_for(net, other, drop=drop_all), atol=1e-5)
    assert not torch.allclose(logits_for(net, batch), logits_for(net, other), atol=1e-3)
    only_lip_kept = drop_all.clone()
    only_lip_kept[:, 0] = False
    a = logits_for(net, batch, drop=only_lip_kept)
    b = logits_for(net, {**other, "lip": batch["lip"]}, drop=only_lip_kept)
    assert torch.allclose(a, b, atol=1e-5)


def test_a_clip_padded_in_a_batch_gives_the_logits_it_gives_alone():
    batch = tiny_batch(clips=3, frames=(8, 20))
    net = tiny_net()
    together = logits_for(net, batch)
    for i in range(3):
        n = int(batch["frame_mask"][i].sum())
        alone = {k: v[i : i + 1, : 2 * n] if k in ("tokens", "token_mask") else v[i : i + 1] for k, v in batch.items()
                 if k != "ids"}
        alone["tokens"] = batch["tokens"][i : i + 1, :, : 2 * n]
        alone["lip"], alone["emotion"] = batch["lip"][i : i + 1, :n], batch["emotion"][i : i + 1, :n]
        alone["frame_mask"] = batch["frame_mask"][i : i + 1, :n]
        assert torch.allclose(logits_for(net, alone)[0], together[i, : 2 * n], atol=1e-4)


def test_emotion_smoothing_averages_half_second_windows_of_real_frames():
    probs = torch.zeros(1, 30, 7)
    probs[0, :10, 2] = 1  # 20 tokens of class 2
    probs[0, 10:, 5] = 1  # then class 5
    mask = torch.ones(1, 30, dtype=torch.bool)
    mask[0, 28:] = False  # 2 padded frames
    smoothed, steps = smooth_emotions(probs, mask)  # 60 tokens -> 3 windows of 25
    assert smoothed.shape == (1, 3, 7) and steps.tolist() == [[True, True, True]]
    assert torch.allclose(smoothed[0, 0, [2, 5]], torch.tensor([20 / 25, 5 / 25]))
    assert torch.allclose(smoothed[0, 1, 5], torch.tensor(1.0))
    assert torch.allclose(smoothed[0, 2, 5], torch.tensor(1.0))  # 6 real tokens of 10 in the last window


def test_lip_frontend_takes_mouth_crops_and_passes_gradients_end_to_end():
    frontend = LipFrontend(32, channels=(8, 16), blocks_per_stage=1)
    crops = torch.randint(0, 255, (2, 5, 88, 88), dtype=torch.uint8)
    assert frontend(crops).shape == (2, 5, 32)
    net = HiCoDiT(HiCoDiTConfig.tiny(lip_input="frontend"))
    batch = tiny_batch(clips=2, frames=(5, 5))
    cond = net.encode_conditions(crops, batch["ge2e"], batch["emotion"], batch["frame_mask"])
    torch.nn.init.normal_(net.heads.weight)  # zero-initialised heads pass no gradient on the first step
    logits = net(batch["tokens"], torch.rand(2), cond, batch["token_mask"])
    logits.square().mean().backward()
    assert net.lip_frontend.stem.weight.grad.abs().sum() > 0


def mouth_crops(gen: torch.Generator, clips: int, frames: int, side: int = 24):
    """Grey mouth crops (clips, frames, side, side) uint8 whose dark mouth opens to one of three heights
    per frame, on noisy skin of a random shade, moving up and down a little; the label is the height."""
    heights = torch.tensor([2.0, 6.0, 11.0])
    labels = torch.randint(0, 3, (clips, frames), generator=gen)
    yy, xx = torch.meshgrid(*[torch.arange(side) - (side - 1) / 2] * 2, indexing="ij")
    centre = torch.randint(-2, 3, (clips, frames, 1, 1), generator=gen).float()
    mouth = (xx / 9) ** 2 + ((yy - centre) / (heights[labels][..., None, None] / 2)) ** 2 <= 1
    skin = 150 + 40 * torch.rand(clips, frames, 1, 1, generator=gen)
    crops = torch.where(mouth, 40.0, skin) + 15 * torch.randn(clips, frames, side, side, generator=gen)
    return crops.clamp(0, 255).to(torch.uint8), labels


@pytest.mark.parametrize("shuffled", [False, True])
def test_a_tiny_lip_frontend_learns_mouth_openings_from_the_crops(shuffled):
    """25 Adam steps on fresh batches teach a tiny front-end (its own projection as the 3-way readout) to
    read how far the mouth is open, on held-out crops: the loss falls below half its start (1.13 -> 0.27). The
    control pairs each label with another frame's crop: nothing to learn, so the held-out loss stays at
    chance (ln 3), which also shows the fall is not memorisation of the batches."""
    torch.manual_seed(0)
    frontend = LipFrontend(3, channels=(8, 16), blocks_per_stage=1)
    optimizer = torch.optim.Adam(frontend.parameters(), lr=1e-2)
    held_crops, held_labels = mouth_crops(torch.Generator().manual_seed(99), 8, 8)

    def held_out_loss() -> float:
        with torch.no_grad():
            return F.cross_entropy(frontend(held_crops).flatten(0, 1), held_labels.flatten()).item()

    start, gen = held_out_loss(), torch.Generator().manual_seed(1)
    for _ in range(25):
        crops, labels = mouth_crops(gen, 8, 8)  # (8, 8, 24, 24), (8, 8)
        if shuffled:
            crops = crops.flatten(0, 1)[torch.randperm(64, generator=gen)].view_as(crops)
        loss = F.cross_entropy(frontend(crops).flatten(0, 1), labels.flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    end = held_out_loss()
    assert start > 0.9 * math.log(3), start  # it starts at chance
    if shuffled:
        assert end > 0.9 * math.log(3), (start, end)
    else:
        assert end < 0.5 * start, (start, end)


def test_lip_frontend_input_pool_is_the_frontend_on_smaller_crops():
    torch.manual_seed(0)
    pooled = LipFrontend(32, channels=(8, 16), blocks_per_stage=1, pool=2)
    plain = LipFrontend(32, channels=(8, 16), blocks_per_stage=1)
    plain.load_state_dict(pooled.state_dict())  # pooling adds no weights: the layouts stay the same
    crops = torch.randint(0, 255, (2, 5, 88, 88), dtype=torch.uint8)
    halved = torch.nn.functional.avg_pool2d(crops.float(), 2)  # 44 x 44, still in [0, 255]
    assert torch.allclose(pooled(crops), plain(halved), atol=1e-5)
    assert not torch.allclose(pooled(crops), plain(crops), atol=1e-3)


def test_a_clips_lip_features_do_not_depend_on_the_padding_its_batch_adds():
    torch.manual_seed(0)
    frontend = LipFrontend(32, channels=(8, 16), blocks_per_stage=1).eval()
    torch.nn.init.normal_(frontend.stem_norm.weight)
    torch.nn.init.normal_(frontend.stem_norm.bias)
    short = torch.randint(0, 255, (1, 6, 44, 44), dtype=torch.uint8)
    long = torch.randint(0, 255, (1, 11, 44, 44), dtype=torch.uint8)
    batch = torch.cat([torch.cat([short, torch.zeros(1, 5, 44, 44, dtype=torch.uint8)], 1), long])
    frame_mask = torch.arange(11)[None] < torch.tensor([[6], [11]])
    with torch.no_grad():
        alone, together = frontend(short), frontend(batch, frame_mask)
        assert torch.allclose(together[:1, :6], alone, atol=1e-6)
        assert torch.allclose(together[1:], frontend(long), atol=1e-6)
        assert not together[0, 6:].any()  # padded frames are not computed
        # the stem is the 3-D convolution it stands for (zero padding in time), normalised per frame
        x = (long.float() / 255 - GREY_MEAN) / GREY_STD
        stem = frontend.stem(x[:, None]).transpose(1, 2).flatten(0, 1)  # (T, c0, H/2, W/2)
        y = frontend.pool(torch.nn.functional.silu(frontend.stem_norm(stem))[:, :, None])[:, :, 0]
        reference = frontend.proj(frontend.resnet(y).mean((-2, -1)))
        assert torch.allclose(frontend(long)[0], reference, atol=1e-5)


def test_linear_lip_frontend_is_one_map_of_each_frames_pooled_neighbourhood():
    torch.manual_seed(0)
    frontend = LinearLipFrontend(16, side=11, frames=5).eval()
    crops = torch.randint(0, 255, (1, 7, 88, 88), dtype=torch.uint8)
    x = (torch.nn.functional.avg_pool2d(crops.float(), 8) / 255 - GREY_MEAN) / GREY_STD  # (1, 7, 11, 11)
    padded = torch.nn.functional.pad(x[0], (0, 0, 0, 0, 2, 2))  # zeros beyond the clip's ends
    for t in (0, 3, 6):
        expected = frontend.norm(frontend.proj(padded[t : t + 5].flatten()))
        assert torch.allclose(frontend(crops)[0, t], expected, atol=1e-5)
    # a clip's features do not depend on the padding its batch adds
    short = crops[:, :4]
    batch = torch.cat([torch.cat([short, torch.full((1, 3, 88, 88), 200, dtype=torch.uint8)], 1), crops])
    frame_mask = torch.arange(7)[None] < torch.tensor([[4], [7]])
    with torch.no_grad():
        together = frontend(batch, frame_mask)
        assert torch.allclose(together[:1, :4], frontend(short), atol=1e-6)
        assert torch.allclose(together[1:], frontend(crops), atol=1e-6)


def test_hicodit_with_the_linear_lip_frontend_trains_it_end_to_end():
    net = HiCoDiT(HiCoDiTConfig.tiny(lip_input="frontend", frontend_arch="linear", frontend_pool=4))
    assert isinstance(net.lip_frontend, LinearLipFrontend) and net.lip_frontend.side == 22
    batch = tiny_batch(clips=2, frames=(5, 5))
    crops = torch.randint(0, 255, (2, 5, 88, 88), dtype=torch.uint8)
    cond = net.encode_conditions(crops, batch["ge2e"], batch["emotion"], batch["frame_mask"])
    torch.nn.init.normal_(net.heads.weight)  # zero-initialised heads pass no gradient on the first step
    net(batch["tokens"], torch.rand(2), cond, batch["token_mask"]).square().mean().backward()
    assert net.lip_frontend.proj.weight.grad.abs().sum() > 0
    with pytest.raises(ConfigError, match="frontend_arch must be one of"):
        HiCoDiTConfig.tiny(frontend_arch="vit")


def test_paper_recipe_composes_with_the_papers_hyperparameters():
    cfg = compose("experiment=hicodit_lrs3", "data.train_manifest=train.jsonl")
    task = instantiate(cfg.task)  # cheap: the codec stays a factory until validation writes audio
    assert task.model_cfg == HiCoDiTConfig.paper() and task.data_cfg.train_manifest == "train.jsonl"
    assert (cfg.trainer.lr, cfg.trainer.batch_size, cfg.trainer.max_steps) == (1e-4, 32, 200_000)
    assert cfg.trainer.ema_decay and task.diffusion_cfg.id_loss_weight == 100.0
    assert (task.diffusion_cfg.drop_each, task.diffusion_cfg.drop_all) == (0.1, 0.1)
    s = task.sampler_cfg
    assert (s.steps, s.w_all, s.w_id, s.w_emo, s.w_lip) == (64, 2.5, 1.25, 1.5, 2.0)
    assert callable(task.codec_factory) and cfg.codec.config.codebook_size == 1024


def test_lrs2_recipe_is_the_lrs3_training_with_the_lrs2_guidance():
    lrs3, lrs2 = (compose(f"experiment=hicodit_{name}", "data.train_manifest=train.jsonl") for name in ("lrs3", "lrs2"))
    assert lrs2.task.sampler.w_all == 2.25 and lrs3.task.sampler.w_all == 2.5
    lrs2.task.sampler.w_all, lrs2.experiment_name = 2.5, lrs3.experiment_name
    assert lrs2 == lrs3  # nothing else differs: same model, data, diffusion and trainer
