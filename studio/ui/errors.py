"""The edge where StudioError becomes gr.Error: once, with the message unchanged.

A ``StudioError`` is the user's to fix: shown as it is, no traceback on the console. Anything
else is a bug: shown as such, its traceback printed by gradio. Messages never show server temporary
paths (an upload's path in gradio's cache means nothing to the user): those become file names.
"""

from __future__ import annotations

import functools
import inspect
import re
import tempfile

import gradio as gr

from studio.errors import StudioError

_TEMP = re.compile(re.escape(tempfile.gettempdir().rstrip("/")) + r"/[^\s'\"`,;)]*/([^/\s'\"`,;)]+)")


def without_temp_paths(message: str) -> str:
    """``/tmp/gradio/3f2a.../photo.png`` -> ``photo.png``."""
    return _TEMP.sub(r"\1", message)


def as_gr_error(err: BaseException, where: str) -> gr.Error:
    if isinstance(err, StudioError):
        return gr.Error(without_temp_paths(str(err)), title=type(err).__name__, print_exception=False)
    # a bug: gradio prints this error's traceback, its cause (the bug) included
    return gr.Error(without_temp_paths(f"Unexpected error in {where} ({type(err).__name__}: {err}). This is a bug "
                                       "in the studio; the console has the traceback."), title="Internal error",
                    print_exception=True)


def shown_as_gr_error(fn):
    """Wrap a gradio handler (plain function or generator) so every error reaches the user once."""
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def generator(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except gr.Error:
                raise
            except Exception as err:
                raise as_gr_error(err, fn.__name__) from err
        return generator

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except Exception as err:
            raise as_gr_error(err, fn.__name__) from err
    return wrapper
