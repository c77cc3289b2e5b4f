"""The one reader of the YAML files people write (journeys, templates), keeping the line of everything in them.

`yaml.safe_load` forgets where things came from, and a validation message without a line number sends people
hunting through their file. Every file is parsed here, with PyYAML's safe loader, and a syntax error of any kind
comes out as one YamlSyntaxError with its line. PyYAML's C loader (libyaml) reads the text where it is built in,
the pure-Python one otherwise: the same nodes and marks, five times faster (a reload parses every file). Two
views of the result:

- `load_with_lines`: plain data plus `path -> line`, for files validated as data (journeys). Containers are
  built by hand, recording lines on the way; scalars by PyYAML's own safe constructor, so that `yes`, `1.5` or
  dates mean exactly what they mean everywhere else.
- `compose`: the node tree, for readers that need what data forgets (a scalar's tag as written, a literal
  block's style, whose lines map one to one onto the file): templates.
"""

from __future__ import annotations

import os
import pathlib
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import yaml

from omnicanal.errors import Problem

Key = str | int | float | None
"""A mapping key as YAML may construct it (bool is an int), or a list index."""
Path = tuple[Key, ...]
"""Where a value sits in the document: `("steps", 3, "send", "channels")`."""


class YamlSyntaxError(Exception):
    """The text is not YAML, or not a YAML shape this loader accepts (one document, hashable keys)."""

    def __init__(self, line: int, message: str) -> None:
        self.line = line
        self.message = message
        super().__init__(f"line {line}: {message}")


MAX_VALUES = 100_000
"""Values a document may hold once its aliases are expanded: thousands of times what a journey needs, far from
what nine anchors of nine aliases each make (9**9 values: the "billion laughs", which used up the memory)."""


@dataclass
class Document:
    """Plain data plus the line of every path in it; `problems` are duplicate keys, as `(line, message)`."""

    data: Any
    lines: dict[Path, int]
    problems: list[tuple[int, str]] = field(default_factory=list)
    aliases: dict[Path, Path] = field(default_factory=dict)
    values: int = 0
    """Values constructed so far: each alias is constructed again where it is used."""
    merged: dict[int, int] = field(default_factory=dict)
    """Pairs merged into a mapping node (`<<`), by the node's id."""

    def alias(self, written: Path, shaped: Path) -> None:
        """Data at `written` was moved to `shaped` before validation: resolve `shaped` paths back to it."""
        self.aliases[shaped] = written

    def resolve(self, loc: Sequence[Key]) -> Path:
        """The path the author wrote for `loc`: aliases undone, then parts not in the file skipped.

        Validation errors come back with model field names (`seconds`, `target`) where the file had a
        different shape; skipping what is not written lands on the nearest thing the author actually typed.
        """
        loc = tuple(loc)
        for shaped in sorted(self.aliases, key=len, reverse=True):
            if loc[: len(shaped)] == shaped:
                loc = self.aliases[shaped] + loc[len(shaped) :]
                break
        path: Path = ()
        for part in loc:
            if (*path, part) in self.lines:
                path = (*path, part)
        return path

    def line_of(self, loc: Sequence[Key]) -> int:
        """The 1-based line of `loc`, or of its nearest written parent."""
        return self.lines.get(self.resolve(loc), 1)


def load_with_lines(source: str) -> Document:
    """Parse one YAML document; raises YamlSyntaxError with the line of the first syntax error."""
    with _parsing(source) as loader:
        node = loader.get_single_node()
        document = Document(data=None, lines={(): 1})
        if node is not None:
            document.lines[()] = line_of_node(node)
            document.data = _construct(loader, node, (), document, set())
        return document


def compose(source: str) -> yaml.Node | None:
    """The node tree of one YAML document (None if it is empty); raises YamlSyntaxError with its line."""
    with _parsing(source) as loader:
        return loader.get_single_node()


def line_of_node(node: yaml.Node) -> int:
    """The 1-based line a node starts on."""
    return int(node.start_mark.line) + 1


_SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MERGE = "tag:yaml.org,2002:merge"
_LINE_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")
"""What YAML counts as a line break."""


@contextmanager
def _parsing(source: str) -> Iterator[yaml.SafeLoader]:
    """A safe loader over `source` whose syntax errors, marked or not, come out as YamlSyntaxError."""
    try:
        loader = _SafeLoader(source)  # refuses a character YAML does not allow right here, before parsing
        try:
            yield loader
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        # libyaml puts the end of a text without a final line break one line below its last: the last line it is
        line = min(mark.line + 1, len(_LINE_BREAK.findall(source)) + 1) if mark is not None else 1
        if "maximum nesting depth" in (exc.problem or ""):  # libyaml's own bound (1,000 levels)
            raise YamlSyntaxError(line, _TOO_DEEP) from exc
        detail = ", ".join(filter(None, (exc.context, exc.problem))) or str(exc)
        raise YamlSyntaxError(line, f"YAML syntax error: {detail}") from exc
    except yaml.reader.ReaderError as exc:
        # Such a character has a position, not a mark: in characters for the Python reader, in bytes of UTF-8 for
        # libyaml's. It is the text's first unacceptable character, so its first occurrence is where it stands.
        line = source.count("\n", 0, max(source.find(chr(exc.character)), 0)) + 1
        message = f"YAML syntax error: unacceptable character #x{exc.character:04x}: special characters are not allowed"
        raise YamlSyntaxError(line, message) from exc
    except RecursionError as exc:  # PyYAML's Python composer, and _construct, recurse once per level of nesting
        raise YamlSyntaxError(1, _TOO_DEEP) from exc


