"""Tar archives of image trees: extracted safely, once, into the cache, never half-way.

Extraction goes to a temporary folder renamed into place when complete, so a truncated, corrupt or
hostile archive leaves nothing behind in the cache, and its error is one line naming the file.
"""
from __future__ import annotations

import errno
import hashlib
import logging
import os
import shutil
import tarfile
import tempfile
import zlib
from pathlib import Path

from ..errors import ReslabError
from .types import default_cache_dir

log = logging.getLogger(__name__)


def safe_extract(archive: str | os.PathLike, dest: str | os.PathLike) -> None:
    """Extract a tar archive, refusing absolute paths, '..', links and device files; a damaged archive
    is a one-line ReslabError (what was extracted before the damage stays in `dest`: use a temporary one)."""
    dest = Path(dest).resolve()
    try:
        with tarfile.open(archive) as tar:
            members = tar.getmembers()
            for m in members:
                target = (dest / m.name).resolve()
                if not (m.isfile() or m.isdir()) or os.path.isabs(m.name) or not target.is_relative_to(dest):
                    raise ReslabError(f"refusing to extract {archive}: unsafe member {m.name!r}")
            if hasattr(tarfile, "data_filter"):
                tar.extractall(dest, members=members, filter="data")
            else:  # Python < 3.10.12: members were checked above
                tar.extractall(dest, members=members)
    except (tarfile.TarError, EOFError, zlib.error) as e:
        raise _damaged(archive, e) from None
    except OSError as e:  # gzip's BadGzipFile is an OSError too
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise ReslabError(f"disk full while extracting {archive} into {dest}") from None
        if e.errno in (errno.EACCES, errno.EROFS):
            raise ReslabError(f"cannot write into {dest} ({e.strerror}): set RESLAB_CACHE or data.cache_dir") from None
        raise _damaged(archive, e) from None


def extract_archives(archives: list[Path], cache_dir: str | None) -> Path:
    """Extract tar archives (once) into one cache folder keyed by their names, sizes and times."""
    h = hashlib.sha256()
    for a in archives:
        st = a.stat()
        h.update(f"{a.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode())
    root = Path(cache_dir or default_cache_dir()) / "extracted"
    dest = root / h.hexdigest()[:16]
    if (dest / ".complete").exists():
        return dest
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=root))
    try:
        for a in archives:
            log.info("extracting %s into the cache (%s)", a, dest)
            safe_extract(a, tmp)
        (tmp / ".complete").touch()
        if dest.exists():  # an older, incomplete extraction
            shutil.rmtree(dest)
        os.rename(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _damaged(archive, e: BaseException) -> ReslabError:
    text = str(e).strip().splitlines()
    why = text[0][:160] if text else type(e).__name__
    return ReslabError(f"{archive} is not a readable tar archive ({why}): truncated or corrupt? Nothing was kept from it")
