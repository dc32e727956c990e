"""Talker-T2AV network: a Qwen3 backbone over 4-frame patches, two flow-matching heads.

    sequence  [task tag, text tokens (chat template, up to the assistant turn), patch tokens ...]
    patch     SpeechPatchEncoder(proj_s(speech frames)) + MotionPatchEncoder(proj_m(motion frames))
              (TTS samples: + motion_pad_emb instead of the motion part)
    heads     the backbone state before patch j conditions the CFM heads that predict patch j;
              speech head: global condition = speaker embedding; motion head: first motion frame.
    stop      MLP on the state after each patch: p(this was the last patch)

The module is pure: no loss and no sampling loop (both in cfm.py), no devices.

Shape legend
    B batch   S sequence (tag + text + patches)   L text tokens   Np patch slots
    M patch rows   P frames per patch (4)   Cs speech channels (32)   Cm motion channels (40)
    G speaker embedding width (256)   D backbone width (1024 at paper size)
"""

from dataclasses import dataclass, field

import torch
from torch import nn

from talker_t2av.backbone import build_backbone, run_backbone
from talker_t2av.cfm import CFMConfig, FlowMatching
from talker_t2av.modules import FrameProjector, LocalDiT, PatchEncoder, StopPredictor


@dataclass
class TalkerConfig:
    # Backbone: a local transformers folder (Qwen3-0.6B at paper size) or Qwen3Config fields.
    backbone_path: str | None = None
    backbone: dict | None = None
    load_backbone_weights: bool = True  # False: random backbone (weights come from a checkpoint)
    attention: str = "auto"  # backbone attention: auto (flash-attn when installed and on GPU) | sdpa | flash | eager
    # Tokenizer: a folder with the Qwen3 tokenizer (default: backbone_path) or "char" (tests, demo).
    tokenizer: str | None = None
    # Lower-case every text before tokenising, in training and generation alike (the checkpoint keeps
    # the setting). For all-caps corpora such as GRID: Qwen3's BPE splits upper-case words into pieces
    # that are letters of the alphabet (EIGHT -> E + IGHT, NINE -> N + INE), lower-case words it keeps whole.
    lowercase_text: bool = False
    speech_dim: int = 32
    motion_dim: int = 40
    speaker_dim: int = 256
    frame_rate: float = 25.0  # latent frames per second of both streams (WhisperX-VAE and LIA-X, 25 Hz)
    patch_size: int = 4
    delay: int = 0  # motion lags speech by this many patches (released model: 0)
    context_patches: int = 1
    patch_encoder_layers: int = 4
    patch_encoder_heads: int = 8
    head_layers: int = 8
    head_heads: int = 8
    rope_max_len: int = 1024
    # The released recipe freezes the LM head, which Qwen3-0.6B ties to the token embeddings.
    freeze_text_embeddings: bool = True
    cfm: CFMConfig = field(default_factory=CFMConfig)

    def __post_init__(self):
        if not isinstance(self.cfm, CFMConfig):
            self.cfm = CFMConfig(**dict(self.cfm))
        if self.backbone is not None and not isinstance(self.backbone, dict):
            self.backbone = dict(self.backbone)


