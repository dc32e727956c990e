"""Talker-T2AV's corpus recipe: a clip (face-crop video with speech, or speech alone for TTS data)
-> the features training reads (``configs/data/talker_*.yaml``):

    speech   (T, 32) float32  WhisperX-VAE posterior mean at 25 Hz (any length: 30-s windows)
    speaker  (256,) float32   WavLM-Large + ECAPA-TDNN embedding of the clip's audio
    motion   (T, 40) float32  LIA-X motion, normalised (x - mean) / std   (not with --tts)

and the manifest row: id, num_frames, duration, text, speaker_id, subset (and a list corpus's word timings
and emotion, for word splicing). The released dataset
(Talker-T2AV-Data's metadata CSV, ``wav_path`` / ``motion_pt_path`` / ``text``) is a ``list``
corpus: its raw motion is read from the .pt file instead of encoding video.
"""

import logging
import sys
from dataclasses import dataclass

import numpy as np
import torch

from engine.cli import add_config_flags, config_from_flags
from engine.errors import UserFacingError
from engine.media import read_audio, read_video, resample
from engine.pipeline import cli as pipeline_cli
from engine.pipeline.corpus import Clip
from engine.pipeline.runner import TOO_LONG, TOO_SHORT, UNREADABLE, ClipFailure, ClipRefused, ClipResult, Recipe
from talker_t2av.conditioning import Codecs
from talker_t2av.data import load_raw_motion

log = logging.getLogger(__name__)


# A list corpus's columns the manifest row keeps: the word timings and emotion that word splicing
# (data.splice_words, talker_t2av.splicing) reads.
KEPT_COLUMNS = ("words", "emotion")


@dataclass
class TalkerPrepConfig:
    tts: bool = False  # speech only: no motion, no LIA-X
    min_seconds: float = 0.32  # two patches
    max_seconds: float | None = None  # None: keep every length (training crops to 30 s)


class TalkerRecipe(Recipe):
    name = "talker"

    def __init__(self, codecs: Codecs, cfg: TalkerPrepConfig | None = None):
        self.codecs, self.cfg = codecs, cfg or TalkerPrepConfig()

    def setup(self, device: torch.device) -> None:
        self.codecs.device = str(device)
        self.codecs.build_for("tts" if self.cfg.tts else "t2av", render=not self.cfg.tts)
        self.rate = self.codecs.vae.sample_rate
        self.fps = self.codecs.vae.frame_rate

    def load(self, clip: Clip) -> dict:
        frames = None
        if clip.video and clip.extra.get("motion_raw"):  # the motion is given: only the speech is decoded
            wav24 = read_audio(clip.video, 24000)
        elif clip.video:
            video = read_video(clip.video, fps=25.0, audio_sample_rate=24000)
            frames, wav24 = video.frames, video.audio
            if wav24 is None:
                raise ClipRefused(f"{clip.video}: no audio stream", UNREADABLE)
        elif clip.audio:
            wav24 = read_audio(clip.audio, 24000)
        else:
            raise ClipRefused(f"{clip.id}: no video or audio", UNREADABLE)
        duration = len(wav24) / 24000
        if duration < self.cfg.min_seconds or (self.cfg.max_seconds and duration > self.cfg.max_seconds):
            raise ClipRefused(f"{clip.source()}: duration {duration:.2f} s outside [{self.cfg.min_seconds}, "
                              f"{self.cfg.max_seconds or 'no limit'}] s",
                              TOO_SHORT if duration < self.cfg.min_seconds else TOO_LONG)
        if not self.cfg.tts and frames is None and not clip.extra.get("motion_raw"):
            raise UserFacingError(f"{clip.source()}: an audio-video clip needs its video or a motion_raw file "
                                  "(or prepare TTS data with --tts)")
        return {"frames": frames, "wav24": wav24, "wav16": resample(wav24, 24000, 16000)}

    @torch.no_grad()
    def process(self, loaded: list[dict]) -> list[ClipResult | ClipFailure]:
        results = []
        for item in loaded:  # clips differ in length; each encoder call is one clip (no padding in the features)
            try:
                results.append(self._one(item))
            except UserFacingError as e:
                results.append(ClipFailure.of(item["clip"], e, "features"))
        return results

    def _one(self, item: dict) -> ClipResult:
        clip, codecs = item["clip"], self.codecs
        vae, enc = codecs.vae, codecs.speaker
        device = next(vae.parameters()).device
        speech = vae.encode_long(torch.from_numpy(item["wav24"])[None].to(device))[0].float().cpu().numpy()
        speaker = enc.embed(torch.from_numpy(item["wav16"])[None].to(next(enc.parameters()).device))[0]
        arrays = {"speech": speech.astype(np.float32), "speaker": speaker.float().cpu().numpy()}
        frames = len(speech)
        if not self.cfg.tts:
            if clip.extra.get("motion_raw"):
                raw = load_raw_motion(clip.extra["motion_raw"])
            else:
                raw = codecs.liax.encode_motion(item["frames"])[0].cpu().numpy()
            arrays["motion"] = np.asarray(codecs.liax.normalize(raw), dtype=np.float32)
            frames = min(frames, len(arrays["motion"]))
        for name, array in arrays.items():
            if not np.isfinite(array).all():
                raise UserFacingError(f"{clip.source()}: {name} features contain NaN or inf")
        row = {"num_frames": int(frames), "duration": round(len(item["wav24"]) / 24000, 3), "text": clip.text,
               "speaker_id": clip.speaker, "subset": clip.subset,
               **{k: clip.extra[k] for k in KEPT_COLUMNS if k in clip.extra}}
        return ClipResult(clip, arrays, row, seconds=len(item["wav24"]) / 24000)


def add_arguments(parser) -> None:
    g = parser.add_argument_group("Talker-T2AV recipe")
    g.add_argument("--tts", action="store_true", help="speech only (no motion, no LIA-X)")
    add_config_flags(g, Codecs, Codecs.FLAG_FIELDS,
                     help={"liax_weights": "LIA-X weights (not needed with --tts or a motion_raw column)"})


def recipe_from_args(args) -> TalkerRecipe:
    return TalkerRecipe(config_from_flags(args, Codecs(device="cpu")), TalkerPrepConfig(tts=args.tts))


if __name__ == "__main__":  # python -m talker_t2av.prep: scripts/prepare_corpus.py talker from an installed package
    sys.exit(pipeline_cli.main(pipeline_cli.recipe_parser("talker_t2av.prep", prog="python -m talker_t2av.prep",
                                description=__doc__.split("\n\n")[0])))
