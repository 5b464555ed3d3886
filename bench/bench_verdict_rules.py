"""Replay the three-way verdict's rules on recorded check inputs: how the unsure band's share, the stability
check's flip margin and its copies move "decided", false accusations and fakes caught, per data set, on validation
and test photos.

    .venv/bin/python bench/bench_verdict_rules.py [--run RUN] [--per-class 30] [--splits val test]
                                                  [--capture inputs.jsonl] [--shares 0.10 0.07 0.05]
                                                  [--margins 1 1.5 2 3]
                                                  [--copies "all" "JPEG quality 75,half size" ...]

1. **Capture** (the slow part, about 1.6 s a photo on 2 cores): ``--per-class`` real and fake photos of each data set
   and split (the same fixed-seed sample as ``bench/bench_verdict.py`` for test) go through the one check path
   (:func:`pipeline.checking.check_files`, stability check on), and every input of :func:`pipeline.verdict.decide`
   per face is written to ``--capture`` as JSON lines: the verdict model's raw p(fake), the router's kind, the
   copies' raw scores and kinds, the look-alike flag, and the policy's flip margin and copies then. An existing
   capture file is reused (delete it to re-capture).
2. **Replay** (seconds): the run's policy is refitted on its stored validation predictions at each unsure share
   (:func:`pipeline.verdict_fit.fit_policy`) and given each flip margin and each set of copies (``--copies``: comma-
   separated names of :data:`pipeline.verdict.PERTURBATIONS`, "all" = the capture's, "none" = the band and the
   look-alike score only; a set must be among the
   captured copies: a face's other copies are left out of its decision), and :func:`pipeline.verdict.decide` judges
   every recorded face again; one answer per photo as on the Check page (:func:`pipeline.checking.photo_verdict`'s
   rule). The replay at the policy of the capture must give the recorded answers (checked: the script stops if not).

Choose on the validation rows; the test rows are for reporting the choice once (EXPERIMENTS.md V3). Validation photos
are scored by the run's combined model, whose stackers were fitted on validation predictions out of fold: their
check-path scores are in-sample for the stackers, so validation is a little optimistic. Prints tables; writes only the capture file.
"""
from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pandas as pd  # noqa: E402

from bench.common import check_setup, markdown_table  # noqa: E402


def capture(run, setup, splits: list[str], per_class: int, out: Path) -> None:
    """Write one JSON line per photo: split, dataset, path, y, the photo's answer, and per face every input of
    :func:`pipeline.verdict.decide` (recorded by wrapping it while the check path runs)."""
    from tqdm import tqdm

    from pipeline import checking, verdict

    calls: list[dict] = []
    decide = verdict.decide

    def recording(policy, p_raw, p_perturbed=None, out_of_distribution=False, kind=None, perturbed_kinds=None):
        calls.append({"p_raw": float(p_raw), "ood": bool(out_of_distribution), "kind": kind,
                      "p_perturbed": None if p_perturbed is None else [float(x) for x in p_perturbed],
                      "perturbed_kinds": None if perturbed_kinds is None else [str(k) for k in perturbed_kinds]})
        return decide(policy, p_raw, p_perturbed, out_of_distribution, kind, perturbed_kinds)

    manifest = run.manifest()
    picked = []
    for split in splits:
        part = manifest[manifest["split"] == split]
        if part.empty:
            raise SystemExit(f"run {run.run_id} has no {split!r} photos; its splits: "
                             f"{sorted(manifest['split'].unique())}")
        for ds, g in sorted(part.groupby("dataset")):
            sample = pd.concat([h.sample(min(per_class, len(h)), random_state=0) for _, h in g.groupby("label")])
            picked += [(split, ds, p, int(y)) for p, y in zip(sample["path"], sample["y"])]
    verdict.decide = recording
    tmp = out.with_suffix(out.suffix + ".part")
    try:
        with open(tmp, "w") as fh:
            for split, ds, path, y in tqdm(picked, desc="check path", unit="photo"):
                calls.clear()
                [res] = checking.check_files([path], setup.models, combiner=setup.combiner, policy=setup.policy,
                                             stability=True)
                judged = [f for f in res.faces if f.verdict is not None]
                assert len(judged) == len(calls), f"{path}: {len(judged)} faces judged, {len(calls)} decisions recorded"
                answer = checking.photo_verdict(res)
                fh.write(json.dumps({"split": split, "dataset": ds, "path": str(path), "y": y,
                                     "photo": answer[0] if answer else "unsure",
                                     "flip_margin": setup.policy.flip_margin,
                                     "stability_copies": list(setup.policy.stability_copies),
                                     "faces": [{"index": f.index, **c} for f, c in zip(judged, calls)]}) + "\n")
    finally:
        verdict.decide = decide
    tmp.replace(out)


def photo_answer(policy, faces: list[dict], captured: list[str] | None = None) -> str:
    """The photo's one answer (:func:`pipeline.checking.photo_answer`, the Check page's rule) from its recorded
    faces, each judged again by :func:`pipeline.verdict.decide` under ``policy``; "unsure" when none was judged.
    ``captured``: the copies the faces' recorded scores are of (default: all of
    :data:`pipeline.verdict.PERTURBATIONS`); only the policy's ``stability_copies`` among them are judged."""
    from pipeline import checking, verdict

    captured = list(captured or verdict.PERTURBATIONS)
    missing = [c for c in policy.stability_copies if c not in captured]
    if missing:
        raise ValueError(f"the capture has no scores of the copies {missing}: re-capture with a policy that makes them")
    keep = [captured.index(c) for c in policy.stability_copies] if policy.stability else []  # off: no copy judged
    answers = [verdict.decide(policy, f["p_raw"], [f["p_perturbed"][i] for i in keep], f["ood"], f["kind"],
                              None if f["perturbed_kinds"] is None else [f["perturbed_kinds"][i] for i in keep]
                              )["verdict"] for f in faces]
    return checking.photo_answer(answers) or verdict.UNSURE


