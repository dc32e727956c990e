"""The conditions of Talker-T2AV: from a request's media to the sampler's tensors, and the encoders.

    codecs = Codecs(vae_weights="whisperx-vae/model.ckpt", speaker_weights="wavlm_large_finetune.pth", ...)
    prepared = prepare(request, codecs, layout, prefix_frames, ...)   # one request -> tensors
    cond = batch_conditions([prepared, ...], mode, ...)                  # -> cfm.TalkerConditions

Media go through the shared codec layer: WhisperX-VAE (24 kHz audio <-> 32-d latents), the
WavLM + ECAPA speaker encoder (16 kHz -> 256-d), LIA-X (face video <-> 40-d motion, rendering).
Motion inside Talker-T2AV is normalised with the released statistics; LIA-X renders raw motion.
``FeatureEncoder`` runs the same codecs on a training batch's waveforms (on-the-fly features).
"""

import logging
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from engine.configs import build_codec, codec_config
from engine.errors import UserFacingError
from engine.media import read_audio, read_video
from engine.safe_load import CheckpointReadError, UnsafeCheckpointError, safe_torch_load
from talker_t2av.cfm import MODES, TalkerConditions
from talker_t2av.patching import frame_mask
from visual.tracking import NoFaceError, build_tracker

if TYPE_CHECKING:  # the tokenizer (transformers) is loaded only where text is tokenised
    from talker_t2av.tokenizer import ChatLayout

log = logging.getLogger(__name__)

# How much of each reference the model uses; the rest of a longer file is never decoded, so memory
# stays bounded whatever its length (a 10-minute --ref-audio through WavLM once took 20 GiB).
REFERENCE_SECONDS = 20.0  # of --ref-audio heard by the speaker encoder (plus any --prefix-seconds)
MAX_TEXT_CHARS = 1000  # about a minute of speech; longer text belongs in several requests


class RequestError(UserFacingError, ValueError):
    pass


@dataclass
class Codecs:
    """The codecs a run needs, built lazily (a TTS run never loads LIA-X). Each ``*_config`` is a preset
    name (configs/codec/<name>.yaml) or a path to a .yaml file; each ``*_weights`` a weights spec (a path,
    a registry name or an hf:// spec; None: the config's own)."""

    vae_weights: str | None = field(default=None, metadata={"flag": "--vae"})  # WhisperX-VAE weights (model.ckpt)
    vae_config: str = "whisperx_vae"  # WhisperX-VAE config: preset name or .yaml
    # speaker encoder weights (UniSpeech wavlm_large_finetune.pth)
    speaker_weights: str | None = field(default=None, metadata={"flag": "--speaker-encoder"})
    speaker_config: str = "speaker_wavlm_ecapa"  # speaker encoder config: preset/.yaml
    liax_weights: str | None = field(default=None, metadata={"flag": "--liax"})  # LIA-X lia-x.pt
    liax_config: str = "lia_x"  # LIA-X config: preset name or .yaml
    device: str = "cpu"
    _built: dict = field(default_factory=dict)

    FLAG_FIELDS = ("vae_weights", "vae_config", "speaker_weights", "speaker_config", "liax_weights", "liax_config")

    def _get(self, key: str, config: str, weights: str | None, flag: str):
        """Build the ``config`` preset (or .yaml) once, with ``weights`` as its weights spec."""
        if key not in self._built:
            node = codec_config(config)
            if not weights and node.get("weights") is None and "tiny" not in str(config):
                log.warning("%s without weights (%s): its outputs will be noise", config, flag)
            self._built[key] = build_codec(node, weights or None).to(self.device)
        return self._built[key]

    @property
    def vae(self):
        return self._get("vae", self.vae_config, self.vae_weights, "--vae")

    @property
    def speaker(self):
        return self._get("speaker", self.speaker_config, self.speaker_weights, "--speaker-encoder")

    @property
    def liax(self):
        return self._get("liax", self.liax_config, self.liax_weights, "--liax")

    def build_for(self, mode: str, render: bool) -> None:
        """Build (and so check) every codec ``mode`` needs before anything is generated or written."""
        _ = self.vae
        if mode != "a2v":
            _ = self.speaker
        if mode != "tts" and render:
            _ = self.liax


@dataclass
class TalkerRequest:
    """One generation: a mode, text, and media files (motion: normalised .npy of shape (T, 40))."""

    mode: str = "t2av"  # t2av | tts | a2v | v2a
    text: str = ""  # what to say (t2av, tts, v2a; an optional transcript for a2v)
    ref_audio: str | None = None  # voice: speaker embedding (+ prefix speech)
    ref_video: str | None = None  # face: rendering source and first motion frame (+ prefix motion)
    ref_motion: str | None = None  # instead of encoding ref_video's motion
    audio: str | None = None  # a2v: the speech to animate
    video: str | None = None  # v2a: the face video to dub
    motion: str | None = None  # v2a: instead of encoding video's motion
    prefix_seconds: float = 0.0  # 0: the references give only voice and face; N: continue their first N seconds
    # What the prefix says, when it is another sentence (cut between words): the model reads it before
    # ``text``, as in training, where the text is the whole clip's; the output after the prefix says ``text``
    prefix_text: str = ""
    id: str = ""  # names the request in messages and results


