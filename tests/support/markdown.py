"""Reading the project's Markdown: its fenced code blocks, by language."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
FENCE = re.compile(r"^```(?P<lang>[a-z]*)\n(?P<code>.*?)^```$", re.MULTILINE | re.DOTALL)


def blocks(path: Path, lang: str) -> list[str]:
    """The code of every block fenced as ```lang in `path`, in order."""
    return [m["code"] for m in FENCE.finditer(path.read_text()) if m["lang"] == lang]


def shell_lines(code: str) -> Iterator[str]:
    """A shell block's commands, one a line: continuation lines joined, and a line whose quote is still open (a
    JSON body over two lines) joined with the next."""
    pending = ""
    for line in code.replace("\\\n", " ").splitlines():
        pending = f"{pending}\n{line}" if pending else line
        try:
            shlex.split(pending, comments=True)
        except ValueError:  # no closing quotation yet
            continue
        yield pending
        pending = ""
    assert not pending, f"a quote never closed: {pending}"
