"""Atomic file writes: write to a temporary file in the same folder, then rename over the target.

A crash or Ctrl-C mid-write leaves either the old file or the new one, never a torn file (a killed
write leaves a ``.<name>.<random>.tmp`` sibling, which :class:`egs.engine.rundir.RunLock` removes at the next
start). A write that fails for a reason of the OS (a full disk, a read-only or missing folder, no
permission) raises :class:`egs.core.errors.WriteError`, one line naming the file and the fix; its
temporary file is removed and the previous file is left as it was.

Reads of JSON a user can hand in (genotypes, run directories' records, a reproduction's state) go through
:func:`read_json` / :func:`parse_json`: any failure to read, decode or parse (not UTF-8, malformed, nested too
deeply for the parser, a number too long to convert, too large) is one :class:`JSONFileError`.
"""
from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Iterator

from egs.core.errors import EGSError, WriteError


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temporary sibling of ``path`` for writing; it replaces ``path`` only on success.

    An ``OSError`` (raised here or by the caller's writes) becomes :class:`egs.core.errors.WriteError`."""
    path, tmp = Path(path), None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; a written file is an ordinary readable file
        os.replace(tmp, path)
    except BaseException as err:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError) and not isinstance(err, WriteError):
            raise WriteError(path, err) from None
        raise


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_open(path, "wb") as f:
        f.write(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_open(path, "w") as f:
        f.write(text)
    return Path(path)


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    return write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


MAX_JSON_BYTES = 64 * 2**20  # no JSON file egs reads is near this (a genotype is a few kB); larger is not one of ours


class JSONFileError(EGSError):
    """A JSON file (or text) that cannot be read as JSON; ``reason`` says why in words (no path), for callers that
    frame it in their own sentence; the message is ``<source>: <reason>``."""

    def __init__(self, source: str, reason: str) -> None:
        self.source, self.reason = source, reason
        super().__init__(f"{source}: {reason}")


def parse_json(text: str | bytes, source: str = "<string>", what: str = "JSON file") -> Any:
    """``text`` parsed as JSON; any failure is one :class:`JSONFileError` naming ``source`` and saying it is not a
    valid ``what`` (bytes must be UTF-8)."""
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as err:
            raise JSONFileError(source, f"not a valid {what}: it is not UTF-8 text (byte {err.start} is "
                                        f"{bytes(text)[err.start:err.start + 1]!r})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise JSONFileError(source, f"not a valid {what}: malformed JSON ({err})") from None
    except RecursionError:
        raise JSONFileError(source, f"not a valid {what}: its JSON is nested too deeply to read") from None
    except ValueError as err:  # e.g. an integer of thousands of digits
        raise JSONFileError(source, f"not a valid {what}: {str(err).split(';')[0]}") from None


def read_json(path: str | os.PathLike, what: str = "JSON file", max_bytes: int = MAX_JSON_BYTES) -> Any:
    """The JSON value in the file at ``path``: :func:`parse_json` of its bytes. A file larger than ``max_bytes``
    is refused before it is read; ``OSError`` (missing file, no permission) passes through to the caller."""
    path = Path(path)
    size = path.stat().st_size
    if size > max_bytes:
        raise JSONFileError(str(path), f"not a valid {what}: {size:,} bytes, more than any {what} egs writes "
                                       f"(at most {max_bytes:,})")
    with open(path, "rb") as f:
        return parse_json(f.read(max_bytes + 1), str(path), what)
