"""Attacks on `volgan label serve` over real HTTP: one server on a free loopback port for the module.

Each attack (path traversal with relative and absolute ids, links out of the studies folder,
other file types, reading any volume through infer, logs, foreign origins and hosts, missing
token, unknown ids) is sent as a real request; the files outside the studies folder are
compared byte for byte before and after every test. MONAI Label runs in `.venv-label` (see
``test_label_server.py``).
"""

from __future__ import annotations

import gzip
import json
import os
import secrets
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from tests.conftest import phantom
from tests.label.server_process import LABEL_PYTHON, ROOT, free_port, stop_server

BUNDLE = ROOT / "bundles" / "mri_denoise_redwgan"
MODEL = BUNDLE.name
ALLOWED_ORIGIN = "http://localhost:3000"
FOREIGN_ORIGIN = "http://evil.example"


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def detail(self) -> str:
        return json.loads(self.body)["detail"]


def volume_bytes(shape=(16, 16, 12), seed=0) -> bytes:
    img = nib.Nifti1Image(phantom(shape, seed=seed), np.diag([1.5, 1.5, 2.0, 1.0]))
    return gzip.compress(img.to_bytes())


def multipart(fields: dict[str, tuple[str, bytes] | str]) -> tuple[bytes, str]:
    """``multipart/form-data`` body and content type; a tuple value is (file name, content)."""
    boundary = secrets.token_hex(16)
    parts = []
    for name, value in fields.items():
        if isinstance(value, tuple):
            filename, content = value
            head = f'Content-Disposition: form-data; name="{name}"; filename="{filename}"\r\n' \
                   "Content-Type: application/octet-stream\r\n\r\n"
        else:
            head, content = f'Content-Disposition: form-data; name="{name}"\r\n\r\n', value.encode()
        parts.append(f"--{boundary}\r\n".encode() + head.encode() + content + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


class Server:
    def __init__(self, port: int, token: str):
        self.port, self.token = port, token

    def request(self, method: str, path: str, *, query: dict | None = None, files: dict | None = None,
                headers: dict | None = None, token: str | None | bool = True, timeout: float = 300) -> Reply:
        url = f"http://127.0.0.1:{self.port}{path}"
        if query:
            url += "?" + urllib.parse.urlencode(query)
        data, all_headers = None, dict(headers or {})
        if files is not None:
            data, all_headers["Content-Type"] = multipart(files)
        if token is True:
            all_headers["Authorization"] = f"Bearer {self.token}"
        elif token:
            all_headers["Authorization"] = f"Bearer {token}"
        req = urllib.request.Request(url, data=data, method=method, headers=all_headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return Reply(r.status, {k.lower(): v for k, v in r.headers.items()}, r.read())
        except urllib.error.HTTPError as err:
            return Reply(err.code, {k.lower(): v for k, v in err.headers.items()}, err.read())


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every entry under ``folder`` (links as their target text), with its content."""
    out = {}
    for path in sorted(folder.rglob("*")):
        key = str(path.relative_to(folder))
        if path.is_symlink():
            out[key] = b"->" + os.readlink(path).encode()
        elif path.is_file():
            out[key] = path.read_bytes()
        else:
            out[key] = b"<dir>"
    return out


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """``(server, studies, outside)``: the studies folder S holds ``head.nii.gz`` and a link to a
    volume outside S; ``outside`` (beside S) holds a victim volume and a secret one."""
    assert LABEL_PYTHON.is_file(), f"{LABEL_PYTHON} missing: run `make install` (builds .venv-label)"
    base = tmp_path_factory.mktemp("label_security")
    studies, outside = base / "studies", base / "outside"
    studies.mkdir()
    outside.mkdir()
    (studies / "head.nii.gz").write_bytes(volume_bytes())
    (outside / "victim.nii.gz").write_bytes(volume_bytes(seed=1))
    (outside / "secret.nii.gz").write_bytes(volume_bytes(seed=2))
    os.symlink(outside / "secret.nii.gz", studies / "linked.nii.gz")
    token = secrets.token_urlsafe(24)
    port = free_port()
    env = {**os.environ, "VOLGAN_LABEL_TOKEN": token, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    log_path = base / "server.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([str(LABEL_PYTHON), "-m", "volgan", "label", "serve", "--studies", str(studies),
                                 "--bundle", str(BUNDLE), "--port", str(port), "--allow-origin", ALLOWED_ORIGIN,
                                 "--device", "cpu"],
                                stdout=log, stderr=subprocess.STDOUT, cwd=base, env=env)
    server = Server(port, token)
    try:
        deadline = time.monotonic() + 300
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"server exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                if server.request("GET", "/info/", timeout=5).status == 200:
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"no answer within 300 s:\n{log_path.read_text()[-3000:]}")
            time.sleep(1)
        before = snapshot(outside)
        yield server, studies, outside
        assert snapshot(outside) == before
    finally:
        stop_server(proc)
    log_text = log_path.read_text()
    assert "is not one of the installed bundles" not in log_text
    assert token not in log_text


@pytest.fixture
def untouched(site):
    """Fails the test if anything outside S, or anything in S but the given names, changed."""
    server, studies, outside = site
    base = studies.parent
    others = {p.name for p in base.iterdir()} - {"studies", "outside", "server.log"}
    before = snapshot(outside)
    yield site
    assert snapshot(outside) == before
    assert {p.name for p in base.iterdir()} - {"studies", "outside", "server.log"} == others


def studies_files(studies: Path) -> set[str]:
    return {str(p.relative_to(studies)) for p in studies.rglob("*") if ".volgan-label-app" not in p.parts}


# --- writing outside the studies folder -------------------------------------------------------


@pytest.mark.parametrize("image_id", ["../x", "../../x", "../outside/victim", "sub/x", "..\\x", ".x", "..",
                                      "ABSOLUTE"])
def test_upload_with_a_path_as_id_is_refused(untouched, image_id):
    server, studies, outside = untouched
    if image_id == "ABSOLUTE":
        image_id = str(outside / "victim")
    files_before = studies_files(studies)
    reply = server.request("PUT", "/datastore/image", query={"image": image_id},
                           files={"file": ("x.nii.gz", volume_bytes(seed=3)), "params": "{}"})
    assert reply.status == 400, reply.body
    assert "image id" in reply.detail()
    assert studies_files(studies) == files_before
    assert not Path(os.path.normpath(studies / f"{image_id}.nii.gz")).exists() or image_id.endswith("victim")


@pytest.mark.parametrize("filename", ["payload.sh", "x.nii.gz.sh", "x.png", "x.zip"])
def test_upload_of_other_file_types_is_refused(untouched, filename):
    server, studies, _ = untouched
    files_before = studies_files(studies)
    reply = server.request("PUT", "/datastore/image", query={"image": "payload"},
                           files={"file": (filename, b"#!/bin/sh\necho owned\n")})
    assert reply.status == 400 and "not a volume file" in reply.detail()
    assert studies_files(studies) == files_before


def test_upload_that_is_not_a_volume_is_refused(untouched):
    server, studies, _ = untouched
    files_before = studies_files(studies)
    reply = server.request("PUT", "/datastore/image", query={"image": "fake"},
                           files={"file": ("fake.nii.gz", gzip.compress(b"not a header" * 40))})
    assert reply.status == 400 and "not a readable NIfTI volume" in reply.detail()
    assert studies_files(studies) == files_before


def test_upload_file_name_cannot_choose_the_folder(untouched):
    server, studies, _ = untouched
    reply = server.request("PUT", "/datastore/image", files={"file": ("../../planted.nii.gz", volume_bytes(seed=4))})
    assert reply.status == 200 and json.loads(reply.body) == {"image": "planted"}
    assert (studies / "planted.nii.gz").read_bytes() == volume_bytes(seed=4)
    assert server.request("DELETE", "/datastore/image", query={"id": "planted"}).status == 200
    assert not (studies / "planted.nii.gz").exists()


@pytest.mark.parametrize("tag", ["../../x", "ABSOLUTE", "..", "a/b"])
def test_label_tag_with_a_path_is_refused(untouched, tag):
    server, studies, outside = untouched
    if tag == "ABSOLUTE":
        tag = str(outside / "tag")
    files_before = studies_files(studies)
    reply = server.request("PUT", "/datastore/label", query={"image": "head", "tag": tag},
                           files={"label": ("head.nii.gz", volume_bytes(seed=5))})
    assert reply.status == 400 and "label tag" in reply.detail()
    assert studies_files(studies) == files_before


# --- deleting outside the studies folder -------------------------------------------------------


@pytest.mark.parametrize("image_id", ["../outside/victim", "../../victim", "ABSOLUTE", "../studies/head"])
def test_delete_with_a_path_as_id_is_refused(untouched, image_id):
    server, studies, outside = untouched
    if image_id == "ABSOLUTE":
        image_id = str(outside / "victim")
    reply = server.request("DELETE", "/datastore/image", query={"id": image_id})
    assert reply.status == 400 and "image id" in reply.detail()
    assert (studies / "head.nii.gz").is_file()


def test_a_link_out_of_the_studies_folder_is_neither_served_nor_deleted(untouched):
    server, studies, _ = untouched
    listed = json.loads(server.request("GET", "/datastore/", query={"output": "all"}).body)["objects"]
    assert "head" in listed and "linked" not in listed
    for method, path, query in [("GET", "/datastore/image", {"image": "linked"}),
                                ("DELETE", "/datastore/image", {"id": "linked"}),
                                ("POST", f"/infer/{MODEL}", {"image": "linked"})]:
        reply = server.request(method, path, query=query)
        assert reply.status == 404 and "linked" in reply.detail(), (method, reply.body)
    assert (studies / "linked.nii.gz").is_symlink()


# --- reading anything through infer --------------------------------------------------------------


@pytest.mark.parametrize("image", ["ABSOLUTE", "../outside/secret", "../outside/secret.nii.gz", "/etc/hostname"])
def test_infer_on_a_path_is_refused(untouched, image):
    server, _, outside = untouched
    if image == "ABSOLUTE":
        image = str(outside / "secret.nii.gz")
    reply = server.request("POST", f"/infer/{MODEL}", query={"image": image, "output": "image"})
    assert reply.status == 400 and "is a path" in reply.detail()


def test_infer_params_cannot_name_the_image(untouched):
    server, _, outside = untouched
    reply = server.request("POST", f"/infer/{MODEL}", query={"image": "head", "output": "image"},
                           files={"params": json.dumps({"image": str(outside / "secret.nii.gz")})})
    assert reply.status == 400 and "image" in reply.detail() and "params" in reply.detail()


# --- what is not served --------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/logs/", "/logs/gpu", "/train/", "/activelearning/random", "/session/",
                                  "/proxy/dicom/x", "/ohif/", "/reload", "/model/" + MODEL])
def test_logs_and_unused_monai_label_routes_are_not_served(site, path):
    server = site[0]
    for method in ("GET", "POST"):
        assert server.request(method, path).status in (404, 405), path


# --- browsers: origins, hosts --------------------------------------------------------------------


@pytest.mark.parametrize("method", ["PUT", "DELETE", "POST"])
def test_preflight_from_a_foreign_origin_gets_no_cors_headers(site, method):
    server = site[0]
    reply = server.request("OPTIONS", "/datastore/image", token=False,
                           headers={"Origin": FOREIGN_ORIGIN, "Access-Control-Request-Method": method,
                                    "Access-Control-Request-Headers": "authorization"})
    assert reply.status >= 400
    assert "access-control-allow-origin" not in reply.headers
    assert "access-control-allow-credentials" not in reply.headers


def test_preflight_from_an_allowed_origin_is_answered_for_it_only(site):
    server = site[0]
    reply = server.request("OPTIONS", "/datastore/image", token=False,
                           headers={"Origin": ALLOWED_ORIGIN, "Access-Control-Request-Method": "PUT"})
    assert reply.status == 200
    assert reply.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    reply = server.request("GET", "/info/", headers={"Origin": ALLOWED_ORIGIN})
    assert reply.status == 200 and reply.headers["access-control-allow-origin"] == ALLOWED_ORIGIN


def test_requests_from_a_foreign_origin_are_refused_even_with_the_token(untouched):
    server, studies, _ = untouched
    files_before = studies_files(studies)
    reply = server.request("PUT", "/datastore/image", query={"image": "fromweb"},
                           headers={"Origin": FOREIGN_ORIGIN}, files={"file": ("a.nii.gz", volume_bytes(seed=6))})
    assert reply.status == 403 and "cross-origin" in reply.detail()
    assert "access-control-allow-origin" not in reply.headers
    reply = server.request("DELETE", "/datastore/image", query={"id": "head"}, headers={"Origin": FOREIGN_ORIGIN})
    assert reply.status == 403
    assert studies_files(studies) == files_before


def test_a_foreign_host_name_is_refused(site):
    """A page whose own name resolves to 127.0.0.1 (DNS rebinding) sends its name as Host."""
    server = site[0]
    reply = server.request("GET", "/info/", headers={"Host": f"evil.example:{server.port}"})
    assert reply.status == 403 and "not served" in reply.detail()
    assert server.request("GET", "/info/", headers={"Host": f"localhost:{server.port}"}).status == 200


# --- token ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/info/", "/datastore/", "/datastore/image?image=head", "/openapi.json"])
def test_token_is_required(site, path):
    server = site[0]
    for token in (False, "wrong-token-of-the-same-length!!", server.token[:-1]):
        reply = server.request("GET", path, token=token)
        assert reply.status == 401, (path, token)
        assert reply.headers["www-authenticate"].startswith("Bearer")
    assert server.request("GET", path).status == 200


# --- unknown ids, and what still works -----------------------------------------------------------


@pytest.mark.parametrize("method, path, query", [
    ("GET", "/datastore/image", {"image": "nosuch"}),
    ("HEAD", "/datastore/image", {"image": "nosuch"}),
    ("GET", "/datastore/image/info", {"image": "nosuch"}),
    ("DELETE", "/datastore/image", {"id": "nosuch"}),
    ("POST", f"/infer/{MODEL}", {"image": "nosuch"}),
    ("GET", "/datastore/label", {"label": "head", "tag": "nosuch"}),
    ("DELETE", "/datastore/label", {"id": "nosuch", "tag": "final"}),
])
def test_unknown_ids_are_404_with_a_message(untouched, method, path, query):
    server = untouched[0]
    reply = server.request(method, path, query=query)
    assert reply.status == 404, reply.body
    if method != "HEAD":
        assert "nosuch" in reply.detail()


def test_unknown_model_is_404(site):
    reply = site[0].request("POST", "/infer/nosuch_model", query={"image": "head"})
    assert reply.status == 404 and "nosuch_model" in reply.detail()


def test_upload_download_label_infer_delete_round_trip(untouched):
    server, studies, _ = untouched
    content = volume_bytes(seed=7)
    reply = server.request("PUT", "/datastore/image", query={"image": "fresh"}, files={"file": ("f.nii.gz", content)})
    assert reply.status == 200 and json.loads(reply.body) == {"image": "fresh"}
    assert (studies / "fresh.nii.gz").read_bytes() == content
    again = server.request("PUT", "/datastore/image", query={"image": "fresh"},
                           files={"file": ("f.nii.gz", volume_bytes(seed=8))})
    assert again.status == 409 and "already exists" in again.detail()
    assert (studies / "fresh.nii.gz").read_bytes() == content
    assert server.request("GET", "/datastore/image", query={"image": "fresh"}).body == content

    label = volume_bytes(seed=9)
    reply = server.request("PUT", "/datastore/label", query={"image": "fresh", "tag": "final"},
                           files={"label": ("whatever.nii.gz", label)})
    assert reply.status == 200, reply.body
    assert (studies / "labels" / "final" / "fresh.nii.gz").read_bytes() == label

    reply = server.request("POST", f"/infer/{MODEL}", query={"image": "fresh", "output": "image"})
    assert reply.status == 200, reply.body
    result = nib.Nifti1Image.from_bytes(gzip.decompress(reply.body))
    assert result.shape == (16, 16, 12)

    assert server.request("DELETE", "/datastore/image", query={"id": "fresh"}).status == 200
    assert not (studies / "fresh.nii.gz").exists()
    assert not (studies / "labels" / "final" / "fresh.nii.gz").exists()
    assert not [p for p in studies.rglob("*.part")]


def test_infer_on_an_uploaded_volume(untouched):
    server, studies, _ = untouched
    files_before = studies_files(studies)
    reply = server.request("POST", f"/infer/{MODEL}", query={"output": "image"},
                           files={"file": ("up.nii.gz", volume_bytes((12, 16, 16), seed=10))})
    assert reply.status == 200, reply.body
    assert nib.Nifti1Image.from_bytes(gzip.decompress(reply.body)).shape == (12, 16, 16)
    assert studies_files(studies) == files_before
    bad = server.request("POST", f"/infer/{MODEL}", files={"file": ("up.sh", b"echo")})
    assert bad.status == 400 and "not a volume file" in bad.detail()
