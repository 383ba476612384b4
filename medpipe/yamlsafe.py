"""YAML from users, bounded: a size limit, no aliases, a nesting limit -- checked while parsing, so a hostile file
(an alias bomb, ``[[[[...`` twenty thousand deep) is refused in milliseconds with memory bounded by the file size,
instead of ending in MemoryError or RecursionError.

Presets never need aliases (``*name``): a preset is short and is read by people, so values are written out.
"""
from __future__ import annotations

from pathlib import Path

import yaml

from .errors import PresetError

MAX_BYTES = 1 << 20  # the presets shipped are about 2 KB; a megabyte is generous
MAX_DEPTH = 64  # nesting of mappings and lists; presets use about 4


class BoundedLoader(yaml.SafeLoader):
    """SafeLoader that refuses aliases and counts nesting as it composes nodes (composing is the recursive step;
    PyYAML's scanner, parser and non-deep constructor are iterative)."""

    depth = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(None, None, f"alias *{event.anchor} refused: presets do not take YAML "
                                              "aliases (write the value out)", event.start_mark)
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise yaml.composer.ComposerError(None, None, f"nested more than {MAX_DEPTH} levels deep",
                                                  self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def load_text(text: str, where: str):
    """Parse ``text`` (size checked by the caller or here) -> Python data, or PresetError naming ``where``."""
    if len(text) > MAX_BYTES:
        raise PresetError(f"{where}: {len(text):,} characters; a preset is at most {MAX_BYTES:,}")
    try:
        return yaml.load(text, Loader=BoundedLoader)  # noqa: S506 - BoundedLoader is a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise PresetError(f"{where}: not valid YAML{at}: {getattr(exc, 'problem', exc)}") from None


def load_file(path: Path):
    """A user's YAML file -> Python data: size checked before reading, then :func:`load_text`."""
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise PresetError(f"{path}: {size:,} bytes; a preset is at most {MAX_BYTES:,} (is it the right file?)")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PresetError(f"{path}: cannot be read ({exc})") from None
    return load_text(text, str(path))
