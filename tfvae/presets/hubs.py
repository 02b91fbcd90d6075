"""Hub handles: `hf://owner/repo` and `kaggle://owner/model/keras/variation`, downloaded on demand.

tfvae depends on neither hub library: a handle needs `huggingface_hub`
(`hf://`) or `kagglehub` (`kaggle://`) installed, and a network. Without
either, the handle is refused at once in one line; the reachability check
gives up after a few seconds, so an offline machine never hangs.
"""

import dataclasses
import importlib
import importlib.util
import re
import socket
import threading

from tfvae.errors import TfvaeError

HANDLE = re.compile(r"([a-z][a-z0-9+.-]*)://(.*)", re.DOTALL)
REACHABLE_TIMEOUT_S = 3.0
HTTPS_PORT = 443


@dataclasses.dataclass(frozen=True)
class Hub:
    """A model hub: the package that downloads from it, and the host it must reach."""

    package: str
    host: str
    example: str
    download: object  # callable (module, path) -> local directory


def _download_hf(module, path):
    return module.snapshot_download(repo_id=path)


def _download_kaggle(module, path):
    return module.model_download(path)


HUBS = {
    "hf": Hub("huggingface_hub", "huggingface.co", "hf://owner/repo", _download_hf),
    "kaggle": Hub(
        "kagglehub", "www.kaggle.com", "kaggle://owner/model/keras/variation", _download_kaggle
    ),
}


def is_handle(source):
    """Whether `source` is written as a hub handle (`scheme://...`)."""
    return HANDLE.fullmatch(source) is not None


def download(handle):
    """Downloads the preset `handle` names; returns its local directory.

    Raises:
        TfvaeError: one line, `cannot download <handle>: ...`, when the hub
            is unknown, its package is not installed, its host cannot be
            reached, or the download fails.
    """
    scheme, path = HANDLE.fullmatch(handle).groups()
    hub = HUBS.get(scheme)
    if hub is None:
        raise TfvaeError(
            f"cannot download {handle}: unknown hub {scheme!r}; expected "
            f"{' or '.join(h.example for h in HUBS.values())}"
        )
    path = path.strip("/")
    if not path:
        raise TfvaeError(f"cannot download {handle}: it names no repository, e.g. {hub.example}")
    if importlib.util.find_spec(hub.package) is None:
        raise TfvaeError(
            f"cannot download {handle}: {hub.package} is not installed (pip install "
            f"{hub.package}); or download the preset yourself and pass its directory"
        )
    if not reachable(hub.host):
        raise TfvaeError(
            f"cannot download {handle}: {hub.host} cannot be reached (offline?); pass the "
            "directory of a preset downloaded earlier instead"
        )
    try:
        return hub.download(importlib.import_module(hub.package), path)
    except Exception as error:  # the hub libraries raise their own exception types
        text = str(error).strip()
        raise TfvaeError(
            f"cannot download {handle}: {text.splitlines()[0] if text else type(error).__name__}"
        ) from None


def reachable(host, timeout=REACHABLE_TIMEOUT_S):
    """Whether a TCP connection to `host`'s HTTPS port opens within `timeout` seconds.

    The name lookup ignores socket timeouts, so the probe runs in a daemon
    thread that is abandoned when time is up.
    """
    opened = []

    def probe():
        try:
            socket.create_connection((host, HTTPS_PORT), timeout=timeout).close()
            opened.append(True)
        except OSError:
            pass

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(opened)
