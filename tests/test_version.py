import pytest

import densevit
from densevit import check_openmmlab_versions


def test_installed_versions_pass():
    check_openmmlab_versions()
    assert densevit.version_info == (0, 1, 0)


@pytest.mark.parametrize('installed', [
    dict(mmengine='0.10.3'),
    dict(mmengine='0.10.9'),
    dict(mmcv='2.1.0'),
    dict(mmpretrain='1.2.1'),
])
def test_other_versions_in_range_are_accepted(installed):
    check_openmmlab_versions(installed)


@pytest.mark.parametrize('installed, message', [
    (dict(mmengine='0.10.2'),
     r'mmengine>=0\.10\.3,<0\.11\.0, but mmengine==0\.10\.2 .*'
     r'pip install "mmengine>=0\.10\.3,<0\.11\.0"'),
    (dict(mmengine='0.11.0rc0'), r'mmengine==0\.11\.0rc0'),
    (dict(mmengine='1.0.0'), r'mmengine==1\.0\.0'),
    (dict(mmcv='2.3.0'),
     r'mmcv>=2\.0\.0,<2\.3\.0, but mmcv==2\.3\.0 .*'
     r'pip install "mmcv-lite>=2\.0\.0,<2\.3\.0"'),
    (dict(mmcv='1.7.2'), r'mmcv==1\.7\.2'),
    (dict(mmpretrain='1.1.1'), r'pip install "mmpretrain>=1\.2\.0,<1\.3\.0"'),
])
def test_out_of_range_names_package_and_fix(installed, message):
    with pytest.raises(ImportError, match=message):
        check_openmmlab_versions(installed)
