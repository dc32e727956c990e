"""The raw motion code: a fixed orthonormal embedding of the 18-d face state into M = 40 dims.

    raw   = ((state - SCALE_CENTRE) / SCALE_SPREAD) @ basis.T      (..., F) -> (..., M)
    state = (raw @ basis) * SCALE_SPREAD + SCALE_CENTRE             the least-squares projection back

basis (M, F) has orthonormal columns, from the QR factorisation of a seeded Gaussian matrix: every raw
dimension mixes every field, as a learned latent does (LIA-X's 40-d code is not axis-aligned either),
so the generative model cannot shortcut by treating one dimension as "the mouth". Decoding is a
projection onto the F-d subspace: whatever a model puts off that subspace is ignored, not rendered.
Scaling by each field's nominal spread first makes every field weigh about alike in the code (and so in
the model's loss), whatever its unit (radians, pixels, factors).

Works on numpy arrays and torch tensors alike.
"""

from functools import cache

import numpy as np
import torch

from avbench.motion.state import OPEN, SCALE_CENTRE, SCALE_SPREAD, STATE_DIM, clamp_state
from engine.errors import ConfigError

MOTION_DIM = 40  # LIA-X's, so Talker-T2AV's motion head needs no change
BASIS_SEED = 47


@cache
def motion_basis(motion_dim: int = MOTION_DIM, seed: int = BASIS_SEED) -> np.ndarray:
    """(motion_dim, F) float64 with orthonormal columns, the same for the same arguments everywhere."""
    if motion_dim < STATE_DIM:
        raise ConfigError(f"motion_dim {motion_dim}: the face state has {STATE_DIM} fields, the code needs as many")
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((motion_dim, STATE_DIM)))
    q = q * np.sign(np.diag(r))  # a unique factorisation: the same basis whatever LAPACK's sign choice
    q.setflags(write=False)
    return q


def _constants(like, basis: np.ndarray):
    if isinstance(like, torch.Tensor):
        return tuple(torch.tensor(a, dtype=like.dtype, device=like.device)
                     for a in (basis, SCALE_CENTRE, SCALE_SPREAD))
    return basis.astype(np.float32), SCALE_CENTRE, SCALE_SPREAD


def raw_motion_from_state(state, motion_dim: int = MOTION_DIM, seed: int = BASIS_SEED):
    """State (..., F) -> raw motion code (..., M), numpy (float32) or torch."""
    basis, centre, spread = _constants(state, motion_basis(motion_dim, seed))
    return ((state - centre) / spread) @ basis.T


def state_from_raw(raw, seed: int = BASIS_SEED):
    """Raw motion code (..., M) -> state (..., F), the least-squares fit (not clamped)."""
    basis, centre, spread = _constants(raw, motion_basis(raw.shape[-1], seed))
    return (raw @ basis) * spread + centre


def mouth_opening(raw, seed: int = BASIS_SEED):
    """Raw motion (..., T, M) -> the mouth opening the renderer draws (..., T), 0 (closed) .. 1 (wide).
    Normalised motion: pass ``codec.denormalize(motion)`` (or use ``codec.mouth_opening``)."""
    return clamp_state(state_from_raw(raw, seed))[..., OPEN]
