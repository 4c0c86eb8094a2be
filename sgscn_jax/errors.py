"""The one error type a user is shown as a single line (`reporting.console.run` prints
`error: <message>` and exits with status 2): bad input that names the file or folder and
the problem, never a traceback."""


class UserError(Exception):
  """A mistake in the user's input or setup; `str(error)` is the whole, one-line message."""
