"""Codebook upkeep while training an RVQ: k-means initialisation and dead-code restart.

A randomly initialised codebook leaves most codes far from the data: they are never chosen, get
no gradient and stay dead. Two standard remedies (SoundStream, EnCodec, DAC practice):
  * k-means init: fit each level's codebook to real projected residuals before training on it;
  * dead-code restart: a code unused for ``dead_after`` training forwards is replaced by a random
    recent projected residual of its level, so it lands where the data is.

Everything here reads and writes *buffers* (checkpointed with the module, so a resumed run
continues the same statistics) and decides only from buffers plus a fixed-seed generator. Under
DDP the buffers are broadcast from rank 0 at the start of every forward (``broadcast_buffers``,
the default), so every rank makes the identical change to its codebooks without any collective
here: that is why the frames for k-means are recorded in one forward and used in the next.
(FSDP shards parameters and is not supported for codec training; codecs are small enough for DDP.)

Shape legend: Q levels, K codebook size, d codebook dim, D latent dim, R recorded latent frames.
"""

import torch
from torch import nn
from torch.nn import functional as F

from avcodecs.maskgct.quantizer import ResidualFVQ, RVQOutput


@torch.no_grad()
def spherical_kmeans(x: torch.Tensor, k: int, iters: int, generator: torch.Generator) -> torch.Tensor:
    """x (R, d) -> centroids (k, d). Points are assigned by cosine similarity (the quantizer's
    lookup rule); each centroid is the plain mean of its members, so it keeps their magnitude
    (the quantizer outputs raw codebook rows). Empty clusters keep their previous centroid."""
    n = x.shape[0]
    pick = torch.randperm(n, generator=generator, device=x.device)[:k] if n >= k else \
        torch.randint(n, (k,), generator=generator, device=x.device)
    centroids = x[pick]  # (k, d)
    for _ in range(iters):
        assign = (F.normalize(x, dim=-1) @ F.normalize(centroids, dim=-1).t()).argmax(-1)  # (R,)
        sums = torch.zeros_like(centroids).index_add_(0, assign, x)  # (k, d)
        counts = torch.bincount(assign, minlength=k)[:, None]  # (k, 1)
        centroids = torch.where(counts > 0, sums / counts.clamp(min=1), centroids)
    return centroids


class CodebookMaintenance(nn.Module):
    def __init__(self, num_levels: int, codebook_size: int, codebook_dim: int, latent_dim: int,
                 kmeans_init: bool = True, kmeans_iters: int = 10, kmeans_frames: int = 4096,
                 dead_after: int | None = 200, seed: int = 0):
        super().__init__()
        self.kmeans_init, self.kmeans_iters, self.dead_after, self.seed = kmeans_init, kmeans_iters, dead_after, seed
        # 0 = waiting for frames, 1 = frames recorded, 2 = initialised (or k-means off)
        self.register_buffer("init_state", torch.tensor(0 if kmeans_init else 2))
        self.register_buffer("kmeans_latents", torch.zeros(kmeans_frames if kmeans_init else 0, latent_dim))
        self.register_buffer("forwards", torch.tensor(0))
        self.register_buffer("last_used", torch.zeros(num_levels, codebook_size, dtype=torch.long))
        self.register_buffer("recent", torch.zeros(num_levels, codebook_size, codebook_dim))
        self._init_state: int | None = None  # host copy of init_state: read once, then no syncs

    def _state(self) -> int:
        if self._init_state is None:
            self._init_state = int(self.init_state)  # one host sync per process (after a resume too)
        return self._init_state

    def _load_from_state_dict(self, *args, **kwargs):
        super()._load_from_state_dict(*args, **kwargs)
        self._init_state = None  # loaded weights (a resume) bring their own stage: re-read it

    def _set_state(self, state: int) -> None:
        self.init_state.fill_(state)
        self._init_state = state

    @torch.no_grad()
    def before_forward(self, rvq: ResidualFVQ) -> dict[str, torch.Tensor]:
        """Change the codebooks from what the previous forward recorded. Returns detached logs."""
        logs = {}
        if self._state() == 1:
            self._fit_kmeans(rvq)
            self._set_state(2)
            self.last_used.copy_(self.forwards.expand_as(self.last_used))  # a fresh grace period
        elif self._state() == 2 and self.dead_after:
            dead = (self.forwards - self.last_used) > self.dead_after  # (Q, K)
            books = [q.codebook.weight for q in rvq.quantizers]
            renewed = torch.where(dead[..., None], self.recent, torch.stack(books))  # (Q, K, d)
            torch._foreach_copy_(books, list(renewed.unbind(0)))
            self.last_used.copy_(torch.where(dead, self.forwards, self.last_used))
            logs["dead_codes_replaced"] = dead.sum().float()
        return logs

    @torch.no_grad()
    def _fit_kmeans(self, rvq: ResidualFVQ) -> None:
        """Level by level, as the RVQ recursion dictates: level l is fitted to the residuals left by
        the already-initialised levels < l. Frames are independent (the projections are k=1
        convs), so the recorded frames go through as one sequence."""
        generator = torch.Generator(device=self.kmeans_latents.device).manual_seed(self.seed)
        residual = self.kmeans_latents.t()[None]  # (1, D, R)
        for quantizer in rvq.quantizers:
            projected = quantizer.project(residual)  # (1, d, R)
            centroids = spherical_kmeans(projected[0].t().float(), rvq.codebook_size, self.kmeans_iters, generator)
            quantizer.codebook.weight.copy_(centroids)
            residual = residual - quantizer.out_project(quantizer.lookup(quantizer.nearest(projected)))

    @torch.no_grad()
    def after_forward(self, latent: torch.Tensor, out: RVQOutput) -> dict[str, torch.Tensor]:
        """Record what this forward saw: usage per code, recent residuals, k-means frames."""
        self.forwards.add_(1)
        levels, batch, dim, frames = out.projected.shape
        codes = out.codes.transpose(0, 1).reshape(levels, -1)  # (Q, B*T)
        used = torch.zeros_like(self.last_used, dtype=torch.bool).scatter_(1, codes, True)  # (Q, K)
        self.last_used.copy_(torch.where(used, self.forwards, self.last_used))
        flat = out.projected.detach().transpose(2, 3).reshape(levels, batch * frames, dim)  # (Q, B*T, d)
        pick = torch.randint(batch * frames, self.recent.shape[:2], device=flat.device)  # (Q, K)
        self.recent.copy_(torch.gather(flat, 1, pick[..., None].expand(-1, -1, dim)))
        if self._state() == 0:
            frames_all = latent.detach().transpose(1, 2).reshape(-1, latent.shape[1])  # (B*T, D)
            pick = torch.randint(frames_all.shape[0], (self.kmeans_latents.shape[0],), device=latent.device)
            self.kmeans_latents.copy_(frames_all[pick])
            self._set_state(1)
        return {"codebook_usage": used.float().mean()}
