"""The one exception type users see for mistakes they can fix (paths, files, config values)."""

from __future__ import annotations


class RCOTError(ValueError):
    """A problem with user input: a file, a folder or a config value.

    The message names the offending file or config key and says what to do about it.
    Subclassing :class:`ValueError` keeps ``except ValueError`` handlers working.
    """


class MissingExtraError(RCOTError):
    """An optional dependency is needed for this input; the message names the extra to install.

    Unlike a bad file, it is never skipped (``data.skip_bad_images`` does not apply).
    """
