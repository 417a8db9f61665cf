"""``stressbed model`` as a user runs it (the console entry point in a child process): what it
refuses and how it says so, what it writes, and that no secret of the input reaches the module
or the terminal."""

from __future__ import annotations

import base64
import json
import os
import random
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest

from stressbed.app.model_cli import mask

ROOT = Path(__file__).resolve().parents[2]


def stressbed(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The real console entry point, in a child process, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "stressbed", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        check=False,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "K6_NO_USAGE_REPORT": "true"},
        timeout=600,
    )


def combined(second: int, target: str, status: int = 200, method: str = "GET") -> str:
    minute, sec = divmod(second, 60)
    return (
        f"203.0.113.{second % 200} - - [10/Oct/2023:13:{minute:02d}:{sec:02d} +0000] "
        f'"{method} {target} HTTP/1.1" {status} 21 "-" "probe/1"'
    )


def small_log(path: Path, lines: int = 120) -> Path:
    rng = random.Random(5)
    rows = []
    for s in range(lines):
        target = rng.choice(
            [f"/v1/agents/{uuid.UUID(int=rng.getrandbits(128))}/config?limit=10", "/v1/health"]
        )
        rows.append(combined(s, target, rng.choice([200, 200, 200, 404])))
    path.write_text("\n".join(rows) + "\n")
    return path


def test_a_log_that_is_not_combined_or_common_exits_2_naming_it(tmp_path):
    log = tmp_path / "app.log"
    log.write_text("".join(json.dumps({"ts": i, "path": "/x"}) + "\n" for i in range(20)))
    done = stressbed("model", str(log), "-o", str(tmp_path / "m.py"))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert str(log) in lines[0]
    assert "pass --format" in lines[0]
    assert not (tmp_path / "m.py").exists()


SECRET_EMAIL = "alice.operator@example.org"
SECRET_IP = "192.0.2.77"
SECRET_TOKEN = "AKIAIOSFODNN7EXAMPLEabcd1234"


def test_past_max_bad_exits_2_and_its_examples_are_masked(tmp_path):
    log = tmp_path / "access.log"
    good = [combined(s, "/v1/health") for s in range(40)]
    bad = [
        f"garbage from {SECRET_IP} for {SECRET_EMAIL} token={SECRET_TOKEN} password=hunter2",
        f'{{"user": "{SECRET_EMAIL}", "pwd": "hunter2", "via": "{SECRET_IP}"}}',
        f"Authorization: Bearer {SECRET_TOKEN} at [10/Oct/2023:13:55:36 +0000]",
    ]
    log.write_text("\n".join(good[:20] + bad + good[20:]) + "\n")
    done = stressbed("model", str(log), "-o", str(tmp_path / "m.py"), "--max-bad", "5")
    assert done.returncode == 2
    for secret in (SECRET_EMAIL, SECRET_IP, SECRET_TOKEN, "hunter2"):
        assert secret not in done.stderr
    assert "3 lines of 43 (7.0%) not read as combined" in done.stderr
    assert "garbage from <ip> for <email> token=<secret> password=<secret>" in done.stderr
    assert "[10/Oct/2023:13:55:36 +0000]" in done.stderr  # a time is left to read
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"stressbed: error: {log}: got '7.0% of its lines not combined'")
    assert "pass --format" in last
    assert not (tmp_path / "m.py").exists()
    within = stressbed("model", str(log), "-o", str(tmp_path / "m.py"), "--max-bad", "10")
    assert within.returncode == 0, within.stderr
    assert SECRET_EMAIL not in within.stderr


@pytest.mark.parametrize("field", ["authorization", "Cookie", "proxy-authorization", "set-cookie"])
def test_keeping_a_credential_is_refused(tmp_path, field):
    done = stressbed("model", str(small_log(tmp_path / "a.log")), "-o", "m.py", "--keep", field)
    assert done.returncode == 2
    assert done.stderr.startswith(f"stressbed: error: --keep: got '{field}'")


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["-o", "x.txt"], "--output"),
        (["-o", "m.py", "--name", "not a name"], "--name"),
        (["-o", "m.py", "--scale", "3"], "--scale"),
        (["-o", "m.py", "--compress", "10"], "--compress"),  # before a byte is read
        (["-o", "m.py", "--max-bad", "lots"], "--max-bad"),
    ],
)
def test_bad_options_exit_2_naming_the_option(tmp_path, args, option):
    done = stressbed("model", str(tmp_path / "not-read.log"), *args, cwd=tmp_path)
    assert done.returncode == 2
    assert option in done.stderr
    assert "not-read.log" not in done.stderr  # told before the inputs are opened
    assert "Traceback" not in done.stderr


def test_a_small_combined_log_is_written_formatted_and_renders(tmp_path):
    module = tmp_path / "scenarios" / "agents.py"
    done = stressbed("model", str(small_log(tmp_path / "access.log")), "-o", str(module))
    assert done.returncode == 0, done.stderr
    assert f"wrote {module}" in done.stdout
    text = module.read_text()
    assert "/v1/agents/{{agent_id}}/config" in text
    assert '"limit": "10"' in text  # a value that is not a secret, copied
    formatted = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--diff", str(module)],
        capture_output=True, text=True, check=False, cwd=ROOT,
    )  # fmt: skip
    assert formatted.returncode == 0, formatted.stdout
    rendered = stressbed("render", "--scenario", str(module), "-o", str(tmp_path / "bundle"))
    assert rendered.returncode == 0, rendered.stderr


