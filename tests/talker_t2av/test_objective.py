"""The vectorised training forward: equal to a straightforward per-sample computation, and its parts."""

import pytest
import torch
import torch.nn.functional as F

from talker_t2av.cfm import CFMNoise, TalkerObjective
from talker_t2av.data import TalkerCollator
from talker_t2av.patching import context_windows, stop_labels
from tests.talker_t2av.helpers import item, tiny_config, tiny_model

P = 4


def reference_loss(objective: TalkerObjective, items: list[dict], noise: dict):
    """The released algorithm, sample by sample and patch by patch (Python loops on purpose)."""
    m, cfg = objective.model, objective.loss_cfg
    rows = {"speech": [], "motion": []}
    stop_logits, stop_targets, negatives = [], [], []
    for it in items:
        speech, motion = it["speech"], it["motion"]
        av = motion is not None
        n_sp = -(-len(speech) // P)
        n_mo = len(motion) // P if av else 0
        n_slots = max(n_sp, n_mo)
        seq = [m.task_tokens(torch.tensor([int(av)])), m.text_embeddings(it["text_ids"][None])[0]]
        for j in range(n_slots):
            frames = torch.zeros(P, 32)
            mask = torch.zeros(P, dtype=torch.bool)
            for f in range(P):
                if j * P + f < len(speech):
                    frames[f], mask[f] = speech[j * P + f], True
            token = m.speech_tokens(frames[None], mask[None])
            if av:
                mframes = torch.zeros(P, 40)
                mmask = torch.zeros(P, dtype=torch.bool)
                for f in range(P):
                    if j * P + f < len(motion):
                        mframes[f], mmask[f] = motion[j * P + f], True
                token = token + m.motion_tokens(mframes[None], mmask[None])
            else:
                token = token + m.motion_pad()
            seq.append(token)
        hidden, _ = m.backbone(torch.cat(seq)[None], None, None)
        hidden = hidden[0]
        s0 = 1 + len(it["text_ids"])  # first patch position
        for name, x, n, gc in (("speech", speech, n_sp, it["speaker"]), ("motion", motion, n_mo, None)):
            if x is None or n < 2:
                continue
            padded = torch.zeros(n * P, x.shape[1])
            padded[: min(len(x), n * P)] = x[: n * P]
            for j in range(n):
                ctx = torch.zeros(P, x.shape[1]) if j == 0 else padded[(j - 1) * P : j * P]
                rows[name].append((padded[j * P : (j + 1) * P], hidden[s0 - 1 + j], ctx,
                                   gc if gc is not None else motion[0]))
        logits = m.stop_logits(hidden[s0 : s0 + n_slots])
        last = n_slots - 1
        ignore_from = max(0, last - objective.n_ignore)
        for j in range(n_slots):
            if not it["ends"]:
                target = 0.0
            elif j < ignore_from:
                target = 0.0
            elif j == last:
                target = 1.0
            else:
                continue
            stop_logits.append(logits[j])
            stop_targets.append(target)
        if it["ends"]:
            negatives.append(ignore_from)
    losses = {}
    for name, head in (("speech", m.speech_cfm), ("motion", m.motion_cfm)):
        x1, mu, ctx, gc = (torch.stack([r[i] for r in rows[name]]) for i in range(4))
        losses[name] = head.loss(x1, mu, ctx, gc, noise[name])
    pos_weight = torch.tensor(sum(negatives) / len(negatives) if negatives else 1.0) * cfg.stop_pos_weight_scale
    losses["stop"] = F.binary_cross_entropy_with_logits(torch.stack(stop_logits), torch.tensor(stop_targets),
                                                        pos_weight=pos_weight)
    losses["total"] = losses["speech"] + cfg.motion_weight * losses["motion"] + cfg.stop_weight * losses["stop"]
    return losses


def fixed_noise(rows: int, channels: int, k: int = 2, seed: int = 0) -> CFMNoise:
    g = torch.Generator().manual_seed(seed)
    n = rows * k
    return CFMNoise(t=torch.rand(n, generator=g), z=torch.randn(n, P, channels, generator=g),
                    keep_mu=torch.rand(n, generator=g) > 0.3, keep_context=torch.rand(n, generator=g) > 0.3)


@pytest.fixture(scope="module")
def setup():
    # a larger init than Qwen's 0.02 makes attention sharp, so layout mistakes show in the loss
    backbone = {**tiny_config().backbone, "initializer_range": 0.3}
    objective = TalkerObjective(tiny_model(seed=1, backbone=backbone))
    items = [item("hello there", 23, av=True, seed=1),  # partial last patch
             item("hi", 17, av=False, seed=2),  # TTS-only
             item("a longer sentence here", 40, av=True, ends=False, seed=3),  # cut from a longer clip
             item("x", 9, av=False, seed=4)]
    batch = TalkerCollator(P)(items)
    noise = {"speech": fixed_noise(len(batch["speech_rows"]), 32, seed=5),
             "motion": fixed_noise(len(batch["motion_rows"]), 40, seed=6)}
    return objective, items, batch, noise


def test_batched_loss_equals_per_sample_computation(setup):
    objective, items, batch, noise = setup
    loss, logs = objective(batch, noise)
    ref = reference_loss(objective, items, noise)
    for name in ("speech", "motion", "stop"):
        torch.testing.assert_close(logs[name], ref[name].detach(), atol=2e-6, rtol=0)
    torch.testing.assert_close(loss, ref["total"].detach(), atol=1e-5, rtol=0)
    assert len(batch["speech_rows"]) == 6 + 5 + 10 + 3 and len(batch["motion_rows"]) == 5 + 10


def test_batch_order_does_not_change_the_loss(setup):
    objective, items, _, _ = setup
    order = [2, 0, 3, 1]
    shuffled = TalkerCollator(P)([items[i] for i in order])
    noise = {"speech": fixed_noise(len(shuffled["speech_rows"]), 32),
             "motion": fixed_noise(len(shuffled["motion_rows"]), 40)}
    ref = reference_loss(objective, [items[i] for i in order], noise)
    _, logs = objective(shuffled, noise)
    for name in ("speech", "motion", "stop"):
        torch.testing.assert_close(logs[name], ref[name].detach(), atol=2e-6, rtol=0)


def test_tts_only_batch_reaches_every_parameter():
    objective = TalkerObjective(tiny_model())
    batch = TalkerCollator(P)([item("one", 12, av=False), item("two words", 21, av=False, seed=1)])
    loss, logs = objective(batch)
    loss.backward()
    assert torch.isfinite(loss) and logs["motion"].item() == 0.0
    no_grad = [n for n, p in objective.named_parameters() if p.requires_grad and p.grad is None]
    assert not no_grad  # DDP needs a gradient (zero here) for every parameter


def test_stop_labels_hand_values():
    labels, mask, pos_weight = stop_labels(torch.tensor([6, 4]), torch.tensor([True, False]), width=7, n_ignore=2)
    assert labels.tolist() == [[0, 0, 0, 0, 0, 1, 0], [0, 0, 0, 0, 0, 0, 0]]
    assert mask.tolist() == [[1, 1, 1, 0, 0, 1, 0], [1, 1, 1, 1, 0, 0, 0]]
    assert pos_weight.item() == 3.0  # negatives of the one ending clip


def test_context_windows_hand_values():
    x = torch.arange(1, 9, dtype=torch.float32).view(1, 8, 1)  # two patches of 4 frames
    win = context_windows(x, patch_size=4, context_patches=1, num_patches=3)[0, :, :, 0]
    assert win.tolist() == [[0, 0, 0, 0], [1, 2, 3, 4], [5, 6, 7, 8]]
