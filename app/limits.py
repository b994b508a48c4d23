"""Exposure limits of the explorer: where it listens and how large an uploaded file may be."""

from __future__ import annotations

import os

DEFAULT_HOST = "127.0.0.1"
"""The explorer listens on this machine only unless ``earthvec explore --host`` says otherwise."""

LOOPBACK = ("127.0.0.1", "localhost", "::1")

MAX_UPLOAD_MB = 20
"""Largest seed file the explorer accepts by default (Streamlit ``server.maxUploadSize``, MB)."""

UPLOAD_ENV = "EARTHVEC_MAX_UPLOAD_MB"
"""Environment variable through which ``earthvec explore --max-upload-mb`` reaches the app."""


def max_upload_bytes() -> int:
    """The upload limit in bytes (``EARTHVEC_MAX_UPLOAD_MB``, else :data:`MAX_UPLOAD_MB`)."""
    try:
        mb = int(os.environ.get(UPLOAD_ENV, MAX_UPLOAD_MB))
    except ValueError:
        mb = MAX_UPLOAD_MB
    return max(1, mb) * 2**20
