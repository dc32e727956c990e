"""UTMOS22 "strong learner" (Saeki et al., Interspeech 2022), inference: 16 kHz speech -> one MOS.

Shape legend: B batch, N samples (16 kHz), T frames (50 Hz), D SSL width (768), G domain and J judge
embedding widths (128 each), R BLSTM hidden size per direction (512), P projection width (2048).

    wav (B, N) -> wav2vec 2.0 Base (B, T, D)
      -> concat [SSL features, domain embedding (G), listener embedding (J)]   (B, T, D + G + J)
      -> BLSTM (B, T, 2R) -> Linear(2R, P) -> ReLU -> Linear(P, 1)             (B, T, 1)
      -> mean over real frames * 2 + 3                                          (B,)

Inference uses one domain and one listener for every utterance: the released demo (and the
``utmos`` package, SpeechMOS, UTMOS-PyTorch) scores with domain 0 ("main", the VMC'22 main track)
and listener 288, the UTMOS authors' choice; frame scores live in [-1, 1] and map to MOS by * 2 + 3.
The phoneme encoder of the paper's full strong learner is absent from the released checkpoint.

Module names follow the released PyTorch Lightning checkpoint's ``state_dict`` exactly
(``feature_extractors.0.ssl_model.*`` the fairseq wav2vec 2.0, ``feature_extractors.1.embedding``,
``output_layers.0.{judge_embedding, decoder_rnn}``, ``output_layers.1.net.{0,3}``), so the file loads
without renaming.

Padding: with ``lengths`` every step that mixes time (the SSL model, the BLSTM through a packed
sequence, the frame mean) sees only real frames: a padded batch scores each row as it scores alone.
"""

from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from avcodecs.ssl.inputs import check_audio
from avcodecs.ssl.masks import masked_mean
from avcodecs.ssl.wav2vec2 import Wav2Vec2, Wav2Vec2Config


@dataclass
class UTMOSConfig:
    """Defaults: the released UTMOS22 strong checkpoint (``epoch=3-step=7459.ckpt``)."""

    ssl: Wav2Vec2Config = field(default_factory=Wav2Vec2Config)
    num_domains: int = 3  # main, ood, external
    domain_dim: int = 128
    num_judges: int = 3000
    judge_dim: int = 128
    rnn_hidden: int = 512
    proj_hidden: int = 2048
    domain_id: int = 0  # the "main" domain the demo scores with
    judge_id: int = 288  # the listener the demo scores with

    @classmethod
    def tiny(cls) -> "UTMOSConfig":
        return cls(ssl=Wav2Vec2Config.tiny(), num_domains=3, domain_dim=8, num_judges=300, judge_dim=8,
                   rnn_hidden=16, proj_hidden=32)


# The four containers below only give the parameters their released names; the forward pass is
# UTMOS22Strong.frame_scores.
class SSLFeatures(nn.Module):
    def __init__(self, cfg: Wav2Vec2Config):
        super().__init__()
        self.ssl_model = Wav2Vec2(cfg)


class DomainEmbedding(nn.Module):
    def __init__(self, num_domains: int, dim: int):
        super().__init__()
        self.embedding = nn.Embedding(num_domains, dim)


class ListenerConditioner(nn.Module):
    """UTMOS's LDConditioner: the listener embedding and the BLSTM over the concatenated features."""

    def __init__(self, input_dim: int, judge_dim: int, num_judges: int, hidden: int):
        super().__init__()
        self.judge_embedding = nn.Embedding(num_judges, judge_dim)
        self.decoder_rnn = nn.LSTM(input_dim + judge_dim, hidden, num_layers=1, batch_first=True, bidirectional=True)


class Projection(nn.Module):
    def __init__(self, input_dim: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(input_dim, hidden), nn.ReLU(), nn.Dropout(0.3), nn.Linear(hidden, 1))


class UTMOS22Strong(nn.Module):
    sample_rate = 16_000

    def __init__(self, config: UTMOSConfig | None = None):
        super().__init__()
        self.config = cfg = config or UTMOSConfig()
        self.feature_extractors = nn.ModuleList([SSLFeatures(cfg.ssl),
                                                 DomainEmbedding(cfg.num_domains, cfg.domain_dim)])
        self.output_layers = nn.ModuleList([
            ListenerConditioner(cfg.ssl.embed_dim + cfg.domain_dim, cfg.judge_dim, cfg.num_judges, cfg.rnn_hidden),
            Projection(2 * cfg.rnn_hidden, cfg.proj_hidden)])

    @property
    def ssl(self) -> Wav2Vec2:
        return self.feature_extractors[0].ssl_model

    @property
    def min_samples(self) -> int:
        return self.ssl.feature_extractor.receptive_field

    def frame_scores(self, wav: torch.Tensor, lengths: torch.Tensor | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """wav (B, N) -> (per-frame scores in the model's [-1, 1] scale (B, T), frame mask (B, T) or None)."""
        cfg = self.config
        x, frame_mask = self.ssl(wav, lengths)  # (B, T, D)
        B, T, _ = x.shape
        conditioner = self.output_layers[0]
        domain = self.feature_extractors[1].embedding.weight[cfg.domain_id]  # (G,)
        judge = conditioner.judge_embedding.weight[cfg.judge_id]  # (J,)
        x = torch.cat([x, torch.cat([domain, judge]).to(x.dtype).expand(B, T, -1)], dim=-1)  # (B, T, D + G + J)
        if frame_mask is None:
            h = conditioner.decoder_rnn(x)[0]  # (B, T, 2R)
        else:  # packed, so the backward direction starts at each row's last real frame
            packed = pack_padded_sequence(x, frame_mask.sum(1).cpu(), batch_first=True, enforce_sorted=False)
            h = pad_packed_sequence(conditioner.decoder_rnn(packed)[0], batch_first=True, total_length=T)[0]
        return self.output_layers[1].net(h)[..., 0], frame_mask  # (B, T)

    def forward(self, wav: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """wav (B, N) of 16 kHz mono speech (right-padded; ``lengths`` (B,) real samples) -> MOS (B,)."""
        wav, lengths = check_audio(wav, lengths, self.min_samples, "UTMOS22")
        scores, frame_mask = self.frame_scores(wav, lengths)
        return masked_mean(scores, frame_mask) * 2 + 3

    score = forward
