"""An image with its wrong decisions written beside it."""
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from sarb_mm.evaluation.decision_errors import ImageErrors
from sarb_mm.utils.paths import atomic_path

MISS_COLOUR = (200, 30, 30)
ALARM_COLOUR = (30, 60, 200)


def draw_decision_errors(image: np.ndarray,
                         errors: ImageErrors,
                         classes: Sequence[str],
                         out_file: str,
                         width: int = 320) -> None:
    """Save ``image`` (RGB, any size) scaled to ``width`` px with a panel
    listing its misses (red) and false alarms (blue), score against
    threshold."""
    picture = Image.fromarray(np.asarray(image, dtype=np.uint8))
    height = max(1, round(picture.height * width / max(picture.width, 1)))
    picture = picture.resize((width, height))
    lines = [(f'missed {classes[w.index]}: {w.score:.3f} < {w.threshold:.3f}',
              MISS_COLOUR) for w in errors.misses]
    lines += [(f'false alarm {classes[w.index]}: {w.score:.3f} >= '
               f'{w.threshold:.3f}', ALARM_COLOUR)
              for w in errors.false_alarms]
    font = ImageFont.load_default()
    line_height = 14
    canvas = Image.new('RGB', (width, height + 6 + line_height * len(lines)),
                       (255, 255, 255))
    canvas.paste(picture, (0, 0))
    draw = ImageDraw.Draw(canvas)
    for row, (text, colour) in enumerate(lines):
        draw.text((4, height + 3 + row * line_height),
                  text,
                  fill=colour,
                  font=font)
    with atomic_path(out_file) as tmp:
        canvas.save(tmp, format='PNG')
