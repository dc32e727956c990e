"""Export a codec trained with ``experiment=codec_maskgct*`` in the released MaskGCT layout.

    python scripts/export_maskgct_codec.py --checkpoint runs/codec_maskgct --out ckpts/my_codec
    # then: codec.weights=ckpts/my_codec (configs/codec/maskgct.yaml; set codec.config to the trained size)

Writes ``model.safetensors`` (encoder) and ``model_1.safetensors`` (quantizer + Vocos), so the
trained codec loads exactly like amphion/MaskGCT's ``acoustic_codec`` folder. The critics and the
codebook-upkeep statistics stay behind: they only matter for training.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from avcodecs.maskgct.export import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
