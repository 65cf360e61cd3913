"""The stored release archive is the commit its header names, file for file (no cluster needed).

A clone without that commit (shallow) cannot tell; the upgrade test still runs from the archive.
"""

from __future__ import annotations

import hashlib
import subprocess
import tarfile

import pytest

from tests.platform.test_upgrade import ARCHIVE, REPO


def blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def archived() -> tuple[str, dict[str, str]]:
    """The commit the archive names, and each of its files' (and links') git blob ids."""
    files = {}
    with tarfile.open(ARCHIVE) as tar:
        commit = tar.pax_headers["comment"]
        for member in tar:
            if member.isfile():
                fh = tar.extractfile(member)
                assert fh is not None
                files[member.name] = blob_id(fh.read())
            elif member.issym():
                files[member.name] = blob_id(member.linkname.encode())
    return commit, files


def test_the_archive_holds_exactly_the_commit_it_names() -> None:
    commit, files = archived()
    known = subprocess.run(["git", "-C", str(REPO), "cat-file", "-e", f"{commit}^{{commit}}"], check=False)
    if known.returncode != 0:
        pytest.skip(f"commit {commit[:12]} is not in this clone (shallow); nothing to compare with")
    listing = subprocess.run(["git", "-C", str(REPO), "ls-tree", "-r", "-z", commit],
                             capture_output=True, text=True, check=True).stdout  # fmt: skip
    tree = {}
    for entry in filter(None, listing.split("\0")):
        meta, path = entry.split("\t", 1)
        tree[path] = meta.split()[2]
    assert files == tree
