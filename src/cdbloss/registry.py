"""One registry style for every "name -> thing" table: losses, models, data protocols.

A :class:`Registry` is a read-only mapping filled by a decorator::

    >>> from cdbloss.registry import Registry
    >>> SHAPES = Registry[type]("shape")
    >>> @SHAPES.register("square")
    ... class Square: ...
    >>> SHAPES.lookup("square").__name__
    'Square'
    >>> SHAPES.lookup("circle")
    Traceback (most recent call last):
    ...
    ValueError: unknown shape 'circle'; known: ['square']

An optional ``loader`` runs before the first read (a lookup, ``in``, iteration,
``len``), so a registry whose entries register themselves when their module is
imported can import those modules on demand. Standard library only: the core
(``import cdbloss``) and the lab share it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Generic, TypeVar

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Mapping[str, T], Generic[T]):
    """Names to entries of one kind, filled with :meth:`register`.

    Args:
        kind: what an entry is, for messages (``"loss"``, ``"model"``...).
        loader: called before the first read, until it returns without raising
            (it typically imports the modules whose decorators fill the registry).
        hint: appended to the unknown-name message (e.g. other accepted forms).
    """

    def __init__(
        self, kind: str, *, loader: Callable[[], object] | None = None, hint: str = ""
    ) -> None:
        self.kind = kind
        self.hint = hint
        self._entries: dict[str, T] = {}
        self._loader = loader
        self._loaded = loader is None
        self._loading = False

    # ------------------------------------------------------------------ filling

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: register the decorated object as ``name`` and return it unchanged.

        Raises:
            ValueError: if ``name`` is already registered.
        """

        def deco(obj: T) -> T:
            self.add(name, obj)
            return obj

        return deco

    def add(self, name: str, obj: T) -> None:
        """Register ``obj`` as ``name`` (what :meth:`register` does)."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"a {self.kind} name must be a non-empty str, got {name!r}")
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = obj

    def remove(self, name: str) -> T:
        """Unregister ``name`` and return its entry (tests, plugins that reload)."""
        entry = self.lookup(name)
        del self._entries[name]
        return entry

    # ------------------------------------------------------------------ reading

    def load(self) -> None:
        """Run the loader now (once it has succeeded, never again)."""
        if self._loaded or self._loading or self._loader is None:
            return
        self._loading = True
        try:
            self._loader()
            self._loaded = True
        finally:
            self._loading = False

    def lookup(self, name: str) -> T:
        """The entry registered as ``name``.

        Raises:
            ValueError: one line naming the unknown name and listing the known ones.
        """
        self.load()
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise ValueError(self.unknown(name)) from None

    def unknown(self, name: object) -> str:
        """The message for an unknown ``name``: it lists the known names."""
        return f"unknown {self.kind} {name!r}; known: {sorted(self)}{self.hint}"

    def __getitem__(self, name: str) -> T:
        self.load()
        return self._entries[name]

    def __contains__(self, name: object) -> bool:
        self.load()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        self.load()
        return iter(dict(self._entries))  # a snapshot: registering while iterating is safe

    def __len__(self) -> int:
        self.load()
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {sorted(self._entries)})"
