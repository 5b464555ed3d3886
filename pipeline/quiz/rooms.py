"""Live quiz rooms in SQLite, so every dashboard session (the teacher's and each phone's) sees one room.

The database (one file, WAL mode, a short connection per call) is :mod:`pipeline.quiz.room_db`; the
errors are :mod:`pipeline.quiz.room_errors`.

Rules, each kept by the database itself:

* a room has a short code (:data:`CODE_LENGTH` letters and digits without look-alikes such as O/0
  and I/1) and a host token that only the teacher's session holds (reveal and next round need it);
* students join with the code and a nickname (no account, nothing else stored); a nickname is unique
  in its room (case-insensitive); the join returns a player token that the phone keeps;
* one vote per player per round: a ``UNIQUE (room, round, player)`` constraint, so two votes sent at
  once cannot both count (no read-then-write);
* a vote is accepted only for the room's current round before its reveal: the check and the insert
  run in one ``BEGIN IMMEDIATE`` transaction, and the reveal writes under the same lock, so a vote
  either lands before the reveal or is refused;
* rooms expire :data:`ROOM_TTL_S` seconds after they are opened (then nobody can join or vote) and are
  deleted with their nicknames and votes :data:`PURGE_AFTER_S` seconds later.

Errors are :class:`~pipeline.quiz.room_errors.RoomError` subclasses whose message can be shown to a student as it is.
"""
from __future__ import annotations

import json
import re
import secrets
import sqlite3
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.quiz.room_db import connect, write_transaction
from pipeline.quiz.room_errors import (AlreadyVoted, BadNickname, BadVote, NicknameTaken, NotHost, RoomError,
                                       RoomExpired, UnknownPlayer, UnknownRoom, VotingClosed)
from pipeline.quiz.rounds import CHOICES, MODES, Round

CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no I, O, 0, 1: easy to read off a projector
CODE_LENGTH = 5
ROOM_TTL_S = 4 * 3600.0  # a room lives four hours
PURGE_AFTER_S = 24 * 3600.0  # then its nicknames and votes are deleted a day later
NICKNAME_MAX = 24


# --------------------------------------------------------------------------- input


def normalise_code(code: str | None) -> str:
    """A room code as typed (any case, spaces or dashes) -> its canonical form, e.g. ``"ab c-d9"`` ->
    ``"ABCD9"``. Raises :class:`UnknownRoom` when it is empty or cannot be a code."""
    text = re.sub(r"[\s\-_.]", "", str(code or "")).upper()
    if not text:
        raise UnknownRoom("Enter the room code shown on the teacher's screen.")
    if len(text) != CODE_LENGTH or any(c not in CODE_ALPHABET for c in text):
        raise UnknownRoom(f"There is no room {text[:20]!r}: a room code is {CODE_LENGTH} letters and digits, "
                          f"as shown on the teacher's screen.")
    return text


def clean_nickname(nickname: str | None) -> str:
    """A nickname as typed -> what is stored: Unicode NFKC, control and format characters removed,
    white space collapsed, at most :data:`NICKNAME_MAX` characters. :class:`BadNickname` when empty."""
    text = unicodedata.normalize("NFKC", str(nickname or ""))
    text = "".join(ch for ch in text if unicodedata.category(ch)[0] != "C")
    text = " ".join(text.split())
    if not text:
        raise BadNickname("Enter a nickname (any name you like; it is only shown in this room).")
    if len(text) > NICKNAME_MAX:
        raise BadNickname(f"That nickname is too long: at most {NICKNAME_MAX} characters.")
    return text


# --------------------------------------------------------------------------- rooms


@dataclass(frozen=True)
class Host:
    """What the teacher's session keeps after :func:`open_room`."""

    code: str
    token: str


@dataclass(frozen=True)
class Player:
    """What a student's session keeps after :func:`join`."""

    code: str
    nickname: str
    token: str
    id: int


@dataclass(frozen=True)
class RoomState:
    """A room as everybody sees it now. ``round`` is the current round (its truth is in it: show it
    only when ``revealed``); ``settings`` are those given to :func:`open_room` (JSON values)."""

    code: str
    run_id: str
    mode: str
    settings: dict[str, Any]
    n_rounds: int
    current: int
    round: Round
    revealed: bool
    created: float
    expires: float
    n_players: int
    n_votes: int  # votes on the current round

    def seconds_left(self, now: float | None = None) -> float:
        return max(0.0, self.expires - (time.time() if now is None else now))


