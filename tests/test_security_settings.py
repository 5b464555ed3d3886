"""Security settings that must stay true as the project grows.

* ``.streamlit/config.toml``: listens on 127.0.0.1, XSRF protection on, headless, no usage stats,
  an upload size cap (``server.maxUploadSize``) that is the cap the dashboard reports and the
  server enforces; the pixel cap (``pipeline.images.DEFAULT_MAX_PIXELS``) is what the check path
  uses, so a small file that declares a huge image is refused before decoding.
* The real server started with no command-line flags at all listens on 127.0.0.1 only and refuses
  an upload request that carries no XSRF token.
* Models load in Keras safe mode and nothing a user can supply is unpickled: no
  ``safe_mode=False``, ``pickle``/``joblib``/``read_pickle`` loads, ``allow_pickle=True`` or
  ``enable_unsafe_deserialization`` in ``pipeline/`` and ``dashboard/`` (checked on the syntax tree,
  so comments and docstrings do not count).
* A ``.keras`` file with a Lambda layer (arbitrary code) is refused by ``pipeline.models.load_model``.
"""
from __future__ import annotations

import ast
import inspect
import json
import socket
import subprocess
import sys
import tomllib
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import REPO
from server import StreamlitServer

CONFIG = REPO / ".streamlit" / "config.toml"
SOURCE_DIRS = ("pipeline", "dashboard")


@pytest.fixture(scope="module")
def config() -> dict:
    return tomllib.loads(CONFIG.read_text())


# ---------------------------------------------------------------------------------- config file


def test_config_file_settings(config):
    server = config["server"]
    assert server.get("address") == "127.0.0.1", "the dashboard must listen on loopback only by default"
    assert server.get("enableXsrfProtection") is True, "XSRF protection must stay on"
    assert server.get("headless") is True
    assert config.get("browser", {}).get("gatherUsageStats") is False
    # CORS off while XSRF is on makes Streamlit override one of them: leave CORS at its default (on)
    assert server.get("enableCORS", True) is True
    cap = server.get("maxUploadSize")
    assert isinstance(cap, int) and 1 <= cap < 200, f"server.maxUploadSize must be a cap below Streamlit's 200 MB, got {cap!r}"
    assert "fileWatcherType" not in server or server["fileWatcherType"] in ("none", "auto", "poll", "watchdog")


def test_upload_cap_is_the_one_the_dashboard_uses(config):
    """Streamlit (run from the repository root, as the README says) reads the cap from the config
    file; ``dashboard.common.upload_limit_mb()`` (shown on the Check and Explain pages) reports it."""
    code = ("import json; from dashboard import common; import streamlit as st; "
            "print(json.dumps([st.get_option('server.maxUploadSize'), common.upload_limit_mb(), "
            "st.get_option('server.address'), st.get_option('server.enableXsrfProtection')]))")
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("STREAMLIT_")}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=120, check=True).stdout.strip().splitlines()[-1]
    option, reported, address, xsrf = json.loads(out)
    assert option == reported == config["server"]["maxUploadSize"]
    assert address == "127.0.0.1" and xsrf is True
    check_page = (REPO / "dashboard" / "app_pages" / "check.py").read_text()
    assert "upload_limit_mb()" in check_page, "the check page should state the upload cap it runs with"


def test_pixel_cap_applies_to_uploads(tmp_path, config):
    """The check path decodes with the default pixel cap, and nothing in the dashboard raises it:
    a file well under the upload cap that declares 900 million pixels is refused unread."""
    from pipeline import checking, images

    assert inspect.signature(checking.check_files).parameters["max_pixels"].default == images.DEFAULT_MAX_PIXELS
    for path in (REPO / "dashboard").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.keyword) and node.arg == "max_pixels":
                assert "DEFAULT_MAX_PIXELS" in ast.unparse(node.value), \
                    f"{path.relative_to(REPO)}:{node.value.lineno} overrides the pixel cap: {ast.unparse(node)}"
    import bad_inputs

    bomb = bad_inputs.crafted_png(30000, 30000, bit_depth=1, rows=b"\x00" * 3751 * 4)
    assert len(bomb) < config["server"]["maxUploadSize"] * 2**20
    [res] = checking.check_files([("bomb.png", bomb)], {}, crop_faces=False)
    assert not res.ok and "over the limit of 40,000,000" in res.error, res.error


