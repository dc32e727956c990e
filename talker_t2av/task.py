"""Talker-T2AV on the shared trainer: module = objective(network), data = precomputed features.

Stage 1 (TTS-only data) and joint training are the same task with different data; the joint
recipe warm-starts chosen modules from a stage-1 checkpoint (``init_from`` / ``init_modules``).
"""

import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn

from engine import checkpoint as ckpt
from engine.configs import check_scalars
from engine.errors import ConfigError
from engine.task import Task
from engine.weights import load_checked
from talker_t2av.cfm import (
    CFMSamplerConfig,
    GenerationConfig,
    LossConfig,
    TalkerConditions,
    TalkerObjective,
    generate,
)
from talker_t2av.conditioning import FeatureEncoder
from talker_t2av.data import (
    FEATURE_SOURCES,
    OnTheFlyDataset,
    TalkerCollator,
    TalkerDataConfig,
    TalkerDataset,
    trains_motion,
)
from talker_t2av.model import TalkerConfig, TalkerT2AV
from talker_t2av.patching import max_patches, speech_slots
from talker_t2av.synthetic import SyntheticTalkerDataset
from talker_t2av.tokenizer import ChatLayout, load_tokenizer

log = logging.getLogger(__name__)

# The released joint recipe initialises these from the TTS-only stage-1 model.
STAGE1_MODULES = ("llm.", "projector_speech.", "speech_patch_encoder.", "speech_cfm.", "head_stop.")


def _as(cls, value):
    if value is None or isinstance(value, cls):
        return value or cls()
    return cls(**dict(value))


