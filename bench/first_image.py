"""The first picture after launch: start the app as a user does, wait until it answers, ask for one picture.

    python -m bench.first_image                     # the starter model, its default prompt and size

Reports the seconds from starting `python webui.py --api` to (a) the server answering, (b) the first picture
back (its default prompt, sampler, steps and size: what the txt2img tab's Generate button makes), and the same
picture's time once the app is warm. Outputs go to a temporary folder.
"""
import argparse
import json
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from ui.generation_form import DEFAULT_PROMPT  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url: str, payload: dict) -> dict:
    request = urllib.request.Request(url, json.dumps(payload).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=600) as response:
        return json.load(response)


def wait_until_up(url: str, process, limit: float = 300) -> None:
    deadline = time.perf_counter() + limit
    while time.perf_counter() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the app exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"the app did not answer within {limit:.0f} s")


def measure(extra_args: list[str]) -> dict:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as outdir:
        start = time.perf_counter()
        process = subprocess.Popen([sys.executable, "webui.py", "--api", "--port", str(port), "--outdir", outdir,
                                    *extra_args], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_until_up(f"{base}/sdapi/v1/sd-models", process)
            up = time.perf_counter() - start
            post(f"{base}/sdapi/v1/txt2img", {"prompt": DEFAULT_PROMPT})
            first = time.perf_counter() - start
            options = json.load(urllib.request.urlopen(f"{base}/sdapi/v1/options", timeout=30))
            warm_start = time.perf_counter()
            post(f"{base}/sdapi/v1/txt2img", {"prompt": DEFAULT_PROMPT})
            warm = time.perf_counter() - warm_start
        finally:
            process.terminate()
            process.wait(timeout=30)
    return {"model": options["sd_model_checkpoint"], "server answering": up, "first picture": first,
            "a warm picture": warm}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("args", nargs="*", help="extra webui.py flags, after --")
    figures = measure(parser.parse_args(argv).args)
    for key, value in figures.items():
        print(f"{key}: {value:.2f} s" if isinstance(value, float) else f"{key}: {value}")


if __name__ == "__main__":
    main()