def _room_row(con: sqlite3.Connection, code: str, now: float) -> sqlite3.Row:
    code = normalise_code(code)
    row = con.execute("SELECT * FROM rooms WHERE code = ?", (code,)).fetchone()
    if row is None:
        raise UnknownRoom(f"There is no room {code}. Check the code on the teacher's screen.")
    if row["expires"] <= now:
        raise RoomExpired(f"Room {code} has expired (rooms last {ROOM_TTL_S / 3600:g} hours). Ask the teacher "
                          f"for the code of a new room.")
    return row


def _host_row(con: sqlite3.Connection, host: Host, now: float) -> sqlite3.Row:
    row = _room_row(con, host.code, now)
    if not secrets.compare_digest(str(row["host_token"]), str(host.token)):
        raise NotHost(f"Only the teacher who opened room {row['code']} can run it.")
    return row


def open_room(rounds: list[Round], run_id: str, settings: dict[str, Any] | None = None, *,
              db: Path | str | None = None, now: float | None = None, ttl_s: float = ROOM_TTL_S) -> Host:
    """Open a room that plays ``rounds`` (all of one mode) and return its code and host token.

    ``settings`` (JSON-serialisable: datasets, seed, model thresholds, ...) is stored with the room for
    every session to read. Rooms that expired more than :data:`PURGE_AFTER_S` ago are deleted first.
    Raises ``ValueError`` for no rounds or mixed modes, :class:`RoomError` when the file is unusable."""
    if not rounds:
        raise ValueError("a room needs at least one round")
    modes = {r.kind for r in rounds}
    if len(modes) != 1 or not modes <= set(MODES):
        raise ValueError(f"a room plays rounds of one mode ({', '.join(MODES)}), got {sorted(modes)}")
    now = time.time() if now is None else float(now)
    body = json.dumps(settings or {})
    token = secrets.token_urlsafe(24)
    with connect(db) as con:
        for _ in range(50):
            code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
            try:
                with write_transaction(con):
                    con.execute("DELETE FROM rooms WHERE expires < ?", (now - PURGE_AFTER_S,))
                    con.execute("INSERT INTO rooms (code, host_token, run_id, mode, settings, n_rounds, current_round, "
                                "created, expires) VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?)",
                                (code, token, str(run_id), rounds[0].kind, body, len(rounds), now, now + ttl_s))
                    con.executemany("INSERT INTO rounds (room, idx, body, answer) VALUES (?, ?, ?, ?)",
                                    [(code, i, json.dumps(r.to_dict()), r.answer) for i, r in enumerate(rounds)])
                return Host(code=code, token=token)
            except sqlite3.IntegrityError:
                continue  # the code is taken: draw another
    raise RoomError("Could not find a free room code; try again.")


def state(code: str, *, db: Path | str | None = None, now: float | None = None) -> RoomState:
    """The room now (:class:`RoomState`). Raises :class:`UnknownRoom` / :class:`RoomExpired`."""
    now = time.time() if now is None else float(now)
    with connect(db) as con:
        row = _room_row(con, code, now)
        cur = int(row["current_round"])
        rnd = con.execute("SELECT body, revealed FROM rounds WHERE room = ? AND idx = ?", (row["code"], cur)).fetchone()
        n_players = con.execute("SELECT COUNT(*) FROM players WHERE room = ?", (row["code"],)).fetchone()[0]
        n_votes = con.execute("SELECT COUNT(*) FROM votes WHERE room = ? AND idx = ?", (row["code"], cur)).fetchone()[0]
    return RoomState(code=row["code"], run_id=row["run_id"], mode=row["mode"], settings=json.loads(row["settings"]),
                     n_rounds=int(row["n_rounds"]), current=cur, round=Round.from_dict(json.loads(rnd["body"])),
                     revealed=rnd["revealed"] is not None, created=float(row["created"]),
                     expires=float(row["expires"]), n_players=int(n_players), n_votes=int(n_votes))


