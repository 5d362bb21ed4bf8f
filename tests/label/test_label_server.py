"""The real MONAI Label server with the volgan app, on a free loopback port, called over HTTP.

MONAI Label lives in its own environment (`make install` builds `.venv-label`; its pins would
downgrade numpy and jsonschema in the core one); set VOLGAN_LABEL_PYTHON to use another.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.error
import urllib.request

import nibabel as nib
import numpy as np
import pytest

from tests.conftest import oblique_affine, phantom
from tests.label.server_process import LABEL_PYTHON, free_port, stop_server
from volgan.cli import build_parser, main
from volgan.label.serve import default_bundles



def wait_for_info(url: str, proc: subprocess.Popen, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                return json.loads(r.read())
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(2)
    raise AssertionError(f"server did not answer {url} within {timeout} s")


def test_serve_binds_to_loopback_by_default():
    args = build_parser().parse_args(["label", "serve", "--studies", "x"])
    assert args.host == "127.0.0.1"


@pytest.mark.slow
def test_monai_label_server_runs_every_bundle_like_volgan_infer(tmp_path):
    assert LABEL_PYTHON.is_file(), f"{LABEL_PYTHON} missing: run `make install` (builds .venv-label)"
    studies = tmp_path / "studies"
    studies.mkdir()
    study = studies / "head.nii.gz"
    nib.save(nib.Nifti1Image(phantom((40, 36, 30)) + 5.0, oblique_affine()), study)
    bundles = default_bundles()
    assert bundles, "no trained bundle found"
    port = free_port()
    log = open(tmp_path / "server.log", "w")
    proc = subprocess.Popen([str(LABEL_PYTHON), "-m", "volgan", "label", "serve", "--studies", str(studies),
                             "--port", str(port)], stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        info = wait_for_info(f"http://127.0.0.1:{port}/info/", proc)
        assert set(info["models"]) == {b.name for b in bundles}
        for bundle in bundles:
            assert info["models"][bundle.name]["type"] == "others"
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/infer/{bundle.name}?image=head&output=image", method="POST", data=b"")
            with urllib.request.urlopen(request, timeout=600) as r:
                served = tmp_path / f"served_{bundle.name}.nii.gz"
                served.write_bytes(r.read())
            assert main(["infer", str(bundle), str(study), "-o", str(tmp_path / bundle.name)]) == 0
            ref = nib.load(tmp_path / bundle.name / "head.nii.gz")
            got = nib.load(served)
            np.testing.assert_allclose(got.affine, ref.affine, atol=1e-5)
            ref_data = ref.get_fdata()
            assert got.shape == ref.shape
            assert np.abs(got.get_fdata() - ref_data).max() <= 1e-4 * np.ptp(ref_data)
    finally:
        stop_server(proc)
        log.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
