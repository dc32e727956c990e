"""DNSMOS P.835 (SIG, BAK, OVRL) and P.808 MOS with the ONNX models the ``speechmos`` wheel carries.

Shape legend: S 9.01 s segments over all utterances, L = 144160 samples per segment (16 kHz),
F = 900 mel frames, M = 120 mel bands.

    wav (N,) at 16 kHz -> doubled (appended to itself) until N >= L
      -> segments of L samples starting every second: int(floor(N / 16000) - 9.01) + 1 of them
      -> P.835 net on the raw segment (S, L) -> (S, 3) raw SIG/BAK/OVRL -> cubic polyfit per score
      -> P.808 net on the power mel of the segment minus its last 160 samples (S, F, M):
         n_fft 321 Hann, hop 160, centred with zero padding, Slaney mel 120, dB re. the segment's
         max (floor -80 dB), then (dB + 40) / 40
      -> each score averaged over the utterance's segments

This is speechmos 0.0.1's ``dnsmos.run`` (itself Microsoft's dnsmos_local.py), with two changes
that do not alter a score: speechmos's modules are never imported (they import librosa and
requests; only the .onnx files are used), and the segments of all utterances go through each
net in batches instead of one by one. The mel matches librosa >= 0.10 (zero-padded frames).
``personalized=True`` uses the personalised P.835 model (pDNSMOS) and its polyfit.

Levels: dnsmos_local.py reads a file, resamples it to 16 kHz and scores the samples as they come,
neither clipped nor scaled. Resampling full-scale speech puts inter-sample peaks just over 1 (Piper's
22.05 kHz wavs at peak 1.0 reach 1.007 at 16 kHz), so samples over 1 are scored unchanged too.
(speechmos refuses arrays outside [-1, 1], yet scores the same audio given as a file.) Only a peak
above ``MAX_PEAK`` is refused: no resampling makes that, the samples are in other units (int16).
"""

import hashlib
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from engine.hub import resolve_weights
from engine.mel import hz_to_mel, mel_to_hz
from evaluation.speech_common import (
    SpeechJudgeError,
    as_waveforms,
    package_dir,
    package_version,
    require,
    utterance_error,
)

SAMPLE_RATE = 16_000
INPUT_SECONDS = 9.01
SEGMENT = int(INPUT_SECONDS * SAMPLE_RATE)  # 144160
N_FFT, HOP, N_MELS = 321, 160, 120
MAX_PEAK = 2.0  # 6 dB over full scale: far above any resampling overshoot of a [-1, 1] signal

# Cubic (personalised) or quadratic polynomials mapping raw net outputs to MOS, as speechmos.
POLY = {
    False: {"sig": [-0.08397278, 1.22083953, 0.0052439], "bak": [-0.13166888, 1.60915514, -0.39604546],
            "ovrl": [-0.06766283, 1.11546468, 0.04602535]},
    True: {"sig": [-0.01019296, 0.02751166, 1.19576786, -0.24348726],
           "bak": [-0.04976499, 0.44276479, -0.1644611, 0.96883132],
           "ovrl": [-0.00533021, 0.005101, 1.18058466, -0.11236046]},
}


@dataclass
class DnsmosScore:
    sig: float
    bak: float
    ovrl: float
    p808: float
    segments: int  # 9.01 s windows averaged (after doubling a short clip)

    def as_dict(self) -> dict:
        return asdict(self)


def segment_bounds(num_samples: int) -> list[tuple[int, int]]:
    """(start, end) of each scored window of a clip already doubled to >= SEGMENT samples; the
    float expressions are speechmos's, so float rounding keeps or drops the same windows."""
    hops = int(np.floor(num_samples / SAMPLE_RATE) - INPUT_SECONDS) + 1
    bounds = [(int(i * SAMPLE_RATE), int((i + INPUT_SECONDS) * SAMPLE_RATE)) for i in range(hops)]
    return [(a, b) for a, b in bounds if min(b, num_samples) - a >= SEGMENT]


def tile_short(wav: np.ndarray) -> np.ndarray:
    """Append the clip to itself until it reaches one window (speechmos doubles, it does not pad)."""
    repeats = 2 ** max(0, math.ceil(math.log2(SEGMENT / len(wav))))
    return np.tile(wav, repeats)


def librosa_mel_filters(sample_rate: int, n_fft: int, n_mels: int) -> torch.Tensor:
    """librosa.filters.mel (Slaney scale and norm) with librosa's bin frequencies (rfftfreq, which
    for an odd n_fft stops short of Nyquist). (M, n_fft // 2 + 1) float32."""
    edges = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(sample_rate / 2), n_mels + 2))
    bins = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    left, centre, right = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    tri = np.maximum(0.0, np.minimum((bins - left) / (centre - left), (right - bins) / (right - centre)))
    return torch.from_numpy((tri * (2.0 / (right - left))).astype(np.float32))