def join(code: str, nickname: str, *, db: Path | str | None = None, now: float | None = None) -> Player:
    """Join room ``code`` as ``nickname`` (:func:`clean_nickname`). Raises :class:`UnknownRoom`,
    :class:`RoomExpired`, :class:`BadNickname`, or :class:`NicknameTaken` when someone in the room
    already has that nickname (case-insensitive)."""
    now = time.time() if now is None else float(now)
    name = clean_nickname(nickname)
    token = secrets.token_urlsafe(18)
    with connect(db) as con:
        with write_transaction(con):
            row = _room_row(con, code, now)
            try:
                cur = con.execute("INSERT INTO players (room, nickname, token, joined) VALUES (?, ?, ?, ?)",
                                  (row["code"], name, token, now))
            except sqlite3.IntegrityError:
                raise NicknameTaken(f"Someone in room {row['code']} is already called {name!r}: pick another "
                                    f"nickname.") from None
        return Player(code=row["code"], nickname=name, token=token, id=int(cur.lastrowid))


def player(code: str, token: str, *, db: Path | str | None = None, now: float | None = None) -> Player:
    """The player of ``token`` in room ``code`` (e.g. after the phone reloaded the page).
    Raises :class:`UnknownPlayer` when the token is not one of the room's."""
    now = time.time() if now is None else float(now)
    with connect(db) as con:
        row = _room_row(con, code, now)
        p = con.execute("SELECT id, nickname FROM players WHERE room = ? AND token = ?",
                        (row["code"], str(token or ""))).fetchone()
    if p is None:
        raise UnknownPlayer(f"You are not in room {row['code']} (yet): join with a nickname.")
    return Player(code=row["code"], nickname=p["nickname"], token=str(token), id=int(p["id"]))


def vote(code: str, token: str, round_index: int, answer: str, *, db: Path | str | None = None,
         now: float | None = None) -> None:
    """Cast the vote of the player with ``token`` on round ``round_index`` (must be the room's current
    round, before its reveal). ``answer``: ``real``/``fake`` (single) or ``left``/``right`` (paired:
    the one that is real).

    Raises :class:`UnknownRoom`, :class:`RoomExpired`, :class:`UnknownPlayer`, :class:`BadVote`
    (an answer that is not a choice), :class:`VotingClosed` (revealed, or not the current round) and
    :class:`AlreadyVoted` (the ``UNIQUE`` constraint refused a second vote)."""
    now = time.time() if now is None else float(now)
    with connect(db) as con:
        with write_transaction(con):
            row = _room_row(con, code, now)
            room = row["code"]
            choices = CHOICES[row["mode"]]
            if answer not in choices:
                raise BadVote(f"{str(answer)[:20]!r} is not an answer here: vote {' or '.join(choices)}.")
            p = con.execute("SELECT id FROM players WHERE room = ? AND token = ?", (room, str(token or ""))).fetchone()
            if p is None:
                raise UnknownPlayer(f"You are not in room {room}: join with a nickname first.")
            rnd = con.execute("SELECT revealed FROM rounds WHERE room = ? AND idx = ?",
                              (room, int(round_index))).fetchone()
            if rnd is None:
                raise BadVote(f"Room {room} has no round {int(round_index) + 1}.")
            if rnd["revealed"] is not None:
                raise VotingClosed(f"Voting on round {int(round_index) + 1} is closed: the answer has been revealed.")
            if int(round_index) != int(row["current_round"]):
                raise VotingClosed(f"Round {int(round_index) + 1} is not open for votes: the teacher is on round "
                                   f"{int(row['current_round']) + 1}.")
            try:
                con.execute("INSERT INTO votes (room, idx, player, answer, at) VALUES (?, ?, ?, ?, ?)",
                            (room, int(round_index), int(p["id"]), answer, now))
            except sqlite3.IntegrityError:
                raise AlreadyVoted(f"You already voted on round {int(round_index) + 1}: one vote per round.") from None


def my_vote(code: str, token: str, round_index: int, *, db: Path | str | None = None) -> str | None:
    """The answer the player with ``token`` gave on a round, or None."""
    with connect(db) as con:
        row = con.execute("SELECT v.answer FROM votes v JOIN players p ON p.id = v.player "
                          "WHERE v.room = ? AND v.idx = ? AND p.token = ?",
                          (normalise_code(code), int(round_index), str(token or ""))).fetchone()
    return None if row is None else str(row["answer"])


