from .densevit_backbone import DenseViTBackbone

__all__ = ['DenseViTBackbone']
