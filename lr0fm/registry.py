"""One registry style for everything lr0fm can be extended with, and the plug-in loader that fills them.

A :class:`Registry` holds named entries of one kind (datasets, LR protocols, backbone families, LR-TK0
training sources, ViT tower adapters, LR-TK0 methods). Entries are added with the :meth:`Registry.register`
decorator (as timm's ``register_model``), listed with wildcards and looked up by name with close matches in
the error. Code outside lr0fm's core adds entries the same way from a *plug-in*: a module named by an
``lr0fm.plugins`` entry point, imported once the first time any registry is read. The toy world
(``lr0fm.toy.plugin``) is lr0fm's own plug-in and the example to copy.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")

#: Entry-point group of plug-in modules.
PLUGIN_GROUP = "lr0fm.plugins"
_plugins_loaded = False
_loading = False


def load_plugins() -> None:
    """Import every module of the ``lr0fm.plugins`` entry-point group (once per process).

    Raises:
        ImportError: a plug-in module cannot be imported (the message names the entry point).

    """
    global _plugins_loaded, _loading
    if _plugins_loaded or _loading:
        return
    _loading = True
    try:
        from importlib.metadata import entry_points

        for entry in entry_points(group=PLUGIN_GROUP):
            try:
                entry.load()
            except ImportError as exc:
                raise ImportError(f"lr0fm plug-in {entry.name!r} ({entry.value}) cannot be imported: {exc}") from exc
        _plugins_loaded = True
    finally:
        _loading = False


@dataclass
class Entry(Generic[T]):
    """A registered object and the metadata given with it."""

    name: str
    obj: T
    meta: dict[str, Any] = field(default_factory=dict)


class Registry(Generic[T]):
    """Named entries of one kind.

    Args:
        kind: what the entries are, for messages (``"dataset"``, ``"LR protocol"`` ...).
        error: exception type raised for an unknown name.
        check_name: validates a new name (raises ``ValueError`` with the reason).
        hint: appended to the unknown-name error (e.g. the other accepted forms).

    """

    def __init__(
        self,
        kind: str,
        *,
        error: type[Exception] = ValueError,
        check_name: Callable[[str], None] | None = None,
        hint: str = "",
    ) -> None:
        self.kind = kind
        self.error = error
        self.check_name = check_name
        self.hint = hint
        self._entries: dict[str, Entry[T]] = {}

    def register(self, name: str | None = None, **meta: Any) -> Callable[[T], T]:
        """Decorator adding the decorated object under ``name`` (default: its ``name`` attribute or ``__name__``)."""

        def add(obj: T) -> T:
            key = name or getattr(obj, "name", None) or obj.__name__  # type: ignore[attr-defined]
            self.add(str(key), obj, **meta)
            return obj

        return add

    def add(self, name: str, obj: T, **meta: Any) -> None:
        """Add (or replace) ``obj`` under ``name``."""
        if self.check_name is not None:
            self.check_name(name)
        self._entries[name] = Entry(name, obj, dict(meta))

    def remove(self, name: str) -> None:
        """Remove ``name`` (no error when absent)."""
        self._entries.pop(name, None)

    def entry(self, name: str) -> Entry[T]:
        """The entry of ``name``.

        Raises:
            Exception: ``self.error`` for an unknown name, with close matches and the known names.

        """
        load_plugins()
        if name not in self._entries:
            from lr0fm.catalog import did_you_mean

            known = list(self._entries)
            raise self.error(
                f"unknown {self.kind} {name!r}.{did_you_mean(name, known)} Known: {', '.join(known)}"
                + (f"; {self.hint}" if self.hint else "")
                + "."
            )
        return self._entries[name]

    def get(self, name: str) -> T:
        """The object registered under ``name`` (see :meth:`entry` for the error)."""
        return self.entry(name).obj

    def names(self, pattern: str = "*") -> list[str]:
        """Registered names matching the fnmatch ``pattern`` (case-insensitive), in registration order."""
        load_plugins()
        pattern = pattern.lower()
        return [n for n in self._entries if fnmatch.fnmatchcase(n.lower(), pattern)]

    def __contains__(self, name: object) -> bool:
        load_plugins()
        return name in self._entries

    def __iter__(self) -> Iterator[Entry[T]]:
        load_plugins()
        return iter(list(self._entries.values()))
