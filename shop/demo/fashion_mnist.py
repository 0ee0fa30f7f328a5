"""Reading Fashion-MNIST (Zalando, MIT licence) from the Debian package ``dataset-fashion-mnist``.

The demo catalogue is built from the train split; the test split is never loaded into
the shop and serves as query photos when the visual search is evaluated.
"""

import gzip
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DEFAULT_DIRS = [
    Path("/usr/share/dataset-fashion-mnist"),
    Path("/usr/share/fashion-mnist"),
    Path("/usr/share/datasets/fashion-mnist"),
]

CATEGORIES = [
    ("T-shirt/top", "t-shirts-tops", "T-shirt"),
    ("Trouser", "trousers", "Trousers"),
    ("Pullover", "pullovers", "Pullover"),
    ("Dress", "dresses", "Dress"),
    ("Coat", "coats", "Coat"),
    ("Sandal", "sandals", "Sandals"),
    ("Shirt", "shirts", "Shirt"),
    ("Sneaker", "sneakers", "Sneakers"),
    ("Bag", "bags", "Bag"),
    ("Ankle boot", "ankle-boots", "Ankle boots"),
]

FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


class DatasetMissing(Exception):
    pass


@dataclass
class Split:
    name: str
    images: np.ndarray  # (n, 28, 28) uint8, bright garment on black as published
    labels: np.ndarray  # (n,) uint8, index into CATEGORIES


def find_dataset_dir(path=None):
    """The folder holding the four IDX files, from ``path``, the package, or ``dpkg -L``."""
    candidates = [Path(path)] if path else list(DEFAULT_DIRS)
    if not path:
        listing = Path("/var/lib/dpkg/info/dataset-fashion-mnist.list")
        if listing.exists():
            for line in listing.read_text().splitlines():
                if line.endswith(FILES["train"][0]):
                    candidates.insert(0, Path(line).parent)
    for folder in candidates:
        if all((folder / name).exists() for pair in FILES.values() for name in pair):
            return folder
    where = path or "the Debian package dataset-fashion-mnist"
    raise DatasetMissing(
        f"Fashion-MNIST was not found in {where}. Install it with "
        "`sudo apt-get install dataset-fashion-mnist` (the README's set-up does this)."
    )


#: Photos in the train split, from which the demo catalogue is drawn.
TRAIN_PHOTOS = 60_000
#: The most values an IDX file of the data set holds (the train split's photos, 28 x 28).
MAX_IDX_VALUES = TRAIN_PHOTOS * 28 * 28


def _read_idx(path, expected_magic):
    """The array in a gzipped IDX file. Only what its header announces is read, and only
    within the data set's size: a file that is damaged, not gzip, or expands without end
    is refused with :class:`DatasetMissing`, not read whole into memory."""
    try:
        with gzip.open(path, "rb") as fh:
            header = fh.read(4)
            if len(header) < 4 or struct.unpack(">I", header)[0] != expected_magic:
                raise DatasetMissing(f"{path} is not an IDX file of the expected kind.")
            ndim = expected_magic & 0xFF
            shape = struct.unpack(">" + "I" * ndim, fh.read(4 * ndim).ljust(4 * ndim, b"\0"))
            size = int(np.prod(shape, dtype=np.int64))
            if not 0 < size <= MAX_IDX_VALUES:
                raise DatasetMissing(f"{path} announces {size} values; it is not Fashion-MNIST.")
            data = fh.read(size)
    except (OSError, EOFError, struct.error) as exc:  # gzip.BadGzipFile is an OSError
        raise DatasetMissing(f"{path} could not be read: {exc}") from exc
    if len(data) != size:
        raise DatasetMissing(f"{path} is truncated: {len(data)} of {size} values.")
    return np.frombuffer(data, dtype=np.uint8).reshape(shape)


def load_split(name="train", path=None):
    folder = find_dataset_dir(path)
    images_file, labels_file = FILES[name]
    images = _read_idx(folder / images_file, 0x00000803)
    labels = _read_idx(folder / labels_file, 0x00000801)
    if len(images) != len(labels):
        raise DatasetMissing(f"Fashion-MNIST {name} images and labels differ in length.")
    return Split(name, images, labels)


def stratified_indices(labels, size, seed=0):
    """``size`` indices with the classes as equally represented as ``size`` allows.

    The order is fixed by ``seed`` so that a larger sample contains a smaller one,
    which keeps ``load_demo_catalog --size`` additive.
    """
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    per_class = [rng.permutation(np.flatnonzero(labels == c)) for c in classes]
    # Interleave the classes so that any prefix is stratified.
    longest = max(len(p) for p in per_class)
    order = [p[i] for i in range(longest) for p in per_class if i < len(p)]
    return np.asarray(order[:size], dtype=np.int64)


def to_image(array):
    """The product photo for one 28x28 array: grey PNG-ready PIL image, as published."""
    from PIL import Image

    return Image.fromarray(np.asarray(array, dtype=np.uint8), mode="L")
