"""DenseViT: dense contrastive self-supervised learning for ViTs."""
import warnings

# mmcv-lite ships no compiled ops; mmcv warns that one of them
# (MultiScaleDeformableAttention, unused by ViTs) is missing on every import.
warnings.filterwarnings('ignore', message='.*MultiScaleDeformableAttention')

import mmcv  # noqa: E402
import mmengine  # noqa: E402
import mmpretrain  # noqa: E402
from mmengine.utils import digit_version  # noqa: E402

from .version import __version__, version_info  # noqa: E402

# Supported ranges [minimum, maximum). A minimum is the oldest release with
# what DenseViT uses; a maximum is the next release series not tested.
# mmengine: densevit.engine.compat overrides 0.10 internals and relies on the
# resume fast-forward of IterBasedTrainLoop added in 0.10.3.
mmengine_minimum_version = '0.10.3'
mmengine_maximum_version = '0.11.0'
# mmcv: only its 2.x transforms are used (as mmpretrain 1.2 requires).
mmcv_minimum_version = '2.0.0'
mmcv_maximum_version = '2.3.0'
# mmpretrain: the backbone and heads are tested against 1.2 only.
mmpretrain_minimum_version = '1.2.0'
mmpretrain_maximum_version = '1.3.0'

_SUPPORTED = {
    'mmengine': (mmengine_minimum_version, mmengine_maximum_version),
    'mmcv': (mmcv_minimum_version, mmcv_maximum_version),
    'mmpretrain': (mmpretrain_minimum_version, mmpretrain_maximum_version),
}
_PIP_NAMES = {'mmcv': 'mmcv-lite'}


def check_openmmlab_versions(installed=None) -> None:
    """Raise ImportError naming the package, the version found and the fix.

    Args:
        installed (dict[str, str], optional): Package name to version, for
            the packages to check. Defaults to the installed mmengine, mmcv
            and mmpretrain.
    """
    if installed is None:
        installed = dict(
            mmengine=mmengine.__version__,
            mmcv=mmcv.__version__,
            mmpretrain=mmpretrain.__version__)
    for name, found in installed.items():
        minimum, maximum = _SUPPORTED[name]
        # Release numbers only: a pre-release of the next series (e.g.
        # 0.11.0rc0) belongs to that untested series, not below it.
        release = digit_version(found)[:3]
        if digit_version(minimum)[:3] <= release < digit_version(
                maximum)[:3]:
            continue
        pkg = _PIP_NAMES.get(name, name)
        raise ImportError(
            f'DenseViT needs {name}>={minimum},<{maximum}, but {name}=={found} '
            f'is installed. Fix: pip install "{pkg}>={minimum},<{maximum}" '
            '(or `pip install -e .` in the DenseViT checkout for the tested '
            'versions).')


check_openmmlab_versions()

__all__ = ['__version__', 'version_info', 'check_openmmlab_versions']
