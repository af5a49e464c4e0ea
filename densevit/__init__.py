"""DenseViT: dense contrastive self-supervised learning for ViTs."""
import warnings

# mmcv-lite ships no compiled ops; mmcv warns that one of them
# (MultiScaleDeformableAttention, unused by ViTs) is missing on every import.
warnings.filterwarnings('ignore', message='.*MultiScaleDeformableAttention')

import mmcv  # noqa: E402
import mmengine  # noqa: E402
import mmpretrain  # noqa: E402
from mmengine.utils import digit_version  # noqa: E402

from .version import __version__, version_info

# The exact versions this release is tested with. Other versions of these
# packages changed APIs DenseViT relies on (mmengine's checkpoint layout,
# mmpretrain's VisionTransformer and heads).
_REQUIRED = {
    'mmengine': ('0.10.7', mmengine.__version__),
    'mmcv': ('2.2.0', mmcv.__version__),
    'mmpretrain': ('1.2.0', mmpretrain.__version__),
}


def check_openmmlab_versions(required=_REQUIRED) -> None:
    """Raise ImportError naming the package, the version found and the fix."""
    for name, (wanted, found) in required.items():
        if digit_version(found) != digit_version(wanted):
            pkg = 'mmcv-lite' if name == 'mmcv' else name
            raise ImportError(
                f'DenseViT needs {name}=={wanted}, but {name}=={found} is '
                f'installed. Fix: pip install "{pkg}=={wanted}" (or '
                f'`pip install -e .` in the DenseViT checkout).')


check_openmmlab_versions()

__all__ = ['__version__', 'version_info', 'check_openmmlab_versions']
