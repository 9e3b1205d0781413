#!/usr/bin/env python3
"""Exercises tierkv_client against a running `tierkv serve --auth tokens` (test/clients/python.test.ts
starts one and runs this script with Debian's /usr/bin/python3).

Usage: TIERKV_ADDRESS=host:port TIERKV_TOKEN=tkv_... python3 tests/test_core.py

Prints one JSON line per check ({"check": name, "ok": bool, "error"?: str}) and a last summary
line; exits 0 only when every check passed.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from typing import Callable, List, Tuple

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

try:
    import grpc
except ImportError as error:  # the vitest test checks this first; say the same thing here
    print(f"cannot import grpc ({error}): install python3-grpcio and python3-protobuf", file=sys.stderr)
    sys.exit(3)

from tierkv_client import (
    Check,
    InvalidArgument,
    KeyNotFound,
    Operation,
    TierkvClient,
    TierkvError,
    Unauthenticated,
)

ADDRESS = os.environ["TIERKV_ADDRESS"]
TOKEN = os.environ["TIERKV_TOKEN"]

client = TierkvClient(ADDRESS, token=TOKEN, timeout=20.0)


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def expect_error(kind: type, code: grpc.StatusCode, call: Callable[[], object]) -> TierkvError:
    try:
        result = call()
    except kind as error:
        assert isinstance(error, TierkvError)
        expect(error.code == code, f"expected {code.name}, got {error.code}")
        return error
    raise AssertionError(f"expected {kind.__name__} ({code.name}), got the result {result!r}")


def check_round_trip() -> None:
    value = bytes(range(256)) + b"\x00tail"
    expect(client.write("app", "cfg", "blob", value) is True, "write not applied")
    expect(client.read("app", "cfg", "blob") == value, "read returned other bytes")
    entry = client.read_entry("app", "cfg", "blob")
    expect(entry.value == value and entry.revision >= 1, f"read_entry: {entry}")
    # The root namespace ("", "") and an empty value.
    expect(client.write("", "", "root_key", b""), "root write not applied")
    expect(client.read("", "", "root_key") == b"", "root read")
    # A stale version is acknowledged but not applied.
    high = (1 << 40) + 5
    expect(client.write("app", "cfg", "versioned", b"new", version=high) is True, "versioned write")
    expect(client.write("app", "cfg", "versioned", b"old", version=high - 1) is False, "stale write applied")
    expect(client.read("app", "cfg", "versioned") == b"new", "stale write changed the value")


def check_not_found() -> None:
    error = expect_error(KeyNotFound, grpc.StatusCode.NOT_FOUND, lambda: client.read("app", "cfg", "absent"))
    expect(isinstance(error, KeyError), "KeyNotFound is a KeyError")


def check_remove() -> None:
    client.write("app", "cfg", "doomed", b"x")
    expect(client.remove("app", "cfg", "doomed") is True, "remove not applied")
    expect_error(KeyNotFound, grpc.StatusCode.NOT_FOUND, lambda: client.read("app", "cfg", "doomed"))
    expect(client.remove("app", "cfg", "doomed") is True, "removing an absent key fails")


def check_invalid_argument() -> None:
    expect_error(InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT, lambda: client.write("app", "cfg", "bad key!", b"x"))
    expect_error(InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT, lambda: client.read("app", "cfg", ""))
    expect_error(InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT, lambda: client.read("", "sub", "k"))
    expect_error(InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT, lambda: client.read("app", "cfg", "k" * 121))


def check_paging() -> None:
    written = {f"key_{i:03d}" for i in range(250)}
    for key in sorted(written):
        client.write("paging", "walk", key, key.encode())
    walked = list(client.keys("paging", "walk", page_size=7))
    expect(len(walked) == 250, f"walked {len(walked)} keys")
    expect(set(walked) == written, "walked keys differ from written")
    # By hand: every page at most 7 keys, no key twice, an empty token ends it.
    seen: List[str] = []
    pages = 0
    token = ""
    while True:
        page, token = client.list_page("paging", "walk", 7, token)
        pages += 1
        expect(len(page) <= 7, f"page of {len(page)} keys")
        seen.extend(page)
        if not token:
            break
        expect(pages < 1000, "paging does not end")
    expect(len(seen) == len(set(seen)) == 250 and set(seen) == written, "list_page walk")
    expect(pages >= 36, f"only {pages} pages of at most 7 for 250 keys")
    expect(set(client.list("paging", "walk")) == written, "list")
    expect(list(client.keys("paging", "empty", page_size=7)) == [], "empty namespace")


def check_txn() -> None:
    created = client.txn(
        [Check.absent("txn", "", "counter")],
        [Operation.write("txn", "", "counter", b"1"), Operation.write("txn", "", "other", b"a")],
    )
    expect(created.succeeded and bool(created), f"create: {created}")
    expect(created.failed_check is None, "failed_check on success")
    expect(len(created.results) == 2 and created.results[0].applied and created.results[0].revision == 1, f"results: {created.results}")
    bumped = client.txn(
        [Check.at_revision("txn", "", "counter", 1), Check.present("txn", "", "other")],
        [Operation.write("txn", "", "counter", b"2"), Operation.remove("txn", "", "other")],
    )
    expect(bumped.succeeded and bumped.results[0].revision == 2, f"bump: {bumped}")
    expect(client.read("txn", "", "counter") == b"2", "bump did not write")
    expect_error(KeyNotFound, grpc.StatusCode.NOT_FOUND, lambda: client.read("txn", "", "other"))
    # A failed check (the second) is not an error; nothing changes.
    failed = client.txn(
        [Check.present("txn", "", "counter"), Check.at_revision("txn", "", "counter", 1)],
        [Operation.write("txn", "", "counter", b"3"), Operation.write("txn", "", "new_key", b"n")],
    )
    expect(not failed.succeeded and not failed, f"stale revision succeeded: {failed}")
    expect(failed.failed_check == 1, f"failed_check {failed.failed_check}")
    expect(client.read("txn", "", "counter") == b"2", "a failed txn wrote")
    expect_error(KeyNotFound, grpc.StatusCode.NOT_FOUND, lambda: client.read("txn", "", "new_key"))


def check_auth() -> None:
    with TierkvClient(ADDRESS, timeout=20.0) as anonymous:
        expect_error(Unauthenticated, grpc.StatusCode.UNAUTHENTICATED, lambda: anonymous.read("app", "cfg", "blob"))
        expect_error(Unauthenticated, grpc.StatusCode.UNAUTHENTICATED, lambda: anonymous.write("app", "cfg", "blob", b"evil"))
    with TierkvClient(ADDRESS, token="tkv_" + "A" * 43, timeout=20.0) as forged:
        expect_error(Unauthenticated, grpc.StatusCode.UNAUTHENTICATED, lambda: forged.read("app", "cfg", "blob"))
    expect(client.read("app", "cfg", "blob").endswith(b"\x00tail"), "refused write changed the value")


def check_health() -> None:
    expect(client.health() == "SERVING", f"server health {client.health()!r}")
    status = client.health("tierkv.v1.KVStoreService")
    expect(status == "SERVING", f"KVStoreService health {status!r}")


CHECKS: List[Tuple[str, Callable[[], None]]] = [
    ("round_trip", check_round_trip),
    ("not_found", check_not_found),
    ("remove", check_remove),
    ("invalid_argument", check_invalid_argument),
    ("paging", check_paging),
    ("txn", check_txn),
    ("auth", check_auth),
    ("health", check_health),
]


def main() -> int:
    failed = 0
    for name, run in CHECKS:
        try:
            run()
            print(json.dumps({"check": name, "ok": True}), flush=True)
        except Exception as error:  # report every check, then fail
            failed += 1
            print(json.dumps({"check": name, "ok": False, "error": f"{type(error).__name__}: {error}"}), flush=True)
            traceback.print_exc()
    client.close()
    print(json.dumps({"passed": len(CHECKS) - failed, "failed": failed}), flush=True)
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
