"""Training objective of the RVQ codec: reconstruction + VQ losses, optionally adversarial.

One module, one loss, one optimizer (the shared trainer's). The GAN fits in it like this:
  * discriminator loss on the *detached* reconstruction: its gradient reaches only the critics;
  * generator adversarial + feature-matching losses through the critics called with *detached
    parameters* (torch.func.functional_call): their gradient reaches only the codec.
So one backward of the sum gives each network exactly the gradient of its own loss, and the
single AdamW steps both (one learning-rate schedule and one clip norm for the two, which is how
DAC trains them too: same lr and schedule for generator and critics).

Shape legend: B batch, N samples (a multiple of the hop), D latent dim, T frames, Q levels.
"""

from dataclasses import dataclass

import torch
from torch import nn

from avcodecs.maskgct.codebooks import CodebookMaintenance
from avcodecs.maskgct.codec import MaskGCTCodec
from avcodecs.maskgct.config import MaskGCTCodecConfig
from avcodecs.maskgct.data_init import mean_spectrum_head_, unit_rms_convolutions_
from avcodecs.maskgct.discriminators import Discriminators, adversarial_losses
from avcodecs.maskgct.mel import MultiScaleMelLoss
from avcodecs.maskgct.vocos import ISTFTHead
from engine.errors import ConfigError


@dataclass
class CodecLossConfig:
    # reconstruction (DAC's multi-scale mel loss; weight 15 as in DAC)
    mel_weight: float = 15.0
    mel_windows: tuple[int, ...] = (32, 64, 128, 256, 512, 1024, 2048)
    mel_bins: tuple[int, ...] = (5, 10, 20, 40, 80, 160, 320)
    # vector quantization (the released codec's settings)
    commitment_weight: float = 0.25
    codebook_weight: float = 1.0
    quantizer_dropout: float = 0.5  # share of items trained on a random prefix of the levels
    kmeans_init: bool = True
    kmeans_iters: int = 10
    kmeans_frames: int = 4096
    dead_after: int | None = 200  # training forwards without use before a code is restarted
    # a codec trained from scratch first sets its encoder's layer scales and its head's mean spectrum
    # from a batch of training audio (avcodecs.maskgct.data_init: without it the codebooks can collapse)
    data_init: bool = True
    data_init_clips: int = 8
    # train the decoder alone on the codes of a trained codec (task.init_weights): the encoder and the
    # codebooks stay as loaded, so every token (and a model trained on them) stays valid
    decoder_only: bool = False
    # the integrated-phase head's advance per hop against the target's (codec vocos_phase=integrated)
    phase_advance_weight: float = 0.0
    # adversarial (off: reconstruction + VQ only)
    adversarial: bool = False
    adversarial_weight: float = 1.0
    feature_matching_weight: float = 2.0
    periods: tuple[int, ...] = (2, 3, 5, 7, 11)
    stft_sizes: tuple[int, ...] = (2048, 1024, 512)
    period_channels: int = 32
    stft_channels: int = 32

    def __post_init__(self):
        if self.data_init_clips < 1:
            raise ConfigError(f"task.loss.data_init_clips={self.data_init_clips}: must be >= 1")


def phase_advance_loss(head: ISTFTHead, phase_output: torch.Tensor, wav: torch.Tensor) -> torch.Tensor:
    """Integrated-phase head: how far each bin's predicted advance over a hop (as a deviation from
    its centre frequency's) is from the target's, on the circle (1 - cos, so 2 pi apart is no error),
    weighted by the target's magnitude: the bins a harmonic sits in count, silence does not.
    phase_output (B, F, T), wav (B, T * hop) -> scalar."""
    target = head.istft.analyse(wav)  # (B, F, T) complex
    angle = target.angle()
    deviation = angle[..., 1:] - angle[..., :-1] - head.bin_advance.float()  # (B, F, T - 1)
    weight = target[..., 1:].abs()
    error = 1 - torch.cos(phase_output[..., 1:] - deviation)
    return (weight * error).sum() / weight.sum().clamp(min=1e-8)


