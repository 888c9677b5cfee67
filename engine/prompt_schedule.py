"""A1111's prompt editing, alternation and composition, with its grammar and its step arithmetic.

    [from:to:when]   "from" until step `when`, then "to"    [to:when]   nothing, then "to"
    [from::when]     "from", then nothing                   [a|b|c]     a, b, c, a, ... one per step
    a cat AND a dog :0.5                                    each part its own conditional pass (composable
                                                            diffusion, Liu et al. 2022), weighted

`when` with a decimal point is a fraction of the steps, otherwise a step number. A prompt whose brackets do
not parse (`a [unbalanced`) is taken as it is; stray brackets and colons outside any construct are text.
`(...)` and `[...]` emphasis stays in the text for the attention parser (engine.prompts).

A schedule is A1111's list of (last step, text): the sampler's i-th model call (counted from 0) uses the
first entry whose last step is at least i. For the hires fix's second pass (`first_pass_steps` given),
step numbers count on from the first pass and fractions run from 1 to 2 over the second one, as A1111 does.
"""
import re
from dataclasses import dataclass

_NUMBER = re.compile(r"[+-]?(?:\d+[eE][+-]?\d+|(?:\d+\.\d*|\.\d+)(?:[eE][+-]?\d+)?|\d+)")
_PLAIN = re.compile(r"(?:[^\\\[\]():|]|\\.)+")
_SPACE = re.compile(r"\s+")
_STRAY = "[]():"            # outside every construct these are text
_AND = re.compile(r"\bAND\b")
_WEIGHT = re.compile(r"^((?:\s|.)*?)(?:\s*:\s*([-+]?(?:\d+\.?|\d*\.\d+)))?\s*$")


@dataclass
class Scheduled:
    before: list | None
    after: list
    when: str                   # as written; `steps_of` turns it into a step


@dataclass
class Alternate:
    options: list[list]


class _Fail(Exception):
    pass


class _Parser:
    """Recursive descent over A1111's grammar; a construct that does not close fails and is retried as text
    (at the top level) or fails its parent."""

    def __init__(self, text: str):
        self.text = text
        self.bar_is_text = False      # inside a bracket that failed as an alternation: "|" is plain text

    def top(self) -> list:
        out, pos = [], 0
        while pos < len(self.text):
            nodes, end = self.seq(pos)
            if end == pos:
                if self.text[pos] not in _STRAY:
                    raise _Fail(pos)          # a "|" outside [...]: the prompt is taken as it is
                nodes, end = [self.text[pos]], pos + 1
            out += nodes
            pos = end
        return out

    def seq(self, pos: int) -> tuple[list, int]:
        """Plain text, spaces, and bracketed constructs, up to the first character none of them takes."""
        out = []
        while pos < len(self.text):
            char = self.text[pos]
            if char in "([":
                try:
                    node, pos = self.bracketed(pos)
                except _Fail:
                    break
                out += node
                continue
            found = _PLAIN.match(self.text, pos)
            if found:
                out.append(found.group(0))
                pos = found.end()
            elif self.bar_is_text and char == "|":
                out.append(char)
                pos += 1
            else:
                break
        return out, pos

    def expect(self, pos: int, char: str) -> int:
        if not self.text.startswith(char, pos):
            raise _Fail(pos)
        return pos + 1

    def number(self, pos: int) -> tuple[str, int]:
        """`:` already read: optional spaces, a signed number, optional spaces, `]`."""
        if (space := _SPACE.match(self.text, pos)) is not None:
            pos = space.end()
        found = _NUMBER.match(self.text, pos)
        if not found:
            raise _Fail(pos)
        pos = found.end()
        if (space := _SPACE.match(self.text, pos)) is not None:
            pos = space.end()
        return found.group(0), self.expect(pos, "]")

    def bracketed(self, pos: int) -> tuple[list, int]:
        try:
            return self.construct(pos)
        except _Fail:
            if self.bar_is_text or self.text[pos] != "[":
                raise
        self.bar_is_text = True       # A1111's documented reading of "a [{b|d{:.5] c": an edit of "{b|d{"
        try:
            return self.construct(pos)
        finally:
            self.bar_is_text = False

    def construct(self, pos: int) -> tuple[list, int]:
        if self.text[pos] == "(":                     # (x) or (x:y): emphasis, kept as text
            first, end = self.seq(pos + 1)
            if self.text.startswith(":", end):
                second, end = self.seq(end + 1)
                return ["(", *first, ":", *second, ")"], self.expect(end, ")")
            return ["(", *first, ")"], self.expect(end, ")")
        first, end = self.seq(pos + 1)
        if self.text.startswith("]", end):
            return ["[", *first, "]"], end + 1
        if self.text.startswith("|", end):
            options = [first]
            while self.text.startswith("|", end):
                option, end = self.seq(end + 1)
                options.append(option)
            return [Alternate(options)], self.expect(end, "]")
        end = self.expect(end, ":")
        try:                                          # [to:when]
            when, after_end = self.number(end)
            return [Scheduled(None, first, when)], after_end
        except _Fail:
            pass
        second, end = self.seq(end)                   # [from:to:when]
        end = self.expect(end, ":")
        when, end = self.number(end)
        return [Scheduled(first, second, when)], end


def _walk(nodes: list):
    for node in nodes:
        yield node
        if isinstance(node, Scheduled):
            yield from _walk(node.before or [])
            yield from _walk(node.after)
        elif isinstance(node, Alternate):
            for option in node.options:
                yield from _walk(option)


def _text_at(nodes: list, step: int, whens: dict) -> str:
    out = []
    for node in nodes:
        if isinstance(node, str):
            out.append(node)
        elif isinstance(node, Scheduled):
            out.append(_text_at(node.before or [], step, whens) if step <= whens[id(node)]
                       else _text_at(node.after, step, whens))
        else:
            out.append(_text_at(node.options[(step - 1) % len(node.options)], step, whens))
    return "".join(out)


def prompt_schedule(prompt: str, steps: int, first_pass_steps: int | None = None) -> list[tuple[int, str]]:
    """[(last step, text), ...] for a prompt sampled in `steps` model calls, as A1111 1.10 schedules it.
    `first_pass_steps`: this is the hires fix's second pass, after a first pass of that many steps."""
    try:
        nodes = _Parser(prompt).top()
    except _Fail:
        return [(steps, prompt)]
    int_offset, fraction_offset = (0, 0.0) if first_pass_steps is None else (first_pass_steps, 1.0)
    points, whens = {steps}, {}
    for node in _walk(nodes):
        if isinstance(node, Scheduled):
            value = float(node.when)
            value = (value - fraction_offset) * steps if "." in node.when else value - int_offset
            whens[id(node)] = min(steps, int(value))
            if whens[id(node)] >= 1:
                points.add(whens[id(node)])
        elif isinstance(node, Alternate):
            points.update(range(1, steps + 1))
    return [(point, _text_at(nodes, point, whens)) for point in sorted(points)]


def text_at(schedule: list[tuple[int, str]], call: int) -> str:
    """The text the model call `call` (counted from 0) uses: the first entry whose last step is >= call."""
    return next((text for last, text in schedule if call <= last), schedule[0][1])


def split_and(prompt: str) -> list[tuple[str, float]]:
    """A1111's AND: [(sub-prompt, weight), ...]; a trailing `:number` is the part's weight (default 1)."""
    parts = []
    for part in _AND.split(prompt):
        found = _WEIGHT.search(part)
        text, weight = found.groups() if found is not None else (part, None)
        parts.append((text, float(weight) if weight is not None else 1.0))
    return parts
