"""What a quiz room refuses: :class:`RoomError` and its kinds, each with a message that can be shown to a
student or teacher as it is (:mod:`pipeline.quiz.rooms` raises them; :mod:`pipeline.quiz.room_db` raises
:class:`RoomError` when the database file cannot be used)."""
from __future__ import annotations


class RoomError(ValueError):
    """Anything a player or teacher did that the room refuses; the message says what to do."""


class UnknownRoom(RoomError):
    pass


class RoomExpired(RoomError):
    pass


class BadNickname(RoomError):
    pass


class NicknameTaken(BadNickname):
    pass


class UnknownPlayer(RoomError):
    pass


class VotingClosed(RoomError):
    pass


class AlreadyVoted(RoomError):
    pass


class BadVote(RoomError):
    pass


class NotHost(RoomError):
    pass
