"""One storage layer addressed by URL for every file a task hands on or the exchange publishes:
staging hand-offs, source mirrors, dataset versions, quarantine files, Data Docs.

`file:///path` (the embedded default: EXCHANGE_HOME itself, so the layout on disk is the one
the exchange always had) or `s3://bucket/prefix` (any S3-compatible server). Files are named by
keys relative to the store's root ("store/<dataset>/v000001/tree.bin"); the catalogue keeps keys,
never a machine's paths. Built on pyarrow.fs, so Parquet and Arrow readers read ranges of a
RandomAccessFile (a record, a node of a tree) without fetching the whole object.

Writes are whole or absent: a local file is written beside its target and renamed; an S3
object is written from a finished local file and appears when its upload completes (an upload
that fails is deleted, best effort; nothing points at it either way).
"""
from __future__ import annotations

import builtins
import os
import posixpath
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.fs as pafs

from base.errors import ConfigError

CHUNK = 8 << 20


def _clean(key: str) -> str:
    """A key as stored: '/'-separated, relative, never leading out of the store."""
    key = key.replace("\\", "/").strip("/")
    norm = posixpath.normpath(key) if key else "."
    if norm == ".":
        return ""
    if norm == ".." or norm.startswith("../"):
        raise ConfigError(f"储存键无效 (bad store key) {key!r}: it leads out of the store")
    return norm


