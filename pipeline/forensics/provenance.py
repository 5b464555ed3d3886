"""C2PA Content Credentials read offline with ``c2pa-python`` (the Content Authenticity Initiative's SDK).

Nothing leaves the machine: remote manifests and OCSP revocation checks are not fetched, and the official
C2PA trust list is not downloaded. Trust is checked only against a local PEM file of trust anchors named by
the ``DEEPFAKE_LENS_C2PA_TRUST_ANCHORS`` environment variable (or passed in); without one every signer is
reported as "not checked against a trust list", which is neither good nor bad.

Missing credentials are *no information*: almost every camera, phone and editor still writes none, and
stripping them is trivial. Only a credential that is present says something: who signed it, with what tool,
which actions it declares (including "made by a trained algorithm"), and whether the file still matches it.
"""
from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path

TRUST_ENV = "DEEPFAKE_LENS_C2PA_TRUST_ANCHORS"
NO_CREDENTIALS = ("No Content Credentials in this file. That is no information: most cameras, phones and editors "
                  "write none, and they are easy to strip.")
AI_SOURCE_TYPES = {  # IPTC digital source types that declare generative AI
    "trainedAlgorithmicMedia": "made by a trained AI model",
    "compositeWithTrainedAlgorithmicMedia": "composite including AI-generated parts",
    "algorithmicMedia": "made by an algorithm (not from a camera)",
    "compositeSynthetic": "composite including synthetic parts",
    "trainedAlgorithmicData": "data made by a trained AI model",
}
MIME_BY_FORMAT = {"JPEG": "image/jpeg", "PNG": "image/png", "WebP": "image/webp", "TIFF": "image/tiff",
                  "GIF": "image/gif", "HEIC/HEIF": "image/heic", "AVIF": "image/avif"}


@dataclass
class Provenance:
    """What the file's C2PA manifest store says.

    ``status``: "none" (no credentials: no information), "present" or "unreadable" (malformed or unsupported:
    ``message`` says why). For "present": ``validation_state`` as c2pa reports it ("Trusted", "Valid" = intact
    but signer not on a trust list, "Invalid" = the file or manifest no longer matches its signature);
    ``signer`` (certificate issuer / common name), ``claim_generator`` (the tool that wrote it), ``actions``
    (each ``{"action", "software_agent", "digital_source_type"}``), ``ai_generated`` (sentences naming each
    generative-AI declaration), ``failures`` (validation failure codes with explanations), ``trust`` (a
    sentence on the trust-list check) and ``offline_note`` (what was skipped to stay offline).
    """

    status: str
    message: str = ""
    validation_state: str | None = None
    signer: str | None = None
    signed_at: str | None = None
    claim_generator: str | None = None
    title: str | None = None
    actions: list[dict] = field(default_factory=list)
    ai_generated: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    trust: str = ""
    offline_note: str = ""
    manifests: int = 0

    def to_json(self) -> dict:
        return dict(self.__dict__)


def _offline_note(anchors_source: str | None) -> str:
    where = (f"the local trust anchors in {anchors_source}" if anchors_source else
             f"no trust list (none configured: set {TRUST_ENV} to a local PEM file of trust anchors)")
    return ("Checked offline: remote manifests and OCSP revocation are not fetched, and the public C2PA trust "
            f"list is not downloaded; signers are checked against {where}.")


def _anchors(trust_pem: str | None) -> tuple[str | None, str | None]:
    """(PEM text, where it came from) of local trust anchors, or (None, None)."""
    if trust_pem:
        return trust_pem, "the given PEM"
    path = os.environ.get(TRUST_ENV)
    if path:
        try:
            return Path(path).read_text(encoding="utf-8"), path
        except (OSError, UnicodeDecodeError):
            return None, None
    return None, None


def _context(anchors: str | None):
    import c2pa

    settings: dict = {"verify": {"remote_manifest_fetch": False, "ocsp_fetch": False},
                      "core": {"allowed_network_hosts": []}}
    if anchors:
        settings["trust"] = {"user_anchors": anchors}
    return c2pa.Context.from_dict(settings)


def _short(text: object, limit: int = 300) -> str:
    s = str(text).strip()
    return s if len(s) <= limit else s[:limit - 3] + "..."


