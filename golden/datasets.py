"""The data sets the golden model trains on: where they come from and how they are split.

Every loader returns a :class:`Dataset` of 8-bit greyscale images, the format the gateware
consumes. Splits are fixed: a data set spec always gives the same test set, whatever the
run's seed, so that test accuracies stay comparable across runs. ``docs/data.md`` documents
each split exactly.
"""

import http.client
import os
import shutil
import string
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from .idx import DatasetError, file_md5, read_idx

__all__ = [
    "Dataset", "DatasetError", "load_dataset", "download_mnist",
    "SPLIT_RANDOM_STATE", "DIGITS_TEST_SIZE", "MNIST_T10K_TEST_SIZE",
    "MNIST_MD5S", "MNIST_SHAPES", "MNIST_MIRROR", "DOWNLOAD_TIMEOUT",
]

# The random_state of every split made here. Changing it changes every test set.
SPLIT_RANDOM_STATE = 0
DIGITS_TEST_SIZE = 360
# Without MNIST's training files, t10k is split 8000/2000.
MNIST_T10K_TEST_SIZE = 2000

# MD5s of the canonical gzip-compressed MNIST files, keyed by file name.
MNIST_MD5S = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz":  "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz":  "ec29112dd5afa0611ce80d1b7f02629c",
}
# Image array shapes of MNIST's two sets. Uncompressed files have no known MD5, so at
# least their shapes are checked.
MNIST_SHAPES = {"train": (60000, 28, 28), "t10k": (10000, 28, 28)}
MNIST_MIRROR = "https://ossci-datasets.s3.amazonaws.com/mnist/"
# Seconds any one network operation of a download may block.
DOWNLOAD_TIMEOUT = 60


# eq=False: dataclass equality on tensor fields would be ambiguous.
@dataclass(frozen=True, eq=False)
class Dataset:
    """A labelled image data set, split into a training and a test set.

    Parameters
    ----------
    name : str
        The spec it was loaded from: ``"digits"``, ``"mnist"`` or ``"idx:DIR"``.
    train_x, test_x : torch.Tensor
        ``uint8`` images of shape ``(N, H, W)``, pixels 0..255.
    train_y, test_y : torch.Tensor
        ``int64`` class labels of shape ``(N,)``.
    n_classes : int
        Number of classes; labels are ``0 .. n_classes - 1``.
    note : str
        One sentence on the source and the split, printed by the command line.
    """

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    n_classes: int
    note: str

    @property
    def image_shape(self):
        """``(1, H, W)``: the images as single-channel network inputs."""
        return (1, *self.train_x.shape[1:])

    @property
    def n_inputs(self):
        """``H * W``, the size of a flattened image."""
        return self.train_x.shape[1] * self.train_x.shape[2]


def load_dataset(spec, data_dir=None, download=False, seed=0, mirror=None):
    """Load a data set by name.

    Parameters
    ----------
    spec : str
        ``"digits"``: scikit-learn's bundled 8x8 digits, 1797 samples split into a fixed
        stratified 1437/360 train/test split (``random_state=0``), pixels 0..16 rescaled
        to 0..255 as ``(v * 255 + 8) // 16``.

        ``"mnist"``: MNIST from ``data_dir``; the standard 60000/10000 split if the
        training files are present, else a fixed stratified 8000/2000 split of the t10k
        set (``random_state=0``).

        ``"idx:DIR"``: a train and a test pair of IDX image/label files in ``DIR``
        (Fashion-MNIST, KMNIST, ...), or a single pair split 80/20 the same way.
    data_dir : str or pathlib.Path, optional
        Directory of the MNIST files. If not given: ``$SYNCHRONY_DATA_DIR``, else the first of
        ``<repo>/data/mnist``, ``<repo>/../shared/data/mnist`` and ``~/.cache/synchrony/mnist``
        that holds the training files, else the first that exists.
    download : bool
        Fetch any MNIST file that is missing or fails its MD5 first; see :func:`download_mnist`.
    seed : int
        Ignored: no split depends on it, so that the test set never changes. Accepted so
        that callers can pass their run's seed uniformly.
    mirror : str, optional
        Base URL to download from; see :func:`download_mnist`.

    Returns
    -------
    Dataset

    Raises
    ------
    DatasetError
        For an unknown spec, a missing directory or file, or a corrupt, truncated or
        mismatched file; the message names the file and the problem.
    """
    if spec not in ("digits", "mnist") and not (spec.startswith("idx:") and spec[4:]):
        raise DatasetError(f"unknown dataset {spec!r}: expected 'digits', 'mnist' or 'idx:DIR'")
    if download and spec != "mnist":
        raise DatasetError(f"{spec}: only mnist can be downloaded")
    if spec == "digits":
        return _load_digits()
    if spec == "mnist":
        return _load_mnist(download_mnist(data_dir, mirror) if download else _mnist_dir(data_dir))
    return _load_idx_dir(Path(spec[4:]).expanduser())


