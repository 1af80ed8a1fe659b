"""Operator prompts: a test asks the person at the station, the station page (or the terminal) answers.

The asking side (:func:`ask`, behind the ``prompt`` fixture) records a
``PromptAsked`` event, then waits for the answer:

- when a station page is open for the station (its presence file names a live
  process: :func:`page_attached`), for the file the page writes when the
  operator answers (:func:`write_answer`), polled on a
  :class:`~pytest_litmus.backoff.Backoff`;
- else on the terminal, when stdin is one (the caller passes how to read it);
- else it fails at once with :class:`~pytest_litmus.errors.PromptUnavailable`.

The answer is recorded as ``PromptAnswered``; no answer within ``timeout``
seconds as ``PromptExpired`` and :class:`~pytest_litmus.errors.PromptTimeout`.
Everything travels through the data dir: ``<data_dir>/page/<station>.page.json``
(the page's presence) and ``<data_dir>/page/answers/<prompt>.json`` (one answer).
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
import select
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from pytest_litmus.atomicfile import make_dirs, write_json
from pytest_litmus.backoff import Backoff
from pytest_litmus.errors import PromptTimeout, PromptUnavailable
from pytest_litmus.eventtypes import EventType
from pytest_litmus.processes import holder_alive, this_process

__all__ = [
    "ANSWER_POLL",
    "MAX_ANSWER",
    "announce_page",
    "answer_file",
    "ask",
    "check_prompt_id",
    "page_attached",
    "presence_file",
    "read_terminal",
    "withdraw_page",
    "write_answer",
]

#: How the asking side polls for the page's answer: 5 ms after asking, doubling to 50 ms.
ANSWER_POLL = Backoff(first=0.005, cap=0.05)
#: The longest answer (characters) the page may give.
MAX_ANSWER = 1000
_PROMPT_ID = re.compile(r"[0-9a-f]{32}")

Emit = Callable[..., dict[str, Any]]
#: Reads one answer on the terminal: ``(text, choices, timeout)`` -> the answer, or None when the timeout passed.
#: Raises EOFError when stdin is not a terminal (or is closed).
Terminal = Callable[[str, "list[str] | None", "float | None"], "str | None"]


def presence_file(data_dir: Path, station: str) -> Path:
    """The file naming the page process open for ``station``."""
    return Path(data_dir) / "page" / f"{station}.page.json"


def answer_file(data_dir: Path, prompt_id: str) -> Path:
    """Where the page puts the answer to prompt ``prompt_id``."""
    return Path(data_dir) / "page" / "answers" / f"{check_prompt_id(prompt_id)}.json"


def check_prompt_id(prompt_id: object) -> str:
    """``prompt_id`` if it is a prompt id (32 lowercase hex digits), else ValueError."""
    if not isinstance(prompt_id, str) or _PROMPT_ID.fullmatch(prompt_id) is None:
        raise ValueError(f"not a prompt id: {prompt_id!r}")
    return prompt_id


def announce_page(data_dir: Path, station: str, url: str) -> None:
    """Say that this process shows a page for ``station`` with an operator on it (prompts go to it)."""
    path = presence_file(data_dir, station)
    shared = make_dirs(path.parent)
    make_dirs(path.parent / "answers")
    write_json(path, {**this_process(), "station": station, "url": url}, share=shared)


def withdraw_page(data_dir: Path, station: str) -> None:
    """Remove this process's presence file for ``station`` (another process's is left alone)."""
    path = presence_file(data_dir, station)
    record = _read_json(path)
    if record is not None and record.get("pid") == os.getpid():
        try:
            path.unlink()
        except OSError:
            pass


def page_attached(data_dir: Path, station: str) -> bool:
    """Whether a live page process on this host has an operator's browser on ``station``."""
    record = _read_json(presence_file(data_dir, station))
    return record is not None and record.get("station") == station and holder_alive(record)


