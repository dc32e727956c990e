"""Speaker embedding: WavLM-Large hidden states -> ECAPA-TDNN -> 256-d (UniSpeech speaker verification).

Shape legend: B batch, N samples at 16 kHz, T = WavLM frames (50 Hz, 400-sample window, hop 320),
D WavLM width (1024), S = layers + 1 hidden states (25), E embedding width (256).

    wav (B, N) -> per-utterance standardisation (s3prl's ``F.layer_norm(wav, wav.shape)``)
      -> WavLM: conv feature extractor (B, T, 512) -> projection (B, T, D) -> + positional conv
      -> 24 pre-norm layers with gated relative position bias -> final layer norm
      -> hidden states: the input of each layer and the final normed output (S of (B, T, D)),
         mixed with softmax(feature_weight) -> (B, D, T)
      -> ECAPA-TDNN head (ecapa.py) -> (B, E)

WavLM is transformers' ``WavLMModel`` built from a ``WavLMConfig`` (never from a hub); its layers
are run here one by one so the 25 states are exactly s3prl's (its hooks take each layer's input,
and the encoder's layer-normed output) whatever transformers version is installed.
"""

import warnings
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F
from transformers import WavLMConfig, WavLMModel

from avcodecs.speaker.ecapa import EcapaTdnn
from engine.errors import UserFacingError


class SpeakerAudioError(UserFacingError, ValueError):
    pass


@dataclass
class SpeakerEncoderConfig:
    """Defaults: WavLM-Large + the ECAPA-TDNN head of ``wavlm_large_finetune.pth``."""

    # WavLM-Large (microsoft/wavlm-large): layer-norm conv extractor, pre-norm transformer
    hidden_size: int = 1024
    layers: int = 24
    heads: int = 16
    intermediate_size: int = 4096
    conv_dim: int = 512  # all 7 conv layers (kernels 10,3,3,3,3,2,2, strides 5,2,2,2,2,2,2)
    pos_conv_kernel: int = 128
    pos_conv_groups: int = 16
    num_buckets: int = 320
    max_bucket_distance: int = 800
    # ECAPA-TDNN head
    channels: int = 512
    embed_dim: int = 256
    attention_channels: int = 128
    se_channels: int = 128
    res2_scale: int = 8

    def wavlm_config(self) -> WavLMConfig:
        return WavLMConfig(
            hidden_size=self.hidden_size, num_hidden_layers=self.layers, num_attention_heads=self.heads,
            intermediate_size=self.intermediate_size, conv_dim=(self.conv_dim,) * 7,
            conv_kernel=(10, 3, 3, 3, 3, 2, 2), conv_stride=(5, 2, 2, 2, 2, 2, 2), conv_bias=False,
            feat_extract_norm="layer", do_stable_layer_norm=True,
            num_conv_pos_embeddings=self.pos_conv_kernel, num_conv_pos_embedding_groups=self.pos_conv_groups,
            num_buckets=self.num_buckets, max_bucket_distance=self.max_bucket_distance,
            hidden_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, feat_proj_dropout=0.0,
            layerdrop=0.0, layer_norm_eps=1e-5)


class SpeakerEncoder(nn.Module):
    sample_rate = 16_000

    def __init__(self, config: SpeakerEncoderConfig | None = None):
        super().__init__()
        self.config = config = config or SpeakerEncoderConfig()
        wavlm_config = config.wavlm_config()
        self.wavlm = WavLMModel(wavlm_config)
        self.head = EcapaTdnn(config.hidden_size, config.layers + 1, config.channels, config.embed_dim,
                              config.attention_channels, config.se_channels, config.res2_scale)
        self.conv_geometry = list(zip(wavlm_config.conv_kernel, wavlm_config.conv_stride))  # (kernel, stride)
        self.min_samples = self._receptive_field()

    def _receptive_field(self) -> int:
        """Fewest samples that give one WavLM frame (400 at 16 kHz)."""
        n = 1
        for kernel, stride in reversed(self.conv_geometry):
            n = (n - 1) * stride + kernel
        return n

    def num_frames_of(self, num_samples):
        """WavLM frames for ``num_samples`` (int or tensor): only windows inside the audio count."""
        for kernel, stride in self.conv_geometry:
            num_samples = (num_samples - kernel) // stride + 1
        return num_samples

    def mixed_hidden_states(self, wav: torch.Tensor, frame_mask: torch.Tensor | None) -> torch.Tensor:
        """sum_s softmax(feature_weight)_s * h_s over s3prl's S hidden states h_s (B, T, D): each
        layer's input, then the final layer-normed output."""
        weights = self.head.layer_weights()  # (S,)
        features = self.wavlm.feature_extractor(wav).transpose(1, 2)  # (B, T, 512)
        x, _ = self.wavlm.feature_projection(features)  # (B, T, D)
        if frame_mask is not None:
            x = x * frame_mask[..., None].to(x.dtype)  # padded frames are zero before the positional conv
        encoder = self.wavlm.encoder
        x = x + encoder.pos_conv_embed(x)
        mixed = weights[0] * x
        position_bias = None
        last = len(encoder.layers) - 1
        with warnings.catch_warnings():
            # transformers passes a bool key-padding mask next to the float position bias
            warnings.filterwarnings("ignore", message="Support for mismatched key_padding_mask")
            for i, layer in enumerate(encoder.layers):
                x, position_bias = layer(x, attention_mask=frame_mask, position_bias=position_bias)[:2]
                mixed = mixed + weights[i + 1] * (encoder.layer_norm(x) if i == last else x)
        return mixed  # (B, T, D)

    def embed(self, wav: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """wav (B, N) at 16 kHz -> speaker embedding (B, E).

        lengths (B,): real samples per row when the batch is right-padded; each row then gets the
        embedding it would get alone. Without it every sample counts (zeros included).
        """
        if wav.dim() == 1:
            wav = wav[None]
        if wav.shape[-1] < self.min_samples:
            raise SpeakerAudioError(f"speaker encoder needs at least {self.min_samples} samples "
                                    f"({self.min_samples / self.sample_rate * 1000:.0f} ms) at 16 kHz, "
                                    f"got {wav.shape[-1]}")
        if lengths is None:
            frame_mask = None
            wav = F.layer_norm(wav, wav.shape[-1:])  # s3prl: zero mean, unit variance per utterance
        else:
            lengths = lengths.to(wav.device)
            if bool((lengths < self.min_samples).any()):
                raise SpeakerAudioError(f"speaker encoder needs at least {self.min_samples} samples per item "
                                        f"at 16 kHz, got lengths {lengths.tolist()}")
            sample_mask = torch.arange(wav.shape[-1], device=wav.device) < lengths[:, None]  # (B, N)
            wav = _standardise(wav, sample_mask)
            frame_lengths = self.num_frames_of(lengths)  # (B,)
            num_frames = self.num_frames_of(wav.shape[-1])
            frame_mask = torch.arange(num_frames, device=wav.device) < frame_lengths[:, None]  # (B, T)
        mixed = self.mixed_hidden_states(wav, frame_mask)  # (B, T, D)
        return self.head(mixed.transpose(1, 2), frame_mask)  # (B, E)

    forward = embed


def _standardise(wav: torch.Tensor, mask: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """``F.layer_norm`` over each row's real samples; padding stays zero. wav, mask (B, N)."""
    m = mask.to(wav.dtype)
    n = m.sum(-1, keepdim=True)
    mean = (wav * m).sum(-1, keepdim=True) / n
    var = (((wav - mean) * m) ** 2).sum(-1, keepdim=True) / n
    return (wav - mean) * torch.rsqrt(var + eps) * m
