"""Find the SQuAD v1.1 files on disk, or download the official ones into the t5kit cache.

`find_squad` looks in an explicit folder, then in `$T5KIT_SQUAD_DIR`, then in the cache
(`$T5KIT_CACHE/squad`, by default `~/.cache/t5kit/squad`), and downloads only when none of them
contains the file. Downloads are checked against the sha256 of the official files.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from t5kit.errors import T5kitError

logger = logging.getLogger(__name__)

SQUAD_DIR_ENV = "T5KIT_SQUAD_DIR"
CACHE_ENV = "T5KIT_CACHE"


class SquadDownloadError(T5kitError):
    """A failed download of an official SQuAD file: no network, an HTTP error or a sha256 mismatch."""


@dataclass(frozen=True)
class SquadFile:
    """An official SQuAD v1.1 file as published on the SQuAD-explorer site."""

    name: str
    """File name on the site and in the cache."""
    url: str
    """Download URL."""
    sha256: str
    """Hex sha256 of the published file."""


_SITE = "https://rajpurkar.github.io/SQuAD-explorer/dataset"

OFFICIAL_FILES = {
    "train": SquadFile(
        "train-v1.1.json",
        f"{_SITE}/train-v1.1.json",
        "3527663986b8295af4f7fcdff1ba1ff3f72d07d61a20f487cb238a6ef92fd955",
    ),
    "dev": SquadFile(
        "dev-v1.1.json",
        f"{_SITE}/dev-v1.1.json",
        "95aa6a52d5d6a735563366753ca50492a658031da74f301ac5238b03966972c9",
    ),
}

# File names accepted in a local folder, in order of preference. The reconstructed train file has
# the official questions and answer texts but synthetic ids and first-occurrence answer starts.
LOCAL_NAMES = {
    "train": ("train-v1.1.json", "train-v1.1.json.gz", "train-v1.1.reconstructed.json.gz"),
    "dev": ("dev-v1.1.json", "dev-v1.1.json.gz"),
}


def squad_cache_dir() -> Path:
    """Return the folder that downloads go to: `$T5KIT_CACHE/squad`, else `~/.cache/t5kit/squad`."""
    root = os.environ.get(CACHE_ENV)
    return (Path(root) if root else Path.home() / ".cache" / "t5kit") / "squad"


def find_squad(split: str, squad_dir: str | os.PathLike | None = None) -> Path:
    """Return the path of the SQuAD v1.1 `split` ("train" or "dev"), downloading it if no folder has it.

    Raises T5kitError that explains how to fetch the file by hand when the download fails.
    """
    _check_split(split)
    folders = []
    for folder, origin in ((squad_dir, "squad_dir"), (os.environ.get(SQUAD_DIR_ENV), SQUAD_DIR_ENV)):
        if not folder:
            continue
        folder = Path(folder)
        if not folder.is_dir():
            raise T5kitError(f"SQuAD folder {folder} (from {origin}) is not a directory")
        folders.append(folder)
    folders.append(squad_cache_dir())

    # Look for a local copy first.
    for folder in folders:
        for name in LOCAL_NAMES[split]:
            path = folder / name
            if path.is_file():
                logger.info("using SQuAD %s file %s", split, path)
                if "reconstructed" in name:
                    logger.info("%s has synthetic question ids and first-occurrence answer starts", name)
                return path

    # Nothing on disk, so try to download the official file into the cache.
    try:
        return download_squad(split)
    except SquadDownloadError as error:
        official = OFFICIAL_FILES[split]
        searched = ", ".join(str(folder) for folder in folders)
        raise T5kitError(
            f"SQuAD v1.1 {split} file not found in {searched}, and the download failed: {error}. "
            f"Fetch it on a machine with network access (curl -L -O {official.url}), "
            f"then put it in {squad_cache_dir()}, or set {SQUAD_DIR_ENV} to its folder, "
            f"or pass the folder with --squad-dir (squad_dir= in Python)."
        ) from error


def download_squad(split: str, cache_dir: str | os.PathLike | None = None, url: str | None = None) -> Path:
    """Download the official SQuAD v1.1 `split` into `cache_dir` (default: the t5kit cache) and check its sha256.

    `url` replaces the official address, for a mirror, and the sha256 of the official file still applies.
    Returns the path of the checked file. Raises SquadDownloadError and leaves no file behind on failure.
    """
    _check_split(split)
    official = OFFICIAL_FILES[split]
    url = url or official.url
    folder = Path(cache_dir) if cache_dir is not None else squad_cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / official.name

    # Write to a temporary file in the same folder so that the final rename is atomic.
    logger.info("downloading %s to %s", url, target)
    handle, temporary = tempfile.mkstemp(prefix=f".{official.name}.", suffix=".part", dir=folder)
    temporary = Path(temporary)
    try:
        digest = _fetch(url, handle)
        if digest != official.sha256:
            raise SquadDownloadError(
                f"{url} has sha256 {digest}, expected {official.sha256} for the official {official.name}, "
                "so the download is corrupted or the file on the server changed"
            )
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    return target


def _fetch(url: str, handle: int) -> str:
    """Stream `url` into the open file descriptor `handle` and return the hex sha256 of the bytes."""
    digest = hashlib.sha256()
    try:
        with os.fdopen(handle, "wb") as file, urllib.request.urlopen(url, timeout=60) as response:
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                file.write(chunk)
    except (OSError, http.client.HTTPException) as error:
        # urllib.error.URLError, HTTPError and socket timeouts are all OSError subclasses.
        raise SquadDownloadError(f"download of {url} failed ({error})") from error
    return digest.hexdigest()


def _check_split(split: str) -> None:
    if split not in OFFICIAL_FILES:
        raise T5kitError(f"unknown SQuAD split {split!r}, expected one of {', '.join(OFFICIAL_FILES)}")
