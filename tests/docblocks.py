"""The fenced code blocks of README.md and docs/*.md, read and sorted for tests/test_docs.py.

A block is what is between a CommonMark fence (```` ``` ```` or ``~~~``) and its close, with the
info string's first word as its language. An HTML comment on the line directly before the fence
(blank lines allowed between) steers it::

    <!-- docs-test: skip REASON -->        not run: REASON
    <!-- docs-test: hardware REASON -->    not run: needs a real instrument
    <!-- docs-test: continue -->           Python: run after the previous Python block of the file
    <!-- docs-test: background -->         console: start the one command, wait for its first
                                           line of stdout, compare it, stop it with SIGTERM
    <!-- docs-test: empty-folder -->       run in an empty folder, not the scratch project
    <!-- docs-test: output COMMAND -->     a sample of COMMAND's output: compare its shape
    <!-- docs-test: signature MOD:NAME -->  a Python signature: compare it with MOD:NAME's
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

PYTHON = ("python", "py")
SHELL = ("sh", "bash", "shell", "console")
MARKER_KINDS = ("skip", "hardware", "continue", "background", "empty-folder", "output", "signature")

_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")
_MARKER = re.compile(r"^\s*<!--\s*docs-test:\s*(?P<kind>[\w-]+)\s*(?P<arg>.*?)\s*-->\s*$")
_FILE_HEADER = re.compile(r"^#\s*(?P<name>[\w./-]+\.py)\b")


class DocsError(ValueError):
    """A doc file the test cannot read: an unclosed fence, a marker that steers nothing."""


@dataclass(frozen=True)
class Block:
    """One fenced block: where it is, its language, its text, its marker."""

    doc: str  # path relative to the repository, as in the test id
    line: int  # 1-based line of the opening fence
    lang: str
    text: str
    marker: str = ""
    marker_arg: str = ""
    previous: tuple[Block, ...] = field(default=(), compare=False, repr=False)  # earlier blocks of the file

    @property
    def id(self) -> str:
        return f"{self.doc}:{self.line}"

    @property
    def file_name(self) -> str | None:
        """``name.py`` when the block is a file's content (its first line is ``# name.py``)."""
        match = _FILE_HEADER.match(self.text)
        return match["name"] if match and self.lang in PYTHON else None

    @property
    def kind(self) -> str:
        """What the test does with it: see :func:`classify`."""
        return classify(self)


def parse(path: Path, doc: str | None = None) -> list[Block]:
    """The fenced blocks of ``path``, in order; ``doc`` names it (default: its path in the repository)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    doc = doc or path.relative_to(REPO).as_posix()
    blocks: list[Block] = []
    marker: tuple[str, str, int] | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        found = _MARKER.match(line)
        if found:
            if found["kind"] not in MARKER_KINDS:
                raise DocsError(f"{doc}:{i + 1}: unknown docs-test marker {found['kind']!r}")
            marker = (found["kind"], found["arg"], i + 1)
            i += 1
            continue
        fence = _FENCE.match(line)
        if not fence:
            if line.strip() and marker:
                raise DocsError(f"{doc}:{marker[2]}: a docs-test marker must come directly before a fence")
            i += 1
            continue
        close = re.compile(rf"^ {{0,3}}{fence['fence'][0]}{{{len(fence['fence'])},}}\s*$")
        body: list[str] = []
        for j in range(i + 1, len(lines)):
            if close.match(lines[j]):
                break
            body.append(lines[j][len(fence["indent"]) :] if lines[j].startswith(fence["indent"]) else lines[j])
        else:
            raise DocsError(f"{doc}:{i + 1}: fence never closed")
        info = fence["info"].strip().split()
        kind, arg = (marker[0], marker[1]) if marker else ("", "")
        block = Block(doc, i + 1, info[0].lower() if info else "", "\n".join(body) + "\n", kind, arg, tuple(blocks))
        blocks.append(block)
        marker = None
        i = j + 1
    return blocks


def all_blocks() -> list[Block]:
    return [block for path in DOCS for block in parse(path)]


def is_signature(text: str) -> bool:
    """``name(params) -> result`` lines: not Python, but a ``def`` stub once ``def`` and ``: ...`` are added."""
    try:
        ast.parse(text)
        return False
    except SyntaxError:
        pass
    try:
        tree = ast.parse("def " + " ".join(text.split()) + ": ...")
    except SyntaxError:
        return False
    return len(tree.body) == 1


def defines_tests(text: str) -> bool:
    """A test module: a top-level ``def test_...``."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return False
    return any(isinstance(node, ast.FunctionDef) and node.name.startswith("test") for node in tree.body)


