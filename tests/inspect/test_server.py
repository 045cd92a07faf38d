"""The viewer's server, over HTTP: the API, and that nothing outside the run folder leaks."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import sys
from urllib.parse import quote

import pytest

from agentropy.inspect.server import ViewerServer
from agentropy.records.episodes import EpisodeLog
from tests.inspect.runs import HOSTILE_ID, IMG, SCRIPT, hostile_records

SECRET = "TOP-SECRET-OUTSIDE-THE-RUN"


@pytest.fixture(scope="module")
def server(tmp_path_factory, hostile_run):
    """The hostile run plus a secret file beside it, and symlinks that point at it."""
    root = tmp_path_factory.mktemp("srv")
    run = root / "run"
    shutil.copytree(hostile_run, run)
    (root / "secret.txt").write_text(SECRET)
    (root / "secret-dir").mkdir()
    (root / "secret-dir" / "s.txt").write_text(SECRET)
    os.symlink(root / "secret.txt", run / "outside.txt")
    os.symlink(root / "secret-dir", run / "outside-dir")
    os.symlink(run / "metrics.jsonl", run / "inside-link.jsonl")
    (run / "page.html").write_text("<script>alert(1)</script>")
    with ViewerServer(run) as srv:
        yield srv


def get(server, path: str, *, method: str = "GET", host: str | None = None):
    """Send ``path`` exactly as written (no client-side normalisation)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", host or f"127.0.0.1:{server.port}")
        conn.endheaders()
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def get_json(server, path: str):
    status, _, body = get(server, path)
    return status, json.loads(body)


def test_the_page_and_its_assets(server):
    status, headers, body = get(server, "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert b'<script src="/static/viewer.js"></script>' in body
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    status, headers, body = get(server, "/static/viewer.js")
    assert status == 200 and headers["Content-Type"].startswith("text/javascript")
    assert b"innerHTML" not in body  # every text goes in through textContent
    assert get(server, "/static/../run/episodes.jsonl")[0] == 404
    assert get(server, "/nothing")[0] == 404


def test_api(server):
    status, meta = get_json(server, "/api/meta")
    assert status == 200 and meta["episodes"] == 20 and meta["has_replay"] and meta["has_metrics"]
    assert meta["facets"]["task_type"] == {"coin": 12, "cookingworld": 8}
    status, page = get_json(server, "/api/episodes?won=true&limit=5")
    assert page["total"] == 9 and len(page["items"]) == 5
    status, page = get_json(server, "/api/episodes?text=" + quote("say <script>"))
    assert [i["episode_id"] for i in page["items"]] == [HOSTILE_ID]
    status, record = get_json(server, "/api/episode?id=" + quote(HOSTILE_ID, safe=""))
    assert status == 200 and record["episode_id"] == HOSTILE_ID
    assert record["turns"][0]["action"] == f"say {SCRIPT}"  # the text, unchanged
    assert IMG in record["turns"][0]["thinking"]
    status, group = get_json(server, "/api/group?iteration=0&group_id=1")
    assert group["divergence"] == 2 and len(group["members"]) == 4
    status, metrics = get_json(server, "/api/metrics")
    assert "train/success" in metrics["default_keys"] and len(metrics["rows"]) == 2
    status, replay = get_json(server, "/api/replay?iteration=0")
    assert replay["iteration"] == 0 and replay["rows"][0]["known"] is True
    status, config = get_json(server, "/api/config")
    assert SCRIPT in config["text"]
    status, files = get_json(server, "/api/files")
    listed = {f["path"] for f in files["files"]}
    assert {"episodes.jsonl", ".hydra/config.yaml", "inside-link.jsonl"} <= listed
    assert not any("outside" in p for p in listed)


@pytest.mark.parametrize(("path", "status"), [
    ("/api/episode?id=nope", 404),
    ("/api/episodes?iteration=three", 400),
    ("/api/episodes?sort=__proto__", 400),
    ("/api/group?group_id=x", 400),
    ("/api/unknown", 404),
])
def test_api_errors_are_clean(server, path, status):
    got, body = get_json(server, path)
    assert got == status and body["error"]


def test_run_files_are_served_as_text_or_downloads(server):
    status, headers, body = get(server, "/files/.hydra/config.yaml")
    assert status == 200 and headers["Content-Type"] == "text/plain; charset=utf-8"
    assert SCRIPT.encode() in body
    status, headers, body = get(server, "/files/episodes.jsonl")
    assert status == 200 and body.count(b"\n") == 20
    status, headers, body = get(server, "/files/page.html")  # never rendered as a page
    assert status == 200 and headers["Content-Type"] == "application/octet-stream"
    assert headers["Content-Disposition"] == "attachment"
    assert get(server, "/files/inside-link.jsonl")[0] == 200  # a symlink that stays inside
    status, headers, _ = get(server, "/files/episodes.jsonl", method="HEAD")
    assert status == 200 and int(headers["Content-Length"]) > 0


@pytest.mark.parametrize("path", [
    "/files/../secret.txt",
    "/files/../../../../etc/passwd",
    "/files/%2e%2e/secret.txt",
    "/files/%2E%2E%2Fsecret.txt",
    "/files/..%2fsecret.txt",
    "/files/.hydra/../../secret.txt",
    "/files/./episodes.jsonl",
    "/files//etc/passwd",
    "/files/%2fetc%2fpasswd",
    "/files/..%5csecret.txt",
    "/files/outside.txt",
    "/files/outside-dir/s.txt",
    "/files/episodes.jsonl%00.txt",
    "/files/",
])
def test_nothing_outside_the_run_folder_is_served(server, path):
    status, _, body = get(server, path)
    assert status == 403, (path, status)
    assert SECRET.encode() not in body and b"root:" not in body


@pytest.mark.parametrize("path", ["/../secret.txt", "/files/%252e%252e/secret.txt",
                                  "/files/nothing.txt", "/files/%ff"])
def test_other_odd_paths_are_not_found_or_refused(server, path):
    status, _, body = get(server, path)
    assert status in (400, 403, 404) and SECRET.encode() not in body


def test_only_loopback_host_names_and_reads(server):
    assert get(server, "/api/meta", host="evil.example:80")[0] == 403
    assert get(server, "/api/meta", host=f"localhost:{server.port}")[0] == 200
    assert get(server, "/api/meta", method="POST")[0] == 405
    assert get(server, "/files/episodes.jsonl", method="DELETE")[0] == 405


def test_a_live_run_is_followed(tmp_path):
    records = hostile_records()
    with EpisodeLog(tmp_path / "episodes.jsonl") as log:
        log.append(records[0])
    with ViewerServer(tmp_path) as srv:
        assert get_json(srv, "/api/meta")[1]["episodes"] == 1
        with EpisodeLog(tmp_path / "episodes.jsonl") as log:
            log.append(records[1])
        assert get_json(srv, "/api/episodes")[1]["total"] == 2
        assert get_json(srv, "/api/meta")[1]["has_replay"] is False


def test_the_view_command_serves_on_loopback(hostile_run):
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentropy.cli", "view", str(hostile_run), "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        line = proc.stdout.readline()
        assert "20 episodes" in line and "http://127.0.0.1:" in line, proc.stderr.read()
        port = int(line.split("http://127.0.0.1:")[1].split("/")[0])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/api/meta")
        assert json.loads(conn.getresponse().read())["run_name"] == "hostile"
        conn.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
