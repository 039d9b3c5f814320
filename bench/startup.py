"""Start-up bench: how long until the studio's page answers, against a bare gradio page.

    .venv/bin/python bench/startup.py

Two processes, one after the other, each timed from its start until ``GET /`` answers 200
(gradio embeds the app's config in that page, so it is what a browser needs to draw the UI):

- ui_ready_s:    ``app.py`` as ``./launch.sh`` runs it (default models folder, a fresh outputs folder)
- bare_gradio_s: a script that imports torch and gradio and launches a one-textbox ``gr.Blocks``

Both run offline (``HF_HUB_OFFLINE=1``, ``GRADIO_ANALYTICS_ENABLED=False``). Before them a
throwaway ``import torch, gradio`` warms the page cache, so neither side pays for the disk alone.
One run each, under a minute; the last line is the figure:
``ui_ready_s=... bare_gradio_s=... ui_ready_vs_bare=...``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT_S = 60.0

BARE = """
import sys
import torch  # noqa: F401
import gradio as gr

with gr.Blocks() as demo:
    gr.Textbox()
demo.launch(server_name="127.0.0.1", server_port=int(sys.argv[1]), ssr_mode=False)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def seconds_until_page(command: list[str], port: int, env: dict[str, str]) -> float:
    """Start ``command``; seconds until http://127.0.0.1:port/ answers 200. Stops it after."""
    url = f"http://127.0.0.1:{port}/"
    started = time.perf_counter()
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    try:
        while time.perf_counter() - started < TIMEOUT_S:
            if proc.poll() is not None:
                raise SystemExit(f"{command[1]} exited with {proc.returncode}:\n{proc.stderr.read()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as answer:
                    if answer.status == 200:
                        return time.perf_counter() - started
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.02)
        raise SystemExit(f"{command[1]}: no page at {url} after {TIMEOUT_S:.0f} s")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False",
           "TOKENIZERS_PARALLELISM": "false"}
    subprocess.run([sys.executable, "-c", "import torch, gradio"], env=env, check=True)   # warm the page cache
    with tempfile.TemporaryDirectory(prefix="studio-startup-") as tmp:
        bare_script = Path(tmp) / "bare.py"
        bare_script.write_text(BARE, encoding="utf-8")
        bare = seconds_until_page([sys.executable, str(bare_script), str(port := free_port())], port, env)
        app = seconds_until_page([sys.executable, "app.py", "--port", str(port := free_port()),
                                  "--outputs-dir", str(Path(tmp) / "outputs")], port, env)
    print(f"ui_ready_s={app:.2f} bare_gradio_s={bare:.2f} ui_ready_vs_bare={app / bare:.2f}")


if __name__ == "__main__":
    main()
