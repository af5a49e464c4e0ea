"""Export DenseViT's online backbone as a timm ViT state dict.

    python tools/model_converters/densevit_to_timm.py SRC DST \\
        (--config CFG | --timm-model NAME | --num-heads N) [--safetensors]

SRC: a DenseViT checkpoint (``tools/train.py`` output; its online
backbone is exported) or a backbone file (``extract_backbone.py``,
``timm_to_densevit.py``), read with ``torch.load(weights_only=True)``.
DST: the timm weights, written atomically: with ``--safetensors`` (or a
``.safetensors`` name) a bare safetensors file, as timm and the Hugging
Face Hub hold them; otherwise ``{'state_dict': ...}`` for ``torch.load``
and timm's ``load_checkpoint``. The timm model arguments that load DST
strictly are printed (no classification head: ``num_classes=0``).

The number of heads is not in the weights: ``--config`` (the training
config) reads it and checks that SRC is a checkpoint of that config;
``--timm-model`` (e.g. vit_small_patch14_reg4_dinov2) reads it and the
layout (``no_embed_class``) from timm and checks that DST fits that model.
Either lists the weights that do not fit (missing, unexpected, other
shapes).
"""
import argparse
import os.path as osp

from mmengine.config import Config

from densevit.apis.model_conversion import (build_on_meta, build_timm_model,
                                            densevit_to_timm, extract_backbone,
                                            load_weights_file, require_fit,
                                            save_weights_file)
from densevit.apis.runner_setup import exit_on_user_error
from densevit.engine.utils import state_dict_of
from densevit.registry import MODELS


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='DenseViT checkpoint or backbone file')
    parser.add_argument('dst', help='output timm state dict')
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('--config', help='the DenseViT config of SRC')
    source.add_argument('--timm-model', help='the timm model DST is for')
    source.add_argument('--num-heads', type=int, help='attention heads')
    parser.add_argument(
        '--img-size', type=int, nargs=2, metavar=('H', 'W'),
        help='the backbone img_size, for a non-square grid with '
        '--num-heads')
    parser.add_argument(
        '--safetensors', action='store_true',
        help='write safetensors (implied by a .safetensors DST, which it '
        'needs: timm and Hugging Face choose the reader by the extension)')
    layout = parser.add_mutually_exclusive_group()
    layout.add_argument(
        '--no-embed-class', dest='no_embed_class', action='store_true',
        default=None, help='no CLS position (timm DINOv2-reg, DeiT III)')
    layout.add_argument(
        '--embed-class', dest='no_embed_class', action='store_false',
        help='CLS (and register) positions in pos_embed (timm ViTs)')
    args = parser.parse_args(argv)
    if args.safetensors and not args.dst.endswith('.safetensors'):
        parser.error(f'--safetensors writes a safetensors file, which timm '
                     f'and Hugging Face read by its name: name it '
                     f'{osp.splitext(args.dst)[0]}.safetensors')
    return args


@exit_on_user_error()
def main(argv=None):
    args = parse_args(argv)
    checkpoint = state_dict_of(load_weights_file(args.src), args.src)
    num_heads, img_size = args.num_heads, args.img_size
    no_embed_class = args.no_embed_class
    if args.config:
        import densevit.models  # noqa: F401 (registers the model types)
        backbone = build_on_meta(MODELS.build,
                                 Config.fromfile(args.config).model.backbone)
        weights = extract_backbone(checkpoint) if any(
            key.startswith('backbone.') for key in checkpoint) else checkpoint
        require_fit(
            backbone, weights, f'{args.src} is not a checkpoint of '
            f'{args.config}', 'pass the config SRC was trained with')
        num_heads = backbone.layers[0].attn.num_heads
        # A checkpoint trained with the config holds its grid; a converted
        # file (loaded by Pretrained, which resizes) keeps its own.
        rows, cols = backbone.patch_resolution
        if weights['pos_embed'].shape[1] == 1 + rows * cols:
            img_size = backbone.img_size
    conversion = None
    if args.timm_model:
        model = build_timm_model(args.timm_model, num_classes=0)
        if no_embed_class is None:
            no_embed_class = model.no_embed_class
        conversion = densevit_to_timm(
            checkpoint, model.blocks[0].attn.num_heads, img_size,
            no_embed_class)
        # At the size of SRC: timm does not resize position embeddings in
        # load_state_dict.
        model = build_timm_model(
            args.timm_model, num_classes=0,
            img_size=conversion.config['img_size'])
        require_fit(
            model, conversion.state_dict,
            f'{args.src} does not fit timm\'s {args.timm_model}',
            'pass the timm model the backbone was converted from, or '
            '--config / --num-heads for the model arguments printed here')
    else:
        conversion = densevit_to_timm(checkpoint, num_heads, img_size,
                                      no_embed_class)
    safetensors = args.dst.endswith('.safetensors')
    save_weights_file(conversion.state_dict, args.dst, safetensors)
    print(f'{len(conversion.state_dict)} tensors written to {args.dst} '
          f'({"safetensors" if safetensors else "torch"}). timm model:')
    print('timm.models.VisionTransformer(**{!r})'.format(conversion.config))
    if args.timm_model:
        print(f'or timm.create_model({args.timm_model!r}, '
              f'pretrained=False, **that dict)')
    return conversion


if __name__ == '__main__':
    main()
