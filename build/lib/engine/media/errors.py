from engine.errors import UserFacingError


class MediaError(UserFacingError, ValueError):
    """A media file that cannot be used. The message is one line: '<path>: <problem>'."""

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")
