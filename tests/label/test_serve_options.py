"""`volgan label serve` options: the token, allowed origins and host reach the server's environment."""

from __future__ import annotations

import logging

import pytest

from volgan.cli import build_parser, main
from volgan.label.serve import MIN_TOKEN, server_env

TOKEN = "t" * MIN_TOKEN


def args(*extra: str):
    return build_parser().parse_args(["label", "serve", "--studies", "x", *extra])


def test_defaults_bind_loopback_without_token_or_origins():
    env = server_env(args(), {"PATH": "/bin"})
    assert env["VOLGAN_LABEL_HOST"] == "127.0.0.1"
    assert env["VOLGAN_LABEL_ALLOW_ORIGINS"] == ""
    assert "VOLGAN_LABEL_TOKEN" not in env and env["PATH"] == "/bin"


def test_token_from_file_or_environment(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    assert server_env(args("--token-file", str(token_file)), {})["VOLGAN_LABEL_TOKEN"] == TOKEN
    assert server_env(args(), {"VOLGAN_LABEL_TOKEN": TOKEN})["VOLGAN_LABEL_TOKEN"] == TOKEN
    assert "VOLGAN_LABEL_TOKEN" not in server_env(args(), {"VOLGAN_LABEL_TOKEN": ""})


def test_short_token_is_refused(tmp_path, capsys):
    with pytest.raises(ValueError, match=f"at least {MIN_TOKEN}"):
        server_env(args(), {"VOLGAN_LABEL_TOKEN": "short"})
    token_file = tmp_path / "token"
    token_file.write_text("short")
    studies = tmp_path / "studies"
    studies.mkdir()
    assert main(["label", "serve", "--studies", str(studies), "--token-file", str(token_file)]) == 2
    assert f"at least {MIN_TOKEN}" in capsys.readouterr().err


def test_missing_token_file_is_an_error(tmp_path, capsys):
    assert main(["label", "serve", "--studies", str(tmp_path), "--token-file", str(tmp_path / "nope")]) == 2
    assert "nope" in capsys.readouterr().err


def test_allowed_origins_are_checked():
    env = server_env(args("--allow-origin", "http://localhost:3000", "--allow-origin", "https://viewer.lan/"), {})
    assert env["VOLGAN_LABEL_ALLOW_ORIGINS"].split() == ["http://localhost:3000", "https://viewer.lan"]
    for bad in ("*", "localhost:3000", "http://x/path", "ftp://x", "http://x?q=1"):
        with pytest.raises(ValueError, match="--allow-origin"):
            server_env(args("--allow-origin", bad), {})


def test_other_hosts_without_a_token_are_warned_about(caplog):
    with caplog.at_level(logging.WARNING):
        server_env(args("--host", "0.0.0.0"), {})
    assert any("without a token" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        env = server_env(args("--host", "0.0.0.0"), {"VOLGAN_LABEL_TOKEN": TOKEN})
    assert not caplog.records and env["VOLGAN_LABEL_HOST"] == "0.0.0.0"

