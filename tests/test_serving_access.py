"""Access to the service: the admin endpoint takes a token from the environment, as a
bearer header only; the service listens on loopback unless told otherwise; secrets come
only from the environment and no answer, header or log line shows them, nor the paths of
the project, the home folder or the MLflow store."""

from __future__ import annotations

import base64
import contextlib
import hmac
import ipaddress
import re
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from test_cli import ESTEIRA, _env
from test_serving import Server, root, serve  # noqa: F401 (the served toy project)
from test_serving_inputs import VISIT, records, visit, visits_root  # noqa: F401

from esteira import load_project
from esteira.serving.app import ADMIN_TOKEN_ENV

TOKEN = f"token-{uuid.uuid4().hex}"
SECRETS = {ADMIN_TOKEN_ENV: TOKEN, "AWS_SECRET_ACCESS_KEY": f"aws-{uuid.uuid4().hex}",
           "MLFLOW_TRACKING_PASSWORD": f"mlflow-{uuid.uuid4().hex}"}  # fmt: skip
RELOAD = "/admin/reload"
BASIC = "Basic " + base64.b64encode(f"admin:{TOKEN}".encode()).decode()

BODIES = [
    records(VISIT),
    visit(size=13),  # the model's own code fails: 500
    visit(site="nowhere"),  # not in the feature store: 422
    visit(when="2013-W13-7"),
    visit(colour="red"),
    visit(site="\ud800"),
    visit().replace(b"1.0", str(10**400).encode()),
    b'{"records": [{"site": "\xff"}]}',
    b"{not json",
    b"",
    records(*[VISIT] * 11),  # 413
]
"""Requests of each outcome: predicted, refused by the parser, the checks or a limit, and a
failure of the model."""
PATHS = ["/health", "/ready", "/model", "/metrics", "/openapi.json", "/nowhere", "/admin",
         "/predict/../../etc/passwd", "/%2e%2e/etc"]  # fmt: skip


@pytest.fixture(scope="module")
def admin(root) -> Iterator[Server]:  # noqa: F811
    """The toy model served with an admin token."""
    server = Server(root, "--model", "toy", env={ADMIN_TOKEN_ENV: TOKEN})
    server.wait_up()
    server.wait_ready()
    yield server
    server.stop()


def test_admin_is_off_without_a_token_and_says_how_to_enable_it(serve):  # noqa: F811
    server = serve("--model", "toy")  # the tests' environment has no ESTEIRA_* variable
    for headers in ({}, {"Authorization": "Bearer"}, {"Authorization": "Bearer anything"}):
        off = httpx.post(f"{server.url}{RELOAD}", headers=headers)
        assert off.status_code == 403
        assert off.json()["error"] == f"admin is off: set {ADMIN_TOKEN_ENV} to enable it"


@pytest.mark.parametrize(
    ("how", "query", "headers"),
    [
        ("no header", {}, {}),
        ("bearer and no token", {}, {"Authorization": "Bearer"}),
        ("wrong token", {}, {"Authorization": "Bearer nope"}),
        ("wrong token of the same length", {}, {"Authorization": f"Bearer {'x' * len(TOKEN)}"}),
        ("a prefix of the token", {}, {"Authorization": f"Bearer {TOKEN[:-1]}"}),
        ("the token and more", {}, {"Authorization": f"Bearer {TOKEN}x"}),
        ("token in the query", {"token": TOKEN}, {}),
        ("access_token in the query", {"access_token": TOKEN}, {}),
        ("bearer in the query", {"authorization": f"Bearer {TOKEN}"}, {}),
        ("basic scheme", {}, {"Authorization": BASIC}),
        ("basic scheme, token alone", {}, {"Authorization": f"Basic {TOKEN}"}),
        ("token scheme", {}, {"Authorization": f"Token {TOKEN}"}),
        ("another header", {}, {"X-Admin-Token": TOKEN}),
        ("a cookie", {}, {"Cookie": f"token={TOKEN}"}),
    ],
)
def test_the_admin_refuses_anything_but_the_token_as_a_bearer_header(admin, how, query, headers):
    refused = httpx.post(f"{admin.url}{RELOAD}", params=query, headers=headers)
    assert refused.status_code == 401, how
    assert refused.json() == {"error": "missing or wrong bearer token"}


def test_the_admin_refuses_the_token_without_a_scheme_and_reads_the_scheme_in_any_case(admin):
    bare = httpx.post(f"{admin.url}{RELOAD}", headers={"Authorization": TOKEN})
    assert bare.status_code == 401
    lower = httpx.post(f"{admin.url}{RELOAD}", headers={"Authorization": f"bearer {TOKEN}"})
    assert lower.status_code == 200


