"""Put the ImageNet encoder weights into torchvision's cache, only when a user asks.

`download_weights` fetches torchvision's published file; `import_weights` copies a file the user
already has (downloaded elsewhere, or from another machine). Both check the file against the
SHA-256 prefix in its published name (torch.hub's `check_hash` convention, `resnet18-f37072fd.pth`)
and write atomically (a temporary file in the cache folder, then `os.replace`), so the cache
never holds a partial or unverified file. Nothing in segstudio calls them implicitly.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

from segstudio.errors import Cancelled, SegstudioError
from segstudio.files import atomic_path

from .weights import _WEIGHTS, architecture, cached_weights_file, pretrained_available

URL_ENV = "SEGSTUDIO_WEIGHTS_URL"  # a base URL (a mirror, or a test server); the file name is appended
CHUNK = 1 << 16
TIMEOUT_S = 30.0


@dataclass(frozen=True)
class WeightsInfo:
    arch: str
    url: str  # where `download_weights` would fetch them from
    file: Path  # where torchvision looks for them
    size: int  # bytes as published (approximate), 0 when unknown
    cached: bool


def weights_info(arch: str, url: str | None = None) -> WeightsInfo:
    arch = getattr(arch, "value", arch)
    mib = _WEIGHTS[arch].meta.get("_file_size", 0)  # torchvision records MiB
    return WeightsInfo(arch, source_url(arch, url), cached_weights_file(arch), int(mib * 2**20),
                       pretrained_available(arch))


def source_url(arch: str, url: str | None = None) -> str:
    """torchvision's URL for `arch`, or the same file name under the base `url` / $SEGSTUDIO_WEIGHTS_URL."""
    arch = getattr(arch, "value", arch)
    base = url or os.environ.get(URL_ENV, "")
    published = _WEIGHTS[arch].url
    return f"{base.rstrip('/')}/{Path(published).name}" if base else published


def hash_prefix(name: str) -> str | None:
    """The SHA-256 prefix a torchvision file name carries, as torch.hub reads it (None: no check)."""
    from torch.hub import HASH_REGEX

    match = HASH_REGEX.search(name)
    return match.group(1) if match else None


def download_weights(arch: str, progress: Callable[[int, int], None] | None = None,
                     should_stop: Callable[[], bool] | None = None, url: str | None = None,
                     opener: Callable = urllib.request.urlopen) -> Path:
    """Download the ImageNet weights of `arch` into the cache and return the file.

    `progress(done_bytes, total_bytes)` after every chunk (total 0 when the server does not say);
    `should_stop()` true raises Cancelled. On any failure nothing is left behind and a
    SegstudioError says what went wrong.
    """
    target = cached_weights_file(arch)
    source = source_url(arch, url)
    try:
        response = opener(source, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as exc:
        exc.close()
        raise SegstudioError(f"The server answered HTTP {exc.code} ({exc.reason}) for {source}.") from exc
    except OSError as exc:  # URLError, timeouts, refused connections
        reason = getattr(exc, "reason", None) or exc.strerror or exc
        raise SegstudioError(
            f"Cannot reach {urlsplit(source).netloc or source} ({reason}). Check the network, or get "
            f"{source} another way and use 'segstudio weights import {arch} FILE'.") from exc
    with response:
        total = int(response.headers.get("Content-Length") or 0)

        def write(out, digest) -> None:
            done = 0
            stop = should_stop or (lambda: False)
            for chunk in _chunks(response, stop, f"The download from {source} broke off"):
                out.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
            if total and done != total:
                raise SegstudioError(f"The download from {source} ended after {done} of {total} bytes; try again.")

        return _write_verified(target, write, what=f"The downloaded file {source}")


def import_weights(arch: str, path: str | Path) -> Path:
    """Copy a user's copy of torchvision's published ImageNet file for `arch` into the cache.

    The file must load with `torch.load(weights_only=True)`, fit the architecture (strict
    `load_state_dict`), and match the SHA-256 prefix of the published file name. Only the
    published file goes into the cache: torchvision and segstudio take a file there for the
    ImageNet weights (a run records "pretrained"), so another state dict under that name would be
    silently mislabelled. Any other file that fits is refused with the advice to use it as the
    "weights file" (`--weights FILE`, `weights_path`) instead, which is what that option is for.
    """
    import torch

    arch = getattr(arch, "value", arch)
    path = Path(path)
    target = cached_weights_file(arch)
    if not path.is_file():
        raise SegstudioError(f"{path} is not a file.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except OSError as exc:
        raise SegstudioError(f"Cannot read {path}: {exc.strerror or exc}") from exc
    except Exception as exc:  # pickle, zip and format errors all mean "not a state dict we can load"
        raise SegstudioError(f"{path.name} is not a PyTorch weights file that loads safely ({exc}).") from exc
    try:
        architecture(arch)(weights=None).load_state_dict(state, strict=True)
    except Exception as exc:  # wrong keys or shapes, or not a dict at all
        first = str(exc).strip().splitlines()[0][:300]
        raise SegstudioError(f"{path.name} does not fit {arch}: {first}") from exc
    if path.resolve() == target.resolve():
        return target

    def copy(out, digest) -> None:
        try:
            src = open(path, "rb")
        except OSError as exc:
            raise SegstudioError(f"Cannot read {path}: {exc.strerror or exc}") from exc
        with src:
            for chunk in _chunks(src, lambda: False, f"Reading {path} failed"):
                out.write(chunk)
                digest.update(chunk)

    return _write_verified(target, copy, what=path.name,
                           advice=f" It fits {arch}, so it can be used as the weights file instead: "
                                  f"'Weights file' in the app, or 'segstudio train --weights {path}'.")


def _chunks(stream, should_stop: Callable[[], bool], broke: str):
    """The chunks of `stream`; Cancelled when `should_stop()`, a read error as a SegstudioError."""
    while True:
        if should_stop():
            raise Cancelled("The download was cancelled.")
        try:
            chunk = stream.read(CHUNK)
        except OSError as exc:
            raise SegstudioError(f"{broke} ({exc.strerror or exc}); try again.") from exc
        if not chunk:
            return
        yield chunk


def _write_verified(target: Path, write: Callable, what: str, advice: str = " Try again.") -> Path:
    """`write(out, digest)` into a temporary file beside `target`; moved there only when its
    SHA-256 starts with the prefix in `target`'s name. The temporary file never outlives a failure."""
    expected = hash_prefix(target.name)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(target, suffix=".part") as tmp, open(tmp, "wb") as out:
            digest = hashlib.sha256()
            write(out, digest)
            out.flush()
            os.fsync(out.fileno())
            got = digest.hexdigest()
            if expected is not None and not got.startswith(expected):
                raise SegstudioError(
                    f"{what} does not match torchvision's published checksum (its SHA-256 starts with "
                    f"{got[:len(expected)]}, {target.name} says {expected}); it was not kept.{advice}")
        return target
    except OSError as exc:  # reading errors are SegstudioErrors already: this is the cache folder
        raise SegstudioError(f"Cannot write the weights into {target.parent} ({exc.strerror or exc}). Free "
                             "some disk space, or set TORCH_HOME to a writable folder.") from exc
