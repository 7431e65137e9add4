"""The one door to the optional Apprise library: imported late, its own log kept out of ours.

Apprise logs through the standard library's ``apprise`` logger, and some of its lines quote a
service URL or the token inside it (``Unsupported URL: ...``). ftwatch's log handler sits on
the root logger, so the ``apprise`` logger stops propagating there once the sink loads the
library; the sink reports a failed delivery's lines itself, masked (:mod:`._sink`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Final

from watcher.errors import PluginError

if TYPE_CHECKING:
    import apprise

__all__ = ["INSTALL_HINT", "new_asset", "parse", "require"]

#: What to do when the library is missing: the whole sentence a user reads.
INSTALL_HINT: Final = (
    "the apprise sink needs the Apprise library, which is not installed; "
    "install it with: pip install 'ftwatch[apprise]'"
)


def require() -> None:
    """Check that Apprise can be imported; :class:`~watcher.errors.PluginError` saying how to
    install it when it cannot."""
    try:
        import apprise  # noqa: F401
    except ImportError:
        # `from None`: the ImportError's chain says nothing the hint does not.
        raise PluginError(INSTALL_HINT) from None
    _keep_logs_out()


def _keep_logs_out() -> None:
    logger = logging.getLogger("apprise")
    if logger.propagate:
        logger.propagate = False
        # Without a handler of its own, a record would reach logging's last-resort stderr printer.
        logger.addHandler(logging.NullHandler())


def new_asset() -> apprise.AppriseAsset:
    """The identity our notifications go out with, and no files: Apprise's cache stays in memory."""
    require()
    import apprise

    return apprise.AppriseAsset(
        app_id="ftwatch",
        app_desc="ftwatch: fine-tuning job notifications",
        storage_mode="memory",
    )


def parse(url: str) -> apprise.Apprise | None:
    """An Apprise object for the one service ``url`` names; None when Apprise cannot use it."""
    asset = new_asset()
    import apprise

    notifier = apprise.Apprise(asset=asset)
    return notifier if notifier.add(url) else None
