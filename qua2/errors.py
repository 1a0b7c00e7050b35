"""The one exception type that carries a user-facing sentence.

Library code raises :class:`Qua2Error` for bad input (unknown layer, malformed YAML, missing
model directory, corrupted cache …) with one sentence that names the problem and the fix. The
CLI prints that sentence alone and exits with code 2; any other exception is a bug and keeps
its traceback.
"""


class Qua2Error(Exception):
    """Bad input or an unusable artifact, described in one sentence for the user."""

    exit_code = 2
