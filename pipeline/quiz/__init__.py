"""Classroom mode, "Real or fake?": people against the run's detectors on faces from its test split.

The original study behind the game: on StyleGAN2 faces, 315 people scored 48.2% and 59.0% after
training with feedback (Nightingale & Farid, "AI-synthesized faces are indistinguishable from real
faces and more trustworthy", PNAS 119(8), 2022).

* :mod:`pipeline.quiz.rounds` - the image pool (test split only), seeded single and paired rounds,
  "what to look for" notes, Grad-CAM.
* :mod:`pipeline.quiz.answers` - each model's stored answer to a round with its confidence in words,
  and the run's calibrated verdict on each image.
* :mod:`pipeline.quiz.rooms` - live rooms: a teacher opens a room with a short code, students join
  with the code and a nickname and vote once per round until the reveal; the SQLite file they share
  is :mod:`pipeline.quiz.room_db`, the errors they raise :mod:`pipeline.quiz.room_errors`.
* :mod:`pipeline.quiz.scores` - scoreboards: class and model accuracy, each player's score,
  signal-detection d', the room's results as CSV.
* :mod:`pipeline.quiz.figures` - the vote histogram, the score chart and the QR code (drawn locally
  by segno).
"""
