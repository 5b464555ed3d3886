"""Inputs with known answers for the forensic bench tests, all made here (no file from outside).

``texture`` is a photo-like image (noise smoothed at three scales plus a gradient): JPEG treats it like a
natural photo. ``c2pa_signed`` signs a JPEG with c2pa-python and a throwaway certificate chain (a test root CA
and an ES256 signing certificate made with ``cryptography``, valid for two days).
"""
from __future__ import annotations

import datetime
import io
import struct

import numpy as np
from PIL import ExifTags, Image
from scipy import ndimage


def texture(seed: int = 0, size: int = 256) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.zeros((size, size, 3), np.float32)
    for sigma, amp in ((1, 12), (3, 25), (10, 40)):
        img += ndimage.gaussian_filter(rng.normal(0, 1, (size, size, 3)), (sigma, sigma, 0)) * amp * sigma ** 0.5
    xx = np.mgrid[0:size, 0:size][1]
    img += xx[..., None] / size * 80 + 90
    return np.clip(img, 0, 255).astype(np.uint8)


def jpeg(rgb: np.ndarray, quality: int | None, **kw) -> bytes:
    buf = io.BytesIO()
    if quality is not None:
        kw["quality"] = quality
    Image.fromarray(rgb).save(buf, "JPEG", **kw)
    return buf.getvalue()


def decode(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.array(im.convert("RGB"))


def exif_with_thumbnail(thumb_jpeg: bytes, make: str = "TestCam") -> bytes:
    """A little-endian EXIF block: IFD0 with Make, IFD1 pointing at ``thumb_jpeg`` (JPEGInterchangeFormat)."""
    make_b = make.encode() + b"\x00"
    ifd0_off = 8
    ifd0_len = 2 + 1 * 12 + 4
    make_off = ifd0_off + ifd0_len
    ifd1_off = make_off + len(make_b)
    ifd1_len = 2 + 3 * 12 + 4
    thumb_off = ifd1_off + ifd1_len
    out = b"II*\x00" + struct.pack("<I", ifd0_off)
    out += struct.pack("<H", 1) + struct.pack("<HHII", 0x010F, 2, len(make_b), make_off) + struct.pack("<I", ifd1_off)
    out += make_b
    out += struct.pack("<H", 3)
    out += struct.pack("<HHIHH", 0x0103, 3, 1, 6, 0)  # Compression = 6 (JPEG)
    out += struct.pack("<HHII", 0x0201, 4, 1, thumb_off)
    out += struct.pack("<HHII", 0x0202, 4, 1, len(thumb_jpeg))
    out += struct.pack("<I", 0)
    out += thumb_jpeg
    return b"Exif\x00\x00" + out


def gps_exif() -> bytes:
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "PhoneCo"
    exif[ExifTags.Base.Model] = "PhoneCo X1"
    exif[ExifTags.Base.Software] = "Adobe Photoshop 25.0"
    exif[ExifTags.Base.DateTime] = "2026:11:29 10:00:00"
    exif[ExifTags.IFD.GPSInfo] = {ExifTags.GPS.GPSLatitudeRef: "N", ExifTags.GPS.GPSLatitude: (52.0, 31.0, 12.0),
                                  ExifTags.GPS.GPSLongitudeRef: "E", ExifTags.GPS.GPSLongitude: (13.0, 24.0, 36.0)}
    return exif.tobytes()


def make_certificates() -> tuple[bytes, bytes, bytes]:
    """(signing certificate chain PEM, private key PEM, root CA PEM): throwaway, made now."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Deepfake Lens tests")])

    now = datetime.datetime.now(datetime.timezone.utc)
    usage = dict(content_commitment=False, key_encipherment=False, data_encipherment=False, key_agreement=False,
                 encipher_only=False, decipher_only=False)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("Test Root CA")).issuer_name(name("Test Root CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=False, key_cert_sign=True, crl_sign=True, **usage), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder().subject_name(name("Test signer")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=False, crl_sign=False, **usage), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return leaf.public_bytes(pem) + ca.public_bytes(pem), key_pem, ca.public_bytes(pem)


def c2pa_signed(image_jpeg: bytes, ai: bool = True) -> tuple[bytes, str]:
    """(``image_jpeg`` with an embedded, signed C2PA manifest, the root CA PEM to trust it). No timestamp server."""
    import c2pa

    chain, key, ca = make_certificates()
    source = "trainedAlgorithmicMedia" if ai else "digitalCapture"
    action = {"action": "c2pa.created", "softwareAgent": {"name": "TestGenerator 1.0"},
              "digitalSourceType": f"http://cv.iptc.org/newscodes/digitalsourcetype/{source}"}
    manifest = {"claim_generator_info": [{"name": "deepfake-lens-tests", "version": "1.0"}], "title": "made.jpg",
                "assertions": [{"label": "c2pa.actions", "data": {"actions": [action]}}]}
    signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, chain, key, None))
    ctx = c2pa.Context.from_dict({"verify": {"remote_manifest_fetch": False, "ocsp_fetch": False},
                                  "builder": {"thumbnail": {"enabled": False}}})
    out = io.BytesIO()
    with c2pa.Builder(manifest, context=ctx) as builder:
        builder.sign(signer, "image/jpeg", io.BytesIO(image_jpeg), out)
    return out.getvalue(), ca.decode()


def tampered(signed: bytes) -> bytes:
    """``signed`` with pixels changed after signing: one byte of the entropy-coded data near the end flipped."""
    data = bytearray(signed)
    data[-200] ^= 0x01
    return bytes(data)
