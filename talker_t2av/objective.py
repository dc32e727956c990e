"""Training loss of Talker-T2AV for a whole batch at once (no Python loop over samples or patches).

    loss = L_speech + motion_weight * L_motion + stop_weight * L_stop

One backbone pass over [task tag | text (left-padded) | patch tokens (right-padded)]; the patch
block starts at the same column s0 = 1 + L for every sample, so the state that predicts patch j
is column s0 - 1 + j (j = 0 is the last text token: the first patch is predicted with a zero
context) and the state after patch j is column s0 + j. Positions skip the padding, so each sample
sees exactly the sequence [tag, text, patches] it would see alone.

Batch keys (see collate.TalkerCollator): text_ids/text_mask (B, L); speech (B, Np*P, Cs);
motion (B, Np*P, Cm); speaker (B, G); speech_frames, motion_frames, n_slots (B,); is_av, ends
(B,) bool; host-built row indices patch_rows, av_patch_pos, speech_rows, motion_rows.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from talker_t2av.cfm import CFMNoise
from talker_t2av.model import TalkerT2AV, position_ids
from talker_t2av.patching import context_windows, frame_mask, stop_ignore_patches, stop_labels


@dataclass
class LossConfig:
    motion_weight: float = 10.0  # released config (the paper reports 8)
    stop_weight: float = 1.0
    stop_ignore_seconds: float = 0.3
    stop_pos_weight_scale: float = 0.3


class TalkerObjective(nn.Module):
    def __init__(self, model: TalkerT2AV, loss: LossConfig | None = None, feature_encoder=None):
        """``feature_encoder`` (talker_t2av.online.FeatureEncoder, a plain object, so neither a submodule
        nor in checkpoints): batches carry waveforms and are encoded on the fly."""
        super().__init__()
        self.model = model
        self.loss_cfg = loss or LossConfig()
        self.feature_encoder = feature_encoder
        self.n_ignore = stop_ignore_patches(self.loss_cfg.stop_ignore_seconds, model.cfg.frame_rate,
                                            model.patch_size)

    def repeated_blocks(self):
        return self.model.repeated_blocks()

    # ------------------------------------------------------------------ pieces
    def patch_block(self, batch: dict, width: int) -> torch.Tensor:
        """Patch tokens of every real slot, scattered into (B, Np, D) (zeros at padding)."""
        m, P, delay = self.model, self.model.patch_size, self.model.cfg.delay
        speech, motion = batch["speech"], batch["motion"]
        B, frames = speech.shape[:2]
        rows = batch["patch_rows"]  # (M,)
        s_mask = frame_mask(batch["speech_frames"], frames)  # (B, F)
        tokens = m.speech_tokens(speech.reshape(B * width, P, -1)[rows], s_mask.view(B * width, P)[rows])  # (M, D)

        motion_part = m.motion_pad().to(tokens.dtype).expand_as(tokens)  # (M, D)
        av_pos = batch["av_patch_pos"]  # (Mav,) positions within `rows` of the AV samples' slots
        if av_pos.numel():
            delayed = F.pad(motion, (0, 0, delay * P, 0))[:, :frames]  # (B, F, Cm): motion starts at slot `delay`
            m_mask = frame_mask(batch["motion_frames"], frames, offset=delay * P)
            av_rows = rows[av_pos]
            m_tokens = m.motion_tokens(delayed.reshape(B * width, P, -1)[av_rows], m_mask.view(B * width, P)[av_rows])
            motion_part = motion_part.index_copy(0, av_pos, m_tokens.to(tokens.dtype))
        else:  # keep the motion encoder in the graph (DDP expects a gradient for every parameter)
            tokens = tokens + 0.0 * m.motion_tokens(motion.new_zeros(1, P, motion.shape[-1])).to(tokens.dtype)
        tokens = tokens + motion_part
        return tokens.new_zeros(B * width, tokens.shape[-1]).index_copy(0, rows, tokens).view(B, width, -1)

    def head_loss(self, head, rows: torch.Tensor, mu_rows: torch.Tensor, x: torch.Tensor, global_cond: torch.Tensor,
                  mu_table: torch.Tensor, width: int, noise: CFMNoise | None) -> torch.Tensor:
        """CFM loss of one head over its rows: x (B, Np*P, C) targets, global_cond (B, G)."""
        P, p = self.model.patch_size, self.model.cfg.context_patches
        B, _, C = x.shape
        if rows.numel() == 0:  # no target in this batch: a zero that still touches every parameter
            dummy = head.loss(x.new_zeros(1, P, C), mu_table.new_zeros(1, mu_table.shape[-1]),
                              x.new_zeros(1, p * P, C), global_cond.new_zeros(1, global_cond.shape[-1]))
            return 0.0 * dummy
        targets = x.reshape(B * width, P, C)[rows]  # (R, P, C)
        contexts = context_windows(x, P, p, width).reshape(B * width, p * P, C)[rows]  # (R, p*P, C)
        mu = mu_table.reshape(B * width, -1)[mu_rows]  # (R, D)
        return head.loss(targets, mu, contexts, global_cond[rows // width], noise)

    # ------------------------------------------------------------------ forward
    def forward(self, batch: dict, noise: dict | None = None):
        """-> (loss, logs). ``noise`` = {"speech": CFMNoise, "motion": CFMNoise} fixes the randomness."""
        m, cfg = self.model, self.loss_cfg
        noise = noise or {}
        if self.feature_encoder is not None:  # on-the-fly features (talker_t2av.online)
            batch = self.feature_encoder(batch)
        width = batch["speech"].shape[1] // m.patch_size
        B, L = batch["text_ids"].shape
        # zero the frames past each clip's end (targets and contexts of the last patch)
        speech = batch["speech"] * frame_mask(batch["speech_frames"], batch["speech"].shape[1])[..., None]
        motion = batch["motion"] * frame_mask(batch["motion_frames"], batch["motion"].shape[1])[..., None]
        batch = {**batch, "speech": speech, "motion": motion}

        patches = self.patch_block(batch, width)  # (B, Np, D)
        tag = m.task_tokens(batch["is_av"].long())[:, None]  # (B, 1, D)
        embeds = torch.cat([tag, m.text_embeddings(batch["text_ids"]), patches.to(tag.dtype)], dim=1)  # (B, S, D)
        slot_mask = torch.arange(width, device=speech.device)[None] < batch["n_slots"][:, None]
        key_mask = torch.cat([torch.ones_like(batch["text_mask"][:, :1]), batch["text_mask"], slot_mask], dim=1)
        hidden, _ = m.backbone(embeds, key_mask, position_ids(key_mask))  # (B, S, D)
        mu_table = hidden[:, L : L + width]  # (B, Np, D): the state before patch j
        after = hidden[:, L + 1 : L + 1 + width]  # (B, Np, D): the state after patch j

        speech_rows = batch["speech_rows"]
        loss_speech = self.head_loss(m.speech_cfm, speech_rows, speech_rows, speech, batch["speaker"], mu_table,
                                     width, noise.get("speech"))
        motion_rows = batch["motion_rows"]
        loss_motion = self.head_loss(m.motion_cfm, motion_rows, motion_rows + m.cfg.delay, motion, motion[:, 0],
                                     mu_table, width, noise.get("motion"))

        labels, weight, pos_weight = stop_labels(batch["n_slots"], batch["ends"], width, self.n_ignore)
        logits = m.stop_logits(after).float()  # (B, Np)
        bce = F.binary_cross_entropy_with_logits(logits, labels, reduction="none",
                                                 pos_weight=pos_weight * cfg.stop_pos_weight_scale)
        loss_stop = (bce * weight).sum() / weight.sum().clamp(min=1)

        loss = loss_speech + cfg.motion_weight * loss_motion + cfg.stop_weight * loss_stop
        with torch.no_grad():
            stop_correct = (((logits > 0).float() == labels) & weight).sum() / weight.sum().clamp(min=1)
        logs = {"speech": loss_speech.detach(), "motion": loss_motion.detach(), "stop": loss_stop.detach(),
                "stop_acc": stop_correct}
        return loss, logs