class TalkerT2AV(nn.Module):
    def __init__(self, cfg: TalkerConfig):
        super().__init__()
        self.cfg = cfg
        self.llm = build_backbone(cfg.backbone_path, cfg.backbone, cfg.load_backbone_weights, cfg.attention)
        dim = self.llm.config.hidden_size
        self.dim = dim
        self.projector_speech = FrameProjector(cfg.speech_dim, dim)
        self.projector_motion = FrameProjector(cfg.motion_dim, dim)
        pe = dict(dim=dim, layers=cfg.patch_encoder_layers, heads=cfg.patch_encoder_heads,
                  rope_max_len=cfg.rope_max_len)
        self.speech_patch_encoder = PatchEncoder(**pe)
        self.motion_patch_encoder = PatchEncoder(**pe)
        head = dict(dim=dim, layers=cfg.head_layers, heads=cfg.head_heads, rope_max_len=cfg.rope_max_len)
        self.speech_cfm = FlowMatching(LocalDiT(cfg.speech_dim, cfg.speaker_dim, **head), cfg.patch_size, cfg.cfm)
        self.motion_cfm = FlowMatching(LocalDiT(cfg.motion_dim, cfg.motion_dim, **head), cfg.patch_size, cfg.cfm)
        self.head_stop = StopPredictor(dim)
        self.task_embedding = nn.Embedding(2, dim)
        self.motion_pad_emb = nn.Parameter(torch.zeros(1, 1, dim))
        if cfg.freeze_text_embeddings:
            self.llm.get_input_embeddings().weight.requires_grad_(False)
            self.llm.get_output_embeddings().weight.requires_grad_(False)

    # ------------------------------------------------------------ structure
    @property
    def patch_size(self) -> int:
        return self.cfg.patch_size

    def repeated_blocks(self) -> list[nn.Module]:
        """Transformer blocks for activation checkpointing / compile / FSDP units."""
        blocks = list(self.llm.model.layers)
        for enc in (self.speech_patch_encoder, self.motion_patch_encoder,
                    self.speech_cfm.estimator.decoder, self.motion_cfm.estimator.decoder):
            blocks.extend(enc.blocks)
        return blocks

    # ------------------------------------------------------------ embeddings
    def text_embeddings(self, ids: torch.Tensor) -> torch.Tensor:  # (B, L) -> (B, L, D)
        return self.llm.get_input_embeddings()(ids)

    def task_tokens(self, tags: torch.Tensor) -> torch.Tensor:  # (B,) in {0 TTS, 1 AV} -> (B, D)
        return self.task_embedding(tags)

    def speech_tokens(self, frames: torch.Tensor, frame_mask: torch.Tensor | None = None) -> torch.Tensor:
        """frames (M, P, Cs) -> (M, D). Frames outside ``frame_mask`` (M, P) enter as zero vectors
        after the projection, as the released training does for the tail of the last patch."""
        h = self.projector_speech(frames.to(self.projector_speech.linear1.weight.dtype))  # (M, P, D)
        if frame_mask is not None:
            h = h * frame_mask[..., None].to(h.dtype)
        return self.speech_patch_encoder(h)

    def motion_tokens(self, frames: torch.Tensor, frame_mask: torch.Tensor | None = None) -> torch.Tensor:
        """frames (M, P, Cm) -> (M, D), masked like ``speech_tokens``."""
        h = self.projector_motion(frames.to(self.projector_motion.linear1.weight.dtype))  # (M, P, D)
        if frame_mask is not None:
            h = h * frame_mask[..., None].to(h.dtype)
        return self.motion_patch_encoder(h)

    def motion_pad(self) -> torch.Tensor:  # (D,): what a TTS patch has in place of motion
        return self.motion_pad_emb.view(-1)

    # ------------------------------------------------------------ backbone and stop
    def backbone(self, embeds: torch.Tensor, key_mask: torch.Tensor | None, position_ids: torch.Tensor | None,
                 cache=None, use_cache: bool = False):
        """embeds (B, Q, D) -> (hidden (B, Q, D), cache); see backbone.run_backbone for the masks."""
        return run_backbone(self.llm, self.backbone_input(embeds), key_mask, position_ids, cache, use_cache)

    def backbone_input(self, embeds: torch.Tensor) -> torch.Tensor:
        """Embeddings in the backbone's dtype (bf16 at inference on CUDA, as released)."""
        return embeds.to(self.llm.get_input_embeddings().weight.dtype)

    def stop_logits(self, hidden: torch.Tensor) -> torch.Tensor:  # (..., D) -> (...)
        return self.head_stop(hidden.to(self.head_stop.proj.weight.dtype))

