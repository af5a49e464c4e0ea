"""Base of the hooks that drive DenseViT's state between training steps."""
from typing import Tuple

from mmengine.hooks import Hook
from mmpretrain.utils import get_ori_model

from ..utils import require_model_api


class ModelDrivingHook(Hook):
    """Checks the model API before training and marks the model as driven.

    In ``before_train`` the model must have :attr:`required_methods`,
    :attr:`required_attributes` and a ``driving_hooks`` set, to which the
    hook adds its class name; the model checks that set at its first
    training step, so a run missing a hook it needs stops with the fix.
    ``after_train`` removes the name again.
    """

    #: Methods the model must have.
    required_methods: Tuple[str, ...] = ()
    #: Attributes the model must have (besides ``driving_hooks``).
    required_attributes: Tuple[str, ...] = ()

    def before_train(self, runner) -> None:
        """Check the model API and mark the model as driven by this hook."""
        model = get_ori_model(runner.model)
        name = type(self).__name__
        require_model_api(
            model,
            name,
            methods=self.required_methods,
            attributes=('driving_hooks', ) + self.required_attributes)
        model.driving_hooks.add(name)

    def after_train(self, runner) -> None:
        """The model is no longer driven by this hook."""
        get_ori_model(runner.model).driving_hooks.discard(type(self).__name__)
