"""Check that a model offers what a hook calls."""
from torch import nn


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
