"""Export a codec trained with ``experiment=codec_maskgct*`` in the released MaskGCT layout.

    python scripts/export_maskgct_codec.py --checkpoint runs/codec_maskgct --out ckpts/my_codec
    # then: codec.weights=ckpts/my_codec (configs/codec/maskgct.yaml; set codec.config to the trained size)

Writes ``model.safetensors`` (encoder) and ``model_1.safetensors`` (quantizer + Vocos), so the
trained codec loads exactly like amphion/MaskGCT's ``acoustic_codec`` folder. The critics and the
codebook-upkeep statistics stay behind: they only matter for training.
"""

import argparse
import logging
import sys
from pathlib import Path

from avcodecs.maskgct.weights import save_maskgct_weights
from engine.checkpoint import load_module
from engine.errors import UserFacingError

log = logging.getLogger("export_maskgct_codec")


def main(argv=None, prog: str | None = None) -> int:
    """The command line of ``scripts/export_maskgct_codec.py`` (from a package: ``python -m
    avcodecs.maskgct.export``)."""
    parser = argparse.ArgumentParser(prog=prog, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="checkpoint folder, or a run folder (its latest)")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--raw", action="store_true", help="export the raw weights instead of the EMA (if any)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        module, _, config = load_module(args.checkpoint, ema=not args.raw)
        if not hasattr(module, "codec"):
            raise UserFacingError(f"{args.checkpoint}: not a codec training run (task {config.task._target_})")
        folder = save_maskgct_weights(module.codec, args.out)
    except UserFacingError as e:
        log.error("%s", e)
        return 1
    print(f"wrote {folder / 'model.safetensors'} and {folder / 'model_1.safetensors'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(prog="python -m avcodecs.maskgct.export"))
