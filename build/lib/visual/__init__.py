"""The visual front-end: from a raw talking-face clip to HiCoDiT's conditions (face tracking and
landmarks, mouth ROI, AV-HuBERT lip features, ArcFace identity, per-frame facial expression).
Submodules are imported explicitly; importing this package costs nothing."""
