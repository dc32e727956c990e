"""What both model families share: layers, media and data I/O, the trainer, distributed setup,
checkpoints. Submodules are imported explicitly (``from engine.trainer import Trainer``)."""