MEDIA_FIELDS = ("ref_audio", "ref_video", "ref_motion", "audio", "video", "motion")


def check_request(req: TalkerRequest, names: dict[str, str] | None = None) -> None:
    """Everything about a request that can be checked without decoding: a known mode, what it needs is
    given, given files exist and are files, the text is not too long. ``names``: how the caller calls
    the fields in its messages (the CLI: its flags); default the field names."""
    name = (names or {}).get
    where = f"request {req.id!r}: " if req.id else ""
    if req.mode not in MODES:
        raise RequestError(f"{where}mode {req.mode!r} is not one of {', '.join(MODES)}")
    needs = {"t2av": (("ref_audio",), ("ref_video", "ref_motion")), "tts": (("ref_audio",),),
             "a2v": (("audio",), ("ref_video", "ref_motion")),
             "v2a": (("ref_audio",), ("video", "motion"))}[req.mode]
    for options in needs:
        if not any(getattr(req, o) for o in options):
            raise RequestError(f"{where}mode {req.mode} needs {' or '.join(name(o, o) for o in options)}")
    for field_name in MEDIA_FIELDS:
        value = getattr(req, field_name)
        if value:
            path = Path(value)
            if path.is_dir():
                raise RequestError(f"{name(field_name, field_name)} {path}: is a folder, not a file")
            if not path.is_file():
                raise RequestError(f"{name(field_name, field_name)} {path}: file does not exist")
    if len(spoken_text(req)) > MAX_TEXT_CHARS:
        raise RequestError(f"{where}{name('text', 'text')} has {len(spoken_text(req))} characters; at most "
                           f"{MAX_TEXT_CHARS} per request (split longer text into several requests)")
    if not req.prefix_seconds >= 0:
        raise RequestError(f"{where}{name('prefix_seconds', 'prefix_seconds')} must be >= 0, got {req.prefix_seconds}")
    if req.prefix_text.strip() and not req.prefix_seconds > 0:
        raise RequestError(f"{where}{name('prefix_text', 'prefix_text')} is what a prefix says, but there is no "
                           f"prefix ({name('prefix_seconds', 'prefix_seconds')} 0)")


def spoken_text(req: TalkerRequest) -> str:
    """The text the model reads: the prefix's words (if given), then the request's."""
    return f"{req.prefix_text.strip()} {req.text.strip()}".strip() if req.prefix_text.strip() else req.text


@dataclass
class Prepared:
    request: TalkerRequest
    prompt: torch.Tensor  # (L,) long
    speaker: torch.Tensor  # (G,)
    first_motion: torch.Tensor | None  # (Cm,)
    prefix_speech: torch.Tensor | None  # (Fp, Cs)
    prefix_motion: torch.Tensor | None  # (Fp, Cm)
    given: torch.Tensor | None  # (Fg, C): a2v speech / v2a motion after the prefix
    source_frames: np.ndarray | None  # (T, H, W, 3) uint8: the face video (render source / v2a output)
    driving_audio: np.ndarray | None  # (N,) 24 kHz: a2v's original speech for the mp4


NPY_MAGIC = b"\x93NUMPY"


def _describe(value) -> str:
    """What a loaded object is, for a message: 'a dict (keys speech, motion)', 'a list of 3 items'."""
    if isinstance(value, dict):
        return f"a dict (keys {', '.join(map(str, list(value)[:4]))}{', ...' if len(value) > 4 else ''})"
    if isinstance(value, list | tuple):
        return f"a {type(value).__name__} of {len(value)} items"
    return f"a {type(value).__name__}"


def _zip_members(path: Path) -> list[str]:
    """The member names of a zip archive (np.savez and torch.save both write one); [] for any other file."""
    if not zipfile.is_zipfile(path):
        return []
    with zipfile.ZipFile(path) as archive:
        return archive.namelist()


def _shape_text(shape: tuple[int | None, ...]) -> str:
    return "(" + ", ".join("T" if n is None else str(n) for n in shape) + ("," if len(shape) == 1 else "") + ")"


