"""The data layer: IDX files, the fixed splits, checksums, and downloading from a mirror."""

import functools
import gzip
import hashlib
import re
import shutil
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch

from golden import datasets
from golden.datasets import DatasetError, download_mnist, load_dataset
from golden.idx import read_idx, write_idx

SHARED_MNIST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"
T10K_FILES = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


@pytest.fixture(scope="module")
def shared_mnist():
    if not all((SHARED_MNIST / name).is_file() for name in T10K_FILES):
        pytest.skip(f"MNIST t10k files not found in {SHARED_MNIST}")
    return SHARED_MNIST


def assert_dataset_error(match, *names):
    """Context manager: a DatasetError whose message matches and names every file given."""
    lookaheads = [match] + [re.escape(name) for name in names]
    return pytest.raises(DatasetError, match="(?s)" + "".join(f"(?=.*{part})" for part in lookaheads))


def write_pair(directory, prefix, n, shape=(4, 4), n_classes=3):
    """Write an IDX image/label pair of ``n`` samples; labels cycle through the classes."""
    images = np.arange(n * shape[0] * shape[1], dtype=np.uint8).reshape(n, *shape)
    labels = (np.arange(n) % n_classes).astype(np.uint8)
    write_idx(directory / f"{prefix}-images-idx3-ubyte.gz", images)
    write_idx(directory / f"{prefix}-labels-idx1-ubyte.gz", labels)
    return images, labels


def assert_stratified(test_y, all_y):
    """Each class's share of the test set is within one sample of its share of the data."""
    all_counts = np.bincount(all_y.numpy())
    expected = all_counts * len(test_y) / len(all_y)
    actual = np.bincount(test_y.numpy(), minlength=len(all_counts))
    assert np.all(np.abs(actual - expected) <= 1), (actual, expected)


def assert_same(a, b):
    for field in ("train_x", "train_y", "test_x", "test_y"):
        assert torch.equal(getattr(a, field), getattr(b, field)), field


# Digits.

def test_digits_split():
    data = load_dataset("digits")
    assert data.name == "digits" and data.n_classes == 10
    assert data.train_x.shape == (1437, 8, 8) and data.test_x.shape == (360, 8, 8)
    assert data.train_y.shape == (1437,) and data.test_y.shape == (360,)
    assert data.image_shape == (1, 8, 8) and data.n_inputs == 64
    assert data.train_x.dtype == torch.uint8 and data.train_y.dtype == torch.int64
    assert_stratified(data.test_y, torch.cat([data.train_y, data.test_y]))
    assert "1437/360" in data.note and "random_state=0" in data.note


