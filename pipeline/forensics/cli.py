"""``python -m pipeline inspect``: the forensic bench on files, views as PNGs and facts as JSON."""
from __future__ import annotations

import io
import json
import sys
from pathlib import Path

from PIL import Image

from pipeline import artifacts, images
from pipeline.forensics import MAGNIFYING_GLASS, Inspection, inspect_image


def write_outputs(result: Inspection, out_dir: Path, stem: str) -> dict[str, str]:
    """Write ``<stem>__<view>.png`` for every view and ``<stem>.json`` (the facts) into ``out_dir``, atomically.

    Returns {view name: path} of the PNGs (also recorded in the JSON under ``views``).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for view, rgb in result.views.items():
        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, "PNG")
        target = out_dir / f"{stem}__{view}.png"
        artifacts.write_bytes(target, buf.getvalue())
        paths[view] = str(target)
    facts = result.facts()
    facts["views"] = paths
    artifacts.write_json(out_dir / f"{stem}.json", facts)
    return paths


def summary_lines(result: Inspection) -> list[str]:
    """A few plain lines on one file for the terminal."""
    lines = [f"{result.name}: {result.format} {result.width}x{result.height}, {result.size_bytes:,} bytes"]
    j = result.jpeg
    if j is not None:
        exact = "exact IJG table" if j.quality_exact else "closest IJG table; the file's own tables"
        lines.append(f"  JPEG: quality ~{j.quality} ({exact}), {j.subsampling}, "
                     f"{'progressive' if j.progressive else 'baseline'}")
        lines += [f"  double compression: {s}" for s in j.double_compression] or ["  double compression: no sign found"]
    m = result.metadata
    lines.append(f"  metadata: camera {m.camera or '-'}; software {', '.join(m.software) or '-'}; "
                 f"EXIF {'yes' if m.has_exif else 'none'}; GPS {m.gps if isinstance(m.gps, str) else 'shown in JSON'}")
    if m.editing_software:
        lines.append(f"  editing software named: {', '.join(m.editing_software)}")
    if result.thumbnail is not None:
        t = result.thumbnail
        lines.append(f"  EXIF thumbnail: {'DISAGREES with the image' if t.disagrees else 'matches the image'} "
                     f"(mean difference {t.difference:.1f} of 255)")
    p = result.provenance
    lines.append(f"  provenance: {p.message}")
    if p.status == "present":
        lines.append(f"    signer {p.signer or '-'}; tool {p.claim_generator or '-'}; {p.trust}")
        lines += [f"    AI declared: {a}" for a in p.ai_generated]
        lines += [f"    failure: {f}" for f in p.failures if "untrusted" not in f]
    lines.append(f"  ELA at quality {result.ela.quality}: mean error level {result.ela.mean_error:.2f} of 255")
    lines += [f"  problem: {x}" for x in result.problems]
    return lines


def _report_error(file: str, message: str, as_json: bool) -> None:
    from tqdm import tqdm

    if as_json:
        print(json.dumps({"file": file, "error": message}))
    else:
        tqdm.write(f"error: {message}", file=sys.stderr)


def run_inspect(files: list[str], *, as_json: bool = False, out_dir: str | None = None, ela_quality: int = 90,
                include_gps: bool = False, trust_anchors: str | None = None, quiet: bool = False) -> int:
    """Inspect each file; a bad file gets a message (and ``{"file", "error"}`` in JSON) and the rest go on.

    Returns the exit code: 0 when every file was read, 1 otherwise.
    """
    from tqdm import tqdm

    trust_pem = None
    if trust_anchors:
        try:
            trust_pem = Path(trust_anchors).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            print(f"error: the trust anchors file {trust_anchors} could not be read ({exc})", file=sys.stderr)
            return 2
    out = Path(out_dir) if out_dir else None
    failures, stems = 0, set()
    for file in tqdm(files, desc="inspect", unit="file", disable=quiet or len(files) < 2, file=sys.stderr):
        try:
            result = inspect_image(file, ela_quality=ela_quality, include_gps=include_gps, trust_pem=trust_pem)
        except images.ImageError as exc:  # the message starts with the file name
            failures += 1
            _report_error(file, str(exc), as_json)
            continue
        except Exception as exc:  # noqa: BLE001 - one odd file must never stop the batch
            failures += 1
            _report_error(file, f"{file} could not be inspected ({type(exc).__name__}: {exc})", as_json)
            continue
        record = result.facts()
        if out is not None:
            stem = Path(file).stem or "image"
            if stem in stems:
                stem = f"{stem}-{len(stems)}"
            stems.add(stem)
            record["views"] = write_outputs(result, out, stem)
        if as_json:
            print(json.dumps(record, default=str))
        else:
            print("\n".join(summary_lines(result)))
    if not as_json:
        print(f"\n{MAGNIFYING_GLASS}", file=sys.stderr)
        if out is not None:
            print(f"views (PNG) and facts (JSON) written to {out}", file=sys.stderr)
    if failures:
        print(f"{failures} of {len(files)} file(s) could not be inspected", file=sys.stderr)
    return 1 if failures else 0
