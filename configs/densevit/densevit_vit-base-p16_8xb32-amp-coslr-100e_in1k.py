_base_ = './densevit_vit-small-p16_8xb64-amp-coslr-100e_in1k.py'

model = dict(backbone=dict(arch='deit-base', drop_path_rate=0.1))
train_dataloader = dict(batch_size=32)
# Total batch 256.
optim_wrapper = dict(optimizer=dict(lr=1.5e-4))
auto_scale_lr = dict(base_batch_size=256)
