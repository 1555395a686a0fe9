"""External sources: downloads from a local HTTP mirror, offline copies, ImageNet trees, image folders.

Every archive is built here in the real file formats (idx, CIFAR pickles, STL-10 binaries) with a
few images, served by `http.server` on 127.0.0.1; no test touches the real hosts.
"""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import os
import pickle
import socket
import struct
import tarfile
import threading
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gatcluster.data import formats
from gatcluster.data.fit import FIT_RULE
from gatcluster.data.sources import (
    IMAGENET_WNIDS,
    LAYOUTS,
    Mirror,
    load_folder,
    load_imagenet_subset,
    load_source,
    load_torchvision_source,
    official_mirror,
    unfiled_images,
)
from gatcluster.data.store import DatasetError
from gatcluster.data.walk import mark_output_folder

RNG = np.random.default_rng(0)


# ---------- a local HTTP mirror ----------


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    requests: list[str] = []

    def log_message(self, *args) -> None:
        QuietHandler.requests.append(self.path)


@pytest.fixture
def server(tmp_path, monkeypatch):
    """(folder served, base URL); requests recorded in QuietHandler.requests."""
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    served = tmp_path / "served"
    served.mkdir()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(QuietHandler, directory=str(served)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    QuietHandler.requests = []
    yield served, f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"  # nothing listens there any more: connection refused


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


# ---------- fake archives in the real layouts ----------


def idx_bytes(array: np.ndarray) -> bytes:
    return struct.pack(f">I{array.ndim}I", 0x0800 + array.ndim, *array.shape) + array.tobytes()


def write_mnist_gz(folder: Path, counts: dict[str, int]) -> dict[str, str]:
    """train/t10k idx files gzipped; image n has pixel (1, 2) = n + 1; returns file -> md5."""
    md5s = {}
    for split, count in counts.items():
        images = np.zeros((count, 28, 28), dtype=np.uint8)
        images[:, 1, 2] = np.arange(1, count + 1)
        labels = np.arange(count, dtype=np.uint8) % 10
        for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
            path = folder / f"{split}-{kind}-ubyte.gz"
            path.write_bytes(gzip.compress(idx_bytes(array)))
            md5s[path.name] = md5(path)
    return md5s


def tar_gz(path: Path, files: dict[str, bytes]) -> str:
    """Write a .tar.gz holding `files` (name -> content); returns its md5."""
    with tarfile.open(path, "w:gz") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return md5(path)


def cifar_rows(count: int) -> np.ndarray:
    """(count, 3072) rows: R plane 10, G plane 20, B plane 30, and R at (row 1, col 2) = 200."""
    planes = np.zeros((count, 3, 32, 32), dtype=np.uint8)
    planes[:, 0], planes[:, 1], planes[:, 2] = 10, 20, 30
    planes[:, 0, 1, 2] = 200
    return planes.reshape(count, -1)


def cifar10_files(per_batch: int = 2) -> dict[str, bytes]:
    batch = {"data": cifar_rows(per_batch), "labels": [i % 10 for i in range(per_batch)]}
    files = {f"cifar-10-batches-py/{name}": pickle.dumps(batch) for name in formats.CIFAR10_FILES[:-1]}
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    files["cifar-10-batches-py/batches.meta"] = pickle.dumps({"label_names": names})
    return files


def cifar100_files() -> dict[str, bytes]:
    """Keys as bytes (how Python 3 reads the official files with encoding="bytes")."""

    def split(count: int) -> bytes:
        coarse = [i % 20 for i in range(count)]
        fine = [99 - c for c in coarse]  # differs from coarse: the reader must pick coarse_labels
        return pickle.dumps({b"data": cifar_rows(count), b"coarse_labels": coarse, b"fine_labels": fine})

    meta = {b"coarse_label_names": [f"super{i}".encode() for i in range(20)], b"fine_label_names": []}
    return {
        "cifar-100-python/train": split(5),
        "cifar-100-python/test": split(3),
        "cifar-100-python/meta": pickle.dumps(meta),
    }


def file_md5s(files: dict[str, bytes]) -> dict[str, str]:
    """What a mirror publishes for the extracted files: base name -> md5."""
    return {name.rsplit("/", 1)[-1]: hashlib.md5(content).hexdigest() for name, content in files.items()}


class PlantedPickle:
    """Unpickling this runs code: it would create `path`."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def stl10_split(count: int) -> tuple[bytes, bytes]:
    """Column-major planes: byte c*9216 + col*96 + row; image n has R(row 1, col 5) = 100 + n."""
    raw = np.zeros((count, 3 * 96 * 96), dtype=np.uint8)
    raw[:, 0 * 9216 + 5 * 96 + 1] = 100 + np.arange(count)
    labels = (np.arange(count) % 10 + 1).astype(np.uint8)  # 1-based on disk
    return raw.tobytes(), labels.tobytes()


def stl10_files() -> dict[str, bytes]:
    files = {"stl10_binary/class_names.txt": "\n".join(f"class{i}" for i in range(10)).encode() + b"\n"}
    for split, count in (("train", 3), ("test", 2)):
        files[f"stl10_binary/{split}_X.bin"], files[f"stl10_binary/{split}_y.bin"] = stl10_split(count)
    return files


def extracted(root: Path, files: dict[str, bytes]) -> Path:
    """An offline copy: the archive's files already extracted under root."""
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)
    return root


