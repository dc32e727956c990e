"""Prepare a raw corpus for training and evaluation: one runner, a recipe per model family.

    # HiCoDiT on LRS3 (one process; its own GPU per torchrun rank; or one SLURM array task per shard)
    python scripts/prepare_corpus.py hicodit --corpus lrs3 --root /data/LRS3 --out-dir data/lrs3 --merge
    torchrun --nproc_per_node=8 scripts/prepare_corpus.py hicodit --corpus vox2 --root /data/vox2 \\
        --out-dir data/vox2 --merge
    sbatch --array=0-63 --wrap "python scripts/prepare_corpus.py hicodit --corpus vox2 --root /data/vox2 \\
        --out-dir data/vox2 --shard \\$SLURM_ARRAY_TASK_ID/64"
    python scripts/prepare_corpus.py merge --out-dir data/vox2 --split speaker --val 0.02 --test 0.02

    # Talker-T2AV features: a folder of face-crop clips with sidecar .txt, or TTS speech, or the released CSV
    python scripts/prepare_corpus.py talker --corpus folder --root clips/ --out-dir features/av --merge
    python scripts/prepare_corpus.py talker --corpus folder --root speech/ --tts --out-dir features/tts --merge
    python scripts/prepare_corpus.py talker --corpus list --root Talker-T2AV-Data/metadata/train.csv \\
        --out-dir features/t2av --merge

A killed run restarted with the same command continues where it stopped; bad clips go to
<out-dir>/failures/*.jsonl with their reason. Corpus layouts: engine/pipeline/corpus.py.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.pipeline import cli  # noqa: E402

RECIPES = {"hicodit": "hicodit.prep", "talker": "talker_t2av.prep"}  # each also runs as python -m <module>


def build_parser():
    return cli.build_parser(RECIPES, description=__doc__.split("\n\n")[0], epilog=__doc__)


def main(argv=None) -> int:
    return cli.main(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
