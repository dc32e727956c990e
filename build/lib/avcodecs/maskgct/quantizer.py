"""Residual factorized vector quantizer of the MaskGCT acoustic codec (DAC's "factorized codes").

Each of the Q levels projects the current residual to a small space (``in_project``, WN conv k1,
D -> d), picks the codebook row with the highest cosine similarity to it (both L2-normalised),
and returns that *raw* row through ``out_project`` (WN conv k1, d -> D). The residual loses what
the level explained; the quantized latent is the sum of the level outputs.

Shape legend:
  B batch, T frames, D latent_dim (256), d codebook_dim (8), K codebook_size (1024), Q levels (12)
  z / residual (B, D, T)   codes (B, Q, T) int64, level 0 the coarsest
"""

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from avcodecs.dac import WNConv1d


class FactorizedVQ(nn.Module):
    """One level. Parameter names follow the released checkpoint (``in_project``, ``codebook``,
    ``out_project``)."""

    def __init__(self, latent_dim: int, codebook_size: int, codebook_dim: int):
        super().__init__()
        self.in_project = WNConv1d(latent_dim, codebook_dim, kernel_size=1)
        self.codebook = nn.Embedding(codebook_size, codebook_dim)
        self.out_project = WNConv1d(codebook_dim, latent_dim, kernel_size=1)

    def project(self, residual: torch.Tensor) -> torch.Tensor:
        return self.in_project(residual)  # (B, D, T) -> (B, d, T)

    def nearest(self, projected: torch.Tensor) -> torch.Tensor:
        """Cosine-nearest codebook row: (B, d, T) -> codes (B, T). Done in fp32 (bf16 would flip
        near-ties and make codes depend on the autocast setting); no gradient flows through it."""
        with torch.no_grad(), torch.autocast(projected.device.type, enabled=False):
            queries = F.normalize(projected.float().transpose(1, 2), dim=-1)  # (B, T, d)
            keys = F.normalize(self.codebook.weight.float(), dim=-1)  # (K, d)
            return (queries @ keys.t()).argmax(-1)  # (B, T)

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        return self.codebook(codes).transpose(1, 2)  # (B, T) -> (B, d, T)


@dataclass
class RVQOutput:
    quantized: torch.Tensor  # (B, D, T) sum of the kept levels' outputs (straight-through in training)
    codes: torch.Tensor  # (B, Q, T)
    projected: torch.Tensor  # (Q, B, d, T) in_project(residual) per level: the vectors the codes stand for
    commitment_loss: torch.Tensor  # (Q,) mean over items of ||z_e - sg(e)||^2, dropped levels count 0
    codebook_loss: torch.Tensor  # (Q,) mean over items of ||sg(z_e) - e||^2


class ResidualFVQ(nn.Module):
    def __init__(self, num_levels: int, latent_dim: int, codebook_size: int, codebook_dim: int):
        super().__init__()
        self.num_levels, self.codebook_size, self.codebook_dim = num_levels, codebook_size, codebook_dim
        self.quantizers = nn.ModuleList(FactorizedVQ(latent_dim, codebook_size, codebook_dim)
                                        for _ in range(num_levels))

    # ---------------------------------------------------------------- encoding
    @torch.no_grad()
    def encode(self, z: torch.Tensor, num_levels: int | None = None) -> torch.Tensor:
        """Latent (B, D, T) -> codes (B, q, T).

        A Python loop over levels, by necessity: level l quantizes the residual left by levels
        < l, so its input exists only once level l-1 has chosen its codes (RVQ is a recursion)."""
        residual, codes = z, []
        for quantizer in self.quantizers[: num_levels or self.num_levels]:
            idx = quantizer.nearest(quantizer.project(residual))  # (B, T)
            residual = residual - quantizer.out_project(quantizer.lookup(idx))  # (B, D, T)
            codes.append(idx)
        return torch.stack(codes, 1)  # (B, q, T)

    def forward(self, z: torch.Tensor, keep_levels: torch.Tensor | None = None) -> RVQOutput:
        """Training path: straight-through quantization with the VQ losses.

        keep_levels (B,) int: item b sums only its first keep_levels[b] levels (quantizer dropout,
        which teaches the decoder every prefix of the hierarchy); None keeps all. Every level is
        still computed for every item (as upstream) so each codebook sees the whole batch.
        Sequential over levels for the same reason as :meth:`encode`."""
        residual = z
        outputs, codes, projected, commit, codebook = [], [], [], [], []
        for quantizer in self.quantizers:
            z_e = quantizer.project(residual)  # (B, d, T)
            idx = quantizer.nearest(z_e)  # (B, T)
            e = quantizer.lookup(idx)  # (B, d, T) raw codebook rows
            commit.append((z_e - e.detach()).pow(2).mean((1, 2)))  # (B,)
            codebook.append((e - z_e.detach()).pow(2).mean((1, 2)))  # (B,)
            out = quantizer.out_project(z_e + (e - z_e).detach())  # (B, D, T), straight-through
            residual = residual - out
            outputs.append(out)
            codes.append(idx)
            projected.append(z_e)
        outputs = torch.stack(outputs)  # (Q, B, D, T)
        commit, codebook = torch.stack(commit), torch.stack(codebook)  # (Q, B)
        if keep_levels is None:
            quantized = outputs.sum(0)
        else:
            keep = torch.arange(self.num_levels, device=z.device)[:, None] < keep_levels[None]  # (Q, B)
            quantized = (outputs * keep[..., None, None]).sum(0)
            commit, codebook = commit * keep, codebook * keep
        return RVQOutput(quantized, torch.stack(codes, 1), torch.stack(projected), commit.mean(1),
                         codebook.mean(1))

    # ---------------------------------------------------------------- decoding
    def stacked_codebooks(self) -> torch.Tensor:
        return torch.stack([q.codebook.weight for q in self.quantizers])  # (Q, K, d)

    def embed(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes (B, q, T) of the first q levels -> latent (B, D, T), vectorised over levels:
        one gather from the stacked codebooks, then all q out_projects as a single matmul whose
        contraction over (level, d) also sums the levels."""
        batch, q, frames = codes.shape
        if not 1 <= q <= self.num_levels:
            raise ValueError(f"codes must hold 1..{self.num_levels} levels, got shape {tuple(codes.shape)}")
        table = self.stacked_codebooks()[:q].flatten(0, 1)  # (q*K, d)
        offsets = torch.arange(q, device=codes.device)[None, :, None] * self.codebook_size  # (1, q, 1)
        vectors = F.embedding(codes + offsets, table)  # (B, q, T, d)
        heads = self.quantizers[:q]
        weight = torch.stack([h.out_project.normalized_weight()[..., 0] for h in heads])  # (q, D, d)
        bias = torch.stack([h.out_project.bias for h in heads]).sum(0)  # (D,)
        latent = torch.einsum("bqtk,qdk->bdt", vectors, weight)  # (B, D, T)
        return latent + bias[:, None]
