"""Optimal-transport conditional flow matching around a velocity estimator (the objective and the
sampler, kept apart from the network, as F5-TTS / VoxCPM wrap an ``estimator`` in a ``CFM``).

Convention of the released Talker-T2AV heads: t = 1 is noise, t = 0 is data.
    training   x_t = (1 - t) x1 + t z,   target v = z - x1,   t = sigmoid(N(-0.4, 1))
    sampling   Euler from t = 1 to 0 on a sway-sampled grid, x <- x - (t_k - t_{k+1}) v(x, t_k),
               with CFG-zero*: the first steps use zero velocity, later steps the guided velocity
               v = v_u s* + w (v_c - v_u s*),  s* = <v_c, v_u> / ||v_u||^2 per sample.
The unconditional pass zeroes ``mu`` (the backbone state) only; context and global condition stay.

Shape legend: N rows, P frames per patch, C channels, D backbone width, G global-condition width.
"""

import math
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class CFMConfig:
    """Training-time settings (released ``CfmConfig`` and ``cfm_k_repeat``)."""

    t_mean: float = -0.4  # logit-normal t: sigmoid(N(t_mean, t_std))
    t_std: float = 1.0
    repeats: int = 2  # each target is used K times with fresh noise and t
    mu_drop: float = 0.1  # P(mu zeroed) per row: trains the unconditional branch for CFG
    context_drop: float = 0.05  # P(context zeroed) per row


@dataclass
class CFMSamplerConfig:
    """Inference settings. Paper recipe: 10 steps, CFG 2, temperature 0.7 (released script 0.3)."""

    steps: int = 10
    guidance: float = 2.0  # classifier-free guidance scale w (1: plain conditional)
    temperature: float = 0.7
    sway: float = 1.0
    cfg_zero_star: bool = True
    zero_init_fraction: float = 0.04


@dataclass
class CFMNoise:
    """All randomness of one loss evaluation (rows already repeated K times)."""

    t: torch.Tensor  # (N,) in (0, 1)
    z: torch.Tensor  # (N, P, C) standard normal
    keep_mu: torch.Tensor  # (N,) bool
    keep_context: torch.Tensor  # (N,) bool


def sway_schedule(steps: int, coef: float = 1.0) -> list[float]:
    """t_k = u + coef (cos(pi u / 2) - 1 + u) for u = linspace(1, 0, steps + 1)."""
    grid = [1.0 - k / steps for k in range(steps + 1)]
    return [u + coef * (math.cos(math.pi / 2 * u) - 1.0 + u) for u in grid]


def zero_init_steps(steps: int, fraction: float = 0.04) -> int:
    """Steps of CFG-zero* that use zero velocity: max(1, int(fraction * (steps + 1)))."""
    return max(1, int(fraction * (steps + 1)))