def load_array(path: str | Path, what: str, shape: tuple[int | None, ...] | None = None,
               error: type[UserFacingError] = RequestError) -> np.ndarray:
    """One numeric array from a file, whatever saved it: ``np.save`` (an .npy, memory-mapped) or
    ``torch.save`` of one tensor (a .pt, read without running pickled code), the extension aside. Anything
    else (an ``np.savez`` archive, a dict of tensors, text) is one ``error`` line saying what the file
    holds. ``shape``: what ``what`` must be, None for any length (``(None, 40)``: (T, 40), T >= 1)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            magic = f.read(len(NPY_MAGIC))
    except OSError as e:
        raise error(f"{path}: cannot read {what} ({e.strerror or e})") from None
    if magic == NPY_MAGIC:
        try:
            value = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError, EOFError) as e:
            raise error(f"{path}: cannot read {what} ({str(e).splitlines()[0] if str(e) else type(e).__name__})") \
                from None
    else:
        members = _zip_members(path)
        if members and not any(n.endswith("data.pkl") for n in members):  # np.savez's archive, not torch.save's
            arrays = [n.removesuffix(".npy") for n in members]
            raise error(f"{path}: holds an .npz archive of {len(arrays)} arrays ({', '.join(arrays[:4])}), not one "
                        f"{what} array (save the one array with np.save)")
        try:
            value = safe_torch_load(path)
        except UnsafeCheckpointError:
            raise
        except CheckpointReadError:
            raise error(f"{path}: cannot read {what}: neither an .npy array nor a tensor saved with torch.save") \
                from None
        if torch.is_tensor(value):
            value = value.detach().float().numpy() if value.is_floating_point() else value.detach().numpy()
    if not isinstance(value, np.ndarray):
        raise error(f"{path}: holds {_describe(value)}, not a {what} array")
    if not (np.issubdtype(value.dtype, np.number) or value.dtype == np.bool_):
        raise error(f"{path}: holds {value.dtype} values, not a numeric {what} array")
    if shape is not None and (value.ndim != len(shape) or value.size == 0
                              or any(n is not None and n != m for n, m in zip(shape, value.shape))):
        raise error(f"{path}: expected {what} of shape {_shape_text(shape)}, got {value.dtype} {value.shape}")
    return value


def load_motion(path: str | Path, motion_dim: int, max_frames: int | None = None) -> torch.Tensor:
    """Normalised motion (T, motion_dim) float32 from a file (:func:`load_array`), its first ``max_frames``."""
    arr = np.array(load_array(path, "normalised motion", (None, motion_dim))[:max_frames], dtype=np.float32)
    if not np.isfinite(arr).all():
        raise RequestError(f"{path}: motion contains NaN or inf")
    return torch.from_numpy(arr)


def warn_if_no_face(frames: np.ndarray, source: str) -> None:
    """LIA-X expects a face crop: say so when the face tracker (if installed) finds no face in the
    first frame, instead of rendering whatever the video holds without a word."""
    try:
        tracker = build_tracker("dlib")
        tracker.track(frames[:1], source=source)
    except ImportError:  # no tracker installed (the `visual` extra): nothing to check with
        return
    except NoFaceError:
        log.warning("%s: no face found in its first frame; LIA-X expects a face crop (head and shoulders, "
                    "centred), so the rendered video may be meaningless", source)
    except UserFacingError:  # the tracker itself is unavailable
        return


def _face(codecs: Codecs, video: str | None, motion: str | None, motion_dim: int, fps: float,
          max_frames: int | None):
    """(normalised motion (T, Cm), frames) from a face video, or from a motion file (no frames)."""
    frames = read_video(video, fps=fps, max_frames=max_frames).frames if video else None
    if frames is not None:
        warn_if_no_face(frames, video)
    if motion:
        return load_motion(motion, motion_dim, max_frames), frames
    raw = codecs.liax.encode_motion(frames)[0].cpu()  # (T, Cm) raw
    return torch.as_tensor(codecs.liax.normalize(raw)).float(), frames


def _speech_latents(codecs: Codecs, wav24: np.ndarray) -> torch.Tensor:
    vae = codecs.vae
    return vae.encode_long(torch.from_numpy(wav24)[None].to(next(vae.parameters()).device))[0].float().cpu()


def _read_capped(path: str, sample_rate: int, seconds: float, what: str) -> np.ndarray:
    """The first ``seconds`` of an audio file; a longer file is cut, with a warning."""
    wav = read_audio(path, sample_rate, max_seconds=seconds + 1.0 / 25)
    limit = int(round(seconds * sample_rate))
    if len(wav) > limit:
        log.warning("%s: longer than %.2f s; only its first %.2f s are used (%s)", path, seconds, seconds, what)
    return wav[:limit]


@torch.no_grad()
def prepare(req: TalkerRequest, codecs: Codecs, layout: "ChatLayout", prefix_frames: int, speaker_dim: int,
            motion_dim: int, frame_rate: float, max_frames: int) -> Prepared:
    """Encode one request's references (``prefix_frames``: a multiple of the patch size; ``max_frames``:
    the most frames a sample may have, prefix included). Only what the model uses is decoded.

    speech head condition: the voice of ``ref_audio`` (its first REFERENCE_SECONDS; every mode that
    generates speech); motion head condition: the first frame of the reference face (t2av, a2v);
    prefix: speech from ``ref_audio`` (a2v: from the driving audio), motion from the reference
    face (v2a: from the driving face).
    """
    check_request(req)
    mode = req.mode
    prompt = torch.tensor(layout.prompt_ids(spoken_text(req)), dtype=torch.long)
    prefix_seconds = prefix_frames / frame_rate
    speaker = torch.zeros(speaker_dim)  # a2v never runs the speech head
    if mode != "a2v":
        enc = codecs.speaker
        wav = read_audio(req.ref_audio, enc.sample_rate, max_seconds=max(REFERENCE_SECONDS, prefix_seconds))
        speaker = enc.embed(torch.from_numpy(wav[: int(REFERENCE_SECONDS * enc.sample_rate)])[None].to(
            next(enc.parameters()).device))[0].float().cpu()
        if speaker.shape[0] != speaker_dim:
            raise RequestError(f"the speaker encoder gives {speaker.shape[0]}-d embeddings, the model expects "
                               f"{speaker_dim} (check --speaker-config)")
    ref_motion = frames = given = driving_audio = None
    if mode in ("t2av", "a2v"):  # the face's first frame, and the prefix if any
        ref_motion, frames = _face(codecs, req.ref_video, req.ref_motion, motion_dim, frame_rate,
                                   max(1, prefix_frames))
    if mode == "a2v":
        driving_audio = _read_capped(req.audio, codecs.vae.sample_rate, max_frames / frame_rate, "--max-seconds")
        given = _speech_latents(codecs, driving_audio)
    elif mode == "v2a":
        given, frames = _face(codecs, req.video, req.motion, motion_dim, frame_rate, max_frames + 1)
        if len(given) > max_frames:
            log.warning("%s: longer than %.2f s; only its first %.2f s are dubbed (--max-seconds)",
                        req.video or req.motion, max_frames / frame_rate, max_frames / frame_rate)
            given, frames = given[:max_frames], (None if frames is None else frames[:max_frames])

    prefix_speech = prefix_motion = None
    if prefix_frames:
        if mode == "a2v":
            speech_src = given
        else:
            hop = codecs.vae.hop_length
            speech_src = _speech_latents(codecs, read_audio(req.ref_audio, codecs.vae.sample_rate,
                                                            max_seconds=prefix_seconds)[: prefix_frames * hop])
        motion_src = {"t2av": ref_motion, "a2v": ref_motion, "v2a": given}.get(mode)
        for name, src in (("reference audio", speech_src), ("reference motion", motion_src)):
            if src is not None and len(src) < prefix_frames:
                raise RequestError(f"request {req.id!r}: the {name} lasts {len(src) / frame_rate:.2f} s, less than "
                                   f"the {prefix_seconds:.2f}-s prefix")
        prefix_speech = speech_src[:prefix_frames]
        prefix_motion = motion_src[:prefix_frames] if motion_src is not None else None
        if given is not None:
            given = given[prefix_frames:]
        if given is not None and len(given) == 0:
            raise RequestError(f"request {req.id!r}: nothing left to generate after the {prefix_seconds:.2f}-s prefix")
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
                     device: torch.device) -> TalkerConditions:
    width = max(len(p.prompt) for p in items)
    ids = torch.zeros(len(items), width, dtype=torch.long)
    mask = torch.zeros(len(items), width, dtype=torch.bool)
    for b, p in enumerate(items):  # left-padded prompts
        ids[b, width - len(p.prompt):] = p.prompt
        mask[b, width - len(p.prompt):] = True
    cond = TalkerConditions(ids.to(device), mask.to(device), torch.stack([p.speaker for p in items]).to(device))
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


# ------------------------------------------------------------------ on-the-fly training features
class FeatureEncoder:
    """Frozen WhisperX-VAE + speaker encoder that turn a batch's waveforms into its features."""

    def __init__(self, vae, speaker):
        self.vae, self.speaker = vae.eval().requires_grad_(False), speaker.eval().requires_grad_(False)

    @torch.no_grad()
    def __call__(self, batch: dict) -> dict:
        audio = batch["audio"]
        if next(self.vae.parameters()).device != audio.device:  # host-side metadata: no sync
            self.vae.to(audio.device)
            self.speaker.to(audio.device)
        frames = batch["motion"].shape[1]
        speech = self.vae.encode(audio).float()[:, :frames]  # (B, F, Cs)
        speech = speech * frame_mask(batch["speech_frames"], frames)[..., None]  # zeros past each clip
        speaker = self.speaker.embed(batch["audio16"], batch["audio16_lengths"]).float()  # (B, G)
        return {**batch, "speech": speech, "speaker": speaker}
