"""gatewayctl's handling of the master key and its URL: the key never on the command line (env or
file), never sent along a redirect to another host, https unless the host is local; global
options before or after the command. Against real local HTTP servers ('127.0.0.1' and
'localhost' are different hosts to the client, as two hosts on a network would be)."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from gatewayctl._cli import UsageError, base_url, main

KEY = "master-key-under-test"
STATE = {
    "instance": {"instance": "i-1", "regions": {}},
    "shared": [{"key": "region/eastus2", "state": "closed"}],
}


class _Server:
    """One HTTP server on 127.0.0.1: records each request's path and headers; answers JSON, or a
    redirect to ``redirect_to`` for paths under /api/ops/."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, str]]] = []
        self.redirect_to: str | None = None
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.seen.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
                if outer.redirect_to and self.path.startswith("/api/ops/"):
                    self.send_response(302)
                    self.send_header("location", outer.redirect_to)
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                body = json.dumps(STATE).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def keys_seen(self) -> list[str | None]:
        return [headers.get("x-functions-key") for _, headers in self.seen]

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture
def servers() -> Iterator[tuple[_Server, _Server]]:
    a, b = _Server(), _Server()
    try:
        yield a, b
    finally:
        a.close()
        b.close()


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GATEWAY_URL", "GATEWAY_MASTER_KEY", "GATEWAY_MASTER_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)


def test_the_key_comes_from_the_environment(servers, monkeypatch, capsys):
    a, _ = servers
    monkeypatch.setenv("GATEWAY_MASTER_KEY", KEY)
    assert main(["--url", f"http://127.0.0.1:{a.port}/api", "state"]) == 0
    assert a.keys_seen() == [KEY]


def test_the_key_comes_from_a_file_or_stdin(servers, monkeypatch, tmp_path, capsys):
    a, _ = servers
    monkeypatch.setenv("GATEWAY_MASTER_KEY", "not-this-one")
    key_file = tmp_path / "master.key"
    key_file.write_text(KEY + "\n")
    assert (
        main(["--url", f"http://127.0.0.1:{a.port}/api", "--key-file", str(key_file), "state"]) == 0
    )
    monkeypatch.setenv("GATEWAY_MASTER_KEY_FILE", str(key_file))
    assert main(["--url", f"http://127.0.0.1:{a.port}/api", "state"]) == 0
    monkeypatch.delenv("GATEWAY_MASTER_KEY_FILE")
    monkeypatch.setattr("sys.stdin", io.StringIO(KEY + "\n"))
    assert main(["--url", f"http://127.0.0.1:{a.port}/api", "--key-file", "-", "state"]) == 0
    assert a.keys_seen() == [KEY, KEY, KEY]
    with pytest.raises(SystemExit) as exc:
        main(
            ["--url", f"http://127.0.0.1:{a.port}/api", "--key-file", str(tmp_path / "no"), "state"]
        )
    assert exc.value.code == 2
    assert "cannot read the key file" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["--key", KEY, "state"],
        [f"--key={KEY}", "state"],
        ["state", "--key", KEY],
    ],
)
def test_a_key_on_the_command_line_is_refused_with_a_clear_error(servers, capsys, argv):
    a, _ = servers
    with pytest.raises(SystemExit) as exc:
        main(["--url", f"http://127.0.0.1:{a.port}/api", *argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--key is not accepted" in err and "GATEWAY_MASTER_KEY" in err
    assert KEY not in err
    assert a.seen == []  # nothing was sent


def test_the_key_is_not_sent_along_a_redirect_to_another_host(servers, monkeypatch, capsys):
    a, b = servers
    monkeypatch.setenv("GATEWAY_MASTER_KEY", KEY)
    a.redirect_to = f"http://localhost:{b.port}/api/ops/state"  # another host (and port)
    assert main(["--url", f"http://127.0.0.1:{a.port}/api", "--json", "state"]) == 0
    assert a.keys_seen() == [KEY]
    assert [path for path, _ in b.seen] == ["/api/ops/state"]
    assert b.keys_seen() == [None]
    assert json.loads(capsys.readouterr().out)["shared"][0]["key"] == "region/eastus2"


def test_the_key_goes_along_a_redirect_on_the_same_host(servers, monkeypatch, capsys):
    a, _ = servers
    monkeypatch.setenv("GATEWAY_MASTER_KEY", KEY)
    a.redirect_to = f"http://127.0.0.1:{a.port}/moved/ops/state"
    assert main(["--url", f"http://127.0.0.1:{a.port}/api", "state"]) == 0
    assert [path for path, _ in a.seen] == ["/api/ops/state", "/moved/ops/state"]
    assert a.keys_seen() == [KEY, KEY]


@pytest.mark.parametrize(
    ("url", "refused"),
    [
        ("http://example.com/api", True),
        ("http://10.0.0.4:7071/api", True),
        ("ftp://example.com/api", True),
        ("http://localhost:1/api", False),
        ("http://127.0.0.1:1/api", False),
        ("http://[::1]:1/api", False),
        ("https://127.0.0.1:1/api", False),
        ("127.0.0.1:1/api", False),  # no scheme: https
    ],
)
def test_https_unless_the_host_is_local(url, refused, monkeypatch, capsys):
    monkeypatch.setenv("GATEWAY_MASTER_KEY", KEY)
    if refused:
        with pytest.raises(SystemExit) as exc:
            main(["--url", url, "state"])
        assert exc.value.code == 2
        assert "http" in capsys.readouterr().err
    else:  # accepted, then nothing listens there: exit 1 with "cannot reach"
        assert main(["--url", url, "state"]) == 1
        err = capsys.readouterr().err
        assert "cannot reach" in err
        if "://" not in url:
            assert "https://127.0.0.1:1/api" in err


def test_allow_http_lets_a_trusted_network_through():
    assert base_url("http://example.com/api", allow_http=True) == "http://example.com/api"
    assert base_url("example.com/api") == "https://example.com/api"
    with pytest.raises(UsageError):
        base_url("http://example.com/api")


@pytest.mark.parametrize(
    "argv",
    [
        ["--json", "state"],
        ["state", "--json"],
        ["state", "--json", "--url", "{url}"],
        ["--url", "{url}", "state", "--json"],
    ],
)
def test_global_options_before_or_after_the_command(servers, monkeypatch, capsys, argv):
    a, _ = servers
    url = f"http://127.0.0.1:{a.port}/api"
    monkeypatch.setenv("GATEWAY_URL", url)
    assert main([x.format(url=url) for x in argv]) == 0
    assert json.loads(capsys.readouterr().out)["instance"]["instance"] == "i-1"
