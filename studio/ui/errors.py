"""The edge where StudioError becomes gr.Error: once, with the message unchanged."""

from __future__ import annotations

import functools
import logging

import gradio as gr

from studio.errors import StudioError

log = logging.getLogger(__name__)


def shown_as_gr_error(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except StudioError as err:
            # the user's to fix: the message says how; a traceback in the console would say "bug"
            raise gr.Error(str(err), title=type(err).__name__, print_exception=False) from err
        except gr.Error:
            raise
        except Exception as err:  # a bug: say so plainly, keep the worker alive
            log.exception("unexpected error in %s", fn.__name__)
            raise gr.Error(f"Unexpected error ({type(err).__name__}: {err}). This is a bug in the studio; "
                           "the console has the traceback.", title="Internal error") from err
    return wrapper
