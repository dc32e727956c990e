"""HiCoDiT: the hierarchical codec diffusion transformer (the network only; the noise process,
loss, guidance and sampler live in ``hicodit.diffusion``).

    masked tokens of RVQ levels 1-2 --embed (sum)--+
                                                   concat -> linear -> 8 low blocks (AdaLN: timestep + c_id)
    lip features --MLP--> 50 Hz -------------------+                        |
                                                                             +-- heads of levels 1-2
    masked tokens of levels 3-12 --embed (sum)--> added to the stream
                                          -> 8 high blocks (dual-scale AdaLN: timestep + emotion)
                                                                             +-- heads of levels 3-12

Shape legend:
  B batch        Q RVQ levels (12)       Q_lo low levels (2)     V codebook size (1024)
  L token frames (50 Hz)                 T video frames (25 Hz), L = r T with r = 2
  E emotion steps (2 Hz), E = ceil(L / W), W = 25      C width (768)     S speaker dim (256)
  tokens (B, Q, L) int64 in [0, V], V is [MASK]        logits (B, L, Q, V) float, time-major
  token_mask (B, L) bool, True at real frames          drop (B, 3) bool: (lip, identity, emotion)

Choices the paper leaves open (all configurable, see ``HiCoDiTConfig`` and docs/hicodit.md):
  * the level-3-12 embeddings join the stream at the high-level entry by addition (``high_merge``);
  * the level-1-2 heads read the output of the low blocks, so the coarse levels depend on lip,
    identity and levels 1-2 only, as the paper's hierarchy intends (``low_heads_from``);
  * the temporal factor of the dual-scale AdaLN is parametrised as (1 + gamma_t), zero-initialised
    like every other modulation (adaLN-Zero), so each block starts as the identity.
Beyond the paper, ``emotion_in_low`` adds the pooled emotion to the low blocks' AdaLN condition, and two
training-only heads read the lips: ``lip_reader`` (CTC over the transcript) and ``lip_unit_head`` (levels
1-2's codes off the lip stream, (B, L, C) -> (B, L, Q_lo V)).
"""

from dataclasses import dataclass, fields

import torch
from torch import nn
from torch.nn import functional as F

from engine.configs import named_config
from engine.errors import ConfigError, check_bool_fields
from engine.layers import (
    AdaLNModulation,
    RMSNorm,
    RotaryEmbedding,
    Rotation,
    SelfAttention,
    SwiGLU,
    TimestepMLP,
    compute_dtype,
    gate,
    modulate,
    sinusoidal_embedding,
)
from hicodit.conditioning import EmotionEncoder, LinearLipFrontend, LipEncoder, LipFrontend, SpeakerFromFace
from hicodit.lipreading import LipReader

CONDITIONS = ("lip", "identity", "emotion")  # column order of the ``drop`` flags


