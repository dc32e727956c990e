"""Evaluation: the judges the papers report (WER, DNSMOS, UTMOS, MCD, LSE-C/D, EmoAcc, SpkSim; FID,
FVD, Sync-C/D) and the harness that runs them over generated outputs. Submodules are imported
explicitly; importing this package costs nothing."""
