"""Keep only the online backbone of a DenseViT checkpoint.

    python tools/model_converters/extract_backbone.py IN.pth OUT.pth

The output is a plain ``state_dict`` of mmpretrain's ``VisionTransformer``
(keys without the ``backbone.`` prefix), loadable with
``init_cfg=dict(type='Pretrained', checkpoint='OUT.pth')`` in any
mmpretrain / mmseg config, and with ``torch.load(weights_only=True)``.
"""
import argparse

import torch

from densevit.apis import extract_backbone
from densevit.engine.compat import load_from_local_file


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src')
    parser.add_argument('dst')
    args = parser.parse_args(argv)
    checkpoint = load_from_local_file(args.src, map_location='cpu')
    backbone = extract_backbone(checkpoint)
    torch.save({'state_dict': backbone}, args.dst)
    print(f'{len(backbone)} backbone tensors written to {args.dst}')


if __name__ == '__main__':
    main()