class Store:
    """Files under one root of one file system, named by keys."""

    def __init__(self, fs: pafs.FileSystem, root: str, url: str):
        self.fs, self.root, self.base_url = fs, root.rstrip("/"), url.rstrip("/")

    # --- making one -----------------------------------------------------------------
    @classmethod
    def from_url(cls, url: str, *, endpoint_url: str | None = None, region: str | None = None) -> Store:
        """file:///abs/path or s3://bucket[/prefix]. For S3, `endpoint_url` (http://host:port) names
        an S3-compatible server; credentials come from the AWS SDK's usual chain
        (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, ~/.aws, an instance role)."""
        parts = urlsplit(url)
        if parts.scheme == "file":
            return cls.local(Path(parts.path))
        if parts.scheme == "s3":
            if not parts.netloc:
                raise ConfigError(f"EXCHANGE_STORE_URL {url!r}: an S3 store is s3://BUCKET[/PREFIX]")
            opts: dict[str, Any] = {"region": region} if region else {}
            if endpoint_url:
                ep = urlsplit(endpoint_url if "://" in endpoint_url else f"https://{endpoint_url}")
                opts.update(endpoint_override=ep.netloc, scheme=ep.scheme or "https")
            fs = pafs.S3FileSystem(**opts)
            root = f"{parts.netloc}/{parts.path.strip('/')}".rstrip("/")
            return cls(fs, root, f"s3://{root}")
        raise ConfigError(f"EXCHANGE_STORE_URL {url!r}: use file:///PATH or s3://BUCKET/PREFIX")

    @classmethod
    def local(cls, path: Path | str) -> Store:
        path = Path(path).expanduser().resolve()
        return cls(pafs.LocalFileSystem(), str(path), path.as_uri())

    def sub(self, prefix: str) -> Store:
        """The same store seen from `prefix` (a dataset version's directory, a run's hand-offs)."""
        prefix = _clean(prefix)
        return Store(self.fs, self._path(prefix), self.url(prefix))

    # --- naming -----------------------------------------------------------------------
    @property
    def is_local(self) -> bool:
        return isinstance(self.fs, pafs.LocalFileSystem)

    def _path(self, key: str) -> str:
        key = _clean(key)
        return f"{self.root}/{key}" if key else self.root

    def url(self, key: str = "") -> str:
        key = _clean(key)
        return f"{self.base_url}/{key}" if key else self.base_url

    def local_path(self, key: str = "") -> Path | None:
        """The file's path on this machine for a file:// store (read in place, memory-mapped);
        None for a remote store."""
        return Path(self._path(key)) if self.is_local else None

    def key_of(self, url_or_path: str) -> str | None:
        """The key of a URL of this store, or (file stores) of a path under its root; None if
        it is outside the store."""
        for base in (self.base_url, self.root if self.is_local else None):
            if base and (url_or_path == base or url_or_path.startswith(base + "/")):
                return _clean(url_or_path[len(base):])
        return None

    # --- reading ----------------------------------------------------------------------
    def exists(self, key: str) -> bool:
        return bool(self.fs.get_file_info(self._path(key)).type == pafs.FileType.File)

    def open_input(self, key: str) -> pa.NativeFile:
        """Random access: Parquet and Arrow IPC readers fetch only the ranges they need. A
        local file is memory-mapped."""
        if self.is_local:
            return pa.memory_map(self._path(key))
        return self.fs.open_input_file(self._path(key))

    def read_bytes(self, key: str) -> bytes:
        with self.open_input(key) as f:
            return bytes(f.read())

    def read_text(self, key: str) -> str:
        return self.read_bytes(key).decode("utf-8")

    def size(self, key: str) -> int:
        return int(self.fs.get_file_info(self._path(key)).size)

    def list(self, prefix: str = "") -> list[str]:
        """Keys of the files under `prefix`, sorted."""
        info = self.fs.get_file_info(pafs.FileSelector(self._path(prefix), recursive=True, allow_not_found=True))
        root = self.root + "/"
        return sorted(i.path[len(root):] for i in info if i.type == pafs.FileType.File)

    def get_file(self, key: str, local: Path) -> Path:
        """Copy a file to this machine (a task's scratch folder), atomically."""
        local = Path(local)
        local.parent.mkdir(parents=True, exist_ok=True)
        tmp = local.with_name(f".{local.name}.{uuid.uuid4().hex}")
        try:
            with self.fs.open_input_stream(self._path(key)) as src, open(tmp, "wb") as dst:
                while chunk := src.read(CHUNK):
                    dst.write(chunk)
            os.replace(tmp, local)
        finally:
            tmp.unlink(missing_ok=True)
        return local

    def local_file(self, key: str, scratch: Path) -> Path:
        """The file as a path on this machine: in place on a local store, else fetched into
        `scratch` (a task's own folder) under its key."""
        return self.local_path(key) or self.get_file(key, Path(scratch) / "in" / _clean(key))

    # --- writing ----------------------------------------------------------------------
    def put_file(self, local: Path, key: str, *, move: bool = False) -> str:
        """Store a finished local file under `key` (replacing any); `move`: the local file may be
        moved rather than copied (a rename on the same local disk). Returns the key."""
        key, target = _clean(key), self._path(key)
        if self.is_local:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            if move:
                try:
                    os.replace(local, target)
                    return key
                except OSError:           # another disk: copied below
                    pass
            tmp = f"{target}.{uuid.uuid4().hex}.tmp"
            try:
                shutil.copyfile(local, tmp)
                os.replace(tmp, target)
            finally:
                Path(tmp).unlink(missing_ok=True)
        else:
            self._upload(Path(local), target)
        if move:
            Path(local).unlink(missing_ok=True)
        return key

    def _upload(self, local: Path, target: str) -> None:
        try:
            with open(local, "rb") as src, self.fs.open_output_stream(target) as dst:
                while chunk := src.read(CHUNK):
                    dst.write(chunk)
        except BaseException:
            try:                          # a half-sent object is never left to be read
                self.fs.delete_file(target)
            except Exception:
                pass
            raise

    def put_dir(self, local: Path, prefix: str, *, move: bool = False) -> builtins.list[str]:
        """Every file under a local folder, under `prefix` (same relative names)."""
        local = Path(local)
        return [self.put_file(p, f"{_clean(prefix)}/{p.relative_to(local).as_posix()}", move=move)
                for p in sorted(local.rglob("*")) if p.is_file()]

    def write_bytes(self, key: str, data: bytes) -> str:
        with self.open_output(key) as f:
            f.write(data)
        return _clean(key)

    def write_text(self, key: str, text: str) -> str:
        return self.write_bytes(key, text.encode("utf-8"))

    @contextmanager
    def open_output(self, key: str) -> Iterator[Any]:
        """A binary stream whose file appears under `key` only when the block ends without
        error: on a local store a hidden file beside the target, renamed over it (four system
        calls: a log's tiles are thousands of files); on S3 a local temporary file, uploaded."""
        if self.is_local:
            with _beside(self._path(key)) as out:
                yield out
            return
        fd, tmp = tempfile.mkstemp(prefix=".store-")
        os.close(fd)
        try:
            with pa.OSFile(tmp, "wb") as out:
                yield out
            self._upload(Path(tmp), self._path(key))
        finally:
            Path(tmp).unlink(missing_ok=True)

    def copy(self, src: str, dst: str) -> str:
        """A copy inside the store (S3: a server-side copy)."""
        if self.is_local:
            Path(self._path(dst)).parent.mkdir(parents=True, exist_ok=True)
            self.put_file(Path(self._path(src)), dst)
        else:
            self.fs.copy_file(self._path(src), self._path(dst))
        return _clean(dst)

    def move(self, src: str, dst: str) -> str:
        """Rename a file inside the store (S3: a copy, then the source deleted)."""
        if self.is_local:
            return self.put_file(Path(self._path(src)), dst, move=True)
        self.copy(src, dst)
        self.delete(src)
        return _clean(dst)

    def delete(self, key: str) -> None:
        """Delete one file; a missing one is not an error."""
        try:
            self.fs.delete_file(self._path(key))
        except FileNotFoundError:
            pass

    def delete_prefix(self, prefix: str) -> None:
        """Delete every file under `prefix` (and, on a local store, the folder)."""
        if not _clean(prefix):
            raise ConfigError("delete_prefix: refusing to delete the whole store")
        if self.is_local:
            shutil.rmtree(self._path(prefix), ignore_errors=True)
            return
        for key in self.list(prefix):
            self.delete(key)

    def __repr__(self) -> str:
        return f"Store({self.base_url!r})"


@contextmanager
def _beside(target: str) -> Iterator[Any]:
    """A file written as `target`, whole or absent: a hidden file beside it (mode 0600), renamed
    over it when the block ends without error; the folder made only when it is missing."""
    folder = os.path.dirname(target)
    tmp = os.path.join(folder, f".store-{uuid.uuid4().hex}")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(tmp, flags, 0o600)
    except FileNotFoundError:
        os.makedirs(folder, exist_ok=True)
        fd = os.open(tmp, flags, 0o600)
    try:
        with open(fd, "wb") as out:
            yield out
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
