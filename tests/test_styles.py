"""Prompt styles: A1111's styles.csv, its way of merging a style into a prompt, and taking it out again."""
from engine.styles import Style, StyleBook, apply_styles, extract_styles, merge

CINEMATIC = Style("cinematic", "cinematic still, {prompt}, shallow depth of field", "cartoon, drawing")
PASTEL = Style("pastel", "pastel colours", "")


def test_a_style_joins_after_a_comma_or_takes_the_prompt_in():
    assert merge("a cat", "oil painting") == "a cat, oil painting"
    assert merge("", "oil painting") == "oil painting" and merge("a cat", "") == "a cat"
    assert merge("a cat", "photo of {prompt}, 35mm") == "photo of a cat, 35mm"
    assert apply_styles("a cat", "blurry", [CINEMATIC, PASTEL]) == (
        "cinematic still, a cat, shallow depth of field, pastel colours", "blurry, cartoon, drawing")


def test_the_styles_of_a_styled_prompt_are_found_and_taken_out():
    styles = {s.name: s for s in (CINEMATIC, PASTEL)}
    prompt, negative = apply_styles("a cat", "blurry", [CINEMATIC, PASTEL])
    assert extract_styles(prompt, negative, styles) == (["cinematic", "pastel"], "a cat", "blurry")
    assert extract_styles("a dog", "", styles) == ([], "a dog", "")


def test_styles_csv_in_a1111s_format_is_read_saved_and_deleted(tmp_path):
    path = tmp_path / "styles.csv"
    path.write_text('name,prompt,negative_prompt\n"moody","dark, moody lighting, {prompt}","sunny, bright"\n'
                    'empty,,\n', encoding="utf-8")
    book = StyleBook(path)
    assert book.styles()["moody"] == Style("moody", "dark, moody lighting, {prompt}", "sunny, bright")
    assert book.names() == ["moody", "empty"]
    book.save(Style("neon", "neon glow", "dull"))
    assert StyleBook(path).names() == ["moody", "empty", "neon"]       # written whole, read back by anyone
    book.delete("empty")
    assert book.names() == ["moody", "neon"] and book.chosen(["neon", "gone"]) == ([Style("neon", "neon glow", "dull")],
                                                                                   ["gone"])
    assert path.read_text(encoding="utf-8").splitlines()[0] == "name,prompt,negative_prompt"
