"""Downloading and importing encoder weights into the torch cache, against a local HTTP server."""

from __future__ import annotations

import hashlib
import os
import signal
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest

from segstudio.cli.main import main
from segstudio.errors import Cancelled, SegstudioError
from segstudio.model import weights
from segstudio.model.weights_download import CHUNK, download_weights, import_weights

PAYLOAD = os.urandom(5 * CHUNK + 123)  # several chunks, the last one short


class Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """TORCH_HOME in tmp_path (the real cache is never touched); its checkpoints folder."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("SEGSTUDIO_WEIGHTS_URL", raising=False)
    return tmp_path / "torch" / "hub" / "checkpoints"


def publish(monkeypatch, arch: str, data: bytes, prefix: str | None = None) -> str:
    """Make torchvision's published file name for `arch` carry the SHA-256 prefix of `data`
    (or `prefix`); returns that name."""
    prefix = prefix if prefix is not None else hashlib.sha256(data).hexdigest()[:8]
    name = f"{arch}-{prefix}.pth"
    monkeypatch.setitem(weights._WEIGHTS, arch, SimpleNamespace(
        url=f"https://download.invalid/models/{name}", meta={"_file_size": len(data) / 2**20}))
    return name


@pytest.fixture
def server(tmp_path):
    """(base URL, served folder) of an HTTP server on localhost."""
    root = tmp_path / "served"
    root.mkdir()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/models", root
    httpd.shutdown()
    httpd.server_close()
    thread.join(10)


def serve(server, name: str, data: bytes) -> str:
    base, root = server
    (root / "models").mkdir(exist_ok=True)
    (root / "models" / name).write_bytes(data)
    return base


def test_download_lands_in_the_cache_atomically_with_progress(cache, server, monkeypatch):
    name = publish(monkeypatch, "resnet18", PAYLOAD)
    base = serve(server, name, PAYLOAD)
    assert not weights.pretrained_available("resnet18")
    calls = []
    path = download_weights("resnet18", progress=lambda done, total: calls.append((done, total)), url=base)
    assert path == cache / name and path.read_bytes() == PAYLOAD
    assert weights.pretrained_available("resnet18")
    assert sorted(os.listdir(cache)) == [name]  # no temporary file left
    dones = [d for d, _ in calls]
    assert len(calls) >= 5 and dones == sorted(set(dones)) and dones[-1] == len(PAYLOAD)
    assert {t for _, t in calls} == {len(PAYLOAD)}


def test_wrong_hash_keeps_nothing(cache, server, monkeypatch):
    name = publish(monkeypatch, "resnet34", PAYLOAD, prefix="0123abcd")
    base = serve(server, name, PAYLOAD)
    with pytest.raises(SegstudioError, match="checksum") as err:
        download_weights("resnet34", url=base)
    assert "0123abcd" in str(err.value) and hashlib.sha256(PAYLOAD).hexdigest()[:8] in str(err.value)
    assert not weights.pretrained_available("resnet34") and os.listdir(cache) == []


def test_cancel_midway_keeps_nothing(cache, server, monkeypatch):
    name = publish(monkeypatch, "resnet18", PAYLOAD)
    base = serve(server, name, PAYLOAD)
    calls = []
    with pytest.raises(Cancelled):
        download_weights("resnet18", progress=lambda d, t: calls.append(d), should_stop=lambda: len(calls) >= 2,
                         url=base)
    assert calls == [CHUNK, 2 * CHUNK]  # stopped after the second chunk
    assert os.listdir(cache) == []


def test_network_and_http_errors_are_clear(cache, server, monkeypatch):
    name = publish(monkeypatch, "resnet18", PAYLOAD)
    base, _ = server
    with pytest.raises(SegstudioError, match="HTTP 404"):
        download_weights("resnet18", url=base)  # nothing served under that name
    with pytest.raises(SegstudioError, match="Cannot reach 127.0.0.1:9 .*weights import resnet18"):
        download_weights("resnet18", url="http://127.0.0.1:9/models")  # the discard port: refused
    assert not cache.exists() or os.listdir(cache) == []


def test_unwritable_cache_is_clear(tmp_path, server, monkeypatch):
    (tmp_path / "torch").mkdir()
    (tmp_path / "torch" / "hub").write_text("a file where the cache folder should be")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    name = publish(monkeypatch, "resnet18", PAYLOAD)
    base = serve(server, name, PAYLOAD)
    with pytest.raises(SegstudioError, match="Cannot write the weights into .*TORCH_HOME"):
        download_weights("resnet18", url=base)


def test_cli_download_list_and_errors(cache, server, monkeypatch, capsys):
    name = publish(monkeypatch, "resnet18", PAYLOAD)
    base = serve(server, name, PAYLOAD)
    monkeypatch.setenv("SEGSTUDIO_WEIGHTS_URL", base)
    assert main(["weights", "list"]) == 0
    assert "resnet18  not cached" in capsys.readouterr().out
    assert main(["weights", "download", "resnet18"]) == 0
    out, err = capsys.readouterr()
    assert f"{base}/{name}" in err and "100 %" in err and str(cache / name) in out
    assert (cache / name).read_bytes() == PAYLOAD
    assert main(["weights", "list"]) == 0
    assert f"resnet18  cached      {cache / name}" in capsys.readouterr().out
    assert main(["weights", "download", "resnet18"]) == 0  # cached: nothing to do
    assert "already in the cache" in capsys.readouterr().out
    publish(monkeypatch, "resnet34", b"x")  # not served
    assert main(["weights", "download", "resnet34"]) == 1
    assert "error: The server answered HTTP 404" in capsys.readouterr().err


def test_cli_ctrl_c_cancels_cleanly(cache, server, monkeypatch, capsys):
    from segstudio.cli import weights as cli_weights

    name = publish(monkeypatch, "resnet18", PAYLOAD)
    monkeypatch.setenv("SEGSTUDIO_WEIGHTS_URL", serve(server, name, PAYLOAD))
    pressed = []

    def ctrl_c_once(self, done, total):
        if not pressed:
            pressed.append(done)
            os.kill(os.getpid(), signal.SIGINT)
    monkeypatch.setattr(cli_weights.Progress, "__call__", ctrl_c_once)
    previous = signal.getsignal(signal.SIGINT)
    assert main(["weights", "download", "resnet18"]) == 130  # one Ctrl-C after the first chunk stops it
    assert "cancelled; nothing was written" in capsys.readouterr().err and os.listdir(cache) == []
    assert signal.getsignal(signal.SIGINT) is previous  # the handler is given back


@pytest.fixture(scope="module")
def resnet18_file(tmp_path_factory) -> Path:
    import torch
    from torchvision import models

    path = tmp_path_factory.mktemp("weights") / "my-resnet18.pth"
    torch.save(models.resnet18(weights=None).state_dict(), path)
    return path


def test_import_published_file(cache, resnet18_file, monkeypatch, capsys):
    data = resnet18_file.read_bytes()
    name = publish(monkeypatch, "resnet18", data)
    assert main(["weights", "import", "resnet18", str(resnet18_file)]) == 0
    assert (cache / name).read_bytes() == data and sorted(os.listdir(cache)) == [name]
    assert weights.pretrained_available("resnet18")


def test_import_refuses_other_files(cache, resnet18_file, tmp_path, monkeypatch, capsys):
    publish(monkeypatch, "resnet18", b"the published file")  # another hash than the user's file
    with pytest.raises(SegstudioError, match="checksum.*weights file instead.*--weights"):
        import_weights("resnet18", resnet18_file)
    with pytest.raises(SegstudioError, match="does not fit resnet34"):
        import_weights("resnet34", resnet18_file)
    junk = tmp_path / "junk.pth"
    junk.write_text("not weights")
    with pytest.raises(SegstudioError, match="not a PyTorch weights file"):
        import_weights("resnet18", junk)
    assert main(["weights", "import", "resnet18", str(tmp_path / "missing.pth")]) == 1
    assert "is not a file" in capsys.readouterr().err
    assert not cache.exists() or os.listdir(cache) == []