# Privacy: secrets in every place a log holds them.

PRIVATE_FORMAT = (
    '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
    '"$http_referer" "$http_user_agent" "$http_authorization" "$http_cookie" $request_time '
    '"$request_body"'
)
#: The same in every request (what a client sends each time: seen often enough to be copied
#: if its name and shape did not keep it out).
FIXED = {
    "api_key": "AKIAIOSFODNN7EXAMPLE",
    "token": "tok_3f9a8b7c6d5e4f3aQ",
    "password": "hunter2-Sup3r",
    "pwd": "correcthorse",
    "bearer": "Bearer sk_live_4eC39HqLyjWDarjtT1zdp7dc",
    "email": "ops.admin@example.org",
    "ip": "203.0.113.77",
    "session": "sess-9f8e7d6c5b4a",
    "uuid": "8f3a0c2e-1b2d-4e5f-9a8b-7c6d5e4f3a2b",
    "cookie": "sid=Qm9vbXRvd24tY29va2ll",
}


def jwt(rng: random.Random) -> str:
    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    header, claims = part({"alg": "HS256"}), part({"sub": rng.randrange(10**9)})
    return f"{header}.{claims}.{rng.getrandbits(128):032x}"


def private_log(path: Path, *, paths_with_ids: bool) -> set[str]:
    """A log with secrets in its query, its bodies, its credential columns and (when asked)
    its paths; the secrets."""
    rng = random.Random(11)
    fixed_jwt = jwt(rng)
    secrets = {*FIXED.values(), fixed_jwt, FIXED["bearer"].split()[1]}
    lines = []
    for i in range(300):
        email = f"user{rng.randrange(10**6)}@corp.example.com"
        ip = f"198.18.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        token = f"{rng.getrandbits(160):040x}"
        session = str(uuid.UUID(int=rng.getrandbits(128)))
        auth = f"Bearer {rng.getrandbits(128):032x}"
        secrets |= {email, ip, token, session, auth.split()[1]}
        body = {
            "email": email, "contact": FIXED["email"], "client_ip": ip, "origin": FIXED["ip"],
            "id_token": jwt(rng), "assertion": fixed_jwt, "note": FIXED["bearer"],
            "password": FIXED["password"], "pwd": FIXED["pwd"], "session_id": session,
            "sid": FIXED["session"], "request_id": FIXED["uuid"], "kind": rng.choice("ab"),
        }  # fmt: skip
        logged = json.dumps(body).replace("\\", "\\x5C").replace('"', "\\x22")
        if paths_with_ids:
            target = rng.choice(
                [f"/v1/users/{email}/profile", f"/v1/hosts/{ip}/status", "/v1/orders"]
            )
        else:
            target = rng.choice(["/v1/profile", "/v1/status", "/v1/orders"])
        query = (
            f"token={quote(FIXED['token'])}&api_key={FIXED['api_key']}"
            f"&password={quote(FIXED['password'])}&page={i % 3}&access_token={token}"
        )
        lines.append(
            f"{ip} - - [10/Oct/2023:13:{i // 60:02d}:{i % 60:02d} +0000] "
            f'"POST {target}?{query} HTTP/1.1" 200 12 "-" "probe/1" "{auth}" '
            f'"{FIXED["cookie"]}; csrftoken={token}" 0.0{rng.randrange(10, 99)} "{logged}"'
        )
    path.write_text("\n".join(lines) + "\n")
    return secrets


def test_no_secret_of_the_input_reaches_the_module(tmp_path):
    log = tmp_path / "private.log"
    secrets = private_log(log, paths_with_ids=False)
    module = tmp_path / "private.py"
    done = stressbed("model", str(log), "-o", str(module), "--format", PRIVATE_FORMAT)
    assert done.returncode == 0, done.stderr
    text = module.read_text()
    leaked = sorted(s for s in secrets if s in text)
    assert leaked == []
    assert '"page": gen.choice({"' in text  # what is not a secret is still copied
    for secret in secrets:
        assert secret not in done.stdout + done.stderr


def test_no_email_or_address_in_the_paths_reaches_the_module(tmp_path):
    log = tmp_path / "private.log"
    secrets = private_log(log, paths_with_ids=True)
    module = tmp_path / "private.py"
    done = stressbed("model", str(log), "-o", str(module), "--format", PRIVATE_FORMAT)
    assert "Traceback" not in done.stderr
    text = module.read_text()
    assert "/v1/users/{{email}}/profile" in text
    assert "/v1/hosts/{{ip}}/status" in text
    assert sorted(s for s in secrets if s in text) == []