def summary(frame: pd.DataFrame) -> dict[str, str]:
    """Decided, reals called fake among the decided and fakes caught among the decided, pooled and per data set."""
    out = {}
    for scope, g in [("all", frame), *sorted(frame.groupby("dataset"))]:
        dec = g[g["answer"] != "unsure"]
        reals, fakes = dec[dec["y"] == 0], dec[dec["y"] == 1]
        out[scope] = (f"{len(dec) / len(g):.0%} · {(reals['answer'] == 'fake').sum()}/{len(reals)} · "
                      f"{(fakes['answer'] == 'fake').sum()}/{len(fakes)}")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", help="run id, prefix or folder (default: newest)")
    ap.add_argument("--per-class", type=int, default=30)
    ap.add_argument("--splits", nargs="+", default=["val", "test"])
    ap.add_argument("--capture", type=Path, default=Path("verdict_inputs.jsonl"))
    ap.add_argument("--shares", nargs="+", type=float, default=[0.10, 0.07, 0.05])
    ap.add_argument("--margins", nargs="+", type=float, default=[1.0, 1.5, 2.0, 3.0])
    ap.add_argument("--copies", nargs="+", default=["all"],
                    help='sets of stability-check copies to replay, each comma-separated (e.g. "JPEG quality 75,half '
                         'size"); "all" = every captured copy, "none" = no copy')
    args = ap.parse_args()

    from pipeline import store, verdict_fit
    from pipeline.verdict import PERTURBATIONS, copies_of

    run, setup = check_setup(args.run)
    base = setup.policy
    if not args.capture.is_file():
        t = time.perf_counter()
        capture(run, setup, args.splits, args.per_class, args.capture)
        print(f"captured in {time.perf_counter() - t:.0f} s: {args.capture}")
    rows = [json.loads(line) for line in args.capture.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if r["split"] in args.splits]  # a reused capture may hold more splits than asked for
    if not rows:
        print(f"{args.capture} holds no photos of the splits {args.splits}: delete it to re-capture")
        return 2
    captured = {tuple(r.get("stability_copies", PERTURBATIONS)) for r in rows}
    if len(captured) != 1:
        print(f"{args.capture} mixes photos captured with different stability-check copies: delete it to re-capture")
        return 2
    captured = list(captured.pop())
    try:
        copy_sets = {names: (captured if names == "all" else [] if names == "none"
                             else copies_of(n.strip() for n in names.split(","))) for names in args.copies}
    except ValueError as exc:
        print(f"--copies: {exc}")
        return 2
    missing = sorted({c for copies in copy_sets.values() for c in copies} - set(captured))
    if missing:
        print(f"--copies asks for {missing}, which {args.capture} has no scores of (captured: {', '.join(captured)})")
        return 2
    replayed = [photo_answer(dataclasses.replace(base, flip_margin=r["flip_margin"], stability_copies=captured),
                             r["faces"], captured) == r["photo"] for r in rows]
    if not all(replayed):
        print(f"the replay at the run's own settings differs from the recorded answers on {replayed.count(False)} "
              f"photos: the capture is from another policy or code; delete {args.capture} and re-capture")
        return 1
    preds = pd.read_parquet(store.model_dir(run.path, base.model) / store.PREDICTIONS)
    val = preds[preds["split"] == "val"]
    table = []
    for share in args.shares:
        fitted = verdict_fit.fit_policy(val, base.model, max_false_positive_rate=base.max_false_positive_rate,
                                        unsure_share=share, method=base.calibrator.get("method", "platt"),
                                        per_kind=bool(base.by_kind))
        fitted = dataclasses.replace(base, calibrator=fitted.calibrator, threshold=fitted.threshold, band=fitted.band,
                                     by_kind=fitted.by_kind, unsure_share=share)
        for margin, names in itertools.product(args.margins, args.copies):
            copies = copy_sets[names]
            policy = dataclasses.replace(fitted, flip_margin=margin, stability=bool(copies),  # "none": the check off
                                         stability_copies=copies or captured)
            for split in sorted({r["split"] for r in rows}, key=args.splits.index):
                frame = pd.DataFrame([{"dataset": r["dataset"], "y": r["y"],
                                       "answer": photo_answer(policy, r["faces"], captured)}
                                      for r in rows if r["split"] == split])
                table.append({"split": split, "unsure share": share, "flip margin": margin,
                              "copies": "none" if not copies else "all captured" if copies == captured
                              else ", ".join(copies), **summary(frame)})
    print(f"run {run.run_id}, {len(rows)} photos; its own settings: unsure share {base.unsure_share}, flip margin "
          f"{base.flip_margin}, copies {', '.join(base.stability_copies)}; captured copies {', '.join(captured)}. Each cell: decided · reals called fake (decided) · fakes caught (decided).")
    print(markdown_table(table))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