# ---------- downloads ----------


def test_official_mirror_is_torchvisions():
    cifar = official_mirror("cifar10")
    assert cifar.base_url == "https://www.cs.toronto.edu/~kriz/"
    assert cifar.md5s == {"cifar-10-python.tar.gz": "c58f30108f718f92721af3b95e74349a"}
    assert len(official_mirror("fashion-mnist").md5s) == 4


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_mnist_layouts_download_verify_and_read(tmp_path, server, name):
    served, url = server
    mirror = Mirror(url, write_mnist_gz(served, {"train": 5, "t10k": 3}))
    dataset = load_torchvision_source(name, tmp_path / "raw", mirror=mirror)
    assert dataset.images.shape == (8, 28, 28, 1) and dataset.resize_rule == "pad"
    assert dataset.images[:, 1, 2, 0].tolist() == [1, 2, 3, 4, 5, 1, 2, 3]  # train first, then test
    assert dataset.labels.tolist() == [0, 1, 2, 3, 4, 0, 1, 2] and len(dataset.classes) == 10
    assert dataset.classes[0] == ("0" if name == "mnist" else "T-shirt/top")
    folder = "MNIST" if name == "mnist" else "FashionMNIST"
    assert (tmp_path / "raw" / folder / "raw" / "t10k-images-idx3-ubyte").is_file()  # torchvision layout
    assert len(QuietHandler.requests) >= 4


def test_second_load_reads_the_extracted_files_without_network(tmp_path, server):
    served, url = server
    mirror = Mirror(url, write_mnist_gz(served, {"train": 2, "t10k": 1}))
    load_torchvision_source("mnist", tmp_path, mirror=mirror)
    before = len(QuietHandler.requests)
    again = load_torchvision_source("mnist", tmp_path, mirror=Mirror(closed_port_url(), mirror.md5s))
    assert len(again.images) == 3 and len(QuietHandler.requests) == before


def test_cifar10_train_and_test_batches_combined(tmp_path, server):
    served, url = server
    files = cifar10_files()
    archive = {"cifar-10-python.tar.gz": tar_gz(served / "cifar-10-python.tar.gz", files)}
    dataset = load_torchvision_source("cifar10", tmp_path, mirror=Mirror(url, archive, file_md5s(files)))
    assert dataset.images.shape == (12, 32, 32, 3) and dataset.resize_rule == "resize"
    assert dataset.images[0, 0, 0].tolist() == [10, 20, 30] and dataset.images[0, 1, 2, 0] == 200
    assert dataset.labels.tolist() == [0, 1] * 6 and dataset.classes[9] == "truck"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".extract")]


