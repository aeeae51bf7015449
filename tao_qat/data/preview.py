"""Visual check of the input pipeline: a grid of (augmented) network inputs with their boxes.

    qat preview -e spec.txt -o grid.png [-n 16] [--split train] [--seed 3]

Boxes are drawn exactly as the pipeline emits them (network-input pixels after preprocessing and
augmentation), one colour per target class, so misplaced boxes are easy to spot.
"""

import math

import numpy as np
from PIL import Image, ImageDraw

from tao_qat.common.fileio import atomic_path, check_writable_output
from tao_qat.spec.paths import spec_dir_of

# One outline colour per class id (cycled).
COLOURS = ((255, 64, 64), (64, 160, 255), (64, 230, 64), (255, 210, 0), (230, 64, 230))
_GAP = 4


def preview_batch(experiment, split="train", num_images=16, *, spec_dir=None, seed=None):
    """Pull ``num_images`` examples of ``split`` through the pipeline.

    Returns:
        dict of numpy arrays (the batch layout of ``build_dataset``) with at most num_images
        rows (fewer only for a non-repeating split with fewer frames).
    """
    from tao_qat.data.decode import reraise_data_errors
    from tao_qat.data.pipeline import build_dataset

    dataset = build_dataset(
        experiment,
        split,
        batch_size=num_images,
        seed=seed,
        spec_dir=spec_dir,
        drop_remainder=False,
    )
    with reraise_data_errors():
        batch = next(iter(dataset))
    return {key: value.numpy() for key, value in batch.items()}


def draw_example(image, boxes, classes, class_names=None):
    """PIL RGB image of one network input with its boxes outlined.

    Args:
        image: float [H, W, C] in [0, 1] (C = 1 or 3).
        boxes: float [M, 4] (x1, y1, x2, y2) in pixels; classes: int [M] (-1 = padding).
        class_names: optional names drawn next to each box.
    """
    pixels = np.clip(np.asarray(image) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if pixels.shape[-1] == 1:
        pixels = np.repeat(pixels, 3, axis=-1)
    picture = Image.fromarray(pixels, "RGB")
    draw = ImageDraw.Draw(picture)
    for box, class_id in zip(boxes, classes, strict=True):
        if class_id < 0:
            continue
        colour = COLOURS[int(class_id) % len(COLOURS)]
        x1, y1, x2, y2 = (float(v) for v in box)
        # PIL outlines include both end pixels; x2/y2 are exclusive box edges.
        draw.rectangle([x1, y1, max(x1, x2 - 1), max(y1, y2 - 1)], outline=colour, width=1)
        if class_names:
            draw.text((x1 + 2, y1 + 1), class_names[int(class_id)], fill=colour)
    return picture


def render_grid(batch, class_names=None, columns=None):
    """One PIL image: the batch's examples on a grid (row-major) with boxes drawn."""
    count, height, width = batch["images"].shape[:3]
    columns = columns or math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    grid = Image.new(
        "RGB", (columns * (width + _GAP) - _GAP, rows * (height + _GAP) - _GAP), (255, 255, 255)
    )
    for i in range(count):
        n = int(batch["num_boxes"][i])
        tile = draw_example(
            batch["images"][i], batch["boxes"][i, :n], batch["classes"][i, :n], class_names
        )
        grid.paste(tile, ((i % columns) * (width + _GAP), (i // columns) * (height + _GAP)))
    return grid


def write_preview(spec_path, output, num_images=16, split="train", seed=None, force=False):
    """Load an Experiment spec and write the preview grid PNG to ``output``; returns its Path.

    The spec is parsed without the full training validation, so a spec still being written
    can be previewed; relative data paths resolve against the spec's folder.
    """
    from tao_qat.spec.defaults import target_class_names
    from tao_qat.spec.loader import load_experiment_spec

    output = check_writable_output(output, force)
    experiment = load_experiment_spec(spec_path, validate=False)
    batch = preview_batch(experiment, split, num_images, spec_dir=spec_dir_of(spec_path), seed=seed)
    grid = render_grid(batch, target_class_names(experiment))
    with atomic_path(output) as tmp:
        grid.save(tmp, format="PNG")
    return output