def tally(code: str, round_index: int, *, db: Path | str | None = None) -> dict[str, int]:
    """Votes per choice on a round, every choice present (zeros included), in choice order."""
    with connect(db) as con:
        code = normalise_code(code)
        mode = con.execute("SELECT mode FROM rooms WHERE code = ?", (code,)).fetchone()
        if mode is None:
            raise UnknownRoom(f"There is no room {code}.")
        counts = dict(con.execute("SELECT answer, COUNT(*) FROM votes WHERE room = ? AND idx = ? GROUP BY answer",
                                  (code, int(round_index))).fetchall())
    return {c: int(counts.get(c, 0)) for c in CHOICES[mode["mode"]]}


def reveal(host: Host, *, db: Path | str | None = None, now: float | None = None) -> None:
    """Reveal the current round: votes on it close (at once, atomically with any vote in flight)."""
    now = time.time() if now is None else float(now)
    with connect(db) as con:
        with write_transaction(con):
            row = _host_row(con, host, now)
            con.execute("UPDATE rounds SET revealed = ? WHERE room = ? AND idx = ? AND revealed IS NULL",
                        (now, row["code"], int(row["current_round"])))


def go_to(host: Host, round_index: int, *, db: Path | str | None = None, now: float | None = None) -> int:
    """Make ``round_index`` (clamped to the room's rounds) the current round; returns it."""
    now = time.time() if now is None else float(now)
    with connect(db) as con:
        with write_transaction(con):
            row = _host_row(con, host, now)
            idx = max(0, min(int(round_index), int(row["n_rounds"]) - 1))
            con.execute("UPDATE rooms SET current_round = ? WHERE code = ?", (idx, row["code"]))
    return idx


def close(host: Host, *, db: Path | str | None = None, now: float | None = None) -> None:
    """End the room now (it expires: nobody can join or vote; purged a day later)."""
    now = time.time() if now is None else float(now)
    with connect(db) as con:
        with write_transaction(con):
            row = _host_row(con, host, now)
            con.execute("UPDATE rooms SET expires = ? WHERE code = ?", (now, row["code"]))


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class RoomResults:
    """Everything a scoreboard needs: ``rounds`` (every round, in order), ``revealed`` (indices of
    revealed rounds), ``votes`` (one row per vote: ``round, nickname, answer, at``), ``players`` (every
    nickname, in join order) and the room's ``settings``."""

    code: str
    mode: str
    rounds: list[Round]
    revealed: list[int]
    votes: pd.DataFrame
    players: list[str]
    settings: dict[str, Any]


def room_results(code: str, *, db: Path | str | None = None, now: float | None = None,
                 allow_expired: bool = True) -> RoomResults:
    """The room's rounds and votes (for scoreboards and the CSV). An expired room can still be read
    until it is purged (``allow_expired``)."""
    now = time.time() if now is None else float(now)
    with connect(db) as con:
        code = normalise_code(code)
        if allow_expired:
            row = con.execute("SELECT * FROM rooms WHERE code = ?", (code,)).fetchone()
            if row is None:
                raise UnknownRoom(f"There is no room {code}.")
        else:
            row = _room_row(con, code, now)
        rounds = con.execute("SELECT idx, body, revealed FROM rounds WHERE room = ? ORDER BY idx", (code,)).fetchall()
        votes = con.execute("SELECT v.idx AS round, p.nickname AS nickname, v.answer AS answer, v.at AS at "
                            "FROM votes v JOIN players p ON p.id = v.player WHERE v.room = ? "
                            "ORDER BY v.idx, v.at, p.id", (code,)).fetchall()
        players = [r[0] for r in con.execute("SELECT nickname FROM players WHERE room = ? ORDER BY id", (code,))]
    table = pd.DataFrame([dict(v) for v in votes], columns=["round", "nickname", "answer", "at"])
    return RoomResults(code=code, mode=row["mode"], rounds=[Round.from_dict(json.loads(r["body"])) for r in rounds],
                       revealed=[int(r["idx"]) for r in rounds if r["revealed"] is not None], votes=table,
                       players=players, settings=json.loads(row["settings"]))
