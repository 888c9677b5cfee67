"""Generation parameters as text, in A1111's exact "infotext" format, and back.

    a red fox
    Negative prompt: blurry
    Steps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 1, Size: 512x512, Model hash: ...

Values containing ',', ':' or a newline are JSON-quoted. The same text goes into the PNG `parameters` chunk.
"""
import json
import re

_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
_SIZE = re.compile(r"^(\d+)x(\d+)$")


def quote(value) -> str:
    text = str(value)
    if "," not in text and "\n" not in text and ":" not in text:
        return text
    return json.dumps(text, ensure_ascii=False)


def unquote(text: str) -> str:
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        return text
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def format_number(value):
    """7.0 -> 7, 0.75 -> 0.75: numbers as A1111 prints them."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def create_infotext(prompt: str, negative_prompt: str, params: dict) -> str:
    """`params` in display order; None values are left out."""
    fields = ", ".join(k if k == v else f"{k}: {quote(format_number(v))}" for k, v in params.items() if v is not None)
    negative = f"\nNegative prompt: {negative_prompt}" if negative_prompt else ""
    return f"{prompt}{negative}\n{fields}".strip()


def parse_infotext(text: str) -> dict:
    """{"Prompt", "Negative prompt", "Steps", ..., "Size-1", "Size-2"}; values stay strings, as A1111's parser."""
    result, prompt, negative, in_negative = {}, [], [], False
    *lines, last = text.strip().split("\n")
    if len(_PARAM.findall(last)) < 3:
        lines.append(last)
        last = ""
    for line in lines:
        line = line.strip()
        if line.startswith("Negative prompt:"):
            in_negative = True
            line = line[len("Negative prompt:"):].strip()
        (negative if in_negative else prompt).append(line)
    result["Prompt"] = "\n".join(prompt)
    result["Negative prompt"] = "\n".join(negative)
    for key, value in _PARAM.findall(last):
        value = unquote(value) if value[:1] == '"' and value[-1:] == '"' else value
        size = _SIZE.match(value)
        if size:
            result[f"{key}-1"], result[f"{key}-2"] = size.group(1), size.group(2)
        else:
            result[key] = value
    return result
