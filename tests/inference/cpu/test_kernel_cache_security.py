"""The native kernel cache: a private folder, and no library loaded that another user could have
planted or changed."""

from __future__ import annotations

import os
import shutil

import pytest

from volgan.inference.cpu import native_kernels

pytestmark = pytest.mark.skipif(shutil.which(os.environ.get("CC", "cc")) is None, reason="needs a C compiler")


@pytest.fixture
def cache(monkeypatch, tmp_path):
    folder = tmp_path / "cache"
    monkeypatch.setenv("VOLGAN_KERNEL_CACHE", str(folder))
    native_kernels.load_library.cache_clear()
    yield folder
    native_kernels.load_library.cache_clear()


def built_library(cache) -> os.PathLike:
    assert native_kernels.load_library() is not None
    (library,) = [p for p in cache.iterdir() if p.suffix == ".so"]
    native_kernels.load_library.cache_clear()
    return library


def test_the_cache_is_created_private_and_each_library_has_its_digest(cache):
    library = built_library(cache)
    assert oct(cache.stat().st_mode & 0o777) == oct(0o700)
    assert native_kernels.trusted_library(library)


def test_a_cache_folder_other_users_can_write_to_is_refused(cache, caplog):
    cache.mkdir(mode=0o700)
    cache.chmod(0o777)
    assert native_kernels.load_library() is None
    assert "writable by other users" in caplog.text
    assert not any(p.suffix == ".so" for p in cache.iterdir())


def test_a_library_writable_by_others_is_never_loaded(cache, caplog):
    library = built_library(cache)
    library.chmod(0o666)  # permissions only: the mapped library is untouched
    assert native_kernels.load_library() is None
    assert "refusing to load" in caplog.text


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to give a file away")
def test_a_library_owned_by_another_user_is_never_loaded(cache, caplog):
    library = built_library(cache)
    os.chown(library, 65534, 65534)
    assert native_kernels.load_library() is None
    assert "not by this user" in caplog.text


def test_a_planted_library_with_the_expected_name_is_rebuilt_not_loaded(cache):
    library = built_library(cache)
    library.unlink()  # a new file (the loaded library stays mapped as it was)
    library.write_bytes(b"\x7fELF planted, not built by volgan")
    library.chmod(0o600)
    assert not native_kernels.trusted_library(library)
    assert native_kernels.load_library() is not None  # loading the planted bytes would fail
    assert native_kernels.trusted_library(library)


def test_a_cache_path_that_is_a_link_is_refused(monkeypatch, tmp_path, caplog):
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    (tmp_path / "link").symlink_to(real)
    monkeypatch.setenv("VOLGAN_KERNEL_CACHE", str(tmp_path / "link"))
    native_kernels.load_library.cache_clear()
    try:
        assert native_kernels.load_library() is None
        assert "not a plain folder" in caplog.text
    finally:
        native_kernels.load_library.cache_clear()