def optimized_scale(v_cond: torch.Tensor, v_uncond: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """s* = <v_c, v_u> / (||v_u||^2 + eps) per row: (N, ...) -> (N, 1, ..., 1)."""
    flat_c, flat_u = v_cond.flatten(1), v_uncond.flatten(1)
    scale = (flat_c * flat_u).sum(1) / (flat_u.square().sum(1) + eps)  # (N,)
    return scale.view(-1, *([1] * (v_cond.dim() - 1)))


def guided_velocity(v_cond: torch.Tensor, v_uncond: torch.Tensor, guidance: float,
                    zero_star: bool = True) -> torch.Tensor:
    scale = optimized_scale(v_cond, v_uncond) if zero_star else 1.0
    return v_uncond * scale + guidance * (v_cond - v_uncond * scale)


class FlowMatching(nn.Module):
    """OT-CFM objective and Euler sampler around ``estimator(x, mu, t, context, global_cond)``."""

    def __init__(self, estimator: nn.Module, patch_size: int, cfg: CFMConfig | None = None):
        super().__init__()
        self.estimator = estimator
        self.patch_size = patch_size
        self.cfg = cfg or CFMConfig()

    # ---------------------------------------------------------------- training
    def sample_noise(self, x1: torch.Tensor, generator: torch.Generator | None = None) -> CFMNoise:
        """Noise for ``x1`` (N, P, C) given with its K repeats already (N = rows x K)."""
        n, dev = x1.shape[0], x1.device
        s = torch.randn(n, device=dev, generator=generator) * self.cfg.t_std + self.cfg.t_mean
        return CFMNoise(
            t=torch.sigmoid(s),
            z=torch.randn(x1.shape, device=dev, generator=generator, dtype=torch.float32),
            keep_mu=torch.rand(n, device=dev, generator=generator) >= self.cfg.mu_drop,
            keep_context=torch.rand(n, device=dev, generator=generator) >= self.cfg.context_drop,
        )

    def loss(self, x1: torch.Tensor, mu: torch.Tensor, context: torch.Tensor, global_cond: torch.Tensor,
             noise: CFMNoise | None = None) -> torch.Tensor:
        """Mean squared velocity error over rows (each repeated K times), frames and channels.

        x1: (N, P, C) targets, mu: (N, D), context: (N, p*P, C), global_cond: (N, G) -> scalar.
        ``noise`` (for N*K rows) makes the loss deterministic, e.g. to compare two implementations.
        """
        k = self.cfg.repeats
        x1, mu, context, global_cond = (v.repeat_interleave(k, dim=0) for v in (x1, mu, context, global_cond))
        if noise is None:
            noise = self.sample_noise(x1)
        t = noise.t.to(x1.dtype)
        z = noise.z.to(x1.dtype)
        mu = mu * noise.keep_mu[:, None].to(mu.dtype)
        context = context * noise.keep_context[:, None, None].to(context.dtype)
        x_t = (1 - t[:, None, None]) * x1 + t[:, None, None] * z  # (NK, P, C)
        v_pred = self.estimator(x_t, mu, t, context, global_cond)
        return (v_pred.float() - (z - x1).float()).square().mean()

    # ---------------------------------------------------------------- sampling
    def velocity(self, x: torch.Tensor, t: float, mu: torch.Tensor, context: torch.Tensor,
                 global_cond: torch.Tensor, guidance: float, zero_star: bool) -> torch.Tensor:
        """Guided velocity at time t; the conditional and unconditional passes run as one batch."""
        n = x.shape[0]
        t_rows = x.new_full((1,), t)  # one time for every row: the estimator broadcasts it
        if guidance == 1.0:  # w = 1 is exactly the conditional velocity
            return self.estimator(x, mu, t_rows, context, global_cond).float()
        v = self.estimator(torch.cat([x, x]), torch.cat([mu, torch.zeros_like(mu)]), t_rows,
                           torch.cat([context, context]), torch.cat([global_cond, global_cond])).float()
        return guided_velocity(v[:n], v[n:], guidance, zero_star)

    @torch.no_grad()
    def sample(self, mu: torch.Tensor, context: torch.Tensor, global_cond: torch.Tensor,
               sampler: CFMSamplerConfig | None = None, z: torch.Tensor | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """One patch per row: mu (N, D), context (N, p*P, C), global_cond (N, G) -> (N, P, C) float32.

        ``z`` (N, P, C) is the standard-normal start (scaled by the temperature here); drawn if absent.
        """
        sampler = sampler or CFMSamplerConfig()
        if z is None:
            shape = (mu.shape[0], self.patch_size, self.estimator.channels)
            z = torch.randn(shape, device=mu.device, generator=generator, dtype=torch.float32)
        x = z.float() * sampler.temperature
        ts = sway_schedule(sampler.steps, sampler.sway)
        skip = zero_init_steps(sampler.steps, sampler.zero_init_fraction) if sampler.cfg_zero_star else 0
        # the head may run in another dtype than the backbone (e.g. fp32 heads on a bf16 backbone)
        dtype = next((p.dtype for p in self.estimator.parameters()), mu.dtype)
        mu, context, global_cond = mu.to(dtype), context.to(dtype), global_cond.to(dtype)
        for k in range(skip, sampler.steps):  # the first `skip` steps move x by zero velocity
            v = self.velocity(x.to(dtype), ts[k], mu, context, global_cond, sampler.guidance, sampler.cfg_zero_star)
            x = x - (ts[k] - ts[k + 1]) * v
        return x
