"""Cut the NEON tree orthophotos into the 384x384 KITTI tiles vendored in examples/trees/data.

Re-running it on the same source reproduces the tiles (same Pillow version -> same bytes):

    python examples/trees/make_tiles.py --source /work/shared/data/neon_trees --force

Source: a KITTI folder (``image_2/*.png``, ``label_2/*.txt``, class ``Tree``) holding the two
DeepForest sample crops (see examples/trees/README.md for provenance and licence).

Both images are split the same way: the bottom 384 rows (one tile row) are held out for
validation and the rest is for training, so the two splits never share a pixel and both see
both forests.

- train: tiles of the upper part at x, y = 0, 192, 384, ... (stride 192, so neighbouring tiles
  overlap by half) plus a last row/column shifted inward to end exactly at the part's border.
- val: non-overlapping tiles of the bottom band at x = 0, 384, 768, ...; the last column reaches
  past the image and is padded with black (as TAO's loader pads smaller images), so every pixel
  of the band is in exactly one tile.
- Boxes are clipped to the tile; a box keeping less than 40% of its area is dropped. Class
  names are lower-cased (``tree``). Tiles are saved as baseline JPEG, quality 92, optimized
  Huffman tables; tiles without a box are kept (empty label file).
"""

import argparse
import io
import sys
from pathlib import Path

from PIL import Image

from tao_qat.data.kitti import format_kitti_line, read_kitti_labels

TILE = 384
TRAIN_STRIDE = 192
MIN_KEPT_FRACTION = 0.4
JPEG_OPTIONS = {"quality": 92, "optimize": True}
SOURCE_STEMS = (
    "2019_YELL_2_528000_4978000_image_crop2_north",  # 2299x1704, 387 boxes
    "2019_YELL_2_541000_4977000_image_crop",  # 1249x1035, 279 boxes
)
SPLITS = ("train", "val")


def overlapping_positions(length, tile=TILE, stride=TRAIN_STRIDE):
    """0, stride, 2*stride, ... while the tile fits, then length - tile if not yet covered."""
    positions = list(range(0, length - tile + 1, stride))
    if positions[-1] + tile < length:
        positions.append(length - tile)
    return positions


def padded_positions(length, tile=TILE):
    """0, tile, 2*tile, ... until the image is covered (the last tile may reach past it)."""
    return list(range(0, length, tile))


def split_rows(height, tile=TILE):
    """(train rows [0, band), validation rows [band, height)): the band is the last tile row."""
    band = height - tile
    return (0, band), (band, height)


def tile_origins(split, width, height):
    """Top-left corners (x0, y0) of the tiles of ``split`` in an image of width x height."""
    (train_top, train_bottom), (band_top, _) = split_rows(height)
    if split == "train":
        rows = overlapping_positions(train_bottom - train_top)
        return [(x0, train_top + y0) for y0 in rows for x0 in overlapping_positions(width)]
    return [(x0, band_top) for x0 in padded_positions(width)]


def clip_boxes(objects, x0, y0, tile=TILE, min_fraction=MIN_KEPT_FRACTION, region=None):
    """Boxes of ``objects`` in tile (x0, y0) coordinates, clipped; drops those under 40% kept.

    ``region`` (y_top, y_bottom) further limits the visible rows (the tile's split).
    """
    top, bottom = region or (y0, y0 + tile)
    boxes = []
    for obj in objects:
        x1, y1, x2, y2 = obj.box
        area = (x2 - x1) * (y2 - y1)
        cx1, cy1 = max(x1, x0), max(y1, y0, top)
        cx2, cy2 = min(x2, x0 + tile), min(y2, y0 + tile, bottom)
        if cx2 <= cx1 or cy2 <= cy1 or (cx2 - cx1) * (cy2 - cy1) < min_fraction * area:
            continue
        boxes.append((obj.class_name, (cx1 - x0, cy1 - y0, cx2 - x0, cy2 - y0)))
    return boxes


def make_split(source, out, stem, split):
    """Write the ``split`` tiles of one source image; returns (number of tiles, number of boxes)."""
    image = Image.open(source / "image_2" / f"{stem}.png").convert("RGB")
    objects = read_kitti_labels(source / "label_2" / f"{stem}.txt")
    width, height = image.size
    region = split_rows(height)[SPLITS.index(split)]
    short = "_".join(stem.split("_")[1:2] + stem.split("_")[3:5])  # YELL_528000_4978000
    (out / "image_2").mkdir(parents=True, exist_ok=True)
    (out / "label_2").mkdir(parents=True, exist_ok=True)
    tiles = boxes = 0
    for x0, y0 in tile_origins(split, width, height):
        tile = Image.new("RGB", (TILE, TILE))  # black
        tile.paste(image.crop((x0, y0, min(x0 + TILE, width), min(y0 + TILE, region[1]))))
        name = f"{short}_x{x0:04d}_y{y0:04d}"
        buffer = io.BytesIO()
        tile.save(buffer, "JPEG", **JPEG_OPTIONS)
        (out / "image_2" / f"{name}.jpg").write_bytes(buffer.getvalue())
        kept = clip_boxes(objects, x0, y0, region=region)
        lines = "".join(format_kitti_line(cls, box) + "\n" for cls, box in kept)
        (out / "label_2" / f"{name}.txt").write_text(lines)
        tiles += 1
        boxes += len(kept)
    return tiles, boxes


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", type=Path, required=True, help="KITTI folder of the crops")
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parent / "data", help="output"
    )
    parser.add_argument("--force", action="store_true", help="replace existing tiles")
    args = parser.parse_args(argv)
    for split in SPLITS:
        folder = args.out / split
        old = sorted(folder.glob("image_2/*.jpg")) + sorted(folder.glob("label_2/*.txt"))
        if old and not args.force:
            sys.exit(f"{folder}: tiles exist (use --force to replace them)")
        for path in old:
            path.unlink()
    for split in SPLITS:
        for stem in SOURCE_STEMS:
            tiles, boxes = make_split(args.source, args.out / split, stem, split)
            print(f"{split}: {tiles} tiles, {boxes} boxes (from {stem})")
    total = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"total size: {total / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