class CodecObjective(nn.Module):
    def __init__(self, codec_cfg: MaskGCTCodecConfig, loss_cfg: CodecLossConfig):
        super().__init__()
        self.loss_cfg = cfg = loss_cfg
        if cfg.phase_advance_weight and codec_cfg.vocos_phase != "integrated":
            raise ConfigError("task.loss.phase_advance_weight scores the integrated head's phase advances: "
                             f"it needs codec.config.vocos_phase=integrated (got {codec_cfg.vocos_phase})")
        self.codec = MaskGCTCodec(codec_cfg)
        self.mel_loss = MultiScaleMelLoss(codec_cfg.sample_rate, cfg.mel_windows, cfg.mel_bins)
        self.codebooks = CodebookMaintenance(codec_cfg.num_levels, codec_cfg.codebook_size, codec_cfg.codebook_dim,
                                             codec_cfg.latent_dim, cfg.kmeans_init, cfg.kmeans_iters,
                                             cfg.kmeans_frames, cfg.dead_after)
        self.discriminators = Discriminators(cfg.periods, cfg.stft_sizes, cfg.period_channels,
                                             cfg.stft_channels) if cfg.adversarial else None
        if cfg.decoder_only:  # the trainer optimises only what requires a gradient
            self.codec.encoder.requires_grad_(False)
            self.codec.quantizer.requires_grad_(False)

    @torch.no_grad()
    def initialise_from_data(self, wav: torch.Tensor) -> None:
        """Data-dependent init of a fresh codec from a batch of training audio (B, N): every encoder
        convolution at unit output rms, the head's log-magnitudes at the batch's mean spectrum."""
        wav = self.codec.pad_to_hop(wav)
        unit_rms_convolutions_(self.codec.encoder, lambda: self.codec.encoder(wav[:, None]))
        mean_spectrum_head_(self.codec.decoder.model.head, wav)

    def sample_kept_levels(self, batch: int, device: torch.device) -> torch.Tensor:
        """Quantizer dropout: a ``quantizer_dropout`` share of items keeps a uniform random
        1..Q levels, the rest all Q. -> (B,) int."""
        levels = self.codec.num_levels
        dropped = torch.rand(batch, device=device) < self.loss_cfg.quantizer_dropout
        random_levels = torch.randint(1, levels + 1, (batch,), device=device)
        return torch.where(dropped, random_levels, levels)

    def reconstruct(self, wav: torch.Tensor):
        """(B, N) -> reconstruction (B, N), the head's phase output (B, F, T), RVQ output (codes,
        VQ losses), detached upkeep logs."""
        upkeep = self.training and not self.loss_cfg.decoder_only
        logs = self.codebooks.before_forward(self.codec.quantizer) if upkeep else {}
        keep = self.sample_kept_levels(wav.shape[0], wav.device) if self.training else None
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.loss_cfg.decoder_only):
            latent = self.codec.encoder(wav[:, None])  # (B, D, T)
            rvq = self.codec.quantizer(latent, keep)
        if upkeep:
            logs |= self.codebooks.after_forward(latent, rvq)
        vocos = self.codec.decoder.model
        log_magnitude, phase_output = vocos.head.spectrum(vocos.backbone(rvq.quantized))  # (B, F, T) each
        recon = vocos.head.synthesise(log_magnitude, phase_output)  # (B, N)
        return recon, phase_output, rvq, logs

    def losses(self, batch: dict) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """-> ({"generator": loss of the codec, "discriminator": loss of the critics (0 when off)},
        detached logs). Each loss has a gradient only into its own network's parameters."""
        cfg = self.loss_cfg
        wav = self.codec.pad_to_hop(batch["audio"])  # (B, N), N a whole number of frames
        recon, phase_output, rvq, logs = self.reconstruct(wav)
        mel = self.mel_loss(recon, wav)
        commitment, codebook = rvq.commitment_loss.sum(), rvq.codebook_loss.sum()
        generator = cfg.mel_weight * mel + cfg.commitment_weight * commitment + cfg.codebook_weight * codebook
        if cfg.phase_advance_weight:
            logs["phase_advance"] = advance = phase_advance_loss(self.codec.decoder.model.head, phase_output, wav)
            generator = generator + cfg.phase_advance_weight * advance
        discriminator = torch.zeros((), device=wav.device)
        logs |= {"mel": mel, "commitment": commitment, "codebook": codebook}
        if self.discriminators is not None and self.training:
            discriminator, adversarial, matching = adversarial_losses(self.discriminators, wav, recon)
            generator = generator + cfg.adversarial_weight * adversarial + cfg.feature_matching_weight * matching
            logs |= {"adversarial": adversarial, "feature_matching": matching, "discriminator": discriminator}
        return {"generator": generator, "discriminator": discriminator}, {k: v.detach() for k, v in logs.items()}

    def forward(self, batch: dict):
        losses, logs = self.losses(batch)
        return losses["generator"] + losses["discriminator"], logs

    def no_weight_decay(self) -> list[str]:
        """Parameters whose scale is meaningful, kept out of weight decay though they have >= 2
        dims: codebook rows (returned raw), weight-norm gains, Snake frequencies (1 / alpha)."""
        return [n for n, _ in self.named_parameters() if n.endswith(("codebook.weight", "weight_g", "alpha"))]