def test_keep_copies_the_field_s_values(tmp_path):
    log = tmp_path / "private.log"
    private_log(log, paths_with_ids=False)
    module = tmp_path / "kept.py"
    done = stressbed(
        "model", str(log), "-o", str(module), "--format", PRIVATE_FORMAT,
        "--keep", "token", "--keep", "pwd",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    text = module.read_text()
    assert f'"token": "{FIXED["token"]}"' in text
    assert f'"pwd": "{FIXED["pwd"]}"' in text
    assert FIXED["api_key"] not in text  # only the fields named
    assert FIXED["password"] not in text


def test_a_field_s_name_cannot_make_code_of_the_module(tmp_path):
    marker = tmp_path / "owned"
    name = f'a\n__import__("pathlib").Path({str(marker)!r}).touch() or "k": 1,\n#'
    log = tmp_path / "access.log"
    log.write_text(
        "".join(combined(s, f"/x?{quote(name, safe='')}=1&page={s % 3}") + "\n" for s in range(40))
    )
    done = stressbed("model", str(log), "-o", str(tmp_path / "m.py"))
    assert done.returncode == 0, done.stderr
    assert not marker.exists()


def test_a_decoded_path_cannot_make_code_of_the_module(tmp_path):
    marker = tmp_path / "owned"
    # (no "/" in it: the module's own file names the marker beside it)
    code = "__import__(\\x22pathlib\\x22).Path(__file__).with_name(\\x22owned\\x22).touch()"
    log = tmp_path / "access.log"  # $uri is decoded: %0A in a path is logged \x0A
    log.write_text(
        "".join(
            f"[10/Oct/2023:13:00:{s:02d} +0000] GET /x\\x0A{code}\\x0A#/{s} 200\n"
            for s in range(40)
        )
    )
    fmt = "[$time_local] $request_method $uri $status"
    done = stressbed("model", str(log), "-o", str(tmp_path / "m.py"), "--format", fmt)
    assert done.returncode == 0, done.stderr
    assert not marker.exists()


def test_a_rare_field_s_name_cannot_make_code_of_the_module(tmp_path):
    marker = tmp_path / "owned"
    name = f'a\n__import__("pathlib").Path({str(marker)!r}).touch()\n#'
    log = tmp_path / "access.log"
    rows = [
        f"/x?page={s % 3}" + (f"&{quote(name, safe='')}=1" if s % 4 == 0 else "") for s in range(40)
    ]
    log.write_text("".join(combined(s, row) + "\n" for s, row in enumerate(rows)))
    stressbed("model", str(log), "-o", str(tmp_path / "m.py"))
    assert not marker.exists()


def test_a_module_with_emails_and_addresses_in_its_paths_renders(tmp_path):
    log = tmp_path / "private.log"
    private_log(log, paths_with_ids=True)
    done = stressbed("model", str(log), "-o", str(tmp_path / "m.py"), "--format", PRIVATE_FORMAT)
    assert done.returncode == 0, done.stderr


def test_a_secret_s_number_is_not_copied(tmp_path):
    rows = []
    for s in range(60):
        body = json.dumps({"pin": 4711, "card": 4111111111111111, "qty": s % 4})
        logged = body.replace('"', "\\x22")
        rows.append(combined(s, "/v1/pay", method="POST") + f' "{logged}"')
    log = tmp_path / "pay.log"
    log.write_text("\n".join(rows) + "\n")
    fmt = (
        '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
        '"$http_referer" "$http_user_agent" "$request_body"'
    )
    done = stressbed("model", str(log), "-o", str(tmp_path / "m.py"), "--format", fmt)
    assert done.returncode == 0, done.stderr
    text = (tmp_path / "m.py").read_text()
    assert "4711" not in text
    assert "4111111111111111" not in text


# mask(): a bad line as shown.


@pytest.mark.parametrize(
    ("line", "shown"),
    [
        ("from alice@example.com via 10.1.2.3", "from <email> via <ip>"),
        ("mail=bob%40corp.example.com", "mail=<email>"),
        ("password=hunter2&page=2", "password=<secret>&page=2"),
        ('{"pwd": "hunter2", "kind": "a"}', '{"pwd": "<secret>", "kind": "a"}'),
        ("Authorization: Bearer abc.def", "Authorization: <secret> <token>"),
        ("Cookie: sid=abc; theme=dark", "Cookie: <secret>; theme=dark"),
        ("at [2001:db8::1]:443 and 10.0.0.1:8080", "at [<ip>]:443 and <ip>:8080"),
        (f"GET /v1/agents/{uuid.UUID(int=7)}/report", "GET /v1/agents/<uuid>/report"),
        ("k=ab12cd34ef56gh78ij90kl/mn+op==", "k=<token>=="),
        ("card 4111111111111111", "card <number>"),
        ("[10/Oct/2023:13:55:36 +0000] GET /api/v1/users/profile/settings", None),
        ('"Mozilla/5.0 (X11; Linux x86_64)" 404 0.004, 0.002', None),
        ("cut in the middle of alice@exam...", "cut in the middle of ..."),
        ("cut token=abcdef0123...", "cut token=<secret>"),
    ],
)
def test_mask(line, shown):
    assert mask(line) == (line if shown is None else shown)
