import pytest

import densevit
from densevit import check_openmmlab_versions


def test_installed_versions_pass():
    check_openmmlab_versions()
    assert densevit.version_info == (0, 1, 0)


def test_mismatch_names_package_and_fix():
    with pytest.raises(ImportError,
                       match=r'mmcv==2\.2\.0.*mmcv==2\.1\.0.*'
                       r'pip install "mmcv-lite==2\.2\.0"'):
        check_openmmlab_versions({'mmcv': ('2.2.0', '2.1.0')})
