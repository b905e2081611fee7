"""The one error type of ``a1lib.data``.

Every problem with a dataset on disk or with a frame handed to the writer raises ``DatasetError``
with a message that names the file (or feature) and says what is wrong, so a user can fix it
without reading our code.
"""

from __future__ import annotations


class DatasetError(ValueError):
    """A dataset on disk, or a frame written to one, is missing, malformed or inconsistent."""
