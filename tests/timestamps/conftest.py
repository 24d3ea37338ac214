import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SERVER = Path(__file__).with_name("_server.py")


class PacedServer:
    """Handle on the paced line server subprocess (see _server.py)."""

    def __init__(self, args=()):
        self.proc = subprocess.Popen(
            [sys.executable, str(SERVER), *args],
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.port = int(self.proc.stdout.readline())

    def sent(self):
        """Send times [(before, after), ...] of the last finished response."""
        return json.loads(self.proc.stdout.readline())["sent"]

    def close(self):
        self.proc.kill()
        self.proc.wait()


@pytest.fixture(scope="module")
def paced_server():
    s = PacedServer()
    yield s
    s.close()


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not found")
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ],
        check=True,
        capture_output=True,
    )
    s = PacedServer(["--tls", str(cert), str(key)])
    yield s
    s.close()
