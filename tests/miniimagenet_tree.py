"""Tiny Mini-ImageNet datasets, generated: the same images in each of the three real layouts.

Class c of a split is a coloured shape (the colour and the shape follow from c) on a noisy
background, at a random place and size in each image: classes differ in a learnable way.
"""
import csv
import io
import pickle

import numpy as np
from PIL import Image, ImageDraw

COLOURS = [(220, 40, 40), (40, 180, 40), (40, 60, 220), (230, 200, 30), (200, 40, 200), (30, 200, 210),
           (240, 140, 20), (120, 60, 20)]
SHAPES = ("ellipse", "rectangle", "triangle", "cross")


def shape_image(rng, colour, shape, size):
    """One (size, size, 3) uint8 image: a shape of ``colour`` on grey noise."""
    background = rng.integers(90, 166, (size, size, 3), dtype=np.uint8)
    image = Image.fromarray(background)
    draw = ImageDraw.Draw(image)
    extent = rng.uniform(0.35, 0.6) * size
    x0, y0 = rng.uniform(0, size - extent, 2)
    x1, y1 = x0 + extent, y0 + extent
    jitter = tuple(int(np.clip(c + rng.integers(-20, 21), 0, 255)) for c in colour)
    if shape == "ellipse":
        draw.ellipse([x0, y0, x1, y1], fill=jitter)
    elif shape == "rectangle":
        draw.rectangle([x0, y0, x1, y1], fill=jitter)
    elif shape == "triangle":
        draw.polygon([(x0, y1), (x1, y1), ((x0 + x1) / 2, y0)], fill=jitter)
    else:
        w = extent / 3
        draw.rectangle([x0 + w, y0, x1 - w, y1], fill=jitter)
        draw.rectangle([x0, y0 + w, x1, y1 - w], fill=jitter)
    return np.asarray(image)


def class_images(rng, first_class, classes, per_class, size):
    """(classes, per_class, size, size, 3) uint8: classes first_class, first_class + 1, ..."""
    out = []
    for c in range(first_class, first_class + classes):
        colour, shape = COLOURS[c % len(COLOURS)], SHAPES[(c // len(COLOURS) + c) % len(SHAPES)]
        out.append([shape_image(rng, colour, shape, size) for _ in range(per_class)])
    return np.array(out, dtype=np.uint8)


def jpeg(array, quality=95):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def dataset(splits=(("train", 4), ("val", 2), ("test", 3)), per_class=6, size=84, seed=0):
    """{split: {wnid: [(file name, JPEG bytes)]}}: the classes of each split, distinct across splits."""
    rng = np.random.default_rng(seed)
    data, first = {}, 0
    for split, classes in splits:
        images = class_images(rng, first, classes, per_class, size)
        data[split] = {f"n{first + c:08d}": [(f"n{first + c:08d}_{i:04d}.JPEG", jpeg(images[c, i]))
                                              for i in range(per_class)] for c in range(classes)}
        first += classes
    return data


def write_folders(root, data):
    """The authors' layout: <root>/<split>/<wnid>/*.JPEG."""
    for split, classes in data.items():
        for wnid, files in classes.items():
            (root / split / wnid).mkdir(parents=True, exist_ok=True)
            for name, blob in files:
                (root / split / wnid / name).write_bytes(blob)
    return root


def write_csv(root, data):
    """Ravi and Larochelle's layout: <root>/<split>.csv (filename,label) beside <root>/images/."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    for split, classes in data.items():
        with open(root / f"{split}.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["filename", "label"])
            for wnid, files in classes.items():
                for name, blob in files:
                    (root / "images" / name).write_bytes(blob)
                    writer.writerow([name, wnid])
    return root


def write_pickles(root, data, protocol=4):
    """The libraries' caches: <root>/mini-imagenet-cache-<split>.pkl with image_data and class_dict
    (the decoded JPEGs, so every layout holds the same pixels)."""
    root.mkdir(parents=True, exist_ok=True)
    for split, classes in data.items():
        images, class_dict = [], {}
        for wnid, files in classes.items():
            class_dict[wnid] = list(range(len(images), len(images) + len(files)))
            images += [np.asarray(Image.open(io.BytesIO(blob)).convert("RGB")) for _, blob in files]
        with open(root / f"mini-imagenet-cache-{split}.pkl", "wb") as f:
            pickle.dump({"image_data": np.array(images, dtype=np.uint8), "class_dict": class_dict}, f,
                        protocol=protocol)
    return root
