"""One registry type for every named, pluggable thing.

Perturbations, task adapters, inference backends and check kinds are all
"a name -> a thing, listed by the CLI, looked up from config, extended by
plugins". Writing that once means one error sentence for a misspelt name,
one duplicate-name rule and one way for a third-party package to add an entry
(a Python entry point in the registry's group, e.g. ``edgeprobe.adapters``).

Plugins are loaded lazily, on the first lookup or listing, so importing the
harness never imports a user's package, and a broken plugin is one sentence
naming the entry point rather than a traceback at start-up.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from typing import Generic, TypeVar

from edgeprobe.harness.errors import ConfigError, did_you_mean

T = TypeVar("T")


@dataclass
class Entry(Generic[T]):
    """One registered thing and where it came from ("builtin" or the plugin's distribution)."""

    name: str
    value: T
    origin: str = "builtin"


@dataclass
class Registry(Generic[T]):
    """Names -> values of one kind, with plugins from the entry-point ``group``.

    ``what`` names the kind in error sentences ("task layout", "perturbation");
    ``listing`` is the command that lists the entries, quoted in errors.
    ``on_plugin`` turns what an entry point loads into a value and registers it
    (default: the loaded object is the value, registered under the entry
    point's name); it lets a registry accept e.g. a class and register an
    instance.
    """

    what: str
    group: str | None = None
    listing: str | None = None
    error: type[Exception] = ConfigError
    on_plugin: Callable[[Registry[T], str, object, str], None] | None = None
    _entries: dict[str, Entry[T]] = field(default_factory=dict)
    _plugins_loaded: bool = False

    def register(self, name: str, value: T, origin: str = "builtin") -> T:
        """Add ``value`` under ``name``; a name registered twice is a programming error."""
        if name in self._entries:
            raise ValueError(f"{self.what} {name!r} registered twice "
                             f"({self._entries[name].origin} and {origin})")
        self._entries[name] = Entry(name, value, origin)
        return value

    def add(self, name: str) -> Callable[[T], T]:
        """Decorator form of :meth:`register`."""
        def deco(value: T) -> T:
            return self.register(name, value)
        return deco

    def load_plugins(self) -> None:
        """Register every entry point of ``group`` once; a broken plugin is one clear error."""
        if self._plugins_loaded or self.group is None:
            return
        self._plugins_loaded = True
        for ep in metadata.entry_points(group=self.group):
            dist = ep.dist.name if ep.dist is not None else ep.value
            origin = f"plugin {dist}"
            if ep.name in self._entries:
                continue  # a plugin never shadows a built-in; `edgeprobe tasks` shows the built-in
            try:
                loaded = ep.load()
            except Exception as exc:  # any import failure in a user's package
                raise self.error(
                    f"plugin {ep.name!r} ({ep.value}, group {self.group}) failed to import: {exc}; "
                    f"fix or uninstall {dist}"
                ) from exc
            if self.on_plugin is not None:
                self.on_plugin(self, ep.name, loaded, origin)
            else:
                self.register(ep.name, loaded, origin)

    def get(self, name: str) -> T:
        """The value named ``name``, or one sentence naming the known ones."""
        if name not in self._entries:
            self.load_plugins()
        try:
            return self._entries[name].value
        except KeyError:
            hint = f"`{self.listing}` lists them" if self.listing else f"known: {', '.join(self.names())}"
            raise self.error(f"unknown {self.what} {name!r}{did_you_mean(name, self._entries)}; {hint}") from None

    def entry(self, name: str) -> Entry[T]:
        self.get(name)
        return self._entries[name]

    def names(self) -> list[str]:
        self.load_plugins()
        return sorted(self._entries)

    def entries(self) -> list[Entry[T]]:
        self.load_plugins()
        return [self._entries[n] for n in sorted(self._entries)]

    def __contains__(self, name: object) -> bool:
        if isinstance(name, str) and name not in self._entries:
            self.load_plugins()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        self.load_plugins()
        return len(self._entries)

    def __getitem__(self, name: str) -> T:
        if name not in self:
            raise KeyError(name)
        return self._entries[name].value

    def entries_in_order(self) -> list[Entry[T]]:
        """Entries in registration order (built-ins first, in the order their module lists them)."""
        self.load_plugins()
        return list(self._entries.values())

    def values(self) -> list[T]:
        return [e.value for e in self.entries()]

    def items(self) -> list[tuple[str, T]]:
        return [(e.name, e.value) for e in self.entries()]

    def unregister(self, name: str) -> None:
        """Remove an entry (tests that register a temporary one clean up with this)."""
        self._entries.pop(name, None)
