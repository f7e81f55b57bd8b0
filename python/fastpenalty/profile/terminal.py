"""Checkpoint-controlled text (tensor names, paths, messages of the readers) made safe for a
terminal: control characters (C0, DEL, C1: ESC sequences, OSC titles and hyperlinks) and the
bidirectional overrides are shown as visible escapes instead of being sent to the terminal.
Rich markup is never parsed from such text either: the rich table gets ``rich.text.Text`` cells."""

from __future__ import annotations

import re

_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _visible(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def safe_text(text) -> str:
    """``text`` with every character that a terminal would act on written as an escape."""
    return _UNSAFE.sub(_visible, str(text))
