"""YAML files as the product reads them: UTF-8 text, safe tags only, every key once.

PyYAML keeps the last of two equal keys in a mapping without a word, so a
station file that names a role twice silently loses the first. Every YAML file
the product reads (station files, ``litmus.yaml``, simulation files) goes
through :func:`read_yaml`, whose loader refuses a repeated key. Every failure
is a :class:`~pytest_litmus.errors.StationConfigError` naming the file, the key
path and what was expected. PyYAML is imported on first use.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from pytest_litmus.errors import StationConfigError

__all__ = ["read_yaml", "read_yaml_digest"]

_MERGE_TAG = "tag:yaml.org,2002:merge"


class _DuplicateKey(Exception):
    """Raised by the loader; :func:`read_yaml` turns it into a :class:`StationConfigError`."""

    def __init__(self, key_path: str, key: Any, line: int, first_line: int) -> None:
        super().__init__(key_path)
        self.key_path = key_path
        self.key = key
        self.line = line
        self.first_line = first_line


@functools.cache
def _loader() -> type[Any]:
    """A safe loader (libyaml's when PyYAML has it) whose mappings refuse a repeated key."""
    import yaml

    base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class UniqueKeyLoader(base):  # type: ignore[misc]
        def __init__(self, stream: Any) -> None:
            super().__init__(stream)
            #: Key path of each mapping node seen as a value, so an error names where it is.
            self.key_paths: dict[int, str] = {}

        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            if isinstance(node, yaml.MappingNode):
                self._check_keys(node)
            return super().construct_mapping(node, deep=deep)

        def _check_keys(self, node: Any) -> None:
            path = self.key_paths.get(id(node), "")
            seen: dict[Any, int] = {}
            for key_node, value_node in node.value:
                if key_node.tag == _MERGE_TAG:  # '<<' merges are meant to be overridden
                    continue
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                try:
                    first = seen.get(key)
                except TypeError:  # an unhashable key: PyYAML's own error says so
                    continue
                where = f"{path}.{key}" if path else str(key)
                if first is not None:
                    raise _DuplicateKey(where, key, line, first)
                seen[key] = line
                self._remember(value_node, where)

        def _remember(self, node: Any, where: str) -> None:
            if isinstance(node, yaml.MappingNode):
                self.key_paths.setdefault(id(node), where)
            elif isinstance(node, yaml.SequenceNode):
                for index, item in enumerate(node.value):
                    self._remember(item, f"{where}[{index}]")

    return UniqueKeyLoader


def _decode(path: Path, raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = raw[: exc.start]
        line = before.count(b"\n") + 1
        column = exc.start - (before.rfind(b"\n") + 1) + 1
        got = f"byte 0x{raw[exc.start]:02x} at line {line}, column {column}"
        raise StationConfigError(path, "(file)", "UTF-8 text (save the file as UTF-8)", found=got) from None


def read_yaml(path: str | Path) -> Any:
    """The document in the YAML file ``path``; any problem is a :class:`StationConfigError`."""
    return read_yaml_digest(path)[0]


def read_yaml_digest(path: str | Path) -> tuple[Any, str]:
    """The document in ``path`` and the SHA-256 (hex) of the very bytes it was parsed from."""
    import hashlib

    import yaml

    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise StationConfigError(path, "(file)", "a readable file", found=exc.strerror or str(exc)) from None
    text = _decode(path, raw)
    try:
        return yaml.load(text, Loader=_loader()), hashlib.sha256(raw).hexdigest()  # a SafeLoader subclass
    except _DuplicateKey as dup:
        raise StationConfigError(
            path,
            dup.key_path,
            "each key once (YAML would silently keep only the last)",
            found=f"{dup.key!r} again at line {dup.line} (first at line {dup.first_line})",
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise StationConfigError(path, "(yaml)", f"valid YAML ({problem}{where})", has_got=False) from None
