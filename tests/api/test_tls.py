"""HTTPS: with a certificate and key in the configuration the service speaks TLS only."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import httpx
import pytest

StartService = Callable[..., AbstractContextManager[str]]


def _self_signed(directory: Path) -> tuple[Path, Path]:
    certificate, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(certificate),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return certificate, key


@pytest.mark.skipif(shutil.which("openssl") is None, reason="the openssl command is needed to make a test certificate")
def test_the_service_serves_https_with_the_configured_certificate(start_service: StartService, tmp_path: Path) -> None:
    certificate, key = _self_signed(tmp_path)
    with start_service(tls_certfile=certificate, tls_keyfile=key) as url:
        assert url.startswith("https://")
        with httpx.Client(verify=ssl.create_default_context(cafile=str(certificate)), timeout=30) as client:
            assert b"<vosi:available>true" in client.get(f"{url}/availability").content
            answer = client.get(f"{url}/sync", params={"LANG": "ADQL", "QUERY": "SELECT TOP 1 ra FROM dr.Object"})
            assert answer.status_code == 200
        with pytest.raises(httpx.ConnectError):  # the certificate is not trusted by default
            httpx.get(f"{url}/availability", timeout=30)
        with pytest.raises(httpx.HTTPError):  # plain HTTP on the TLS port gets no TAP answer
            httpx.get(url.replace("https://", "http://") + "/availability", timeout=30).raise_for_status()
