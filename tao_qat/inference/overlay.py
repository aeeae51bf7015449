"""Draw detections on images (Pillow): class-coloured boxes with name and confidence."""

from PIL import Image, ImageDraw, ImageFont

# Distinct default colours (RGB) for class ids without a bbox_color in the spec.
PALETTE = (
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
    (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212),
)


def class_color(class_id, colors=None):
    """RGB tuple of ``class_id``: ``colors[class_id]`` when given and set, else the palette."""
    if colors and class_id < len(colors) and colors[class_id]:
        return tuple(int(v) for v in colors[class_id])
    return PALETTE[class_id % len(PALETTE)]


def draw_detections(image, detections, class_names, colors=None, line_width=2, min_score=None):
    """Return a copy of ``image`` (PIL RGB) with ``detections`` drawn.

    Args:
        image: PIL image; detections: Detections in this image's pixels.
        class_names: label per class id; colors: optional list of RGB per class id.
        line_width: box outline width in pixels.
        min_score: skip detections scoring below this (None: draw all).
    """
    canvas = image.convert("RGB").copy()
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    for box, score, class_id in zip(
        detections.boxes, detections.scores, detections.class_ids, strict=True
    ):
        if min_score is not None and score < min_score:
            continue
        color = class_color(int(class_id), colors)
        x1, y1, x2, y2 = (float(v) for v in box)
        draw.rectangle([x1, y1, x2, y2], outline=color, width=max(1, int(line_width)))
        label = f"{class_names[class_id]} {score:.2f}"
        left, top, right, bottom = draw.textbbox((x1, y1), label, font=font)
        text_top = max(0.0, y1 - (bottom - top) - 2)
        draw.rectangle([x1, text_top, x1 + (right - left) + 4, text_top + (bottom - top) + 2],
                       fill=color)
        draw.text((x1 + 2, text_top), label, fill=(0, 0, 0), font=font)
    return canvas


def side_by_side(images, titles=None, gap=8):
    """Concatenate PIL images horizontally (same height after scaling), titles on top."""
    height = min(image.height for image in images)
    scaled = [image.resize((round(image.width * height / image.height), height))
              for image in images]
    title_height = 16 if titles else 0
    width = sum(image.width for image in scaled) + gap * (len(scaled) - 1)
    sheet = Image.new("RGB", (width, height + title_height), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    x = 0
    for index, image in enumerate(scaled):
        sheet.paste(image, (x, title_height))
        if titles:
            draw.text((x + 2, 2), titles[index], fill=(0, 0, 0), font=ImageFont.load_default())
        x += image.width + gap
    return sheet
