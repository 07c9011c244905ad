"""Getting a weight file onto disk: the ecosystem's own caches and downloaders, and a sha256 check
of every file, cached ones included, before anything reads it.

- URLs go through torch.hub (`download_url_to_file`, its progress bar) into torch.hub's cache,
  `$TORCH_HOME/hub/checkpoints` (default ~/.cache/torch/hub/checkpoints), so files a user already
  has from torchvision or timm are found there, offline. A download lands under a temporary name and is
  renamed into place only after its hash matched: a corrupt or partial file never enters the cache.
- Hub ids go through huggingface_hub (an optional extra) into its cache; the file is checked against
  the sha256 the Hub reported for it (the blob's name) and against a pinned hash when one is known.
"""
from __future__ import annotations

import errno
import hashlib
import http.client
import os
import re
import urllib.error
import uuid
from importlib import resources
from pathlib import Path

from ..errors import ReslabError

SHA256 = re.compile(r"^[0-9a-f]{64}$")


def hub_cache_dir() -> Path:
    """torch.hub's checkpoint cache (respects TORCH_HOME / XDG_CACHE_HOME / torch.hub.set_dir)."""
    import torch.hub
    return Path(torch.hub.get_dir()) / "checkpoints"


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_hash(path: Path, expected: str, what: str) -> None:
    """Raise unless the file's sha256 starts with `expected` (a full hash or a published prefix)."""
    if not expected:
        return
    got = sha256_of(path)
    if not got.startswith(expected.lower()):
        raise ReslabError(f"{what} does not match its sha256 (expected {expected}{'' if len(expected) == 64 else '...'}, "
                          f"got {got[:len(expected)]}): corrupt, truncated or replaced")


def fetch_url(url: str, sha256: str, file_name: str | None = None, progress: bool = True) -> Path:
    """The verified local copy of `url` in torch.hub's cache, downloaded if absent."""
    cache = hub_cache_dir()
    dst = cache / (file_name or url.rsplit("/", 1)[-1])
    if dst.is_file():
        try:
            check_hash(dst, sha256, f"the cached file {dst}")
        except ReslabError as e:
            raise ReslabError(f"{e}; delete it to download it again from {url}") from None
        return dst
    cache.mkdir(parents=True, exist_ok=True)
    tmp = cache / f".{dst.name}.{uuid.uuid4().hex}.download"
    try:
        import torch.hub
        torch.hub.download_url_to_file(url, str(tmp), hash_prefix=None, progress=progress)
        check_hash(tmp, sha256, f"the file downloaded from {url}")
        os.replace(tmp, dst)
    except urllib.error.HTTPError as e:
        raise ReslabError(f"cannot download {url}: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, ConnectionError, TimeoutError, http.client.HTTPException, OSError) as e:
        if isinstance(e, OSError) and getattr(e, "errno", None) in (errno.ENOSPC, errno.EDQUOT):
            raise ReslabError(f"disk full while downloading {url} into {cache}") from None
        if isinstance(e, OSError) and getattr(e, "errno", None) in (errno.EACCES, errno.EROFS):
            raise ReslabError(f"cannot write into {cache} ({e.strerror}): set TORCH_HOME to a writable folder") from None
        reason = getattr(e, "reason", None) or e
        raise ReslabError(f"cannot download {url} ({str(reason).splitlines()[0][:120]}); without a network, put the "
                          f"file at {dst}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return dst


def fetch_hf(repo_id: str, sha256: str = "", revision: str | None = None, filename: str = "model.safetensors") -> tuple[Path, bool]:
    """The local copy of a Hub file (huggingface_hub's cache), and whether its content was verified: against
    `sha256` when given, else against the sha256 the Hub named its blob with (where the cache keeps blobs
    by name). The cache is looked at first; without it, an offline machine (HF_HUB_OFFLINE, or the Hub not
    reachable) fails at once, in one line, naming the cache."""
    try:
        import huggingface_hub
        from huggingface_hub import constants
        from huggingface_hub.utils import EntryNotFoundError, LocalEntryNotFoundError
    except ImportError:
        raise ReslabError(f"hf-hub:{repo_id} needs huggingface_hub: pip install 'reslab[hub]' "
                          f"(or pip install huggingface_hub)") from None
    try:
        path = Path(huggingface_hub.hf_hub_download(repo_id, filename, revision=revision, local_files_only=True))
    except (LocalEntryNotFoundError, EntryNotFoundError, OSError, ValueError):
        path = None
    if path is None:
        if constants.HF_HUB_OFFLINE or not _reachable(constants.ENDPOINT):
            why = "HF_HUB_OFFLINE is set" if constants.HF_HUB_OFFLINE else f"{constants.ENDPOINT} cannot be reached"
            raise ReslabError(f"hf-hub:{repo_id} is not in the local Hugging Face cache ({constants.HF_HUB_CACHE}) and "
                              f"{why}: download it once with a network (huggingface-cli download {repo_id} {filename})")
        path = _download_quietly(huggingface_hub, repo_id, filename, revision, EntryNotFoundError)
    blob = path.resolve()
    named = blob.name if SHA256.match(blob.name) else ""  # the Hub's own sha256 of the file
    expected = sha256 or named
    if expected:
        try:
            check_hash(blob, expected, f"hf-hub:{repo_id} ({blob})")
        except ReslabError:
            if not named or sha256_of(blob) != named:  # corrupt or tampered: never leave it in the cache
                blob.unlink(missing_ok=True)
                if path.is_symlink():
                    path.unlink()
            else:  # an intact file the Hub has changed since the hash was pinned: keep it, say so
                raise ReslabError(f"hf-hub:{repo_id} has changed on the Hub since its sha256 was pinned ({sha256[:12]}"
                                  f"...): pin the revision that matches (hf-hub:{repo_id}@REVISION)") from None
            raise
    return blob, bool(expected)


def _download_quietly(hub, repo_id: str, filename: str, revision: str | None, not_found) -> Path:
    """hf_hub_download with its retry warnings silenced: reslab reports the outcome in one line."""
    import logging
    logger = logging.getLogger("huggingface_hub")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        return Path(hub.hf_hub_download(repo_id, filename, revision=revision))
    except not_found:
        raise ReslabError(f"hf-hub:{repo_id} has no {filename} (reslab reads safetensors files only)") from None
    except Exception as e:  # noqa: BLE001 - network and server errors of every kind, in one line
        raise ReslabError(f"cannot download hf-hub:{repo_id}: {type(e).__name__}: {str(e).splitlines()[0][:160]}") from None
    finally:
        logger.setLevel(level)


def _reachable(endpoint: str, timeout: float = 3.0) -> bool:
    """Whether a TCP connection to the Hub opens (a few seconds at most, instead of minutes of retries).
    Behind a proxy a direct connection proves nothing: then huggingface_hub is left to try."""
    import socket
    from urllib.parse import urlparse
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    url = urlparse(endpoint)
    try:
        with socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)), timeout):
            return True
    except OSError:
        return False


def cached_path(ws) -> Path | None:
    """Where a set's file already is on this machine (not verified here), or None."""
    if ws.url.startswith("package:"):
        return Path(str(resources.files("reslab.hub").joinpath(ws.url[len("package:"):])))
    if ws.url and (hub_cache_dir() / ws.file_name).is_file():
        return hub_cache_dir() / ws.file_name
    if ws.hf_hub:
        try:
            from huggingface_hub import try_to_load_from_cache
        except ImportError:
            return None
        found = try_to_load_from_cache(ws.hf_hub, "model.safetensors")
        return Path(found) if isinstance(found, str) else None
    return None
