"""The fixed request sequence the cost count sends: one kept-alive HTTP/1.1 connection, the same
mix in the same order every run. Usage: sequence.py BASE_URL TOKEN KEY AGENT_ID COUNT [MIX]

Per group of four requests, MIX=recording (the default): an agent-key `GET /api/v1/auth/me`
(twice), a user-token `GET /api/v1/users`, and either a 404 (an agent id the key may not see) or
a 401 (an unknown key), alternately. Their handlers do the same work with analytics on and off,
so the difference is the recording alone. MIX=agents sends agent-key `GET /api/v1/agents/{id}`
and user-token `GET /api/v1/agents` instead: with analytics on those handlers also read each
agent's last call from the rollups (one more query per request), a read the off mode skips.

Exits non-zero if any answer is not the expected status; prints how many of the calls are
recorded in api_calls (all but the 401s, which belong to no organization)."""

import http.client
import sys
import urllib.parse

base, token, key, agent, count = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
mix = sys.argv[6] if len(sys.argv) > 6 else "recording"
url = urllib.parse.urlsplit(base)
connection = http.client.HTTPConnection(url.hostname, url.port, timeout=120)
missing = "00000000-0000-7000-8000-000000000000"
unknown_key = "aim_" + "0" * 64
if mix == "recording":
    plan = [
        ("/api/v1/auth/me", {"X-API-Key": key}, 200),
        ("/api/v1/users", {"Authorization": f"Bearer {token}"}, 200),
        ("/api/v1/auth/me", {"X-API-Key": key}, 200),
    ]
elif mix == "agents":
    plan = [
        (f"/api/v1/agents/{agent}", {"X-API-Key": key}, 200),
        ("/api/v1/agents", {"Authorization": f"Bearer {token}"}, 200),
        (f"/api/v1/agents/{agent}", {"X-API-Key": key}, 200),
    ]
else:
    sys.exit(f"unknown MIX {mix!r}: recording or agents")
recorded = 0
for i in range(count):
    step = i % 4
    if step < 3:
        path, headers, expected = plan[step]
    elif (i // 4) % 2 == 0:
        path, headers, expected = f"/api/v1/agents/{missing}", {"X-API-Key": key}, 404
    else:
        path, headers, expected = f"/api/v1/agents/{agent}", {"X-API-Key": unknown_key}, 401
    connection.request("GET", path, headers=headers)
    response = connection.getresponse()
    response.read()
    if response.status != expected:
        sys.exit(f"request {i}: GET {path} answered {response.status}, expected {expected}")
    recorded += expected != 401
print(recorded)
