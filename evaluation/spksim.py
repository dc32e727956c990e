"""Speaker similarity: cosine of speaker embeddings, from GE2E (offline) or WavLM-Large + ECAPA-TDNN.

    judge = SpeakerJudge("ge2e")                                   # Resemblyzer's weights, 256-d
    judge = SpeakerJudge("wavlm_ecapa", weights="wavlm_large_finetune.pth")   # the paper's judge, 256-d
    emb = judge.embed(wavs_16k)            # list of (N_b,) -> (B, D), unit length
    sim = judge.similarity(gen, ref)       # waveform lists or embeddings, paired -> (B,) cosines

GE2E: utterances preprocessed as Resemblyzer does (volume, VAD), partials batched over the whole
list (avcodecs/speaker/ge2e.py). WavLM-ECAPA: the list is right-padded into one batch with lengths,
so each utterance gets the embedding it gets alone (avcodecs/speaker). Both on ``device``.
"""

from collections.abc import Sequence

import numpy as np
import torch
from torch.nn import functional as F

from avcodecs.speaker.ge2e import Ge2eConfig
from avcodecs.speaker.ge2e_audio import resolve_vad
from avcodecs.speaker.ge2e_weights import load_ge2e
from engine.hub import resolve_weights
from evaluation.speech_common import SpeechJudgeError, as_waveforms, package_version

SAMPLE_RATE = 16_000
BACKENDS = ("ge2e", "wavlm_ecapa")


class SpeakerJudge:
    def __init__(self, backend: str = "ge2e", weights: str | None = None, device: str | torch.device = "cpu",
                 batch_size: int = 16, vad: str = "auto"):
        if backend not in BACKENDS:
            raise SpeechJudgeError(f"speaker judge {backend!r}: choose one of {', '.join(BACKENDS)}")
        self.backend, self.weights, self.batch_size = backend, weights, batch_size
        self.device = torch.device(device)
        if backend == "ge2e":
            self.model, self.report = load_ge2e(weights, Ge2eConfig(vad=vad))
        else:
            from avcodecs.speaker import load_speaker_encoder  # noqa: PLC0415 - WavLM (transformers): seconds

            weights = weights or "wavlm-ecapa"  # the registry's entry (fetched by hand)
            self.model, self.report = load_speaker_encoder(resolve_weights(weights, flag="--speaker-encoder"))
            self.model.requires_grad_(False)
        self.model.to(self.device).eval()

    def judge_info(self) -> dict:
        info = {"judge": f"spksim_{self.backend}", "weights": self.weights or "resemblyzer/pretrained.pt",
                "weights_report": self.report.summary(), "torch": torch.__version__}
        if self.backend == "ge2e":
            info.update(resemblyzer=package_version("resemblyzer"), vad=resolve_vad(self.model.config.vad))
        return info

    @torch.inference_mode()
    def embed(self, wavs: Sequence[np.ndarray] | np.ndarray, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
        """Mono waveforms (any rate; resampled to 16 kHz) -> unit-length embeddings (B, D) on the CPU."""
        minimum = 400 if self.backend == "wavlm_ecapa" else 1  # WavLM's receptive field
        wavs = as_waveforms(wavs, sample_rate, SAMPLE_RATE, minimum, what=f"speaker judge ({self.backend})")
        out = []
        for start in range(0, len(wavs), self.batch_size):
            chunk = wavs[start : start + self.batch_size]
            if self.backend == "ge2e":
                emb = self.model.embed(chunk)
            else:
                lengths = torch.tensor([len(w) for w in chunk])
                batch = torch.zeros(len(chunk), int(lengths.max()))
                batch[torch.arange(batch.shape[1]) < lengths[:, None]] = torch.from_numpy(np.concatenate(chunk))
                emb = self.model.embed(batch.to(self.device), lengths.to(self.device))
            out.append(F.normalize(emb.float(), dim=-1).cpu())
        return torch.cat(out)

    def similarity(self, a: Sequence[np.ndarray] | torch.Tensor, b: Sequence[np.ndarray] | torch.Tensor,
                   sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
        """Paired cosines (B,): ``a[i]`` against ``b[i]``; each side waveforms or embeddings (B, D)."""
        ea = a if isinstance(a, torch.Tensor) else self.embed(a, sample_rate)
        eb = b if isinstance(b, torch.Tensor) else self.embed(b, sample_rate)
        if ea.shape != eb.shape:
            raise SpeechJudgeError(f"speaker similarity: {tuple(ea.shape)} embeddings against {tuple(eb.shape)}")
        return F.cosine_similarity(ea, eb, dim=-1)
