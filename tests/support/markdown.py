"""Reading the project's Markdown: its fenced code blocks, by language."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
FENCE = re.compile(r"^```(?P<lang>[a-z]*)\n(?P<code>.*?)^```$", re.MULTILINE | re.DOTALL)


def blocks(path: Path, lang: str) -> list[str]:
    """The code of every block fenced as ```lang in `path`, in order."""
    return [m["code"] for m in FENCE.finditer(path.read_text()) if m["lang"] == lang]
