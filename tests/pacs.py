"""A real PACS for the tests: Debian's Orthanc on 127.0.0.1, free ports, a temporary storage folder and a generated
configuration; stopped (terminate, wait, kill) whatever happens. Skips cleanly when Orthanc is not installed."""
from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from medpipe.dicom.send import Node

PLUGIN_DIRS = (Path("/usr/share/orthanc/plugins"), Path("/usr/lib/orthanc"))
PLUGIN_FILES = {"gdcm": "libOrthancGdcm.so", "dicomweb": "libOrthancDicomWeb.so"}
START_TIMEOUT = 30


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class OrthancError(AssertionError):
    """Orthanc answered an HTTP error: the message carries its status and its own words."""

    def __init__(self, method: str, path: str, status: int, body: str):
        self.status, self.body = status, body
        super().__init__(f"Orthanc {method} {path} -> HTTP {status}: {body.strip()[:300]}")


@dataclass
class Orthanc:
    url: str
    node: Node
    log: Path

    def log_mark(self) -> int:
        return self.log.stat().st_size

    def log_errors(self, mark: int) -> list[str]:
        """Orthanc's own error lines (E...) written since `mark`, without the timestamp prefix."""
        with open(self.log, "rb") as f:
            f.seek(mark)
            text = f.read().decode("utf-8", "replace")
        return [line.split("] ", 1)[-1] for line in text.splitlines() if line.startswith("E")]

    def request(self, method: str, path: str, data: bytes | None = None, accept: str | None = None) -> bytes:
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if accept:
            req.add_header("Accept", accept)
        if data is not None:
            req.add_header("Content-Type", "application/dicom")
        try:
            with urllib.request.urlopen(req, timeout=60) as answer:
                return answer.read()
        except urllib.error.HTTPError as exc:
            raise OrthancError(method, path, exc.code, exc.read().decode("utf-8", "replace")) from None

    def json(self, method: str, path: str, data: bytes | None = None):
        return json.loads(self.request(method, path, data))

    def upload(self, dicom: bytes) -> str:
        """POST /instances: the stored instance's Orthanc ID."""
        return self.json("POST", "/instances", dicom)["ID"]

    def file(self, instance: str) -> bytes:
        return self.request("GET", f"/instances/{instance}/file")

    def delete(self, instance: str) -> None:
        self.request("DELETE", f"/instances/{instance}")

    def instances(self) -> list[str]:
        return self.json("GET", "/instances")

    def clear(self) -> None:
        for instance in self.instances():
            self.delete(instance)

    def find(self, sop_instance_uid: str) -> str | None:
        """Orthanc ID of the instance with this SOP Instance UID, or None."""
        found = self.json("POST", "/tools/lookup", sop_instance_uid.encode())
        return next((f["ID"] for f in found if f["Type"] == "Instance"), None)

    def decode_frame(self, instance: str, signed: bool, colour: bool = False, frame: int = 0) -> np.ndarray:
        """Orthanc's own decoding of a frame as PAM (raw, big-endian): /frames/N/image-int16|uint16 for grey;
        for RGB /frames/N/preview, which Orthanc renders unchanged (image-uint16 answers 415 for colour)."""
        kind = "preview" if colour else "image-int16" if signed else "image-uint16"
        pam = self.request("GET", f"/instances/{instance}/frames/{frame}/{kind}",
                           accept="image/x-portable-arbitrarymap")
        return parse_pam(pam, signed)


def parse_pam(data: bytes, signed: bool) -> np.ndarray:
    """Netpbm PAM: 'P7' header lines up to ENDHDR, then samples most significant byte first."""
    end = data.index(b"ENDHDR\n") + len(b"ENDHDR\n")
    fields = dict(re.findall(rb"^(WIDTH|HEIGHT|DEPTH|MAXVAL)\s+(\d+)", data[:end], re.M))
    width, height, depth, maxval = (int(fields[k]) for k in (b"WIDTH", b"HEIGHT", b"DEPTH", b"MAXVAL"))
    dtype = np.dtype((">i2" if signed else ">u2") if maxval > 255 else "u1")
    samples = np.frombuffer(data[end:end + width * height * depth * dtype.itemsize], dtype)
    return samples.reshape((height, width, depth) if depth > 1 else (height, width)).astype(np.int64)


def _plugin_paths(names: tuple[str, ...]) -> list[str]:
    paths = []
    for name in names:
        found = [d / PLUGIN_FILES[name] for d in PLUGIN_DIRS if (d / PLUGIN_FILES[name]).exists()]
        if not found:
            pytest.skip(f"the Orthanc {name} plugin is not installed (Debian package orthanc-{name})")
        paths.append(str(found[0]))
    return paths


@contextmanager
def orthanc(tmp_path: Path, plugins: tuple[str, ...] = (), extra: dict | None = None):
    """Run Orthanc for the duration of the block; yields an Orthanc with REST helpers and its C-STORE node.
    ``extra`` is merged into the generated configuration (DICOMweb root, DICOM modalities, ...)."""
    exe = shutil.which("Orthanc")
    if exe is None:
        pytest.skip("Orthanc is not installed (Debian package orthanc); .ci/run installs it")
    folder = tmp_path / "orthanc"
    folder.mkdir(parents=True, exist_ok=True)
    http_port, dicom_port = free_port(), free_port()
    config = {
        "Name": "medpipe-test", "StorageDirectory": str(folder / "storage"), "IndexDirectory": str(folder / "index"),
        "HttpPort": http_port, "DicomPort": dicom_port, "DicomAet": "ORTHANC", "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False, "AcceptedTransferSyntaxes": ["1.2.840.10008.*"],
        "DicomCheckCalledAet": True, "StorageCompression": False, "Plugins": _plugin_paths(plugins),
        "HttpServerEnabled": True, "DicomServerEnabled": True, "ConcurrentJobs": 1, "HttpThreadsCount": 4,
    }
    if "gdcm" in plugins:
        config["Gdcm"] = {"Enable": True, "Throttling": 1}
    if "dicomweb" in plugins:
        config["DicomWeb"] = {"Enable": True, "Root": "/dicom-web/", "EnableWado": False}
    config.update(extra or {})
    (folder / "config.json").write_text(json.dumps(config, indent=1))
    log = folder / "orthanc.log"
    with open(log, "wb") as sink:
        process = subprocess.Popen([exe, "config.json"], cwd=folder, stdout=sink, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
    try:
        server = Orthanc(f"http://127.0.0.1:{http_port}", Node("ORTHANC", "127.0.0.1", dicom_port), log)
        _wait_until_up(server, process)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


def _wait_until_up(server: Orthanc, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"Orthanc exited with {process.returncode}: "
                                 + server.log.read_text(errors="replace")[-800:])
        try:
            server.json("GET", "/system")
            if _port_open(server.node.port):
                return
        except (OSError, OrthancError):
            pass
        time.sleep(0.2)
    raise AssertionError(f"Orthanc did not answer /system within {START_TIMEOUT} s: "
                         + server.log.read_text(errors="replace")[-800:])


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0
