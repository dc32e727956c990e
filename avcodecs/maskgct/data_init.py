"""Data-dependent initialisation of a codec trained from scratch: one batch of real audio sets the
two scales that the random initialisation gets wrong.

Why. PyTorch's default convolution init shrinks a signal's variance about threefold per layer, so
the DAC encoder's latent comes out about 300 times smaller than its input (rms 0.003 on benchmark
speech). At that scale every Snake is nearly the identity, the encoder is nearly linear, and a linear
map of a waveform points in directions that say nothing about its loudness or spectrum. The quantizer
chooses codes by *direction* (cosine), so the codes of a fresh codec carry no information: the decoder
has nothing to learn from, its gradient to the encoder is noise, and at a high learning rate the
codebooks then collapse (docs/codecs.md, "Codebook collapse"). Measured on the quick benchmark
corpus (500 steps of its 2000-step schedule, 4 seeds each): with the default init and a 300-step
warm-up 2 of 4 seeds collapsed; with this one 0 of 16 (four variants: the encoder alone, with the
head, with the recipe's 100-step warm-up, with a slower start for the encoder). The mel loss at step
500 was 2.07-2.18 as shipped (head included, 100-step warm-up) against 2.51-2.69 for the two healthy
default-init seeds.

What.
  * encoder (LSUV, Mishkin & Matas 2016): every weight-normed convolution, in the order the forward
    pass runs them, has its gain set so that its output has unit rms on the batch. One forward pass
    does it: each convolution's hook rescales its own gain and output before the next layer sees it.
  * inverse-STFT head: the log-magnitude biases start at the batch's mean log-magnitude per bin, in
    the head's own framing, so the first output is speech-shaped noise at speech level instead of
    loud white noise (the default: every bin at magnitude 1).

Shape legend: B batch, N samples (a multiple of the hop), F frequency bins.
"""

import torch
from torch import nn

from avcodecs.dac import WNConv1d
from avcodecs.maskgct.vocos import ISTFTHead

LOG_MAGNITUDE_FLOOR = 1e-5  # digital silence would otherwise pull a bin's mean to -inf


@torch.no_grad()
def unit_rms_convolutions_(module: nn.Module, run, target: float = 1.0) -> None:
    """Layer-sequential unit variance: run ``run()`` (a forward pass of ``module`` on real data) once,
    with every ``WNConv1d`` in ``module`` rescaled as it runs so its output has rms ``target``."""

    def rescale(conv: WNConv1d, _inputs, output: torch.Tensor) -> torch.Tensor:
        if conv.folded is not None:
            raise RuntimeError("data-dependent init needs trainable weight-norm gains, not folded weights")
        factor = target / output.float().pow(2).mean().sqrt().clamp(min=1e-12)
        conv.weight_g.mul_(factor)  # w = g v / ||v||: the output scales with g
        if conv.bias is not None:
            conv.bias.mul_(factor)  # (zero at init) so the whole output scales exactly
        return output * factor

    hooks = [m.register_forward_hook(rescale) for m in module.modules() if isinstance(m, WNConv1d)]
    try:
        run()
    finally:
        for hook in hooks:
            hook.remove()


@torch.no_grad()
def mean_spectrum_head_(head: ISTFTHead, wav: torch.Tensor) -> None:
    """Set the head's log-magnitude biases to the mean log-magnitude of ``wav`` (B, N) per bin."""
    magnitude = head.istft.analyse(wav.float()).abs()  # (B, F, T)
    mean_log = magnitude.clamp(min=LOG_MAGNITUDE_FLOOR).log().mean((0, 2))  # (F,)
    head.out.bias[: mean_log.shape[0]].copy_(mean_log)
