"""Scoreboards of a quiz: people against the models, per round and overall, and signal-detection d'.

Only revealed rounds count (a score shown before the reveal would give the answer away).

**d'** (sensitivity: how well fakes are told from reals, apart from any bias toward answering
"fake"; 0 = chance, about 1 = fair, 2 or more = good; Macmillan & Creelman, *Detection Theory: A
User's Guide*, 2nd ed., 2005):

* single rounds (a yes/no task, "fake" = signal present): ``d' = z(H) - z(F)`` with the hit rate
  ``H`` = fakes called fake / fakes shown and the false-alarm rate ``F`` = reals called fake / reals
  shown, ``z`` the inverse of the standard normal CDF. Rates of 0 or 1 would give an infinite d', so
  both use the log-linear correction ``(count + 0.5) / (n + 1)`` (Hautus, "Corrections for extreme
  proportions and their biasing effects on estimated values of d'", *Behavior Research Methods,
  Instruments, & Computers* 27(1), 46-51, 1995). For the class, the votes of all players are pooled.
* paired rounds (two-alternative forced choice, "which one is real?"): ``d' = sqrt(2) * z(PC)`` with
  ``PC`` the proportion correct, corrected the same way (Macmillan & Creelman, ch. 7).
"""
from __future__ import annotations

import io
import math
from dataclasses import dataclass
from statistics import NormalDist

import pandas as pd

from pipeline.quiz.answers import model_answer
from pipeline.quiz.rounds import Round

_Z = NormalDist().inv_cdf
ROUND_COLUMNS = ["round", "kind", "dataset", "answer", "votes", "class_correct", "class_accuracy", "model_answer",
                 "model_correct"]
PLAYER_COLUMNS = ["nickname", "votes", "correct", "accuracy"]
MODEL_COLUMNS = ["model", "rounds", "correct", "accuracy", "d_prime"]
CSV_COLUMNS = ["round", "kind", "dataset", "nickname", "answer", "correct_answer", "correct", "revealed",
               "verdict_model", "model_answer", "model_correct"]


def loglinear_rate(count: int, n: int) -> float:
    """``(count + 0.5) / (n + 1)``: a rate that is never exactly 0 or 1 (Hautus 1995). ``n >= 1``."""
    if n < 1 or not 0 <= count <= n:
        raise ValueError(f"need 0 <= count <= n and n >= 1, got count={count}, n={n}")
    return (count + 0.5) / (n + 1)


def dprime_yes_no(hits: int, n_fake: int, false_alarms: int, n_real: int) -> float | None:
    """d' of a yes/no task: ``z(H) - z(F)`` with log-linear corrected rates (module doc).
    ``hits``: fakes called fake out of ``n_fake``; ``false_alarms``: reals called fake out of
    ``n_real``. None when either class was never shown."""
    if n_fake < 1 or n_real < 1:
        return None
    return _Z(loglinear_rate(hits, n_fake)) - _Z(loglinear_rate(false_alarms, n_real))


def dprime_2afc(correct: int, n: int) -> float | None:
    """d' of a two-alternative forced choice: ``sqrt(2) * z(PC)``, PC log-linear corrected. None if n=0."""
    if n < 1:
        return None
    return math.sqrt(2.0) * _Z(loglinear_rate(correct, n))


def dprime(kind: str, answers: list[tuple[Round, str]]) -> float | None:
    """d' of a list of ``(round, answer)`` pairs, all of one ``kind`` (``single`` / ``paired``)."""
    if kind == "single":
        fake = [a for r, a in answers if r.answer == "fake"]
        real = [a for r, a in answers if r.answer == "real"]
        return dprime_yes_no(fake.count("fake"), len(fake), real.count("fake"), len(real))
    return dprime_2afc(sum(a == r.answer for r, a in answers), len(answers))


@dataclass
class Scoreboard:
    """The quiz's standing. ``rounds``: one row per revealed round (:data:`ROUND_COLUMNS`; round is
    1-based; ``class_accuracy`` None without votes). ``players``: one row per player, best first
    (:data:`PLAYER_COLUMNS`). ``models``: one row per model (:data:`MODEL_COLUMNS`), the verdict model
    first. ``class_accuracy`` / ``class_dprime``: over all votes on revealed rounds (None without any)."""

    kind: str
    verdict_model: str
    n_revealed: int
    n_votes: int
    class_accuracy: float | None
    class_dprime: float | None
    model_accuracy: float | None
    model_dprime: float | None
    rounds: pd.DataFrame
    players: pd.DataFrame
    models: pd.DataFrame

    def player(self, nickname: str) -> dict | None:
        """One player's row as a dict (None if they have not voted on a revealed round)."""
        rows = self.players[self.players["nickname"] == nickname]
        if rows.empty:
            return None
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in rows.iloc[0].to_dict().items()}


