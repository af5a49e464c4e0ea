"""Keep only the online backbone of a DenseViT checkpoint.

    python tools/model_converters/extract_backbone.py IN.pth OUT.pth [--safetensors]

The output is a plain ``state_dict`` of mmpretrain's ``VisionTransformer``
(keys without the ``backbone.`` prefix), loadable with
``init_cfg=dict(type='Pretrained', checkpoint='OUT.pth')`` in any
mmpretrain / mmseg / mmdet config (docs/interop.md), and with
``torch.load(weights_only=True)``. With ``--safetensors`` it is a
safetensors file instead (``safetensors.torch.load_file``, for the Hugging
Face ecosystem; mmengine's ``Pretrained`` reads ``.pth`` only). Written
atomically: a crash leaves no half-written OUT.
"""
import argparse

from densevit.apis import extract_backbone
from densevit.apis.model_conversion import save_weights_file
from densevit.engine.compat import load_from_local_file


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src')
    parser.add_argument('dst')
    parser.add_argument(
        '--safetensors', action='store_true',
        help='write DST as safetensors instead of {"state_dict": ...} .pth')
    args = parser.parse_args(argv)
    checkpoint = load_from_local_file(args.src, map_location='cpu')
    backbone = extract_backbone(checkpoint)
    save_weights_file(backbone, args.dst, safetensors=args.safetensors)
    print(f'{len(backbone)} backbone tensors written to {args.dst}')


if __name__ == '__main__':
    main()