_TOO_DEEP = "nested deeper than the YAML reader follows (a few hundred levels)"


def _construct(loader: yaml.SafeLoader, node: yaml.Node, path: Path, doc: Document, active: set[int]) -> Any:
    """Plain data for `node`, recording lines under `path`; `active` guards against recursive aliases, and
    MAX_VALUES against aliases of aliases."""
    doc.values += 1
    if doc.values > MAX_VALUES:
        raise YamlSyntaxError(line_of_node(node), f"more than {MAX_VALUES:,} values once its aliases (*name), if "
                              "any, are expanded: split the file, or use fewer aliases of aliases")
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_object(node, deep=True)
    if id(node) in active:
        raise YamlSyntaxError(line_of_node(node), "an alias refers to its own anchor; that never ends")
    active = active | {id(node)}
    if isinstance(node, yaml.SequenceNode):
        items = []
        for index, item in enumerate(node.value):
            doc.lines[(*path, index)] = line_of_node(item)
            items.append(_construct(loader, item, (*path, index), doc, active))
        return items
    assert isinstance(node, yaml.MappingNode)
    # `<<: *anchor` merge keys resolved the standard way: the pairs merged in come first, those written here last,
    # so that a key written here overrides a merged one (`{<<: *defaults, template: other}`), as does an earlier
    # mapping of `<<: [*a, *b]` over a later one. Only a key written twice here is a mistake. The node is
    # flattened in place once; an alias constructs it again with the count of its merged pairs kept.
    if (merged := doc.merged.get(id(node))) is None:
        written = sum(1 for key_node, _ in node.value if key_node.tag != _MERGE)
        loader.flatten_mapping(node)
        merged = doc.merged[id(node)] = len(node.value) - written
    mapping: dict[Any, Any] = {}
    written_here: set[Any] = set()
    for index, (key_node, value_node) in enumerate(node.value):
        key = _construct(loader, key_node, path, doc, active)
        line = line_of_node(key_node)
        if not isinstance(key, str | int | float | bool | None):
            raise YamlSyntaxError(line, "a mapping key must be a plain value such as a name")
        if index >= merged:
            if key in written_here:
                doc.problems.append((line, f"duplicate key {key!r} (first at line {doc.lines[(*path, key)]})"))
                continue
            written_here.add(key)
        doc.lines[(*path, key)] = line
        mapping[key] = _construct(loader, value_node, (*path, key), doc, active)
    return mapping


MAX_FILE_BYTES = 1_000_000
"""Largest journey, template or segment file: a hundred times the shipped ones, an e-mail's HTML included. A file
over it is most likely an export dropped in the wrong folder, and parsing it would take minutes and gigabytes
(the daemon's reloads too) before any other limit said so."""


def project_files(directory: pathlib.Path) -> list[pathlib.Path]:
    """The `*.yaml`/`*.yml` files of `directory` in name order, with the links among them that lead nowhere (to a
    file moved away, or to themselves), which `read_source` reports rather than leaving a journey out unsaid.
    Folders and special files (a FIFO would block the reader) are not files of the project."""
    return sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml") and (p.is_file() or not p.exists()))


def read_source(file: pathlib.Path) -> str:
    """The text of a project file; OSError (unreadable, a link to nothing, over MAX_FILE_BYTES) or
    UnicodeDecodeError with a message fit for `cannot read the file: ...`."""
    with file.open("rb") as handle:
        if (size := os.fstat(handle.fileno()).st_size) > MAX_FILE_BYTES:
            raise FileTooLarge(size)
        return handle.read(MAX_FILE_BYTES + 1).decode("utf-8")


class FileTooLarge(OSError):
    """A project file over MAX_FILE_BYTES."""

    def __init__(self, size: int) -> None:
        super().__init__(f"the file is {size:,} bytes; a journey, template or segment file holds at most "
                         f"{MAX_FILE_BYTES:,} (is it the file you meant to put here?)")


def unreadable(file: pathlib.Path, exc: OSError | UnicodeDecodeError) -> Problem:
    """The problem of a file `read_source` could not read."""
    if isinstance(exc, FileTooLarge):
        return Problem(str(file), 1, str(exc))
    return Problem(str(file), 1, f"cannot read the file: {exc}")


def yaml_sources(directory: pathlib.Path, problems: list[Problem]) -> Iterator[tuple[pathlib.Path, str]]:
    """Each `*.yaml`/`*.yml` file of `directory` in name order, with its text; a file that cannot be read is a
    problem added to `problems` (and skipped), so that every other file is still checked."""
    for file in project_files(directory):
        try:
            yield file, read_source(file)
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(unreadable(file, exc))
