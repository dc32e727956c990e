"""Hydra configs (``config.yaml`` and the groups model/, codec/, data/, trainer/, experiment/),
shipped as package data so installed code can compose them: see ``engine.configs``."""
