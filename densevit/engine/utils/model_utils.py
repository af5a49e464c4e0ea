"""Reach the model a hook should act on."""
from mmengine.model import is_model_wrapper
from torch import nn


def unwrap_model(model: nn.Module) -> nn.Module:
    """Return the model inside a DDP/FSDP-style wrapper, or ``model`` itself.

    Hooks call methods such as ``update_queues()`` that exist on the DenseViT
    model, not on ``MMDistributedDataParallel``, so they must look inside the
    wrapper instead of assuming single-process training.
    """
    return model.module if is_model_wrapper(model) else model


def require_model_api(model: nn.Module, hook: str, methods=(),
                      attributes=()) -> None:
    """Raise TypeError if ``model`` lacks what ``hook`` calls.

    Checked in ``before_train`` so a wrong model fails at start-up with the
    fix, not with an AttributeError after the first iteration.

    Args:
        model (nn.Module): The unwrapped model.
        hook (str): Name of the hook, for the message.
        methods (Sequence[str]): Callables the hook uses.
        attributes (Sequence[str]): Attributes the hook reads or writes.
    """
    missing = [m for m in methods if not callable(getattr(model, m, None))]
    missing += [a for a in attributes if not hasattr(model, a)]
    if missing:
        raise TypeError(
            f'{hook} needs a model with {", ".join(missing)} (the DenseViT '
            f'model API), but got {type(model).__name__}. Use '
            f"model=dict(type='DenseViT', ...) or remove {hook} from "
            'custom_hooks.')
