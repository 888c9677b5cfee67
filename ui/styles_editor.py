"""The styles editor (in Models & Settings): pick a style to edit, or type a new name; Save writes styles.csv,
Delete removes it. The Styles lists of the generating tabs read the file when they are opened."""
import gradio as gr

from engine.styles import Style, StyleError

from .studio import Studio


def styles_editor(studio: Studio) -> None:
    book = studio.styles
    with gr.Accordion(f"Styles ({book.path.name})", open=False, elem_id="styles_editor"):
        with gr.Row():
            name = gr.Dropdown(book.names(), value=None, allow_custom_value=True, label="Style (pick, or type a new name)",
                               scale=3, elem_id="style_name")
            save = gr.Button("Save", scale=1, elem_id="style_save")
            delete = gr.Button("Delete", scale=1, elem_id="style_delete")
        prompt = gr.Textbox(label="Prompt ({prompt} marks where the prompt goes; else the style joins after it)",
                            lines=2, elem_id="style_prompt")
        negative = gr.Textbox(label="Negative prompt", lines=2, elem_id="style_negative")
        note = gr.Markdown(elem_id="style_note")

    def show(chosen):
        style = book.styles().get(chosen or "")
        return (style.prompt, style.negative_prompt) if style else (gr.skip(), gr.skip())

    def on_save(chosen, text, negative_text):
        try:
            book.save(Style(chosen or "", text or "", negative_text or ""))
        except (StyleError, OSError) as e:
            raise gr.Error(f"Could not save the style: {e}") from e
        return gr.update(choices=book.names(), value=chosen.strip()), f"Saved {chosen.strip()!r} to {book.path}."

    def on_delete(chosen):
        try:
            book.delete(chosen or "")
        except (StyleError, OSError) as e:
            raise gr.Error(f"Could not delete the style: {e}") from e
        return gr.update(choices=book.names(), value=None), "", "", f"Deleted {chosen!r}."

    name.focus(lambda: gr.update(choices=book.names()), outputs=name, queue=False)
    name.input(show, name, [prompt, negative], queue=False)
    save.click(on_save, [name, prompt, negative], [name, note], queue=False)
    delete.click(on_delete, name, [name, prompt, negative, note], queue=False)