def test_cifar100_20_uses_coarse_labels(tmp_path, server):
    served, url = server
    files = cifar100_files()
    archive = {"cifar-100-python.tar.gz": tar_gz(served / "cifar-100-python.tar.gz", files)}
    dataset = load_torchvision_source("cifar100-20", tmp_path, mirror=Mirror(url, archive, file_md5s(files)))
    assert dataset.images.shape == (8, 32, 32, 3)
    assert dataset.labels.tolist() == [0, 1, 2, 3, 4, 0, 1, 2]
    assert dataset.classes == [f"super{i}" for i in range(20)]


def test_stl10_train_and_test_in_column_major_order(tmp_path, server):
    served, url = server
    mirror = Mirror(url, {"stl10_binary.tar.gz": tar_gz(served / "stl10_binary.tar.gz", stl10_files())})
    dataset = load_torchvision_source("stl10", tmp_path, mirror=mirror)
    assert dataset.images.shape == (5, 96, 96, 3) and dataset.resize_rule == "resize"
    assert dataset.images[:, 1, 5, 0].tolist() == [100, 101, 102, 100, 101]  # (row 1, col 5), not (5, 1)
    assert dataset.images[:, 5, 1, 0].tolist() == [0] * 5
    assert dataset.labels.tolist() == [0, 1, 2, 0, 1] and dataset.classes[3] == "class3"


def test_md5_mismatch_is_refused_and_nothing_is_extracted(tmp_path, server):
    served, url = server
    tar_gz(served / "cifar-10-python.tar.gz", cifar10_files())
    with pytest.raises(DatasetError, match="md5"):
        load_torchvision_source("cifar10", tmp_path, mirror=Mirror(url, {"cifar-10-python.tar.gz": "0" * 32}))
    assert not (tmp_path / "cifar-10-python.tar.gz").exists()
    assert not (tmp_path / "cifar-10-batches-py").exists()


def test_offline_without_a_copy_says_how_to_provide_the_data(tmp_path):
    mirror = Mirror(closed_port_url(), {"cifar-10-python.tar.gz": "0" * 32})
    with pytest.raises(DatasetError) as err:
        load_torchvision_source("cifar10", tmp_path / "cache", mirror=mirror)
    message = str(err.value)
    assert message.startswith("could not download cifar10") and "set data.root" in message
    assert str(tmp_path / "cache") in message


def test_a_failed_download_leaves_no_empty_folders_that_look_like_a_copy(tmp_path):
    mirror = Mirror(closed_port_url(), {"train-images-idx3-ubyte.gz": "0" * 32})
    with pytest.raises(DatasetError, match="could not download mnist"):
        load_torchvision_source("mnist", tmp_path / "cache", mirror=mirror)
    assert not (tmp_path / "cache" / "MNIST").exists()  # download_url had made MNIST/raw/


def test_a_cut_off_local_archive_is_named_when_the_download_fails(tmp_path):
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(b"cut off")
    mirror = Mirror(closed_port_url(), {"cifar-10-python.tar.gz": "0" * 32})
    with pytest.raises(DatasetError) as err:
        load_torchvision_source("cifar10", tmp_path, mirror=mirror)
    archive = tmp_path / "cifar-10-python.tar.gz"
    assert str(err.value).startswith(f"{archive} is there but is not the published file (md5 differs); ")
    assert "could not download cifar10" in str(err.value)


def test_downloads_off_and_nothing_local(tmp_path):
    with pytest.raises(DatasetError, match="downloads are off"):
        load_torchvision_source(
            "stl10", tmp_path, download=False, mirror=Mirror(closed_port_url(), {"a.tar.gz": "0"})
        )


