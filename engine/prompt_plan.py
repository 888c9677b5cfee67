"""What the text towers give each model call of a run: the prompt's AND parts, each with its edit schedule
(engine.prompt_schedule), and the negative prompt's schedule; every distinct text is encoded once."""
from dataclasses import dataclass
from typing import Callable

from .prompt_schedule import prompt_schedule, split_and, text_at

Encoded = tuple            # (context (1, tokens, width), pooled (1, dim) or None), as PromptEncoder.encode gives


@dataclass
class PromptPlan:
    parts: list[tuple[list[tuple[int, Encoded]], float]]     # [(schedule [(last call, encoded)], weight), ...]
    negative: list[tuple[int, Encoded]] | None               # None: no unconditional pass
    texts: tuple[str, ...] = ()                              # every text encoded for the plan

    @property
    def fixed(self) -> bool:
        """One part of weight 1 whose text (and the negative prompt's) never changes: plain CFG."""
        return (len(self.parts) == 1 and self.parts[0][1] == 1.0 and len(self.parts[0][0]) == 1
                and (self.negative is None or len(self.negative) == 1))

    @property
    def composed(self) -> bool:
        return len(self.parts) > 1 or self.parts[0][1] != 1.0

    def at(self, call: int) -> tuple[list[tuple[Encoded, float]], Encoded | None]:
        """([(encoded part, weight), ...], encoded negative prompt or None) for model call `call` (from 0)."""
        parts = [(text_at(schedule, call), weight) for schedule, weight in self.parts]
        return parts, None if self.negative is None else text_at(self.negative, call)


def plan_prompts(encode: Callable[[str], Encoded], prompt: str, negative: str, calls: int, with_negative: bool,
                 first_pass_steps: int | None = None) -> PromptPlan:
    """The plan for a run of `calls` model calls; `encode` maps a text to its encoding (cached by the caller).
    AND parts always come with the negative prompt, which composable diffusion measures them against."""
    parts, texts = split_and(prompt), []

    def scheduled(text: str):
        schedule = prompt_schedule(text, calls, first_pass_steps)
        texts.extend(part for _, part in schedule)
        return [(last, encode(part)) for last, part in schedule]
    plan = PromptPlan([(scheduled(text), weight) for text, weight in parts], None)
    if with_negative or plan.composed:
        plan.negative = scheduled(negative)
    plan.texts = tuple(dict.fromkeys(texts))
    return plan