@dataclass
class HiCoDiTConfig:
    # speech tokens (the codec's layout)
    num_levels: int = 12
    num_low_levels: int = 2
    codebook_size: int = 1024
    # transformer
    dim: int = 768
    heads: int = 12
    low_depth: int = 8
    high_depth: int = 8
    mlp_hidden: int | None = None  # SwiGLU hidden width; None: int(8/3 * dim)
    qk_norm: bool = False
    norm: str = "layer"  # the modulated norms: layer (the paper's (h - mu) / sigma) | rms
    max_len: int = 1024  # RoPE table length in token frames; longer clips compute angles on the fly
    time_freq_dim: int = 256
    # hierarchy and the ablations
    hierarchy: bool = True  # False: every level is embedded at the input and all blocks see all levels
    high_merge: str = "add"  # how levels 3-12 join the low stream: add | concat (concat -> linear)
    low_heads_from: str = "low"  # levels 1-2 are read from: low (the low blocks' output) | output
    dual_scale_adaln: bool = True  # False: plain AdaLN in the high blocks (no temporal gamma_t)
    # lip condition
    lip_input: str = "features"  # features (AV-HuBERT, B x T x lip_dim) | frontend (mouth crops)
    lip_dim: int = 1024
    lip_upsample: str = "learned"  # learned | repeat | linear (25 Hz -> 50 Hz)
    tokens_per_frame: int = 2
    frontend_channels: tuple[int, ...] = (64, 128, 256, 512)
    frontend_blocks: int = 2  # basic blocks per stage (2: ResNet-18 layout)
    # resnet (LipFrontend: 3-D stem + ResNet) | linear (LinearLipFrontend: learned eigenlips, for mouths that
    # keep their place in the crop, e.g. rendered faces)
    frontend_arch: str = "resnet"
    frontend_pool: int = 1  # average-pool the crops by this factor first (2: 88 -> 44 px; a CPU step 1.4 -> 0.8 s)
    crop_size: int = 88  # side of the square mouth crops in pixels (the corpus pipeline's, visual.mouth.MODEL_CROP)
    # Beyond the paper: a CTC head reading the transcript's characters off the front-end's features
    # (hicodit/lipreading.py), trained with diffusion.lip_ctc_weight > 0; never used in sampling.
    lip_reader: bool = False
    # Beyond the paper: a linear head reading levels 1-2's codes off the lip stream alone (the lip encoder's
    # token-rate output), trained with diffusion.lip_unit_weight > 0 (hicodit/diffusion.py); never used in sampling.
    lip_unit_head: bool = False
    # identity condition
    face_dim: int = 512  # ArcFace
    speaker_dim: int = 256  # GE2E
    # expression condition
    num_emotions: int = 7
    emotion_window: int = 25  # token frames per emotion step (0.5 s at 50 Hz)
    emotion_embedding: str = "hard"  # hard (majority label) | soft (probability-weighted)
    # Beyond the paper: the clip's pooled emotion also joins the low blocks' AdaLN (timestep + c_id +
    # emotion), so levels 1-2 can follow it. In the paper the expression reaches levels 3-12 only; a
    # codec that keeps the F0 in levels 1-2 (the offline benchmark's, docs/benchmark.md) then leaves
    # the label nothing to move.
    emotion_in_low: bool = False

    def __post_init__(self):
        self.frontend_channels = tuple(self.frontend_channels)  # Hydra passes lists
        for name, allowed in (("norm", ("layer", "rms")), ("high_merge", ("add", "concat")),
                              ("low_heads_from", ("low", "output")), ("lip_input", ("features", "frontend")),
                              ("frontend_arch", ("resnet", "linear"))):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"HiCoDiTConfig.{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if not 0 < self.num_low_levels < self.num_levels:
            raise ConfigError("HiCoDiTConfig.num_low_levels must be between 1 and num_levels - 1")
        if self.dim % self.heads:
            raise ConfigError(f"HiCoDiTConfig.dim {self.dim} is not divisible by heads {self.heads}")
        if self.frontend_pool < 1:
            raise ConfigError(f"HiCoDiTConfig.frontend_pool must be >= 1, got {self.frontend_pool}")
        check_bool_fields(self, "HiCoDiTConfig")

    @classmethod
    def paper(cls, **overrides) -> "HiCoDiTConfig":
        return named_config(cls, "model", "hicodit_paper", **overrides)  # the defaults

    @classmethod
    def tiny(cls, **overrides) -> "HiCoDiTConfig":
        return named_config(cls, "model", "hicodit_tiny", **overrides)  # configs/model/hicodit_tiny.yaml


@dataclass
class HiCoDiTConditions:
    """Encoded conditions, constant over the diffusion steps of one clip."""

    lip: torch.Tensor  # (B, L, C) lip stream at the token rate
    speaker: torch.Tensor  # (B, S) c_id (or a reference GE2E embedding) in speaker space
    emo_seq: torch.Tensor  # (B, E, C) 2 Hz emotion embeddings
    emo_pooled: torch.Tensor  # (B, C) their mean over real steps

    def tensors(self) -> tuple[torch.Tensor, ...]:
        """The fields in order: (lip, speaker, emo_seq, emo_pooled)."""
        return tuple(getattr(self, f.name) for f in fields(self))

    def repeat(self, n: int) -> "HiCoDiTConditions":
        """The batch stacked n times (guidance runs its variants as one batch)."""
        return HiCoDiTConditions(*(t.repeat(n, *[1] * (t.dim() - 1)) for t in self.tensors()))


def _norm(kind: str, dim: int) -> nn.Module:
    if kind == "rms":
        return RMSNorm(dim, eps=1e-6, elementwise_affine=False)
    return nn.LayerNorm(dim, eps=1e-6, elementwise_affine=False)


