_base_ = './densevit_vit-small-p16_8xb64-amp-coslr-100e_in1k.py'

model = dict(backbone=dict(arch='deit-tiny'))
