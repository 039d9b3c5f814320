"""Errors the studio raises on purpose. Each message names what was wrong and what to do.

The UI turns every ``StudioError`` into one ``gr.Error`` (see ``studio/ui/errors.py``);
anything else is a bug and is shown as such.
"""

from __future__ import annotations

from pathlib import Path


class StudioError(Exception):
    """Base of every error a user can act on."""


class InvalidRequest(StudioError, ValueError):
    """A request field is out of range. ``field`` names it (the widget / API parameter)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class ModelUnavailable(StudioError):
    """The model is unknown, or known but cannot be loaded now (not downloaded, offline...)."""


class UnsupportedOnDevice(StudioError):
    """A feature that this device cannot do (e.g. NF4 quantization without CUDA)."""


class StartupError(StudioError):
    """The studio cannot start as asked (a port in use, an address not of this machine)."""


class StorageError(StudioError, OSError):
    """A folder the studio writes to (outputs, gallery) cannot be written. The message names the
    folder and the system's reason, never the temporary file that failed. Still an OSError, so
    code that handles those (and tests that expect them) see it as one."""

    @classmethod
    def cannot_write(cls, folder: Path, err: OSError, what_to_do: str) -> StorageError:
        reason = err.strerror or type(err).__name__
        existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
        if existing is not None and not existing.is_dir():
            reason = f"{existing} is a file, not a folder"
        return cls(f"cannot write to {folder}: {reason}. {what_to_do}")


class OutOfMemory(StudioError):
    """The device ran out of memory even after evicting and trying a lighter placement."""


class Cancelled(StudioError):
    """The user cancelled; nothing of the cancelled images was written."""

    def __init__(self, message: str = "cancelled", *, steps_done: int = 0, steps_total: int = 0,
                 kept: int = 0) -> None:
        super().__init__(message)
        self.steps_done, self.steps_total, self.kept = steps_done, steps_total, kept
