# The dense probe and in-context segmentation of
# dense-probe_vit-small-p16_voc-224px.py for the timm-initialised ViT-S/16
# (densevit_vit-small-p16-timm-init_8xb64-amp-coslr-10e_in1k.py): its
# inputs normalised as timm's weights expect. Score the converted weights
# before post-pretraining and the result after it with the same command:
#   python tools/analysis_tools/init_checkpoint.py \
#       configs/densevit/densevit_vit-small-p16-timm-init_8xb64-amp-coslr-10e_in1k.py \
#       work_dirs/vit-small-p16_timm_before.pth
#   python tools/test.py configs/densevit/benchmarks/dense-probe_vit-small-p16-timm-init_voc-224px.py \
#       work_dirs/vit-small-p16_timm_before.pth --cfg-options test_dataloader.dataset.data_root=data/VOC2012
#   (then the same with work_dirs/densevit_vit-small-p16-timm-init_8xb64-amp-coslr-10e_in1k/epoch_10.pth)
_base_ = ['./dense-probe_vit-small-p16_voc-224px.py']

model = dict(data_preprocessor=dict(mean=[127.5] * 3, std=[127.5] * 3))
