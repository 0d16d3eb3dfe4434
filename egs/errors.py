"""The one exception type that user-facing mistakes raise.

Every :class:`EGSError` message names the offending value and says how to fix it; the CLI prints
it without a traceback and exits non-zero.
"""
from __future__ import annotations


class EGSError(ValueError):
    """Bad input or missing resources, with a message that names the value and the fix."""