def test_extracted_offline_copy_needs_no_server(tmp_path):
    files = cifar10_files(per_batch=1)
    root = extracted(tmp_path / "mirror", files)
    mirror = Mirror(closed_port_url(), {}, file_md5s(files))
    dataset, skipped = load_source("cifar10", root, 32, tmp_path / "cache", mirror)
    assert dataset.images.shape == (6, 32, 32, 3) and skipped == [] and not (tmp_path / "cache").exists()


def test_local_archive_with_matching_md5_is_extracted_without_network(tmp_path):
    archive_md5 = tar_gz(tmp_path / "stl10_binary.tar.gz", stl10_files())
    mirror = Mirror(closed_port_url(), {"stl10_binary.tar.gz": archive_md5})
    dataset = load_torchvision_source("stl10", tmp_path, download=False, mirror=mirror)
    assert len(dataset.images) == 5


def test_damaged_offline_copy_is_a_dataset_error(tmp_path):
    files = cifar10_files()
    files["cifar-10-batches-py/test_batch"] = files["cifar-10-batches-py/test_batch"][:30]
    root = extracted(tmp_path, files)
    with pytest.raises(DatasetError, match="data_batch_1 is not the published cifar10 file"):
        load_torchvision_source("cifar10", root, mirror=Mirror(closed_port_url(), {}))
    # a mirror that published the damaged file: read, and found damaged by its structure
    with pytest.raises(DatasetError, match="damaged cifar10"):
        load_torchvision_source("cifar10", root, mirror=Mirror(closed_port_url(), {}, file_md5s(files)))


def test_bad_idx_header_is_a_dataset_error(tmp_path):
    folder = tmp_path / "MNIST" / "raw"
    folder.mkdir(parents=True)
    for name in formats.MNIST_FILES:
        (folder / name).write_bytes(b"\x00\x00\x08\x03" + b"\x00" * 8)
    with pytest.raises(DatasetError, match="idx"):
        load_torchvision_source("mnist", tmp_path, mirror=Mirror(closed_port_url(), {}))


