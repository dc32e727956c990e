"""Train any task on the shared trainer.

    python train.py experiment=smoke
    torchrun --nproc_per_node=8 train.py experiment=hicodit_lrs3 trainer.parallel=fsdp
    torchrun --nnodes=2 --nproc_per_node=8 --rdzv_backend=c10d --rdzv_endpoint=$HEAD:29500 \
        --rdzv_id=$JOB train.py experiment=...
"""

from engine.train import main

if __name__ == "__main__":
    main()
