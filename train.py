"""Train any task on the shared trainer.

    python train.py experiment=smoke
    torchrun --nproc_per_node=8 train.py experiment=hicodit_lrs3 trainer.parallel=fsdp
    torchrun --nnodes=2 --nproc_per_node=8 --rdzv_backend=c10d --rdzv_endpoint=$HEAD:29500 \
        --rdzv_id=$JOB train.py experiment=...
"""

import logging
import os
import sys

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig

from engine.errors import UserFacingError
from engine.logger import setup_logging
from engine.trainer import Trainer

log = logging.getLogger("train")


@hydra.main(config_path="configs", config_name="config", version_base=None)
def main(cfg: DictConfig) -> None:
    setup_logging(int(os.environ.get("RANK", 0)))
    try:
        task = instantiate(cfg.task)
        trainer = Trainer(instantiate(cfg.trainer), task, run_config=cfg)
        path = trainer.fit()
    except UserFacingError as e:
        log.error("%s", e)
        sys.exit(1)
    if path is not None:
        log.info("last checkpoint: %s", path)


if __name__ == "__main__":
    main()
