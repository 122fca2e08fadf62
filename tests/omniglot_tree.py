"""Tiny Omniglot-shaped trees of generated PNGs, for tests that need no download."""
import io
import zipfile

import numpy as np
from PIL import Image


def character_png(rng, size=105):
    """A 1-bit image like Omniglot's: black strokes (a few random lines) on white."""
    image = np.ones((size, size), dtype=bool)
    for _ in range(3):
        r, c = rng.integers(10, size - 10, 2)
        length = rng.integers(15, 40)
        if rng.random() < 0.5:
            image[r:r + 4, c:c + length] = False
        else:
            image[r:r + length, c:c + 4] = False
    buffer = io.BytesIO()
    Image.fromarray(image).convert("1").save(buffer, format="PNG")
    return buffer.getvalue()


def layout(set_name, alphabets, characters, drawers, seed=0):
    """{relative path: PNG bytes} in the official layout."""
    rng = np.random.default_rng(seed)
    files = {}
    for alphabet in alphabets:
        for c in range(1, characters + 1):
            for d in range(1, drawers + 1):
                files[f"{set_name}/{alphabet}/character{c:02d}/{c:04d}_{d:02d}.png"] = character_png(rng)
    return files


def write_folder(root, files):
    for relative, data in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def write_zip(path, files):
    with zipfile.ZipFile(path, "w") as archive:
        for relative, data in files.items():
            archive.writestr(relative, data)
    return path
