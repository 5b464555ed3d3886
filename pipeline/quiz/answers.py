"""A model's answer to a quiz round, in words a class understands.

* :func:`model_answer` - a model's answer to a round from its stored p_fake at its own threshold (in a
  paired round the image it finds less fake is its "real"), with its margin in log-odds and its
  confidence in words (:func:`confidence_words`: unsure / leaning / fairly sure / very sure, which read
  like p 0.6 / 0.8 / 0.95 at a threshold of 0.5); :func:`all_answers` for every model.
* :func:`calibrated_verdicts` - the run's calibrated three-way verdict (:mod:`pipeline.verdict`) on each
  image of a round, as its headline.

Nothing is re-scored: the scores are the ones stored with the round (:class:`pipeline.quiz.rounds.Round`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from pipeline.quiz.rounds import Round

_EPS = 1e-6

# Distance of a model's log-odds from its own threshold's log-odds; at a 0.5 threshold the bounds
# are p = 0.60, 0.80 and 0.95 (or 0.40, 0.20, 0.05 toward real).
CONFIDENCE_WORDS = ((math.log(0.60 / 0.40), "unsure"), (math.log(0.80 / 0.20), "leaning"),
                    (math.log(0.95 / 0.05), "fairly sure"), (math.inf, "very sure"))


def _logit(p: float) -> float:
    p = min(max(float(p), _EPS), 1 - _EPS)
    return math.log(p / (1 - p))


def margin(p_fake: float, threshold: float) -> float:
    """``logit(p_fake) - logit(threshold)``: positive means fake at that threshold (log-odds units)."""
    return _logit(p_fake) - _logit(threshold)


def confidence_words(log_odds_margin: float) -> str:
    """``unsure`` / ``leaning`` / ``fairly sure`` / ``very sure`` for a margin in log-odds (see
    :data:`CONFIDENCE_WORDS`; it reads like p 0.6 / 0.8 / 0.95 at a threshold of 0.5). This is the
    model's own score read against its own threshold, not a calibrated probability of being right."""
    m = abs(float(log_odds_margin))
    for bound, words in CONFIDENCE_WORDS:
        if m < bound:
            return words
    return CONFIDENCE_WORDS[-1][1]


@dataclass(frozen=True)
class ModelAnswer:
    """A model's answer to a round: ``answer`` in ``round.choices``, ``p_fake`` per image (left to
    right), its ``threshold``, ``margin`` in log-odds (single: ``logit(p) - logit(t)``; paired: how much
    more fake the other image looks), ``words`` (:func:`confidence_words`) and ``correct``."""

    model: str
    answer: str
    correct: bool
    p_fake: tuple[float, ...]
    threshold: float
    margin: float
    words: str

    @property
    def sentence(self) -> str:
        """E.g. "fake, fairly sure (p 0.91 at threshold 0.42)" / "left is real, leaning (p 0.20 vs 0.55)"."""
        if len(self.p_fake) == 1:
            return f"{self.answer}, {self.words} (p(fake) {self.p_fake[0]:.2f} at threshold {self.threshold:.2f})"
        return (f"the {self.answer} one is real, {self.words} (p(fake) {self.p_fake[0]:.2f} left vs "
                f"{self.p_fake[1]:.2f} right)")


def model_answer(rnd: Round, model: str, threshold: float) -> ModelAnswer | None:
    """``model``'s answer to ``rnd`` from the stored scores; None when it has no score for an image."""
    if any(model not in im.scores for im in rnd.images):
        return None
    ps = tuple(float(im.scores[model]) for im in rnd.images)
    if rnd.kind == "single":
        m = margin(ps[0], threshold)
        answer = "fake" if ps[0] >= threshold else "real"
    else:
        m = _logit(ps[1]) - _logit(ps[0])  # > 0: the right image looks more fake, so the left one is real
        answer = "left" if m >= 0 else "right"
    return ModelAnswer(model=model, answer=answer, correct=answer == rnd.answer, p_fake=ps,
                       threshold=float(threshold), margin=float(m), words=confidence_words(m))


def calibrated_verdicts(rnd: Round, policy) -> list[str] | None:
    """The run's three-way verdict (:mod:`pipeline.verdict`: calibrated, at its stated false-accusation
    rate) on each image of the round, in words ("Likely fake — 91%", "Can't tell: ..."), from the stored
    scores of the policy's model, left to right; the band rule only (the stability check needs the
    pixels). None without a policy or a stored score."""
    from pipeline import verdict as verdict_mod

    if policy is None or any(policy.model not in im.scores for im in rnd.images):
        return None
    out = []
    for im in rnd.images:
        decided = verdict_mod.decide(policy, float(im.scores[policy.model]))
        out.append(decided["headline"])
    return out


def all_answers(rnd: Round, thresholds: dict[str, float]) -> list[ModelAnswer]:
    """Every model's answer (models without a score for the round left out), in ``thresholds`` order."""
    out = [model_answer(rnd, m, t) for m, t in thresholds.items()]
    return [a for a in out if a is not None]
