"""Reads `cargo metadata --format-version 1` on stdin and fails when a locked dependency needs a
newer Rust than the workspace's `rust-version` says (the README's prerequisite)."""

import json
import sys


def version(text):
    return tuple(int(x) for x in text.split(".")[:3]) + (0,) * (3 - len(text.split(".")))


meta = json.load(sys.stdin)
members = set(meta["workspace_members"])
ours = {p["rust_version"] for p in meta["packages"] if p["id"] in members and p.get("rust_version")}
if len(ours) != 1:
    sys.exit(f"msrv: the workspace's packages state {sorted(ours) or 'no'} rust-version; expected one")
stated = ours.pop()
needs = sorted(
    ((version(p["rust_version"]), p["name"], p["version"]) for p in meta["packages"]
     if p["id"] not in members and p.get("rust_version")),
    reverse=True,
)
if needs and needs[0][0] > version(stated):
    top = [f"{n} {v} needs {'.'.join(map(str, r[:2]))}" for r, n, v in needs if r > version(stated)]
    sys.exit(f"msrv: rust-version {stated} is too old for the locked dependencies: {', '.join(top[:5])}")
print(f"msrv: rust-version {stated} covers every locked dependency (the most demanding: {needs[0][1]} {needs[0][2]})")