def test_digits_pixels_rescaled_with_integer_rounding():
    data = load_dataset("digits")
    levels = {(v * 255 + 8) // 16 for v in range(17)}
    values = set(torch.cat([data.train_x, data.test_x]).unique().tolist())
    assert values <= levels and {0, 255} <= values


def test_digits_split_is_fixed_whatever_the_seed():
    assert_same(load_dataset("digits", seed=0), load_dataset("digits", seed=1234))


# MNIST, from the shared t10k files.

@pytest.fixture(scope="module")
def mnist_t10k(shared_mnist):
    return load_dataset("mnist", data_dir=shared_mnist)


def test_mnist_t10k_split(mnist_t10k):
    data = mnist_t10k
    assert data.train_x.shape == (8000, 28, 28) and data.test_x.shape == (2000, 28, 28)
    assert data.train_x.dtype == torch.uint8 and data.test_y.dtype == torch.int64
    assert data.n_classes == 10 and data.n_inputs == 784
    all_y = torch.cat([data.train_y, data.test_y])
    assert all_y.min() == 0 and all_y.max() == 9
    assert_stratified(data.test_y, all_y)
    assert "8000/2000 split of t10k" in data.note and "md5 verified" in data.note


def test_mnist_t10k_split_is_fixed_whatever_the_seed(shared_mnist, mnist_t10k):
    assert_same(mnist_t10k, load_dataset("mnist", data_dir=shared_mnist, seed=99))


def test_mnist_data_dir_from_environment(shared_mnist, mnist_t10k, monkeypatch):
    monkeypatch.setenv("SYNCHRONY_DATA_DIR", str(shared_mnist))
    assert_same(mnist_t10k, load_dataset("mnist"))


def test_mnist_data_dir_from_environment_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("SYNCHRONY_DATA_DIR", str(tmp_path / "nowhere"))
    with assert_dataset_error("SYNCHRONY_DATA_DIR", "nowhere"):
        load_dataset("mnist")


def test_mnist_canonical_md5_is_checked(shared_mnist, tmp_path):
    for name in T10K_FILES:
        shutil.copy(shared_mnist / name, tmp_path)
    with open(tmp_path / T10K_FILES[1], "ab") as file:
        file.write(b"\0")
    with assert_dataset_error("md5 mismatch: expected ec29112dd5afa0611ce80d1b7f02629c",
                              T10K_FILES[1]):
        load_dataset("mnist", data_dir=tmp_path)


def test_mnist_missing_files(tmp_path):
    with assert_dataset_error("t10k-images-idx3-ubyte", "--download"):
        load_dataset("mnist", data_dir=tmp_path)


# IDX directories and the errors of bad files.

def test_idx_dir_with_train_and_test_pairs(tmp_path):
    write_pair(tmp_path, "train", 30, n_classes=4)
    test_images, _ = write_pair(tmp_path, "t10k", 12, n_classes=4)
    data = load_dataset(f"idx:{tmp_path}")
    assert data.name == f"idx:{tmp_path}" and data.n_classes == 4
    assert data.train_x.shape == (30, 4, 4) and data.image_shape == (1, 4, 4)
    assert np.array_equal(data.test_x.numpy(), test_images)
    assert "30/12" in data.note


def test_idx_dir_with_one_pair_is_split_80_20(tmp_path):
    write_pair(tmp_path, "fashion", 50, n_classes=5)
    data = load_dataset(f"idx:{tmp_path}")
    assert len(data.train_y) == 40 and len(data.test_y) == 10
    assert_stratified(data.test_y, torch.cat([data.train_y, data.test_y]))
    assert "only one image/label pair" in data.note and "40/10" in data.note


def test_idx_round_trip_raw_and_gzip(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (3, 5, 7), dtype=np.uint8)
    for name in ("x-images-idx3-ubyte", "x-images-idx3-ubyte.gz"):
        write_idx(tmp_path / name, images)
        assert np.array_equal(read_idx(tmp_path / name, "images"), images)


def idx_bytes(magic, shape, n_data):
    header = magic.to_bytes(4, "big") + b"".join(s.to_bytes(4, "big") for s in shape)
    return header + bytes(n_data)


@pytest.mark.parametrize("content, problem", [
    (idx_bytes(0x00000801, (5,), 5), r"bad magic 0x00000801 .*expected 0x00000803 for an image file"),
    (idx_bytes(0x00000D03, (5, 4, 4), 320), r"bad magic 0x00000D03 \(float32"),
    (idx_bytes(0x00000803, (5, 4, 4), 79), "truncated: header declares 5x4x4 = 80 bytes, file has 79"),
    (idx_bytes(0x00000803, (5, 4, 4), 83), "3 trailing bytes"),
    (b"\x00\x00\x08", "truncated"),
])
def test_bad_image_file(tmp_path, content, problem):
    write_pair(tmp_path, "train", 5)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(content))
    with assert_dataset_error(problem, "train-images-idx3-ubyte.gz"):
        load_dataset(f"idx:{tmp_path}")


# mtime=0: the truncated stream's bytes (and so the test id) must not depend on the clock.
@pytest.mark.parametrize("content", [b"plainly not gzip", gzip.compress(bytes(100), mtime=0)[:-12]],
                         ids=["not-gzip", "truncated-gzip"])
def test_corrupt_gzip(tmp_path, content):
    write_pair(tmp_path, "train", 5)
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(content)
    with assert_dataset_error("not a gzip file / corrupt gzip stream", "train-labels-idx1-ubyte.gz"):
        load_dataset(f"idx:{tmp_path}")


