"""Optimistic concurrency: resources carry a version, sent as an ETag, checked by If-Match."""

from __future__ import annotations

from interlock.server.problems import Problem, ProblemType


def etag(version: int) -> str:
    return f'"{version}"'


def check_if_match(if_match: str | None, version: int, what: str) -> None:
    """428 when the precondition is missing, 412 when it names an older version.

    The 412 carries the current ETag (header and body), so a client can re-read and retry.
    Weak tags are compared as strong ones: we only issue strong tags, and an intermediary
    that weakened ours (compression) should not make a correct precondition fail.
    """
    if if_match is None:
        raise Problem(
            ProblemType.PRECONDITION_REQUIRED,
            f"send If-Match with the ETag of the {what} you read, so no change is overwritten",
        )
    candidates = {tag.strip().removeprefix("W/") for tag in if_match.split(",")}
    if "*" in candidates or etag(version) in candidates:
        return
    raise Problem(
        ProblemType.PRECONDITION_FAILED,
        f"the {what} changed since you read it (now version {version}); read it again",
        headers={"ETag": etag(version)},
        current_etag=etag(version),
    )
