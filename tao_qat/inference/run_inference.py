"""``qat inference``: detect objects in images with a model and an inference spec (§9).

Each image is resized to the network input (bilinear with antialiasing, as TAO's PIL
preprocessing), run through the model, clustered per ``bbox_handler_config`` and rescaled to
the original size; results are ``labels/<stem>.txt`` (TAO's KITTI dump) and
``images_annotated/<stem>.<ext>`` (class-coloured boxes with confidence).
"""

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from tao_qat.common.errors import DataError, OutputExistsError, UsageError
from tao_qat.common.fileio import atomic_path
from tao_qat.common.progress import Progress
from tao_qat.postprocessing.kitti_dump import write_kitti_detections
from tao_qat.postprocessing.postprocess import postprocess_batch, rescale_detections
from tao_qat.postprocessing.settings import (
    build_inference_clustering_settings,
    inference_display_names,
)
from tao_qat.spec import defaults
from tao_qat.spec.loader import load_inference_spec
from tao_qat.spec.paths import resolve_spec_path, spec_dir_of

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm")
LABELS_DIRNAME = "labels"
ANNOTATED_DIRNAME = "images_annotated"


@dataclass
class InferenceOptions:
    """Flags of ``qat inference`` as plain values (see the CLI help)."""

    spec_path: str
    image_path: str
    results_dir: str
    model_path: str | None = None
    batch_size: int | None = None
    key: str | None = None
    force: bool = False
    echo: object = print


def list_images(image_path):
    """Sorted image files of a folder (jpg/jpeg/png/ppm, any case) or the single file given."""
    path = Path(image_path)
    if path.is_file():
        if path.suffix.lower() not in IMAGE_EXTENSIONS:
            raise DataError(f"{path}: not an image ({', '.join(IMAGE_EXTENSIONS)})")
        return [path]
    if not path.is_dir():
        raise DataError(f"{path}: no such file or folder")
    images = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not images:
        raise DataError(f"{path}: no {'/'.join(IMAGE_EXTENSIONS)} images")
    return images


def load_image(path, size, channels=3):
    """(network input float32 [H, W, C] in [0, 1], original PIL image) of ``path``.

    ``size`` is (W, H). Raises DataError naming the file if it cannot be decoded.
    """
    try:
        with Image.open(path) as opened:
            original = opened.convert("RGB")
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise DataError(f"{path}: cannot read image ({exc})") from exc
    if original.width == 0 or original.height == 0:
        raise DataError(f"{path}: empty image")
    resized = original.resize(size, Image.BILINEAR, reducing_gap=None)
    if channels == 1:
        resized = resized.convert("L")
    array = np.asarray(resized, np.float32) / 255.0
    return (array[..., None] if channels == 1 else array), original


def _model_path(spec, options, spec_dir):
    if options.model_path:
        return options.model_path
    config = spec.inferencer_config
    if config.WhichOneof("model_config_type") == "tlt_config" and config.tlt_config.model:
        return resolve_spec_path(config.tlt_config.model, spec_dir)
    raise UsageError("no model: give -m/--model_path or set inferencer_config.tlt_config.model")


def _check_outputs(results_dir, images, force):
    for image in images:
        for path in (results_dir / LABELS_DIRNAME / f"{image.stem}.txt",
                     results_dir / ANNOTATED_DIRNAME / image.name):
            if path.exists() and not force:
                raise OutputExistsError(path)


def run_inference(options):
    """Run inference; return the list of (image path, Detections in original pixels)."""
    from tao_qat.inference.predictor import load_predictor

    spec = load_inference_spec(options.spec_path)
    spec_dir = spec_dir_of(options.spec_path)
    config, handler = spec.inferencer_config, spec.bbox_handler_config
    class_names = list(config.target_classes)
    height, width = defaults.inference_image_size(config)
    channels = defaults.inference_image_channels(config)
    stride = defaults.inference_stride(config)
    batch_size = options.batch_size or defaults.inference_batch_size(config)
    clustering = build_inference_clustering_settings(handler, class_names)
    display_names = inference_display_names(handler, class_names)
    colors = _class_colors(handler, class_names)
    images = list_images(options.image_path)
    results_dir = Path(options.results_dir)
    _check_outputs(results_dir, images, options.force)

    predictor = load_predictor(_model_path(spec, options, spec_dir), key=options.key)
    if tuple(predictor.input_shape) != (height, width, channels):
        raise UsageError(
            f"model input {predictor.input_shape} (H, W, C) differs from the spec's "
            f"inferencer_config ({height}, {width}, {channels})"
        )
    results = []
    with Progress(math.ceil(len(images) / batch_size), desc="inference",
                  items_name="images") as progress:
        for start in range(0, len(images), batch_size):
            paths = images[start:start + batch_size]
            loaded = [load_image(p, (width, height), channels) for p in paths]
            cov, bbox = predictor(np.stack([array for array, _ in loaded]))
            detections = postprocess_batch(cov, bbox, clustering, stride=stride,
                                           image_size=(width, height))
            for path, (_, original), found in zip(paths, loaded, detections, strict=True):
                found = rescale_detections(found, (width, height), original.size)
                _write_outputs(results_dir, path, original, found, display_names, colors,
                               handler, options.force)
                results.append((path, found))
            progress.update(1, items=len(paths))
    total = sum(len(found) for _, found in results)
    options.echo(f"{total} detections in {len(results)} images -> {results_dir}")
    return results


def _class_colors(handler, class_names):
    entries = handler.classwise_bbox_handler_config
    colors = []
    for name in class_names:
        entry = entries.get(name)
        color = entry.bbox_color if entry is not None and entry.HasField("bbox_color") else None
        colors.append((color.R, color.G, color.B) if color is not None else None)
    return colors


def _write_outputs(results_dir, path, original, detections, names, colors, handler, force):
    from tao_qat.inference.overlay import draw_detections

    write_kitti_detections(results_dir / LABELS_DIRNAME / f"{path.stem}.txt", detections,
                           names, force=force)
    if handler.disable_overlay:
        return
    annotated = draw_detections(original, detections, names, colors,
                                line_width=handler.overlay_linewidth or 2)
    target = results_dir / ANNOTATED_DIRNAME / path.name
    with atomic_path(target) as tmp:
        annotated.save(tmp, format=_pil_format(path))


def _pil_format(path):
    return {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".ppm": "PPM"}[path.suffix.lower()]
