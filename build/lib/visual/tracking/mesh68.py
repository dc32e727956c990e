"""MediaPipe's 468-point face mesh -> the 68-point (iBUG 300-W / dlib) convention, one mesh vertex per point.

MESH_TO_68[i] is the mesh vertex standing for 68-point landmark i. Chosen from the canonical mesh's
semantics (eye corners 33/133 and 362/263, outer mouth corners 61/291, inner 78/308, lip mid-points
0/17 outer and 13/14 inner, nose tip 4, subnasale 2), keeping left/right mirror pairs of the mesh
(e.g. 127/356, 58/288, 70/300, 33/263, 61/291) so the mapped face stays symmetric, and checked against
dlib's 68 points on the same image (scikit-image's astronaut, frontal): mean distance as a fraction of
the inter-ocular distance jaw 0.062, brows 0.054, nose 0.024, eyes 0.032, mouth 0.026; the alignment
points 33, 36, 39, 42, 45 within 0.002-0.043; the mouth centre (mean of 48-67) within 0.7 px of dlib's
at an inter-ocular distance of 43 px. The jaw differs most: dlib's contour follows the visible
silhouette, the mesh's vertices are fixed on the 3-D surface.
"""

MESH_TO_68 = (
    # jaw 0-16, image left to image right through the chin (152)
    127, 93, 132, 58, 172, 150, 149, 148, 152, 377, 378, 379, 397, 288, 361, 323, 356,
    # brows 17-21 (image left), 22-26 (image right)
    70, 63, 105, 66, 107, 336, 296, 334, 293, 300,
    # nose: bridge 27-30 (30 = tip), base 31-35 (33 = subnasale)
    168, 197, 5, 4, 75, 97, 2, 326, 305,
    # eyes: 36-41 image-left eye from the outer corner clockwise, 42-47 image-right eye from the inner corner
    33, 160, 158, 133, 153, 144, 362, 385, 387, 263, 373, 380,
    # outer lip 48-59 from the left corner clockwise, inner lip 60-67
    61, 39, 37, 0, 267, 269, 291, 321, 314, 17, 84, 91,
    78, 82, 13, 312, 308, 317, 14, 87,
)

assert len(MESH_TO_68) == 68
