class UserFacingError(Exception):
    """An error whose message is complete and actionable on its own (what failed, and where).

    Entry points print it as one line and exit non-zero, without a traceback."""
