"""The names of a run's output files (standard library only: the report and the GPU script read them too)."""

from __future__ import annotations

import re
from typing import Optional

__all__ = ["slug", "run_name", "PARTIAL", "name_pattern"]

PARTIAL = "-partial"  # suffix of a run that did not complete (never README's; never replaces a complete run)


def slug(text: str) -> str:
    out = "".join(c.lower() if c.isalnum() else "-" for c in text)
    while "--" in out:
        out = out.replace("--", "-")
    return out.strip("-")[:60]


def run_name(preset: str, only: Optional[str] = None, tag: str = "") -> str:
    """The file stem of a run's outputs: ``bench-<preset>[-only-<selection>][-<tag>]`` (e.g. ``bench-ci``,
    ``bench-ci-only-overhead``); :mod:`benchmarks.report` finds runs by these names. A run that did not complete
    writes ``<stem>-partial.json`` instead, so it never replaces a complete one."""
    name = f"bench-{preset}"
    if only:
        sel = "".join(c if c.isalnum() or c == "_" else "-" for c in only)
        while "--" in sel:
            sel = sel.replace("--", "-")
        name += "-only-" + (sel.strip("-")[:40] or "x")
    if tag:
        name += f"-{slug(tag)}"
    return name


def name_pattern(preset: Optional[str] = None, only: Optional[str] = None, tag: str = "") -> "re.Pattern[str]":
    """A regex on file names matching the runs of that preset (any preset when None), selection and tag: the
    runner's ``bench-<stem>[-partial].json`` and the recorded ``<device>-<stem>-<date>.json``."""
    placeholder = "PRESETPLACEHOLDER"
    stem = run_name(preset or placeholder, only, tag)[len("bench-"):]
    body = re.escape(stem).replace(placeholder, "[a-z0-9]+")
    return re.compile(rf"^(?:bench-|.+-){body}(?:{PARTIAL})?(?:-\d{{4}}-\d{{2}}-\d{{2}})?\.json$")