def download_mnist(data_dir=None, mirror=None, timeout=DOWNLOAD_TIMEOUT):
    """Download MNIST's four canonical gzip files, skipping those already present and valid.

    Each file is written to a temporary name and renamed into place only once its MD5
    matches :data:`MNIST_MD5S`, so a failed download leaves nothing behind.

    Parameters
    ----------
    data_dir : str or pathlib.Path, optional
        Where to put the files; ``$SYNCHRONY_DATA_DIR`` or ``~/.cache/synchrony/mnist`` if
        not given. Created if needed.
    mirror : str, optional
        Base URL the file names are appended to; ``$SYNCHRONY_MNIST_MIRROR`` or
        :data:`MNIST_MIRROR` if not given.
    timeout : float
        Seconds any one network operation may block.

    Returns
    -------
    pathlib.Path
        The directory holding the files.

    Raises
    ------
    DatasetError
        If a download fails or a downloaded file's MD5 is wrong.
    """
    directory = Path(data_dir or os.environ.get("SYNCHRONY_DATA_DIR") or _cache_dir()).expanduser()
    base_url = (mirror or os.environ.get("SYNCHRONY_MNIST_MIRROR") or MNIST_MIRROR).rstrip("/") + "/"
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DatasetError(f"{directory}: cannot create: {error.strerror or error}") from None
    for name, md5 in MNIST_MD5S.items():
        target = directory / name
        if not (target.is_file() and file_md5(target) == md5):
            _fetch(base_url + name, target, md5, timeout)
    return directory


def _fetch(url, target, md5, timeout):
    try:
        descriptor, part_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.",
                                                 suffix=".part")
    except OSError as error:
        raise DatasetError(f"{target.parent}: cannot write: {error.strerror or error}") from None
    part = Path(part_name)
    try:
        with open(descriptor, "wb") as file, urllib.request.urlopen(url, timeout=timeout) as response:
            shutil.copyfileobj(response, file)
        actual = file_md5(part)
        if actual != md5:
            raise DatasetError(f"{target.name}: md5 mismatch: expected {md5}, got {actual} "
                               f"(downloaded from {url}; not kept)")
        part.replace(target)
    except (OSError, http.client.HTTPException) as error:
        raise DatasetError(f"{target.name}: download from {url} failed: {error}") from None
    finally:
        part.unlink(missing_ok=True)


def _cache_dir():
    return Path.home() / ".cache" / "synchrony" / "mnist"


def _mnist_dir(data_dir):
    """Resolve the MNIST directory, as documented in :func:`load_dataset`."""
    if data_dir is not None:
        return _existing_dir(Path(data_dir).expanduser(), "")
    if os.environ.get("SYNCHRONY_DATA_DIR"):
        return _existing_dir(Path(os.environ["SYNCHRONY_DATA_DIR"]).expanduser(),
                             " (from $SYNCHRONY_DATA_DIR)")
    repo = Path(__file__).resolve().parents[1]
    candidates = [repo / "data" / "mnist", repo.parent / "shared" / "data" / "mnist", _cache_dir()]
    existing = [c for c in candidates if c.is_dir()]
    # A directory with the full training set (e.g. after --download) wins over a t10k-only one.
    for candidate in existing:
        if any(candidate.glob("train-images-idx3-ubyte*")):
            return candidate
    if existing:
        return existing[0]
    raise DatasetError("mnist: no data directory found (looked in $SYNCHRONY_DATA_DIR, "
                       f"{', '.join(map(str, candidates))}); pass --data-dir DIR or --download")


def _existing_dir(directory, origin):
    if not directory.is_dir():
        raise DatasetError(f"{directory}{origin}: no such directory")
    return directory


def _read_md5sums(directory):
    """Parse ``directory/MD5SUMS`` (``md5sum`` output) into ``{file name: md5}``, if present."""
    path = directory / "MD5SUMS"
    if not path.is_file():
        return {}
    sums = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        digest, _, name = line.strip().partition(" ")
        name = name.strip().removeprefix("*")  # `md5sum --binary` marks names with "*"
        if len(digest) != 32 or not set(digest) <= set(string.hexdigits) or not name:
            raise DatasetError(f"{path}, line {number}: expected '<md5>  <file name>', got {line!r}")
        sums[name] = digest.lower()
    return sums


