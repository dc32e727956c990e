"""UTMOS22 strong learner: a learned naturalness MOS judge (16 kHz speech -> MOS), in plain PyTorch.

    from evaluation.utmos import load_utmos22_strong
    model, report = load_utmos22_strong("ckpts/utmos/epoch=3-step=7459.ckpt")
    mos = model(wavs_16k, lengths)            # (B,)
"""

from evaluation.utmos.checkpoint import (
                                         UTMOSCheckpointError,
                                         load_utmos22_strong,
                                         read_utmos_checkpoint,
                                         speechmos_to_lightning,
)
from evaluation.utmos.model import UTMOS22Strong, UTMOSConfig

__all__ = ["UTMOS22Strong", "UTMOSCheckpointError", "UTMOSConfig", "load_utmos22_strong", "read_utmos_checkpoint",
           "speechmos_to_lightning"]
