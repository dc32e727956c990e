"""GE2E speaker encoder (Resemblyzer's VoiceEncoder, Real-Time-Voice-Cloning's encoder), 16 kHz -> 256-d.

Shape legend: B utterances, N samples at 16 kHz, T mel frames (100 Hz), M mel bands (40),
P partial utterances over the whole batch, L partial length (160 frames = 1.6 s), H LSTM width (256),
E embedding width (256).

    wavs (list of (N_b,)) -> volume to -30 dBFS + VAD trimming (ge2e_audio.py, per utterance)
      -> right-pad to one length -> power mel (B, T, M): 25 ms Hann window, 10 ms hop, centred
         frames with zero padding, Slaney mel (librosa >= 0.10 defaults; no log)
      -> partials: every 77 frames (rate 1.3 per second), the last kept if it covers >= 75 % of
         its 1.6 s (always at least one), gathered from all utterances at once (P, L, M)
      -> 3-layer LSTM M -> H, last hidden state of the top layer (P, H) -> linear -> ReLU
      -> L2 norm (P, E) -> mean over each utterance's partials -> L2 norm (B, E)

Parameter names are those of the released ``pretrained.pt`` (``model_state``), including the GE2E
loss's ``similarity_weight`` / ``similarity_bias``, which the embedding never uses.
Zero-padding a waveform leaves the frames before the padding unchanged (the STFT pads with zeros
anyway), so one padded STFT over the batch gives each utterance the frames it gets alone.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from avcodecs.speaker.ge2e_audio import Ge2eAudioError, preprocess
from engine.mel import mel_filterbank


@dataclass
class Ge2eConfig:
    """Defaults: Resemblyzer's hparams.py and VoiceEncoder.embed_utterance defaults."""

    sample_rate: int = 16_000
    n_mels: int = 40
    window_ms: int = 25
    hop_ms: int = 10
    partial_frames: int = 160
    hidden_size: int = 256
    embed_dim: int = 256
    layers: int = 3
    partials_per_second: float = 1.3  # Resemblyzer's ``rate``
    min_coverage: float = 0.75
    target_dbfs: float = -30.0
    vad: str = "auto"  # "auto" | "webrtc" | "energy" | "none" (ge2e_audio.py)

    @property
    def n_fft(self) -> int:
        return self.sample_rate * self.window_ms // 1000

    @property
    def hop(self) -> int:
        return self.sample_rate * self.hop_ms // 1000

    @property
    def frame_step(self) -> int:
        """Frames between partial starts (77 at rate 1.3); np.round as Resemblyzer."""
        step = int(np.round(self.sample_rate / self.partials_per_second / self.hop))
        if not 0 < step <= self.partial_frames:
            raise Ge2eAudioError(f"partials_per_second={self.partials_per_second}: gives a step of {step} "
                                 f"frames, must be 1..{self.partial_frames}")
        return step


