"""Deterministic synthetic KITTI datasets for fast tests: flat shapes with exact boxes.

Each image is a noisy grey background with 1..k non-overlapping filled shapes, one flat colour
per class (rectangles for even class indices, ellipses for odd ones). A shape covers exactly
the pixels x1 <= x < x2, y1 <= y < y2 of its integer label box (x1, y1, x2, y2), so a detector
can learn the data in a short run. Same arguments -> same bytes. TF-free.
"""

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from tao_qat.common.errors import OutputExistsError
from tao_qat.common.fileio import atomic_write_bytes, atomic_write_text
from tao_qat.data.kitti import format_kitti_line

# Saturated colours far from the grey background and from each other (RGB).
PALETTE = (
    (230, 40, 40),
    (40, 90, 230),
    (40, 200, 60),
    (240, 220, 30),
    (200, 40, 220),
    (30, 210, 220),
)
BACKGROUND = 110
_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}


def _place(rng, image_size, box_size, placed, margin, attempts=100):
    width, height = image_size
    lo, hi = box_size
    for _ in range(attempts):
        w = int(rng.integers(lo, min(hi, width) + 1))
        h = int(rng.integers(lo, min(hi, height) + 1))
        x1 = int(rng.integers(0, width - w + 1))
        y1 = int(rng.integers(0, height - h + 1))
        box = (x1, y1, x1 + w, y1 + h)
        if all(
            box[0] >= b[2] + margin
            or b[0] >= box[2] + margin
            or box[1] >= b[3] + margin
            or b[1] >= box[3] + margin
            for b in placed
        ):
            return box
    return None


def synthetic_image(rng, image_size, classes, objects_per_image, box_size, noise_std, margin=2):
    """Draw one image; returns (PIL RGB image, [(class_name, (x1, y1, x2, y2)), ...]).

    Boxes are integer pixel coordinates, x2/y2 exclusive.
    """
    width, height = image_size
    noise = rng.normal(BACKGROUND, noise_std, size=(height, width, 3))
    image = Image.fromarray(np.clip(noise, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    count = int(rng.integers(objects_per_image[0], objects_per_image[1] + 1))
    objects = []
    for _ in range(count):
        class_index = int(rng.integers(len(classes)))
        box = _place(rng, image_size, box_size, [b for _, b in objects], margin)
        if box is None:
            break
        colour = PALETTE[class_index % len(PALETTE)]
        extent = [box[0], box[1], box[2] - 1, box[3] - 1]  # PIL includes both end pixels
        if class_index % 2 == 0:
            draw.rectangle(extent, fill=colour)
        else:
            draw.ellipse(extent, fill=colour)
        objects.append((classes[class_index], box))
    return image, objects


def write_synthetic_kitti(
    root,
    num_images,
    image_size=(128, 96),
    classes=("car", "person"),
    seed=0,
    objects_per_image=(1, 3),
    box_size=(16, 40),
    noise_std=12.0,
    extension=".png",
    image_dir_name="image_2",
    label_dir_name="label_2",
    force=False,
):
    """Write ``root/<image_dir_name>/NNNNNN<extension>`` and ``root/<label_dir_name>/NNNNNN.txt``.

    Args:
        root: dataset folder (created).
        num_images: number of images.
        image_size: (W, H) in pixels.
        classes: class names; class i is drawn in PALETTE[i] (rectangle if i is even, else
            ellipse).
        seed: seed of the numpy Generator; the output depends only on the arguments.
        objects_per_image: (min, max) objects per image (fewer if they do not fit).
        box_size: (min, max) box side in pixels.
        noise_std: standard deviation of the Gaussian background noise (grey level 110).
        extension: ".png" (lossless, exact colours) or ".jpg".
        force: overwrite an existing image folder's files.

    Returns:
        {stem: [(class_name, (x1, y1, x2, y2)), ...]} with integer pixel boxes.
    """
    root = Path(root)
    image_dir, label_dir = root / image_dir_name, root / label_dir_name
    if image_dir.is_dir() and any(image_dir.iterdir()) and not force:
        raise OutputExistsError(image_dir)
    rng = np.random.default_rng(seed)
    truth = {}
    for index in range(num_images):
        stem = f"{index:06d}"
        image, objects = synthetic_image(
            rng, image_size, tuple(classes), objects_per_image, box_size, noise_std
        )
        buffer = io.BytesIO()
        image.save(
            buffer, _FORMATS[extension.lower()], **({"quality": 95} if "jp" in extension else {})
        )
        atomic_write_bytes(image_dir / f"{stem}{extension}", buffer.getvalue())
        text = "".join(format_kitti_line(name, box) + "\n" for name, box in objects)
        atomic_write_text(label_dir / f"{stem}.txt", text)
        truth[stem] = objects
    return truth