def scoreboard(rounds: list[Round], revealed: list[int], votes: pd.DataFrame, thresholds: dict[str, float],
               verdict_model: str, players: list[str] | None = None) -> Scoreboard:
    """The scoreboard of a game. ``votes``: columns ``round`` (0-based index), ``nickname``, ``answer``;
    ``thresholds``: ``{model: threshold}`` of every model to score (the verdict model among them);
    ``players``: nicknames to list even without a vote. Raises ``ValueError`` for rounds of mixed kinds."""
    kinds = {r.kind for r in rounds}
    if len(kinds) > 1:
        raise ValueError(f"a scoreboard covers rounds of one kind, got {sorted(kinds)}")
    kind = next(iter(kinds), "single")
    by_index = {r.index: r for r in rounds}
    shown = [by_index[i] for i in sorted(set(revealed)) if i in by_index]
    shown_idx = {r.index for r in shown}
    votes = votes[votes["round"].isin(shown_idx)] if len(votes) else votes
    answers = [(by_index[int(v.round)], str(v.answer)) for v in votes.itertuples(index=False)]

    rows = []
    for r in shown:
        mine = [a for rr, a in answers if rr.index == r.index]
        ok = sum(a == r.answer for a in mine)
        ma = model_answer(r, verdict_model, thresholds.get(verdict_model, 0.5))
        rows.append({"round": r.index + 1, "kind": r.kind, "dataset": ", ".join(r.datasets), "answer": r.answer,
                     "votes": len(mine), "class_correct": ok, "class_accuracy": ok / len(mine) if mine else None,
                     "model_answer": None if ma is None else ma.answer,
                     "model_correct": None if ma is None else bool(ma.correct)})
    round_table = pd.DataFrame(rows, columns=ROUND_COLUMNS)

    names = list(dict.fromkeys([*(players or []), *votes["nickname"].astype(str).tolist()])) if len(votes) or players \
        else []
    prow = []
    for name in names:
        theirs = [(by_index[int(v.round)], str(v.answer)) for v in votes.itertuples(index=False) if v.nickname == name]
        ok = sum(a == r.answer for r, a in theirs)
        prow.append({"nickname": name, "votes": len(theirs), "correct": ok,
                     "accuracy": ok / len(theirs) if theirs else None})
    player_table = pd.DataFrame(prow, columns=PLAYER_COLUMNS)
    if len(player_table):
        player_table = player_table.sort_values(["correct", "accuracy"], ascending=False, kind="stable",
                                                na_position="last").reset_index(drop=True)

    mrows = []
    for model, threshold in thresholds.items():
        got = [(r, model_answer(r, model, threshold)) for r in shown]
        got = [(r, a.answer) for r, a in got if a is not None]
        ok = sum(a == r.answer for r, a in got)
        mrows.append({"model": model, "rounds": len(got), "correct": ok, "accuracy": ok / len(got) if got else None,
                      "d_prime": dprime(kind, got) if got else None})
    model_table = pd.DataFrame(mrows, columns=MODEL_COLUMNS)
    if len(model_table):
        first = model_table["model"] == verdict_model
        model_table = pd.concat([model_table[first], model_table[~first]], ignore_index=True)
    vm = model_table[model_table["model"] == verdict_model]
    n_ok = sum(a == r.answer for r, a in answers)
    return Scoreboard(
        kind=kind, verdict_model=verdict_model, n_revealed=len(shown), n_votes=len(answers),
        class_accuracy=n_ok / len(answers) if answers else None,
        class_dprime=dprime(kind, answers) if answers else None,
        model_accuracy=None if vm.empty else vm.iloc[0]["accuracy"],
        model_dprime=None if vm.empty else vm.iloc[0]["d_prime"],
        rounds=round_table, players=player_table, models=model_table)


def results_table(rounds: list[Round], revealed: list[int], votes: pd.DataFrame, thresholds: dict[str, float],
                  verdict_model: str) -> pd.DataFrame:
    """One row per vote (:data:`CSV_COLUMNS`): round (1-based), the player's nickname and answer, the
    right answer, the verdict model's answer. Nicknames are the only thing about a person in it."""
    by_index = {r.index: r for r in rounds}
    done = set(revealed)
    rows = []
    for v in votes.itertuples(index=False):
        r = by_index.get(int(v.round))
        if r is None:
            continue
        ma = model_answer(r, verdict_model, thresholds.get(verdict_model, 0.5))
        rows.append({"round": r.index + 1, "kind": r.kind, "dataset": ", ".join(r.datasets), "nickname": v.nickname,
                     "answer": v.answer, "correct_answer": r.answer, "correct": v.answer == r.answer,
                     "revealed": r.index in done, "verdict_model": verdict_model,
                     "model_answer": None if ma is None else ma.answer,
                     "model_correct": None if ma is None else bool(ma.correct)})
    return pd.DataFrame(rows, columns=CSV_COLUMNS)


def results_csv(rounds: list[Round], revealed: list[int], votes: pd.DataFrame, thresholds: dict[str, float],
                verdict_model: str) -> bytes:
    """:func:`results_table` as UTF-8 CSV bytes (for a download button)."""
    buf = io.StringIO()
    results_table(rounds, revealed, votes, thresholds, verdict_model).to_csv(buf, index=False)
    return buf.getvalue().encode("utf-8")