def write_mnist_copy(folder: Path, counts: dict[str, tuple[int, int]], side: int = 28) -> None:
    """An extracted MNIST copy: per split (images, labels) counts, labels 0-9 in turn."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, (images, labels) in counts.items():
        pixels, digits = np.zeros((images, side, side), np.uint8), np.arange(labels, dtype=np.uint8) % 10
        (folder / f"{split}-images-idx3-ubyte").write_bytes(idx_bytes(pixels))
        (folder / f"{split}-labels-idx1-ubyte").write_bytes(idx_bytes(digits))


def test_a_split_with_a_label_too_few_is_refused_not_shifted(tmp_path):
    # 300 + 100 images and 299 + 101 labels: the totals agree, every label after image 299 was off by one
    write_mnist_copy(tmp_path / "MNIST" / "raw", {"train": (300, 299), "t10k": (100, 101)})
    with pytest.raises(DatasetError, match=r"train-\*-ubyte: 300 images but 299 labels"):
        load_torchvision_source("mnist", tmp_path, mirror=Mirror(closed_port_url(), {}))
    write_mnist_copy(tmp_path / "MNIST" / "raw", {"train": (300, 300), "t10k": (100, 100)}, side=0)
    with pytest.raises(DatasetError, match=r"train-\*-ubyte holds no images"):  # 0x0 pixels: stored black
        load_torchvision_source("mnist", tmp_path, mirror=Mirror(closed_port_url(), {}))
    files = stl10_files()
    files["stl10_binary/test_X.bin"], files["stl10_binary/test_y.bin"] = b"", b""
    with pytest.raises(DatasetError, match=r"test_\[Xy\].bin holds no images"):  # only train was read
        load_torchvision_source(
            "stl10", extracted(tmp_path / "s", files), mirror=Mirror(closed_port_url(), {})
        )


def test_a_class_list_too_short_is_named(tmp_path):
    files = stl10_files()
    files["stl10_binary/class_names.txt"] = b"airplane\nbird\n"
    with pytest.raises(DatasetError, match=r"class_names.txt names 2 classes, but the labels go up to 3"):
        load_torchvision_source("stl10", extracted(tmp_path, files), mirror=Mirror(closed_port_url(), {}))


def test_a_copy_lacking_a_file_names_it_when_fetching_the_rest_fails(tmp_path):
    write_mnist_copy(tmp_path / "MNIST" / "raw", {"train": (30, 30), "t10k": (10, 10)})
    (tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").unlink()
    mirror = Mirror(closed_port_url(), {"train-images-idx3-ubyte.gz": "0" * 32})
    with pytest.raises(DatasetError, match="raw lacks t10k-labels-idx1-ubyte of the mnist copy; could not"):
        load_torchvision_source("mnist", tmp_path, mirror=mirror)


# ---------- ImageNet subsets ----------


def write_image(path: Path, value: int, size: tuple[int, int] = (12, 9), fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (value, value, value)).save(path, format=fmt)
    return path


def test_imagenet10_from_a_train_tree(tmp_path):
    wnids = IMAGENET_WNIDS["imagenet10"]
    for label, wnid in enumerate(wnids):
        for i in range(2):
            write_image(tmp_path / wnid / f"{wnid}_{i}.JPEG", 20 * label + 5, fmt="JPEG")
    (tmp_path / wnids[3] / "broken.JPEG").write_bytes(b"\xff\xd8\xff\xe0 not really")
    (tmp_path / wnids[3] / ".DS_Store").write_bytes(b"junk")
    os.mkfifo(tmp_path / wnids[4] / "pipe.JPEG")  # opening it would wait for a writer
    (tmp_path / wnids[4] / "moved.JPEG").symlink_to(tmp_path / "elsewhere.JPEG")
    (tmp_path / "n99999999").mkdir()  # extra classes in a full ImageNet tree are ignored
    dataset, skipped = load_imagenet_subset("imagenet10", tmp_path, 16)
    assert dataset.images.shape == (20, 16, 16, 3) and dataset.classes == list(wnids)
    assert dataset.resize_rule == FIT_RULE  # what was applied as the files were decoded
    assert dataset.labels.tolist() == [i // 2 for i in range(20)]
    assert np.allclose(dataset.images[:, 8, 8, 0], [20 * (i // 2) + 5 for i in range(20)], atol=3)
    assert [(p.name, r) for p, r in skipped] == [  # .DS_Store: hidden, ignored
        ("moved.JPEG", "broken symlink"),
        ("pipe.JPEG", "not a regular file"),  # was "empty file"
        ("broken.JPEG", "truncated"),
    ]


def test_imagenet_missing_wnids_are_named(tmp_path):
    wnids = IMAGENET_WNIDS["imagenet-dogs15"]
    for wnid in wnids[:-2]:
        write_image(tmp_path / wnid / "a.JPEG", 100, fmt="JPEG")
    with pytest.raises(DatasetError, match=f"{wnids[-2]}, {wnids[-1]}"):
        load_imagenet_subset("imagenet-dogs15", tmp_path, 8)


def test_imagenet_class_without_readable_images(tmp_path):
    wnids = IMAGENET_WNIDS["imagenet10"]
    for wnid in wnids[1:]:
        write_image(tmp_path / wnid / "a.JPEG", 100, fmt="JPEG")
    (tmp_path / wnids[0]).mkdir()
    (tmp_path / wnids[0] / "notes.txt").write_text("empty class")
    with pytest.raises(DatasetError, match=f"no readable images .* {wnids[0]}"):
        load_imagenet_subset("imagenet10", tmp_path, 8)


def test_an_imagenet_class_folder_that_cannot_be_listed_is_named_with_the_reason(tmp_path, monkeypatch):
    wnids = IMAGENET_WNIDS["imagenet10"]
    for wnid in wnids:
        write_image(tmp_path / wnid / "a.JPEG", 100, fmt="JPEG")
    real_iterdir = Path.iterdir

    def refused(path: Path):  # what a non-root user meets in a folder of mode 000 (tests may run as root)
        if path.name == wnids[2]:
            raise PermissionError(13, "Permission denied", str(path))
        return real_iterdir(path)

    monkeypatch.setattr(Path, "iterdir", refused)
    with pytest.raises(DatasetError) as raised:
        load_imagenet_subset("imagenet10", tmp_path, 8)
    assert str(raised.value) == (
        f"no readable images for imagenet10 class(es) {wnids[2]} under {tmp_path}"
        f" ({tmp_path / wnids[2]}: unreadable folder (Permission denied))"
    )


# ---------- image folders ----------


def test_labelled_folder_with_junk(tmp_path):
    write_image(tmp_path / "dog" / "b.png", 200)
    write_image(tmp_path / "dog" / "a.jpg", 190, fmt="JPEG")
    write_image(tmp_path / "cat" / "ein bild ü.png", 10, size=(30, 5))
    (tmp_path / "cat" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    (tmp_path / "README.txt").write_text("not an image")
    counted = []
    dataset, skipped = load_folder(tmp_path, 8, on_file=lambda: counted.append(1))
    assert dataset.images.shape == (3, 8, 8, 3) and dataset.classes == ["cat", "dog"]  # files in colour
    assert len(counted) == 5  # every file the decoder was given, the two that are no images too
    assert dataset.labels.tolist() == [0, 1, 1] and dataset.source == "folder"
    assert sorted((p.name, r) for p, r in skipped) == [
        ("README.txt", "not an image"),
        ("broken.png", "not an image"),
    ]


def test_a_gat_predict_output_folder_inside_the_tree_is_not_a_class(tmp_path):
    write_image(tmp_path / "dog" / "b.png", 200)
    write_image(tmp_path / "cat" / "a.png", 10)
    write_image(tmp_path / "sorted" / "cluster-0" / "b.png", 200)  # gat predict --sort-into sorted
    mark_output_folder(tmp_path / "sorted")
    dataset, skipped = load_folder(tmp_path, 8)
    assert dataset.classes == ["cat", "dog"] and len(dataset.images) == 2 and not skipped


def test_class_folders_whose_names_are_not_utf8_get_escaped_class_names(tmp_path):
    write_image(tmp_path / os.fsdecode(b"bad\xffcls") / "a.png", 20)
    write_image(tmp_path / "good" / "b.png", 200)
    dataset, _ = load_folder(tmp_path, 4)
    assert dataset.classes == ["bad\\xffcls", "good"]  # manifest, reports and gallery can write them
    "".join(dataset.classes).encode("utf-8")


def test_images_directly_in_root_make_the_folder_unlabelled(tmp_path):
    write_image(tmp_path / "top.png", 50)
    write_image(tmp_path / "sub" / "deep" / "x.png", 60)
    dataset, skipped = load_folder(tmp_path, 4)
    assert dataset.labels is None and dataset.classes == [] and dataset.images.shape == (2, 4, 4, 3)
    assert unfiled_images(tmp_path, skipped) == [tmp_path / "top.png"]  # what fetch names


def test_a_flat_folder_or_junk_at_the_top_is_not_called_unfiled(tmp_path):
    write_image(tmp_path / "a.png", 50)
    write_image(tmp_path / "b.png", 60)
    assert unfiled_images(tmp_path, load_folder(tmp_path, 4)[1]) == []  # flat: unlabelled on purpose
    labelled = tmp_path / "labelled"
    write_image(labelled / "cat" / "c.png", 70)
    (labelled / "notes.txt").write_text("not an image")
    dataset, skipped = load_folder(labelled, 4)
    assert dataset.classes == ["cat"] and unfiled_images(labelled, skipped) == []


def test_symlink_loops_terminate_and_linked_folders_count_once(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    write_image(root / "a" / "1.png", 10)
    write_image(outside / "2.png", 20)
    (root / "a" / "loop").symlink_to(root, target_is_directory=True)
    (root / "b").symlink_to(outside, target_is_directory=True)
    (root / "c").symlink_to(outside, target_is_directory=True)  # same folder again: read once
    (root / "a" / "dangling.png").symlink_to(tmp_path / "gone.png")
    dataset, skipped = load_folder(root, 4)
    assert len(dataset.images) == 2 and dataset.classes == ["a", "b"]
    assert [(p.name, r) for p, r in skipped] == [("dangling.png", "broken symlink")]


def test_a_link_between_class_folders_keeps_each_image_in_its_own_class_and_counts_it_once(tmp_path):
    # cats/see-also -> dogs/best and cats/fav.png -> dogs/d.png: the walk reaches dogs' images
    # through cats first (sorted order); they were labelled cats, and d.png was read twice.
    for i in range(3):
        write_image(tmp_path / "cats" / f"c{i}.png", 10 + i)
        write_image(tmp_path / "dogs" / "best" / f"b{i}.png", 100 + i)
    write_image(tmp_path / "dogs" / "d.png", 200)
    (tmp_path / "cats" / "see-also").symlink_to(tmp_path / "dogs" / "best", target_is_directory=True)
    (tmp_path / "cats" / "fav.png").symlink_to(tmp_path / "dogs" / "d.png")
    dataset, skipped = load_folder(tmp_path, 4)
    assert dataset.classes == ["cats", "dogs"]
    grey = dataset.images[:, 0, 0, 0].tolist()
    assert {value: int(label) for value, label in zip(grey, dataset.labels, strict=True)} == {
        10: 0,
        11: 0,
        12: 0,
        100: 1,
        101: 1,
        102: 1,
        200: 1,
    }
    assert [(p.relative_to(tmp_path).as_posix(), r) for p, r in skipped] == [
        ("cats/fav.png", "the same file as dogs/d.png")
    ]
    assert unfiled_images(tmp_path, skipped) == []


def test_a_link_into_a_hidden_store_takes_the_class_of_the_folder_it_sits_in(tmp_path):
    # A photo library: files under hash names in a hidden store, shown through links per person.
    write_image(tmp_path / ".store" / "h1.png", 10)
    write_image(tmp_path / ".store" / "h2.png", 20)
    (tmp_path / "alice").mkdir()
    (tmp_path / "bob").mkdir()
    (tmp_path / "alice" / "beach.png").symlink_to(tmp_path / ".store" / "h1.png")
    (tmp_path / "bob" / "hike.png").symlink_to(tmp_path / ".store" / "h2.png")
    dataset, skipped = load_folder(tmp_path, 4)
    assert dataset.classes == ["alice", "bob"] and dataset.labels.tolist() == [0, 1] and not skipped


def test_class_folders_that_are_links_and_links_to_hidden_files_keep_their_walked_class(tmp_path):
    # root/cats -> raw/cats, root/dogs -> raw/dogs: the class folders live elsewhere in the tree
    # (walked through the links first, so raw/ adds nothing); x.png -> ../.h.png: a hidden file.
    root = tmp_path / "root"
    write_image(root / "raw" / "cats" / "c.png", 10)
    write_image(root / "raw" / "dogs" / "d.png", 20)
    write_image(root / ".h.png", 30)
    (root / "cats").symlink_to(root / "raw" / "cats", target_is_directory=True)
    (root / "dogs").symlink_to(root / "raw" / "dogs", target_is_directory=True)
    (root / "birds").mkdir()
    (root / "birds" / "x.png").symlink_to(root / ".h.png")
    dataset, skipped = load_folder(root, 4)
    labelled = dict(zip(dataset.images[:, 0, 0, 0].tolist(), dataset.labels.tolist(), strict=True))
    assert dataset.classes == ["birds", "cats", "dogs"] and labelled == {30: 0, 10: 1, 20: 2}
    assert not skipped


def test_empty_folder_and_junk_only_folder(tmp_path):
    with pytest.raises(DatasetError, match=f"no images found under {tmp_path}$"):
        load_folder(tmp_path, 8)
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(DatasetError, match="no images found under .*1 skipped.*notes.txt: not an image"):
        load_folder(tmp_path, 8)


# ---------- the dispatcher ----------


def test_load_source_dispatches_bundled_and_tree_sources(tmp_path):
    digits, skipped = load_source("digits", None, 32, tmp_path)
    assert digits.images.shape == (1797, 8, 8, 1) and skipped == []
    write_image(tmp_path / "pics" / "x" / "a.png", 1)
    folder, _ = load_source("folder", tmp_path / "pics", 32, tmp_path / "cache")
    assert folder.images.shape == (1, 32, 32, 3) and folder.classes == ["x"]


@pytest.mark.parametrize("source", ["folder", "imagenet10"])
def test_tree_sources_need_an_existing_root(tmp_path, source):
    with pytest.raises(DatasetError, match="needs data.root"):
        load_source(source, None, 32, tmp_path)
    with pytest.raises(DatasetError, match="needs data.root"):
        load_source(source, tmp_path / "missing", 32, tmp_path)


def test_a_planted_pickle_is_refused_by_its_md5_and_never_unpickled(tmp_path):
    files = cifar10_files(per_batch=1)
    published = file_md5s(files)
    marker = tmp_path / "code-ran"
    files["cifar-10-batches-py/data_batch_3"] = pickle.dumps(PlantedPickle(marker))
    root = extracted(tmp_path / "mirror", files)
    with pytest.raises(DatasetError) as err:
        load_source("cifar10", root, 32, tmp_path / "cache", Mirror(closed_port_url(), {}, published))
    message = str(err.value)
    assert message.startswith(f"{root / 'cifar-10-batches-py' / 'data_batch_3'} is not the published cifar10")
    assert "\n" not in message and not marker.exists()


def test_the_official_mirror_publishes_every_cifar_pickle():
    for name in ("cifar10", "cifar100-20"):
        layout, mirror = LAYOUTS[name], official_mirror(name)
        assert layout.pickled and set(mirror.file_md5s) == set(layout.files)
    assert not LAYOUTS["stl10"].pickled


def test_image_trees_decode_into_a_growing_disk_backed_array(tmp_path, monkeypatch):
    from gatcluster.data import store

    monkeypatch.setattr(store, "BLOCK_BYTES", 3 * 4 * 4 * 3)  # blocks of 3 rows: many grow steps
    pixels = np.random.default_rng(0).integers(0, 256, (23, 4, 4, 3), dtype=np.uint8)
    for i, image in enumerate(pixels):
        (tmp_path / "in" / f"c{i % 2}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(tmp_path / "in" / f"c{i % 2}" / f"{i:02d}.png")
    (tmp_path / "in" / "c1" / "99.png").write_bytes(b"not a png")
    dataset, skipped = load_folder(tmp_path / "in", 4, tmp_path / "scratch")
    assert isinstance(dataset.images, np.memmap) and dataset.images.shape == (23, 4, 4, 3)
    order = [i for c in (0, 1) for i in range(23) if i % 2 == c]  # walk order: c0/..., then c1/...
    assert np.array_equal(dataset.images, pixels[order])
    assert dataset.labels.tolist() == [i % 2 for i in order] and dataset.classes == ["c0", "c1"]
    assert [s.path.name for s in skipped] == ["99.png"]
    assert list((tmp_path / "scratch").iterdir()) == []  # the scratch file was never visible
