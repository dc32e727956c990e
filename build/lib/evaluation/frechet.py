"""The Fréchet distance between two Gaussians fitted to features (FID, FVD), with pytorch-fid's numerics.

    d^2 = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr(sqrtm(S1 S2))

in float64 with ``scipy.linalg.sqrtm``. When the product is numerically singular (sqrtm not finite),
``eps`` is added to both diagonals and the root taken again; a small imaginary part from rounding
is dropped, a large one (diagonal beyond 1e-3) is an error -- exactly pytorch-fid's
``calculate_frechet_distance``. Statistics: feature mean and unbiased covariance (``np.cov``).
"""

import logging

import numpy as np
from scipy import linalg

from engine.errors import UserFacingError

log = logging.getLogger(__name__)


class FrechetError(UserFacingError, ValueError):
    pass


def feature_statistics(features, name: str = "features") -> tuple[np.ndarray, np.ndarray]:
    """(N, D) features -> mean (D,) and unbiased covariance (D, D), float64."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or len(features) < 2:
        raise FrechetError(f"{name}: need at least 2 feature vectors (N, D) for a covariance, got shape "
                           f"{tuple(features.shape)}")
    return features.mean(0), np.cov(features, rowvar=False)


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
        raise FrechetError(f"Fréchet distance: statistics do not match: means {mu1.shape} vs {mu2.shape}, "
                           f"covariances {sigma1.shape} vs {sigma2.shape}")
    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        log.warning("Fréchet distance: singular covariance product; adding %g to the diagonals", eps)
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise FrechetError(f"Fréchet distance: matrix square root has an imaginary component "
                               f"{np.max(np.abs(covmean.imag)):.3g} (features degenerate?)")
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def frechet_distance_of_features(features1, features2) -> float:
    """Fréchet distance between the Gaussians fitted to two (N, D) feature sets."""
    return frechet_distance(*feature_statistics(features1, "first set"), *feature_statistics(features2, "second set"))
