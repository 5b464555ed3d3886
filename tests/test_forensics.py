"""The forensic bench on generated images with known answers (pipeline.forensics)."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

import forensic_samples as fs
from pipeline import forensics, images
from pipeline.forensics import jpeg, metadata, provenance, views


# --------------------------------------------------------------------------- pixel views


def test_ela_is_zero_on_a_flat_image_and_shows_a_pasted_region():
    flat = np.full((64, 64, 3), 128, np.uint8)
    ela = views.error_level_analysis(flat, 90)
    assert ela.error.shape == (64, 64) and ela.mean_error < 0.5 and ela.view.dtype == np.uint8

    # background saved once at 95; a patch from a copy that went through quality 50 pasted in, all saved at 95
    base, other = fs.texture(5), fs.texture(6)
    composite = fs.decode(fs.jpeg(base, 95))
    patch = fs.decode(fs.jpeg(other, 50))
    composite[96:160, 96:160] = patch[96:160, 96:160]
    pixels = fs.decode(fs.jpeg(composite, 95))
    inside = np.zeros((256, 256), bool)
    inside[96:160, 96:160] = True
    err = views.error_level_analysis(pixels, 50).error
    assert err[inside].mean() < 0.7 * err[~inside].mean()  # the patch already "knows" quality 50

    # control: the same paste from a patch that never went below 95 leaves no such contrast
    control = fs.decode(fs.jpeg(base, 95))
    control[96:160, 96:160] = fs.decode(fs.jpeg(other, 95))[96:160, 96:160]
    err_c = views.error_level_analysis(fs.decode(fs.jpeg(control, 95)), 50).error
    assert err_c[inside].mean() > 0.85 * err_c[~inside].mean()


def test_ela_rejects_bad_quality():
    with pytest.raises(ValueError):
        views.error_level_analysis(np.zeros((16, 16, 3), np.uint8), 0)


def test_noise_residual_finds_a_smoothed_region():
    rng = np.random.default_rng(0)
    img = np.clip(128 + rng.normal(0, 10, (128, 128, 3)), 0, 255).astype(np.uint8)
    img[32:96, 32:96] = 128  # a noiseless patch
    res = views.noise_residual(img, median_size=3, window=8)
    assert res.residual.shape == (128, 128)
    assert res.local_variance[40:88, 40:88].mean() < 0.05 * res.local_variance[:24, :24].mean()
    assert res.view.shape == (128, 128, 3) and res.variance_view.shape == (128, 128, 3)


def test_spectrum_peak_of_a_period_4_pattern():
    rng = np.random.default_rng(1)
    y = np.arange(256)
    pattern = np.cos(2 * np.pi * y / 4.0)[None, :] * 20  # 0.25 cycles per pixel, horizontally
    img = np.clip(128 + rng.normal(0, 3, (256, 256)) + pattern, 0, 255).astype(np.uint8)
    spec = views.spectrum(np.repeat(img[..., None], 3, axis=2))
    assert spec.log_magnitude.shape == (256, 256) and spec.view.shape == (256, 256, 3)
    high = spec.frequency > 0.1
    peak = spec.frequency[high][np.argmax(spec.radial_power[high])]
    assert abs(peak - 0.25) < 0.01
    clean = views.spectrum(np.repeat(np.clip(128 + rng.normal(0, 3, (256, 256)), 0, 255).astype(np.uint8)[..., None], 3, 2))
    i = np.argmin(np.abs(clean.frequency - 0.25))
    assert spec.radial_power[i] > clean.radial_power[i] + 0.5


# --------------------------------------------------------------------------- JPEG facts


def test_jpeg_facts_quality_subsampling_and_scan_mode():
    t = fs.texture(0, 64)
    f = jpeg.header_facts(fs.jpeg(t, 83, subsampling=0, progressive=True))
    assert (f.quality, f.quality_exact, f.subsampling, f.progressive) == (83, True, "4:4:4", True)
    f = jpeg.header_facts(fs.jpeg(t, 60, subsampling=2))
    assert (f.quality, f.quality_exact, f.subsampling, f.progressive) == (60, True, "4:2:0", False)
    assert len(f.quantization[0]) == 64 and f.quantization[0][0] == jpeg.ijg_tables()[60][0][0]
    custom = [max(1, v + 1) for v in jpeg.ijg_tables()[75][0]]  # a camera's own table: close to 75, not IJG
    f = jpeg.header_facts(fs.jpeg(t, None, qtables=[custom, list(jpeg.ijg_tables()[75][1])]))
    assert f.quality in (74, 75, 76) and not f.quality_exact
    assert jpeg.header_facts(b"\x89PNG\r\n\x1a\n") is None


def test_double_compression_shows_a_ghost_and_single_does_not():
    t = fs.texture(2)
    single = fs.jpeg(t, 90)
    double = fs.jpeg(fs.decode(fs.jpeg(t, 60)), 90)
    one = forensics.inspect_image(single)
    two = forensics.inspect_image(double)
    assert one.jpeg.quality == two.jpeg.quality == 90
    assert one.jpeg.ghosts.ghost_quality is None and one.jpeg.double_compression == []
    assert two.jpeg.ghosts.ghost_quality in (58, 60, 62)
    assert "compressed at least twice" in two.jpeg.double_compression[0]
    # the ELA of the re-saved file differs from the single one's: its pixels moved twice
    assert abs(one.ela.mean_error - two.ela.mean_error) > 0.05


# --------------------------------------------------------------------------- metadata, thumbnail


def test_metadata_camera_software_dates_and_gps_hidden_by_default():
    data = fs.jpeg(fs.texture(3, 64), 90, exif=fs.gps_exif())
    hidden = forensics.inspect_image(data)
    m = hidden.metadata
    assert m.camera == "PhoneCo X1" and "Adobe Photoshop 25.0" in m.software
    assert m.editing_software == ["photoshop"] and m.dates["EXIF DateTime"] == "2026:11:29 10:00:00"
    assert isinstance(m.gps, str) and m.gps.startswith("hidden")
    text = str(hidden.facts())
    assert "52" not in str(m.exif) and "GPSLatitude" not in text
    shown = forensics.inspect_image(data, include_gps=True).metadata.gps
    assert isinstance(shown, dict) and "GPSLatitude" in shown and "52" in shown["GPSLatitude"]


def test_thumbnail_that_differs_is_flagged_and_a_matching_one_is_not():
    photo = fs.texture(4, 256)
    same = fs.jpeg(np.asarray(Image.fromarray(photo).resize((64, 64), Image.Resampling.BOX)), 90)
    other = fs.jpeg(np.asarray(Image.fromarray(255 - photo).resize((64, 64), Image.Resampling.BOX)), 90)
    ok = forensics.inspect_image(fs.jpeg(photo, 90, exif=fs.exif_with_thumbnail(same)))
    bad = forensics.inspect_image(fs.jpeg(photo, 90, exif=fs.exif_with_thumbnail(other)))
    assert ok.thumbnail is not None and not ok.thumbnail.disagrees and ok.thumbnail.difference < 5
    assert bad.thumbnail.disagrees and bad.thumbnail.difference > 40
    assert bad.views["thumbnail"].shape == (64, 64, 3) and ok.metadata.camera == "TestCam"


def test_malformed_exif_and_thumbnail_are_reported_not_fatal():
    photo = fs.texture(4, 64)
    broken_thumb = fs.exif_with_thumbnail(b"\xff\xd8\xff\xe0 not really a jpeg" * 3)
    r = forensics.inspect_image(fs.jpeg(photo, 90, exif=broken_thumb))
    assert r.thumbnail is None and any(p.startswith("thumbnail:") for p in r.problems)
    garbage = b"Exif\x00\x00II*\x00\xff\xff\xff\x7f" + bytes(40)
    r = forensics.inspect_image(fs.jpeg(photo, 90, exif=garbage))
    assert r.width == 64 and r.jpeg.quality == 90  # the rest is still there


def test_exif_orientation_views_are_upright():
    arr = fs.texture(7, 64)[:, :48]  # 64 x 48 stored
    exif = Image.Exif()
    exif[0x0112] = 6
    r = forensics.inspect_image(fs.jpeg(np.ascontiguousarray(arr), 90, exif=exif.tobytes()))
    assert r.orientation == 6 and (r.height, r.width) == (48, 64)
    assert r.views["image"].shape == r.views["ela"].shape == r.views["noise"].shape == (48, 64, 3)
    assert r.ela.error.shape == (64, 48)  # measured on the stored pixels (JPEG grid)


def test_orient_matches_pillow():
    from PIL import ImageOps

    a = np.random.default_rng(0).integers(0, 255, (5, 7, 3), dtype=np.uint8)
    for o in range(2, 9):
        im = Image.fromarray(a)
        exif = im.getexif()
        exif[0x0112] = o
        im.info["exif"] = exif.tobytes()
        out = forensics.orient(a, o)
        assert np.array_equal(out, np.asarray(ImageOps.exif_transpose(im))), o
        assert np.array_equal(forensics.orient(out, o, inverse=True), a)


# --------------------------------------------------------------------------- provenance (C2PA)


def test_no_credentials_is_no_information():
    r = forensics.inspect_image(fs.jpeg(fs.texture(0, 64), 90))
    assert r.provenance.status == "none" and "no information" in r.provenance.message
    assert "not downloaded" in r.provenance.offline_note
    png = io.BytesIO()
    Image.fromarray(fs.texture(0, 32)).save(png, "BMP")
    assert forensics.inspect_image(png.getvalue()).provenance.status == "none"


def test_c2pa_signed_file_is_read_and_a_tampered_copy_fails():
    signed, ca = fs.c2pa_signed(fs.jpeg(fs.texture(1, 64), 90))
    p = provenance.read_provenance(signed, "JPEG")
    assert p.status == "present" and p.validation_state == "Valid"
    assert p.signer == "Deepfake Lens tests / Test signer" and p.claim_generator.startswith("deepfake-lens-tests")
    assert p.actions[0]["action"] == "c2pa.created" and p.actions[0]["software_agent"] == "TestGenerator 1.0"
    assert p.ai_generated and "trained AI model" in p.ai_generated[0]
    assert "not on a trust list" in p.trust
    trusted = provenance.read_provenance(signed, "JPEG", trust_pem=ca)
    assert trusted.validation_state == "Trusted" and "local trust anchor" in trusted.trust
    assert "the given PEM" in trusted.offline_note
    bad = forensics.inspect_image(fs.tampered(signed), trust_pem=ca).provenance
    assert bad.status == "present" and bad.validation_state == "Invalid"
    assert any("dataHash.mismatch" in f for f in bad.failures)


def test_c2pa_trust_anchors_from_a_local_file(tmp_path, monkeypatch):
    signed, ca = fs.c2pa_signed(fs.jpeg(fs.texture(1, 64), 90), ai=False)
    (tmp_path / "anchors.pem").write_text(ca)
    monkeypatch.setenv(provenance.TRUST_ENV, str(tmp_path / "anchors.pem"))
    p = provenance.read_provenance(signed, "JPEG")
    assert p.validation_state == "Trusted" and p.ai_generated == [] and "anchors.pem" in p.offline_note


def test_malformed_c2pa_store_is_unreadable_not_fatal():
    signed, _ = fs.c2pa_signed(fs.jpeg(fs.texture(1, 64), 90))
    start = signed.find(b"jumb")
    broken = bytearray(signed)
    broken[start + 40:start + 400] = bytes(360)  # zero the middle of the manifest store
    r = forensics.inspect_image(bytes(broken))
    assert r.provenance.status == "unreadable" and r.provenance.message.startswith("Content Credentials could not")
    assert any(p.startswith("provenance:") for p in r.problems)
    assert r.width == 64  # the pixel views are still there


# --------------------------------------------------------------------------- bad files


def test_bad_files_get_clear_messages(tmp_path):
    good = fs.jpeg(fs.texture(0, 64), 90)
    cases = {
        "truncated.jpg": (good[: len(good) // 2], "truncated or corrupt"),
        "empty.jpg": (b"", "is empty"),
        "lying.jpg": (b"%PDF-1.4 not an image", "PDF document"),
        "huge.png": (None, "over the limit"),
    }
    big = io.BytesIO()
    Image.new("L", (3000, 3000)).save(big, "PNG")
    for name, (data, expected) in cases.items():
        path = tmp_path / name
        path.write_bytes(data if data is not None else big.getvalue())
        with pytest.raises(images.ImageError, match=expected):
            forensics.inspect_image(path, max_pixels=4_000_000)
    with pytest.raises(images.ImageError, match="does not exist"):
        forensics.inspect_image(tmp_path / "missing.jpg")
    with pytest.raises(ValueError):
        forensics.inspect_image(good, ela_quality=101)


def test_facts_are_json_and_name_every_part():
    import json

    r = forensics.inspect_image(fs.jpeg(fs.texture(0, 64), 90), name="x.jpg")
    facts = json.loads(json.dumps(r.facts()))
    assert facts["file"] == "x.jpg" and facts["format"] == "JPEG" and facts["jpeg"]["estimated_quality"] == 90
    assert set(facts) >= {"ela", "noise", "spectrum", "jpeg", "metadata", "thumbnail", "provenance", "note"}
    assert set(r.views) == {"image", "ela", "noise", "noise_variance", "spectrum"}
    assert set(forensics.CAPTIONS) >= {"ela", "noise", "noise_variance", "spectrum", "radial", "ghosts", "thumbnail",
                                       "metadata", "provenance"}