class Ge2eEncoder(nn.Module):
    def __init__(self, config: Ge2eConfig | None = None):
        super().__init__()
        self.config = config = config or Ge2eConfig()
        self.lstm = nn.LSTM(config.n_mels, config.hidden_size, config.layers, batch_first=True)
        self.linear = nn.Linear(config.hidden_size, config.embed_dim)
        # GE2E loss scale and offset (training only); kept so the released state dict loads exactly.
        self.similarity_weight = nn.Parameter(torch.tensor([10.0]))
        self.similarity_bias = nn.Parameter(torch.tensor([-5.0]))
        self.register_buffer("window", torch.hann_window(config.n_fft, periodic=True), persistent=False)
        filters = mel_filterbank(config.sample_rate, config.n_fft, config.n_mels).to(torch.float32)
        self.register_buffer("mel_filters", filters, persistent=False)  # (M, n_fft // 2 + 1)

    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        """Partial utterances (P, L, M) -> L2-normed embeddings (P, E)."""
        _, (hidden, _) = self.lstm(mels)  # hidden (layers, P, H)
        raw = F.relu(self.linear(hidden[-1]))  # (P, E)
        return raw / raw.norm(dim=1, keepdim=True).clamp_min(1e-12)

    def mel(self, wav: torch.Tensor) -> torch.Tensor:
        """(B, N) -> power mel (B, T, M), T = 1 + N // hop (librosa.feature.melspectrogram defaults)."""
        spec = torch.stft(wav, self.config.n_fft, self.config.hop, window=self.window, center=True,
                          pad_mode="constant", return_complex=True)  # (B, F, T)
        power = spec.real**2 + spec.imag**2
        return torch.einsum("mf,bft->btm", self.mel_filters, power)

    def partial_counts(self, num_samples: torch.Tensor) -> torch.Tensor:
        """Partials per utterance (B,) from its length in samples (Resemblyzer's compute_partial_slices)."""
        c, step = self.config, self.config.frame_step
        num_frames = torch.div(num_samples + 1 + c.hop - 1, c.hop, rounding_mode="floor")  # ceil((n + 1) / hop)
        steps = (num_frames - c.partial_frames + step + 1).clamp_min(1)
        count = torch.div(steps + step - 1, step, rounding_mode="floor")  # len(range(0, steps, step))
        last_start = (count - 1) * step * c.hop  # in samples
        coverage = (num_samples - last_start) / (c.partial_frames * c.hop)
        return count - ((coverage < c.min_coverage) & (count > 1)).long()

    def embed_preprocessed(self, wavs: Sequence[torch.Tensor]) -> torch.Tensor:
        """Already normalised and trimmed 16 kHz waveforms -> utterance embeddings (B, E)."""
        c, step = self.config, self.config.frame_step
        device = self.mel_filters.device
        lengths = torch.tensor([len(w) for w in wavs], device=device)  # (B,)
        counts = self.partial_counts(lengths)  # (B,)
        needed = int(max(lengths.max(), ((counts.max() - 1) * step + c.partial_frames) * c.hop))
        batch = torch.zeros(len(wavs), needed, device=device)
        mask = torch.arange(needed, device=device) < lengths[:, None]  # (B, needed)
        batch[mask] = torch.cat([torch.as_tensor(w, dtype=torch.float32, device=device) for w in wavs])
        mels = self.mel(batch)  # (B, T, M)
        owner = torch.repeat_interleave(torch.arange(len(wavs), device=device), counts)  # (P,)
        first = torch.cumsum(counts, 0) - counts  # (B,) index of each utterance's first partial
        start = (torch.arange(len(owner), device=device) - first[owner]) * step  # (P,) in frames
        frames = start[:, None] + torch.arange(c.partial_frames, device=device)  # (P, L)
        partials = self(mels[owner[:, None], frames])  # (P, E)
        summed = torch.zeros(len(wavs), partials.shape[1], device=device).index_add_(0, owner, partials)
        mean = summed / counts[:, None]  # (B, E)
        return mean / mean.norm(dim=1, keepdim=True).clamp_min(1e-12)

    @torch.inference_mode()
    def embed(self, wavs: Sequence[np.ndarray | torch.Tensor] | torch.Tensor, preprocess_audio: bool = True
              ) -> torch.Tensor:
        """A list of 16 kHz mono waveforms (each (N_b,), any lengths) -> embeddings (B, E), float32.

        preprocess_audio: Resemblyzer's volume normalisation and VAD trimming (``preprocess_wav``);
        off, the waveforms go to the mel frontend as given."""
        if isinstance(wavs, (torch.Tensor, np.ndarray)) and wavs.ndim == 1:
            wavs = [wavs]
        arrays = [np.asarray(w.detach().cpu() if isinstance(w, torch.Tensor) else w, dtype=np.float32)
                  for w in wavs]
        if not arrays:
            raise Ge2eAudioError("GE2E embed: no utterances given")
        for i, a in enumerate(arrays):
            if a.ndim != 1:
                raise Ge2eAudioError(f"utterance {i}: expected a mono waveform (N,), got shape {a.shape}")
            if not np.isfinite(a).all():
                raise Ge2eAudioError(f"utterance {i}: waveform holds NaN or infinite samples")
        if preprocess_audio:
            arrays = [preprocess(a, self.config.target_dbfs, self.config.vad) for a in arrays]
        return self.embed_preprocessed([torch.from_numpy(a) for a in arrays])