def test_the_admin_takes_the_right_bearer_token(admin):
    ok = httpx.post(f"{admin.url}{RELOAD}", headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200 and ok.json() == {"swapped": False, "version": "1",
                                                    "error": None}  # fmt: skip


def test_wrong_tokens_are_compared_in_constant_time(root, monkeypatch):  # noqa: F811
    """A timing test over HTTP cannot tell a constant-time comparison from `==` on a short
    token (nanoseconds under milliseconds of noise), so this checks that every token
    given, of any length, goes through `hmac.compare_digest` against the configured one."""
    from fastapi.testclient import TestClient

    from esteira.serving.app import ServeConfig, create_app

    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(given: bytes, expected: bytes) -> bool:
        compared.append((given, expected))
        return real(given, expected)

    monkeypatch.setenv(ADMIN_TOKEN_ENV, TOKEN)
    monkeypatch.setattr(hmac, "compare_digest", spy)
    app = create_app(load_project(root), ServeConfig(model="toy"), log=lambda m: None)
    client = TestClient(app)  # no lifespan: nothing loads, the token check needs nothing
    for given in ("nope", "x" * len(TOKEN), TOKEN[:-1], ""):
        answer = client.post(RELOAD, headers={"Authorization": f"Bearer {given}"})
        assert answer.status_code == 401
    assert compared == [(g.encode(), TOKEN.encode()) for g in ("nope", "x" * len(TOKEN),
                                                               TOKEN[:-1], "")]  # fmt: skip


def test_the_default_bind_is_loopback_and_no_option_takes_a_secret():
    shown = subprocess.run([*ESTEIRA, "serve", "--help"], capture_output=True, text=True,
                           env=_env(), timeout=120)  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    host = re.search(r"--host\b.*?(?=--port\b)", shown.stdout, re.DOTALL)  # the option's row
    assert host and "[default: 127.0.0.1]" in host.group(), shown.stdout
    assert not re.search(r"token|secret|password|credential", shown.stdout, re.IGNORECASE)


def test_the_service_is_not_reachable_on_other_interfaces(serve):  # noqa: F811
    others = [a for a in _local_addresses() if _reachable_here(a)]
    if not others:
        pytest.skip("this machine has no non-loopback address to try")
    server = serve("--model", "toy")  # no --host: the default
    with socket.create_connection(("127.0.0.1", server.port), timeout=5):
        pass
    for address in others:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((address, server.port), timeout=5).close()


def _local_addresses() -> set[str]:
    """This machine's addresses other than loopback: its host name's, and the one it would
    reach other networks from (a UDP connect sends nothing)."""
    found: set[str] = set()
    with contextlib.suppress(OSError):
        found |= {info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None)}
    for family, probe in ((socket.AF_INET, "192.0.2.1"), (socket.AF_INET6, "2001:db8::1")):
        with contextlib.suppress(OSError), socket.socket(family, socket.SOCK_DGRAM) as s:
            s.connect((probe, 9))
            found.add(s.getsockname()[0])
    usable = set()
    for address in found:
        ip = ipaddress.ip_address(address.split("%")[0])
        if not (ip.is_loopback or ip.is_link_local or ip.is_unspecified):
            usable.add(address)
    return usable


def _reachable_here(address: str) -> bool:
    """Whether a listener on all interfaces is reachable at `address`: the control that makes
    a refused connection mean the service's bind, not the network."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as listener:
            listener.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", 0))
            listener.listen()
            socket.create_connection((address, listener.getsockname()[1]), timeout=5).close()
        return True
    except OSError:
        return False


def test_no_answer_header_or_log_shows_a_secret_or_a_path(visits_root):  # noqa: F811
    """The visit model (a feature service, and a fault of its code at size 13) served with
    an admin token and cloud secrets in its environment, then asked everything, good and
    bad: nothing sent back or logged holds the secrets or an absolute path."""
    project = load_project(visits_root)
    home = Path.home()
    forbidden = [*SECRETS.values(), str(visits_root), str(visits_root.resolve()),
                 str(project.settings.home), project.settings.tracking_uri,
                 f"{home}/", str(Path(__file__).parents[1]), sys.prefix]  # fmt: skip
    server = Server(visits_root, "--model", "load", "--max-rows", "10", env=SECRETS)
    server.wait_up()
    server.wait_ready()
    shown: list[tuple[str, str]] = []
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:

            def ask(method: str, path: str, **kwargs) -> httpx.Response:
                answer = client.request(method, path, **kwargs)
                head = "\n".join(f"{k}: {v}" for k, v in answer.headers.items())
                shown.append((f"{method} {path} -> {answer.status_code}", head + answer.text))
                return answer

            statuses = [
                ask("POST", "/predict", content=body, headers={"x-request-id": f"leak-{i}"})
                .status_code
                for i, body in enumerate(BODIES)
            ]  # fmt: skip
            assert {200, 400, 413, 422, 500} <= set(statuses), statuses
            for path in PATHS:
                ask("GET", path)
            ask("POST", "/health")
            ask("DELETE", "/predict")
            docs = ask("GET", "/docs")
            assert docs.status_code == 200
            for asset in re.findall(r'(?:src|href)="([^"]+)"', docs.text):
                assert ask("GET", asset).status_code == 200, asset
            for headers in ({}, {"Authorization": "Bearer nope"},
                            {"Authorization": f"Bearer {TOKEN}"}):  # fmt: skip
                ask("POST", RELOAD, headers=headers)
            assert shown[-1][0].endswith("200")
    finally:
        out, err = server.stop()
    shown.append(("the server's stdout", out))
    shown.append(("the server's stderr", err))
    leaks = [(where, secret) for where, text in shown for secret in forbidden if secret in text]
    assert not leaks, leaks
    model = next(text for where, text in shown if where.startswith("GET /model "))
    assert '"uri":"models:/load/1"' in model  # the registry's URI, not the artifacts' folder
