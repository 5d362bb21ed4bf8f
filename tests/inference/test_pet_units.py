"""PET inference in the input's units: SUV normalisation from DICOM headers or a user scale, inverted."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from monai.bundle import ConfigParser
from torch import nn

from tests.conftest import oblique_affine, phantom
from tests.io.test_pet_suv import SUV_PER_BQML_60MIN, pet_series
from volgan.data import ScaleBySuvd, SuvScaler
from volgan.inference import BatchRunner, Predictor
from volgan.io import Volume, VolumeError, read_volume, write_nifti


class Recorder(nn.Module):
    """The identity, remembering the largest value it was given (the network's view of the input)."""

    seen = 0.0

    def forward(self, x):
        self.seen = max(self.seen, float(x.max()))
        return x * 1.0


def predictor(normaliser) -> Predictor:
    return Predictor(Recorder(), roi_size=(8, 8, 8), device="cpu", backend="torch", normaliser=normaliser)


def test_dicom_pet_comes_back_in_bq_per_ml_and_the_network_sees_suv(tmp_path):
    pet_series(tmp_path / "pet")
    vol = read_volume(tmp_path / "pet")
    pred = predictor(SuvScaler(suv_max=10.0))
    out = pred.predict(vol)
    assert out.units == "Bq/ml"
    np.testing.assert_allclose(out.affine, vol.affine)
    np.testing.assert_allclose(out.array, vol.array, rtol=1e-5, atol=1e-3)
    assert pred.network.seen == pytest.approx(vol.array.max() * SUV_PER_BQML_60MIN / 10.0, rel=1e-5)


def test_suv_output_on_request(tmp_path):
    pet_series(tmp_path / "pet")
    vol = read_volume(tmp_path / "pet")
    out = predictor(SuvScaler(suv_max=10.0, output_suv=True)).predict(vol)
    assert out.units == "SUV"
    np.testing.assert_allclose(out.array, vol.array * SUV_PER_BQML_60MIN, rtol=1e-5, atol=1e-6)


def test_nifti_with_a_user_scale_and_without(tmp_path):
    arr = phantom() * 200.0
    write_nifti(Volume(arr, oblique_affine(), units="Bq/ml"), tmp_path / "pet.nii.gz")
    vol = read_volume(tmp_path / "pet.nii.gz")
    pred = predictor(SuvScaler(suv_max=8.0, units_per_suv=5000.0))
    out = pred.predict(vol)
    np.testing.assert_allclose(out.array, vol.array, rtol=1e-5, atol=1e-3)
    assert pred.network.seen == pytest.approx(vol.array.max() / 5000.0 / 8.0, rel=1e-5)
    with pytest.raises(VolumeError, match="holds Bq/ml but no SUV scale was given") as info:
        predictor(SuvScaler()).predict(vol)  # volgan wrote it in Bq/ml: not taken for SUV
    assert str(tmp_path / "pet.nii.gz") in str(info.value)
    nib.save(nib.Nifti1Image(arr / 1000.0, oblique_affine()), tmp_path / "suv.nii.gz")
    suv = read_volume(tmp_path / "suv.nii.gz")
    pred = predictor(SuvScaler(suv_max=10.0))
    np.testing.assert_allclose(pred.predict(suv).array, suv.array, rtol=1e-5, atol=1e-5)
    assert pred.network.seen == pytest.approx(suv.array.max() / 10.0, rel=1e-5)


def test_series_without_suv_factor_needs_a_scale(tmp_path):
    pet_series(tmp_path / "noweight", weight_kg=None)
    with pytest.raises(VolumeError, match=r"PatientWeight \(0010,1030\) is missing") as info:
        predictor(SuvScaler(units_per_suv=5000.0)).predict(read_volume(tmp_path / "noweight"))
    assert str(tmp_path / "noweight") in str(info.value)
    pet_series(tmp_path / "counts", units="CNTS")
    counts = read_volume(tmp_path / "counts")
    assert counts.units == "counts"
    with pytest.raises(VolumeError, match="no SUV factor"):
        predictor(SuvScaler()).predict(counts)
    pred = predictor(SuvScaler(suv_max=10.0, units_per_suv=300.0))
    np.testing.assert_allclose(pred.predict(counts).array, counts.array, rtol=1e-5, atol=1e-3)
    assert pred.network.seen == pytest.approx(counts.array.max() / 3000.0, rel=1e-5)


def test_mr_series_is_refused_by_the_pet_normaliser(tmp_path):
    from tests.io.test_dicom import write_series

    write_series(tmp_path / "mr", phantom((10, 8, 6)), oblique_affine())
    with pytest.raises(VolumeError, match="is a MR series; this PET network needs PET"):
        predictor(SuvScaler()).predict(read_volume(tmp_path / "mr"))


def test_bundle_config_wires_the_normaliser_and_the_training_transform(tmp_path):
    """Plain arguments in inference.yaml / train.yaml; the training scale equals the inference scale."""
    config = ConfigParser({
        "suv_max": 10.0,
        "output_suv": False,
        "normaliser": {"_target_": "volgan.data.SuvScaler", "suv_max": "@suv_max", "units_per_suv": None,
                       "output_suv": "@output_suv"},
        "scale": {"_target_": "volgan.data.ScaleBySuvd", "keys": ["source", "target"], "suv_max": "@suv_max",
                  "scale_key": "units_per_suv"},
    })
    pet_series(tmp_path / "pet")
    vol = read_volume(tmp_path / "pet")
    params = config.get_parsed_content("normaliser").fit_volume(vol)
    sample = {"source": vol.array[None], "target": 2 * vol.array[None], "units_per_suv": vol.meta["suv"].units_per_suv}
    scaled = config.get_parsed_content("scale")(sample)
    np.testing.assert_allclose(scaled["source"], params.apply(vol.array[None]), rtol=1e-6)
    np.testing.assert_allclose(scaled["target"], params.apply(2 * vol.array[None]), rtol=1e-6)
    constant = ScaleBySuvd(["source"], suv_max=5.0, units_per_suv=100.0)({"source": np.full((1, 2, 2, 2), 1000.0)})
    np.testing.assert_allclose(constant["source"], 2.0)


def test_batch_runner_writes_a_dicom_pet_series_as_nifti_in_bq_per_ml(tmp_path):
    pet_series(tmp_path / "in" / "patient7_pet")
    vol = read_volume(tmp_path / "in" / "patient7_pet")
    results = BatchRunner(predictor(SuvScaler()), tmp_path / "in", tmp_path / "out").run()
    assert [r.status for r in results] == ["done"]
    img = nib.load(tmp_path / "out" / "patient7_pet.nii.gz")
    np.testing.assert_allclose(img.affine, vol.affine, atol=1e-5)
    np.testing.assert_allclose(img.get_fdata(), vol.array, rtol=1e-5, atol=1e-3)
    assert b"units=Bq/ml" in img.header["descrip"].tobytes()