class Dnsmos:
    """DNSMOS judge. ``models_dir``: a folder holding ``dnsmos_models/`` and ``pdnsmos_models/``
    (default: the installed speechmos package's)."""

    def __init__(self, models_dir: str | Path | None = None, personalized: bool = False, batch_size: int = 8,
                 threads: int = 0):
        ort = require("onnxruntime", "pip install onnxruntime")
        if models_dir is None:
            root = package_dir("speechmos", "pip install speechmos")
        else:
            root = resolve_weights(models_dir, flag="--dnsmos-models")
        self.personalized = personalized
        self.batch_size = batch_size
        self.p835_path = root / ("pdnsmos_models" if personalized else "dnsmos_models") / "sig_bak_ovr.onnx"
        self.p808_path = root / "dnsmos_models" / "model_v8.onnx"
        for path in (self.p835_path, self.p808_path):
            if not path.is_file():
                raise SpeechJudgeError(f"{path}: DNSMOS model file missing")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        providers = ["CPUExecutionProvider"]
        self.p835 = ort.InferenceSession(str(self.p835_path), options, providers=providers)
        self.p808 = ort.InferenceSession(str(self.p808_path), options, providers=providers)
        self.window = torch.hann_window(N_FFT, periodic=True)
        self.filters = librosa_mel_filters(SAMPLE_RATE, N_FFT, N_MELS)

    def judge_info(self) -> dict:
        return {"judge": "dnsmos_p835_personalized" if self.personalized else "dnsmos_p835",
                "speechmos": package_version("speechmos"), "onnxruntime": package_version("onnxruntime"),
                "p835_model": self.p835_path.name, "p835_sha256": _sha256(self.p835_path)[:16],
                "p808_model": self.p808_path.name, "p808_sha256": _sha256(self.p808_path)[:16]}

    def p808_features(self, segments: np.ndarray) -> np.ndarray:
        """(S, L) -> (S, F, M) float32: speechmos's audio_melspec of each segment minus its last hop."""
        x = torch.from_numpy(segments[:, :-HOP])
        spec = torch.stft(x, N_FFT, HOP, window=self.window, center=True, pad_mode="constant",
                          return_complex=True)  # (S, 161, F)
        mel = torch.einsum("mf,sft->stm", self.filters, spec.real**2 + spec.imag**2)  # (S, F, M)
        db = 10.0 * torch.log10(mel.clamp_min(1e-10))
        db = db - db.amax(dim=(1, 2), keepdim=True)  # ref = the segment's max power
        db = db.clamp_min(-80.0)  # top_db
        return ((db + 40.0) / 40.0).numpy()

    def _run(self, segments: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(S, L) -> raw P.835 (S, 3) and P.808 (S,), in batches of ``batch_size`` segments."""
        p835, p808 = [], []
        for start in range(0, len(segments), self.batch_size):
            chunk = segments[start : start + self.batch_size]
            p835.append(self.p835.run(None, {"input_1": chunk})[0])
            p808.append(self.p808.run(None, {"input_1": self.p808_features(chunk)})[0][:, 0])
        return np.concatenate(p835), np.concatenate(p808)

    def score(self, wavs: Sequence[np.ndarray] | np.ndarray, sample_rate: int = SAMPLE_RATE) -> list[DnsmosScore]:
        """Mono waveforms (any rate; resampled to 16 kHz), full scale 1.0 -> one score each. Peaks over 1
        (resampling's) are scored as they are (module docstring); a peak over ``MAX_PEAK`` is refused."""
        wavs = as_waveforms(wavs, sample_rate, SAMPLE_RATE, min_samples=1, what="DNSMOS")
        for i, wav in enumerate(wavs):
            peak = float(np.abs(wav).max())
            if peak > MAX_PEAK:
                raise utterance_error("DNSMOS", i, f"samples far outside [-1, 1] (peak {peak:.3f}); "
                                                   "scale the waveform to full scale 1.0 first")
        segments, owner = [], []
        for i, wav in enumerate(wavs):
            wav = tile_short(wav) if len(wav) < SEGMENT else wav
            for a, _ in segment_bounds(len(wav)):
                segments.append(wav[a : a + SEGMENT])
                owner.append(i)
        raw, p808 = self._run(np.stack(segments).astype(np.float32))  # (S, 3), (S,)
        poly = POLY[self.personalized]
        mapped = np.stack([np.polyval(poly[k], raw[:, j].astype(np.float64)) for j, k in
                           enumerate(("sig", "bak", "ovrl"))], axis=1)  # (S, 3)
        owner = np.array(owner)
        counts = np.bincount(owner, minlength=len(wavs))
        sums = np.stack([np.bincount(owner, weights=mapped[:, j], minlength=len(wavs)) for j in range(3)], axis=1)
        p808_sum = np.bincount(owner, weights=p808.astype(np.float64), minlength=len(wavs))
        return [DnsmosScore(sig=float(s[0] / n), bak=float(s[1] / n), ovrl=float(s[2] / n), p808=float(p / n),
                            segments=int(n)) for s, p, n in zip(sums, p808_sum, counts)]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
