"""Many alerts made into one chat message: the robots take about 20 messages a minute, so alerts go out grouped."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

_LINE_MAX_CHARS = 300  # one runaway message must not crowd every other alert out of the message


def truncate_utf8(text: str, limit_bytes: int, marker: str = "") -> str:
    """`text` cut to at most `limit_bytes` of UTF-8, never inside a character; `marker` ends a text that was cut."""
    data = text.encode()
    if len(data) <= limit_bytes:
        return text
    if len(marker.encode()) > limit_bytes:
        marker = ""
    # A cut inside a character leaves only an incomplete sequence at the very end, which "ignore" drops.
    return data[: limit_bytes - len(marker.encode())].decode(errors="ignore") + marker


def compose(alerts: Sequence[Mapping[str, Any]], *, limit_bytes: int = 3500) -> str:
    """One markdown message for all `alerts`: total, count per kind, then the newest that fit, then how many did not."""
    kinds = Counter(str(alert["kind"]) for alert in alerts)
    head = [f"#### Ledger alerts: {len(alerts)}", ""]
    head += [f"- {kind}: {count}" for kind, count in sorted(kinds.items(), key=lambda item: (-item[1], item[0]))]
    head.append("")
    newest = sorted(alerts, key=lambda alert: alert["raised_at"], reverse=True)
    shown: list[str] = []
    for alert in newest:
        candidate = [*shown, _line(alert)]
        # Room must stay for the "... and N more" line that follows whatever is shown.
        if _size(head + candidate + _more(len(newest) - len(candidate))) > limit_bytes:
            break
        shown = candidate
    text = "\n".join(head + shown + _more(len(newest) - len(shown)))
    return truncate_utf8(text, limit_bytes)  # only a header wider than the limit itself is cut here


def _line(alert: Mapping[str, Any]) -> str:
    message = " ".join(str(alert["message"]).split())  # one alert, one line, whatever the message holds
    if len(message) > _LINE_MAX_CHARS:
        message = message[: _LINE_MAX_CHARS - 1] + "…"
    return f"- [{alert['kind']}] {message}"


def _more(hidden: int) -> list[str]:
    # The blank line keeps markdown from folding the remark into the last list item.
    return ["", f"... and {hidden} more"] if hidden else []


def _size(lines: list[str]) -> int:
    return len("\n".join(lines).encode())
