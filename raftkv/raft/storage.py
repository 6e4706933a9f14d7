"""The file operations durability depends on, in one place.

Everything raftkv persists goes through ``DurableFile`` and ``replace_file``
so that "acknowledged only after fsync" can be checked: when the environment
variable RAFTKV_POWER_LOSS_SHADOW names a folder, every fsync also copies the
synced bytes there (and a directory fsync records renames), so a test can
kill -9 a member, put the shadow in place of its data directory, and restart
it exactly as a power loss would have left it.
"""

from __future__ import annotations

import os
import shutil
import threading

SHADOW_ENV = "RAFTKV_POWER_LOSS_SHADOW"


class StorageFailure(OSError):
    """A write or fsync of the member's data failed (a full disk, an I/O
    error): what the member would promise next is not on disk."""

    @classmethod
    def of(cls, error: OSError, path: str) -> StorageFailure:
        return cls(error.errno, f"cannot write {path}: {error.strerror or error}")


def _shadow_root() -> str | None:
    return os.environ.get(SHADOW_ENV) or None


def _shadow_path(path: str) -> str:
    root = _shadow_root()
    assert root is not None
    return os.path.join(root, os.path.abspath(path).lstrip(os.sep))


_pending_renames: list[tuple[str, str]] = []
_pending_removals: list[str] = []
_pending_lock = threading.Lock()  # removals are also recorded by the log's cleaner thread


def fsync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    if _shadow_root():
        directory = os.path.abspath(directory)
        keep = []
        for src, dst in _pending_renames:
            if os.path.dirname(dst) == directory:
                shadow_src, shadow_dst = _shadow_path(src), _shadow_path(dst)
                if os.path.exists(shadow_src):
                    os.replace(shadow_src, shadow_dst)
            else:
                keep.append((src, dst))
        _pending_renames[:] = keep
        with _pending_lock:
            removed = [p for p in _pending_removals if os.path.dirname(p) == directory]
            for path in removed:
                _pending_removals.remove(path)
        for path in removed:
            _remove_quietly(_shadow_path(path))


class DurableFile:
    """An append-mostly file whose ``sync()`` is the durability point."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        self.dirty = False

    def read_all(self) -> bytes:
        size = os.fstat(self._fd).st_size
        return os.pread(self._fd, size, 0)

    def size(self) -> int:
        return os.fstat(self._fd).st_size

    def append(self, data: bytes, offset: int) -> None:
        view = memoryview(data)
        self.dirty = True
        try:
            while view:
                written = os.pwrite(self._fd, view, offset)
                view = view[written:]
                offset += written
        except OSError as e:
            raise StorageFailure.of(e, self.path) from e

    def truncate(self, size: int) -> None:
        self.dirty = True
        try:
            os.ftruncate(self._fd, size)
        except OSError as e:
            raise StorageFailure.of(e, self.path) from e

    def sync(self) -> None:
        if not self.dirty:
            return
        try:
            os.fsync(self._fd)
        except OSError as e:
            # after a failed fsync the kernel may have dropped the dirty
            # pages: nothing written since the last good sync is known durable
            raise StorageFailure.of(e, self.path) from e
        self.dirty = False
        if _shadow_root():
            shadow = _shadow_path(self.path)
            os.makedirs(os.path.dirname(shadow), exist_ok=True)
            # replace, never rewrite in place: a kill mid-copy must leave the
            # previous synced image, not a truncated one
            with open(shadow + ".copy", "wb") as f:
                f.write(self.read_all())
            os.replace(shadow + ".copy", shadow)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def replace_file(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically and durably (tmp, fsync, rename,
    fsync dir). On failure the temporary file is removed and ``path`` is as it was."""
    tmp = path + ".tmp"
    try:
        f = DurableFile(tmp)
        try:
            f.truncate(0)
            f.append(data, 0)
            f.sync()
        finally:
            f.close()
    except OSError as e:
        _remove_quietly(tmp)
        raise e if isinstance(e, StorageFailure) else StorageFailure.of(e, tmp) from e
    rename_durably(tmp, path)


def rename_durably(src: str, dst: str) -> None:
    """Rename a complete, fsynced file into place and fsync the directory."""
    try:
        os.replace(src, dst)
        if _shadow_root():
            _pending_renames.append((os.path.abspath(src), os.path.abspath(dst)))
        fsync_dir(os.path.dirname(os.path.abspath(dst)))
    except OSError as e:
        raise StorageFailure.of(e, dst) from e


def remove_file(path: str) -> None:
    """Remove a file; the removal is durable at its folder's next fsync."""
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
    except OSError as e:
        raise StorageFailure.of(e, path) from e
    if _shadow_root():
        with _pending_lock:
            _pending_removals.append(os.path.abspath(path))


def install_file(src: str, dst: str) -> None:
    """Put a file another process wrote and fsynced (a snapshot) in place of ``dst``."""
    sync_existing_file(src)  # a no-op fsync, but it records the file in a power-loss shadow
    rename_durably(src, dst)


def _remove_quietly(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


def sync_existing_file(path: str) -> None:
    """fsync a file written by someone else, and its directory."""
    if not os.path.exists(path):
        return
    f = DurableFile(path)
    try:
        f.dirty = True
        f.sync()
    finally:
        f.close()
    fsync_dir(os.path.dirname(os.path.abspath(path)))


def restore_shadow(data_dir: str, shadow_root: str) -> None:
    """Replace ``data_dir`` by what had been fsynced of it (a simulated power loss)."""
    shadow = os.path.join(shadow_root, os.path.abspath(data_dir).lstrip(os.sep))
    shutil.rmtree(data_dir, ignore_errors=True)
    if os.path.isdir(shadow):
        shutil.copytree(shadow, data_dir)
    else:
        os.makedirs(data_dir)
