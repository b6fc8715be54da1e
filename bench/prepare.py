#!/usr/bin/env python3
"""Inputs for bench/run.sh, made with the standard library only.

  prepare.py tenants FILE N LRS_PORT API_KEY_HASH ORIGIN   a tenants file with N tenants t000000…
  prepare.py bodies DIR                                    statement.json (1 KB), batch10.json, batch100.json
  prepare.py tokens FILE TOKEN_PORT API_KEY N TENANTS      N session tokens spread over the tenants
  prepare.py fetch FILE TOKEN_PORT API_KEY N               N cmi5 fetch paths of tenant t000000
  prepare.py idle EDGE_PORT N                              hold N idle keep-alive connections (until stdin closes)

Tokens and codes are asked for over one keep-alive connection per call, which is far faster than
a process per request.
"""

import http.client
import json
import socket
import struct
import sys

REGISTRATION = "7f0f2a50-3c2c-4f55-9d1c-7a0a7f9b9e11"
SESSION = "5f8e7c1e-1f3a-4c55-9d1c-7a0a7f9b9e11"
ACTIVITY = "https://lms.example/au/1"
ACTOR = {"objectType": "Agent", "account": {"homePage": "https://lms.example", "name": "learner-1"}}


def host(i):
    return f"t{i:06d}.bench"


def tenants(path, n, lrs_port, key_hash, origin):
    with open(path, "w") as f:
        for i in range(int(n)):
            f.write(
                f'[[tenant]]\nid = "t{i:06d}"\nhosts = ["{host(i)}", "localhost"]\n'
                if i == 0
                else f'[[tenant]]\nid = "t{i:06d}"\nhosts = ["{host(i)}"]\n'
            )
            if i == 0:
                f.write(f'public_origin = "{origin}"\n')
            f.write(
                f'[tenant.upstream]\nnodes = ["http://127.0.0.1:{lrs_port}/xapi"]\nusername = "bench"\n'
                f'password = "bench-lrs-password"\n[tenant.signing]\n'
                f'secret = "bench-signing-secret-0123456789abcdef-{i:06d}"\n'
                f'[tenant.lms]\napi_key_hashes = ["{key_hash}"]\n\n'
            )


def statement(size=1024):
    s = {
        "actor": ACTOR,
        "verb": {"id": "http://adlnet.gov/expapi/verbs/completed", "display": {"en-US": "completed"}},
        "object": {"objectType": "Activity", "id": ACTIVITY},
        "result": {"completion": True, "duration": "PT4M30S", "response": ""},
        "context": {
            "registration": REGISTRATION,
            "contextActivities": {
                "grouping": [{"id": "https://publisher.example/au/1"}],
                "category": [{"id": "https://w3id.org/xapi/cmi5/context/categories/cmi5"}],
            },
            "extensions": {"https://w3id.org/xapi/cmi5/context/extensions/sessionid": SESSION},
        },
        "timestamp": "2026-11-22T10:00:00.000Z",
    }
    s["result"]["response"] = "x" * (size - len(json.dumps(s, separators=(",", ":"))))
    return s


def bodies(d):
    one = json.dumps(statement(), separators=(",", ":"))
    assert len(one) == 1024, len(one)
    open(f"{d}/statement.json", "w").write(one)
    for n in (10, 100):
        open(f"{d}/batch{n}.json", "w").write(json.dumps([statement() for _ in range(n)], separators=(",", ":")))


def ask(conn, tenant_host, key, body):
    conn.request(
        "POST",
        "/auth/token",
        body=json.dumps(body),
        headers={"Host": tenant_host, "Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    r = conn.getresponse()
    data = json.loads(r.read())
    if r.status != 200:
        sys.exit(f"token request for {tenant_host} refused: {r.status} {data}")
    return data


def request_for(i):
    return {"actor": ACTOR, "registration": REGISTRATION, "activity_id": ACTIVITY, "session_id": SESSION}


def tokens(path, port, key, n, tenant_count):
    conn = http.client.HTTPConnection("127.0.0.1", int(port))
    with open(path, "w") as f:
        for i in range(int(n)):
            h = host(i % int(tenant_count))
            f.write(f"{h} {ask(conn, h, key, request_for(i))['token']}\n")


def fetch(path, port, key, n):
    conn = http.client.HTTPConnection("127.0.0.1", int(port))
    with open(path, "w") as f:
        for i in range(int(n)):
            body = dict(request_for(i), delivery="cmi5", session_id=f"fetch-{i}")
            url = ask(conn, host(0), key, body)["fetch_url"]
            f.write(url[url.index("/cmi5/fetch/"):] + "\n")


def idle(port, n):
    held = []
    for i in range(int(n)):
        # One source address holds ~28,000 ephemeral ports: spread over 127.0.0.2, .3, ...
        # IP_BIND_ADDRESS_NO_PORT (24) leaves the port to connect(), which may reuse one in
        # TIME_WAIT from an earlier count (bind() alone may not).
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.IPPROTO_IP, getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24), 1)
        s.bind((f"127.0.0.{2 + i // 20000}", 0))
        # Reset, not closed, at exit: 50,000 closes would leave as many ports in TIME_WAIT.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.connect(("127.0.0.1", int(port)))
        s.sendall(b"GET /xapi/about HTTP/1.1\r\nHost: localhost\r\nX-Experience-API-Version: 1.0.3\r\n\r\n")
        if b"200" not in s.recv(4096):
            sys.exit("an idle connection was refused")
        held.append(s)
    print(f"holding {len(held)}", flush=True)
    sys.stdin.read()


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"tenants": tenants, "bodies": bodies, "tokens": tokens, "fetch": fetch, "idle": idle}[cmd](*args)