def write_answer(data_dir: Path, prompt_id: str, answer: str) -> None:
    """The page's side: answer prompt ``prompt_id`` (atomically: the test reads all of it or nothing)."""
    if not isinstance(answer, str) or len(answer) > MAX_ANSWER:
        raise ValueError(f"an answer is a text of at most {MAX_ANSWER} characters")
    path = answer_file(data_dir, prompt_id)
    make_dirs(path.parent)
    write_json(path, {"answer": answer, "by": this_process()})


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _check(text: object, choices: object, timeout: object) -> tuple[str, list[str] | None, float | None]:
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"prompt text must be a non-empty string, got {text!r}")
    listed: list[str] | None = None
    if choices is not None:
        if isinstance(choices, (str, bytes)) or not isinstance(choices, Sequence):
            raise TypeError(f"choices must be a list of strings, got {choices!r}")
        listed = list(choices)
        if not listed or not all(isinstance(c, str) and c.strip() for c in listed) or len(set(listed)) != len(listed):
            raise ValueError(f"choices must be distinct non-empty strings, got {choices!r}")
    if timeout is not None:
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not math.isfinite(timeout):
            raise TypeError(f"timeout must be seconds (a finite number) or None, got {timeout!r}")
        if timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
    return text, listed, None if timeout is None else float(timeout)


def ask(
    emit: Emit,
    *,
    data_dir: Path,
    station: str,
    text: str,
    choices: Sequence[str] | None = None,
    timeout: float | None = None,
    nodeid: str | None = None,
    terminal: Terminal | None = None,
) -> str:
    """Ask the operator ``text`` (one of ``choices``, if given) and return the answer.

    The page when one is attached, else ``terminal`` (None: no terminal). Raises
    :class:`PromptTimeout` after ``timeout`` seconds (None: wait for ever) and
    :class:`PromptUnavailable` when there is no page and no terminal.
    """
    text, listed, limit = _check(text, choices, timeout)
    via = "page" if page_attached(data_dir, station) else "terminal"
    prompt_id = secrets.token_hex(16)
    emit(EventType.PROMPT_ASKED, prompt=prompt_id, text=text, choices=listed, timeout=limit, via=via, nodeid=nodeid)
    started = time.monotonic()
    try:
        if via == "page":
            answer = _wait_for_page(data_dir, prompt_id, listed, limit)
        else:
            if terminal is None:
                raise EOFError
            answer = terminal(text, listed, limit)
    except EOFError:
        emit(
            EventType.PROMPT_EXPIRED,
            prompt=prompt_id,
            reason="unavailable",
            via=via,
            waited=time.monotonic() - started,
            nodeid=nodeid,
        )
        raise PromptUnavailable(text, station) from None
    waited = time.monotonic() - started
    if answer is None:
        emit(EventType.PROMPT_EXPIRED, prompt=prompt_id, reason="timeout", via=via, waited=waited, nodeid=nodeid)
        raise PromptTimeout(text, limit or 0.0, via)
    emit(EventType.PROMPT_ANSWERED, prompt=prompt_id, answer=answer, via=via, waited=waited, nodeid=nodeid)
    return answer


def _wait_for_page(data_dir: Path, prompt_id: str, choices: list[str] | None, timeout: float | None) -> str | None:
    """The page's answer to ``prompt_id``, or None when ``timeout`` passed; an answer not among ``choices`` is dropped."""
    path = answer_file(data_dir, prompt_id)
    poll = ANSWER_POLL.start(timeout)
    while True:
        record = _read_json(path) if path.exists() else None
        if record is not None:
            try:
                path.unlink()
            except OSError:
                pass
            answer = record.get("answer")
            if isinstance(answer, str) and len(answer) <= MAX_ANSWER and (choices is None or answer in choices):
                return answer
        if poll.expired:
            return None
        poll.sleep()


def read_terminal(
    text: str,
    choices: list[str] | None,
    timeout: float | None,
    *,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
) -> str | None:
    """Ask on the terminal until an acceptable line comes (a choice, matched ignoring case); None on timeout.

    Raises EOFError when ``stdin`` is not a terminal or is closed.
    """
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    try:
        if not stdin.isatty():
            raise EOFError
    except (AttributeError, ValueError):  # closed, or replaced by something that is no file
        raise EOFError from None
    hint = f" [{'/'.join(choices)}]" if choices else ""
    deadline = None if timeout is None else time.monotonic() + timeout
    by_fold = {c.casefold(): c for c in choices or ()}
    while True:
        stdout.write(f"\n{text}{hint} ")
        stdout.flush()
        remaining = None if deadline is None else max(deadline - time.monotonic(), 0.0)
        ready, _, _ = select.select([stdin], [], [], remaining)
        if not ready:
            stdout.write("\n")
            return None
        line = stdin.readline()
        if not line:
            raise EOFError
        answer = line.strip()
        if not choices:
            if answer:
                return answer
        elif answer.casefold() in by_fold:
            return by_fold[answer.casefold()]
