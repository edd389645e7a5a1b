"""doctor's dependency check reads the bundle's requirements.txt as pip would:
environment markers decide what applies, and optional features only warn."""

import sys

from x402_compute.commands import doctor


def _bundle(tmp_path, text):
    (tmp_path / "requirements.txt").write_text(text)
    return tmp_path


def test_markers_select_requirements(tmp_path):
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    root = _bundle(tmp_path, f'requests>=2\npympp[tempo]>=0.16; python_version > "{here}"\nbase58>=2 ; python_version >= "{here}"\n')
    assert [d for d, _ in doctor.requirements(root)] == ["requests", "base58"]


def test_missing_optional_feature_warns_but_missing_core_fails(tmp_path):
    root = _bundle(tmp_path, "requests>=2\nopen-wallet-standard>=999\n")
    c = doctor.check_dependencies(root)
    assert c.status == doctor.WARN and "OWS vault wallets unavailable" in c.detail
    root = _bundle(tmp_path, "requests>=999\nopen-wallet-standard>=999\n")
    c = doctor.check_dependencies(root)
    assert c.status == doctor.FAIL and "requests" in c.detail


def test_import_names_of_the_real_bundle_resolve():
    c = doctor.check_dependencies()
    assert c.status == doctor.OK, c.detail
    assert {"open-wallet-standard", "pympp", "pynacl", "python-dotenv"} <= set(c.data["installed"])
