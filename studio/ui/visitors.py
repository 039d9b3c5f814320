"""Who is asking, in public mode: the owner id of a gradio request (``studio.public.owner_from``).

A browser is known by its visitor cookie (set by ``studio/ui/serving.py``: it outlives page
loads, so a reload keeps the visitor's gallery); a client without one by its gradio session
(``session_hash``: per page load in a browser, per ``Client`` in gradio_client). On a local studio
there are no owners: None, and the gallery is the user's whole.
"""

from __future__ import annotations

import gradio as gr

from studio.public import owner_from
from studio.ui.serving import COOKIE


def owner_of(studio, request: gr.Request | None) -> str | None:  # noqa: ANN001 - a Studio
    if getattr(studio, "public", None) is None:
        return None
    cookies = getattr(request, "cookies", None) or {} if request is not None else {}
    return owner_from(cookies.get(COOKIE), getattr(request, "session_hash", None))
