"""Wildcards and dynamic prompts, through the `dynamicprompts` library (the one A1111's Dynamic Prompts
extension runs): `{red|green|blue}` picks one, `{2$$a|b|c}` two, `__colours__` a line of wildcards/colours.txt
(subfolders: `__animals/cats__`). A run of n pictures takes n prompts from a generator seeded with the run's
seed, so a seed repeats its prompts and pictures."""
import re
from pathlib import Path

from .errors import EngineError

_DYNAMIC = re.compile(r"\{[^{}]*\|[^{}]*\}|\{\d*-?\d*\$\$|__[\w./\- *]+__")


class WildcardError(EngineError, ValueError):
    """A dynamic prompt that cannot be read (unbalanced braces, say); the message says where."""


def is_dynamic(prompt: str) -> bool:
    """Whether the prompt has a variant `{a|b}`, a count `{2$$...}` or a wildcard `__name__`."""
    return bool(_DYNAMIC.search(prompt or ""))


def expand(prompt: str, count: int, seed: int, folder: Path | None = None) -> list[str]:
    """`count` prompts for pictures seed, seed + 1, ... (the generator seeded with `seed`)."""
    from dynamicprompts.generators import RandomPromptGenerator
    from dynamicprompts.wildcards import WildcardManager
    manager = WildcardManager(Path(folder)) if folder is not None and Path(folder).is_dir() else WildcardManager()
    try:
        prompts = RandomPromptGenerator(manager, seed=seed).generate(prompt, count)
    except Exception as e:      # dynamicprompts' parse errors have no common base class
        raise WildcardError(f"the dynamic prompt could not be read: {e}") from e
    if len(prompts) != count:
        raise WildcardError(f"the dynamic prompt gave {len(prompts)} prompts for {count} pictures")
    return [str(p) for p in prompts]


def missing_wildcards(prompt: str, folder: Path | None) -> list[str]:
    """`__names__` in the prompt with no wildcards/<name>.txt (dynamicprompts would leave them as text)."""
    names = re.findall(r"__([\w./\- ]+)__", prompt or "")
    root = Path(folder) if folder is not None else None
    return [n for n in names if root is None or not any((root / f"{n}{suffix}").is_file()
                                                        for suffix in (".txt", ".yaml", ".json"))]
