"""DenseViT registries: children of mmpretrain's, scope ``densevit``.

A child registry resolves names it does not hold by looking into its parent's
module table, but mmengine does not import the parent's ``locations`` during
that lookup. mmpretrain's components (``VisionTransformer``,
``LinearClsHead``, its transforms, hooks and metrics) would therefore be
missing unless mmpretrain's packages are imported first. They are imported
here, once, so every DenseViT registry sees them.
"""
import mmpretrain.datasets  # noqa: F401
import mmpretrain.engine  # noqa: F401
import mmpretrain.evaluation  # noqa: F401
import mmpretrain.models  # noqa: F401
import mmpretrain.visualization  # noqa: F401
from mmengine.registry import Registry
from mmpretrain import registry as mmpretrain_registry

__all__ = [
    'RUNNERS', 'RUNNER_CONSTRUCTORS', 'LOOPS', 'HOOKS', 'LOG_PROCESSORS',
    'OPTIMIZERS', 'OPTIM_WRAPPERS', 'OPTIM_WRAPPER_CONSTRUCTORS',
    'PARAM_SCHEDULERS', 'DATASETS', 'DATA_SAMPLERS', 'TRANSFORMS', 'MODELS',
    'MODEL_WRAPPERS', 'WEIGHT_INITIALIZERS', 'BATCH_AUGMENTS', 'TASK_UTILS',
    'METRICS', 'EVALUATORS', 'VISUALIZERS', 'VISBACKENDS'
]


def _child(name: str, location: str) -> Registry:
    parent = getattr(mmpretrain_registry, name)
    return Registry(
        parent.name, parent=parent, scope='densevit', locations=[location])


RUNNERS = _child('RUNNERS', 'densevit.engine')
RUNNER_CONSTRUCTORS = _child('RUNNER_CONSTRUCTORS', 'densevit.engine')
LOOPS = _child('LOOPS', 'densevit.engine')
HOOKS = _child('HOOKS', 'densevit.engine')
LOG_PROCESSORS = _child('LOG_PROCESSORS', 'densevit.engine')
OPTIMIZERS = _child('OPTIMIZERS', 'densevit.engine')
OPTIM_WRAPPERS = _child('OPTIM_WRAPPERS', 'densevit.engine')
OPTIM_WRAPPER_CONSTRUCTORS = _child('OPTIM_WRAPPER_CONSTRUCTORS',
                                    'densevit.engine')
PARAM_SCHEDULERS = _child('PARAM_SCHEDULERS', 'densevit.engine')
DATASETS = _child('DATASETS', 'densevit.datasets')
DATA_SAMPLERS = _child('DATA_SAMPLERS', 'densevit.datasets')
TRANSFORMS = _child('TRANSFORMS', 'densevit.datasets')
MODELS = _child('MODELS', 'densevit.models')
MODEL_WRAPPERS = _child('MODEL_WRAPPERS', 'densevit.models')
WEIGHT_INITIALIZERS = _child('WEIGHT_INITIALIZERS', 'densevit.models')
BATCH_AUGMENTS = _child('BATCH_AUGMENTS', 'densevit.models')
TASK_UTILS = _child('TASK_UTILS', 'densevit.models')
METRICS = _child('METRICS', 'densevit.evaluation')
EVALUATORS = _child('EVALUATORS', 'densevit.evaluation')
VISUALIZERS = _child('VISUALIZERS', 'densevit.visualization')
VISBACKENDS = _child('VISBACKENDS', 'densevit.visualization')
