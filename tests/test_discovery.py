"""Discovery: globs with **, symlinks followed, loops harmless, excludes, identities."""

from __future__ import annotations

import os
from pathlib import Path

from logship.config.model import SourceConfig
from logship.sources.discovery import scan
from logship.sources.globs import excluded, expand


def touch(p: Path, text: str = "x\n") -> Path:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


def test_double_star_spans_folders_single_star_does_not(tmp_path: Path) -> None:
    a = touch(tmp_path / "a.log")
    b = touch(tmp_path / "x" / "b.log")
    c = touch(tmp_path / "x" / "y" / "c.log")
    touch(tmp_path / "x" / "y" / "c.txt")
    assert expand(str(tmp_path / "**" / "*.log")) == sorted(map(str, [a, b, c]))
    assert expand(str(tmp_path / "*" / "*.log")) == [str(b)]
    assert expand(str(tmp_path / "*.log")) == [str(a)]
    assert expand(str(a)) == [str(a)]
    assert expand(str(tmp_path / "missing.log")) == []


def test_kubelet_layout(tmp_path: Path) -> None:
    pods = tmp_path / "pods"
    f = touch(pods / "prod_api-7d9f_0a1b" / "api" / "0.log")
    touch(pods / "prod_api-7d9f_0a1b" / "api" / "0.log.20261128-120000.gz")
    assert expand(str(pods / "*" / "*" / "*.log")) == [str(f)]


def test_symlinked_files_are_followed_like_var_log_containers(tmp_path: Path) -> None:
    target = touch(tmp_path / "pods" / "ns_pod_uid" / "c" / "0.log")
    links = tmp_path / "containers"
    links.mkdir()
    os.symlink(target, links / "pod_ns_c-123.log")
    found = scan({"k8s": SourceConfig(include=[str(links / "*.log")])})
    (m,) = found.values()
    assert m.path == str(links / "pod_ns_c-123.log")
    st = os.stat(target)
    assert (m.dev, m.ino) == (st.st_dev, st.st_ino)


def test_symlink_loops_do_not_multiply_or_hang(tmp_path: Path) -> None:
    f = touch(tmp_path / "a" / "f.log")
    os.symlink(tmp_path, tmp_path / "a" / "up")
    os.symlink(tmp_path, tmp_path / "a" / "again")
    os.symlink(tmp_path / "a", tmp_path / "a" / "self")
    assert expand(str(tmp_path / "**" / "*.log")) == [str(f)]


def test_same_file_twice_is_one_identity(tmp_path: Path) -> None:
    f = touch(tmp_path / "app.log")
    os.symlink(f, tmp_path / "alias.log")
    found = scan({"s": SourceConfig(include=[str(tmp_path / "*.log")])})
    assert len(found) == 1


def test_excludes_and_dotfiles(tmp_path: Path) -> None:
    keep = touch(tmp_path / "app.log")
    touch(tmp_path / "app.log.gz")
    touch(tmp_path / ".app.log.swp")
    touch(tmp_path / "debug" / "d.log")
    found = scan(
        {
            "s": SourceConfig(
                include=[str(tmp_path / "**" / "*.log*")],
                exclude=["*.gz", str(tmp_path / "debug" / "**")],
            )
        }
    )
    assert [m.path for m in found.values()] == [str(keep)]
    assert excluded("/x/y.gz", ["*.gz"]) and not excluded("/x/y.log", ["*.gz"])