def _expected_md5(path, sums, known):
    """The MD5 ``path`` must have according to ``MD5SUMS`` and a table of known files, if any."""
    listed, canonical = sums.get(path.name), known.get(path.name)
    if listed and canonical and listed != canonical:
        raise DatasetError(f"{path}: MD5SUMS lists {listed}, but the canonical md5 is {canonical}")
    return listed or canonical


def _read_pair(images_path, labels_path, sums, known):
    images = read_idx(images_path, "images", _expected_md5(images_path, sums, known))
    labels = read_idx(labels_path, "labels", _expected_md5(labels_path, sums, known))
    if len(images) != len(labels):
        raise DatasetError(f"{images_path} holds {len(images)} images but {labels_path} "
                           f"holds {len(labels)} labels")
    return images, labels.astype(np.int64)


def _stratified_split(images, labels, test_size, source):
    """Split into ``(train_x, train_y, test_x, test_y)``, fixed by :data:`SPLIT_RANDOM_STATE`."""
    try:
        train, test = train_test_split(np.arange(len(labels)), test_size=test_size,
                                       stratify=labels, random_state=SPLIT_RANDOM_STATE)
    except ValueError as error:
        raise DatasetError(f"{source}: cannot make a stratified split: {error}") from None
    # The split chooses samples; each side keeps them in file order.
    train, test = np.sort(train), np.sort(test)
    return images[train], labels[train], images[test], labels[test]


def _dataset(name, train_x, train_y, test_x, test_y, n_classes, note):
    return Dataset(name=name,
                   train_x=torch.from_numpy(train_x), train_y=torch.from_numpy(train_y),
                   test_x=torch.from_numpy(test_x), test_y=torch.from_numpy(test_y),
                   n_classes=n_classes, note=note)