class TalkerTask(Task):
    @classmethod
    def config_schemas(cls) -> dict[str, type]:
        return {"talker_model": TalkerConfig}

    def __init__(self, model: TalkerConfig, data: TalkerDataConfig, loss: LossConfig | dict | None = None,
                 init_from: str | None = None, init_modules: list[str] | tuple[str, ...] = STAGE1_MODULES,
                 init_lr_scale: float = 1.0, sampler: CFMSamplerConfig | dict | None = None,
                 val_max_seconds: float = 30.0, feature_codecs: dict | None = None):
        """sampler: how validation samples are drawn, and the defaults of ``infer.py talker`` for this
        checkpoint; feature_codecs: {"vae": codec, "speaker": encoder} (built by Hydra) for on-the-fly
        features; init_lr_scale: the warm-started modules' learning rate as a share of trainer.lr (the new
        ones, the motion side in the joint stage, take all of it)."""
        self.model_cfg = _as(TalkerConfig, model)
        self.data_cfg = _as(TalkerDataConfig, data)
        self.loss_cfg = _as(LossConfig, loss)
        self.init_from = init_from
        self.init_modules = tuple(init_modules)
        self.init_lr_scale = init_lr_scale
        self.sampler = _as(CFMSamplerConfig, sampler)
        self.val_max_seconds = val_max_seconds
        self.feature_codecs = feature_codecs
        self._check()

    def _check(self) -> None:
        """Data and model must agree on feature widths and on where the features come from."""
        m, d = self.model_cfg, self.data_cfg
        check_scalars(type(self), {"init_from": self.init_from, "init_lr_scale": self.init_lr_scale,
                                   "val_max_seconds": self.val_max_seconds}, "task")  # built from Python too
        if not self.init_lr_scale >= 0:
            raise ConfigError(f"task.init_lr_scale must be >= 0, got {self.init_lr_scale}")
        if not self.val_max_seconds > 0:
            raise ConfigError(f"task.val_max_seconds must be > 0, got {self.val_max_seconds}")
        for name in ("speech_dim", "motion_dim", "speaker_dim"):
            if getattr(m, name) != getattr(d, name):
                raise ConfigError(f"data.{name}={getattr(d, name)} but model.{name}={getattr(m, name)}: the "
                                  f"features and the model disagree (leave data.{name} as ${{model.{name}}})")
        if d.features not in FEATURE_SOURCES:
            raise ConfigError(f"data.features must be one of {FEATURE_SOURCES}, got {d.features!r}")
        if d.features == "on_the_fly" and not (self.feature_codecs and {"vae", "speaker"} <= set(self.feature_codecs)):
            raise ConfigError("data.features=on_the_fly needs task.feature_codecs with a vae and a speaker encoder")
        if d.features == "on_the_fly" and d.speaker_reference != "same_clip":
            # the speaker encoder runs on the batch's own waveforms there
            raise ConfigError("data.speaker_reference=other_clip works with precomputed features only "
                              "(data.features=precomputed)")

    @property
    def tokenizer_source(self) -> str | None:
        return self.model_cfg.tokenizer or self.model_cfg.backbone_path

    # ------------------------------------------------------------------ module
    def build_module(self) -> nn.Module:
        model = TalkerT2AV(self.model_cfg)
        if self.init_from:
            warm_start(model, self.init_from, self.init_modules)
        encoder = None
        if self.data_cfg.features == "on_the_fly":
            encoder = FeatureEncoder(self.feature_codecs["vae"], self.feature_codecs["speaker"])
        return TalkerObjective(model, self.loss_cfg, feature_encoder=encoder)

    def lr_scales(self) -> dict[str, float]:
        if not self.init_from or self.init_lr_scale == 1.0:
            return {}
        return {f"model.{prefix}": self.init_lr_scale for prefix in self.init_modules}  # TalkerObjective.model

    # ------------------------------------------------------------------ data
    def chat_layout(self) -> ChatLayout:
        return ChatLayout(load_tokenizer(self.tokenizer_source), lowercase=self.model_cfg.lowercase_text)

    def _dataset(self, train: bool, manifests=None, tts_manifests=None):
        P, text = self.model_cfg.patch_size, {"lowercase_text": self.model_cfg.lowercase_text}
        if self.data_cfg.synthetic_clips:
            return SyntheticTalkerDataset(self.data_cfg, self.tokenizer_source, P, self.data_cfg.synthetic_clips,
                                          self.data_cfg.synthetic_seed, train=train, **text)
        if self.data_cfg.features == "on_the_fly":
            vae, speaker = self.feature_codecs["vae"], self.feature_codecs["speaker"]
            return OnTheFlyDataset(self.data_cfg, self.tokenizer_source, P, manifests, tts_manifests, train=train,
                                   audio_rate=vae.sample_rate, speaker_rate=speaker.sample_rate,
                                   frame_rate=self.model_cfg.frame_rate, **text)
        return TalkerDataset(self.data_cfg, self.tokenizer_source, P, manifests, tts_manifests, train=train,
                             frame_rate=self.model_cfg.frame_rate, **text)

    def train_dataset(self):
        return self._dataset(train=True)

    @property
    def trains_motion(self) -> bool:
        """False for a TTS-only training (stage 1: no audio-video manifest): the motion side learns nothing."""
        return trains_motion(self.data_cfg)

    def val_dataset(self):
        """The held-out clips as the training sees them: a TTS-only training validates them as TTS, so its
        loss and its sample are speech and stop alone, not an untrained motion head's."""
        val = self.data_cfg.val_manifest
        if not val:
            return None
        if self.trains_motion:
            return self._dataset(train=False, manifests=[val], tts_manifests=[])
        return self._dataset(train=False, manifests=[], tts_manifests=[val])

    def collate(self, items):
        return self.collator(items)

    @property
    def collator(self) -> TalkerCollator:
        cfg, features = self.model_cfg, self.data_cfg.features
        hops = {}
        if features == "on_the_fly":
            hops = {"audio_hop": int(round(self.feature_codecs["vae"].sample_rate / cfg.frame_rate)),
                    "speaker_hop": int(round(self.feature_codecs["speaker"].sample_rate / cfg.frame_rate))}
        return TalkerCollator(cfg.patch_size, cfg.delay, motion_dim=cfg.motion_dim, features=features, **hops)

    # ------------------------------------------------------------------ validation
    @torch.no_grad()
    def validate(self, module, batch, out_dir: Path | None, step: int) -> dict[str, float]:
        loss, logs = module(batch)
        metrics = {"loss": float(loss), **{k: float(v) for k, v in logs.items()}}
        if out_dir is not None:
            metrics.update(self._sample(module.model, batch, out_dir))
        return metrics

    def _sample(self, model: TalkerT2AV, batch: dict, out_dir: Path) -> dict[str, float]:
        """T2AV from the first clip's text, speaker and first motion frame (no prefix): latents
        saved as .npy next to the ground truth, and a latent-distance figure."""
        b = int(batch["is_av"].float().argmax())  # an audio-video clip if the batch has one
        sel = slice(b, b + 1)
        frames = int(batch["speech_frames"][b])
        cond = TalkerConditions(batch["text_ids"][sel], batch["text_mask"][sel], batch["speaker"][sel],
                          batch["motion"][sel, 0] if bool(batch["is_av"][b]) else None)
        mode = "t2av" if bool(batch["is_av"][b]) else "tts"
        budget = max_patches(self.val_max_seconds, model.cfg.frame_rate, model.patch_size)
        # eagerly, as HiCoDiT's validation, and with the heads one by one: a training model's weights may be
        # sharded (FSDP) and move, its blocks wrapped (activation checkpointing, compile)
        out = generate(model, cond, GenerationConfig(mode=mode, speech=self.sampler, motion=self.sampler,
                                                     max_patches=budget), cuda_graph=False, paired_heads=False)
        speech = out.speech[0].cpu().numpy()
        np.save(out_dir / "speech_generated.npy", speech)
        np.save(out_dir / "speech_reference.npy", batch["speech"][b, :frames].cpu().numpy())
        n = min(len(speech), frames)
        true_patches = speech_slots(batch["n_slots"], batch["is_av"], model.cfg.delay)[b]  # where it should stop
        result = {"sample_speech_mse": float(((batch["speech"][b, :n].cpu().numpy() - speech[:n]) ** 2).mean()),
                  "sample_patches_error": float(out.patches[0]) - float(true_patches)}
        if out.motion[0] is not None:
            motion = out.motion[0].cpu().numpy()
            np.save(out_dir / "motion_generated.npy", motion)
            m = min(len(motion), int(batch["motion_frames"][b]))
            result["sample_motion_mse"] = float(((batch["motion"][b, :m].cpu().numpy() - motion[:m]) ** 2).mean())
        return result


def warm_start(model: TalkerT2AV, source: str, modules: tuple[str, ...]) -> None:
    """Copy the parameters under ``modules`` (name prefixes) from one of our checkpoints: its EMA weights
    when it saved them (the weights it generates with), else its raw ones."""
    folder = ckpt.resolve_checkpoint(source)
    state = ckpt.load_weights(folder, ema=True)
    state = {k.removeprefix("model."): v for k, v in state.items()}
    state = {k: v for k, v in state.items() if k.startswith(modules)}
    source = f"{folder} ({ckpt.weights_kind(folder)} weights, warm start: {', '.join(modules)})"
    load_checked(model, state, source=source,
                 allow_missing=lambda n: not n.startswith(modules))

