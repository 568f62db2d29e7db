#!/usr/bin/env python3
"""Checks a server's OpenAPI document with real tools from PyPI.

1. Fetches GET /v1/sys/internal/specs/openapi with the given token and
   validates it with openapi-spec-validator (OpenAPI 3.0 rules, $refs,
   path parameters, defaults against their schemas).
2. Unless --no-fuzz: runs schemathesis against the same server with the
   token, only the `not_a_server_error` check (no 5xx, no crash), bounded by
   --max-examples per operation and --max-time for the whole run, on the
   operations of the mounts named by --mount (a regex over paths).

Prints `openapi_check: N passed, M failed` and exits non-zero on failure.
A missing package is a failure that says what to install, never a skip.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import urllib.request

PASSED = 0
FAILED = 0


def check(name, ok, detail=""):
    global PASSED, FAILED
    if ok:
        PASSED += 1
        print(f"ok   {name}")
    else:
        FAILED += 1
        print(f"FAIL {name}: {detail}")


def fetch(addr, token):
    req = urllib.request.Request(
        addr.rstrip("/") + "/v1/sys/internal/specs/openapi",
        headers={"X-Vault-Token": token},
    )
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--addr", required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--mount", action="append", default=[],
                    help="path regex of the operations schemathesis runs")
    ap.add_argument("--max-examples", type=int, default=3)
    ap.add_argument("--max-time", type=int, default=60)
    ap.add_argument("--no-fuzz", action="store_true")
    a = ap.parse_args()

    try:
        from openapi_spec_validator import validate
        from openapi_spec_validator import __version__ as osv_version
    except ImportError as e:
        print(f"openapi-spec-validator is missing ({e}): "
              "pip install openapi-spec-validator==0.9.0")
        print("openapi_check: 0 passed, 1 failed")
        return 1
    print(f"openapi-spec-validator {osv_version}")

    doc = fetch(a.addr, a.token)
    check("document has paths", len(doc.get("paths", {})) > 0, str(doc)[:200])
    try:
        validate(doc)
        check("openapi-spec-validator accepts the document", True)
    except Exception as e:  # the validator's own error, shown whole
        check("openapi-spec-validator accepts the document", False, str(e)[:4000])

    if not a.no_fuzz:
        try:
            import schemathesis  # noqa: F401
        except ImportError as e:
            print(f"schemathesis is missing ({e}): pip install schemathesis==4.32.5")
            print(f"openapi_check: {PASSED} passed, {FAILED + 1} failed")
            return 1
        with tempfile.TemporaryDirectory() as tmp:
            spec = os.path.join(tmp, "openapi.json")
            with open(spec, "w") as f:
                json.dump(doc, f)
            cmd = [
                sys.executable, "-m", "schemathesis.cli", "run", spec,
                "--url", a.addr.rstrip("/") + "/v1",
                "-H", f"X-Vault-Token: {a.token}",
                "--checks", "not_a_server_error",
                "--phases", "examples,coverage,fuzzing",
                "--max-examples", str(a.max_examples),
                "--max-time", str(a.max_time),
                "--workers", "1",
                "--seed", "15",
                "--request-timeout", "60",
                "--suppress-health-check", "all",
                "--no-shrink",
                "--output-truncate", "false",
                "--report", "json",
                "--report-dir", tmp,
            ]
            if a.mount:
                cmd += ["--include-path-regex", "|".join(a.mount)]
            print("running:", " ".join("X-Vault-Token: <token>" if "Token" in c else c for c in cmd))
            p = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True,
                               env=dict(os.environ, NO_COLOR="1"))
            out = (p.stdout or "") + (p.stderr or "")
            print(out[-20000:])
            check("schemathesis finds no 5xx and no crash", p.returncode == 0,
                  f"exit {p.returncode}")

    print(f"openapi_check: {PASSED} passed, {FAILED} failed")
    return 0 if FAILED == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
