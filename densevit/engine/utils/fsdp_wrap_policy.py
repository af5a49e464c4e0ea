"""Which modules of a model become their own FSDP unit."""
from functools import lru_cache
from typing import Sequence, Tuple, Type

from torch import nn
from torch.distributed.fsdp.wrap import transformer_auto_wrap_policy

from densevit.registry import MODELS


@lru_cache(maxsize=None)
def resolve_module_types(
        names: Tuple[str, ...]) -> Tuple[Type[nn.Module], ...]:
    """The classes named by registered model names or import paths.

    Raises:
        ValueError: a name that is no ``nn.Module`` class.
    """
    classes = []
    for name in names:
        try:
            cls = MODELS.get(name)
        except RuntimeError:  # a dotted path that does not import
            cls = None
        if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
            raise ValueError(
                f'auto_wrap_policy.module_types: {name!r} is not a module '
                'class. Fix: give registered model names (e.g. '
                "'DenseViTBackbone') or import paths (e.g. 'mmpretrain.models."
                "backbones.vision_transformer.TransformerEncoderLayer').")
        classes.append(cls)
    return tuple(classes)


def module_type_wrap_policy(module: nn.Module, recurse: bool,
                            nonwrapped_numel: int,
                            module_types: Sequence[str]) -> bool:
    """FSDP ``auto_wrap_policy``: every module of one of ``module_types``
    becomes an FSDP unit (all-gathered for its forward, then freed).

    torch's ``transformer_auto_wrap_policy`` with the classes named in the
    config, for ``FSDPStrategy(model_wrapper=dict(auto_wrap_policy=dict(
    type='densevit.engine.utils.module_type_wrap_policy',
    module_types=[...])))``; mmengine binds ``module_types`` and FSDP passes
    the rest.

    DenseViT lists the transformer layer (one layer's weights gathered at a
    time) and also its backbone and neck classes: the key encoder is a copy
    of both, so its units then hold the same parameters in the same order
    as the online encoder's, each rank's shards of the two line up, and
    ``KeyEncoderEMA`` averages them element by element without gathering.

    Args:
        module (nn.Module): the module FSDP asks about.
        recurse (bool): True when FSDP asks whether to look into the
            children (always yes).
        nonwrapped_numel (int): parameters not yet wrapped (unused).
        module_types (Sequence[str]): registered model names or import
            paths of the classes to wrap.
    """
    return transformer_auto_wrap_policy(
        module, recurse, nonwrapped_numel,
        set(resolve_module_types(tuple(module_types))))
