"""From files to the sampler's inputs and back: codecs, reference clips, outputs.

    codecs = Codecs.build(vae="whisperx-vae/model.ckpt", speaker="wavlm_large_finetune.pth", liax="lia-x.pt")
    prepared = prepare(request, codecs, layout, prefix_frames)   # one request -> tensors
    cond = batch_conditions([prepared, ...])                        # -> sampler.Conditions

Media go through the shared codec layer: WhisperX-VAE (24 kHz audio <-> 32-d latents), the
WavLM + ECAPA speaker encoder (16 kHz -> 256-d), LIA-X (face video <-> 40-d motion, rendering).
Motion inside Talker-T2AV is normalised with the released statistics; LIA-X renders raw motion.
"""

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from engine.errors import UserFacingError
from engine.media import read_audio, read_video
from talker_t2av.sampler import Conditions
from talker_t2av.tokenizer import ChatLayout

log = logging.getLogger(__name__)
CONFIGS = Path(__file__).resolve().parents[1] / "configs"
FPS = 25


class RequestError(UserFacingError, ValueError):
    pass


def compose_codec(name: str, overrides: list[str] = ()):
    """The ``codec`` group entry ``configs/codec/<name>.yaml`` (Hydra defaults resolved)."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONFIGS), version_base=None):
        return compose(config_name="config", overrides=[f"codec={name}", *overrides]).codec


def add_codec_arguments(group, liax_help: str = "LIA-X lia-x.pt") -> None:
    """The codec flags shared by ``infer.py talker`` and ``scripts/talker_precompute.py``."""
    group.add_argument("--vae", help="WhisperX-VAE model.ckpt")
    group.add_argument("--vae-config", default="whisperx_vae")
    group.add_argument("--speaker-encoder", help="UniSpeech wavlm_large_finetune.pth")
    group.add_argument("--speaker-config", default="speaker_wavlm_ecapa")
    group.add_argument("--liax", help=liax_help)
    group.add_argument("--liax-config", default="lia_x")


@dataclass
class Codecs:
    """The codecs a run needs, built lazily (a TTS run never loads LIA-X)."""

    vae_config: str = "whisperx_vae"
    vae_weights: str | None = None
    speaker_config: str = "speaker_wavlm_ecapa"
    speaker_weights: str | None = None
    liax_config: str = "lia_x"
    liax_weights: str | None = None
    device: str = "cpu"
    _built: dict = field(default_factory=dict)

    def _get(self, key: str, config: str, weights: str | None, flag: str):
        """Build ``configs/codec/<config>.yaml`` once, with ``weights`` as its weight file."""
        if key not in self._built:
            from hydra.utils import instantiate

            cfg = compose_codec(config)
            if weights:
                cfg.weights = weights
            elif cfg.get("weights") is None and "tiny" not in config:
                log.warning("%s without weights (%s): its outputs will be noise", config, flag)
            self._built[key] = instantiate(cfg).to(self.device)
        return self._built[key]

    @classmethod
    def from_args(cls, args, device: str) -> "Codecs":
        """From the flags of :func:`add_codec_arguments`."""
        return cls(vae_config=args.vae_config, vae_weights=args.vae, speaker_config=args.speaker_config,
                   speaker_weights=args.speaker_encoder, liax_config=args.liax_config, liax_weights=args.liax,
                   device=device)

    @property
    def vae(self):
        return self._get("vae", self.vae_config, self.vae_weights, "--vae")

    @property
    def speaker(self):
        return self._get("speaker", self.speaker_config, self.speaker_weights, "--speaker-encoder")

    @property
    def liax(self):
        return self._get("liax", self.liax_config, self.liax_weights, "--liax")


@dataclass
class Request:
    """One generation. Paths are media files or .npy features (motion: normalised, (T, 40))."""

    out: str
    text: str = ""
    ref_audio: str | None = None  # voice: speaker embedding (+ prefix speech)
    ref_video: str | None = None  # face: rendering source and first motion frame (+ prefix motion)
    ref_motion: str | None = None  # instead of encoding ref_video's motion
    audio: str | None = None  # a2v: the speech to animate
    video: str | None = None  # v2a: the face video to dub
    motion: str | None = None  # v2a: instead of encoding video's motion


@dataclass
class Prepared:
    request: Request
    prompt: torch.Tensor  # (L,) long
    speaker: torch.Tensor  # (G,)
    first_motion: torch.Tensor | None  # (Cm,)
    prefix_speech: torch.Tensor | None  # (Fp, Cs)
    prefix_motion: torch.Tensor | None  # (Fp, Cm)
    given: torch.Tensor | None  # (Fg, C): a2v speech / v2a motion after the prefix
    source_frames: np.ndarray | None  # (T, H, W, 3) uint8: the face video (render source / v2a output)
    driving_audio: np.ndarray | None  # (N,) 24 kHz: a2v's original speech for the mp4


def _need(path: str | None, what: str, mode: str) -> str:
    if not path:
        raise RequestError(f"mode {mode} needs {what}")
    if not Path(path).is_file():
        raise RequestError(f"{path}: file does not exist")
    return path


def _motion_file(path: str, motion_dim: int) -> torch.Tensor:
    try:
        arr = np.load(path)
    except (OSError, ValueError) as e:
        raise RequestError(f"{path}: cannot read motion ({e})") from None
    if arr.ndim != 2 or arr.shape[1] != motion_dim or len(arr) == 0 or not np.isfinite(arr).all():
        raise RequestError(f"{path}: expected finite normalised motion of shape (T, {motion_dim}), got {arr.shape}")
    return torch.from_numpy(arr.astype(np.float32))


def _face(codecs: Codecs, video: str | None, motion: str | None, motion_dim: int):
    """(normalised motion (T, Cm), frames) from a face video, or from a motion file (no frames)."""
    frames = read_video(video, fps=FPS).frames if video else None
    if motion:
        return _motion_file(motion, motion_dim), frames
    raw = codecs.liax.encode_motion(frames)[0].cpu()  # (T, Cm) raw
    return torch.as_tensor(codecs.liax.normalize(raw)).float(), frames


def _speech_latents(codecs: Codecs, wav24: np.ndarray) -> torch.Tensor:
    vae = codecs.vae
    dev = next(vae.parameters()).device
    return vae.encode(torch.from_numpy(wav24)[None].to(dev))[0].float().cpu()  # (T, Cs)


@torch.no_grad()
def prepare(req: Request, mode: str, codecs: Codecs, layout: ChatLayout, prefix_frames: int,
            speaker_dim: int, motion_dim: int) -> Prepared:
    """Encode one request's references (``prefix_frames``: a multiple of the patch size).

    speech head condition: the voice of ``ref_audio`` (every mode that generates speech);
    motion head condition: the first frame of the reference face (t2av, a2v);
    prefix: speech from ``ref_audio`` (a2v: from the driving audio), motion from the reference
    face (v2a: from the driving face).
    """
    prompt = torch.tensor(layout.prompt_ids(req.text), dtype=torch.long)
    speaker = torch.zeros(speaker_dim)  # a2v never runs the speech head
    if mode != "a2v":
        wav16 = read_audio(_need(req.ref_audio, "a reference voice (--ref-audio)", mode), 16000)
        enc = codecs.speaker
        speaker = enc.embed(torch.from_numpy(wav16)[None].to(next(enc.parameters()).device))[0].float().cpu()
        if speaker.shape[0] != speaker_dim:
            raise RequestError(f"the speaker encoder gives {speaker.shape[0]}-d embeddings, the model expects "
                               f"{speaker_dim} (check --speaker-config)")
    ref_motion = frames = given = driving_audio = None
    if mode in ("t2av", "a2v"):
        if not (req.ref_video or req.ref_motion):
            raise RequestError(f"mode {mode} needs a reference face (--ref-video or --ref-motion)")
        ref_motion, frames = _face(codecs, req.ref_video, req.ref_motion, motion_dim)
    if mode == "a2v":
        driving_audio = read_audio(_need(req.audio, "the speech to animate (--audio)", mode), 24000)
        given = _speech_latents(codecs, driving_audio)
    elif mode == "v2a":
        if not (req.video or req.motion):
            raise RequestError("mode v2a needs the face to dub (--video or --motion)")
        given, frames = _face(codecs, req.video, req.motion, motion_dim)

    prefix_speech = prefix_motion = None
    if prefix_frames:
        if mode == "a2v":
            speech_src = given
        else:
            speech_src = _speech_latents(codecs, read_audio(req.ref_audio, 24000)[: prefix_frames * 960])
        motion_src = {"t2av": ref_motion, "a2v": ref_motion, "v2a": given}.get(mode)
        for name, src in (("reference audio", speech_src), ("reference motion", motion_src)):
            if src is not None and len(src) < prefix_frames:
                raise RequestError(f"{req.out}: the {name} lasts {len(src) / FPS:.2f} s, less than the "
                                   f"{prefix_frames / FPS:.2f}-s prefix")
        prefix_speech = speech_src[:prefix_frames]
        prefix_motion = motion_src[:prefix_frames] if motion_src is not None else None
        if given is not None:
            given = given[prefix_frames:]
        if given is not None and len(given) == 0:
            raise RequestError(f"{req.out}: nothing left to generate after the {prefix_frames / FPS:.2f}-s prefix")
    first_motion = ref_motion[0] if ref_motion is not None else None
    return Prepared(req, prompt, speaker, first_motion, prefix_speech, prefix_motion, given, frames, driving_audio)


def _pad(rows: list[torch.Tensor | None], width_dim: int, multiple: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([0 if r is None else len(r) for r in rows])
    width = max(1, -(-int(lengths.max()) // multiple) * multiple)
    out = torch.zeros(len(rows), width, width_dim)
    for b, r in enumerate(rows):
        if r is not None:
            out[b, : len(r)] = r
    return out, lengths


def batch_conditions(items: list[Prepared], mode: str, speech_dim: int, motion_dim: int,
                     device: torch.device) -> Conditions:
    width = max(len(p.prompt) for p in items)
    ids = torch.zeros(len(items), width, dtype=torch.long)
    mask = torch.zeros(len(items), width, dtype=torch.bool)
    for b, p in enumerate(items):  # left-padded prompts
        ids[b, width - len(p.prompt):] = p.prompt
        mask[b, width - len(p.prompt):] = True
    cond = Conditions(ids.to(device), mask.to(device), torch.stack([p.speaker for p in items]).to(device))
    if any(p.first_motion is not None for p in items):
        cond.first_motion = torch.stack([p.first_motion if p.first_motion is not None else torch.zeros(motion_dim)
                                         for p in items]).to(device)
    if any(p.prefix_speech is not None for p in items):
        speech, frames = _pad([p.prefix_speech for p in items], speech_dim)
        motion, _ = _pad([p.prefix_motion for p in items], motion_dim)
        cond.prefix_speech, cond.prefix_motion = speech.to(device), motion.to(device)
        cond.prefix_frames = frames.to(device)
    if mode in ("a2v", "v2a"):
        given, frames = _pad([p.given for p in items], speech_dim if mode == "a2v" else motion_dim)
        setattr(cond, "given_speech" if mode == "a2v" else "given_motion", given.to(device))
        cond.given_frames = frames.to(device)
    return cond
