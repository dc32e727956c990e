"""Training objective of WhisperX-VAE: multi-scale mel reconstruction + KL to N(0, I), optionally
adversarial (the codec layer's critics, wired exactly as ``avcodecs.maskgct.objective.CodecObjective``
wires them: one loss, one optimizer, each network's gradient kept to its own loss).

Shape legend: B batch, N samples at 24 kHz (a whole number of 960-sample frames), T = N / 960
latent frames, Z latent width (32), Hd hidden width.

    wav (B, N) -> codec.bottleneck_input -> (B, Hd, T) -> vae.in_proj -> mean, log-scale (B, Z, T)
        training: latent = mean + exp(log-scale) * eps;  eval: latent = mean (what encode returns)
    latent -> codec.decode -> recon (B, N)
    loss = mel_weight * mel(recon, wav) + kl_weight * KL + [adversarial + feature matching]
    KL = mean over (B, T) of sum over Z of 0.5 * (mean^2 + scale^2 - 2 log-scale - 1)
"""

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from avcodecs.maskgct.discriminators import Discriminators, adversarial_losses
from avcodecs.maskgct.mel import MultiScaleMelLoss
from avcodecs.whisperx_vae.model import WhisperXVAE, WhisperXVAEConfig
from engine.errors import ConfigError

# exp() of the log-scale stays finite and its gradient alive at the start, when in_proj is random
LOG_SCALE_RANGE = (-20.0, 5.0)


@dataclass
class VAELossConfig:
    # reconstruction (DAC's multi-scale mel loss; weight 15 as in DAC and the MaskGCT codec recipe)
    mel_weight: float = 15.0
    mel_windows: tuple[int, ...] = (32, 64, 128, 256, 512, 1024, 2048)
    mel_bins: tuple[int, ...] = (5, 10, 20, 40, 80, 160, 320)
    # KL of the posterior to N(0, I), per latent frame (summed over Z): small, so reconstruction leads,
    # but enough to keep the latents near unit scale for the flow-matching model that generates them
    kl_weight: float = 1e-2
    # adversarial (off: reconstruction + KL only); the critics of avcodecs.maskgct.discriminators
    adversarial: bool = False
    adversarial_weight: float = 1.0
    feature_matching_weight: float = 2.0
    periods: tuple[int, ...] = (2, 3, 5, 7, 11)
    stft_sizes: tuple[int, ...] = (2048, 1024, 512)
    period_channels: int = 32
    stft_channels: int = 32

    def __post_init__(self):
        if self.kl_weight < 0 or self.mel_weight <= 0:
            raise ConfigError(f"task.loss: mel_weight must be > 0 and kl_weight >= 0 "
                              f"(got {self.mel_weight}, {self.kl_weight})")


def gaussian_kl(mean: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, scale^2) || N(0, 1)) per element (B, Z, T) -> mean over B and T of the sum over Z."""
    kl = 0.5 * (mean.square() + (2 * log_scale).exp() - 2 * log_scale - 1)  # (B, Z, T)
    return kl.sum(1).mean()


class VAEObjective(nn.Module):
    def __init__(self, codec_cfg: WhisperXVAEConfig, loss_cfg: VAELossConfig):
        super().__init__()
        self.loss_cfg = cfg = loss_cfg
        self.codec = WhisperXVAE(codec_cfg)
        self.mel_loss = MultiScaleMelLoss(codec_cfg.sample_rate, cfg.mel_windows, cfg.mel_bins)
        self.discriminators = Discriminators(cfg.periods, cfg.stft_sizes, cfg.period_channels,
                                             cfg.stft_channels) if cfg.adversarial else None

    def posterior(self, wav: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """wav (B, N) -> mean, log-scale (B, Z, T) each."""
        mean, log_scale = self.codec.vae.posterior(self.codec.bottleneck_input(wav))
        return mean, log_scale.clamp(*LOG_SCALE_RANGE)

    def reconstruct(self, wav: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """wav (B, N) -> reconstruction (B, N), posterior mean and log-scale (B, Z, T). A sample of the
        posterior in training, its mean otherwise (as ``codec.encode`` gives it)."""
        mean, log_scale = self.posterior(wav)
        latent = mean + log_scale.exp() * torch.randn_like(mean) if self.training else mean  # (B, Z, T)
        return self.codec.decode(latent.transpose(1, 2)), mean, log_scale

    def losses(self, batch: dict) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """-> ({"generator": loss of the codec, "discriminator": loss of the critics (0 when off)},
        detached logs). Each loss has a gradient only into its own network's parameters."""
        cfg = self.loss_cfg
        wav = batch["audio"]  # (B, N)
        wav = F.pad(wav, (0, self.codec.num_frames(wav.shape[-1]) * self.codec.hop_length - wav.shape[-1]))
        recon, mean, log_scale = self.reconstruct(wav)
        mel, kl = self.mel_loss(recon, wav), gaussian_kl(mean, log_scale)
        generator = cfg.mel_weight * mel + cfg.kl_weight * kl
        logs = {"mel": mel, "kl": kl, "latent_std": mean.std(dim=(0, 2)).mean(),
                "posterior_scale": log_scale.exp().mean()}
        discriminator = torch.zeros((), device=wav.device)
        if self.discriminators is not None and self.training:
            discriminator, adversarial, matching = adversarial_losses(self.discriminators, wav, recon)
            generator = generator + cfg.adversarial_weight * adversarial + cfg.feature_matching_weight * matching
            logs |= {"adversarial": adversarial, "feature_matching": matching, "discriminator": discriminator}
        return {"generator": generator, "discriminator": discriminator}, {k: v.detach() for k, v in logs.items()}

    def forward(self, batch: dict):
        losses, logs = self.losses(batch)
        return losses["generator"] + losses["discriminator"], logs

    def no_weight_decay(self) -> list[str]:
        """Weight-norm gains and Snake frequencies keep their scale: out of weight decay."""
        return [n for n, _ in self.named_parameters() if n.endswith(("weight_g", "alpha"))]