# ---------------------------------------------------------------------------------- the real server


def _listening_addresses(port: int) -> list[str]:
    """Local addresses of LISTEN sockets on ``port`` from /proc/net/tcp and tcp6."""
    found = []
    for table, v6 in (("/proc/net/tcp", False), ("/proc/net/tcp6", True)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state = fields[1], fields[3]
            addr_hex, port_hex = local.split(":")
            if state != "0A" or int(port_hex, 16) != port:
                continue
            raw = bytes.fromhex(addr_hex)
            if v6:  # four little-endian 32-bit words
                raw = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
                found.append(socket.inet_ntop(socket.AF_INET6, raw))
            else:
                found.append(socket.inet_ntop(socket.AF_INET, raw[::-1]))
    return found


def _other_local_ips() -> list[str]:
    try:
        out = subprocess.run(["hostname", "-I"], capture_output=True, text=True, timeout=10).stdout.split()
    except (OSError, subprocess.SubprocessError):
        out = []
    return [ip for ip in out if ip not in ("127.0.0.1", "::1") and ":" not in ip]


def test_server_started_without_flags_listens_on_loopback_only(tmp_path):
    """The dashboard server (``python -m dashboard.serve``: ``streamlit run dashboard/app.py``) with no flags (the
    port comes from STREAMLIT_SERVER_PORT so parallel runs do not collide): every listening socket is 127.0.0.1,
    other addresses refuse."""
    empty = tmp_path / "artifacts"
    empty.mkdir()
    with StreamlitServer(empty, flags=False, log_path=tmp_path / "streamlit.log") as server:
        assert "--server.address" not in " ".join(server.command())
        addrs = _listening_addresses(server.port)
        try:
            ss = subprocess.run(["ss", "-ltnp"], capture_output=True, text=True, timeout=10).stdout
            ss_lines = [line for line in ss.splitlines() if f":{server.port} " in line]
        except (OSError, subprocess.SubprocessError):
            ss_lines = []
        others = _other_local_ips()
        print(f"\nlistening on port {server.port}: {addrs}; ss: {ss_lines}; refused on {others}")
        assert addrs and set(addrs) == {"127.0.0.1"}, f"server listens on {addrs}, expected only 127.0.0.1"
        for ip in others:
            with socket.socket() as s:
                s.settimeout(3)
                assert s.connect_ex((ip, server.port)) != 0, f"port {server.port} answers on {ip}"

        # XSRF: the server hands out the token cookie; an upload without the token is refused (403),
        # the same request with the token gets past the XSRF check (then fails on the fake session: 400)
        with urllib.request.urlopen(server.url + "/_stcore/health", timeout=30) as resp:
            cookies = resp.headers.get_all("Set-Cookie") or []
        xsrf = [c.split(";", 1)[0].split("=", 1)[1] for c in cookies if c.startswith("_streamlit_xsrf=")]
        assert xsrf, f"no _streamlit_xsrf cookie from the server: {cookies}"

        def put(headers: dict) -> int:
            req = urllib.request.Request(f"{server.url}/_stcore/upload_file/no-such-session/some-file", method="PUT",
                                         data=b"x" * 10, headers={"Content-Type": "application/octet-stream", **headers})
            try:
                with urllib.request.urlopen(req, timeout=30) as resp:
                    return resp.status
            except urllib.error.HTTPError as err:
                return err.code

        assert put({}) == 403, "an upload without an XSRF token must be refused"
        token = xsrf[0].strip('"')
        assert put({"Cookie": f"_streamlit_xsrf={xsrf[0]}", "X-Xsrftoken": token}) == 400
        assert server.alive()


# ---------------------------------------------------------------------------------- safe loading


def _dotted(node) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts))


