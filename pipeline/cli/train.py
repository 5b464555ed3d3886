"""The commands that train a run or score it on labelled data: ``train``, ``evaluate`` and ``experiment``."""
from __future__ import annotations

from pathlib import Path

from pipeline import store
from pipeline.cli.common import TABLE_COLUMNS, VERDICT_COLUMNS, fail, print_table, run_of


def cmd_train(args) -> int:
    """``train``: build (or load, when cached) the run a config and the flags describe; print its summary."""
    from pipeline import config_load, run_progress, runner
    from pipeline.progress import TqdmProgress

    cfg = config_load.load(args.config)
    cfg = config_load.apply_overrides(cfg, data=args.data, models=args.models.split(",") if args.models else None,
                                      image_size=args.image_size, epochs=args.epochs, artifacts_dir=args.out,
                                      max_images_per_class=getattr(args, "max_images_per_class", None))
    progress = TqdmProgress(disable=args.quiet)
    status = run_progress.ProgressFile(cfg.artifacts_dir)  # progress.json: the dashboard's progress bar

    def log(line: str) -> None:
        print(line)
        status.log(line)

    try:
        run_dir = runner.train_run(cfg, force=args.force, progress=run_progress.tee(progress, status), log=log)
    except BaseException as exc:
        status.finish("failed", "interrupted" if isinstance(exc, KeyboardInterrupt) else str(exc) or type(exc).__name__)
        raise
    status.finish("complete")
    progress.close()
    import pandas as pd

    summary = pd.read_csv(run_dir / store.SUMMARY)
    print(f"\nrun: {run_dir}")
    print_table(summary, TABLE_COLUMNS)
    return 0


def cmd_evaluate(args) -> int:
    """``evaluate``: score a trained run on other labelled folders (of images or of videos)."""
    from pipeline import config, runner
    from pipeline.progress import TqdmProgress
    info = run_of(args)
    from pipeline.video import cli as video_cli

    try:
        if video_cli.wants_videos(args.data):  # labelled folders of clips: video-level metrics
            return video_cli.evaluate_command(args, info.path)
    except ValueError as exc:
        return fail(str(exc))
    sources = [config.DataSource(path=str(Path(d).resolve())) for d in args.data]
    try:  # a combined model fitted before a member was retrained, a model the run does not have
        out, summary = runner.evaluate_folders(info.path, sources,
                                               models=args.models.split(",") if args.models else None,
                                               progress=TqdmProgress(disable=args.quiet))
    except ValueError as exc:
        return fail(str(exc))
    if args.json:
        print(summary.to_json(orient="records", indent=2))
    else:
        print(f"run {info.run_id} on {', '.join(args.data)}; results written to {out}")
        is_verdict = summary["model"] == "verdict"
        print_table(summary[~is_verdict], TABLE_COLUMNS)
        print("recall_real: real images called real; recall_fake: fakes called fake; balanced_accuracy: their mean "
              "(accuracy hides a model that calls everything one class); ece: expected calibration error after "
              "Platt scaling fitted on the run's validation split")
        if is_verdict.any():
            print("\nthe run's three-way verdict (real / fake / unsure; without the per-image stability check):")
            print_table(summary[is_verdict], VERDICT_COLUMNS)
    return 0


def cmd_experiment(args) -> int:
    """Run an experiment of pipeline.experiments on a trained run (settings: the config's [experiments])."""
    import dataclasses

    from pipeline import artifacts, config_load, runner
    from pipeline.experiments import steps
    from pipeline.progress import TqdmProgress
    if args.run:
        info = run_of(args)
        run_dir = info.path
        cfg = config_load.from_json_dict(artifacts.read_json(run_dir / store.RUN_JSON)["config"])
        cfg = dataclasses.replace(cfg, artifacts_dir=str(run_dir.parent))
        if args.config:  # the run's models and data, this config's experiment settings
            other = config_load.load(args.config)
            cfg = dataclasses.replace(cfg, experiments=other.experiments, strategy=other.strategy)
    else:
        cfg = config_load.load(args.config or "default")
        if args.artifacts:
            cfg = dataclasses.replace(cfg, artifacts_dir=str(Path(args.artifacts).resolve()))
        run_id, run_dir, manifest, _ = runner.prepare(cfg)
        cfg = runner.config_for_data(cfg, manifest)[0]
        if not (run_dir / store.MANIFEST).exists():
            return fail(f"run {run_id} of config {cfg.name!r} is not trained yet; train it first: "
                         f"python -m pipeline train --config {args.config or 'default'}")
    progress = TqdmProgress(disable=args.quiet)
    try:
        out = steps.run(args.name, cfg, run_dir, force=args.force, progress=progress)
    except (ValueError, RuntimeError) as exc:
        return fail(str(exc), 1)
    finally:
        progress.close()
    print(f"\nrun: {run_dir}" + (f"\nresults: {out}" if out else ""))
    return 0
