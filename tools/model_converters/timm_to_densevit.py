"""Convert a timm ViT state dict to DenseViT backbone weights.

    python tools/model_converters/timm_to_densevit.py SRC DST \\
        [--timm-model NAME | --num-heads N] [--img-size H [W]] [--config CFG]

SRC: a timm ``VisionTransformer`` state dict (``.pth``/``.bin``, read with
``torch.load(weights_only=True)``, or ``.safetensors``), e.g. the
``model.safetensors`` of a timm model on the Hugging Face Hub, or an
original DINOv2 release file. DST: ``{'state_dict': ...}`` in
``DenseViTBackbone`` names, written atomically, for
``model.backbone.init_cfg=dict(type='Pretrained', checkpoint=DST)``; the
backbone config it needs is printed. DenseViT starts its key encoder equal
to the online one after that load. DST is not a ``load_from`` checkpoint:
that needs the whole model (neck, queues), which a timm model does not have.

``--timm-model`` (e.g. vit_small_patch14_reg4_dinov2) reads the number of
heads from timm and checks that SRC is that model; ``--config`` checks that
DST loads into the backbone of that DenseViT config. Either lists the
weights that do not fit (missing, unexpected, other shapes).
"""
import argparse

from mmengine.config import Config

from densevit.apis.model_conversion import (build_on_meta, build_timm_model,
                                            densevit_to_timm,
                                            load_weights_file, require_fit,
                                            save_weights_file,
                                            timm_to_densevit)
from densevit.apis.runner_setup import exit_on_user_error
from densevit.registry import MODELS


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='timm state dict (.pth, .bin, '
                        '.safetensors)')
    parser.add_argument('dst', help='output .pth for Pretrained init_cfg')
    parser.add_argument(
        '--timm-model', help='timm model name of SRC: gives the number of '
        'heads, and SRC must fit it')
    parser.add_argument(
        '--num-heads', type=int, help='attention heads (default: from '
        '--timm-model, else timm\'s count for the width)')
    parser.add_argument(
        '--img-size', type=int, nargs='+', metavar='SIZE',
        help='image size of SRC\'s position embeddings (H [W]); only for a '
        'non-square grid or when the grid is ambiguous')
    parser.add_argument(
        '--config', help='DenseViT config whose model.backbone must load '
        'DST')
    args = parser.parse_args(argv)
    if args.img_size and len(args.img_size) > 2:
        parser.error(f'--img-size takes H or H W, got {args.img_size}')
    return args


@exit_on_user_error()
def main(argv=None):
    args = parse_args(argv)
    img_size = None
    if args.img_size:
        img_size = args.img_size[0] if len(args.img_size) == 1 \
            else tuple(args.img_size)
    timm_model = None
    num_heads = args.num_heads
    if args.timm_model:
        timm_model = build_timm_model(args.timm_model, num_classes=0)
        num_heads = num_heads or timm_model.blocks[0].attn.num_heads

    conversion = timm_to_densevit(
        load_weights_file(args.src), num_heads=num_heads, img_size=img_size)
    config = conversion.config

    if timm_model is not None:
        # SRC in the layout of that timm model (at SRC's size) must fit it.
        timm_model = build_timm_model(
            args.timm_model, num_classes=0, img_size=config['img_size'])
        as_timm = densevit_to_timm(
            conversion.state_dict, config['arch']['num_heads'],
            config['img_size'], no_embed_class=timm_model.no_embed_class)
        require_fit(
            timm_model, as_timm.state_dict,
            f'{args.src} is not a {args.timm_model}',
            f'pass the timm model {args.src} was saved from, or leave out '
            '--timm-model')
    if args.config:
        import densevit.models  # noqa: F401 (registers the model types)
        cfg = Config.fromfile(args.config)
        backbone = build_on_meta(MODELS.build, cfg.model.backbone)
        require_fit(
            backbone, conversion.state_dict,
            f'{args.src} would not load into model.backbone of '
            f'{args.config}', 'set model.backbone of the config to the '
            f'converted one (without --config this prints it): {config}')

    save_weights_file(conversion.state_dict, args.dst)
    if conversion.dropped:
        print(f'Left out (not backbone weights): {conversion.dropped}')
    print(f'{len(conversion.state_dict)} tensors written to {args.dst}. '
          'Backbone config:')
    print(f"backbone={config!r}")
    print(f"with init_cfg=dict(type='Pretrained', checkpoint={args.dst!r})")
    return conversion


if __name__ == '__main__':
    main()