class HiCoDiTBlock(nn.Module):
    """DiT block with adaptive norm and gated residuals.

    Single-scale (low blocks, and high blocks without dual-scale):
        h' = (1 + gamma_c) * norm(h) + beta_c;   x <- x + alpha * f(h')
    Dual-scale (high blocks): a temporal factor per emotion step, repeated W = 25 times:
        h' = [(1 + gamma_t) (x) 1_W] * ((1 + gamma_c) * norm(h) + beta_c)
    gamma_c, beta_c, alpha (B, C) come from the block's condition vector (timestep + c_id, or
    timestep + pooled emotion); gamma_t (B, E) from the emotion sequence.
    """

    def __init__(self, dim: int, heads: int, mlp_hidden: int | None, qk_norm: bool, norm: str,
                 temporal: bool, window: int):
        super().__init__()
        self.window = window
        self.norm1 = _norm(norm, dim)
        self.attn = SelfAttention(dim, heads, qk_norm=qk_norm)
        self.norm2 = _norm(norm, dim)
        self.mlp = SwiGLU(dim, mlp_hidden)
        self.adaln = AdaLNModulation(dim, dim, 6)
        self.temporal = AdaLNModulation(dim, 1, 2) if temporal else None

    def _temporal_scales(self, emo: torch.Tensor, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(1 + gamma_t) for the attention and MLP branches, each step repeated W times: (B, L, 1) x 2."""
        g = torch.cat(self.temporal(emo), dim=-1)  # (B, E, 2)
        scales = 1 + g.repeat_interleave(self.window, dim=1)[:, :length]  # (B, L, 2)
        return scales[..., :1], scales[..., 1:]

    def forward(self, x: torch.Tensor, cond: torch.Tensor, rotation: Rotation, mask: torch.Tensor | None,
                emo: torch.Tensor | None = None) -> torch.Tensor:
        # x (B, L, C); cond (B, C); emo (B, E, C) for dual-scale blocks
        shift1, scale1, gate1, shift2, scale2, gate2 = self.adaln(cond)  # (B, C) each
        h1 = modulate(self.norm1(x), shift1, scale1)
        if self.temporal is not None:
            t1, t2 = self._temporal_scales(emo, x.shape[1])
            h1 = h1 * t1
        x = x + gate(self.attn(h1, rotation, mask), gate1)
        h2 = modulate(self.norm2(x), shift2, scale2)
        if self.temporal is not None:
            h2 = h2 * t2
        return x + gate(self.mlp(h2), gate2)


class FinalLayer(nn.Module):
    """Adaptive norm before the output heads (DiT's final layer without its linear)."""

    def __init__(self, dim: int, norm: str):
        super().__init__()
        self.norm = _norm(norm, dim)
        self.adaln = AdaLNModulation(dim, dim, 2)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        shift, scale = self.adaln(cond)
        return modulate(self.norm(x), shift, scale)


class HiCoDiT(nn.Module):
    def __init__(self, cfg: HiCoDiTConfig):
        super().__init__()
        self.cfg = cfg
        dim, q, v = cfg.dim, cfg.num_levels, cfg.codebook_size
        self.mask_id = v  # [MASK] is symbol V of every level
        # One table for all levels: row q * (V + 1) + token (per-level offsets, no per-level modules).
        self.token_embed = nn.Embedding(q * (v + 1), dim)
        self.register_buffer("level_offset", torch.arange(q) * (v + 1), persistent=False)

        self.lip_frontend = None
        if cfg.lip_input == "frontend" and cfg.frontend_arch == "linear":
            self.lip_frontend = LinearLipFrontend(cfg.lip_dim, side=cfg.crop_size // cfg.frontend_pool)
        elif cfg.lip_input == "frontend":
            self.lip_frontend = LipFrontend(cfg.lip_dim, cfg.frontend_channels, cfg.frontend_blocks, cfg.frontend_pool)
        self.lip_reader = LipReader(cfg.lip_dim) if cfg.lip_reader else None
        self.lip = LipEncoder(cfg.lip_dim, dim, cfg.tokens_per_frame, cfg.lip_upsample)
        self.lip_unit_head = nn.Linear(dim, cfg.num_low_levels * v) if cfg.lip_unit_head else None
        self.identity = SpeakerFromFace(cfg.face_dim, dim, cfg.speaker_dim)
        self.speaker_proj = nn.Linear(cfg.speaker_dim, dim)
        self.emotion = EmotionEncoder(cfg.num_emotions, dim, cfg.tokens_per_frame, cfg.emotion_window,
                                      cfg.emotion_embedding)

        def emotion_path() -> nn.Sequential:
            return nn.Sequential(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, dim))

        self.emotion_mlp = emotion_path()  # channel path
        self.emotion_seq_mlp = emotion_path() if cfg.dual_scale_adaln else None  # temporal path
        self.emotion_low_mlp = emotion_path() if cfg.emotion_in_low else None  # the low blocks' channel path
        self.null_lip = nn.Parameter(torch.zeros(dim))  # stands in for a dropped lip stream
        self.null_speaker = nn.Parameter(torch.zeros(dim))  # ... for a dropped identity
        self.time_mlp = TimestepMLP(cfg.time_freq_dim, dim)

        self.in_proj = nn.Linear(2 * dim, dim)  # [token features, lip features] -> C
        self.high_in = nn.Linear(2 * dim, dim) if cfg.high_merge == "concat" else None
        self.rope = RotaryEmbedding(dim // cfg.heads, max_len=cfg.max_len)

        def block(temporal: bool) -> HiCoDiTBlock:
            return HiCoDiTBlock(dim, cfg.heads, cfg.mlp_hidden, cfg.qk_norm, cfg.norm, temporal, cfg.emotion_window)

        self.low_blocks = nn.ModuleList(block(False) for _ in range(cfg.low_depth))
        self.high_blocks = nn.ModuleList(block(cfg.dual_scale_adaln) for _ in range(cfg.high_depth))
        self.low_final = FinalLayer(dim, cfg.norm) if cfg.low_heads_from == "low" else None
        self.final = FinalLayer(dim, cfg.norm)
        # The 12 output heads as one projection: rows [q V, (q + 1) V) are level q's head.
        self.heads = nn.Linear(dim, q * v)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """DiT initialisation: Xavier linears, N(0, 0.02) embeddings, zero modulations and heads."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Embedding):
                nn.init.normal_(m.weight, std=0.02)
        for m in self.modules():
            if isinstance(m, AdaLNModulation):
                nn.init.zeros_(m.linear.weight)
                nn.init.zeros_(m.linear.bias)
        for mlp in (self.time_mlp.linear_1, self.time_mlp.linear_2):
            nn.init.normal_(mlp.weight, std=0.02)
        nn.init.zeros_(self.heads.weight)
        nn.init.zeros_(self.heads.bias)
        nn.init.normal_(self.null_lip, std=0.02)
        nn.init.normal_(self.null_speaker, std=0.02)

    # ------------------------------------------------------------------------------ conditions
    def repeated_blocks(self) -> list[nn.Module]:
        return [*self.low_blocks, *self.high_blocks]

    def predict_speaker(self, face: torch.Tensor) -> torch.Tensor:
        """Face identity (B, F) -> c_id (B, S) in GE2E space."""
        return self.identity(face)

    def lip_features(self, lip: torch.Tensor, frame_mask: torch.Tensor) -> torch.Tensor:
        """lip (B, T, lip_dim) features or (B, T, H, W) mouth crops -> (B, T, lip_dim) features, zero at
        padded frames (the front-end's output, what the lip reader reads)."""
        if self.lip_frontend is not None:
            lip = self.lip_frontend(lip, frame_mask)  # (B, T, lip_dim)
        return lip * frame_mask[..., None].to(lip.dtype)  # padded frames carry nothing

    def encode_conditions(self, lip: torch.Tensor, speaker: torch.Tensor, emotion: torch.Tensor,
                          frame_mask: torch.Tensor) -> HiCoDiTConditions:
        """lip (B, T, lip_dim) features or (B, T, H, W) mouth crops; speaker (B, S); emotion (B, T)
        labels or (B, T, K) probabilities; frame_mask (B, T) -> HiCoDiTConditions."""
        return self.conditions_from_lip_features(self.lip_features(lip, frame_mask), speaker, emotion, frame_mask)

    def conditions_from_lip_features(self, lip_features: torch.Tensor, speaker: torch.Tensor, emotion: torch.Tensor,
                                     frame_mask: torch.Tensor) -> HiCoDiTConditions:
        """``encode_conditions`` given the output of ``lip_features`` (B, T, lip_dim)."""
        emo_seq, emo_pooled, _ = self.emotion(emotion, frame_mask)  # (B, E, C), (B, C)
        return HiCoDiTConditions(self.lip(lip_features), speaker, emo_seq, emo_pooled)

    def _apply_drop(self, cond: HiCoDiTConditions, drop: torch.Tensor | None):
        speaker = self.speaker_proj(cond.speaker)  # (B, C)
        lip, emo_seq, emo_pooled = cond.lip, cond.emo_seq, cond.emo_pooled
        if drop is not None:
            d_lip, d_id, d_emo = drop.unbind(-1)  # (B,) each
            null_emo = self.emotion.null
            lip = torch.where(d_lip[:, None, None], self.null_lip.to(lip.dtype), lip)
            speaker = torch.where(d_id[:, None], self.null_speaker.to(speaker.dtype), speaker)
            emo_seq = torch.where(d_emo[:, None, None], null_emo.to(emo_seq.dtype), emo_seq)
            emo_pooled = torch.where(d_emo[:, None], null_emo.to(emo_pooled.dtype), emo_pooled)
        return lip, speaker, emo_seq, emo_pooled

    # --------------------------------------------------------------------------------- forward
    def _embed_levels(self, idx: torch.Tensor) -> torch.Tensor:
        """idx (B, L, q) rows of the shared table -> (B, L, C), the sum over the q levels."""
        b, length, q = idx.shape
        summed = F.embedding_bag(idx.reshape(b * length, q), self.token_embed.weight, mode="sum")
        return summed.view(b, length, -1)

    def forward(self, tokens: torch.Tensor, t: torch.Tensor, cond: HiCoDiTConditions,
                token_mask: torch.Tensor | None = None, drop: torch.Tensor | None = None) -> torch.Tensor:
        """tokens (B, Q, L) with [MASK] = V; t (B,) in [0, 1] -> logits (B, L, Q, V) over the V real codes."""
        cfg = self.cfg
        b, q, length = tokens.shape
        if cond.lip.shape[1] != length:
            raise ValueError(f"lip stream has {cond.lip.shape[1]} token frames, tokens have {length}")
        lip, speaker, emo_seq, emo_pooled = self._apply_drop(cond, drop)
        t_emb = self.time_mlp(sinusoidal_embedding(t, cfg.time_freq_dim))  # (B, C)
        c_low = t_emb + speaker  # (B, C)
        if self.emotion_low_mlp is not None:
            c_low = c_low + self.emotion_low_mlp(emo_pooled)
        c_high = t_emb + self.emotion_mlp(emo_pooled)  # (B, C)
        emo_t = self.emotion_seq_mlp(emo_seq) if self.emotion_seq_mlp is not None else None  # (B, E, C)

        idx = (tokens + self.level_offset[:, None]).transpose(1, 2)  # (B, L, Q) table rows
        n_low = cfg.num_low_levels if cfg.hierarchy else q
        x = self.in_proj(torch.cat([self._embed_levels(idx[..., :n_low]), lip], dim=-1))  # (B, L, C)
        rotation = self.rope.rotation(length, dtype=compute_dtype(x))  # built once, shared by every block
        for blk in self.low_blocks:
            x = blk(x, c_low, rotation, token_mask)
        h_low = x  # (B, L, C)
        if cfg.hierarchy:
            high = self._embed_levels(idx[..., n_low:])  # (B, L, C)
            x = x + high if self.high_in is None else self.high_in(torch.cat([x, high], dim=-1))
        for blk in self.high_blocks:
            x = blk(x, c_high, rotation, token_mask, emo_t)

        v = cfg.codebook_size
        out = self.final(x, c_high)  # (B, L, C)
        if self.low_final is None:
            return self.heads(out).unflatten(-1, (q, v))  # (B, L, Q, V): one projection for all heads
        split = cfg.num_low_levels * v
        w, bias = self.heads.weight, self.heads.bias
        low = F.linear(self.low_final(h_low, c_low), w[:split], bias[:split])  # (B, L, Q_lo V)
        high = F.linear(out, w[split:], bias[split:])  # (B, L, (Q - Q_lo) V)
        return torch.cat([low, high], dim=-1).unflatten(-1, (q, v))  # (B, L, Q, V)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