def test_image_and_label_counts_differ(tmp_path):
    write_pair(tmp_path, "train", 5)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(4, np.uint8))
    with assert_dataset_error("5 images .* 4 labels",
                              "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        load_dataset(f"idx:{tmp_path}")


def test_md5sums_file_is_honoured(tmp_path):
    write_pair(tmp_path, "train", 10)
    actual = hashlib.md5((tmp_path / "train-labels-idx1-ubyte.gz").read_bytes()).hexdigest()
    (tmp_path / "MD5SUMS").write_text(f"{'0' * 32}  train-labels-idx1-ubyte.gz\n")
    with assert_dataset_error(f"md5 mismatch: expected {'0' * 32}, got {actual}",
                              "train-labels-idx1-ubyte.gz"):
        load_dataset(f"idx:{tmp_path}")


@pytest.mark.parametrize("spec, problem", [
    ("cifar", "unknown dataset 'cifar'"),
    ("idx:", "unknown dataset 'idx:'"),
    ("idx:/nonexistent/fashion", "/nonexistent/fashion: no such directory"),
])
def test_bad_spec(spec, problem):
    with pytest.raises(DatasetError, match=problem):
        load_dataset(spec)


def test_only_mnist_downloads():
    with pytest.raises(DatasetError, match="only mnist can be downloaded"):
        load_dataset("digits", download=True)


# Downloading, from a mirror served on 127.0.0.1.

class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


@pytest.fixture(scope="module")
def generated_train_files(tmp_path_factory):
    """Stand-ins for MNIST's training files, of the real shapes: ``{file name: path}``."""
    directory = tmp_path_factory.mktemp("generated")
    images = np.zeros(datasets.MNIST_SHAPES["train"], np.uint8)
    images[:, 14, 14] = 255
    labels = (np.arange(len(images)) % 10).astype(np.uint8)
    write_idx(directory / "train-images-idx3-ubyte.gz", images)
    write_idx(directory / "train-labels-idx1-ubyte.gz", labels)
    return {path.name: path for path in directory.iterdir()}


@pytest.fixture
def mirror(shared_mnist, generated_train_files, tmp_path, monkeypatch):
    """Serve the four MNIST files over HTTP on 127.0.0.1: ``(served directory, base URL)``.

    The generated training files' MD5s replace the canonical ones for the test.
    """
    served = tmp_path / "served"
    served.mkdir()
    for name in T10K_FILES:
        shutil.copy(shared_mnist / name, served)
    for name, path in generated_train_files.items():
        shutil.copy(path, served)
        monkeypatch.setitem(datasets.MNIST_MD5S, name, hashlib.md5(path.read_bytes()).hexdigest())
    # urllib would send even 127.0.0.1 through a configured proxy.
    for variable in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(variable, raising=False)
    server = ThreadingHTTPServer(("127.0.0.1", 0),
                                 functools.partial(QuietHandler, directory=str(served)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{server.server_port}/"
    server.shutdown()
    server.server_close()
    thread.join()


def test_download_then_load(mirror, tmp_path, monkeypatch):
    _, url = mirror
    monkeypatch.setenv("SYNCHRONY_MNIST_MIRROR", url)
    target = tmp_path / "mnist"
    data = load_dataset("mnist", data_dir=target, download=True)
    assert sorted(path.name for path in target.iterdir()) == sorted(datasets.MNIST_MD5S)
    assert data.train_x.shape == (60000, 28, 28) and data.test_x.shape == (10000, 28, 28)
    assert "standard 60000/10000" in data.note and "md5 verified" in data.note
    # Every file is present and valid now, so nothing is fetched: a dead mirror is fine.
    download_mnist(target, mirror=url + "nowhere/")


def test_download_with_wrong_checksum_keeps_nothing(mirror, tmp_path):
    served, url = mirror
    bad = served / "t10k-labels-idx1-ubyte.gz"
    bad.write_bytes(bad.read_bytes()[:-1] + b"\xff")
    target = tmp_path / "mnist"
    with assert_dataset_error(f"md5 mismatch: expected ec29112dd5afa0611ce80d1b7f02629c, "
                              f"got {hashlib.md5(bad.read_bytes()).hexdigest()}",
                              "t10k-labels-idx1-ubyte.gz"):
        download_mnist(target, mirror=url)
    assert sorted(path.name for path in target.iterdir()) == sorted(
        name for name in datasets.MNIST_MD5S if name != "t10k-labels-idx1-ubyte.gz")


def test_download_from_missing_file(mirror, tmp_path):
    served, url = mirror
    (served / "train-labels-idx1-ubyte.gz").unlink()
    with assert_dataset_error("download from .* failed: HTTP Error 404", "train-labels-idx1-ubyte.gz"):
        download_mnist(tmp_path / "mnist", mirror=url)
