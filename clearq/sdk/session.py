"""The SDK's one piece of process-wide state: which store it uses, and the current task.

A training script's ``Task.init``, ``Task.get_task`` and ``Task.clone`` need a store
without being handed one, as in ClearML. That default lives here and nowhere else, as
one explicit :class:`Session` (``SESSION``): the store (opened from the settings on
first use, or set with :func:`use_store`), the task this process reports into, and the
requirements ``Task.init`` adds or leaves out. Tests and programs that manage several
stores replace it with :func:`use_store`.

Nothing here imports SQLAlchemy or pydantic until a store is opened: a training script
passes through this module on its way to ``Task.init``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from clearq.config import Settings, load_settings

if TYPE_CHECKING:
    from clearq.scheduler import Store
    from clearq.sdk.records import StoreRecords
    from clearq.sdk.task import Task


class Session:
    """What the SDK in this process uses when a call is given nothing explicit."""

    def __init__(self) -> None:
        self.store: Store | None = None
        """The store, once opened (or given with ``use_store``)."""
        self.records: StoreRecords | None = None
        """What ``Task.get_task`` and the like read through when they are given nothing:
        set under an agent that gives its tasks only their channel (``ChannelRecords``);
        else records over ``store``."""
        self.current: Task | None = None
        """The task this process reports into (``Task.init``'s)."""
        self.extra_requirements: list[str] = []
        """Added to what ``Task.init`` captures (``Task.add_requirements``)."""
        self.ignored_requirements: list[str] = []
        """Left out of what ``Task.init`` captures (``Task.ignore_requirements``)."""
        self.first_requirements: list[str] = []
        """Installed in a step before the others (``add_requirements(..., first=True)``)."""
        self.unisolated_requirements: list[str] = []
        """Installed last, without build isolation (``no_build_isolation=True``)."""

    def requirements(self) -> dict[str, list[str]]:
        """A copy of the requirement changes, as ``capture_packages`` takes them."""
        return {
            "add": list(self.extra_requirements),
            "ignore": list(self.ignored_requirements),
            "first": list(self.first_requirements),
            "no_build_isolation": list(self.unisolated_requirements),
        }


SESSION = Session()
"""This process's session: the SDK's only process-wide state."""


def default_store() -> Store:
    """The process-wide store, opened from the settings on first use."""
    if SESSION.store is None:
        settings = load_settings()
        if settings.channel is not None and not settings.database_url:
            # Under an agent that gave this task its channel only: no database here,
            # rather than an empty one of its own under a home it was not given.
            from clearq.errors import ChannelRefused
            from clearq.sdk.channel_records import NO_DATABASE

            raise ChannelRefused(NO_DATABASE)
        from clearq.scheduler.store import Store

        SESSION.store = Store(settings=settings)
    return SESSION.store


def default_records() -> StoreRecords:
    """The records ``Task``'s class methods use: the channel's, else the default store's."""
    if SESSION.records is not None:
        return SESSION.records
    from clearq.sdk.records import StoreRecords

    return StoreRecords()


def use_store(store: Store | None) -> None:
    """Make ``store`` the one the SDK uses (tests, or a program managing several)."""
    SESSION.store = store


def settings_in_use() -> Settings:
    """The settings of the store the SDK uses (``use_store``'s, else the environment's)."""
    store = SESSION.store
    if store is None:
        return load_settings()
    url = store.db.url.render_as_string(hide_password=False)
    return store.settings.replace(database_url=url)


__all__ = [
    "SESSION",
    "Session",
    "default_records",
    "default_store",
    "settings_in_use",
    "use_store",
]
