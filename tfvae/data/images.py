"""A folder of images (png, jpg, bmp, gif) as arrays, class sub-folders as labels.

Layouts:

    photos/cat/1.png, photos/dog/7.jpg, ...   labels "cat", "dog" (sub-folder names)
    photos/1.png, photos/2.png, ...           no labels

Files are taken in sorted path order; names starting with `.` and files of
other suffixes are skipped. Every image becomes `(H, W, C)` uint8: `C` is 3
for `color_mode="rgb"`, 1 for `"grayscale"`, and by default 1 when every
file is greyscale, else 3. With `image_size=(H, W)` each image is centre-
cropped to that aspect ratio and resized (bilinear); without it every image
must have one size.
"""

import os

import numpy as np
from PIL import Image

from tfvae import memory
from tfvae.errors import TfvaeError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
COLOR_MODES = ("rgb", "grayscale")
GREY_MODES = ("1", "L", "LA", "I", "I;16", "F")
_PIL_MODES = {"rgb": "RGB", "grayscale": "L"}
# PIL refuses images above this many pixels (decompression bombs); so does tfvae.
Image.MAX_IMAGE_PIXELS = 10_000 * 10_000


def is_image_file(name):
    return name.lower().endswith(IMAGE_SUFFIXES) and not os.path.basename(name).startswith(".")


def _images_under(folder):
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found.extend(os.path.join(root, f) for f in sorted(files) if is_image_file(f))
    return found


def list_image_files(folder):
    """`[(path, class name or None)]` of the images in `folder`, in sorted order."""
    if not os.path.isdir(folder):
        raise TfvaeError(f"image folder not found: {folder}")
    entries = sorted(e for e in os.listdir(folder) if not e.startswith("."))
    top = [os.path.join(folder, e) for e in entries if is_image_file(e)]
    classes = [e for e in entries if os.path.isdir(os.path.join(folder, e))]
    labelled = [
        (path, name) for name in classes for path in _images_under(os.path.join(folder, name))
    ]
    if top and labelled:
        raise TfvaeError(
            f"image folder {folder} holds images both at its top ({os.path.basename(top[0])}) "
            "and in class sub-folders; put every image in a class sub-folder, or none"
        )
    files = labelled or [(path, None) for path in top]
    if not files:
        raise TfvaeError(
            f"image folder {folder} holds no images ({', '.join(IMAGE_SUFFIXES)}), neither at "
            "its top nor in class sub-folders"
        )
    return files


def _open(path):
    try:
        image = Image.open(path)
        image.load()
        return image
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        text = " ".join(str(error).split()) or type(error).__name__
        raise TfvaeError(f"cannot read image {path}: {text}") from None


def _header(path):
    try:
        with Image.open(path) as image:
            return image.size, image.mode
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        text = " ".join(str(error).split()) or type(error).__name__
        raise TfvaeError(f"cannot read image {path}: {text}") from None


def resolve_color_mode(paths, color_mode=None):
    """`color_mode`, or grayscale when every image is greyscale, else rgb."""
    if color_mode is not None:
        return color_mode
    return "grayscale" if all(_header(p)[1] in GREY_MODES for p in paths) else "rgb"


def check_sizes(paths, image_size=None):
    """`(H, W)` of the images; refuses mixed sizes unless `image_size` is given."""
    if image_size is not None:
        return tuple(image_size)
    first_size = None
    for path in paths:
        size, _ = _header(path)
        if first_size is None:
            first_size, first_path = size, path
        elif size != first_size:
            raise TfvaeError(
                f"images differ in size: {path} is {size[0]}x{size[1]} but {first_path} is "
                f"{first_size[0]}x{first_size[1]} (width x height); pass --image-size H W to "
                "resize them all"
            )
    width, height = first_size
    return height, width


def read_image(path, image_size=None, color_mode="rgb"):
    """One image as `(H, W, C)` uint8, centre-cropped and resized to `image_size` if given."""
    image = _open(path)
    if getattr(image, "n_frames", 1) > 1:
        image.seek(0)
    image = image.convert(_PIL_MODES[color_mode])
    if image_size is not None:
        height, width = image_size
        image = image.resize(
            (width, height), Image.Resampling.BILINEAR, box=_centre_box(image.size, height, width)
        )
    x = np.asarray(image, dtype=np.uint8)
    return x[..., np.newaxis] if x.ndim == 2 else x


def _centre_box(size, height, width):
    """The largest centred box of `size` with the aspect ratio `width / height`."""
    w, h = size
    if w * height > h * width:
        crop = h * width / height
        return ((w - crop) / 2, 0, (w + crop) / 2, h)
    crop = w * height / width
    return (0, (h - crop) / 2, w, (h + crop) / 2)


def iter_folder_examples(folder, image_size=None, color_mode=None):
    """Yields `(image, class name or None)` for every image of `folder`, in order.

    The reader a streaming pipeline can sit on: one image in memory at a time.
    """
    files = list_image_files(folder)
    paths = [p for p, _ in files]
    size = check_sizes(paths, image_size)
    mode = resolve_color_mode(paths, color_mode)
    for path, label in files:
        yield read_image(path, size if image_size is not None else None, mode), label


def load_image_folder(folder, image_size=None, color_mode=None):
    """`(x, labels, color_mode)`: the images of `folder` as `(N, H, W, C)` uint8.

    `labels` is an array of class names (str), or `None` without sub-folders.
    """
    files = list_image_files(folder)
    paths = [p for p, _ in files]
    height, width = check_sizes(paths, image_size)
    mode = resolve_color_mode(paths, color_mode)
    channels = 3 if mode == "rgb" else 1
    need = len(paths) * height * width * channels
    available = memory.available_memory()
    if available is not None and need * 5 > available:
        # uint8 now, float32 after scaling: five bytes a value.
        raise TfvaeError(
            f"image folder {folder}: {len(paths):,} images of {height}x{width}x{channels} need "
            f"{memory.format_bytes(need * 5)}, more than the {memory.format_bytes(available)} "
            "of memory available; pass a smaller --image-size"
        )
    x = np.empty((len(paths), height, width, channels), np.uint8)
    for i, path in enumerate(paths):
        x[i] = read_image(path, image_size, mode)
    labels = None
    if files[0][1] is not None:
        labels = np.asarray([label for _, label in files])
    return x, labels, mode
