"""The resolved config as plain data with every secret masked: what ``ftwatch check`` prints."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import SecretBytes, SecretStr

from ..logs import MASK, is_secret_key

__all__ = ["plain"]


def plain(value: Any, *, mask_all: bool = False, url_paths: bool = True) -> Any:
    """Turn dumped model data into JSON-ready values, masking secrets.

    Masked: ``SecretStr`` values, every value under a ``headers`` key (or everything, with
    ``mask_all``), the value of any key named like a credential, and the user:password and
    query values of URLs. Without ``url_paths`` (a sink's keys: a receiver's or Slack's webhook
    URL carries its token in the path) a URL's path and query are masked whole.
    """
    if isinstance(value, SecretStr | SecretBytes):
        return MASK
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            secret = mask_all or (isinstance(key, str) and is_secret_key(key))
            if secret and item is not None and not isinstance(item, bool | Mapping | list):
                out[str(key)] = MASK
            else:
                out[str(key)] = plain(
                    item, mask_all=mask_all or key == "headers", url_paths=url_paths
                )
        return out
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(item, mask_all=mask_all, url_paths=url_paths) for item in value]
    if isinstance(value, Path):
        return str(value)
    if mask_all and value is not None:
        return MASK
    if isinstance(value, str) and value.startswith(("http://", "https://")):
        return _mask_url(value, path=url_paths)
    return value


def _mask_url(url: str, *, path: bool) -> str:
    """Mask the parts of a URL that commonly carry credentials: user:password and query values,
    and unless ``path`` the path and the query whole."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rpartition('@')[2]}"
    if not path:
        hidden = parts.path not in ("", "/") or parts.query or parts.fragment
        return urlunsplit((parts.scheme, netloc, f"/{MASK}" if hidden else parts.path, "", ""))
    query = "&".join(
        f"{pair.partition('=')[0]}={MASK}" if "=" in pair else pair
        for pair in parts.query.split("&")
        if pair
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
