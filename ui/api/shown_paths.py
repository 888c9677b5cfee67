"""Paths as the API shows them: relative to the models or output folder, never this machine's absolute paths.

`models/Stable-diffusion/starter` rather than `/home/me/studio/models/Stable-diffusion/starter`: a client needs
the name and the folder it is in, and a stranger on the network learns nothing of the machine's layout."""
from pathlib import Path


class ShownPaths:
    def __init__(self, models_dir: Path, outdir: Path, app_dir: Path | None = None):
        roots = [(Path(models_dir), Path(models_dir).name or "models"), (Path(outdir), Path(outdir).name or "outputs")]
        if app_dir is not None:
            roots.append((Path(app_dir), "."))
        # both spellings of each root (as given and resolved), the longest first so nested roots win
        self.roots = sorted({(str(spelling), shown) for root, shown in roots
                             for spelling in (root.absolute(), root.resolve())},
                            key=lambda pair: -len(pair[0]))

    def path(self, path: Path | str) -> str:
        """A path to show: under a known root, relative to it (with the root's own name); elsewhere its name."""
        text = str(Path(path).absolute())
        for root, shown in self.roots:
            if text == root or text.startswith(root.rstrip("/") + "/"):
                rest = text[len(root):].lstrip("/")
                return "/".join(part for part in (shown, rest) if part and part != ".") or shown
        return Path(path).name

    def text(self, message: str) -> str:
        """A message with every known root written as it is shown."""
        for root, shown in self.roots:
            message = message.replace(root, shown)
        return message