def has_prompts(text: str) -> bool:
    return any(line.startswith("$ ") for line in text.splitlines())


#: The keys of ``litmus.yaml``.
PROJECT_KEYS = {"default_station", "data_dir", "dut_pattern", "limits", "locks", "fleet", "page"}


def yaml_kind(text: str) -> str:
    """``station`` / ``simulation`` / ``project`` (litmus.yaml) / ``limits`` for YAML recognisably one of them, else ``data``.

    A station file has a top-level ``instruments`` key; a simulation file ``devices`` (pyvisa-sim's
    layout); ``litmus.yaml`` only its keys (:data:`PROJECT_KEYS`); a
    limits file ``measurements`` and at most ``unlisted`` beside it.
    """
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return "station" if re.search(r"^instruments:", text, re.M) else "data"
    if not isinstance(data, dict):
        return "data"
    if "instruments" in data:
        return "station"
    if "devices" in data:
        return "simulation"
    if data and set(data) <= PROJECT_KEYS:
        return "project"
    if "measurements" in data and set(data) <= {"measurements", "unlisted"}:
        return "limits"
    return "data"


def classify(block: Block) -> str:
    """What the docs test does with ``block``.

    ``skip`` / ``hardware`` (marked); ``signature`` (compared with the real one); ``pytest`` (a test
    module, or a file block named ``conftest.py`` / ``test_*.py``: run by pytest on the scratch
    project); ``script-file`` (a file block another block runs: only checked to be run); ``python``;
    ``shell`` (sh, bash); ``console`` (``$ `` prompts); ``output`` (a sample, compared); ``station``,
    ``simulation``, ``project``, ``limits`` (YAML loaded by the real loader); ``json`` / ``toml`` (parsed);
    ``data`` (nothing to run: text, ini, other YAML, bare blocks).
    """
    if block.marker in ("skip", "hardware", "output", "signature"):
        return block.marker
    if block.lang in PYTHON:
        name = block.file_name
        if name and (name == "conftest.py" or Path(name).name.startswith("test_")):
            return "pytest"
        if name:
            return "script-file"
        if is_signature(block.text):
            return "signature"
        return "pytest" if defines_tests(block.text) else "python"
    if block.lang in SHELL:
        return "console" if has_prompts(block.text) else "shell"
    if block.lang in ("yaml", "yml"):
        return yaml_kind(block.text)
    if block.lang in ("json", "toml"):
        return block.lang
    return "data"


def python_source(block: Block) -> str:
    """The block's Python, after the blocks it continues (``continue`` marker)."""
    if block.marker != "continue":
        return block.text
    earlier = [b for b in block.previous if b.lang in PYTHON]
    if not earlier:
        raise DocsError(f"{block.id}: 'continue' with no Python block before it")
    return python_source(earlier[-1]) + block.text


def console_steps(text: str) -> list[tuple[str, list[str]]]:
    """``$ command`` lines of a console block, each with the sample output lines after it."""
    steps: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        elif steps:
            steps[-1][1].append(line)
    return steps


def shape(line: str) -> tuple[str, ...]:
    """What a sample line and a real one must share: indentation, first word, the next if a plain word.

    Digits are all alike (times, counts, ports, ids), so is ``…`` elision.
    """
    words = line.split()
    if not words:
        return ("",)
    indent = str(len(line) - len(line.lstrip()))
    first = re.sub(r"\d+", "0", words[0])
    second = words[1] if len(words) > 1 and re.fullmatch(r"[A-Za-z_]+", words[1]) else "*"
    return (indent, first, second)


def is_table_header(line: str) -> bool:
    words = line.split()
    return len(words) >= 2 and all(re.fullmatch(r"[A-Z][A-Z/@_]*", w) for w in words)


def compare_shapes(sample: list[str], real: list[str]) -> str | None:
    """Why ``sample`` is not shaped like ``real`` output, or None.

    A sample that starts with a table header must have the real header; otherwise every sample
    line's shape must appear in the real output, in the same order (a sample may leave lines out).
    """
    sample = [line for line in sample if line.strip()]
    real = [line for line in real if line.strip()]
    if not sample:
        return None
    if is_table_header(sample[0]):
        header = next((line for line in real if is_table_header(line)), None)
        if header is None or header.split() != sample[0].split():
            return f"table header {sample[0].split()} but the command prints {header and header.split()}"
        return None
    shapes = iter([shape(line) for line in real])
    for line in sample:
        if shape(line) not in shapes:  # consumes the iterator: in-order subsequence
            return f"sample line {line!r} (shape {shape(line)}) is not in the real output, in order"
    return None