def _load_digits():
    digits = load_digits()
    # 0..16 to 0..255, rounded to nearest in integer maths so that 16 maps to 255 exactly.
    images = ((digits.images.astype(np.int64) * 255 + 8) // 16).astype(np.uint8)
    split = _stratified_split(images, digits.target.astype(np.int64), DIGITS_TEST_SIZE,
                              "digits")
    return _dataset("digits", *split, n_classes=10,
                    note=f"digits: scikit-learn's bundled 8x8 digits ({len(images)} samples), "
                         f"fixed stratified {len(images) - DIGITS_TEST_SIZE}/{DIGITS_TEST_SIZE} "
                         f"train/test split (random_state={SPLIT_RANDOM_STATE}), pixels 0..16 "
                         f"rescaled to 0..255.")


def _mnist_file(directory, stem):
    """``stem.gz`` (preferred: it has a known MD5) or ``stem`` in ``directory``, or None."""
    for path in (directory / f"{stem}.gz", directory / stem):
        if path.is_file():
            return path
    return None


def _read_mnist_set(directory, subset, sums):
    images_path = _mnist_file(directory, f"{subset}-images-idx3-ubyte")
    labels_path = _mnist_file(directory, f"{subset}-labels-idx1-ubyte")
    images, labels = _read_pair(images_path, labels_path, sums, MNIST_MD5S)
    if images.shape != MNIST_SHAPES[subset]:
        raise DatasetError(f"{images_path}: MNIST's {subset} images are "
                           f"{'x'.join(map(str, MNIST_SHAPES[subset]))}, this file holds "
                           f"{'x'.join(map(str, images.shape))}")
    if labels.max() > 9:
        raise DatasetError(f"{labels_path}: MNIST labels are 0..9, this file has {labels.max()}")
    verified = all(_expected_md5(path, sums, MNIST_MD5S) for path in (images_path, labels_path))
    return images, labels, verified


def _load_mnist(directory):
    present = {stem: _mnist_file(directory, stem) is not None
               for stem in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                            "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
    if not (present["t10k-images-idx3-ubyte"] and present["t10k-labels-idx1-ubyte"]):
        missing = ", ".join(f"{stem}(.gz)" for stem, found in present.items() if not found)
        raise DatasetError(f"{directory}: MNIST files missing: {missing}; "
                           f"pass --data-dir DIR or --download")
    if present["train-images-idx3-ubyte"] != present["train-labels-idx1-ubyte"]:
        missing = next(stem for stem, found in present.items() if not found)
        raise DatasetError(f"{directory}: has one of MNIST's training files but not {missing}(.gz)")
    sums = _read_md5sums(directory)
    test_x, test_y, test_verified = _read_mnist_set(directory, "t10k", sums)
    if present["train-images-idx3-ubyte"]:
        train_x, train_y, train_verified = _read_mnist_set(directory, "train", sums)
        checked = "md5 verified" if train_verified and test_verified else "md5 not checked"
        return _dataset("mnist", train_x, train_y, test_x, test_y, n_classes=10,
                        note=f"mnist: standard 60000/10000 train/t10k split from {directory} "
                             f"({checked}).")
    split = _stratified_split(test_x, test_y, MNIST_T10K_TEST_SIZE, f"{directory}: t10k")
    checked = "md5 verified" if test_verified else "md5 not checked"
    return _dataset("mnist", *split, n_classes=10,
                    note=f"mnist: training set absent in {directory}; using a deterministic "
                         f"stratified {len(test_y) - MNIST_T10K_TEST_SIZE}/{MNIST_T10K_TEST_SIZE} "
                         f"split of t10k ({len(test_y)} samples, random_state="
                         f"{SPLIT_RANDOM_STATE}, {checked}).")


def _idx_files(directory):
    """Find IDX files by name: ``{(subset, kind): [paths]}``, subset "train", "test" or None."""
    files = {}
    for path in sorted(directory.iterdir()):
        name = path.name.lower()
        if "images" in name and "idx3" in name:
            kind = "images"
        elif "labels" in name and "idx1" in name:
            kind = "labels"
        else:
            continue
        # With both `x` and `x.gz` present, read only `x.gz`.
        if not path.is_file() or path.with_name(path.name + ".gz").is_file():
            continue
        subset = "train" if "train" in name else "test" if "t10k" in name or "test" in name else None
        files.setdefault((subset, kind), []).append(path)
    return files


def _load_idx_dir(directory):
    name = f"idx:{directory}"
    if not directory.is_dir():
        raise DatasetError(f"{directory}: no such directory")
    files = _idx_files(directory)
    for (subset, kind), paths in files.items():
        if len(paths) > 1:
            raise DatasetError(f"{directory}: more than one {subset or 'unnamed'} {kind} file: "
                               f"{', '.join(path.name for path in paths)}")
    sums = _read_md5sums(directory)
    # No table of known MD5s: Fashion-MNIST and others reuse MNIST's file names.
    known = {}
    if all((subset, kind) in files for subset in ("train", "test") for kind in ("images", "labels")):
        (train_images,), (train_labels,) = files["train", "images"], files["train", "labels"]
        (test_images,), (test_labels,) = files["test", "images"], files["test", "labels"]
        train_x, train_y = _read_pair(train_images, train_labels, sums, known)
        test_x, test_y = _read_pair(test_images, test_labels, sums, known)
        if train_x.shape[1:] != test_x.shape[1:]:
            raise DatasetError(f"{train_images} holds {'x'.join(map(str, train_x.shape[1:]))} "
                               f"images but {test_images} holds "
                               f"{'x'.join(map(str, test_x.shape[1:]))}")
        note = (f"{name}: {len(train_y)}/{len(test_y)} train/test split as given by "
                f"{train_images.name} and {test_images.name}.")
    else:
        images = [path for (_, kind), paths in files.items() if kind == "images" for path in paths]
        labels = [path for (_, kind), paths in files.items() if kind == "labels" for path in paths]
        if len(images) != 1 or len(labels) != 1:
            found = ", ".join(path.name for paths in files.values() for path in paths) or "none"
            raise DatasetError(
                f"{directory}: expected a train and a test pair of IDX files ('train' and "
                f"'t10k'/'test' in the names, with 'images'+'idx3' or 'labels'+'idx1'), or a "
                f"single pair; found: {found}")
        all_x, all_y = _read_pair(images[0], labels[0], sums, known)
        test_size = len(all_y) // 5
        train_x, train_y, test_x, test_y = _stratified_split(all_x, all_y, test_size, labels[0])
        note = (f"{name}: only one image/label pair ({images[0].name}); using a deterministic "
                f"stratified {len(all_y) - test_size}/{test_size} split "
                f"(random_state={SPLIT_RANDOM_STATE}).")
    n_classes = int(max(train_y.max(initial=0), test_y.max(initial=0))) + 1
    return _dataset(name, train_x, train_y, test_x, test_y, n_classes, note)