UNSAFE_CALLS = {"pickle.load", "pickle.loads", "cPickle.load", "cPickle.loads", "joblib.load", "pd.read_pickle",
                "pandas.read_pickle", "dill.load", "dill.loads", "cloudpickle.load", "cloudpickle.loads",
                "marshal.loads", "torch.load", "shelve.open", "enable_unsafe_deserialization"}


def _unsafe_uses(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    rel = path.relative_to(REPO) if path.is_relative_to(REPO) else path
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
            for name in names:
                if name.split(".")[0] in ("pickle", "cPickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"):
                    found.append(f"{rel}:{node.lineno} imports {name}")
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        kw = {k.arg: k.value for k in node.keywords if k.arg}
        if name in UNSAFE_CALLS or name.split(".")[-1] == "enable_unsafe_deserialization":
            found.append(f"{rel}:{node.lineno} calls {name}")
        if "safe_mode" in kw and not (isinstance(kw["safe_mode"], ast.Constant) and kw["safe_mode"].value is True):
            found.append(f"{rel}:{node.lineno} {name}(safe_mode={ast.unparse(kw['safe_mode'])})")
        if "allow_pickle" in kw and not (isinstance(kw["allow_pickle"], ast.Constant) and kw["allow_pickle"].value is False):
            found.append(f"{rel}:{node.lineno} {name}(allow_pickle={ast.unparse(kw['allow_pickle'])})")
        # a Keras loader called directly must say safe_mode=True (pipeline.models.load_model does)
        if name.split(".")[-1] == "load_model" and name.split(".")[0] in ("keras", "tf", "tensorflow") \
                and "safe_mode" not in kw:
            found.append(f"{rel}:{node.lineno} {name}(...) without safe_mode=True")
    return found


# The one reviewed exception: the restricted unpickler of PyTorch weight files (find_class allows only the
# tensor-rebuild functions; tests/test_torch_weights.py feeds it malicious files). Nothing else may import pickle.
RESTRICTED_UNPICKLERS = {"pipeline/torch_weights.py": ["imports pickle"]}


def test_no_unsafe_deserialization_in_sources():
    files = [p for d in SOURCE_DIRS for p in (REPO / d).rglob("*.py")]
    assert len(files) > 10
    found = [hit for p in files for hit in _unsafe_uses(p)
             if not any(hit.startswith(f"{rel}:") and hit.endswith(what)
                        for rel, whats in RESTRICTED_UNPICKLERS.items() for what in whats)]
    assert not found, "unsafe loading in the sources:\n" + "\n".join(found)
    from pipeline import torch_weights

    assert issubclass(torch_weights._RestrictedUnpickler, __import__("pickle").Unpickler)


def test_unsafe_use_detector_catches_the_patterns(tmp_path):
    """The checker above finds what it is meant to find (and ignores comments and docstrings)."""
    sample = tmp_path / "unsafe_sample.py"
    sample.write_text('"""pickle.load(f) in a docstring is fine"""\n'
                      "import pickle\nimport numpy as np\nimport keras\n"
                      "# keras.models.load_model(p, safe_mode=False) in a comment is fine\n"
                      "a = pickle.loads(b'')\nb = np.load('x.npy', allow_pickle=True)\n"
                      "c = keras.models.load_model('m.keras', safe_mode=False)\n"
                      "d = keras.saving.load_model('m.keras')\nkeras.config.enable_unsafe_deserialization()\n")
    hits = _unsafe_uses(sample)
    assert len(hits) == 6, hits


def test_lambda_layer_model_is_refused(tmp_path):
    import keras

    from pipeline.models import load_model

    inp = keras.Input((8, 8, 3))
    x = keras.layers.Lambda(lambda t: t * 2.0, name="arbitrary_code")(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(1, activation="sigmoid", name="p_fake")(x)
    path = tmp_path / "model.keras"
    keras.Model(inp, out, name="baseline_cnn").save(path)
    with pytest.raises(ValueError, match="(?i)lambda|unsafe|safe_mode"):
        load_model(path)
    # ValueError is among what dashboard.common.run_models turns into a message instead of a traceback
    tree = ast.parse((REPO / "dashboard" / "common.py").read_text())
    run_models = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "run_models")
    assert "ValueError" in ast.unparse(run_models)