def read_provenance(data: bytes, image_format: str | None, trust_pem: str | None = None) -> Provenance:
    """Read and validate the C2PA manifest store embedded in ``data`` (the file's bytes).

    ``image_format``: the container as :mod:`pipeline.images` names it ("JPEG", "PNG", "HEIC/HEIF", ...).
    ``trust_pem``: local trust anchors (PEM text); default: the file named by ``DEEPFAKE_LENS_C2PA_TRUST_ANCHORS``.
    Never raises for bad content: a malformed store gives ``status="unreadable"`` with the reason.
    """
    anchors, source = _anchors(trust_pem)
    note = _offline_note(source)
    mime = MIME_BY_FORMAT.get(image_format or "")
    if mime is None:
        return Provenance("none", f"{image_format or 'This'} files cannot carry Content Credentials. That is no "
                                  "information.", offline_note=note)
    try:
        import c2pa
    except ImportError:  # pragma: no cover - c2pa-python is in requirements.txt
        return Provenance("unreadable", "c2pa-python is not installed, so Content Credentials were not read.",
                          offline_note=note)
    try:
        reader = c2pa.Reader.try_create(mime, io.BytesIO(data), context=_context(anchors))
    except Exception as exc:  # noqa: BLE001 - C2paError subclasses, ctypes errors on damaged stores
        return Provenance("unreadable", f"Content Credentials could not be read: {_short(exc)}", offline_note=note)
    if reader is None:
        return Provenance("none", NO_CREDENTIALS, offline_note=note)
    try:
        with reader:
            return _describe(reader, anchors is not None, note)
    except Exception as exc:  # noqa: BLE001
        return Provenance("unreadable", f"Content Credentials could not be read: {_short(exc)}", offline_note=note)


def _describe(reader, have_anchors: bool, note: str) -> Provenance:
    import json

    store = json.loads(reader.json())
    manifests = store.get("manifests") or {}
    active = manifests.get(store.get("active_manifest")) or {}
    state = store.get("validation_state") or reader.get_validation_state()
    results = (store.get("validation_results") or {}).get("activeManifest") or {}
    failures = [f"{f.get('code')}: {_short(f.get('explanation', ''), 160)}" for f in results.get("failure") or []]
    if not results:
        failures += [f"{s.get('code')}: {_short(s.get('explanation', ''), 160)}"
                     for s in store.get("validation_status") or []]
    sig = active.get("signature_info") or {}
    signer = " / ".join(str(x) for x in (sig.get("issuer"), sig.get("common_name")) if x) or None
    gen = active.get("claim_generator_info") or []
    claim_generator = ", ".join(" ".join(str(g.get(k)) for k in ("name", "version") if g.get(k))
                                for g in gen if isinstance(g, dict)) or active.get("claim_generator")
    actions, ai = [], []
    for assertion in active.get("assertions") or []:
        if not str(assertion.get("label", "")).startswith("c2pa.actions"):
            continue
        for act in (assertion.get("data") or {}).get("actions") or []:
            agent = act.get("softwareAgent")
            agent = agent.get("name") if isinstance(agent, dict) else agent
            dst = act.get("digitalSourceType") or ""
            actions.append({"action": act.get("action"), "software_agent": agent, "digital_source_type": dst or None})
            kind = dst.rsplit("/", 1)[-1]
            if kind in AI_SOURCE_TYPES:
                ai.append(f"{act.get('action')}: {AI_SOURCE_TYPES[kind]} ({kind})"
                          + (f" by {agent}" if agent else ""))
    codes = " ".join(failures)
    if state == "Trusted":
        trust = "The signer's certificate chains to a local trust anchor."
    elif "signingCredential.untrusted" in codes or not have_anchors:
        trust = ("The signer is not on a trust list here (no public list is fetched): the signature shows the "
                 "file is unchanged since signing, not who the signer really is.")
    else:
        trust = "The signer was not found among the local trust anchors."
    return Provenance("present", f"Content Credentials found ({len(manifests)} manifest(s)); validation: {state}.",
                      validation_state=state, signer=signer, signed_at=sig.get("time"),
                      claim_generator=claim_generator, title=active.get("title"), actions=actions,
                      ai_generated=ai, failures=failures, trust=trust, offline_note=note, manifests=len(manifests))
