"""``python -m pipeline inspect``: views as PNGs, facts as JSON, bad files reported without stopping the batch."""
from __future__ import annotations

import io
import json

import numpy as np
from PIL import Image

import forensic_samples as fs
from pipeline import images  # noqa: F401 - registers the HEIF opener used to write the test file
from pipeline.__main__ import main


def test_inspect_writes_views_and_facts_and_survives_bad_files(tmp_path, capsys):
    good = tmp_path / "photo.jpg"
    good.write_bytes(fs.jpeg(fs.texture(0, 64), 90, exif=fs.gps_exif()))
    heic = tmp_path / "phone.heic"
    buf = io.BytesIO()
    Image.fromarray(fs.texture(1, 64)).save(buf, "HEIF", quality=80)
    heic.write_bytes(buf.getvalue())
    signed, _ = fs.c2pa_signed(fs.jpeg(fs.texture(2, 64), 90))
    (tmp_path / "signed.jpg").write_bytes(signed)
    (tmp_path / "cut.jpg").write_bytes(good.read_bytes()[:500])
    (tmp_path / "lying.png").write_bytes(b"%PDF-1.7 this is a document")
    (tmp_path / "broken_c2pa.jpg").write_bytes(fs.tampered(signed))
    big = io.BytesIO()
    Image.new("L", (7000, 7000)).save(big, "PNG")
    (tmp_path / "huge.png").write_bytes(big.getvalue())
    files = [str(tmp_path / n) for n in ("cut.jpg", "photo.jpg", "lying.png", "phone.heic", "huge.png",
                                         "signed.jpg", "broken_c2pa.jpg")]
    out = tmp_path / "out"

    code = main(["inspect", *files, "--json", "--out", str(out), "--quiet"])
    captured = capsys.readouterr()
    records = [json.loads(line) for line in captured.out.splitlines() if line.strip()]
    assert code == 1 and len(records) == 7
    by_name = {r["file"].rsplit("/", 1)[-1]: r for r in records}
    assert "truncated or corrupt" in by_name["cut.jpg"]["error"]
    assert "PDF document" in by_name["lying.png"]["error"]
    assert "over the limit" in by_name["huge.png"]["error"]
    assert by_name["photo.jpg"]["jpeg"]["estimated_quality"] == 90
    assert by_name["photo.jpg"]["metadata"]["gps"].startswith("hidden")
    assert by_name["phone.heic"]["format"] == "HEIC/HEIF" and by_name["phone.heic"]["jpeg"] is None
    assert by_name["signed.jpg"]["provenance"]["validation_state"] == "Valid"
    assert by_name["broken_c2pa.jpg"]["provenance"]["validation_state"] == "Invalid"
    assert "3 of 7 file(s) could not be inspected" in captured.err
    for stem in ("photo", "phone", "signed", "broken_c2pa"):
        facts = json.loads((out / f"{stem}.json").read_text())
        for view, path in facts["views"].items():
            with Image.open(path) as im:
                assert im.format == "PNG" and im.size[0] >= 16
        assert set(facts["views"]) >= {"image", "ela", "noise", "noise_variance", "spectrum"}
    assert not list(out.glob("cut*")) and not list(out.glob("*.tmp*"))


def test_inspect_text_summary_and_gps_on_request(tmp_path, capsys):
    good = tmp_path / "photo.jpg"
    good.write_bytes(fs.jpeg(fs.texture(0, 64), 75, exif=fs.gps_exif()))
    assert main(["inspect", str(good), "--gps", "--ela-quality", "80"]) == 0
    text = capsys.readouterr()
    assert "JPEG: quality ~75 (exact IJG table), 4:2:0, baseline" in text.out
    assert "editing software named: photoshop" in text.out and "ELA at quality 80" in text.out
    assert "GPS shown in JSON" in text.out and "magnifying glass, not a verdict" in text.err
    assert main(["inspect", str(good), "--json", "--gps"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["metadata"]["gps"]["GPSLatitudeRef"] == "N"
    assert np.isfinite(record["ela"]["mean_error"])
