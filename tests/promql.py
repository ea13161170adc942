"""The metric names a PromQL expression selects, for tests that check expressions against real metrics."""

from __future__ import annotations

import re

_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGES = re.compile(r"\[[^\[\]]*\]")
_LABEL_LISTS = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
# A Grafana variable, a number or duration, or an identifier (a function when "(" follows).
_TOKENS = re.compile(r"\$\{?\w+\}?|\d[\w.]*|([a-zA-Z_:][\w:]*)(\s*\()?")
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}
_KEYWORDS |= {"by", "without", "on", "ignoring", "group_left", "group_right"}  # without their label lists


def metric_names(expr: str) -> set[str]:
    """The metric names ``expr`` selects: identifiers outside strings, label matchers, ranges and label
    lists that are neither functions, keywords nor numbers."""
    assert "__name__" not in expr, f"a metric named by a __name__ matcher escapes this check: {expr}"
    bare = _STRINGS.sub('""', expr)
    for pattern in (_MATCHERS, _RANGES, _LABEL_LISTS):
        bare = pattern.sub(" ", bare)
    return {
        m.group(1)
        for m in _TOKENS.finditer(bare)
        if m.group(1) and not m.group(2) and m.group(1).lower() not in _KEYWORDS
    }
