"""Prompt styles in A1111's `styles.csv` (columns name, prompt, negative_prompt): a style's text joins the
prompt after a comma, or takes it in where the style says `{prompt}`. Pictures keep the styled prompt in their
infotext; reading one back finds the styles in it and takes their text out again, as A1111's PNG Info does."""
import csv
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from .errors import EngineError

PLACEHOLDER = "{prompt}"


class StyleError(EngineError, ValueError):
    """A style that cannot be saved or used as asked; the message says why."""


@dataclass(frozen=True)
class Style:
    name: str
    prompt: str = ""
    negative_prompt: str = ""


def merge(prompt: str, style_text: str) -> str:
    """A1111's merge_prompts: the style around `{prompt}`, or the two joined with ", " (empty parts dropped)."""
    if PLACEHOLDER in style_text:
        return style_text.replace(PLACEHOLDER, prompt)
    return ", ".join(part for part in (prompt.strip(), style_text.strip()) if part)


def apply_styles(prompt: str, negative: str, chosen: list[Style]) -> tuple[str, str]:
    for style in chosen:
        prompt, negative = merge(prompt, style.prompt), merge(negative, style.negative_prompt)
    return prompt, negative


def _take_out(style_text: str, prompt: str) -> tuple[bool, str]:
    """(found, the prompt without the style's text): the inverse of merge where the text is there."""
    prompt, style_text = prompt.strip(), style_text.strip()
    if PLACEHOLDER in style_text:
        left, right = style_text.split(PLACEHOLDER, 1)
        if prompt.startswith(left) and prompt.endswith(right) and len(prompt) >= len(left) + len(right):
            return True, prompt[len(left):len(prompt) - len(right)]
        return False, prompt
    if prompt.endswith(style_text):
        rest = prompt[:len(prompt) - len(style_text)]
        return True, rest[:-2] if rest.endswith(", ") else rest
    return False, prompt


def extract_styles(prompt: str, negative: str, styles: dict[str, Style]) -> tuple[list[str], str, str]:
    """(style names in the order they were applied, prompt and negative prompt without their text)."""
    found, left = [], [s for s in styles.values() if s.prompt or s.negative_prompt]
    while True:
        for style in left:
            in_prompt, without = _take_out(style.prompt, prompt)
            in_negative, negative_without = _take_out(style.negative_prompt, negative)
            if in_prompt and in_negative:
                found.append(style.name)
                left.remove(style)
                prompt, negative = without, negative_without
                break
        else:
            return found[::-1], prompt, negative


class StyleBook:
    """The styles of one styles.csv, read when it changes on disk and written whole (a temporary file, then
    renamed) so a reader never sees half a file."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp, self._styles = None, {}

    def styles(self) -> dict[str, Style]:
        with self._lock:
            stamp = self.path.stat().st_mtime_ns if self.path.is_file() else None
            if stamp != self._stamp:
                self._styles, self._stamp = (self._read() if stamp else {}), stamp
            return dict(self._styles)

    def _read(self) -> dict[str, Style]:
        with open(self.path, newline="", encoding="utf-8-sig") as f:
            rows = csv.DictReader(f, skipinitialspace=True)
            return {row["name"]: Style(row["name"], row.get("prompt") or "", row.get("negative_prompt") or "")
                    for row in rows if row.get("name")}

    def names(self) -> list[str]:
        return list(self.styles())

    def chosen(self, names: list[str]) -> tuple[list[Style], list[str]]:
        """(the styles named, the names that are not styles)."""
        styles = self.styles()
        return [styles[n] for n in names if n in styles], [n for n in names if n not in styles]

    def save(self, style: Style) -> None:
        if not style.name.strip():
            raise StyleError("a style needs a name")
        styles = self.styles()
        styles[style.name.strip()] = Style(style.name.strip(), style.prompt, style.negative_prompt)
        self._write(styles)

    def delete(self, name: str) -> None:
        styles = self.styles()
        if name not in styles:
            raise StyleError(f"there is no style named {name!r}")
        del styles[name]
        self._write(styles)

    def _write(self, styles: dict[str, Style]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix=".csv.tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", newline="", encoding="utf-8") as f:
                writer = csv.writer(f)
                writer.writerow(["name", "prompt", "negative_prompt"])
                writer.writerows([s.name, s.prompt, s.negative_prompt] for s in styles.values())
            os.replace(tmp, self.path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        with self._lock:
            self._stamp = None          # read again on the next look
